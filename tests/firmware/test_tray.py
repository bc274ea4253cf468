"""The tray: the hand-off between the assembler and the press, its one lock, and the belt
the press claims on it. Alone, then on the whole machine in process."""
import threading
import time

import pytest

from firmware.tray import Tray, TrayOccupied
from tests.support.kitchen import person_resets

BELT_PHASES = ('indexing', 'clearing', 'clearing-open')


class Order:
    def __init__(self, oid):
        self.id = oid


def test_tray_holds_one_toastie_and_refuses_a_second_by_name():
    tray = Tray()
    tray.put(Order('t1'))
    with pytest.raises(TrayOccupied, match='t2 cannot go on the tray: t1 is still waiting'):
        tray.put(Order('t2'))
    assert tray.waiting.id == 't1'


def test_tray_take_and_discard_hand_the_toastie_over_once():
    tray = Tray()
    first = Order('t1')
    tray.put(first)
    assert tray.take() is first and tray.waiting is None and tray.take() is None
    tray.put(Order('t2'))
    assert tray.discard().id == 't2' and tray.discard() is None


def test_tray_nothing_is_built_on_it_while_the_belt_is_claimed_or_a_toastie_waits():
    tray = Tray()
    assert tray.free_to_build()
    tray.claim()
    assert tray.moving and not tray.free_to_build()
    tray.release()
    assert tray.free_to_build()
    tray.put(Order('t1'))
    assert not tray.free_to_build()


def test_tray_belt_claimed_exactly_while_the_press_moves_it_through_orders_and_a_clear(kitchen):
    """The press claims the belt from the decision to index until the belt has stopped,
    and while it clears the machine after a reset; never longer, never shorter."""
    k = kitchen
    orders = [k.submit(['cheese'], 'light')[0] for _ in range(2)]
    seen = set()

    def belt_follows_the_press():
        assert k.tray.moving == (k.press.phase in BELT_PHASES), k.press.phase
        seen.add(k.press.phase)
        return all(o.finished for o in orders)
    k.run_until(belt_follows_the_press, 1200)
    assert [o.state for o in orders] == ['done', 'done']
    k.kitchen.stop(k.clock.monotonic(), k.clock.time(), 'a test')
    k.run(0.5)
    person_resets(k)
    k.run_until(lambda: belt_follows_the_press() and not k.press.clearing, 120)
    assert {'indexing', 'clearing'} <= seen and not k.tray.moving


def test_tray_status_reads_the_line_under_the_trays_lock(kitchen):
    """A status request waits while a station holds the tray (mid hand-off), so it never
    reports a toastie in two places or in none."""
    k = kitchen
    held, release, answered = threading.Event(), threading.Event(), []

    def station_mid_hand_off():
        with k.tray.lock:
            held.set()
            release.wait(5)
    station = threading.Thread(target=station_mid_hand_off)
    station.start()
    assert held.wait(5)
    reader = threading.Thread(target=lambda: answered.append(
        k.kitchen.status(k.clock.monotonic(), k.clock.time())))
    reader.start()
    time.sleep(0.2)
    assert answered == [], 'status read the stations while the tray was held'
    release.set()
    reader.join(5)
    station.join(5)
    assert answered and answered[0]['tray'] is None


def test_tray_busy_while_the_machine_holds_any_toastie(kitchen):
    """`busy` (what a deploy waits on before a restart) is true while a toastie is being
    assembled or waits on the tray, not only while the press holds one."""
    k = kitchen
    order, _ = k.submit(['cheese'], 'burnt')
    seen = set()

    def note():
        status = k.kitchen.status(k.clock.monotonic(), k.clock.time())
        if order.state in ('assembling', 'assembled'):
            seen.add((order.state, status['busy']))
        return order.state == 'toasting'
    k.run_until(note, 600)
    assert seen and all(busy for _, busy in seen), seen
