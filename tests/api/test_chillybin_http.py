"""chillybin over real HTTP: the simulator and `python -m api.chillybin` as processes on
an ephemeral loopback port. Every answer that the OpenAPI document covers is checked
against it."""
import json
import os
import re

import pytest

from api.chillybin.app import build_app

from .chillyproc import Chillybin, simulator
from .openapi_check import check_answer, problems_with_document

VERSION = '9.8.7-test'
JSON = {'Content-Type': 'application/json'}


@pytest.fixture(scope='module')
def machine(tmp_path_factory):
    made = simulator(str(tmp_path_factory.mktemp('machine')), speed=20)
    yield made
    assert made.close().get('sim') == 0, made.logs()


@pytest.fixture(scope='module')
def chilly(machine, tmp_path_factory):
    made = Chillybin(machine, str(tmp_path_factory.mktemp('state')), JAFFLR_RELEASE=VERSION)
    yield made
    assert made.close() == 0, made.read_log()
    assert 'Traceback' not in made.read_log()


@pytest.fixture(scope='module')
def openapi(chilly):
    status, doc = chilly.json('GET', '/v2/openapi.json')
    assert status == 200
    return doc


def call(chilly, openapi, method, path, body=None, headers=None):
    status, head, data = chilly.request(method, path, body, headers)
    documented = path if not (headers or {}).get('API-Version') == '2' or path.startswith('/v2') \
        else '/v2' + path
    if head.get('content-type', '').startswith('application/json') or documented.startswith('/v2'):
        check_answer(openapi, method, documented, status, head.get('content-type', ''), data)
    return status, head, data


# -- the document ------------------------------------------------------------------------
def test_http_openapi_document_is_well_formed(openapi):
    assert problems_with_document(openapi) == []
    assert openapi['info']['version'] == VERSION


def test_http_openapi_documents_every_v2_route():
    app = build_app(None, v1_answer=None, clock=None, auth=None, metrics=None, readiness=None, version='x',
                    simulated=True)
    from api.chillybin.openapi import build_document
    paths = build_document('x')['paths']
    for route in app.routes:
        if route.rule.startswith('/v2'):
            template = re.sub(r'<([^>]+)>', r'{\1}', route.rule)
            assert route.method.lower() in paths.get(template, {}), f'{route.method} {template}'


# -- the table ---------------------------------------------------------------------------
HOST_EVIL = {'Host': 'evil.example'}
CROSS = {'Sec-Fetch-Site': 'cross-site'}
ORIGIN_EVIL = {'Origin': 'http://evil.example'}
DEEP = ('{"items":' + '[' * 5000 + ']' * 5000 + '}').encode()

