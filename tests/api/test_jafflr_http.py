"""jafflr over real HTTP, with the simulated machine and chillybin running as processes
(conftest.py): every endpoint and its errors, the request checks, the original project's
happy path, concurrent orders, and a few faults (the full matrix is in
tests/firmware/test_kitchen.py).

Every answer under /v2 is checked against the OpenAPI document the service serves: its
status must be documented and its body must fit the schema documented for that status.
The tests share one jafflr and run in file order; each leaves the machine reset.
"""
import concurrent.futures
import json
import os
import re
import time

import pytest
from jsonschema import Draft202012Validator

from tests.api.conftest import JAFFLR_ENV, restock, stop_machine
from tests.api.openapi_check import operation_for, problems_with_document
from tests.support.client import request

SEEN = []       # (method, path, status) of every answer, for the no-500 check at the end


@pytest.fixture(scope='module')
def j(machine, tmp_path_factory):
    service = machine.start('jafflr', state_dir=str(tmp_path_factory.mktemp('jafflr-http')),
                            env=JAFFLR_ENV)
    try:
        yield service
    finally:
        stop_machine(service)
        service.signal(15)
        service.wait(60)
        for fault in machine.world()['faults']:
            machine.link.set_fault(fault, False)


@pytest.fixture(autouse=True)
def machine_left_clear(machine, j):
    """Each test starts on a machine without a fault: one a test leaves latched (its own
    failure, or a load-induced trip on a busy computer) is cleared after it, as a person
    would (the reset button where the fault needs one, then the admin reset), so it fails
    that test alone and not every test after it in this module."""
    yield
    try:
        status = request(j.port, 'GET', '/v2/status').json()
        if status['fault'] is None:
            return
        if status['reset']['cleared_by'] == 'at-machine':
            machine.sim('button', 'reset', '--hold', '3')
            machine.wait_for(lambda: request(j.port, 'GET', '/v2/status').json()['reset']['allowed'],
                             30, 'the reset button held')
        request(j.port, 'POST', '/v2/reset', None, admin(j))
    except Exception as exc:              # the next test says what is wrong, if anything
        print(f'could not clear the machine after the test: {exc}')


@pytest.fixture(scope='module')
def doc(j):
    return request(j.port, 'GET', '/v2/openapi.json').json()


def check_documented(doc, method, path, answer):
    """The answer's status is documented for the operation (or its default) and its JSON
    body fits the schema documented for it."""
    template, op = operation_for(doc, method, path)
    if op is None:
        return
    responses = op['responses']
    response = responses.get(str(answer.status)) or responses.get('default')
    assert response is not None, f'{method} {template} answered {answer.status}: undocumented'
    schema = response.get('content', {}).get('application/json', {}).get('schema')
    if schema is not None:
        assert answer.headers['content-type'].startswith('application/json'), answer
        Draft202012Validator(schema).validate(answer.json())


@pytest.fixture
def api(j, doc):
    """api(method, path, body=None, headers=None) -> Answer, checked against the document."""
    def call(method, path, body=None, headers=None, timeout=30):
        answer = request(j.port, method, path, body, headers, timeout=timeout)
        SEEN.append((method, path, answer.status))
        check_documented(doc, method, path, answer)
        return answer
    return call


def admin(j):
    return {'Authorization': f'Bearer {j.admin_token()}'}


def chilly_stock(machine):
    """chillybin's original flat map: name -> units available."""
    return request(machine['chillybin'].port, 'GET', '/').json()


def status(api):
    return api('GET', '/v2/status').json()


def wait_order(machine, api, oid, condition, timeout_s=120, what='the toastie'):
    return machine.wait_for(lambda: (lambda o: o if condition(o) else None)(
        api('GET', f'/v2/toasties/{oid}').json()), timeout_s, what, interval=0.1)


def reset(api, j):
    answer = api('POST', '/v2/reset', headers=admin(j))
    assert answer.status == 200 and answer.json()['fault'] is None, answer


def orders(api):
    return api('GET', '/v2/toasties?limit=100').json()['orders']


# -- the document --------------------------------------------------------------------------
def test_http_openapi_document_is_valid_and_documents_v2(doc):
    assert problems_with_document(doc) == []
    assert {'/v2/toasties', '/v2/toasties/{oid}', '/v2/toasties/{oid}/cancel', '/v2/status',
            '/v2/stop', '/v2/reset', '/v2/queue/pause', '/v2/queue/resume', '/v2/flags',
            '/v2/flags/{name}', '/v2/events', '/v2/ready'} <= set(doc['paths'])


