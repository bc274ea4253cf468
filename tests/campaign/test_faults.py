"""Part 1: every named fault of the simulated machine (hardware/sim/world.py FAULTS),
switched on at a random step of an order, on the whole machine in process (InProcessMachine,
fake clock).

For each case it checks that the machine ends safe (heater pin low and the relay open
unless it is welded, no motor running, the press not moved after the latch, the press
open once reset), that the fault is found with its own reason (a latched shutdown, or
for the chilly bin's own parts chillybin's alert), what became of the order (failed
with the fault's reason, or done when it left the machine before the fault latched, or
still queued with nothing taken), that stock is accounted for (what chillybin says
left each bay equals what physically left it in the simulated world; no reservation is
left open), and that after the fault is cleared and the machine reset (the admin reset
path) the next toastie is made.

A fault in a part the order no longer uses (a jammed dispenser after its last unit, a
press that jams after it last moved, a dead element once the toastie is out) is found
by the next use; then the next order, made with the fault still on, must find it.

A fault that comes while a unit is in flight (its dispenser switched on, its fall not yet
seen by chillybin's load cell) meets the rule that a unit is on the tray only once the
load cell saw it leave its bay (docs/architecture.md, "Faults in the middle of a drop"):
- its bay's load cell fails: the order fails with loadcell-error and latches, "check the
  tray", even when the unit did fall (the software cannot know it arrived);
- its bay's dispenser jams: the unit falls if the cam had already let it go (0.8 s into
  the 1 s run) and the order is made, the next one finding the jam; otherwise nothing
  falls and the order fails with dispenser-jam;
- a stop, the e-stop or the lid: the order fails with the latch's reason and its
  reservation is given back only after the drop timeout, so a unit still falling is
  booked to it (on the tray, not back in stock);
- the press jams: found in this order unless the press had made its last move for it
  (ejecting); then the next order finds it.
These boundaries are also proved one by one on the fake clock, apart from the seeds:
tests/firmware/test_assembler.py and test_press.py, `*_boundary*`.
"""
import random
import zlib

import pytest

from inprocess import InProcessMachine
from firmware.chillybin import FAILED_AFTER_READS
from firmware.errors import SensorFault
from firmware.safety import FAULT_HELP
from hardware.sim.world import FAULTS
from tests.support.kitchen import bay_units, hot_plate, outputs_safe, person_resets

from .parallel import run_all, workers
from .report import report, sizes

ORDER = ['cheese', 'vegemite']               # dropped as bread, cheese, vegemite, bread
UNITS = ['bread', *ORDER, 'bread']
DONENESS = 'light'
START_PLATE_C = 150.0     # below light's 180 C, so the toastie waits for the plate a while

STEPS = ('queued', 'reserving', *[f'dispensing {i + 1} ({n})' for i, n in enumerate(UNITS)],
         'waiting for the plate', 'loading', 'closing', 'toasting', 'opening', 'ejecting')
# How long into a step the fault may come on (s): shorter than the step lasts.
STEP_DELAY_S = {'queued': 0.0, 'reserving': 0.0, 'dispensing': 0.9, 'waiting for the plate': 4.0,
                'loading': 2.5, 'closing': 3.5, 'toasting': 55.0, 'opening': 3.5, 'ejecting': 2.5}

# fault -> the reason the one shutdown latches with.
LATCHES = {
    'plate-sensor-open': 'plate-sensor-open',
    'plate-sensor-nack': 'plate-sensor-error',
    'plate-sensor-frozen': 'plate-sensor-error',
    'heater-dead': 'heater-no-current',
    'heater-welded': 'heater-current-while-off',
    'thermal-fuse-open': 'heater-no-current',
    'feedback-stuck': 'heater-feedback-mismatch',
    'current-sense-failed': 'current-sense-error',
    # Stuck at 0 A it looks like no current when heating; stuck at a heating current, like
    # a welded relay once the heater is off.
    'current-sense-stuck': ('heater-no-current', 'heater-current-while-off'),
    'dispenser-jam': 'dispenser-jam',
    'press-jam': 'press-jam',
    'lid-open': 'lid-open',
    'estop': 'estop',
}
# The chilly bin's own parts do not stop the heater: chillybin raises an alert by name and
# the toastie goes on (the chiller runs while the bin sensor is unreadable, the cold side;
# food safety counts the time). A load cell is the exception that fails an order: see
# _expect_loadcell.
ALERTS = {'bin-sensor-nack': 'bin-sensor', 'chiller-dead': 'chiller-not-cooling',
          'loadcell-nack': 'loadcell'}
