"""The assembly station on the whole simulated machine (InProcessMachine, fake clock): what
it takes from chillybin, what the dispensers drop, and how every unit is accounted for
when something goes wrong."""
import pytest

from firmware.errors import InvalidRequest, NotEnoughStock, Unavailable
from tests.support.kitchen import available, bay_units, delivered, on_tray, outputs_safe

CHEESE_VEGEMITE = {'bread': 2, 'cheese': 1, 'vegemite': 1}


def minus(before, taken):
    return {n: before[n] - taken.get(n, 0) for n in before}


def drops(k):
    """The ingredients the world dropped on the tray, in order."""
    return [text.split()[3] for _, text in list(k.world.events) if ' dropped ' in text]


def assemble(k, ingredients=('cheese', 'vegemite'), doneness='light', limit_s=60, **fields):
    order, _ = k.submit(list(ingredients), doneness, **fields)
    k.run_until(lambda: order.state != 'queued' and k.assembler.order is None, limit_s)
    return order


# -- a toastie as it should be ---------------------------------------------------------------------
def test_assembler_drops_bread_first_and_last_and_each_unit_leaves_its_bay(kitchen):
    k = kitchen
    before_bays, before_stock = bay_units(k), available(k)
    order = assemble(k)
    assert order.state == 'assembled' and order.step == 'waiting for the press', order.failure
    assert drops(k) == ['bread', 'cheese', 'vegemite', 'bread']
    assert on_tray(k) == CHEESE_VEGEMITE
    assert bay_units(k) == minus(before_bays, CHEESE_VEGEMITE)
    assert available(k) == minus(before_stock, CHEESE_VEGEMITE)
    assert order.stock == {'mode': 'v2', 'reservation': 'r1', 'reserved': CHEESE_VEGEMITE,
                           'dropped': CHEESE_VEGEMITE, 'taken': CHEESE_VEGEMITE}
    r = k.chilly.desk.reservation('r1')
    assert r.state == 'taken' and r.taken == CHEESE_VEGEMITE
    assert r.key == f'jafflr-{order.id}-{order.created_at:.3f}'


def test_assembler_waits_for_the_load_cell_before_the_next_unit(kitchen):
    """No dispenser starts until chillybin has seen the previous unit leave its bay."""
    k = kitchen
    order, _ = k.submit(['cheese'], 'light')
    runs, was_running = [], None
    while order.state in ('queued', 'assembling'):
        k.step()
        running = next((b.index for b in k.world.bays
                        if k.world.is_active(f'dispenser_{b.index}')), None)
        if running is not None and was_running is None:
            dropped = order.stock.get('dropped', {})
            runs.append((running, sum(dropped.values()), dict(k.chilly.desk.reservation('r1').taken)))
        was_running = running
    # each run started once chillybin had booked every earlier unit as gone from its bay
    assert runs == [(0, 0, {}), (1, 1, {'bread': 1}), (0, 2, {'bread': 1, 'cheese': 1})]


# -- refused before anything is taken --------------------------------------------------------------
@pytest.mark.parametrize('ingredients, doneness, field', [
    ([], 'medium', 'i'),                              # no ingredients
    (['vegemite'], 'medium', 'i'),                    # no cheese
    (['cheese', 'bread'], 'medium', 'i'),             # the machine adds the bread
    (['cheese'] * 7, 'medium', 'i'),                  # more than fits
    (['cheese'], 'crispy', 'doneness'),               # unknown doneness
    (['cheese', 'pineapple'], 'medium', 'i'),         # no such bay
])
def test_assembler_bad_toastie_is_refused_before_anything_is_taken(kitchen, ingredients,
                                                                   doneness, field):
    k = kitchen
    before_bays, before_stock = bay_units(k), available(k)
    with pytest.raises(InvalidRequest) as refused:
        k.submit(ingredients, doneness)
    assert refused.value.field == field
    k.run(5.0)
    assert k.book.orders == {} and k.chilly.desk.ledger.by_id == {}
    assert bay_units(k) == before_bays and available(k) == before_stock
    assert not any(k.world.is_active(f'dispenser_{b.index}') for b in k.world.bays)