# -- the original project's happy path ----------------------------------------------------------
def test_http_original_happy_path_cheese_and_vegemite_is_done_and_cheese_is_9(machine, j, api):
    restock(machine)
    assert chilly_stock(machine) == {'bread': 10, 'cheese': 10, 'vegemite': 10}
    health = api('GET', '/health')
    assert health.status == 200 and health.text
    assert api('GET', '/').text == 'toasting: false'
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(request, j.port, 'GET', '/toastie?i=cheese&i=vegemite', None,
                             None, 300)
        machine.wait_for(lambda: api('GET', '/').text == 'toasting: true', 120, 'toasting: true')
        assert 'jafflr_plate_target_celsius 195.0' in api('GET', '/metrics').text   # medium
        answer = waiter.result(300)
    assert (answer.status, answer.text) == (200, 'done')
    assert answer.headers['deprecation'] and 'rel="successor-version"' in answer.headers['link']
    assert api('GET', '/').text == 'toasting: false'
    assert chilly_stock(machine) == {'bread': 8, 'cheese': 9, 'vegemite': 9}
    done = orders(api)[0]
    assert (done['state'], done['step'], done['progress']) == ('done', 'done', 1.0)
    assert done['ready_at'] == done['finished_at'] and done['failure'] is None
    assert done['stock']['taken'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    # pick-v2 is on by default: one reservation at chillybin for the whole toastie, no picks
    assert done['stock']['mode'] == 'v2'
    r = request(machine['chillybin'].port, 'GET', f'/v2/reservations/{done["stock"]["reservation"]}')
    assert (r.json()['state'], r.json()['items']) == ('taken', done['stock']['taken'])
    events = request(machine['chillybin'].port, 'GET', '/v2/events?limit=500').json()['events']
    assert not [e for e in events if e['kind'] == 'pick']


# -- refusals, before anything is taken -----------------------------------------------------------
V1_REFUSALS = [
    ('i=vegemite', 400, 'a toastie needs cheese'),
    ('', 400, 'a toastie needs at least one ingredient'),
    ('i=cheese&doneness=crispy', 400, "unknown doneness 'crispy'"),
    ('i=cheese&i=pineapple', 400, 'there is no pineapple in the machine'),
    ('i=cheese&i=bread', 400, 'leave out the bread'),
    ('i=cheese&doneness=light&doneness=burnt', 400, 'give doneness once'),
    ('i=cheese&i=cheese&i=cheese&i=cheese&i=cheese&i=cheese&i=cheese', 400, 'at most 6 fillings'),
    ('i=cheese&customer=' + 'x' * 41, 400, 'customer length 41 is out of range'),
    ('i=cheese&customer=%3Cb%3E', 400, "customer '<b>' has characters"),
    ('i=cheese&customer=%E6%9D%8E', 400, "customer '李' has characters"),
    ('i=cheese&customer=Jos%E9', 400, 'customer is not UTF-8 text'),   # Latin-1, not UTF-8
]


@pytest.mark.parametrize('query, code, says', V1_REFUSALS, ids=[r[2][:24] for r in V1_REFUSALS])
def test_http_v1_bad_toastie_is_refused_before_anything_is_taken(machine, api, query, code, says):
    before_stock, before_orders = chilly_stock(machine), len(orders(api))
    answer = api('GET', f'/toastie?{query}')
    assert answer.status == code and says in answer.text, answer
    assert answer.headers['content-type'].startswith('text/plain')
    assert chilly_stock(machine) == before_stock and len(orders(api)) == before_orders


V2_REFUSALS = [
    ({'ingredients': []}, 400, 'ingredients'),
    ({'ingredients': ['vegemite']}, 400, 'ingredients'),
    ({'doneness': 'light'}, 400, 'ingredients'),
    ({'ingredients': ['cheese'], 'doneness': 'crispy'}, 400, 'doneness'),
    ({'ingredients': ['cheese', 'pineapple']}, 400, 'ingredients'),
    ({'ingredients': ['Cheese!']}, 400, 'ingredients[0]'),
    ({'ingredients': ['cheese'], 'colour': 'gold'}, 400, 'colour'),
    ({'ingredients': ['cheese'], 'name': 'x' * 41}, 400, 'name'),
    ({'ingredients': 'cheese'}, 400, 'ingredients'),
    ([], 400, '(body)'),
]


@pytest.mark.parametrize('body, code, field', V2_REFUSALS, ids=[r[2] + str(i) for i, r in
                                                               enumerate(V2_REFUSALS)])
def test_http_v2_bad_toastie_names_the_field_and_takes_nothing(machine, api, body, code, field):
    before = chilly_stock(machine)
    answer = api('POST', '/v2/toasties', body)
    assert answer.status == code, answer
    error = answer.json()['error']
    assert error['field'] == field and error['message'], error
    assert chilly_stock(machine) == before


def test_http_v2_body_problems_are_named(api):
    big = json.dumps({'ingredients': ['cheese'], 'name': 'x' * 20000})
    cases = [
        (big, {'Content-Type': 'application/json'}, 413, 'at most 16384'),
        ('cheese', {'Content-Type': 'text/plain'}, 415, 'send the body as JSON'),
        ('{"ingredients": [', {'Content-Type': 'application/json'}, 400, 'not valid JSON'),
    ]
    for body, headers, code, says in cases:
        answer = api('POST', '/v2/toasties', body, headers)
        assert answer.status == code and says in answer.json()['error']['message'], answer
    answer = api('GET', '/v2/events?limit=9999')
    assert answer.status == 400 and answer.json()['error']['field'] == 'limit'


# -- the request checks -----------------------------------------------------------------------------
REQUEST_CHECKS = [
    ('GET', '/toastie?i=cheese', {'Host': 'evil.example'}, 421, 'does not answer to the name'),
    ('GET', '/v2/status', {'Host': 'jafflr.evil.example:7000'}, 421, 'does not answer'),
    # a LAN page's <img src="http://jafflr.local/toastie?i=cheese"> must not start the heater
    ('GET', '/toastie?i=cheese', {'Sec-Fetch-Site': 'cross-site'}, 403, 'another site'),
    ('GET', '/toastie?i=cheese', {'Referer': 'http://192.0.2.80/menu.html'}, 403, '192.0.2.80'),
    ('POST', '/v2/stop', {'Origin': 'http://evil.example'}, 403, 'evil.example'),
    ('POST', '/v2/toasties', {'Origin': 'http://evil.example', 'Content-Type': 'application/json'},
     403, 'may not change this machine'),
    # over waitress's own 64 KB limit: waitress answers 413 before the request checks
    ('POST', '/v2/toasties', {'Content-Length': '999999', 'Content-Type': 'application/json'},
     413, 'exceeds max_body'),
]


@pytest.mark.parametrize('method, path, headers, code, says', REQUEST_CHECKS,
                         ids=[f'{r[3]}-{i}' for i, r in enumerate(REQUEST_CHECKS)])
def test_http_request_checks_refuse_before_the_handler(machine, j, api, method, path, headers,
                                                      code, says):
    before_stock, before_orders = chilly_stock(machine), len(orders(api))
    body = b'{"ingredients": ["cheese"]}' if method == 'POST' and code != 413 else None
    if code == 413:
        answer = raw_request(j.port, method, path, headers)
    else:
        answer = api(method, path, body, headers)
    assert answer.status == code and says in answer.text, answer
    assert chilly_stock(machine) == before_stock and len(orders(api)) == before_orders
    assert status(api)['fault'] is None, 'a refused stop stops nothing'


def raw_request(port, method, path, headers):
    """Headers only: a Content-Length that promises a body never sent."""
    import socket
    with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
        lines = [f'{method} {path} HTTP/1.1', 'Host: 127.0.0.1'] + \
                [f'{k}: {v}' for k, v in headers.items()] + ['Connection: close', '', '']
        s.sendall('\r\n'.join(lines).encode())
        data = b''
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b'\r\n\r\n')
    status_line, *header_lines = head.decode().split('\r\n')
    from tests.support.client import Answer
    return Answer(int(status_line.split()[1]),
                  [tuple(h.split(': ', 1)) for h in header_lines], body)


