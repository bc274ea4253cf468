"""The kitchen on the whole simulated machine (InProcessMachine, fake clock): taking orders,
the machine's state, stop and reset, the drain and the recovery after a restart, and
every simulated fault switched on during an order."""
import threading

import pytest

from inprocess import InProcessMachine

from firmware.assembler import reservation_key
from firmware.errors import InvalidRequest, NotEnoughStock, QueueFull, Unavailable
from firmware.kitchen import check_toastie
from firmware.safety import FAULT_HELP
from tests.support.kitchen import available, delivered, hot_plate, on_tray, \
    outputs_safe, person_resets, run_to_step

SAFE = {'heater_pin': False, 'relay_closed': False, 'moving': []}


def now_wall(k):
    return k.clock.monotonic(), k.clock.time()


def make_toastie(k, ingredients=('cheese',), doneness='light', limit_s=400):
    order, _ = k.submit(list(ingredients), doneness)
    k.run_until(lambda: order.finished, limit_s)
    return order


def assert_accounted(k, order):
    """Every unit the order reserved either left the bays or went back, and chillybin
    holds nothing more for it."""
    stock = order.stock
    reserved = stock.get('reserved', {})
    if 'taken' in stock:
        assert stock['taken'] == reserved
    else:
        for name, q in reserved.items():
            assert stock['left_bays'][name] + stock['returned'][name] == q, stock
    if 'reservation' in stock:
        assert k.chilly.desk.reservation(stock['reservation']).state in ('taken', 'cancelled')
    assert all(k.chilly.desk.ledger.outstanding(n) == 0 for n in k.chilly.scales.bays)


# -- taking orders ------------------------------------------------------------------------------
@pytest.mark.parametrize('ingredients, doneness, message', [
    ([], 'medium', 'at least one ingredient'),
    (['ham'], 'medium', 'needs cheese'),
    (['cheese', 'bread'], 'medium', 'leave out the bread'),
    (['cheese'] * 7, 'medium', 'at most 6 fillings'),
    (['cheese'], 'toasted', "unknown doneness 'toasted'"),
])
def test_kitchen_check_toastie_refuses_with_a_reason(ingredients, doneness, message):
    with pytest.raises(InvalidRequest, match=message):
        check_toastie(ingredients, doneness)


@pytest.mark.parametrize('doneness', ['light', 'medium', 'well-done', 'burnt'])
def test_kitchen_check_toastie_accepts_the_original_toasties(doneness):
    check_toastie(['cheese', 'vegemite'], doneness)
    check_toastie(['cheese'], doneness)


def test_kitchen_queue_is_bounded_and_says_when_to_retry(kitchen):
    k = kitchen
    k.chilly.restocking.restock({'bread': 30, 'cheese': 30}, k.clock.time())
    k.kitchen.pause(True)
    for _ in range(10):
        k.submit(['cheese'], 'light')
    with pytest.raises(QueueFull, match=r'the queue is full \(10 toasties waiting\)') as full:
        k.submit(['cheese'], 'light')
    assert full.value.retry_after_s == 60 + 3 + 4 + 4    # one light toastie's cycle
    assert len(k.book.orders) == 10


def test_kitchen_counts_a_toastie_that_left_the_queue_before_its_reservation(kitchen):
    """Between leaving the queue and reserving at chillybin, a toastie is neither in the
    queue nor in chillybin's count: it was forgotten, and its bread promised again."""
    k = kitchen
    k.chilly.restocking.restock({'bread': 4}, k.clock.time())
    k.run(0.5)
    first, _ = k.submit(['cheese'], 'light')
    k.step()                                     # taken from the queue, not yet reserved
    assert first.state == 'assembling' and 'reserved' not in first.stock
    k.submit(['cheese'], 'light')
    with pytest.raises(NotEnoughStock, match='not enough bread: 0 left'):
        k.submit(['cheese'], 'light')