def test_assembler_out_of_stock_counts_the_toasties_ahead(kitchen):
    k = kitchen
    k.assembler.set_paused(True)
    for _ in range(5):                          # all 10 slices of bread
        k.submit(['cheese'], 'light')
    with pytest.raises(NotEnoughStock, match='not enough bread: 0 left after the toasties ahead, '
                                             'this one needs 2'):
        k.submit(['cheese'], 'light')
    assert len(k.book.queue) == 5 and k.chilly.desk.ledger.by_id == {}


# -- jams and empty bays -------------------------------------------------------------------------
def test_assembler_jam_fails_the_order_gives_back_what_was_not_taken_and_latches(kitchen):
    k = kitchen
    before_bays, before_stock = bay_units(k), available(k)
    k.world.set_fault('dispenser-jam:vegemite', True)
    order = assemble(k)
    assert order.state == 'failed' and order.failure['reason'] == 'dispenser-jam'
    assert 'no vegemite reached the tray' in order.failure['detail']
    assert k.shutdown.fault.reason == 'dispenser-jam'
    dropped = {'bread': 1, 'cheese': 1}
    assert order.stock['dropped'] == dropped
    assert order.stock['returned'] == {'bread': 1, 'cheese': 0, 'vegemite': 1}
    assert order.stock['left_bays'] == {'bread': 1, 'cheese': 1, 'vegemite': 0}
    # reserved = what left the bays + what went back, unit for unit
    for name, q in order.stock['reserved'].items():
        assert order.stock['left_bays'][name] + order.stock['returned'][name] == q
    assert k.chilly.desk.reservation(order.stock['reservation']).state == 'cancelled'
    assert k.chilly.desk.ledger.outstanding('vegemite') == 0
    k.run(2.0)
    assert bay_units(k) == minus(before_bays, dropped)
    assert available(k) == minus(before_stock, dropped)
    assert on_tray(k) == dropped, 'the part-made sandwich stays for a person to see'
    assert not any(k.world.is_active(f'dispenser_{b.index}') for b in k.world.bays)


def test_assembler_a_jam_latches_before_the_customer_hears_the_toastie_failed(kitchen):
    """A v1 customer wakes when the order fails and asks for the status at once: by then
    the machine says it is faulted, not still assembling."""
    k = kitchen
    finish, seen = k.book.finish, []

    def finish_and_look(order, state, wall, failure=None):
        seen.append((state, k.kitchen.state(k.clock.monotonic())))
        return finish(order, state, wall, failure)
    k.book.finish = finish_and_look
    k.world.set_fault('dispenser-jam:vegemite', True)
    assemble(k)
    assert seen == [('failed', 'faulted')]


def test_assembler_after_a_jam_is_cleared_and_reset_the_next_toastie_is_made(kitchen):
    k = kitchen
    k.world.set_fault('dispenser-jam:vegemite', True)
    failed = assemble(k)
    assert failed.failure['reason'] == 'dispenser-jam'
    with pytest.raises(Unavailable, match='dispenser-jam'):
        k.submit(['cheese'], 'light')
    k.world.set_fault('dispenser-jam:vegemite', False)
    k.kitchen.reset(k.clock.monotonic(), k.clock.time(), 'test')
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.finished, 300)
    assert order.state == 'done', order.failure
    chute = [s['units'] for s in delivered(k)]
    assert chute == [{'bread': 1, 'cheese': 1}, CHEESE_VEGEMITE], \
        'the reset cleared the part-made sandwich to the chute before the next'


def test_assembler_bay_emptied_while_queued_fails_the_order_and_takes_nothing(kitchen):
    k = kitchen
    k.assembler.set_paused(True)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.world.fill('vegemite', 0)                 # someone empties the bay
    k.run(1.0)
    k.assembler.set_paused(False)
    k.run_until(lambda: order.finished, 30)
    assert order.state == 'failed' and order.failure['reason'] == 'insufficient'
    assert 'vegemite' in order.failure['detail']
    assert k.chilly.desk.ledger.by_id == {} and not k.shutdown.latched
    assert on_tray(k) == {}