def test_http_api_version_header_reaches_v2_on_an_unversioned_path(api):
    answer = api('GET', '/status', headers={'API-Version': '2'})
    assert answer.status == 200 and answer.json()['state']


# -- v2 orders --------------------------------------------------------------------------------------
def test_http_v2_create_replay_conflict_read_cancel(machine, j, api):
    restock(machine)
    assert api('POST', '/v2/queue/pause', headers=admin(j)).json()['paused'] is True
    key = {'Idempotency-Key': 'order-1'}
    body = {'ingredients': ['cheese', 'vegemite'], 'doneness': 'light', 'name': "Kim's"}
    created = api('POST', '/v2/toasties', body, key)
    assert created.status == 202, created
    first = created.json()
    assert created.headers['location'] == f'/v2/toasties/{first["id"]}'
    assert (first['state'], first['queue_position'], first['progress']) == ('queued', 0, 0.0)
    assert first['ready_at'] > time.time() and first['units'] == ['bread', 'cheese', 'vegemite',
                                                                  'bread']
    again = api('POST', '/v2/toasties', body, key)
    assert again.status == 200 and again.json()['id'] == first['id']
    assert again.headers['idempotent-replayed'] == 'true'
    other = api('POST', '/v2/toasties', {**body, 'ingredients': ['cheese']}, key)
    assert other.status == 409 and other.json()['error']['field'] == 'Idempotency-Key'
    assert api('POST', '/v2/toasties', body, {'Idempotency-Key': 'k' * 101}).status == 400
    second = api('POST', '/v2/toasties', {'ingredients': ['cheese']}).json()
    assert second['queue_position'] == 1
    assert api('GET', created.headers['location']).json()['id'] == first['id']
    # Only whoever ordered it (the cancel_secret of the order's answer) or an admin cancels.
    assert first['cancel_secret'] == again.json()['cancel_secret'] != second['cancel_secret']
    assert 'cancel_secret' not in api('GET', created.headers['location']).json()
    for headers in ({}, {'Order-Secret': first['cancel_secret']}, {'Order-Secret': 'guess'}):
        refused = api('POST', f'/v2/toasties/{second["id"]}/cancel', headers=headers)
        assert refused.status == 403 and refused.json()['error']['code'] == 'order-secret-required'
        assert refused.json()['error']['field'] == 'Order-Secret'
    secret = {'Order-Secret': second['cancel_secret']}
    cancelled = api('POST', f'/v2/toasties/{second["id"]}/cancel', headers=secret)
    assert cancelled.status == 200 and cancelled.json()['state'] == 'cancelled'
    assert api('POST', f'/v2/toasties/{second["id"]}/cancel', headers=secret).status == 200, \
        'cancel is idempotent'
    assert api('POST', f'/v2/toasties/{second["id"]}/cancel', headers=admin(j)).status == 200
    read = api('GET', f'/v2/toasties/{second["id"]}').json()
    assert read['failure'] == {'reason': 'cancelled', 'kind': 'cancelled',
                               'detail': 'cancelled while queued'}
    assert api('POST', '/v2/toasties/t999/cancel').status == 404
    assert api('GET', '/v2/toasties/t999').status == 404

    assert api('POST', '/v2/queue/resume', headers=admin(j)).json()['paused'] is False
    making = wait_order(machine, api, first['id'], lambda o: o['state'] != 'queued')
    late = api('POST', f'/v2/toasties/{first["id"]}/cancel',
               headers={'Order-Secret': first['cancel_secret']})
    assert late.status == 409 and 'only a queued toastie can be cancelled' in late.text
    toasting = wait_order(machine, api, first['id'], lambda o: o['step'] == 'toasting')
    assert 0.3 <= toasting['progress'] < 0.92 and toasting['time_left_s'] > 0
    assert toasting['stock']['reserved'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    # stop it half way: failed with the reason, its stock accounted for
    assert api('POST', '/v2/stop', {'by': 'the test'}).status == 200
    failed = wait_order(machine, api, first['id'], lambda o: o['state'] == 'failed')
    assert failed['failure']['reason'] == 'stopped'
    assert 'in the press when the machine stopped' in failed['failure']['detail']
    assert failed['stock']['taken'] == failed['stock']['reserved']
    reset(api, j)


def test_http_v2_queue_full_is_503_with_retry_after(machine, j, api):
    restock(machine, bread=24, cheese=12)
    api('POST', '/v2/queue/pause', headers=admin(j))
    made = [api('POST', '/v2/toasties', {'ingredients': ['cheese'], 'doneness': 'light'})
            for _ in range(10)]
    assert [a.status for a in made] == [202] * 10
    full = api('POST', '/v2/toasties', {'ingredients': ['cheese'], 'doneness': 'light'})
    assert full.status == 503 and full.json()['error']['code'] == 'queue-full'
    assert int(full.headers['retry-after']) == 71           # one light toastie's cycle
    v1 = api('GET', '/toastie?i=cheese')
    assert v1.status == 503 and 'the queue is full' in v1.text and v1.headers['retry-after']
    for answer in made:
        assert api('POST', f'/v2/toasties/{answer.json()["id"]}/cancel',
                   headers={'Order-Secret': answer.json()['cancel_secret']}).status == 200
    assert status(api)['queue']['length'] == 0
    api('POST', '/v2/queue/resume', headers=admin(j))


def test_http_a_pause_with_expires_s_ends_by_itself_and_is_exported(machine, j, api):
    assert api('POST', '/v2/queue/pause?expires_s=0', headers=admin(j)).status == 400
    assert api('POST', '/v2/queue/pause?expires_s=86401', headers=admin(j)).status == 400
    # expires_s is in jafflr's clock seconds (sped up here): long enough to read the
    # metrics while paused on a loaded machine, short enough to wait for.
    paused = api('POST', '/v2/queue/pause?expires_s=40', headers=admin(j)).json()
    assert paused['paused'] is True and paused['pause_expires'] > time.time()
    text = api('GET', '/metrics').text
    assert 'jafflr_paused 1.0' in text
    expires = float(re.search(r'^jafflr_pause_expires_timestamp (\S+)$', text, re.M).group(1))
    assert expires == pytest.approx(paused['pause_expires'])
    machine.wait_for(lambda: not status(api)['paused'], 60, 'the pause to expire')
    text = api('GET', '/metrics').text
    assert 'jafflr_paused 0.0' in text, re.findall(r'^jafflr_pause.*$', text, re.M)
    assert not re.search(r'^jafflr_pause_expires_timestamp ', text, re.M), text
    events = api('GET', '/v2/events?kind=queue&limit=5').json()['events']
    assert any('the pause expired' in e.get('detail', '') for e in events), events


# -- stop, reset, pause: who may --------------------------------------------------------------------
def test_http_a_queued_v1_customer_is_told_at_once_when_the_machine_stops(machine, j, api):
    """The v1 customer can only wait on the connection: when the machine stops before their
    toastie started, they hear so at once (not after an hour) and it is not made later."""
    restock(machine)
    api('POST', '/v2/queue/pause', headers=admin(j))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(request, j.port, 'GET', '/toastie?i=cheese', None, None, 60)
        machine.wait_for(lambda: status(api)['queue']['length'] == 1, 20, 'queued')
        api('POST', '/v2/stop', {'by': 'the queue test'})
        started = time.monotonic()
        answer = waiter.result(60)
    assert time.monotonic() - started < 5
    assert answer.status == 503 and 'was not made: stopped: the machine stopped before it ' \
        'was started, and nothing was taken' in answer.text, answer
    assert status(api)['queue']['length'] == 0
    reset(api, j)
    api('POST', '/v2/queue/resume', headers=admin(j))


def test_http_stop_by_anyone_reset_and_pause_need_the_admin_token(machine, j, api):
    stopped = api('POST', '/v2/stop')
    assert stopped.status == 200 and stopped.json()['state'] == 'faulted'
    assert stopped.json()['fault']['reason'] == 'stopped'
    assert 'stop pressed (HTTP from 127.0.0.1)' == stopped.json()['fault']['detail']
    assert stopped.json()['fault']['help'].startswith('Someone pressed stop')
    refused = api('GET', '/toastie?i=cheese')
    assert refused.status == 503
    assert 'the machine is stopped (stopped: stop pressed' in refused.text
    assert api('POST', '/v2/toasties', {'ingredients': ['cheese']}).status == 503
    assert 'jafflr_fault_latched{reason="stopped"} 1.0' in api('GET', '/metrics').text
    assert 'jafflr_fault_needs_person 0.0' in api('GET', '/metrics').text
    assert api('GET', '/').text == ('toasting: false\nfault: stopped: stop pressed (HTTP from '
                                    '127.0.0.1)\nto clear: fix the cause, then reset from the '
                                    'panel (admin token)')
    reset_info = status(api)['reset']
    assert reset_info['cleared_by'] == 'panel' and reset_info['allowed'], reset_info
    assert stopped.json()['fault']['by'] == 'stop (HTTP from 127.0.0.1)'
    for headers, code in [({}, 'admin-token-required'),
                          ({'Authorization': 'Bearer wrong-token-wrong-token'}, 'admin-token-wrong'),
                          ({'Authorization': 'Basic abc'}, 'admin-token-required')]:
        for path in ('/v2/reset', '/v2/queue/pause', '/v2/queue/resume'):
            answer = api('POST', path, headers=headers)
            assert answer.status == 401 and answer.json()['error']['code'] == code, answer
            assert answer.headers['www-authenticate'].startswith('Jafflr-HMAC')
    assert j.admin_token() not in j.log(500), 'the token is never logged'
    assert status(api)['fault']['reason'] == 'stopped'
    reset(api, j)
    assert status(api)['state'] in ('available', 'preheating')


def test_http_the_audit_trail_has_the_connections_address_not_x_forwarded_for(machine, j, api):
    stopped = api('POST', '/v2/stop', {'by': 'Kim at the counter'},
                  {'X-Forwarded-For': '10.9.9.9'})
    assert stopped.json()['fault']['detail'] == 'stop pressed (Kim at the counter, from 127.0.0.1)'
    answer = api('POST', '/v2/reset', headers={**admin(j), 'X-Forwarded-For': '10.9.9.9'})
    assert answer.status == 200
    events = api('GET', '/v2/events?kind=reset&limit=1').json()['events']
    assert events[0]['detail'] == 'reset by admin from 127.0.0.1', events


def test_http_no_cors_preflight_is_ever_granted(j):
    """A page on another site can send X-Jafflr-Client only after a CORS preflight: it must
    never be granted, or the browser rule would be worth nothing."""
    for path in ('/v2/stop', '/v2/toasties', '/toastie'):
        answer = request(j.port, 'OPTIONS', path, headers={
            'Origin': 'http://evil.example', 'Access-Control-Request-Method': 'POST',
            'Access-Control-Request-Headers': 'x-jafflr-client, content-type'})
        assert answer.status >= 400, answer
        assert not [h for h in answer.headers if h.startswith('access-control-')], answer.headers


# -- flags and their rollout --------------------------------------------------------------------------
def test_http_flags_read_and_set_need_the_admin_token(j, api):
    flags = api('GET', '/v2/flags').json()['flags']
    assert [f['name'] for f in flags] == ['pick-v2'] and flags[0]['enabled'] is True
    assert api('PUT', '/v2/flags/pick-v2', {'enabled': False}).status == 401
    assert api('PUT', '/v2/flags/pick-v3', {'enabled': False}, admin(j)).status == 404
    bad = api('PUT', '/v2/flags/pick-v2', {'percent': 101}, admin(j))
    assert bad.status == 400 and bad.json()['error']['field'] == 'percent'
    assert api('PUT', '/v2/flags/pick-v2', {}, admin(j)).status == 400
    assert api('GET', '/v2/flags').json()['flags'][0]['enabled'] is True


def mode_of_v1_toastie(machine, j, api, customer):
    """Start a v1 /toastie for `customer`, see how its stock was taken, stop the machine
    once the toastie is assembled (so no v1 pick is left open at chillybin), and reset:
    the waiting customer is told why. Returns the stock mode."""
    known = {o['id'] for o in orders(api)}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(request, j.port, 'GET', f'/toastie?i=cheese&customer={customer}',
                             None, None, 120)

        def assembled():
            new = [o for o in orders(api) if o['id'] not in known]
            return new and new[0]['state'] in ('assembled', 'toasting') and new[0]
        order = machine.wait_for(assembled, 60, f'the toastie for {customer} assembled')
        api('POST', '/v2/stop', {'by': 'the flag test'})
        answer = waiter.result(60)
    assert answer.status == 503 and f'toastie {order["id"]} was not made: stopped' in answer.text
    reset(api, j)
    return order['stock']['mode']


def test_http_flag_rollout_to_a_named_customer_on_v1_toastie(machine, j, api):
    restock(machine)
    rolled = api('PUT', '/v2/flags/pick-v2', {'enabled': False, 'customers': ['kim', 'José']},
                 admin(j))
    assert rolled.status == 200 and rolled.json()['customers'] == ['kim', 'José']
    try:
        assert mode_of_v1_toastie(machine, j, api, 'kim') == 'v2'
        assert mode_of_v1_toastie(machine, j, api, 'lee') == 'v1'
        # The query is percent-encoded UTF-8: the name is José's, as the flag's list spells it.
        assert mode_of_v1_toastie(machine, j, api, 'Jos%C3%A9') == 'v2'
        events = api('GET', '/v2/events?kind=flag').json()['events']
        assert "pick-v2 set to {'enabled': False, 'customers': ['kim', 'José']}" \
            in events[0]['detail']
    finally:
        api('PUT', '/v2/flags/pick-v2', {'enabled': True, 'customers': []}, admin(j))


# -- concurrent customers --------------------------------------------------------------------------------
def test_http_concurrent_orders_all_end_done_or_explained_and_stock_adds_up(machine, j, api, doc):
    """Five v2 customers and two v1 customers at once, with bread for two toasties: two
    are made, five are refused before anything is taken, and the stock adds up."""
    restock(machine, bread=4, cheese=10, vegemite=10)
    stock = {b['name']: b['available'] for b in api('GET', '/v2/stock').json()['bays']}
    assert stock['bread'] == 4, stock
    calls = [('POST', '/v2/toasties', {'ingredients': ['cheese', 'vegemite'], 'doneness': 'light',
                                       'customer': f'c{i}'}) for i in range(5)]
    calls += [('GET', '/toastie?i=cheese&doneness=light', None)] * 2
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(request, j.port, m, p, b, None, 400) for m, p, b in calls]
        answers = [f.result(400) for f in futures]
    for (method, path, _), answer in zip(calls, answers):
        SEEN.append((method, path, answer.status))
        check_documented(doc, method, path, answer)
    made = [a for a in answers if a.status in (200, 202)]
    refused = [a for a in answers if a.status not in (200, 202)]
    assert len(made) == 2, answers
    for answer in refused:
        assert answer.status == 409 and 'not enough bread' in answer.text, answer
    v2_ids = [a.json()['id'] for a in made if a.status == 202]
    for oid in v2_ids:
        done = wait_order(machine, api, oid, lambda o: o['finished_at'], 300)
        assert done['state'] == 'done', done
    assert all(a.text == 'done' for a in made if a.status == 200), 'the v1 ones waited for it'
    after = {b['name']: b['available'] for b in api('GET', '/v2/stock').json()['bays']}
    assert after['bread'] == 0
    assert after['cheese'] == stock['cheese'] - 2
    assert after['vegemite'] == stock['vegemite'] - len(v2_ids)


