"""The plate controller: one tick reads the plate, checks the interlocks and the heater,
runs the control algorithm and the relay's time-proportioning, and beats the heartbeat.

It is handed everything it touches (see PlateController), and every failure goes
through the one latched Shutdown: tick() never raises. Targets come from other threads
(the press station, the panel), so the state they share is under one lock, held only
for the length of a tick.

Telling an open probe from other read failures: the composition root hands in the
exception types that mean "the probe is open" (`open_errors=(hardware.errors.SensorOpen,)`).
Firmware never imports hardware/, and an explicit tuple cannot match by accident the way
a class name could. Any other exception from `read_plate_c` is a sensor error.
Likewise `stale_errors` ("no new conversion since the last read", e.g.
hardware.errors.NoNewConversion): the last reading stands for up to `stale_s`, then a
converter that stopped converting is a sensor error, however plausible its last value
(on STALE_MIN_TICKS ticks in a row at least: a loop that ran late read its last new
conversion long after its tick's `now`, and its next tick may come within that same
conversion).
"""
import logging
import threading
from contextlib import contextmanager

from ..config import checked, sections
from ..errors import ConfigError, HeaterFaulted, OutOfRange
from ..safety import (CONTROL_ERROR, HEATER_ON_TIME_LIMIT, PLATE_SENSOR_ERROR,
                      PLATE_SENSOR_OPEN, HeaterVerifier)
from .output import TimeProportioning
from .pid import make_controller
from .profiles import STANDBY_C

log = logging.getLogger(__name__)

# How far the highest allowed target stays below the over-temperature trip, so that an
# overshoot (the bench measures under 5 C) can never trip it.
TARGET_MARGIN_C = 15.0

# How long (real seconds) another thread waits for a tick to let go of the controller. A
# tick takes milliseconds; a longer hold means the loop is stuck (a hung transfer), and
# then a reader gets the last status, off() forces the heater pin off itself, and the
# rest refuse with HeaterFaulted, rather than the panel, the press station and the
# service's drain all hanging behind it until the dead-man has long tripped.
LOCK_WAIT_S = 0.5
STALE_MIN_TICKS = 3     # ticks in a row with no new conversion before the age can trip


def refuse_if_faulted(shutdown):
    """HeaterFaulted, saying what is latched, when the shutdown is: no new target."""
    fault = shutdown.fault
    if fault is not None:
        raise HeaterFaulted(f'heater faulted ({fault.reason}: {fault.detail}); '
                            f'a person must reset it first')


def check_order_budget(max_heater_on_s):
    """OutOfRange unless an order's heater on-time budget is above 0 s."""
    if not max_heater_on_s > 0:
        raise OutOfRange(f'Requested heater on-time budget ({max_heater_on_s}) must be '
                         f'above 0 s')