def test_assembler_bay_emptied_while_assembling_is_a_jam_not_a_drop(kitchen):
    """A person empties the vegemite bay while the first slice drops: chillybin sees the
    weight fall and may book a unit to the reservation, but nothing reaches the tray."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.step == 'dispensing', 30)
    k.world.fill('vegemite', 0)
    k.run_until(lambda: order.finished or order.state == 'assembled', 60)
    assert 'vegemite' not in on_tray(k)
    assert order.state == 'failed', 'a toastie without its vegemite was passed as assembled'
    assert order.failure['reason'] == 'dispenser-jam'
    assert k.shutdown.fault.reason == 'dispenser-jam'


# -- chillybin trouble ----------------------------------------------------------------------------
class FlakyStock:
    """Wraps the kitchen's chillybin client: `fail[name]` calls to `name` raise Unavailable;
    `lose_answer` makes a reservation at chillybin but loses the answer on its way back."""

    def __init__(self, stock):
        self.stock = stock
        self.fail = {}
        self.lose_answer = 0
        self.calls = []

    def __getattr__(self, name):
        real = getattr(self.stock, name)

        def call(*args, **kw):
            self.calls.append(name)
            if self.fail.get(name):
                self.fail[name] -= 1
                raise Unavailable('chillybin at test cannot be reached: connection refused')
            result = real(*args, **kw)
            if name == 'reserve' and self.lose_answer:
                self.lose_answer -= 1
                raise Unavailable('chillybin at test dropped the connection')
            return result
        return call


def test_assembler_retries_a_lost_reservation_answer_without_taking_twice(kitchen):
    k = kitchen
    k.assembler.stock = flaky = FlakyStock(k.stock)
    flaky.lose_answer = 2
    before = available(k)
    order = assemble(k)
    assert order.state == 'assembled', order.failure
    assert flaky.calls.count('reserve') == 3
    assert list(k.chilly.desk.ledger.by_id) == ['r1'], 'the retries made one reservation'
    assert available(k) == minus(before, CHEESE_VEGEMITE)


class SlowStock(FlakyStock):
    """Every call to chillybin takes `seconds` of the machine's time, as a loaded network
    or a busy chillybin does."""

    def __init__(self, stock, clock, seconds):
        super().__init__(stock)
        self.clock, self.seconds = clock, seconds

    def __getattr__(self, name):
        call = super().__getattr__(name)

        def slow(*args, **kw):
            self.clock.advance(self.seconds)
            return call(*args, **kw)
        return slow


def test_assembler_slow_chillybin_does_not_cut_the_dispenser_run_short(kitchen):
    """The cam drops a unit 0.8 s into a 1 s run: a run timed from before a 0.4 s call to
    chillybin lasted 0.6 s, dropped nothing, and was reported as a jam."""
    k = kitchen
    k.assembler.stock = SlowStock(k.stock, k.clock, 0.4)
    order = assemble(k)
    assert order.state == 'assembled', order.failure
    assert on_tray(k) == CHEESE_VEGEMITE


def test_assembler_a_new_jafflr_life_does_not_replay_the_last_ones_reservations(kitchen):
    """jafflr's state was wiped (a new SD card, a reinstall) and numbers its toasties from
    t1 again, while chillybin remembers a day of idempotency keys: the key was
    'jafflr-t1', so the new t1 got the old t1's reservation back (the same toastie) or a
    conflict (another toastie) instead of its own."""
    k = kitchen
    wall = k.clock.time() - 3600
    old, _ = k.chilly.desk.reserve({'bread': 2, 'cheese': 1}, wall, key='jafflr-t1',
                              fingerprint='{"bread": 2, "cheese": 1}')
    k.chilly.desk.cancel(old.id, wall)
    other, _ = k.chilly.desk.reserve({'bread': 2, 'cheese': 1, 'vegemite': 1}, wall, key='jafflr-t2',
                                fingerprint='{"bread": 2, "cheese": 1, "vegemite": 1}')
    k.chilly.desk.cancel(other.id, wall)
    first = assemble(k, ['cheese'])
    second = assemble(k, ['cheese'])
    assert (first.id, second.id) == ('t1', 't2')
    assert first.failure is None and second.failure is None, (first.failure, second.failure)
    assert second.state == 'assembled' and first.state in ('assembled', 'toasting')
    assert first.stock['reservation'] not in (old.id, other.id)
    assert second.stock['reservation'] not in (old.id, other.id)


def test_assembler_chillybin_without_reservations_fails_at_once_and_takes_nothing(kitchen):
    from firmware.errors import Unsupported
    k = kitchen
    k.assembler.stock = flaky = FlakyStock(k.stock)

    def no_reservations(items, key):
        raise Unsupported('chillybin does not offer v2 reservations; nothing was taken')
    flaky.reserve = no_reservations
    before = available(k)
    order, _ = k.submit(['cheese'], 'light')
    took = k.run_until(lambda: order.finished, 30)
    assert took < 1.0, 'asking again would not help'
    assert order.failure['reason'] == 'unavailable'
    assert 'does not offer v2 reservations' in order.failure['detail']
    assert available(k) == before and not k.shutdown.latched


def test_assembler_chillybin_lost_half_way_latches_so_the_tray_is_cleared(kitchen):
    """chillybin stops answering after the first slice dropped: the order fails when its
    deadline passes, and the slice on the tray must not become the bottom of the next
    toastie, so the machine latches until a person has cleared it."""
    k = kitchen
    k.assembler.stock = flaky = FlakyStock(k.stock)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.stock.get('dropped', {}).get('bread') == 1, 30)
    flaky.fail.update(grams=10_000, reservation=10_000, cancel=10_000, bays=10_000)
    k.run_until(lambda: order.finished, 60)
    assert order.failure['reason'] == 'unavailable'
    assert k.shutdown.fault.reason == 'assembly-interrupted'
    assert k.shutdown.fault.detail.startswith(f'{order.id} stopped with 1 bread on the tray: ')
    assert on_tray(k) == {'bread': 1}
    assert order.stock['returned'] == {'pending': 'cancelling at chillybin'}
    flaky.fail.clear()
    k.run(0.2)                          # chillybin answers again: the cancel goes through
    assert k.chilly.desk.reservation(order.stock['reservation']).state == 'cancelled'
    assert order.stock['returned'] == {'bread': 1, 'cheese': 1, 'vegemite': 1}
    assert order.stock['left_bays'] == {'bread': 1, 'cheese': 0, 'vegemite': 0}
    k.kitchen.reset(k.clock.monotonic(), k.clock.time(), 'a test')
    after = assemble(k, ['cheese'])
    assert after.state in ('assembled', 'toasting') and after.failure is None
    assert delivered(k)[0]['units'] == {'bread': 1}, 'the reset cleared the lone slice away'


def test_assembler_chillybin_unreachable_fails_after_its_deadline_with_nothing_taken(kitchen):
    k = kitchen
    k.assembler.stock = flaky = FlakyStock(k.stock)
    flaky.fail['bays'] = 10_000
    before = available(k)
    order, _ = k.submit(['cheese'], 'light')
    took = k.run_until(lambda: order.finished, 60)
    assert order.failure['reason'] == 'unavailable'
    assert 'could not reserve at chillybin' in order.failure['detail']
    assert 9.5 <= took <= 11.0                      # reserve_timeout_s is 10 s
    assert available(k) == before and not k.shutdown.latched


# -- v1 picks ---------------------------------------------------------------------------------------
def test_assembler_pick_v2_off_uses_one_v1_pick_per_ingredient(make_kitchen):
    k = make_kitchen(env={'JAFFLR_FLAG_PICK_V2': 'off'})
    k.run(0.5)
    before = available(k)
    order = assemble(k)
    assert order.state == 'assembled', order.failure
    picks = sorted((r.kind, tuple(r.items.items())) for r in k.chilly.desk.ledger.by_id.values())
    assert picks == [('pick', (('bread', 2),)), ('pick', (('cheese', 1),)),
                     ('pick', (('vegemite', 1),))]
    assert order.stock['mode'] == 'v1' and order.stock['picked'] == CHEESE_VEGEMITE
    assert order.stock['dropped'] == CHEESE_VEGEMITE
    k.run(2.0)
    assert available(k) == minus(before, CHEESE_VEGEMITE)
    assert all(r.state == 'taken' for r in k.chilly.desk.ledger.by_id.values())


def test_assembler_v1_pick_failing_half_way_records_what_was_picked(make_kitchen):
    """The original project's fault, kept visible: v1 picks have no rollback, so what was
    picked before the failure stays taken, and the order says so."""
    k = make_kitchen(env={'JAFFLR_FLAG_PICK_V2': 'off'})
    k.run(0.5)
    k.assembler.set_paused(True)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.world.fill('vegemite', 0)
    k.run(1.0)
    k.assembler.set_paused(False)
    k.run_until(lambda: order.finished, 30)
    assert order.failure['reason'] == 'insufficient'
    assert order.stock['picked'] == {'bread': 2, 'cheese': 1}


def test_assembler_a_pick_left_by_a_failed_v1_order_does_not_take_the_next_ones_drops(kitchen):
    """A v1 order stopped half way leaves its picks open at chillybin for ten minutes (v1
    cannot give them back). chillybin booked each fall in weight to the oldest open
    reservation, that stale pick, so the next toastie's bread never counted as its own
    and it failed as a dispenser jam."""
    k = kitchen
    k.flags.set('pick-v2', enabled=False)
    stopped = assemble_until_first_drop(k)
    assert stopped.stock['picked'] == {'bread': 2, 'cheese': 1}
    assert stopped.stock['dropped'] == {'bread': 1}
    assert {r.kind for r in k.chilly.desk.ledger.open()} == {'pick'}, 'left open at chillybin'
    k.kitchen.reset(k.clock.monotonic(), k.clock.time(), 'a test')
    k.flags.set('pick-v2', enabled=True)
    after = assemble(k, ['cheese'])
    assert after.state == 'assembled', after.failure
    assert after.stock['mode'] == 'v2' and after.stock['taken'] == {'bread': 2, 'cheese': 1}


def assemble_until_first_drop(k):
    order, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: order.stock.get('dropped', {}).get('bread') == 1, 30)
    k.kitchen.stop(k.clock.monotonic(), k.clock.time(), 'a test')
    k.run(1.0)
    assert order.failure['reason'] == 'stopped'
    return order


def notice(k):
    """chillybin reads its parts until a failed one is reported (at once, between two
    station ticks)."""
    from firmware.chillybin import FAILED_AFTER_READS
    for _ in range(FAILED_AFTER_READS):
        k.chilly.tick(k.clock.monotonic(), k.clock.time())


def test_assembler_does_not_run_a_dispenser_whose_load_cell_cannot_be_read(kitchen):
    """The vegemite cell fails while the bread drops: the vegemite dispenser does not run,
    so no unit leaves its bay unseen; the order fails with loadcell-error and, as a slice
    lies on the tray, the machine latches for a person to clear it."""
    k = kitchen
    before = bay_units(k)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.stock.get('dropped', {}).get('cheese') == 1, 30)
    k.world.set_fault('loadcell-nack:vegemite', True)
    notice(k)                   # chillybin reports the cell before the vegemite run
    k.run_until(lambda: order.finished, 30)
    assert order.failure['reason'] == 'loadcell-error', order.failure
    assert "the vegemite load cell cannot be read" in order.failure['detail']
    assert k.shutdown.fault.reason == 'loadcell-error'
    assert k.world.bays[2].drops == 0 and bay_units(k)['vegemite'] == before['vegemite']
    assert on_tray(k) == {'bread': 1, 'cheese': 1}
    assert order.stock['returned'] == {'bread': 1, 'cheese': 0, 'vegemite': 1}


def test_assembler_load_cell_failed_before_any_drop_fails_the_order_without_latching(kitchen):
    """Nothing on the tray yet: the order fails and its reservation goes back, and the
    machine carries on (the next toastie that needs the bay is refused by name)."""
    k = kitchen
    order, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: 'reserved' in order.stock, 5)
    k.world.set_fault('loadcell-nack:bread', True)
    notice(k)                   # chillybin reports the cell before the first run
    k.run_until(lambda: order.finished, 30)
    assert order.failure['reason'] == 'loadcell-error', order.failure
    assert not k.shutdown.latched and on_tray(k) == {}
    assert k.world.bays[0].drops == 0
    assert order.stock['returned'] == {'bread': 2, 'cheese': 1}


def test_assembler_stopped_as_a_unit_falls_gives_back_only_once_the_load_cell_saw_it(kitchen):
    """Found by the crash campaign: the dead-man stopped the machine just as a vegemite
    fell; the reservation was cancelled before chillybin's load cell showed the fall, so
    the unit on the tray was booked to nobody ('removal') and the order said it went back."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.stock.get('dropped', {}).get('cheese') == 1
                and k.assembler.phase == 'running', 60)
    dropped_before = k.world.bays[k.world.bay_index('vegemite')].drops
    k.run_until(lambda: k.world.bays[k.world.bay_index('vegemite')].drops > dropped_before, 5)
    k.kitchen.stop(k.clock.monotonic(), k.clock.time(), 'test: the unit is falling')
    k.run_until(lambda: order.finished, 5)
    assert order.stock['returned'] == {'pending': 'giving back once the load cell has settled'}
    k.run(6.0)
    assert order.stock['left_bays'] == {'bread': 1, 'cheese': 1, 'vegemite': 1}
    assert order.stock['returned'] == {'bread': 1, 'cheese': 0, 'vegemite': 0}
    assert on_tray(k) == {'bread': 1, 'cheese': 1, 'vegemite': 1}
    assert not [e for e in k.chilly.store.events.recent(50, 'removal')]