# Faults the machine sees at once (a failed read on the next control tick, or a line
# change that trips from gpiozero's callback): within one control tick.
AT_ONCE_S = {'plate-sensor-open': 0.15, 'plate-sensor-nack': 0.15, 'lid-open': 0.15,
             'estop': 0.15, 'current-sense-failed': 0.15,
             # no new conversion for the controller's stale limit (1.5 s), plus a tick
             'plate-sensor-frozen': 2.0,
             # chillybin names a part after FAILED_AFTER_READS failed reads, 0.1 s apart
             'bin-sensor-nack': FAILED_AFTER_READS * 0.1 + 0.05,
             'loadcell-nack': FAILED_AFTER_READS * 0.1 + 0.05}
AT_ONCE = set(AT_ONCE_S)
# Faults found only by using the part: the next order finds them if this one did not.
FOUND_BY_USE = {'heater-dead', 'heater-welded', 'dispenser-jam', 'press-jam',
                'thermal-fuse-open', 'feedback-stuck', 'current-sense-stuck'}
# Wiring faults the running machine cannot see, only commissioning can (a bypassed
# heartbeat gate; a welded contactor until the e-stop is pressed): tests/hardware/test_check_safety.py.
FOUND_AT_COMMISSIONING = {'deadman-bypassed', 'contactor-welded'}


def fault_names(rng):
    """Every fault in the world's list; a bay fault on a bay the order uses, chosen by rng."""
    bays = sorted(set(UNITS))
    return [f.replace('<bay>', rng.choice(bays)) for f in sorted(FAULTS)
            if f not in FOUND_AT_COMMISSIONING]


def base(fault):
    return fault.partition(':')[0]


def current_step(k, order):
    """The step the order is at, as STEPS names them (None between two of them)."""
    a = k.assembler
    if order.step == 'dispensing':
        if a.order is order and a.phase == 'running':
            i = len(order.units) - len(a.plan)
            return f'dispensing {i + 1} ({order.units[i]})'
        return None
    return order.step


def units_still_to_drop(k, order):
    """The units this order will still take from the bays (the running dispenser's unit
    counts unless the world already dropped it)."""
    a = k.assembler
    if order.state == 'queued' or (a.order is order and a.phase == 'reserve'):
        return list(order.units)
    if a.order is not order:
        return []
    plan = list(a.plan)
    if a.phase == 'running' and k.world.bays[a.bays[plan[0]]['slot']].dropped_this_run:
        plan.pop(0)
    return plan


