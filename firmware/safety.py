"""Heater safety: the fault reasons, the one latched shutdown every output obeys, and the
checks that decide when the plate is not behaving (after Klipper's verify_heater).

A fault latches with its reason, detail and time, and stays until a person resets it,
across restarts: the shutdown saves it (after the outputs are off) through the `save`
it is handed, and the service restores it at start before any output may switch on.
Who may reset which fault is one table, CLEARED_BY: some need a person at the machine
(the reset button held, then the admin token), the rest the token alone.
Trips arrive from the control loop, from gpiozero callbacks (lid, e-stop) and from the
dead-man thread, so the shutdown is thread-safe. Nothing here reads a clock: `now`
(monotonic seconds) and, where known, `wall` (epoch seconds) are handed in.
"""
import logging
import math
import queue
import threading
from dataclasses import dataclass, field, replace

from .config import checked

log = logging.getLogger(__name__)

PLATE_SENSOR_OPEN = 'plate-sensor-open'
PLATE_SENSOR_ERROR = 'plate-sensor-error'
PLATE_SENSOR_FAULT = 'plate-sensor-fault'
PLATE_OVER_TEMPERATURE = 'plate-over-temperature'
HEATER_NOT_HEATING = 'heater-not-heating'
HEATER_RUNAWAY = 'heater-runaway'
CONTROL_LOOP_STALLED = 'control-loop-stalled'
CONTROL_ERROR = 'control-error'
LID_OPEN = 'lid-open'
ESTOP = 'estop'
HEATER_ON_TIME_LIMIT = 'heater-on-time-limit'
STOPPED = 'stopped'
# The machine's moving parts (the stations latch these; a person must look at the tray).
DISPENSER_JAM = 'dispenser-jam'
ASSEMBLY_INTERRUPTED = 'assembly-interrupted'
LOADCELL_ERROR = 'loadcell-error'
PRESS_JAM = 'press-jam'
CONVEYOR_JAM = 'conveyor-jam'
# jafflr started without a finished drain behind it (crash, watchdog, power cut).
UNCLEAN_START = 'unclean-start'
# The safety chain's read-backs (firmware/chain.py). Every one needs a person at the
# machine: each means a part of the chain is not doing what it is told.
HEATER_FEEDBACK_MISMATCH = 'heater-feedback-mismatch'
HEATER_CURRENT_WHILE_OFF = 'heater-current-while-off'
HEATER_NO_CURRENT = 'heater-no-current'
CURRENT_SENSE_ERROR = 'current-sense-error'
SAFETY_CHAIN_OPEN = 'safety-chain-open'
CONTACTOR_WELDED = 'contactor-welded'
# The plate process (heater control and its checks, api/plate) stopped answering jafflr.
PLATE_LOST = 'plate-lost'