# -- a fault while a unit is in flight (docs/architecture.md, "Faults in the middle of a drop") --
# The cam lets a unit go 0.8 s into the dispenser's 1 s run; chillybin's load cell sees it
# leave a few readings later. In between, the unit is in flight: the boundary of each fault.
BEFORE_THE_CAM_S, AFTER_THE_CAM_S = 0.5, 0.9


def into_the_run(k, order, name, seconds):
    """Tick until `name`'s dispenser has run `seconds` for `order`; returns its bay (world)."""
    a, bay = k.assembler, k.world.bays[k.world.bay_index(name)]
    k.run_until(lambda: a.order is order and a.phase == 'running' and a.plan[0] == name, 60)
    started = k.clock.monotonic()
    k.run_until(lambda: k.clock.monotonic() - started >= seconds - 1e-6, 5)
    k.world.sync()
    assert bay.dropped_this_run == (seconds >= bay.drop_s), (seconds, bay.run_s)
    assert name not in order.stock.get('dropped', {}), 'the load cell saw it already'
    return bay


@pytest.mark.parametrize('seconds', [BEFORE_THE_CAM_S, AFTER_THE_CAM_S])
def test_assembler_boundary_load_cell_failing_with_a_unit_in_flight_fails_safe(kitchen, seconds):
    """Found by the fault campaign (seed 3, 0.86 s into the vegemite run): the unit falls
    either way, but the software only knows a unit arrived when the load cell saw it leave.
    So the order fails with loadcell-error and latches for a person: check the tray."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    into_the_run(k, order, 'vegemite', seconds)
    k.world.set_fault('loadcell-nack:vegemite', True)
    k.run_until(lambda: order.finished, 30)
    assert order.failure['reason'] == 'loadcell-error', order.failure
    assert order.failure['detail'].endswith('check the tray'), order.failure
    assert k.shutdown.fault.reason == 'loadcell-error'
    assert on_tray(k) == {'bread': 1, 'cheese': 1, 'vegemite': 1}, 'it did fall'
    assert order.stock['dropped'] == {'bread': 1, 'cheese': 1}, 'only what the cell saw'
    assert outputs_safe(k) == {'heater_pin': False, 'relay_closed': False, 'moving': []}
    # chillybin gave the unseen unit back; once the cell reads again it finds it gone and
    # says so (a removal nobody expected), so its count is right again.
    counted = k.chilly.scales.bays['vegemite'].units
    k.world.set_fault('loadcell-nack:vegemite', False)
    k.run(2.0)
    assert k.chilly.scales.bays['vegemite'].units == counted - 1
    assert [e['units'] for e in k.chilly.store.events.recent(50, 'removal')
            if e['bay'] == 'vegemite'] == [1]


def test_assembler_boundary_load_cell_failing_once_the_drop_was_seen_makes_the_toastie(kitchen):
    """The other side: the vegemite was seen leaving before its cell failed, and no other
    vegemite is to drop, so the toastie is made (the next one needing it is refused)."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: order.stock.get('dropped', {}).get('vegemite') == 1, 60)
    k.world.set_fault('loadcell-nack:vegemite', True)
    k.run_until(lambda: order.state == 'assembled' or order.finished, 30)
    assert order.state == 'assembled' and not k.shutdown.latched, order.failure
    assert on_tray(k) == CHEESE_VEGEMITE