def test_kitchen_two_customers_at_once_are_not_both_promised_the_last_bread(kitchen):
    """Checking the stock and queueing the toastie are one step: here the first customer
    is held between the two until the second has checked too (or 1 s has passed)."""
    k = kitchen
    k.chilly.restocking.restock({'bread': 2}, k.clock.time())
    k.run(0.5)
    k.kitchen.pause(True)
    queue_it, both_checked = k.book.submit, threading.Barrier(2, timeout=1)

    def submit_when_both_checked(*args, **kw):
        try:
            both_checked.wait()
        except threading.BrokenBarrierError:
            pass                    # the other one could not check meanwhile
        return queue_it(*args, **kw)
    k.book.submit = submit_when_both_checked
    results = []

    def customer():
        try:
            results.append(k.submit(['cheese'], 'light')[0].id)
        except NotEnoughStock as exc:
            results.append(exc.message)
    threads = [threading.Thread(target=customer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results, key=len) == ['t1', 'not enough bread: 0 left after the toasties '
                                              'ahead, this one needs 2']


class SlowChillybin:
    """The kitchen's chillybin client, whose first `bays()` waits for `release` (a
    chillybin answering slowly, up to the client's 3 s timeout)."""

    def __init__(self, stock):
        self.stock = stock
        self.asking = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def bays(self):
        self.calls += 1
        if self.calls == 1:
            self.asking.set()
            self.release.wait(10)
        return self.stock.bays()

    def __getattr__(self, name):
        return getattr(self.stock, name)


def test_kitchen_a_slow_chillybin_does_not_hold_up_the_next_customer(kitchen):
    """The stock is asked outside the admission lock: while chillybin is slow to answer
    one customer, another's toastie is admitted, and STOP and status answer."""
    k = kitchen
    k.kitchen.pause(True)
    slow = k.kitchen.stock = SlowChillybin(k.stock)
    first = []
    t = threading.Thread(target=lambda: first.append(k.submit(['cheese'], 'light')[0]))
    t.start()
    try:
        assert slow.asking.wait(5)
        second = []
        t2 = threading.Thread(target=lambda: second.append(k.submit(['cheese', 'vegemite'], 'light')[0]))
        t2.start()
        t2.join(2)
        assert second and second[0].state == 'queued', 'the second order waited behind the first'
        assert k.kitchen.status(*now_wall(k))['queue']['orders'] == [second[0].id]
        assert k.kitchen.stop(*now_wall(k), 'a test') is not None
    finally:
        slow.release.set()
        t.join(10)
    assert [o.id for o in first] == ['t2']     # the slow one is admitted after, not lost


def test_kitchen_stock_taken_while_it_was_asked_is_asked_again(kitchen):
    """The first toastie's stock is reserved at chillybin while a third customer's stock
    answer is on its way: that answer still counts the first toastie's bread as free,
    while the first no longer counts as ahead. It is not used: the stock is asked again,
    and the third is refused (4 slices: two toasties)."""
    k = kitchen
    k.chilly.restocking.restock({'bread': 4}, k.clock.time())
    k.run(0.5)
    k.kitchen.pause(True)
    first, _ = k.submit(['cheese'], 'light')
    k.submit(['cheese'], 'light')
    stock, asked = k.stock, []

    class ReservedMeanwhile:
        def bays(self):
            answer = stock.bays()
            if not asked:      # the assembler reserves the first toastie's stock now
                r = stock.reserve(first.needs(), key='meanwhile')
                k.book.note_stock(first, mode='v2', reservation=r['id'], reserved=first.needs())
            asked.append(answer['bread']['available'])
            return answer
    k.kitchen.stock = ReservedMeanwhile()
    with pytest.raises(NotEnoughStock, match='not enough bread: 0 left'):
        k.submit(['cheese'], 'light')
    assert asked == [4, 2]


def test_kitchen_a_retry_that_arrives_while_the_first_is_checked_gets_the_same_order(kitchen):
    """Two requests with one Idempotency-Key, the first held up at chillybin: the second
    makes the toastie, the first answers it as a replay; one toastie, one reservation,
    though the stock covers only one (the retry is not refused as a second toastie)."""
    k = kitchen
    k.chilly.restocking.restock({'bread': 2}, k.clock.time())
    k.run(0.5)
    slow = k.kitchen.stock = SlowChillybin(k.stock)
    first = []
    t = threading.Thread(target=lambda: first.append(
        k.submit(['cheese'], 'light', key='k1', fingerprint='f')))
    t.start()
    try:
        assert slow.asking.wait(5)
        retry = k.submit(['cheese'], 'light', key='k1', fingerprint='f')
    finally:
        slow.release.set()
        t.join(10)
    assert retry[1] is False and first == [(retry[0], True)]
    order = retry[0]
    k.run_until(lambda: order.finished, 400)
    assert order.state == 'done' and len(k.book.orders) == 1
    assert list(k.chilly.desk.ledger.by_id) == ['r1']


def test_kitchen_replayed_key_returns_the_same_order_and_takes_nothing_more(kitchen):
    k = kitchen
    first, replayed = k.submit(['cheese'], 'light', key='abc', fingerprint='f1')
    again, replayed_again = k.submit(['cheese'], 'light', key='abc', fingerprint='f1')
    assert (again, replayed, replayed_again) == (first, False, True)
    from firmware.errors import Conflict
    with pytest.raises(Conflict, match="Idempotency-Key 'abc' was already used"):
        k.submit(['cheese', 'vegemite'], 'light', key='abc', fingerprint='f2')
    k.run_until(lambda: first.finished, 300)
    # replayed after it finished: still the same order, nothing taken twice
    assert k.submit(['cheese'], 'light', key='abc', fingerprint='f1') == (first, True)
    k.run(5)
    assert len(k.book.orders) == 1 and list(k.chilly.desk.ledger.by_id) == ['r1']


def test_kitchen_state_follows_the_machine(make_kitchen):
    k = make_kitchen()
    k.run(0.5)
    state = lambda: k.kitchen.state(k.clock.monotonic())
    assert state() == 'available'
    order, _ = k.submit(['cheese'], 'light')
    seen = [state()]
    while not order.finished:
        k.step()
        if state() != seen[-1]:
            seen.append(state())
    assert seen == ['available', 'assembling', 'preheating', 'toasting', 'available']
    k.kitchen.pause(True)
    assert state() == 'paused' and k.store.meta()['paused'] is True
    k.kitchen.pause(False)
    k.kitchen.stop(*now_wall(k), 'a test')
    assert state() == 'faulted'


# -- stop and reset ------------------------------------------------------------------------------
def test_kitchen_stop_by_anyone_mid_dispense_stops_everything_and_gives_stock_back(kitchen):
    k = kitchen
    before = available(k)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: any(k.world.is_active(f'dispenser_{b.index}') for b in k.world.bays), 30)
    fault = k.kitchen.stop(*now_wall(k), 'the panel')
    assert (fault.reason, fault.detail) == ('stopped', 'stop pressed (the panel)')
    assert outputs_safe(k) == SAFE, 'outputs go off in the stopping call, not a tick later'
    k.run(1.0)
    assert order.failure['reason'] == 'stopped'
    # The give-back waits as long as a drop is given to show on the load cell (4 s).
    k.run(4.0)
    assert_accounted(k, order)
    left = order.stock['left_bays']
    assert available(k) == {n: before[n] - left.get(n, 0) for n in before}
    with pytest.raises(Unavailable, match='the machine is stopped \\(stopped: stop pressed'):
        k.submit(['cheese'], 'light')