# (id, method, path, headers, body, status, text in the answer, JSON error field)
TABLE = [
    # v1, as the original answered
    ('v1-stock', 'GET', '/', None, None, 200, '"cheese": ', None),
    ('v1-health', 'GET', '/health', None, None, 200, VERSION, None),
    ('v1-pick-quantity-0', 'GET', '/pick?name=cheese&quantity=0', None, None, 400,
     'quantity must be from 1 to 10, not 0', None),
    ('v1-pick-quantity-11', 'GET', '/pick?name=cheese&quantity=11', None, None, 400,
     'quantity must be from 1 to 10, not 11', None),
    ('v1-pick-quantity-word', 'GET', '/pick?name=cheese&quantity=two', None, None, 400,
     "quantity must be a whole number from 1 to 10, not 'two'", None),
    ('v1-pick-quantity-underscore', 'GET', '/pick?name=cheese&quantity=1_0', None, None, 400,
     'whole number', None),
    ('v1-pick-quantity-twice', 'GET', '/pick?name=cheese&quantity=1&quantity=2', None, None, 400,
     'give quantity once, not 2 times', None),
    ('v1-pick-no-quantity', 'GET', '/pick?name=cheese', None, None, 400, 'quantity is required', None),
    ('v1-pick-no-name', 'GET', '/pick?quantity=1', None, None, 400, 'name is required', None),
    ('v1-pick-unknown', 'GET', '/pick?name=caviar&quantity=1', None, None, 404,
     "there is no 'caviar' in the bin", None),
    ('v1-pick-too-many', 'GET', '/pick?name=cheese&quantity=10&x=1', None, None, 200, 'ok', None),
    ('v1-pick-none-left', 'GET', '/pick?name=cheese&quantity=1', None, None, 409,
     'not enough cheese: 0 available, 1 asked', None),
    ('v1-nothing-there', 'GET', '/nothing', None, None, 404, 'there is nothing at /nothing', None),
    ('v1-wrong-method', 'DELETE', '/', None, None, 405, 'DELETE is not allowed on /', None),
    # the edge
    ('host-foreign-421', 'GET', '/', HOST_EVIL, None, 421, "does not answer to the name 'evil.example'", None),
    ('host-foreign-v2-421', 'GET', '/v2/stock', HOST_EVIL, None, 421, 'evil.example', None),
    ('host-localhost-ok', 'GET', '/health', {'Host': 'localhost'}, None, 200, VERSION, None),
    ('pick-cross-site-403', 'GET', '/pick?name=bread&quantity=1', CROSS, None, 403,
     'another site asked your browser', None),
    ('restock-foreign-origin-403', 'GET', '/restock', ORIGIN_EVIL, None, 403,
     'a page from evil.example may not change this machine', None),
    ('restock-null-origin-403', 'POST', '/restock', {'Origin': 'null'}, None, 403, 'may not change', None),
    ('pick-foreign-referer-403', 'POST', '/pick?name=bread&quantity=1',
     {'Referer': 'http://evil.example/page'}, None, 403, 'evil.example', None),
    ('reserve-cross-site-403', 'POST', '/v2/reservations', {**JSON, **CROSS},
     b'{"items":{"bread":1}}', 403, 'cross-site', None),
    ('reserve-foreign-origin-403', 'POST', '/v2/reservations', {**JSON, **ORIGIN_EVIL},
     b'{"items":{"bread":1}}', 403, 'evil.example', None),
    ('read-cross-site-is-fine', 'GET', '/v2/stock', CROSS, None, 200, '"bays"', None),
    ('api-version-2-header', 'GET', '/stock', {'API-Version': '2'}, None, 200, '"bays"', None),
    ('api-version-2-root', 'GET', '/', {'API-Version': '2'}, None, 200, '"links"', None),
    ('api-version-1-header', 'GET', '/', {'API-Version': '1'}, None, 200, '"bread": ', None),
    ('api-version-unknown', 'GET', '/stock', {'API-Version': '3'}, None, 400,
     "API-Version must be one of 1, 2, not '3'", None),
    # v2 reads
    ('v2-index', 'GET', '/v2/', None, None, 200, '"openapi": "/v2/openapi.json"', None),
    ('v2-stock', 'GET', '/v2/stock', None, None, 200, '"food_safety"', None),
    ('v2-stock-one', 'GET', '/v2/stock/bread', None, None, 200, '"available"', None),
    ('v2-stock-unknown', 'GET', '/v2/stock/caviar', None, None, 404, "no 'caviar'", 'name'),
    ('v2-bin', 'GET', '/v2/bin', None, None, 200, '"chiller_on"', None),
    ('v2-alerts', 'GET', '/v2/alerts', None, None, 200, '"alerts"', None),
    ('v2-events', 'GET', '/v2/events?limit=5', None, None, 200, '"events"', None),
    ('v2-events-limit-0', 'GET', '/v2/events?limit=0', None, None, 400, 'limit must be from 1 to 500', 'limit'),
    ('v2-events-limit-word', 'GET', '/v2/events?limit=all', None, None, 400, 'whole number', 'limit'),
    ('v2-ready', 'GET', '/v2/ready', None, None, 200, '"ready": true', None),
    ('v2-reservation-unknown', 'GET', '/v2/reservations/r999', None, None, 404, "no reservation 'r999'", 'id'),
    ('v2-confirm-unknown', 'POST', '/v2/reservations/r999/confirm', None, None, 404, 'r999', 'id'),
    ('v2-cancel-unknown', 'POST', '/v2/reservations/x/cancel', None, None, 404, "'x'", 'id'),
    ('v2-reservations-get-405', 'GET', '/v2/reservations', None, None, 405, 'use POST', None),
    ('v2-nothing-there', 'GET', '/v2/nothing', None, None, 404, 'there is nothing at /v2/nothing', None),
    # v2 bodies
    ('reserve-malformed', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":1,', 400,
     'the body is not valid JSON', '(body)'),
    ('reserve-not-utf8', 'POST', '/v2/reservations', JSON, b'\xff\xfe\xfd', 400, 'not valid JSON', '(body)'),
    ('reserve-array', 'POST', '/v2/reservations', JSON, b'[]', 400, '(body) must be object, not an array', '(body)'),
    ('reserve-wrong-type', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":"2"}}', 400,
     'items.bread must be integer, not a string', 'items.bread'),
    ('reserve-float', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":1.5}}', 400,
     'must be integer', 'items.bread'),
    ('reserve-bool', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":true}}', 400,
     'not a boolean', 'items.bread'),
    ('reserve-nan', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":NaN}}', 400,
     'NaN is not a number JSON allows', '(body)'),
    ('reserve-deep', 'POST', '/v2/reservations', JSON, DEEP, 400, 'nested too deeply', '(body)'),
    ('reserve-unknown-field', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":1},"colour":"red"}',
     400, 'colour is not a known field', 'colour'),
    ('reserve-no-items', 'POST', '/v2/reservations', JSON, b'{}', 400, 'items is required', 'items'),
    ('reserve-empty-items', 'POST', '/v2/reservations', JSON, b'{"items":{}}', 400, 'items has 0 entries', 'items'),
    ('reserve-bad-name', 'POST', '/v2/reservations', JSON, b'{"items":{"Bread!":1}}', 400,
     'not allowed', 'items.Bread!'),
    ('reserve-unknown-bay', 'POST', '/v2/reservations', JSON, b'{"items":{"caviar":1}}', 404,
     "there is no 'caviar' in the bin", 'name'),
    ('reserve-quantity-0', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":0}}', 400,
     'items.bread 0 is out of range', 'items.bread'),
    ('reserve-quantity-11', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":11}}', 400,
     'out of range', 'items.bread'),
    ('reserve-ttl-too-short', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":1},"ttl_s":5}',
     400, 'ttl_s 5 is out of range', 'ttl_s'),
    ('reserve-not-enough', 'POST', '/v2/reservations', JSON, b'{"items":{"bread":2,"cheese":1}}',
     409, 'not enough cheese: 0 available, 1 asked', 'cheese'),
    ('reserve-oversized', 'POST', '/v2/reservations', JSON, b'{"items":{}}' + b' ' * 20000, 413,
     'at most 16384 are accepted', None),
    ('reserve-wrong-content-type', 'POST', '/v2/reservations', {'Content-Type': 'text/plain'},
     b'{"items":{"bread":1}}', 415, 'Content-Type: application/json', None),
    ('reserve-form', 'POST', '/v2/reservations', {'Content-Type': 'application/x-www-form-urlencoded'},
     b'items=bread', 415, 'not application/x-www-form-urlencoded', None),
    ('reserve-key-too-long', 'POST', '/v2/reservations', {**JSON, 'Idempotency-Key': 'k' * 101},
     b'{"items":{"bread":1}}', 400, 'Idempotency-Key must be 1 to 100 characters', 'Idempotency-Key'),
    # admin
    ('restock-no-token', 'POST', '/v2/restock', JSON, b'{"items":{"cheese":10}}', 401,
     'this needs the admin token', None),
    ('restock-wrong-token', 'POST', '/v2/restock', {**JSON, 'Authorization': 'Bearer nope'},
     b'{"items":{"cheese":10}}', 401, 'the admin token is wrong', None),
    ('restock-basic-auth', 'POST', '/v2/restock', {**JSON, 'Authorization': 'Basic YTpi'},
     b'{"items":{"cheese":10}}', 401, 'this needs the admin token', None),
    ('bay-no-token', 'PUT', '/v2/bays/ham', JSON, b'{"slot":3,"unit_g":15}', 401, 'admin token', None),
    ('calibrate-no-token', 'POST', '/v2/bays/cheese/calibrate', JSON, b'{"step":"tare"}', 401,
     'admin token', None),
]
ADMIN_TABLE = [
    ('food-check-not-held', 'POST', '/v2/bays/bread/food-check', {'confirmed': 'probed at 3.1 C, fine'},
     409, 'bread is not held for a check', 'name'),
    ('food-check-too-short', 'POST', '/v2/bays/bread/food-check', {'confirmed': 'ok'}, 400,
     'confirmed', 'confirmed'),
    ('food-check-blank', 'POST', '/v2/bays/bread/food-check', {'confirmed': ' ' * 12}, 400,
     'at least 10 characters', 'confirmed'),
    ('food-check-unknown', 'POST', '/v2/bays/caviar/food-check', {'confirmed': 'probed at 3 C, fine'},
     404, "no 'caviar'", 'name'),
    ('restock-bad-units', 'POST', '/v2/restock', {'items': {'cheese': 51}}, 400, 'out of range', 'items.cheese'),
    ('restock-unknown', 'POST', '/v2/restock', {'items': {'caviar': 5}}, 404, "no 'caviar'", 'name'),
    ('restock-replaced-word', 'POST', '/v2/restock', {'items': {'cheese': 5}, 'replaced': 'yes'}, 400,
     'replaced must be boolean', 'replaced'),
    ('bay-bad-name', 'PUT', '/v2/bays/Ham', {'slot': 3, 'unit_g': 15}, 400, "'Ham' is not an ingredient name", 'name'),
    ('bay-slot-out-of-schema', 'PUT', '/v2/bays/ham', {'slot': 9, 'unit_g': 15}, 400, 'slot 9 is out of range', 'slot'),
    ('bay-slot-no-cell', 'PUT', '/v2/bays/ham', {'slot': 7, 'unit_g': 15}, 400,
     'there is no bay slot 7 with a load cell', 'slot'),
    ('bay-slot-taken', 'PUT', '/v2/bays/ham', {'slot': 1, 'unit_g': 15}, 400, 'slot 1 already holds cheese', 'slot'),
    ('bay-unit-zero', 'PUT', '/v2/bays/ham', {'slot': 3, 'unit_g': 0}, 400, 'unit_g 0 is out of range', 'unit_g'),
    ('bay-missing-unit', 'PUT', '/v2/bays/ham', {'slot': 3}, 400, 'unit_g is required', 'unit_g'),
    ('calibrate-bad-step', 'POST', '/v2/bays/cheese/calibrate', {'step': 'spin'}, 400,
     "step 'spin' is not one of the allowed values", 'step'),
    ('calibrate-span-without-weight', 'POST', '/v2/bays/cheese/calibrate', {'step': 'span'}, 400,
     'span calibration needs known_g', 'known_g'),
    ('calibrate-unknown-bay', 'POST', '/v2/bays/caviar/calibrate', {'step': 'tare'}, 404, "no 'caviar'", 'name'),
]