# Reason -> what a person should do about it (shown on the kitchen panel).
FAULT_HELP = {
    PLATE_SENSOR_OPEN: 'The plate thermocouple reads open: switch off at the wall, check '
                       'the probe and its plug at the amplifier, then reset.',
    PLATE_SENSOR_ERROR: 'The plate temperature amplifier stopped answering: check its I2C '
                        'wiring and connector, then reset; call service if it happens again.',
    PLATE_SENSOR_FAULT: 'The plate temperature reading is impossible: check the probe and '
                        'its wiring for damage or a short before resetting.',
    PLATE_OVER_TEMPERATURE: 'The plate got too hot: leave the press shut and let it cool, '
                            'and do not use it again until the relay is checked.',
    HEATER_NOT_HEATING: 'The plate is not heating as commanded: check the element, its '
                        'fuse and the relay, then reset.',
    HEATER_RUNAWAY: 'The plate kept heating with the heater off, so the relay may be '
                    'welded: switch off at the wall now and have the relay replaced.',
    CONTROL_LOOP_STALLED: 'The control software stopped responding and the heater was '
                          'forced off: reset; report it if it happens again.',
    CONTROL_ERROR: 'The control software hit an internal error and switched the heater '
                   'off: note what you were doing, reset, and report it.',
    PLATE_LOST: 'The heater control process stopped answering (heater and motors are off): '
                'see journalctl -u jafflr-plate, then reset.',
    LID_OPEN: 'The lid is open: close it, make sure nothing is caught, then reset.',
    ESTOP: 'The emergency stop is pressed: make the press safe, release the button '
           '(twist), then reset.',
    HEATER_ON_TIME_LIMIT: 'The heater ran longer than an order can need: check the press '
                          'for a stuck sandwich or an open lid, then reset.',
    STOPPED: 'Someone pressed stop: check the press and reset when ready.',
    DISPENSER_JAM: 'A dispenser ran but nothing left its bay: clear the jam or refill the '
                   'bay, take the part-made toastie off the tray, then reset.',
    ASSEMBLY_INTERRUPTED: 'A toastie was abandoned half built (see the detail for why): take '
                          'it off the tray, then reset.',
    LOADCELL_ERROR: 'A bay load cell cannot be read, so a drop could not be checked: see '
                    'chillybin\'s alerts, take the toastie off the tray, then reset.',
    PRESS_JAM: 'The press did not reach its limit switch: switch off at the wall, free the '
               'press and check its motor, then reset.',
    CONVEYOR_JAM: 'The conveyor did not reach its next index mark: switch off, clear the '
                  'tray and the conveyor, then reset.',
    UNCLEAN_START: 'jafflr restarted mid-work (crash, watchdog, power cut): look at the '
                   'press and the tray, take out what is left in them, then reset.',
    HEATER_FEEDBACK_MISMATCH: 'The relay is not told what the software commands: switch off '
                              'at the wall, check the heartbeat gate and GPIO12, then reset.',
    HEATER_CURRENT_WHILE_OFF: 'The element draws current with the heater off (relay welded): '
                              'switch off at the wall now and have the relay replaced.',
    HEATER_NO_CURRENT: 'The element draws no current when on: check the thermal fuse, the '
                       'thermostat (press its reset), the element and relay, then reset.',
    CURRENT_SENSE_ERROR: 'The element current cannot be read: check the ADS1115, its I2C '
                         'wiring and the current transformer plug, then reset.',
    SAFETY_CHAIN_OPEN: 'The safety contactor dropped out without the e-stop: check the '
                       'safety relay, its 24 V supply and the e-stop wiring, then reset.',
    CONTACTOR_WELDED: 'The safety contactor stayed in with the e-stop pressed: switch off at '
                      'the wall and have the contactor replaced before use.',
}

# Who may clear a fault. AT_MACHINE: something may be wrong that only a look at the
# machine can tell (the heat, its sensor, the software itself), so a person holds the
# reset button on the machine and then resets with the admin token. PANEL: the cause is
# visible and fixing it is the check (close the lid, release the e-stop, clear a jam), so
# the token alone clears it from the panel. A reason missing here counts as AT_MACHINE.
AT_MACHINE = 'at-machine'
PANEL = 'panel'
CLEARED_BY = {
    PLATE_OVER_TEMPERATURE: AT_MACHINE,
    HEATER_RUNAWAY: AT_MACHINE,
    HEATER_NOT_HEATING: AT_MACHINE,
    HEATER_ON_TIME_LIMIT: AT_MACHINE,
    PLATE_SENSOR_OPEN: AT_MACHINE,
    PLATE_SENSOR_ERROR: AT_MACHINE,
    PLATE_SENSOR_FAULT: AT_MACHINE,
    CONTROL_LOOP_STALLED: AT_MACHINE,
    CONTROL_ERROR: AT_MACHINE,
    UNCLEAN_START: AT_MACHINE,
    HEATER_FEEDBACK_MISMATCH: AT_MACHINE,
    HEATER_CURRENT_WHILE_OFF: AT_MACHINE,
    HEATER_NO_CURRENT: AT_MACHINE,
    CURRENT_SENSE_ERROR: AT_MACHINE,
    SAFETY_CHAIN_OPEN: AT_MACHINE,
    CONTACTOR_WELDED: AT_MACHINE,
    PLATE_LOST: AT_MACHINE,
    LID_OPEN: PANEL,
    ESTOP: PANEL,
    STOPPED: PANEL,
    DISPENSER_JAM: PANEL,
    ASSEMBLY_INTERRUPTED: PANEL,
    LOADCELL_ERROR: PANEL,
    PRESS_JAM: PANEL,
    CONVEYOR_JAM: PANEL,
}
RESET_HOLD_S = 2.0          # how long the reset button is held to count
RESET_ARMED_S = 120.0       # how long after that the admin reset is accepted
HOW_TO_CLEAR = {
    AT_MACHINE: f'needs a person at the machine: hold its reset button for '
                f'{RESET_HOLD_S:.0f} s, then reset from the panel (admin token) within '
                f'{RESET_ARMED_S / 60:.0f} minutes',
    PANEL: 'fix the cause, then reset from the panel (admin token)',
}