def test_kitchen_reset_with_the_lid_still_open_latches_again(kitchen):
    k = kitchen
    k.world.set_fault('lid-open', True)
    k.run(0.2)
    assert k.shutdown.fault.reason == 'lid-open'
    k.kitchen.reset(*now_wall(k), 'a test')
    k.run(0.2)
    assert k.shutdown.fault.reason == 'lid-open'
    k.world.set_fault('lid-open', False)
    k.kitchen.reset(*now_wall(k), 'a test')
    k.run(0.5)
    assert not k.shutdown.latched


# -- the drain before a restart, and the recovery after one ---------------------------------------
def restart(k, clean=False):
    """jafflr's side of the kitchen stops (a crash unless `clean`) and starts again on
    the same state dir; the world, its clock and chillybin carry on. A crash leaves the
    lines as they were until the next start claims them (as ExecStopPost would)."""
    if clean:
        k.kitchen.finish_drain()
    k.restart_jafflr()
    k.kitchen.recover(*now_wall(k))
    return k


def assert_held_after_a_crash(k, doing, queued=()):
    """After a start without a finished drain: latched unclean-start saying what was
    happening, and for a minute nothing heats, nothing moves, no queued toastie starts."""
    fault = k.shutdown.fault
    assert fault.reason == 'unclean-start' and f'restarted while {doing}' in fault.detail
    assert fault.detail.startswith('needs attention') and fault.cleared_by == 'at-machine'
    for _ in range(60):
        k.run(1.0)
        assert outputs_safe(k) == SAFE
        assert [o.state for o in queued] == ['queued'] * len(queued)
    for order in queued:
        assert 'held: the machine is stopped (unclean-start' in k.kitchen.why_waiting(order)
    assert k.kitchen.state(k.clock.monotonic()) == 'faulted'


@pytest.fixture
def restartable(tmp_path):
    k = InProcessMachine(tmp_path)
    hot_plate(k)
    k.kitchen.recover(*now_wall(k))     # as the service does at every start
    assert not k.shutdown.latched, 'a new state dir is a clean start'
    k.run_until(lambda: not k.press.clearing, 60)   # a first start empties the machine
    k.run(0.5)
    try:
        yield k
    finally:
        k.close()


def test_kitchen_crash_with_a_toastie_in_the_press_fails_it_restarted_and_resumes_the_queue(
        restartable):
    k = restartable
    toasting, _ = k.submit(['cheese'], 'light')
    queued, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: toasting.state != 'queued', 5)
    k.kitchen.pause(True)          # so the second stays queued across the crash
    run_to_step(k, toasting, 'toasting')
    k.run(10)
    restart(k)
    crashed = k.book.get(toasting.id)
    assert crashed.state == 'failed' and crashed.failure['reason'] == 'restarted'
    assert 'in the press' in crashed.failure['detail']
    assert crashed.stock['taken'] == {'bread': 2, 'cheese': 1}       # its stock is noted
    k.kitchen.pause(False)
    assert_held_after_a_crash(k, f'a toastie was in the press ({toasting.id})',
                              [k.book.get(queued.id)])
    assert person_resets(k).reason == 'unclean-start'
    assert k.press.clearing, 'a crash leaves the machine unknown: it is cleared first' 
    resumed = k.book.get(queued.id)
    k.run_until(lambda: resumed.finished, 300)
    assert resumed.state == 'done', resumed.failure
    out = delivered(k)
    assert out[0]['units'] == {'bread': 2, 'cheese': 1}, 'the half-toasted one was cleared out'
    assert out[-1]['units'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    assert out[-1]['browning'] > 1000


def test_kitchen_crash_while_assembling_gives_the_reservation_back(restartable):
    k = restartable
    before = available(k)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.stock.get('dropped', {}).get('bread') == 1, 30)
    restart(k)
    assert k.shutdown.fault.reason == 'unclean-start'
    assert f'a toastie was being assembled ({order.id})' in k.shutdown.fault.detail
    person_resets(k)
    crashed = k.book.get(order.id)
    assert crashed.failure['reason'] == 'restarted' and 'being assembled' in crashed.failure['detail']
    k.run(1.0)
    assert crashed.stock['returned'] == {'bread': 1, 'cheese': 1, 'vegemite': 1}
    assert k.chilly.desk.reservation(crashed.stock['reservation']).state == 'cancelled'
    assert available(k) == {n: before[n] - (1 if n == 'bread' else 0) for n in before}
    k.run_until(lambda: not k.press.clearing, 30)
    assert on_tray(k) == {} and delivered(k)[-1]['units'] == {'bread': 1}