def test_assembler_boundary_load_cell_reported_just_after_chillybin_counted_the_drop(kitchen):
    """chillybin booked the fall to the reservation, then reported the cell failed before
    the assembler compared the bay's weight: still not seen by the assembler, so the same
    loadcell-error latch (a plain 'sensor' failure of the order before)."""
    from firmware.errors import SensorFault
    k = kitchen
    k.assembler.stock = flaky = FlakyStock(k.stock)
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    into_the_run(k, order, 'vegemite', AFTER_THE_CAM_S)
    real_grams = flaky.stock.grams

    def grams(name):
        if name == 'vegemite':
            raise SensorFault('the vegemite load cell cannot be read (TransferFailed: '
                              'loadcell_2 (NAU7802 at 0x2A): read failed)', field=name)
        return real_grams(name)
    flaky.grams = grams
    k.run_until(lambda: order.finished, 30)
    assert order.failure['reason'] == 'loadcell-error', order.failure
    assert order.failure['detail'].startswith('the bay 2 dispenser ran but the vegemite load '
                                              'cell cannot be read (TransferFailed')
    assert order.failure['detail'].endswith('check the tray')
    assert k.shutdown.fault.reason == 'loadcell-error'
    assert order.stock['left_bays'] == CHEESE_VEGEMITE | {'bread': 1}, 'chillybin saw it'
    assert on_tray(k) == {'bread': 1, 'cheese': 1, 'vegemite': 1}