class Case:
    """One fault switched on at one step of one order, and what the machine made of it."""

    def __init__(self, tmp_path, fault, step, seed, rng):
        self.fault, self.step, self.seed = fault, step, seed
        self.bay = fault.partition(':')[2] or None
        self.k = k = InProcessMachine(tmp_path, seed=seed)
        hot_plate(k, START_PLATE_C)
        k.run(0.5)
        self.rng = rng
        self.before = bay_units(k)
        # chillybin's first count of a bay nobody declared is estimated from its weight
        # (units vary), so compare changes, not counts.
        self.counted_before = {n: k.chilly.scales.bays[n].units for n in self.before}
        self.figures = {'fault': fault, 'step': step, 'seed': seed}
        self.detected_at = self.press_at_latch = None

    # -- running -------------------------------------------------------------------------------
    def switch_on_at_step(self):
        k = self.k
        self.order, _ = k.submit(ORDER, DONENESS)
        k.run_until(lambda: current_step(k, self.order) == self.step or self.order.finished, 900)
        assert current_step(k, self.order) == self.step, f'the order never reached {self.step}'
        kind = 'dispensing' if self.step.startswith('dispensing') else self.step
        delay = round(self.rng.uniform(0, STEP_DELAY_S[kind]), 2)
        start = k.clock.monotonic()
        while k.clock.monotonic() - start < delay and current_step(k, self.order) == self.step:
            k.step()
        self.at_step = current_step(k, self.order)
        assert self.at_step == self.step, f'the delay of {delay} s left the step {self.step}'
        self.to_drop = units_still_to_drop(k, self.order)
        k.world.set_fault(self.fault, True)
        self.on_at = k.clock.monotonic()
        self.figures.update(delay_s=delay, on_at_s=round(self.on_at, 2))
        self._watch()

    def _detected(self):
        k = self.k
        if k.shutdown.fault is not None:
            return k.shutdown.fault.at
        alert = ALERTS.get(base(self.fault))
        if alert and any(a['alert'] == alert and a.get('bay', self.bay) == self.bay
                         for a in k.chilly.alerts(k.clock.monotonic())):
            return k.clock.monotonic()
        return None

    def _watch(self):
        """Note when the fault is first found, and where the press was then."""
        if self.detected_at is None:
            self.detected_at = self._detected()
            if self.detected_at is not None:
                self.press_at_latch = self.k.world.press.position
                # A latch fails the order in the same tick: it was found during the order
                # unless the order had finished before.
                left = self.order.finished_at
                latched_wall = self.k.clock.time() - (self.k.clock.monotonic() - self.detected_at)
                if hasattr(self, 'probe'):
                    self.found_in = 'the next order'
                elif left is None or left >= latched_wall:
                    self.found_in = 'the order'
                else:
                    self.found_in = 'idle, after the order'

    def run_until(self, condition, limit_s):
        def watched():
            self._watch()
            return condition()
        return self.k.run_until(watched, limit_s)

    def settle(self):
        """Run until the order has left the machine (or is kept queued by a latched fault)
        and the stations have reacted; then, if the fault was not found yet, until it is."""
        k, order = self.k, self.order
        self.run_until(lambda: order.finished or (order.state == 'queued' and k.shutdown.latched),
                       900)
        # A stop mid-dispense gives the reservation back only once the load cell has had
        # the drop timeout (4 s) to see a unit still falling: wait past it.
        self.run_for(6.0)
        if self.detected_at is None and base(self.fault) in ALERTS:
            self.run_until(lambda: self.detected_at is not None, 3600)
        if self.detected_at is None and base(self.fault) in FOUND_BY_USE:
            self.run_for(60.0)      # idle, the plate in standby: a dead element may show
        if self.detected_at is None:
            assert base(self.fault) in FOUND_BY_USE, f'{self.fault} was never found'
            self.found_in = 'the next order'
            self.probe, _ = k.submit(ORDER, DONENESS)
            self.run_until(lambda: self.probe.finished, 900)
            self.run_for(6.0)
        self.figures.update(detection_s=round(self.detected_at - self.on_at, 2),
                            found_in=self.found_in)

    def run_for(self, seconds):
        until = self.k.clock.monotonic() + seconds
        self.run_until(lambda: self.k.clock.monotonic() >= until, seconds + 1)

    # -- stock ---------------------------------------------------------------------------------
    def left_bays_world(self):
        now = bay_units(self.k)
        return {n: self.before[n] - now[n] for n in self.before}

    def left_bays_chillybin(self):
        """Units chillybin saw leave each bay: booked to reservations, or unexplained."""
        k = self.k
        taken = {n: 0 for n in self.before}
        for r in k.chilly.desk.ledger.by_id.values():
            for name, q in r.taken.items():
                taken[name] += q
        for e in k.bin_store.events.recent(10_000, 'removal'):
            taken[e['bay']] += e['units']
        return taken

    def assert_stock_accounted(self, skip=()):
        k = self.k
        world, seen = self.left_bays_world(), self.left_bays_chillybin()
        for name in self.before:
            if name in skip:
                continue
            assert seen[name] == world[name], (f'{name}: chillybin saw {seen[name]} leave, '
                                               f'{world[name]} left the bay ({self.fault} at {self.step})')
            counted = self.counted_before[name] - k.chilly.scales.bays[name].units
            assert counted == world[name], f'{name}: chillybin counts {counted} fewer, ' \
                                           f'{world[name]} left the bay'
        assert k.chilly.desk.ledger.open() == [], 'a reservation was left open'
        for order in [self.order, getattr(self, 'probe', None)]:
            stock = order.stock if order is not None else {}
            reserved = stock.get('reserved')
            if not reserved:
                continue
            if 'taken' in stock:
                assert stock['taken'] == reserved, stock
            else:
                assert all(stock['left_bays'][n] + stock['returned'][n] == q
                           for n, q in reserved.items()), stock
                assert k.chilly.desk.reservation(stock['reservation']).state == 'cancelled'

    def close(self):
        self.k.close()