def world_drops(k):
    """ingredient -> units the dispensers dropped (the world's truth)."""
    return {b.ingredient.name: b.drops for b in k.world.bays if b.ingredient and b.drops}


def booked(orders):
    """ingredient -> units the orders booked: all a made one took, else what reached the
    tray or what chillybin saw leave the bays for it (as tests/campaign/ledger.py)."""
    total = {}
    for order in orders:
        units = dict(order.stock.get('taken') or {}) if order.state == 'done' else {
            n: max(order.stock.get('dropped', {}).get(n, 0),
                   order.stock.get('left_bays', {}).get(n, 0))
            for n in {*order.stock.get('dropped', {}), *order.stock.get('left_bays', {})}}
        for name, count in units.items():
            if count:
                total[name] = total.get(name, 0) + count
    return total


class DiedMeanwhile(BaseException):
    """jafflr was killed here (the test restarts it). A BaseException, as a kill is not an
    error the stations' hook handles: it ends the "process" where it stands."""


def test_kitchen_crash_before_hearing_of_its_reservation_gives_that_reservation_back(restartable):
    """jafflr dies after chillybin made the toastie's reservation and before the answer
    reached it (kill -9 with the request in flight). The order never recorded it, so it
    stayed held; chillybin booked the next toastie's first slice to it (the oldest held),
    and that toastie failed as jammed with the slice on its tray, booked to nobody (the
    kill -9 campaign's 2 of 118). The restart finds it by the order's key and gives it back."""
    k = restartable
    real_reserve = k.stock.reserve

    def reserve_then_die(items, key):
        real_reserve(items, key)
        raise DiedMeanwhile()
    k.stock.reserve = reserve_then_die
    crashed, _ = k.submit(['cheese'], 'light')
    following, _ = k.submit(['cheese'], 'light')
    with pytest.raises(DiedMeanwhile):
        k.run(2)
    del k.stock.reserve                               # the new process's client answers
    made = k.chilly.desk.ledger.by_key[reservation_key(crashed)]
    assert crashed.stock == {} and made.state == 'held', 'chillybin made it; jafflr never heard'
    restart(k)
    person_resets(k)
    following = k.book.get(following.id)
    k.run_until(lambda: following.finished, 300)
    assert following.state == 'done', following.failure
    assert made.state == 'cancelled' and not made.taken
    crashed = k.book.get(crashed.id)
    assert crashed.stock['reservation'] == made.id
    assert crashed.stock['returned'] == {'bread': 2, 'cheese': 1}
    assert world_drops(k) == booked(k.book.orders.values()) == {'bread': 2, 'cheese': 1}
    assert not k.bin_store.events.recent(1000, kind='removal')


def test_kitchen_crash_as_a_unit_falls_gives_back_only_once_the_load_cell_saw_it(restartable):
    """jafflr dies just after the cam let a slice go, before chillybin's load cell has
    seen it (its median filter needs a few readings). A give-back at once would return
    the slice to stock while it lies on the tray; the restart waits the drop timeout, so
    the cell's weight books it to the order."""
    k = restartable
    order, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: world_drops(k).get('bread') == 1, 30)
    assert not k.chilly.desk.reservation(order.stock['reservation']).taken, 'not seen yet'
    restart(k)
    person_resets(k)
    k.run(1.0)
    crashed = k.book.get(order.id)
    assert crashed.stock['left_bays'] == {'bread': 1, 'cheese': 0}
    assert crashed.stock['returned'] == {'bread': 1, 'cheese': 1}
    assert world_drops(k) == booked([crashed]) == {'bread': 1}
    assert not k.bin_store.events.recent(1000, kind='removal')


def test_kitchen_crash_with_a_toastie_on_the_tray_fails_it(restartable):
    k = restartable
    order, _ = k.submit(['cheese'], 'medium')      # the plate is not at 195 C yet
    k.run_until(lambda: order.state == 'assembled', 30)
    restart(k)
    assert k.book.get(order.id).failure['reason'] == 'restarted'
    assert 'on the tray' in k.book.get(order.id).failure['detail']
    assert_held_after_a_crash(k, f'a toastie was on the tray ({order.id})')


