"""The front desk (firmware/frontdesk.py) on the whole simulated machine and a fake clock:
the rules the HTTP handlers used to hold (a v1 wait, flags saved and recorded, pause
expiry, what a customer sees, who may cancel)."""
import threading

import pytest

from firmware.errors import Conflict, NotFound
from firmware.frontdesk import FrontDesk, Wait
from firmware.orderbook import OrderState


def front_desk(k, released=None, order_key=b'k' * 32):
    return FrontDesk(k.kitchen, k.book, k.store, k.flags, k.shutdown, k.clock, chillybin=k.stock,
                     released=released, order_key=order_key, events=k.events)


@pytest.fixture
def desk(kitchen):
    return front_desk(kitchen)


def test_frontdesk_a_v1_toastie_queued_when_the_machine_stops_fails_at_once(kitchen, desk):
    """Nobody could follow it otherwise: it must not be made later, and nothing was taken."""
    kitchen.kitchen.pause(True)
    order, _ = desk.order(['cheese'], 'light', source='v1')
    desk.stop('the counter')
    started = kitchen.clock.monotonic()
    how, order = desk.wait(order.id, 60)
    assert how is Wait.FINISHED and order.state is OrderState.FAILED
    assert order.failure['reason'] == 'stopped' and 'nothing was taken' in order.failure['detail']
    assert kitchen.clock.monotonic() - started < 1.0      # told at once, not after the limit
    assert order.stock == {}


def test_frontdesk_a_wait_ends_at_its_limit_or_a_restart_and_the_toastie_is_kept(kitchen):
    kitchen.kitchen.pause(True)
    released = threading.Event()
    desk = front_desk(kitchen, released=released)
    order, _ = desk.order(['cheese'], 'light', source='v1')
    started = kitchen.clock.monotonic()
    how, same = desk.wait(order.id, 5)
    assert how is Wait.STILL_COOKING and 5 <= kitchen.clock.monotonic() - started <= 6.5
    released.set()
    assert desk.wait(order.id, 5)[0] is Wait.RESTARTING
    assert same.state is OrderState.QUEUED and desk.status()['queue']['orders'] == [order.id]


def test_frontdesk_a_made_toastie_is_finished_and_a_replay_says_so(kitchen, desk):
    order, replayed = desk.order(['cheese'], 'light', key='k1')
    again, replayed_again = desk.order(['cheese'], 'light', key='k1')
    assert (again, replayed, replayed_again) == (order, False, True)
    with pytest.raises(Conflict, match="Idempotency-Key 'k1' was already used"):
        desk.order(['cheese', 'vegemite'], 'light', key='k1')
    kitchen.run_until(lambda: order.finished, 400)
    assert desk.wait(order.id, 1) == (Wait.FINISHED, order)
    assert desk.made(order.id) == (order, True)


def test_frontdesk_set_flag_saves_it_and_records_who_changed_what(kitchen, desk):
    flag = desk.set_flag('pick-v2', {'enabled': False})
    assert flag['enabled'] is False
    assert kitchen.store.flags()['pick-v2']['enabled'] is False      # kept across restarts
    (event,) = desk.events(5, 'flag')
    assert event['detail'] == "pick-v2 set to {'enabled': False}"


def test_frontdesk_pause_with_an_expiry_is_kept_and_resume_clears_it(kitchen, desk):
    wall = kitchen.clock.time()
    desk.pause(expires_s=600)
    status = desk.status()
    assert status['paused'] is True and status['pause_expires'] == pytest.approx(wall + 600)
    assert kitchen.store.meta()['pause_expires'] == pytest.approx(wall + 600)
    desk.resume()
    assert desk.status()['paused'] is False and desk.status()['pause_expires'] is None


def test_frontdesk_describes_a_toastie_without_what_is_not_the_customers(kitchen, desk):
    kitchen.kitchen.pause(True)
    order, _ = desk.order(['cheese'], 'light', name='Kim', customer='kim', key='secret-key')
    seen = desk.describe(order)
    for private in ('key', 'fingerprint', 'customer', 'source', 'step_started_at'):
        assert private not in seen
    assert seen['state'] == 'queued' and seen['queue_position'] == 0
    assert seen['waiting'] == 'held: the queue is paused' and seen['ready_at'] is not None
    assert [d['id'] for d in desk.describe_recent(10)] == [order.id]


def test_frontdesk_only_the_orders_own_secret_lets_its_customer_cancel(kitchen, desk):
    kitchen.kitchen.pause(True)
    first, _ = desk.order(['cheese'], 'light')
    second, _ = desk.order(['cheese'], 'light')
    assert desk.secret_matches(first, desk.order_secret(first))
    assert not desk.secret_matches(first, desk.order_secret(second))
    assert not desk.secret_matches(first, '')
    assert not front_desk(kitchen, order_key=b'').secret_matches(first, desk.order_secret(first))
    assert desk.cancel(first.id).state is OrderState.CANCELLED
    with pytest.raises(NotFound):
        desk.cancel('t99')


def test_frontdesk_v1_status_says_toasting_and_what_to_do_about_a_fault(kitchen, desk):
    assert desk.v1_status() == {'toasting': False, 'fault': None, 'to_clear': None}
    desk.stop('a test')
    now = desk.v1_status()
    assert now['fault'].reason == 'stopped' and 'reset' in now['to_clear']