class PlateController:
    """Holds the press plate at a target.

    heater        on(), off(), beat() (hardware.machine.HeaterRelay)
    read_plate_c  () -> degrees C, or raises
    shutdown      the one safety.Shutdown
    config        flat settings (see SPEC) and the sections 'control' (the algorithm's
                  settings), 'verify' (HeaterVerifier) and 'output' (TimeProportioning)
    controller    the algorithm's name in pid.CONTROLLERS
    interlocks    () -> [(reason, detail), ...] active now (lid open, e-stop pressed)
    on_tick       on_tick(now) at the end of every tick (watchdog, dead-man)
    chain         chain(now, commanded_on, edge_at) -> [(reason, detail), ...]: the safety
                  chain's read-backs against the heater command over the interval just ended
                  (edge_at: `now` when another thread dropped the pin mid-interval, else None)
                  (firmware.chain.ChainMonitor)
    open_errors   exception types from read_plate_c that mean an open probe
    stale_errors  exception types from read_plate_c that mean no new conversion yet
    """

    SPEC = {
        'min_target_c': (40.0, 0.0, 150.0),
        'max_target_c': (240.0, 100.0, 385.0),
        'standby_c': (STANDBY_C, 40.0, 385.0),
        'standby_s': (900.0, 0.0, 7200.0),        # standby, then off
        'idle_timeout_s': (1200.0, 10.0, 14400.0),  # no keep-alive: drop to standby
        'band_c': (3.0, 0.5, 10.0),               # at target: within +/- band_c ...
        'settle_s': (5.0, 0.0, 120.0),            # ... for this long
        'read_attempts': (2, 1, 5),               # whole reads per tick, see _read()
        # No new conversion for this long is a sensor fault. A conversion takes ~80 ms; the
        # limit keeps the trip within 2 s of the converter's last one (ticks are 0.1 s).
        'stale_s': (1.5, 0.3, 1.8),
    }

    def __init__(self, heater, read_plate_c, shutdown, config=None, *, controller='pid',
                 interlocks=None, on_tick=None, open_errors=(), stale_errors=(), chain=None):
        flat, subs = sections(config, ('control', 'verify', 'output'), 'PlateController')
        self.cfg = checked(flat, self.SPEC, 'PlateController')
        self._controller = make_controller(controller, subs['control'])
        self._verifier = HeaterVerifier(subs['verify'])
        self._output = TimeProportioning(subs['output'])
        self._check_targets()
        self._heater = heater
        self._read_plate_c = read_plate_c
        self._shutdown = shutdown
        self._interlocks = interlocks or (lambda: ())
        self._on_tick = on_tick
        self._chain = chain or (lambda now, commanded_on, edge_at=None: ())
        self._open_errors = tuple(open_errors)
        self._stale_errors = tuple(stale_errors)
        self._fresh_at = None         # `now` of the last new conversion (or the first tick)
        self._stale_ticks = 0         # ticks in a row since then with no new conversion
        self._lock = threading.RLock()
        self._mode = 'off'            # 'off', 'hold' or 'standby'
        self._target_c = None
        self._keepalive_at = self._standby_until = None
        self._reached = False
        self._in_band_since = None
        self._temp_c = None
        self._duty = 0.0
        self._relay_on = False
        self._last_tick = None
        self._off_failure = None
        self._was_latched = False
        self._order = None            # {'budget_s', 'on_s'} while an order runs
        self._last_status = None
        self._probe = threading.Lock()   # held by the one reader waiting on a busy tick
        self._stuck = False              # that reader waited LOCK_WAIT_S in vain
        shutdown.add_listener(self._on_fault, first=True)   # before the fault is saved

    def _check_targets(self):
        c, limit = self.cfg, self._verifier.cfg.max_temp_c - TARGET_MARGIN_C
        if c.max_target_c > limit:
            raise ConfigError(f'PlateController: max_target_c ({c.max_target_c:.1f}) must be '
                              f'at least {TARGET_MARGIN_C:.1f} C below max_temp_c '
                              f'({limit + TARGET_MARGIN_C:.1f})')
        if not c.min_target_c <= c.standby_c <= c.max_target_c:
            raise ConfigError(f'PlateController: standby_c ({c.standby_c:.1f}) out of range '
                              f'({c.min_target_c:.1f}:{c.max_target_c:.1f})')

    # -- what other threads ask for ---------------------------------------------------
    def set_target(self, target_c, now):
        """Heat to `target_c` and hold it. OutOfRange, or HeaterFaulted if latched."""
        c = self.cfg
        if not c.min_target_c <= target_c <= c.max_target_c:
            raise OutOfRange(f'Requested temperature ({target_c:.1f}) out of range '
                             f'({c.min_target_c:.1f}:{c.max_target_c:.1f})')
        with self._held():
            self._refuse_if_faulted()
            self._hold(float(target_c), 'hold', now)

    def standby(self, now):
        """Hold the standby temperature for standby_s, then switch off."""
        with self._held():
            self._refuse_if_faulted()
            self._hold(self.cfg.standby_c, 'standby', now)
            self._standby_until = now + self.cfg.standby_s

    def off(self, now):
        """Stop heating. Always allowed; never waits long (see LOCK_WAIT_S)."""
        try:
            with self._held():
                self._drop_target()
        except HeaterFaulted:
            self._heater.off()      # the loop is stuck: the pin itself, as the dead-man does

    def keep_alive(self, now):
        """Someone still wants the target: restart the idle timeout."""
        with self._held():
            if self._mode == 'hold':
                self._keepalive_at = now

    def load_hint(self, now, watts):
        """A load (a cold sandwich) starts drawing about `watts` from the plate now."""
        with self._held():
            self._controller.load_hint(now, watts)

    def begin_order(self, now, max_heater_on_s):
        """Start counting heater on-time against this order's budget."""
        check_order_budget(max_heater_on_s)
        with self._held():
            self._order = {'budget_s': float(max_heater_on_s), 'on_s': 0.0}
            self.keep_alive(now)

    def end_order(self, now):
        """Stop counting; returns the heater on-time the order used (s), or None."""
        with self._held():
            order, self._order = self._order, None
            return None if order is None else order['on_s']

    @contextmanager
    def _held(self):
        """The controller's lock for a request from another thread, or HeaterFaulted when
        a tick has held it for more than LOCK_WAIT_S (the control loop is stuck)."""
        if not self._lock.acquire(timeout=LOCK_WAIT_S):
            raise HeaterFaulted(f'the control loop has not let go of the heater for '
                                f'{LOCK_WAIT_S:.1f} s: it is stuck')
        try:
            yield
        finally:
            self._lock.release()

    def _refuse_if_faulted(self):
        refuse_if_faulted(self._shutdown)

    def _hold(self, target_c, mode, now):
        if target_c != self._target_c:
            self._reached = False
            self._in_band_since = None
        self._mode, self._target_c, self._keepalive_at = mode, target_c, now

    def _drop_target(self):
        self._mode, self._target_c = 'off', None
        self._keepalive_at = self._standby_until = None
        self._reached = False
        self._in_band_since = None

    def _on_fault(self, fault):
        # May run in another thread (lid, e-stop, dead-man), in the middle of a tick: it
        # only switches the heater off, and tick() will not switch it on while latched.
        self._heater.off()

    # -- the tick ---------------------------------------------------------------------
    def tick(self, now):
        """One control period. Never raises: a failure becomes a latched fault."""
        with self._lock:
            for step in (self._tick, self._after_tick):
                try:
                    step(now)
                except Exception as exc:  # our own bug, or a broken part: fail safe, say so
                    self._shutdown.trip(CONTROL_ERROR, f'{step.__name__}: '
                                                       f'{type(exc).__name__}: {exc}', now)
                    self._force_off()

    def _after_tick(self, now):
        self._fresh_status()      # what readers get while the next tick is busy
        if self._on_tick is not None:
            self._on_tick(now)

    def _force_off(self):
        self._relay_on = False
        try:
            self._heater.off()
            self._off_failure = None
        except Exception as exc:
            # Said once per kind of failure, not every tick: the log must stay readable.
            if self._off_failure != repr(exc):
                self._off_failure = repr(exc)
                log.exception('could not switch the heater off; the heartbeat stops with the loop')

    def _tick(self, now):
        was_on = self._relay_on
        self._count_on_time(now, was_on)
        self._last_tick = now
        temp_c = self._read(now)
        for reason, detail in self._interlocks():
            self._shutdown.trip(reason, detail, now)
        # What the pin really was: a trip in another thread may have dropped it mid-interval,
        # at a moment this loop cannot know; the chain then counts the "off" from now.
        dropped = was_on and not self._heater.is_on
        for reason, detail in self._chain(now, was_on and not dropped, now if dropped else None):
            self._shutdown.trip(reason, detail, now)
        self._follow_shutdown()
        if temp_c is not None:
            fault = self._verifier.check(now, temp_c, self._target_c, was_on)
            if fault is not None:
                self._shutdown.trip(*fault, now)
                self._follow_shutdown()
        self._expire(now)
        self._duty = self._control(now, temp_c)
        self._switch(self._output.update(now, self._duty))
        self._heater.beat()
        self._track_band(now, temp_c)

    def _follow_shutdown(self):
        latched = self._shutdown.latched
        if self._was_latched and not latched:
            # A person reset a fault: watch the plate afresh, as if just switched on.
            self._verifier.reset()
        if latched:
            # A fault ends the heating and the order (the shutdown's listeners fail it):
            # after a reset nothing heats until someone asks again.
            self._drop_target()
            self._order = None
        self._was_latched = latched

    def _read(self, now):
        """The plate temperature, or None after tripping. An open probe trips at once.
        Other failures get `read_attempts` whole reads: the driver already retries each
        I2C transfer 3 times, and a read is 3 transfers, so at 2 % NACKs one read in
        40 000 fails (a false fault every 70 minutes at 10 Hz); a second read in the same
        tick makes that one in 1.7 billion, and a dead amplifier still trips this tick."""
        if self._fresh_at is None:
            self._fresh_at = now
        for _ in range(int(self.cfg.read_attempts)):
            try:
                self._temp_c = float(self._read_plate_c())
                self._fresh_at = now
                self._stale_ticks = 0
                return self._temp_c
            except self._open_errors as exc:
                self._shutdown.trip(PLATE_SENSOR_OPEN, str(exc), now)
                break
            except self._stale_errors as exc:
                return self._stale(now, exc)
            except Exception as exc:
                last = exc
        else:
            self._shutdown.trip(PLATE_SENSOR_ERROR, f'{type(last).__name__}: {last}', now)
        self._temp_c = None
        return None

    def _stale(self, now, exc):
        """No new conversion this tick: the last reading stands while it is young."""
        age = now - self._fresh_at
        self._stale_ticks += 1
        if age < self.cfg.stale_s or self._stale_ticks < STALE_MIN_TICKS:
            return self._temp_c
        self._shutdown.trip(PLATE_SENSOR_ERROR, f'no new conversion for {age:.2f} s (limit '
                                                f'{self.cfg.stale_s:.2f} s): {exc}', now)
        self._temp_c = None
        return None

    def _count_on_time(self, now, was_on):
        if self._order is None or self._last_tick is None:
            return
        if was_on:
            self._order['on_s'] += max(0.0, now - self._last_tick)
        if self._order['on_s'] > self._order['budget_s']:
            self._shutdown.trip(HEATER_ON_TIME_LIMIT,
                                f'heater on for {self._order["on_s"]:.0f} s in one order '
                                f'(limit {self._order["budget_s"]:.0f} s)', now)

    def _expire(self, now):
        """Idle hold -> standby -> off, so a forgotten plate does not stay hot."""
        if self._mode == 'hold' and now - self._keepalive_at >= self.cfg.idle_timeout_s:
            self._hold(self.cfg.standby_c, 'standby', now)
            self._standby_until = now + self.cfg.standby_s
        if self._mode == 'standby' and now >= self._standby_until:
            self._drop_target()

    def _control(self, now, temp_c):
        if self._target_c is None or temp_c is None or self._shutdown.latched:
            self._controller.reset()
            return 0.0
        return self._controller.update(now, temp_c, self._target_c)

    def _switch(self, on):
        if on and self._shutdown.run_unless_latched(self._heater.on):
            self._relay_on = True
        else:
            self._heater.off()
            self._relay_on = False

    def _track_band(self, now, temp_c):
        if self._target_c is None or temp_c is None or abs(temp_c - self._target_c) > self.cfg.band_c:
            self._in_band_since = None
            return
        self._reached = True
        if self._in_band_since is None:
            self._in_band_since = now

    # -- what the panel and the press station read -------------------------------------
    def at_target(self, now):
        """Within +/- band_c of the target for at least settle_s."""
        try:
            with self._held():
                return (self._in_band_since is not None and not self._shutdown.latched
                        and now - self._in_band_since >= self.cfg.settle_s)
        except HeaterFaulted:
            return False

    def status(self):
        """What the panel shows. While a tick holds the controller (it is reading the
        plate, a few ms; longer on a loaded machine) readers do not queue behind it: one
        of them waits, up to LOCK_WAIT_S, to tell a slow tick from a stuck one, and the
        rest answer at once with the status the last tick left. Once that wait has run
        out, the answer is the last status with phase 'stalled' (or 'faulted') and
        at_target False, until a tick completes again."""
        if self._lock.acquire(blocking=False):
            try:
                return self._fresh_status()
            finally:
                self._lock.release()
        if self._probe.acquire(blocking=False):
            try:
                if self._lock.acquire(timeout=LOCK_WAIT_S):
                    try:
                        return self._fresh_status()
                    finally:
                        self._lock.release()
                self._stuck = True
            finally:
                self._probe.release()
        return self._last_known()

    def _fresh_status(self):
        self._stuck = False
        self._last_status = self._status()
        return dict(self._last_status)

    def _last_known(self):
        fault = self._shutdown.fault
        last = self._last_status or {'temp_c': None, 'target_c': None, 'duty': 0.0,
                                     'relay_on': False, 'phase': 'off', 'at_target': False,
                                     'fault': None}
        if fault is None and not self._stuck:
            return dict(last)
        return {**last, 'phase': 'faulted' if fault else 'stalled', 'at_target': False,
                'fault': None if fault is None else fault.reason}

    def _status(self):
        fault = self._shutdown.fault
        return {
            'temp_c': self._temp_c,
            'target_c': self._target_c,
            'duty': self._duty,
            'relay_on': self._relay_on,
            'phase': self._phase(),
            'at_target': self._last_tick is not None and self.at_target(self._last_tick),
            'fault': None if fault is None else fault.reason,
        }

    def _phase(self):
        if self._shutdown.latched:
            return 'faulted'
        if self._mode == 'off':
            return 'off'
        if self._mode == 'standby':
            return 'standby'
        return 'holding' if self._reached else 'heating'