# -- what each fault must do ----------------------------------------------------------------------
def check_latched(case):
    k, order, fault = case.k, case.order, case.k.shutdown.fault
    reasons = LATCHES[base(case.fault)]
    reasons = reasons if isinstance(reasons, tuple) else (reasons,)
    reason = fault.reason if fault is not None and fault.reason in reasons else reasons[0]
    assert fault is not None and fault.reason == reason, \
        f'{case.fault} at {case.step}: latched {fault and fault.reason}, expected {reason}'
    assert fault.help == FAULT_HELP[reason]
    assert k.kitchen.state(k.clock.monotonic()) == 'faulted'
    # The one shutdown's outputs: heater pin low, relay open (a welded one conducts
    # whatever it is told: the help says to switch off at the wall), nothing moving, and
    # the press left where it was (it moves again only after a person's reset).
    safe = outputs_safe(k)
    assert safe == {'heater_pin': False, 'relay_closed': case.fault == 'heater-welded',
                    'moving': []}, safe
    assert k.world.press.position == case.press_at_latch, 'the press moved after the latch'
    probe = getattr(case, 'probe', None)
    victim = probe if probe is not None else order
    if probe is not None:
        # Found by the next use: this order was made before the fault could show.
        assert order.state == 'done', order.failure
    if victim.state == 'done':
        assert victim.finished_at <= fault.wall, 'done after the fault latched'
    elif victim.state == 'queued':
        # Latched before the assembler took it: nothing was taken, it waits for the reset.
        assert case.step == 'queued' and not victim.stock and base(case.fault) in AT_ONCE
    else:
        assert victim.state == 'failed' and victim.failure['reason'] == reason, victim.failure
    if base(case.fault) == 'dispenser-jam':
        # Found in this order exactly when a unit of the jammed bay was still to drop.
        assert (probe is None) == (case.bay in case.to_drop), (case.to_drop, probe)
    if base(case.fault) == 'press-jam':
        # Every step but the last ends with the press still to move for this toastie.
        assert (probe is None) == (case.step != 'ejecting')


def check_alert_only(case):
    """bin-sensor-nack, chiller-dead: chillybin's alert; the heater and the order go on."""
    k, order = case.k, case.order
    assert not k.shutdown.latched, k.shutdown.fault
    assert order.state == 'done', order.failure
    assert outputs_safe(k)['moving'] == [] and k.world.press.is_open
    if case.fault == 'bin-sensor-nack':
        assert k.chilly.air.error and 'bin_air' in k.chilly.air.error
        assert k.world.is_active('chiller_relay'), 'an unreadable bin keeps the chiller on'


def check_loadcell(case):
    """A bay's load cell that cannot be read: chillybin names it in an alert at once, and
    no dispenser of that bay runs while it cannot be read. An order that has not reserved
    yet is refused (nothing taken); one whose unit from the bay was in flight (its
    dispenser running, whether or not the world already dropped it) or still to drop fails
    with loadcell-error, latching when units lie on the tray for a person to clear (always,
    for a unit in flight: the software cannot know it arrived, so "check the tray"); one
    past it is made, and the next order that needs the bay is refused by name."""
    k, order = case.k, case.order
    alerts = [a for a in k.chilly.alerts(k.clock.monotonic()) if a['alert'] == 'loadcell']
    assert [a['bay'] for a in alerts] == [case.bay] and 'loadcell_' in alerts[0]['detail']
    assert outputs_safe(k)['moving'] == []
    # At most one unit leaves the bay unseen: the one whose dispenser was running, or
    # started before chillybin reported the cell (FAILED_AFTER_READS reads in a row).
    running = case.at_step.startswith('dispensing') and case.at_step.endswith(f'({case.bay})')
    unseen = case.left_bays_world()[case.bay] - case.left_bays_chillybin()[case.bay]
    assert unseen in (0, 1) and (unseen == 0 or running or case.bay in case.to_drop), \
        (unseen, case.figures)
    if running:
        assert unseen == 1, case.figures
    if case.bay not in case.to_drop and not running:
        assert order.state == 'done' and not k.shutdown.latched, order.failure
        with pytest.raises(SensorFault, match=f"the {case.bay} bay's load cell cannot be read"):
            k.submit(ORDER, DONENESS)
    elif 'reserved' not in order.stock:
        assert not k.shutdown.latched and order.state == 'failed', order.failure
        assert order.failure['reason'] == 'sensor' and case.bay in order.failure['detail']
    else:
        assert order.state == 'failed' and order.failure['reason'] == 'loadcell-error', \
            order.failure
        assert case.bay in order.failure['detail']
        with k.world.lock:
            on_tray = k.world.tray.on_tray is not None and k.world.tray.on_tray.units
        fault = k.shutdown.fault
        assert (fault is not None) == bool(on_tray), (fault, on_tray)
        if running:
            # The unit in flight: failed safe, whether or not it reached the tray.
            assert fault is not None and order.failure['detail'].endswith('check the tray'), \
                order.failure
        if fault is not None:
            assert fault.reason == 'loadcell-error'
            safe = outputs_safe(k)
            assert safe == {'heater_pin': False, 'relay_closed': False, 'moving': []}, safe