def test_kitchen_clean_drain_keeps_the_tray_toastie_for_the_next_start(restartable):
    k = restartable
    toasting, _ = k.submit(['cheese'], 'light')
    waiting, _ = k.submit(['cheese', 'vegemite'], 'medium')
    queued, _ = k.submit(['cheese'], 'light')
    run_to_step(k, toasting, 'toasting')
    k.run_until(lambda: waiting.state == 'assembled', 30)
    k.kitchen.begin_drain()
    assert k.kitchen.state(k.clock.monotonic()) == 'stopping'
    with pytest.raises(Unavailable, match='restarting'):
        k.submit(['cheese'], 'light')
    k.run_until(k.kitchen.drained, 400)
    # the index that delivered the light one also carried the medium one into the press
    # (the belt moves everything), so it was toasted within the drain too
    assert toasting.state == 'done' and queued.state == 'queued'
    restart(k, clean=True)
    assert not k.press.clearing and not k.shutdown.latched, 'a clean restart resumes'
    tray = k.book.get(waiting.id)
    if tray.state == 'assembled':
        assert k.tray.waiting is tray
    resumed = k.book.get(queued.id)
    k.run_until(lambda: resumed.finished and k.book.get(waiting.id).finished, 500)
    assert resumed.state == k.book.get(waiting.id).state == 'done'


def test_kitchen_clean_drain_with_a_toastie_waiting_on_the_tray_carries_on_after(restartable):
    k = restartable
    k.kitchen.pause(False)
    waiting, _ = k.submit(['cheese'], 'medium')     # waits on the tray for 195 C
    k.run_until(lambda: waiting.state == 'assembled', 30)
    k.kitchen.begin_drain()
    k.run_until(k.kitchen.drained, 10)
    assert waiting.state == 'assembled'
    restart(k, clean=True)
    assert k.tray.waiting is not None and k.tray.waiting.id == waiting.id
    resumed = k.tray.waiting
    k.run_until(lambda: resumed.finished, 300)
    assert resumed.state == 'done', resumed.failure
    assert delivered(k)[-1]['units'] == {'bread': 2, 'cheese': 1}


def test_kitchen_drain_that_stopped_a_toastie_half_way_is_not_clean(restartable):
    """The drain's bound ran out with a toastie in the press: it is failed and left there.
    The next start must clear it out, not take the machine as empty."""
    k = restartable
    order, _ = k.submit(['cheese'], 'burnt')
    k.run_until(lambda: order.step == 'toasting', 100)
    k.kitchen.begin_drain()
    k.run(5)
    k.kitchen.fail_unfinished_press(k.clock.monotonic(), k.clock.time(), 120)
    k.run(0.5)
    assert order.failure['reason'] == 'stopped' and 'could not finish' in order.failure['detail']
    restart(k, clean=True)
    fault = k.shutdown.fault
    assert fault.reason == 'stopped' and fault.restored and 'could not finish' in fault.detail
    assert k.shutdown.later == [], 'the drain finished: not an unclean start as well'
    k.run(5)
    assert outputs_safe(k) == SAFE and not k.press.clearing, 'held until a person resets'
    assert person_resets(k).reason == 'stopped'
    assert k.press.clearing, 'the half-toasted one is cleared out before anything else'
    k.run_until(lambda: not k.press.clearing, 30)
    assert delivered(k)[-1]['units'] == {'bread': 2, 'cheese': 1}


# -- faults survive restarts; who may clear what ---------------------------------------------------
def test_kitchen_fault_is_on_disk_as_soon_as_it_latches_and_back_after_a_crash(restartable):
    from firmware.jafflrstore import OrderStore
    k = restartable
    toasting, _ = k.submit(['cheese'], 'light')
    run_to_step(k, toasting, 'toasting')
    k.kitchen.pause(True)
    queued, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.kitchen.pause(False)
    k.world.set_fault('plate-sensor-open', True)
    k.run(0.2)
    tripped = k.shutdown.fault
    assert tripped.reason == 'plate-sensor-open' and outputs_safe(k) == SAFE
    on_disk = OrderStore(k.state_dir, fsync=False).saved_fault()     # another reader, now
    assert on_disk['fault'] == {'reason': 'plate-sensor-open', 'detail': tripped.detail,
                                'wall': tripped.wall, 'by': tripped.by}
    assert tripped.by == 'thread MainThread'    # the control tick that read the probe
    k.world.set_fault('plate-sensor-open', False)     # the probe is fine again by itself
    restart(k)
    queued = k.book.get(queued.id)        # the restarted kitchen's own
    fault = k.shutdown.fault
    assert (fault.reason, fault.detail, fault.wall, fault.restored) == (
        'plate-sensor-open', tripped.detail, tripped.wall, True)
    assert [f.reason for f in k.shutdown.later] == ['unclean-start']
    status = k.kitchen.status(*now_wall(k))
    assert status['fault']['restored'] and status['later_faults'] == ['unclean-start']
    assert status['reset']['cleared_by'] == 'at-machine' and not status['reset']['allowed']
    for _ in range(60):
        k.run(1.0)
        assert outputs_safe(k) == SAFE and queued.state == 'queued'
    assert person_resets(k).reason == 'plate-sensor-open'
    assert not k.shutdown.latched and k.store.saved_fault() is None
    k.run_until(lambda: queued.finished, 400)
    assert queued.state == 'done', queued.failure