@pytest.fixture(scope='module')
def cheese_gone(chilly):
    """The table runs with cheese all reserved by v1 picks: 10 taken, none left."""
    assert chilly.request('GET', '/restock')[2] == b'ok'
    return chilly


@pytest.mark.parametrize('row', TABLE, ids=[r[0] for r in TABLE])
def test_http_table(cheese_gone, openapi, row):
    _, method, path, headers, body, want_status, want_text, want_field = row
    status, head, data = call(cheese_gone, openapi, method, path, body, headers)
    text = data.decode(errors='replace')
    assert status == want_status, text
    assert want_text in text
    assert 'Traceback' not in text and 'File "' not in text
    if status >= 400:
        if path.startswith('/v2') or (headers or {}).get('API-Version') == '2':
            error = json.loads(data)['error']
            assert error['status'] == status and error['message']
            if want_field is not None:
                assert error['field'] == want_field
        else:
            assert head['content-type'].startswith('text/plain') and text.endswith('\n')


@pytest.mark.parametrize('row', ADMIN_TABLE, ids=[r[0] for r in ADMIN_TABLE])
def test_http_admin_table(cheese_gone, openapi, row):
    _, method, path, body, want_status, want_text, want_field = row
    status, _, data = call(cheese_gone, openapi, method, path, json.dumps(body).encode(),
                           cheese_gone.admin(JSON))
    assert status == want_status, data
    error = json.loads(data)['error']
    assert want_text in error['message'] and error.get('field') == want_field