@pytest.mark.parametrize('seconds', [BEFORE_THE_CAM_S, AFTER_THE_CAM_S])
def test_assembler_boundary_jam_in_flight_is_found_by_the_unit_still_to_fall(kitchen, seconds):
    """A jam is the dispenser's, the load cell still sees: a unit the cam had let go
    falls and counts, and the jam is found by the next unit from that bay."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    into_the_run(k, order, 'vegemite', seconds)
    k.world.set_fault('dispenser-jam:vegemite', True)
    k.run_until(lambda: order.state == 'assembled' or order.finished, 30)
    if seconds < k.world.bays[2].drop_s:
        assert order.failure['reason'] == 'dispenser-jam', order.failure
        assert k.shutdown.fault.reason == 'dispenser-jam'
        assert on_tray(k) == {'bread': 1, 'cheese': 1}
        assert order.stock['returned'] == {'bread': 1, 'cheese': 0, 'vegemite': 1}
        return
    assert order.state == 'assembled' and not k.shutdown.latched, order.failure
    assert on_tray(k) == CHEESE_VEGEMITE
    k.run_until(lambda: order.finished, 300)
    following = assemble(k)
    assert following.failure['reason'] == 'dispenser-jam', 'the next vegemite finds the jam'


@pytest.mark.parametrize('stop_by', ['stop', 'estop', 'lid-open'])
@pytest.mark.parametrize('seconds', [BEFORE_THE_CAM_S, AFTER_THE_CAM_S])
def test_assembler_boundary_stopped_in_flight_books_the_unit_where_it_is(kitchen, seconds,
                                                                         stop_by):
    """A stop, the e-stop or the lid mid-run: the dispenser stops at once, so a unit the
    cam had not let go stays in its bay and goes back to stock; one it had let go lies on
    the tray and is booked to the order (the give-back waits for the cell to see it)."""
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    bay = into_the_run(k, order, 'vegemite', seconds)
    if stop_by == 'stop':
        k.kitchen.stop(k.clock.monotonic(), k.clock.time(), 'a test')
    else:
        k.world.set_fault(stop_by, True)
    k.run_until(lambda: order.finished, 5)
    assert order.failure['reason'] == {'stop': 'stopped'}.get(stop_by, stop_by), order.failure
    assert k.shutdown.latched
    assert order.stock['returned'] == {'pending': 'giving back once the load cell has settled'}
    k.run(6.0)
    fell = int(seconds >= bay.drop_s)
    assert order.stock['left_bays'] == {'bread': 1, 'cheese': 1, 'vegemite': fell}
    assert order.stock['returned'] == {'bread': 1, 'cheese': 0, 'vegemite': 1 - fell}
    assert on_tray(k) == {'bread': 1, 'cheese': 1, **({'vegemite': 1} if fell else {})}
    assert not k.chilly.store.events.recent(50, 'removal'), 'a unit booked to nobody'
    assert outputs_safe(k)['moving'] == []