def test_kitchen_outputs_go_off_before_the_fault_is_saved_and_never_wait_for_the_disk(
        make_kitchen, monkeypatch):
    from firmware.jafflrstore import OrderStore
    disk, saving = threading.Event(), threading.Event()

    def stuck_disk(store, record):
        saving.set()
        assert disk.wait(10)
    monkeypatch.setattr(OrderStore, 'save_fault', stuck_disk)
    k = make_kitchen()
    hot_plate(k)
    k.run(0.5)
    order, _ = k.submit(['cheese'], 'light')
    run_to_step(k, order, 'toasting')
    k.run_until(lambda: k.world.is_active('heater_relay'), 30)
    stop = threading.Thread(target=k.kitchen.stop, args=(*now_wall(k), 'a test'))
    stop.start()
    try:
        assert saving.wait(5), 'the fault was not saved'
        assert outputs_safe(k) == SAFE, 'outputs off while the disk is still writing'
        assert stop.is_alive()
    finally:
        disk.set()
        stop.join(5)


def test_kitchen_crash_while_idle_is_held_too_and_says_idle(restartable):
    k = restartable
    restart(k)
    assert_held_after_a_crash(k, 'idle')
    restart(k)             # again, before anyone looked: the fault stays, still held
    assert k.shutdown.fault.reason == 'unclean-start' and k.shutdown.fault.restored
    person_resets(k)
    assert make_toastie(k).state == 'done'


def test_kitchen_clean_restart_after_a_drain_resumes_as_before(restartable):
    k = restartable
    queued, _ = k.submit(['cheese'], 'light')
    k.kitchen.pause(True)
    k.kitchen.begin_drain()
    k.run_until(k.kitchen.drained, 10)
    restart(k, clean=True)
    queued = k.book.get(queued.id)
    assert not k.shutdown.latched and k.kitchen.why_waiting(queued) == 'held: the queue is paused'
    k.kitchen.pause(False)
    k.run_until(lambda: queued.finished, 400)
    assert queued.state == 'done'
    restart(k)           # the marker was used up by that start: this one is unclean
    assert k.shutdown.fault.reason == 'unclean-start'


def test_kitchen_reset_needs_the_button_held_after_the_fault_within_two_minutes(kitchen):
    from firmware.errors import ResetRefused
    k = kitchen
    k.hold_reset_button()             # before the fault: does not count for it
    k.world.set_fault('plate-sensor-open', True)
    k.run(0.5)
    k.world.set_fault('plate-sensor-open', False)
    assert k.shutdown.fault.reason == 'plate-sensor-open'
    with pytest.raises(ResetRefused, match='was before the fault latched'):
        k.kitchen.reset(*now_wall(k), 'the panel')
    k.world.hold_button('reset', 1.0)
    k.run(1.5)
    with pytest.raises(ResetRefused, match='hold the reset button on the machine for 2 s'):
        k.kitchen.reset(*now_wall(k), 'the panel')
    k.hold_reset_button(2.5)
    assert k.kitchen.status(*now_wall(k))['reset']['allowed']
    k.run(121)
    assert not k.kitchen.status(*now_wall(k))['reset']['allowed'], 'two minutes have passed'
    with pytest.raises(ResetRefused):
        k.kitchen.reset(*now_wall(k), 'the panel')
    k.hold_reset_button()
    reset = k.kitchen.status(*now_wall(k))['reset']
    assert reset['allowed'] and reset['button']['armed'] and 100 < reset['button']['armed_left_s']
    assert k.kitchen.reset(*now_wall(k), 'the panel').reason == 'plate-sensor-open'
    k.kitchen.stop(*now_wall(k), 'a test')
    assert k.kitchen.reset(*now_wall(k), 'the panel').reason == 'stopped', 'panel kind: token'
    k.world.set_fault('plate-sensor-open', True)
    k.run(0.5)
    k.world.set_fault('plate-sensor-open', False)
    with pytest.raises(ResetRefused):       # the hold was used by the last reset
        k.kitchen.reset(*now_wall(k), 'the panel')


def test_kitchen_a_panel_fault_with_a_later_at_machine_one_needs_the_button(kitchen):
    from firmware.errors import ResetRefused
    k = kitchen
    k.kitchen.stop(*now_wall(k), 'a test')
    k.world.set_fault('plate-sensor-open', True)
    k.run(0.5)
    assert k.shutdown.fault.reason == 'stopped'
    assert [f.reason for f in k.shutdown.later] == ['plate-sensor-open']
    with pytest.raises(ResetRefused, match='^plate-sensor-open needs a person'):
        k.kitchen.reset(*now_wall(k), 'the panel')