def cleared_by(reason):
    """AT_MACHINE or PANEL for a fault reason (unknown reasons: AT_MACHINE)."""
    return CLEARED_BY.get(reason, AT_MACHINE)


@dataclass(frozen=True)
class Fault:
    """Why the heater was shut down, when (monotonic `at`, wall-clock `wall` if known), what
    tripped it (`by`), and whether it was latched before this start (`restored`)."""
    reason: str
    detail: str
    at: float
    wall: float | None = None
    by: str | None = field(default=None, compare=False)
    restored: bool = field(default=False, compare=False)

    @property
    def help(self):
        return FAULT_HELP.get(self.reason, 'Unknown fault: check the machine, then reset.')

    @property
    def cleared_by(self):
        return cleared_by(self.reason)

    def as_dict(self):
        return {'reason': self.reason, 'detail': self.detail, 'at': self.at,
                'wall': self.wall, 'by': self.by, 'restored': self.restored,
                'help': self.help, 'cleared_by': self.cleared_by,
                'how_to_clear': HOW_TO_CLEAR[self.cleared_by]}

    def record(self):
        """What is saved: `at` is this process's monotonic time, meaningless after it."""
        return {'reason': self.reason, 'detail': self.detail, 'wall': self.wall, 'by': self.by}

    @classmethod
    def from_record(cls, record, now):
        return cls(str(record['reason']), str(record.get('detail', '')), now,
                   record.get('wall'), record.get('by'), restored=True)