# -- v1 compatibility ----------------------------------------------------------------------
def test_http_v1_happy_path_of_the_original_project(chilly):
    assert chilly.request('GET', '/restock')[:1] == (200,)
    status, head, body = chilly.request('GET', '/')
    assert status == 200 and head['content-type'] == 'application/json'
    assert json.loads(body)['cheese'] == 10
    status, head, body = chilly.request('GET', '/pick?name=cheese&quantity=1')
    assert (status, body) == (200, b'ok')
    assert json.loads(chilly.request('GET', '/')[2])['cheese'] == 9


def test_http_v1_answers_are_deprecated_with_a_link_to_v2(chilly):
    for path, successor in (('/', '/v2/stock'), ('/health', '/v2/ready'),
                            ('/pick?name=bread&quantity=1', '/v2/reservations')):
        _, head, _ = chilly.request('GET', path)
        assert head['deprecation'].startswith('@')
        assert head['link'] == f'<{successor}>; rel="successor-version"'
    _, head, _ = chilly.request('GET', '/v2/stock')
    assert 'deprecation' not in head
    _, head, _ = chilly.request('GET', '/stock', headers={'API-Version': '2'})
    assert 'deprecation' not in head


def test_http_v1_health_is_the_version_and_cheap(chilly):
    status, head, body = chilly.request('GET', '/health')
    assert (status, body) == (200, VERSION.encode())