# -- every simulated fault during an order ---------------------------------------------------------
# fault, the step at which it is switched on, the reason latched
MACHINE_FAULTS = [
    ('plate-sensor-open', 'toasting', 'plate-sensor-open'),
    ('plate-sensor-nack', 'toasting', 'plate-sensor-error'),
    ('heater-dead', 'toasting', 'heater-no-current'),
    ('heater-welded', 'toasting', 'heater-current-while-off'),
    ('thermal-fuse-open', 'toasting', 'heater-no-current'),
    ('feedback-stuck', 'toasting', 'heater-feedback-mismatch'),
    ('current-sense-failed', 'toasting', 'current-sense-error'),
    ('dispenser-jam:vegemite', 'dispensing', 'dispenser-jam'),
    ('press-jam', 'toasting', 'press-jam'),
    ('lid-open', 'toasting', 'lid-open'),
    ('estop', 'dispensing', 'estop'),
    ('loadcell-nack:vegemite', 'dispensing', 'loadcell-error'),
]


@pytest.mark.parametrize('fault, step, reason', MACHINE_FAULTS, ids=[f[0] for f in MACHINE_FAULTS])
def test_kitchen_fault_during_an_order_ends_safe_and_explained_then_recovers(
        kitchen, fault, step, reason):
    k = kitchen
    doneness = 'medium' if fault == 'heater-dead' else 'light'
    order, _ = k.submit(['cheese', 'vegemite'], doneness)
    run_to_step(k, order, step)
    k.world.set_fault(fault, True)
    k.run_until(lambda: order.finished, 200)
    k.run(1.0)
    assert order.state == 'failed' and order.failure['reason'] == reason, order.failure
    assert k.shutdown.fault.reason == reason
    assert k.shutdown.fault.help == FAULT_HELP[reason]
    safe = outputs_safe(k)
    assert safe['heater_pin'] is False and safe['moving'] == []
    assert safe['relay_closed'] is (fault == 'heater-welded')
    assert_accounted(k, order)
    assert k.kitchen.state(k.clock.monotonic()) == 'faulted'

    k.world.set_fault(fault, False)
    k.run(1.0)
    assert person_resets(k).reason == reason
    after = make_toastie(k, doneness='light')
    assert after.state == 'done', after.failure
    assert delivered(k)[-1]['units'] == {'bread': 2, 'cheese': 1}


@pytest.mark.parametrize('fault, alert', [('bin-sensor-nack', 'bin-sensor'),
                                          ('chiller-dead', None)])
def test_kitchen_bin_fault_during_an_order_is_chillybins_to_report(kitchen, fault, alert):
    """The bin's own faults do not stop a toastie: chillybin reports them (a dead chiller
    after 15 minutes above 5 C) and food safety counts the time."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    run_to_step(k, order, 'dispensing')
    k.world.set_fault(fault, True)
    k.run_until(lambda: order.finished, 200)
    assert order.state == 'done', order.failure
    assert not k.shutdown.latched
    alerts = [a['alert'] for a in k.chilly.alerts(k.clock.monotonic())]
    if alert:
        assert alert in alerts
    assert_accounted(k, order)


def test_kitchen_no_toastie_starts_on_the_tray_while_the_press_starts_the_conveyor(kitchen):
    """Found by the concurrency campaign: the press station (delivering a toastie) saw the
    assembler idle and started the conveyor while the assembler, on its own thread, started
    the next toastie: its first slice rode into the press and the chute got 6 sandwiches
    for 5 toasties. Here the assembler's tick is forced into that moment."""
    k = kitchen
    first, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: first.state == 'toasting' and k.tray.waiting is None, 900)
    k.assembler.set_paused(True)
    k.run_until(lambda: k.press.phase == 'delivering', 900)
    second, _ = k.submit(['cheese'], 'light')
    k.assembler.set_paused(False)
    claim = k.tray.claim
    raced = {}

    def claim_with_the_assembler_ticking():
        # The press has decided to index (the assembler idle) and claims the belt: the
        # assembler's tick on its own thread comes in at exactly this moment.
        other = threading.Thread(target=k.assembler.tick, args=(now, wall))
        other.start()
        other.join(0.5)
        raced['started'] = k.assembler.order is not None
        claim()
        raced['thread'] = other

    k.tray.claim = claim_with_the_assembler_ticking
    now, wall = k.clock.monotonic(), k.clock.time()
    k.press.tick(now, wall, k.assembler, k.book.queued())
    raced['thread'].join(5)
    k.tray.claim = claim
    assert k.assembler.order is None, 'the assembler started after the belt was claimed'
    assert raced['started'] is False, 'the assembler started while the conveyor was starting'
    assert k.assembler.order is None and k.press.phase == 'indexing'
    k.run_until(lambda: second.finished, 900)
    assert second.state == 'done', second.failure
    assert [s['units'] for s in delivered(k)] == [{'bread': 2, 'cheese': 1}] * 2


# -- a pause that cannot stick ---------------------------------------------------------------------
def test_kitchen_a_pause_with_an_expiry_resumes_by_itself(kitchen):
    k = kitchen
    k.kitchen.pause(True, expires=k.clock.time() + 10)
    order, _ = k.submit(['cheese'], 'light')
    k.run(9)
    assert order.state == 'queued' and k.kitchen.status(*now_wall(k))['paused']
    assert k.store.meta()['pause_expires'] == k.kitchen.pause_expires
    k.run(1.5)
    status = k.kitchen.status(*now_wall(k))
    assert not status['paused'] and status['pause_expires'] is None
    assert any('the pause expired' in e.get('detail', '') for e in k.store.events.recent(5))
    k.run_until(lambda: order.finished, 400)
    assert order.state == 'done'