# -- chillybin trouble ------------------------------------------------------------------------------------
def test_http_chillybin_unreachable_then_food_safety_lock(machine, j, api):
    chilly = machine['chillybin']
    before = len(orders(api))
    machine.stop(chilly)
    try:
        answer = api('GET', '/toastie?i=cheese')
        assert answer.status == 503 and 'chillybin' in answer.text and 'cannot be reached' in \
            answer.text, answer
        v2 = api('POST', '/v2/toasties', {'ingredients': ['cheese']})
        assert v2.status == 503 and v2.json()['error']['code'] == 'unavailable'
        assert api('GET', '/v2/stock').status == 503
        ready = api('GET', '/v2/ready').json()
        assert ready['ready'] and not ready['checks']['chillybin']['ok'], \
            'jafflr itself is ready; chillybin is reported'
        # chillybin was not watching the bin for five hours: every bay must be thrown out
        db_path = os.path.join(chilly.state_dir, 'chillybin.json')
        with open(db_path) as f:
            db = json.load(f)
        meta = next(iter(db['meta'].values()))
        meta['last_seen_wall'] = machine.link.clock.time() - 5 * 3600
        with open(db_path, 'w') as f:
            json.dump(db, f)
    finally:
        machine.start('chillybin', state_dir=chilly.state_dir, port=chilly.port)
    locked = api('GET', '/toastie?i=cheese')
    assert locked.status == 423 and 'must be thrown out and restocked' in locked.text, locked
    assert api('POST', '/v2/toasties', {'ingredients': ['cheese']}).status == 423
    assert len(orders(api)) == before, 'nothing was queued or taken'
    restock(machine)
    assert api('GET', '/v2/stock').status == 200