# -- v2 flows -------------------------------------------------------------------------------
def test_http_reservation_flow_with_idempotency(chilly, openapi):
    chilly.request('GET', '/restock')
    body = {'items': {'bread': 2, 'vegemite': 1}}
    key = {'Idempotency-Key': 'order-77'}
    status, head, data = call(chilly, openapi, 'POST', '/v2/reservations', body, key)
    assert status == 201, data
    first = json.loads(data)
    assert head['location'] == f'/v2/reservations/{first["id"]}' and first['state'] == 'held'
    status, head, data = call(chilly, openapi, 'POST', '/v2/reservations', body, key)
    assert status == 200 and json.loads(data)['id'] == first['id']
    assert head['idempotent-replayed'] == 'true'
    bread = chilly.json('GET', '/v2/stock/bread')[1]
    assert (bread['reserved'], bread['available']) == (2, bread['units'] - 2)
    status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'bread': 1}}, key)
    assert status == 409 and 'already used for a different request' in json.loads(data)['error']['message']
    status, _, data = call(chilly, openapi, 'POST', f'/v2/reservations/{first["id"]}/confirm')
    assert status == 409 and 'not every unit has left its bay' in json.loads(data)['error']['message']
    status, _, data = call(chilly, openapi, 'POST', f'/v2/reservations/{first["id"]}/cancel')
    assert status == 200 and json.loads(data)['state'] == 'cancelled'
    assert chilly.json('GET', '/v2/stock/bread')[1]['reserved'] == 0
    status, _, data = call(chilly, openapi, 'GET', f'/v2/reservations/{first["id"]}')
    assert status == 200 and json.loads(data)['state'] == 'cancelled'


def test_http_own_origin_may_change_things_with_the_client_header(chilly, openapi):
    own = {'Origin': f'http://127.0.0.1:{chilly.port}', 'Sec-Fetch-Site': 'same-origin'}
    status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'bread': 1}}, own)
    assert status == 403 and json.loads(data)['error']['code'] == 'browser-needs-client-header'
    own['X-Jafflr-Client'] = 'a page of ours'
    status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'bread': 1}}, own)
    assert status == 201, data
    call(chilly, openapi, 'POST', f'/v2/reservations/{json.loads(data)["id"]}/cancel', headers=own)


def test_http_all_or_nothing_over_http(chilly, openapi):
    chilly.request('GET', '/restock')
    status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'bread': 2, 'cheese': 11}})
    assert status == 400
    status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'bread': 9, 'cheese': 3}})
    assert status == 201
    status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'cheese': 1, 'bread': 2}})
    assert status == 409 and json.loads(data)['error']['field'] == 'bread'
    assert json.loads(chilly.request('GET', '/')[2])['cheese'] == 7       # nothing half-taken