class Shutdown:
    """The one latched shutdown. The first trip latches; every listener runs for it (they
    turn outputs off, fail the current order). Trips while latched are recorded, one per
    other reason, but do not replace the first: it is the cause, the rest are consequences.

    With `save` (save(record or None), durable), every latched fault is written as soon
    as the `first` listeners (the outputs off) have run, before the others, and `restore`
    latches a saved one again at start."""

    def __init__(self, wall_clock=None, save=None):
        # wall_clock() -> epoch seconds, handed in (clock.time) so that faults tripped
        # with only `now` still carry a timestamp that means something after a restart.
        self._wall_clock = wall_clock
        self._save = save
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._first = []
        self._listeners = []
        self._fault = None
        self._later = {}
        # What readers see: (fault, *later) or (), replaced whole under the lock by every
        # change and read without it. Status readers under load held the lock while the
        # GIL was away, and a STOP's trip waited behind them (up to 200 ms on a Pi 4's
        # CPU budget).
        self._latched = ()
        self._restored = None       # the fault restore() latched, once
        self._pending = None        # faults to record on the recorder thread (record_later)
        self._pending_lock = threading.Lock()
        self._unrecorded = 0        # latched, not yet saved and told
        self._recorded = threading.Condition(self._lock)
        self._resets = 0            # resets so far: see trip's `epoch`

    def add_listener(self, listener, first=False):
        """listener(fault) is called, in the tripping thread, whenever a fault latches. It
        must be quick and must not wait on another thread. `first` listeners (outputs off)
        run before the fault is saved, so switching off never waits on the disk."""
        with self._lock:
            (self._first if first else self._listeners).append(listener)

    @property
    def latched(self):
        return bool(self._latched)

    @property
    def fault(self):
        """The latched fault, or None."""
        latched = self._latched
        return latched[0] if latched else None

    @property
    def later(self):
        """Faults of other reasons tripped while already latched, the first of each."""
        return list(self._latched[1:])

    def reasons(self):
        """The latched reasons, the first then the later ones ([] if none)."""
        return [f.reason for f in self._latched]

    def _publish(self):
        """Under the lock, after a change: what readers see from now on."""
        self._latched = () if self._fault is None else (self._fault, *self._later.values())

    def clearance(self):
        """Who may clear what is latched: AT_MACHINE if the fault or any later one needs
        a person at the machine, PANEL if none does, None if nothing is latched."""
        latched = self._latched
        if not latched:
            return None
        return AT_MACHINE if any(f.cleared_by == AT_MACHINE for f in latched) else PANEL

    def at_machine_reasons(self):
        """The latched reasons (the fault and later ones) that need a person at the machine."""
        return [f.reason for f in self._latched if f.cleared_by == AT_MACHINE]

    def at_machine_since(self):
        """When (monotonic) the newest fault that needs a person at the machine latched:
        a reset button held before it does not count for it. None if none needs one."""
        return max((f.at for f in self._latched if f.cleared_by == AT_MACHINE), default=None)

    @property
    def resets(self):
        """How many times a fault was cleared here: an epoch for trip(epoch=...)."""
        return self._resets

    def trip(self, reason, detail, now, wall=None, by=None, record_later=False, epoch=None):
        """Latch a fault unless one is latched already. Never refuses: an unknown reason
        still shuts down. Returns the latched fault. `by` says what tripped it (default:
        the tripping thread's name).

        `record_later`: return once the first listeners ran (outputs off); the fault is
        saved and the other listeners run on the shutdown's recorder thread. For STOP from
        HTTP: on a Pi's busy CPU each disk write and log line on the way was a wait for a
        CPU the HTTP threads held, and the answer says the outputs are off, which they are.
        Whoever depends on what is recorded waits `recorded()` first (a reset, the drain's
        clean-stop marker).

        `epoch` (`resets` when what is tripped was learned): ignored if a reset came since.
        For faults mirrored from another process: an answer read before a reset says what
        the reset cleared, and must not latch it again."""
        if wall is None and self._wall_clock is not None:
            wall = self._wall_clock()
        fault = Fault(str(reason), str(detail), now, wall,
                      by or f'thread {threading.current_thread().name}')
        with self._lock:
            if epoch is not None and epoch != self._resets:
                return self._fault          # learned before a reset: stale
            if self._fault is not None:
                new = fault.reason not in self._later and fault.reason != self._fault.reason
                if new:
                    self._later[fault.reason] = fault
                    self._unrecorded += 1
                    self._publish()
                latched = self._fault
            else:
                new, latched = None, None
                self._fault = fault
                self._publish()
                self._unrecorded += 1       # until saved and told: see recorded()
                first, listeners = list(self._first), list(self._listeners)
        if latched is not None:
            if new and record_later:
                self._recorder().put((fault, None))     # saved just after, as below
            elif new:
                self._save_later()
            return latched
        # Outside the lock: a listener that blocks cannot hold up other trips. Outputs
        # are safe meanwhile because they switch on only through run_unless_latched.
        self._notify(first, fault)
        if record_later:
            self._recorder().put((fault, listeners))
        else:
            self._record(fault, listeners)
        return fault

    def _record(self, fault, listeners):
        try:
            log.error('heater shutdown: %s: %s (%s)', fault.reason, fault.detail, fault.by,
                      extra={'fault_reason': fault.reason})
            self._persist()
            self._notify(listeners, fault)
        finally:
            self._done_recording()

    def _save_later(self):
        """Save a later fault (its listeners were told of the first)."""
        try:
            self._persist()
        finally:
            self._done_recording()

    def _done_recording(self):
        with self._recorded:
            self._unrecorded -= 1
            self._recorded.notify_all()

    def _recorder(self):
        with self._pending_lock:            # not the shutdown's lock: see _latched
            if self._pending is None:
                self._pending = queue.Queue()
                threading.Thread(target=self._record_pending, name='shutdown-recorder',
                                 daemon=True).start()
            return self._pending

    def _record_pending(self):
        while True:
            fault, listeners = self._pending.get()
            if listeners is None:       # a later fault: saved only
                self._save_later()
            else:
                self._record(fault, listeners)

    def recorded(self):
        """Wait until every fault latched so far is saved and its listeners told: counted
        from the moment it latched, so a trip still switching outputs off (its first
        listeners) or waiting on the recorder thread counts. Never call it from a listener."""
        with self._recorded:
            self._recorded.wait_for(lambda: self._unrecorded == 0)

    @staticmethod
    def _notify(listeners, fault):
        for listener in listeners:
            try:
                listener(fault)
            except Exception:  # one broken listener must not stop the others
                log.exception('shutdown listener %r failed for %s', listener, fault.reason)

    def record(self):
        """What is latched, as saved: {'fault': ..., 'later': [...]}, or None."""
        latched = self._latched
        if not latched:
            return None
        return {'fault': latched[0].record(), 'later': [f.record() for f in latched[1:]]}

    def records(self):
        """The latched faults as saved, the first then the later ones ([] if none)."""
        record = self.record()
        return [] if record is None else [record['fault'], *record['later']]

    def adopt(self, records, now, by, epoch=None):
        """Latch another process's faults (as its records() gives them) here too: a reason
        already latched is a no-op (trip's own rule), so each side ends up holding the
        other's. `by` names the other process; each fault's own `by` follows it. `epoch`:
        see trip (records read before a reset here are not latched again)."""
        have = set(self.reasons())      # these need not take the lock
        for fault in records or ():
            if fault['reason'] in have:
                continue
            self.trip(fault['reason'], fault.get('detail', ''), now, wall=fault.get('wall'),
                      by=f'{by} ({fault.get("by")})', epoch=epoch)

    def _persist(self):
        if self._save is None:
            return
        # The record is taken inside the save lock: the last write is the latest state.
        with self._save_lock:
            try:
                self._save(self.record())
            except Exception:   # the fault stays latched in memory; say so loudly
                log.exception('could not save the latched fault; it holds until this '
                              'process ends but will not survive a restart')

    def restore(self, record, now):
        """At start, before any output may switch on: latch a fault saved by an earlier
        run (see record()). The first listeners run (outputs off); the record is not
        written again. Returns the fault latched now, or None."""
        if not record or not record.get('fault'):
            return None
        fault = Fault.from_record(record['fault'], now)
        with self._lock:
            again = self._restored is not None  # restored already (the service does it early)
            if again:
                first, latched, restored = list(self._first), self._fault, self._restored
        if again:
            if latched is not None:
                self._notify(first, latched)
            return restored
        with self._lock:
            if self._fault is None:
                self._fault = fault
            elif fault.reason != self._fault.reason:
                self._later.setdefault(fault.reason, fault)
            for later in record.get('later') or ():
                if later['reason'] != self._fault.reason:
                    self._later.setdefault(later['reason'], Fault.from_record(later, now))
            self._publish()
            first, latched = list(self._first), self._fault
            self._restored = fault
        log.error('fault kept from before the restart: %s: %s', fault.reason, fault.detail)
        self._notify(first, latched)
        return latched

    def run_unless_latched(self, action):
        """Run `action()` (switch an output on) only if nothing is latched, atomically
        with respect to trip(): a trip from another thread cannot slip in between the
        check and the switching. Returns True if it ran."""
        with self._lock:
            if self._fault is not None:
                return False
            action()
            return True

    def reset(self, now, by, check=None):
        """Clear the fault. Who may is the caller's `check(shutdown)`, run under the lock so
        no fault can latch between it and the clearing; it raises to refuse (see
        Kitchen.reset and CLEARED_BY). Returns the fault cleared (None if none was)."""
        self.recorded()         # a fault still being recorded is saved and told first
        with self._lock:
            if check is not None and self._fault is not None:
                check(self)
            cleared, self._fault = self._fault, None
            self._later.clear()
            self._publish()
            if cleared is not None:
                self._resets += 1
        if cleared is not None:
            log.warning('heater fault %s reset by %s at %.1f', cleared.reason, by, now)
            self._persist()
        return cleared