# -- faults over HTTP ---------------------------------------------------------------------------------------
def test_http_unreadable_load_cell_refuses_before_anything_is_taken(machine, api):
    restock(machine)
    before = chilly_stock(machine)
    machine.link.set_fault('loadcell-nack:cheese', True)
    try:
        machine.wait_for(lambda: not api('GET', '/v2/stock').json()['bays'][1]['sensor']['ok'],
                         20, 'chillybin noticing the load cell')
        answer = api('GET', '/toastie?i=cheese')
        assert answer.status == 503, answer
        assert "the cheese bay's load cell cannot be read" in answer.text
        assert status(api)['fault'] is None and status(api)['queue']['length'] == 0
    finally:
        machine.link.set_fault('loadcell-nack:cheese', False)
    machine.wait_for(lambda: api('GET', '/v2/stock').json()['bays'][1]['sensor']['ok'], 20,
                     'the load cell read again')
    assert chilly_stock(machine) == before, 'nothing was taken'



def test_http_dispenser_jam_fails_the_toastie_says_why_and_gives_stock_back(machine, j, api):
    restock(machine)
    before = chilly_stock(machine)
    machine.link.set_fault('dispenser-jam:vegemite', True)
    try:
        answer = api('GET', '/toastie?i=cheese&i=vegemite', timeout=120)
    finally:
        machine.link.set_fault('dispenser-jam:vegemite', False)
    assert answer.status == 503 and 'was not made: dispenser-jam: no vegemite reached the tray' \
        in answer.text, answer
    s = status(api)
    assert s['state'] == 'faulted' and s['fault']['reason'] == 'dispenser-jam'
    assert 'clear the jam' in s['fault']['help']
    assert 'jafflr_fault_latched{reason="dispenser-jam"} 1.0' in api('GET', '/metrics').text
    world = machine.world()
    assert not world['relay_closed'] and not world['heater_pin']
    assert not any(b['dispenser_on'] for b in world['bays'])
    order = orders(api)[0]
    assert order['stock']['returned'] == {'bread': 1, 'cheese': 0, 'vegemite': 1}
    machine.wait_for(lambda: chilly_stock(machine) == {**before, 'bread': before['bread'] - 1,
                                                       'cheese': before['cheese'] - 1}, 10,
                     'chillybin counting one bread and one cheese gone, the rest back')
    reset(api, j)


