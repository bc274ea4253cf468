"""The pick-v2 flag both ways, over real HTTP against a running chillybin, and against a
stand-in of the original chillybin that only speaks v1 (tests/support/original_chillybin).

Step 2 of retiring v1 picks (docs/flags.md) is jafflr switching by this flag: with it on,
one v2 reservation per toastie (test_jafflr_http.py's happy path checks that); off, one v1
/pick per ingredient. A jafflr with it on against a chillybin that was never upgraded
must fail clearly and take nothing.
"""
import pytest

from tests.api.conftest import restock
from tests.support.client import request


def chilly_events(machine, kind, since):
    """chillybin's events of one kind after `since` (the simulator's wall clock)."""
    answer = request(machine['chillybin'].port, 'GET', f'/v2/events?limit=500&kind={kind}')
    return [e for e in answer.json()['events'] if e['wall'] > since]


def bays(machine):
    return {b['ingredient']: b['units'] for b in machine.world()['bays'] if b['ingredient']}


def assembled(machine, service, ingredients):
    """Order a light toastie (v2) and wait until it is built on the tray: by then every
    unit has been taken from chillybin, which is what these tests are about."""
    answer = request(service.port, 'POST', '/v2/toasties',
                     {'ingredients': ingredients, 'doneness': 'light'})
    assert answer.status == 202, answer
    oid = answer.json()['id']

    def built():
        order = request(service.port, 'GET', f'/v2/toasties/{oid}').json()
        assert not order['failure'], order['failure']
        return order['state'] in ('assembled', 'toasting', 'done') and order
    return machine.wait_for(built, 60, 'the toastie built')


def flag(service):
    return request(service.port, 'GET', '/v2/flags').json()['flags'][0]


def test_pick_v2_off_by_environment_takes_one_v1_pick_per_ingredient(machine, start_jafflr):
    restock(machine)
    j = start_jafflr(env={'JAFFLR_FLAG_PICK_V2': 'off'})
    assert flag(j)['env_override'] is False and flag(j)['env_variable'] == 'JAFFLR_FLAG_PICK_V2'
    since = machine.link.clock.time()
    order = assembled(machine, j, ['cheese', 'vegemite'])
    picks = chilly_events(machine, 'pick', since)
    assert sorted(e['detail'] for e in picks) == ['1 cheese', '1 vegemite', '2 bread']
    assert chilly_events(machine, 'reserved', since) == []
    assert request(machine['chillybin'].port, 'GET', '/').json() == \
        {'bread': 8, 'cheese': 9, 'vegemite': 9}
    assert order['stock']['mode'] == 'v1'
    assert order['stock']['picked'] == order['stock']['dropped'] == \
        {'bread': 2, 'cheese': 1, 'vegemite': 1}


@pytest.fixture
def original(machine):
    service = machine.start('original-chillybin', module='tests.support.original_chillybin',
                            until='live')
    try:
        yield service
    finally:
        service.signal(15)
        service.wait(10)


def test_pick_v2_on_against_a_v1_only_chillybin_fails_clearly_and_takes_nothing(
        machine, start_jafflr, original):
    j = start_jafflr(chillybin=original)
    before = bays(machine)
    answer = request(j.port, 'GET', '/toastie?i=cheese', timeout=120)
    assert answer.status == 503, answer
    assert 'chillybin does not offer v2 reservations' in answer.text
    assert 'nothing was taken' in answer.text and 'pick-v2 flag off' in answer.text
    seen = request(original.port, 'GET', '/test/picks').json()
    assert seen['picks'] == [] and 'POST /v2/reservations' in seen['requests']
    assert request(original.port, 'GET', '/').json() == {'bread': 10, 'cheese': 10,
                                                         'vegemite': 10}
    assert bays(machine) == before, 'no dispenser ran'
    status = request(j.port, 'GET', '/v2/status').json()
    assert status['fault'] is None, 'a refusal, not a machine fault'


def test_pick_v2_off_against_a_v1_only_chillybin_makes_the_toastie(machine, start_jafflr,
                                                                   original):
    j = start_jafflr(env={'JAFFLR_FLAG_PICK_V2': 'off'}, chillybin=original)
    assert request(j.port, 'GET', '/toastie?i=cheese&i=vegemite&doneness=burnt-ish',
                   timeout=30).status == 400
    order = assembled(machine, j, ['cheese', 'vegemite'])
    assert order['stock']['dropped'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    seen = request(original.port, 'GET', '/test/picks').json()
    assert sorted(map(tuple, seen['picks'])) == [('bread', 2), ('cheese', 1), ('vegemite', 1)]
    assert request(original.port, 'GET', '/').json() == {'bread': 8, 'cheese': 9, 'vegemite': 9}