class HeaterVerifier:
    """Checks, every control tick, that the plate does what the heater is told.

    - sensor range: a reading outside sensor_min_c..sensor_max_c is a broken probe;
    - over-temperature: above max_temp_c whatever the target;
    - heating (Klipper's verify_heater): heating towards a new target, the plate must
      gain heating_gain_c within check_gain_time_s, and each goal met sets the next one;
      at or near the target, every second spent below target - hysteresis_c adds the
      shortfall to an error that trips at max_error (degree-seconds);
    - runaway: with the relay off for longer than runaway_grace_s the plate may still
      rise by the probe's lag (at most tau x heating rate, 1.5 C from full power), but
      never by more than runaway_rise_c above its lowest reading since: a plate that
      keeps heating with the relay off has a welded relay.

    check_gain_time_s is 20 s: a healthy plate gains 2 C in about 4 s from cold at full
    power (1 C/s less the probe lag) and in under 10 s in the last few degrees, where the
    PID throttles back; a dead element is caught about 20 s after heating is asked for.
    """

    SPEC = {
        'sensor_min_c': (-20.0, -100.0, 0.0),
        'sensor_max_c': (500.0, 300.0, 1500.0),
        'max_temp_c': (260.0, 100.0, 400.0),
        'hysteresis_c': (5.0, 1.0, 30.0),
        'max_error': (120.0, 10.0, 2000.0),
        'heating_gain_c': (2.0, 0.5, 20.0),
        'check_gain_time_s': (20.0, 5.0, 300.0),
        'runaway_grace_s': (2.5, 1.0, 30.0),
        'runaway_rise_c': (2.0, 0.5, 30.0),
    }

    def __init__(self, config=None):
        self.cfg = checked(config, self.SPEC, 'HeaterVerifier')
        self.reset()

    def reset(self):
        self._last_now = None
        self._last_target = None
        self._approaching = self._starting = self._missed_goal = False
        self._goal_c = self._goal_at = None
        self._error = 0.0
        self._off_since = None
        self._off_low_c = None

    def check(self, now, temp_c, target_c, heater_on):
        """One tick. `target_c` is None while the heater is not meant to heat; `heater_on`
        is the relay state over the interval ending now. Returns (reason, detail) for a
        fault, else None."""
        dt = 0.0 if self._last_now is None else max(0.0, now - self._last_now)
        self._last_now = now
        c = self.cfg
        if not (c.sensor_min_c <= temp_c <= c.sensor_max_c):   # NaN fails this too
            return (PLATE_SENSOR_FAULT, f'plate reading {temp_c:.1f} C out of range '
                                        f'({c.sensor_min_c:.1f}:{c.sensor_max_c:.1f})')
        if temp_c > c.max_temp_c:
            return (PLATE_OVER_TEMPERATURE, f'plate at {temp_c:.1f} C, above the '
                                            f'{c.max_temp_c:.1f} C limit')
        return self._check_runaway(now, temp_c, heater_on) or \
            self._check_heating(now, dt, temp_c, target_c)

    def _check_runaway(self, now, temp_c, heater_on):
        if heater_on:
            self._off_since = self._off_low_c = None
            return None
        if self._off_since is None:
            self._off_since = now
        if now - self._off_since < self.cfg.runaway_grace_s:
            return None
        self._off_low_c = temp_c if self._off_low_c is None else min(self._off_low_c, temp_c)
        rise = temp_c - self._off_low_c
        if rise > self.cfg.runaway_rise_c:
            return (HEATER_RUNAWAY, f'plate rose {rise:.1f} C (to {temp_c:.1f} C) with the '
                                    f'heater off for {now - self._off_since:.1f} s '
                                    f'(limit {self.cfg.runaway_rise_c:.1f} C)')
        return None

    def _check_heating(self, now, dt, temp_c, target_c):
        c = self.cfg
        if target_c is None or temp_c >= target_c - c.hysteresis_c:
            self._approaching = self._starting = self._missed_goal = False
            if target_c is None or temp_c <= target_c + c.hysteresis_c:
                self._error = 0.0
            self._last_target = target_c
            return None
        self._error += (target_c - c.hysteresis_c - temp_c) * dt
        fault = None
        if not self._approaching:
            if target_c != self._last_target:
                self._approaching = self._starting = True
                self._missed_goal = False
                self._next_goal(now, temp_c)
            elif self._error >= c.max_error:
                fault = (HEATER_NOT_HEATING, self._not_heating_detail(temp_c, target_c))
        elif temp_c >= self._goal_c:
            self._starting = False
            self._error = 0.0
            self._next_goal(now, temp_c)
        elif now >= self._goal_at:
            self._approaching = False
            self._missed_goal = True
        elif self._starting:
            # The probe may still be settling when heating starts: aim from its lowest.
            self._goal_c = min(self._goal_c, temp_c + c.heating_gain_c)
        self._last_target = target_c
        return fault

    def _next_goal(self, now, temp_c):
        self._goal_c = temp_c + self.cfg.heating_gain_c
        self._goal_at = now + self.cfg.check_gain_time_s

    def _not_heating_detail(self, temp_c, target_c):
        c = self.cfg
        if self._missed_goal:
            return (f'plate at {temp_c:.1f} C gained less than {c.heating_gain_c:.1f} C in '
                    f'{c.check_gain_time_s:.0f} s while heating to {target_c:.1f} C')
        return (f'plate at {temp_c:.1f} C stayed more than {c.hysteresis_c:.1f} C below '
                f'its {target_c:.1f} C target for {self._error:.0f} C.s '
                f'(limit {c.max_error:.0f})')