def test_http_lid_opened_mid_toast_stops_it_and_reset_waits_for_the_lid(machine, j, api):
    restock(machine)
    oid = api('POST', '/v2/toasties', {'ingredients': ['cheese'], 'doneness': 'light'}).json()['id']
    wait_order(machine, api, oid, lambda o: o['step'] == 'toasting')
    machine.link.set_fault('lid-open', True)
    try:
        failed = wait_order(machine, api, oid, lambda o: o['state'] == 'failed', 20)
        assert failed['failure']['reason'] == 'lid-open'
        world = machine.world()
        assert (world['relay_closed'], world['heater_pin'], world['press_motor']) == \
            (False, False, 'off')
        api('POST', '/v2/reset', headers=admin(j))
        machine.wait_for(lambda: status(api)['fault'], 10, 'the open lid latching again')
        assert status(api)['fault']['reason'] == 'lid-open'
    finally:
        machine.link.set_fault('lid-open', False)
    reset(api, j)


# -- what the service tells ----------------------------------------------------------------------------------
def test_http_status_events_ready_and_metrics(api):
    s = status(api)
    assert s['plate']['temp_c'] > 100 and s['queue']['max'] == 10 and s['version']
    events = api('GET', '/v2/events?limit=5&kind=fault').json()['events']
    assert 0 < len(events) <= 5 and {e['kind'] for e in events} == {'fault'}
    assert api('GET', '/v2/ready').status == 200
    assert api('GET', '/v2/').json()['links']['openapi'] == '/v2/openapi.json'
    metrics = api('GET', '/metrics')
    assert metrics.status == 200 and metrics.headers['content-type'].startswith('text/plain')
    text = metrics.text
    for pattern in [r'jafflr_fault_latched\{reason="[a-z-]*"\} [01]\.0',
                    r'jafflr_plate_temperature_celsius \d',
                    r'# TYPE jafflr_plate_target_celsius gauge',   # no sample while no target
                    r'jafflr_build_info\{version="[^"]+"\} 1\.0',
                    r'process_start_time_seconds \d', r'jafflr_paused [01]\.0',
                    r'jafflr_orders_total\{outcome="done"\} [1-9]',
                    r'jafflr_orders_total\{outcome="dispenser-jam"\} 1\.0',
                    r'jafflr_queue_length 0\.0',
                    r'jafflr_control_loop_recent_lateness_seconds\{quantile="0.99"\}',
                    r'jafflr_control_loop_lateness_seconds_bucket\{le="0.01"\}',
                    r'jafflr_http_requests_total\{method="GET",route="/toastie",status="400"\}']:
        assert re.search(pattern, text), f'{pattern} not in\n{text}'



def test_http_never_answered_500():
    assert SEEN and not [s for s in SEEN if s[2] >= 500 and s[2] != 503], SEEN