def test_http_admin_restock_and_more_bays(chilly, openapi, machine):
    admin = chilly.admin()
    status, _, data = call(chilly, openapi, 'PUT', '/v2/bays/ham', {'slot': 3, 'unit_g': 15}, admin)
    assert status == 200, data
    status, _, data = call(chilly, openapi, 'POST', '/v2/restock', {'items': {'ham': 8}}, admin)
    assert status == 200, data
    ham = [b for b in json.loads(data)['bays'] if b['name'] == 'ham'][0]
    assert ham['units'] == 8 and ham['food_safety']['state'] == 'ok'
    assert machine.world()['bays'][3]['units'] == 8
    assert json.loads(chilly.request('GET', '/')[2])['ham'] == 8
    status, _, data = call(chilly, openapi, 'PUT', '/v2/bays/pickles', {'slot': 4, 'unit_g': 10}, admin)
    assert status == 200
    status, _, data = call(chilly, openapi, 'POST', '/v2/restock', {'items': {'pickles': 5}}, admin)
    assert status == 400 and 'cannot fill the pickles bay' in json.loads(data)['error']['message']
    status, _, data = call(chilly, openapi, 'POST', '/v2/bays/pickles/calibrate', {'step': 'tare'}, admin)
    assert status == 200 and json.loads(data)['name'] == 'pickles', data


def test_http_loadcell_fault_is_503_for_that_bay_and_named_in_ready(chilly, openapi, machine):
    chilly.request('GET', '/restock')
    machine.sim('fault', 'loadcell-nack:cheese', 'on')
    try:
        deadline = 50
        while chilly.json('GET', '/v2/stock/cheese')[1]['sensor']['ok'] and deadline:
            deadline -= 1
            __import__('time').sleep(0.05)
        status, head, body = chilly.request('GET', '/pick?name=cheese&quantity=1')
        assert status == 503 and b'cheese load cell cannot be read' in body and b'loadcell_1' in body
        assert chilly.request('GET', '/pick?name=bread&quantity=1')[2] == b'ok'
        status, _, data = call(chilly, openapi, 'POST', '/v2/reservations', {'items': {'cheese': 1}})
        assert status == 503 and json.loads(data)['error']['field'] == 'cheese'
        status, _, data = call(chilly, openapi, 'GET', '/v2/ready')
        checks = json.loads(data)['checks']
        assert status == 200 and 'cheese: ' in checks['load-cells']['detail']
        assert 'loadcell_1' in checks['load-cells']['detail']
        cheese = chilly.json('GET', '/v2/stock/cheese')[1]
        assert cheese['sensor']['ok'] is False and cheese['units'] != 0
        assert 'cheese' not in json.loads(chilly.request('GET', '/')[2])
        metrics = chilly.request('GET', '/metrics')[2].decode()
        assert re.search(r'chillybin_sensor_errors_total\{part="loadcell_1"\} [1-9]', metrics)
        assert 'chillybin_bay_sensor_ok{bay="cheese"} 0.0' in metrics
    finally:
        machine.sim('fault', 'loadcell-nack:cheese', 'off')


def test_http_metrics_names_the_monitoring_rules_need(chilly):
    chilly.request('GET', '/v2/stock')
    status, head, body = chilly.request('GET', '/metrics')
    text = body.decode()
    assert status == 200 and head['content-type'].startswith('text/plain')
    for name in ('chillybin_bin_temperature_celsius ', 'chillybin_bin_above_5c_seconds ',
                 'chillybin_bay_food_safety_locked{bay="cheese"} ',
                 f'chillybin_build_info{{version="{VERSION}"}} 1.0',
                 'chillybin_bay_units{bay="bread"} ', 'chillybin_bay_grams{bay="bread"} ',
                 'chillybin_reservations_open ', 'chillybin_chiller_on ',
                 'chillybin_loop_seconds_since_tick ', 'chillybin_loop_running 1.0',
                 'process_start_time_seconds ',
                 'chillybin_http_requests_total{method="GET",route="/v2/stock",status="200"} ',
                 'chillybin_http_request_duration_seconds_bucket{'):
        assert name in text, name


def test_http_odd_methods_do_not_grow_the_metrics(chilly):
    for i in range(5):
        chilly.request(f'BREW{i}', '/')
    text = chilly.request('GET', '/metrics')[2].decode()
    assert 'BREW' not in text and 'method="other"' in text