def test_kitchen_a_pause_with_no_expiry_stays_and_resume_forgets_the_expiry(kitchen):
    k = kitchen
    k.kitchen.pause(True)
    k.run(30)
    assert k.kitchen.status(*now_wall(k))['paused']
    k.kitchen.pause(True, expires=k.clock.time() + 5)
    k.kitchen.pause(False)
    assert k.store.meta()['pause_expires'] is None and k.kitchen.pause_expires is None


def test_kitchen_an_expired_pause_is_resumed_at_start(restartable):
    k = restartable
    k.kitchen.pause(True, expires=k.clock.time() + 5)
    restart(k)       # restarted before it expired: still paused
    assert k.kitchen.status(*now_wall(k))['paused']
    k.kitchen.pause(True, expires=k.clock.time() + 5)
    k.clock.advance(60)     # jafflr was down (say, a deploy died) while the pause ran out
    restart(k)
    assert not k.kitchen.status(*now_wall(k))['paused']


def test_kitchen_a_pause_with_no_expiry_survives_a_restart(restartable):
    k = restartable
    k.kitchen.pause(True)
    k.clock.advance(3600)
    restart(k)
    assert k.kitchen.status(*now_wall(k))['paused']


def test_kitchen_drain_bound_covers_the_press_and_the_tray_at_the_longest_profile():
    from firmware.heater.profiles import DONENESS, Profile
    from firmware.kitchen import CLOSE_S, EJECT_S, LOAD_S, OPEN_S, drain_bound_s
    longest = max(p.toast_s for p in DONENESS.values())
    bound = drain_bound_s()
    assert bound >= 2 * (longest + LOAD_S + CLOSE_S + OPEN_S + EJECT_S) + 200  # + heating from cold
    assert bound == pytest.approx(2 * (600 + 14) + (230 - 20) / 0.8)
    longer = dict(DONENESS, charcoal=Profile('charcoal', 230.0, 900.0))
    assert drain_bound_s(longer) == pytest.approx(bound + 2 * 300)


def test_kitchen_a_hold_that_began_before_the_fault_does_not_clear_it(kitchen):
    """A button held since before the fault latched (stuck, shorted, or held through the
    trip) counts for nothing, even if the hold completes after it."""
    from firmware.errors import ResetRefused
    k = kitchen
    k.world.hold_button('reset', 5.0)      # pressed now, let go 5 s later
    k.run(1.0)
    k.shutdown.trip('heater-runaway', 'a test', k.clock.monotonic())
    k.run(4.5)                              # the hold completes 1 s after the trip
    with pytest.raises(ResetRefused, match='hold the reset button'):
        k.kitchen.reset(*now_wall(k), 'a test')
    assert not k.kitchen.reset_status(k.clock.monotonic())['allowed']
    k.hold_reset_button()
    assert k.kitchen.reset(*now_wall(k), 'a test').reason == 'heater-runaway'


def test_kitchen_first_start_on_a_new_state_dir_moves_nothing_by_itself(tmp_path):
    k = InProcessMachine(tmp_path)
    try:
        k.kitchen.recover(*now_wall(k))
        assert not k.shutdown.latched and not k.press.clearing
        for _ in range(30):
            k.run(1.0)
            assert outputs_safe(k)['moving'] == [], 'the press or the conveyor moved at start'
    finally:
        k.close()


def test_kitchen_status_does_not_wait_for_the_disk_while_a_toastie_starts(restartable):
    """The status is answered on the HTTP loop (api/jafflr/service.py): while the assembler
    takes the next order (the book's write, with its fsync), the tray's lock is free, and
    the machine reads busy throughout, so the press starts no conveyor and a deploy waits."""
    k = restartable
    book = k.kitchen.book
    writing, disk_free = threading.Event(), threading.Event()
    real_save = book.store.save_order

    def slow_save(order, *args, **kwargs):
        if order.state == 'assembling' and not disk_free.is_set():
            writing.set()
            disk_free.wait(5)
        return real_save(order, *args, **kwargs)
    book.store.save_order = slow_save
    try:
        order, _ = k.submit(['cheese'], 'light')
        ticking = threading.Thread(target=k.assembler.tick, args=now_wall(k))
        ticking.start()
        assert writing.wait(5), 'the assembler did not take the order'
        read = []
        reader = threading.Thread(target=lambda: read.append(k.kitchen.status(*now_wall(k))))
        reader.start()
        reader.join(1)
        assert read, 'the status waited for the book\'s write'
        assert read[0]['busy'] and k.assembler.busy
        assert not k.kitchen.drained(), 'a drain would not wait for the toastie starting'
        disk_free.set()
        ticking.join(5)
        assert k.assembler.order is order and k.assembler.busy
    finally:
        disk_free.set()
        book.store.save_order = real_save