def recover(case):
    """Clear the fault, reset as a person does (the reset button first for a fault that
    needs them at the machine, refused without it), and make the next toastie (and a
    toastie the fault kept queued). Then everything that left the bays is accounted for."""
    k = case.k
    k.world.set_fault(case.fault, False)
    k.run(1.0)
    if k.shutdown.latched:
        person_resets(k, 'the fault campaign')
    waiting = [o for o in k.book.active() if o.state == 'queued']
    after, _ = k.submit(ORDER, DONENESS)
    k.run_until(lambda: after.finished, 900)
    for order in [*waiting, after]:
        assert order.state == 'done', (order.id, order.failure)
    k.run(2.0)
    assert not k.shutdown.latched and k.world.press.is_open
    assert outputs_safe(k)['moving'] == []
    case.assert_stock_accounted()
    with k.world.lock:
        assert k.world.tray.delivered[-1].describe()['units'] == {'bread': 2, 'cheese': 1,
                                                                  'vegemite': 1}


def run_case(tmp_path, fault, step, seed):
    rng = random.Random(zlib.crc32(f'{fault} {step} {seed}'.encode()))
    case = Case(tmp_path / f'{fault}-{step}-{seed}'.replace(' ', '_').replace(':', '_'),
                fault, step, seed, rng)
    try:
        case.switch_on_at_step()
        case.settle()
        kind = base(case.fault)
        if kind == 'loadcell-nack':
            check_loadcell(case)
            case.assert_stock_accounted(skip=(case.bay,))   # its count waits for the cell
        elif kind in ALERTS:
            check_alert_only(case)
            case.assert_stock_accounted()
        else:
            check_latched(case)
            case.assert_stock_accounted()
        if kind in AT_ONCE:
            assert case.detected_at - case.on_at <= AT_ONCE_S[kind], case.figures
        fault = case.k.shutdown.fault
        order = getattr(case, 'probe', None) or case.order
        case.figures.update(latched=fault and fault.reason,
                            order=order.state if order.state != 'failed' else
                            f"failed: {order.failure['reason']}")
        recover(case)
        case.figures['recovered'] = True
        return case.figures
    finally:
        case.close()


@sizes(short={'seeds': 1, 'every_step': False}, full={'seeds': 3, 'every_step': True})
def test_every_fault_at_a_random_step_ends_safe_explained_and_recovers(tmp_path, size):
    specs = []
    for seed in range(1, size['seeds'] + 1):
        rng = random.Random(seed)
        for fault in fault_names(rng):
            steps = STEPS if size['every_step'] else [rng.choice(STEPS)]
            for step in steps:
                specs.append((tmp_path, fault, step, seed))
    # More than 40 cases (the long campaign's 576) run on every core: each has its own machine
    # on a fake clock, so the figures are the same.
    cases = run_all([(run_case, spec) for spec in specs], least=40)
    processes = workers(len(specs), least=40)
    by_fault = {}
    for c in cases:
        by_fault.setdefault(base(c['fault']), []).append(c)
    lines = [f'{len(cases)} cases: {len(by_fault)} faults x {len({c["step"] for c in cases})} steps '
             f'x {size["seeds"]} seed(s) in {processes} process(es); all '
             f'ended safe, explained, accounted for and recovered']
    for name, found in sorted(by_fault.items()):
        times = sorted(c['detection_s'] for c in found)
        outcome = sorted({c['latched'] or f'alert {ALERTS[name]}' for c in found})
        where = sorted({c['found_in'] for c in found})
        at = f' at {found[0]["step"]} (+{found[0]["delay_s"]} s)' if len(found) == 1 else ''
        lines.append(f'{name}{at}: {", ".join(outcome)}; found in {" / ".join(where)} after '
                     f'{times[0]:.2f}-{times[-1]:.2f} s (median {times[len(times) // 2]:.2f} s)')
    report(f'faults-{size["name"]}', {'size': size, 'cases': cases}, lines)