def test_http_chunked_oversized_body_is_refused(chilly):
    conn = chilly.connection()
    try:
        conn.putrequest('POST', '/v2/reservations')
        conn.putheader('Content-Type', 'application/json')
        conn.putheader('Transfer-Encoding', 'chunked')
        conn.endheaders()
        chunk = b' ' * 4096
        for _ in range(6):
            conn.send(b'%x\r\n%s\r\n' % (len(chunk), chunk))
        conn.send(b'0\r\n\r\n')
        response = conn.getresponse()
        assert response.status == 413, response.read()
    finally:
        conn.close()


def test_http_admin_token_path_is_logged_never_the_token(chilly):
    log = chilly.read_log()
    assert os.path.join(chilly.state_dir, 'admin-token') in log
    assert chilly.token not in log
    assert oct(os.stat(os.path.join(chilly.state_dir, 'admin-token')).st_mode & 0o777) == '0o600'


def test_http_concurrent_reservations_take_each_unit_once(chilly):
    """Twenty clients race for five units, and five more retry one key at once."""
    from concurrent.futures import ThreadPoolExecutor
    chilly.request('GET', '/restock')
    hold = {'items': {'cheese': 5}}
    status, taken = chilly.json('POST', '/v2/reservations', hold)
    assert status == 201                           # 5 of the 10 cheese are spoken for
    free = chilly.json('GET', '/v2/stock/cheese')[1]['available']
    assert 0 < free <= 5          # earlier tests' held reservations may still hold some
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: chilly.request('POST', '/v2/reservations',
                                                         {'items': {'cheese': 1}})[0], range(20)))
    assert answers.count(201) == free and answers.count(409) == 20 - free
    assert chilly.json('GET', '/v2/stock/cheese')[1]['available'] == 0
    before = chilly.json('GET', '/v2/stock/vegemite')[1]
    assert before['available'] >= 2, before
    with ThreadPoolExecutor(5) as pool:
        replies = list(pool.map(lambda _: chilly.json('POST', '/v2/reservations', {'items': {'vegemite': 2}},
                                                      {'Idempotency-Key': 'race-1'}), range(5)))
    assert sorted(s for s, _ in replies) == [200, 200, 200, 200, 201], replies
    assert len({r['id'] for _, r in replies}) == 1
    assert chilly.json('GET', '/v2/stock/vegemite')[1]['reserved'] == before['reserved'] + 2


def test_http_bin_sensor_fault_is_no_reading_not_zero(chilly, openapi, machine):
    machine.sim('fault', 'bin-sensor-nack', 'on')
    try:
        deadline = __import__('time').monotonic() + 10
        while chilly.json('GET', '/v2/bin')[1]['ok']:
            assert __import__('time').monotonic() < deadline
        status, _, data = call(chilly, openapi, 'GET', '/v2/bin')
        b = json.loads(data)
        assert b['temp_c'] is None and 'bin_air' in b['error'] and b['chiller_on']
        metrics = chilly.request('GET', '/metrics')[2].decode()
        assert not re.search(r'^chillybin_bin_temperature_celsius ', metrics, re.M)
        alerts = {a['alert'] for a in chilly.json('GET', '/v2/alerts')[1]['alerts']}
        assert 'bin-sensor' in alerts
        ready = chilly.json('GET', '/v2/ready')[1]
        assert ready['checks']['bin-sensor']['ok'] is False and 'bin_air' in ready['checks']['bin-sensor']['detail']
    finally:
        machine.sim('fault', 'bin-sensor-nack', 'off')


def test_http_ready_is_503_when_no_load_cell_can_be_read(chilly, openapi, machine):
    bays = ('bread', 'cheese', 'vegemite', '3', '4')
    for bay in bays:
        machine.sim('fault', f'loadcell-nack:{bay}', 'on')
    try:
        deadline = __import__('time').monotonic() + 10
        while chilly.request('GET', '/v2/ready')[0] == 200:
            assert __import__('time').monotonic() < deadline
        status, _, data = call(chilly, openapi, 'GET', '/v2/ready')
        checks = json.loads(data)['checks']
        assert status == 503 and not checks['load-cells']['ok']
        assert all(f'loadcell_{i}' in checks['load-cells']['detail'] for i in range(3))
        assert chilly.request('GET', '/health')[0] == 200          # alive, not ready
    finally:
        for bay in bays:
            machine.sim('fault', f'loadcell-nack:{bay}', 'off')