class Interlocks:
    """The lid and the emergency stop, for the PlateController (`interlocks=`): active ones
    are listed on every control tick, and each trips the shutdown the moment its line
    changes (gpiozero calls back then), not only on the next tick.

    `machine` is what it is handed: `lid_open` and `estop_pressed`, and `lid` and `estop`
    inputs with `when_deactivated`."""

    def __init__(self, machine, shutdown, monotonic):
        self.machine = machine
        machine.lid.when_deactivated = lambda: shutdown.trip(
            LID_OPEN, 'the lid was opened', monotonic(), by='the lid switch')
        machine.estop.when_deactivated = lambda: shutdown.trip(
            ESTOP, 'the emergency stop was pressed', monotonic(), by='the e-stop switch')

    def __call__(self):
        return interlock_faults(self.machine)


def interlock_faults(machine):
    """(reason, detail) for each interlock open now: the lid, the emergency stop."""
    found = []
    if machine.lid_open:
        found.append((LID_OPEN, 'the lid is open'))
    if machine.estop_pressed:
        found.append((ESTOP, 'the emergency stop is pressed'))
    return found


class ResetButton:
    """The reset button on the machine: holding it for hold_s arms an admin reset of a
    fault that needs a person at the machine, for armed_s. Edges come in with their
    time (`pressed(now)`, `released(now)`, from gpiozero's callback thread); nothing
    here reads a clock. A button stuck down arms once, for armed_s after the hold, not
    for ever."""

    def __init__(self, hold_s=RESET_HOLD_S, armed_s=RESET_ARMED_S):
        self.hold_s = hold_s
        self.armed_s = armed_s
        self._lock = threading.Lock()
        self._down_at = None        # while held: since when
        self._armed_at = None       # the end of the last full hold
        self._armed_from = None     # ... and when that hold began

    def pressed(self, now):
        with self._lock:
            if self._down_at is None:
                self._down_at = now

    def released(self, now):
        with self._lock:
            if self._down_at is not None and now - self._down_at >= self.hold_s:
                self._armed_at = self._down_at + self.hold_s
                self._armed_from = self._down_at
            self._down_at = None

    def watch(self, device, monotonic):
        """Follow a gpiozero input (active while pressed), stamping edges with monotonic().
        A button already down when watching starts does not count: a stuck button or a
        short to ground must be released and pressed again, or every restart would arm a
        reset by itself."""
        device.when_activated = lambda: self.pressed(monotonic())
        device.when_deactivated = lambda: self.released(monotonic())

    def held(self):
        return self._down_at is not None

    def armed_at(self, now):
        """When the hold that arms a reset now completed, or None if nothing arms it."""
        hold = self.armed_hold(now)
        return None if hold is None else hold[1]

    def armed_hold(self, now):
        """(began, completed) of the hold that arms a reset now, or None. A fault counts a
        hold only if it began after the fault latched (Kitchen.reset compares `began`)."""
        with self._lock:
            began, at = self._armed_from, self._armed_at
            if self._down_at is not None and now - self._down_at >= self.hold_s:
                began, at = self._down_at, self._down_at + self.hold_s
        if at is None or not at <= now <= at + self.armed_s:
            return None
        return began, at

    def disarm(self):
        """A reset used the hold: the next one needs the button again (released first)."""
        with self._lock:
            self._armed_at = self._armed_from = None
            self._down_at = None

    def describe(self, now):
        at = self.armed_at(now)
        return {'held': self.held(), 'armed': at is not None,
                'armed_left_s': None if at is None else round(at + self.armed_s - now, 1),
                'hold_s': self.hold_s, 'armed_s': self.armed_s}
