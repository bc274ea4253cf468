"""The safety chain as the software sees it: what the SSR is actually told (the drive
feedback after the heartbeat gate), what the element actually draws (the current
transformer), and whether the e-stop chain's contactor is in.

ChainMonitor is checked on every control tick with what the heater was commanded over
the interval just ended. It is handed plain callables, never hardware:

    driven()         True/False: the SSR drive after the AND gate; None if not wired
    current_a()      the element's RMS current in amperes; raises when it cannot be read
    chain_closed()   True while the contactor is in (its auxiliary contact)
    estop_pressed()  True while the e-stop's own input says pressed

Signals are read at the start of a tick and compared with the command over the interval
that ended then, so the drive line's and the filter's settling (a few ms on the machine,
a round trip through the simulator) never counts against them. Time-proportioning can
switch on every tick, so single-tick disagreements are counted, not acted on alone.
"""
from collections import deque

from .config import checked
from .errors import ConfigError
from .safety import (CONTACTOR_WELDED, CURRENT_SENSE_ERROR, HEATER_CURRENT_WHILE_OFF,
                     HEATER_FEEDBACK_MISMATCH, HEATER_NO_CURRENT, SAFETY_CHAIN_OPEN)


class ChainMonitor:
    """Returns (reason, detail) for each way the chain disagrees with the software.

    - feedback: the SSR drive disagrees with the command in `feedback_window_bad` of the
      last `feedback_window` checks (stuck feedback, a broken gate, a dead monostable
      while beating, a bypassed gate whose line follows nothing): at 10 Hz within 0.3 s
      at full or zero power, within about 1 s at any duty from 0.3 to 0.7;
    - no current (open element, thermal fuse, thermostat): commanded on, driven, chain
      closed, and the element draws less than off_max_a after a tick of "on", or less
      than on_min_a once on for on_settle_s; on `confirm_checks` ticks in a row: 0.2 s
      after "on" at full power, within about 0.6 s of one-tick pulses;
    - current while off (a welded SSR): more than on_min_a after a tick of "off", or more
      than off_max_a once off for off_settle_s; on `confirm_checks` ticks in a row: 0.2 s
      after "off", within about 0.6 s while time-proportioning;
    - chain open: the contactor is out with the e-stop not pressed, for chain_open_s;
    - contactor welded: the e-stop pressed and the contactor still in after
      contactor_drop_s (a contactor drops out in about 20 ms).

    A command held for less than min_tick_s (a late loop catching up) is no evidence
    either way: the filter has not settled. Under a sped-up simulator the composition
    root lengthens min_tick_s and the settle times (a loaded computer's milliseconds in
    a tick are tenths of a simulated second), at the cost of seeing single pulses. The
    thresholds are far apart for one tick (a full element draws 7.8 A; 1.0 A is what is
    left 75 ms after switching, and 88 % is reached by then) so neither a pulse's tail
    nor its rise is mistaken for a fault.
    """

    SPEC = {
        'hold_s': (1.0, 0.1, 10.0),             # the heartbeat monostable's hold
        'on_min_a': (3.9, 0.1, 50.0),           # half of the 1.8 kW element's 7.8 A
        'off_max_a': (1.0, 0.05, 50.0),
        'off_settle_s': (0.3, 0.05, 1.5),       # the CT filter (47 ms) is at 0.2 % by then
        'on_settle_s': (0.2, 0.05, 1.5),
        'min_tick_s': (0.075, 0.01, 1.5),
        'confirm_checks': (2, 1, 10),
        'feedback_window': (10, 2, 50),
        'feedback_window_bad': (3, 1, 50),
        'chain_open_s': (0.3, 0.0, 5.0),
        'contactor_drop_s': (0.5, 0.05, 5.0),
        'read_attempts': (2, 1, 5),
    }

    def __init__(self, driven, current_a, chain_closed, estop_pressed, config=None):
        self.cfg = checked(config, self.SPEC, 'ChainMonitor')
        if self.cfg.feedback_window_bad > self.cfg.feedback_window:
            raise ConfigError(f'ChainMonitor: feedback_window_bad ({self.cfg.feedback_window_bad:.0f}) '
                              f'must not exceed feedback_window ({self.cfg.feedback_window:.0f})')
        self._driven = driven
        self._current_a = current_a
        self._chain_closed = chain_closed
        self._estop_pressed = estop_pressed
        self.reset()

    def reset(self):
        self._last_now = None
        self._last_cmd = None
        self._off_since = self._on_since = None
        self._feedback = deque(maxlen=int(self.cfg.feedback_window))
        self._dead_bad = 0
        self._welded_bad = 0
        self._open_since = None
        self._stuck_since = None
        self._read_error = None
        self.amps = None

    def __call__(self, now, commanded_on, edge_at=None):
        return self.check(now, commanded_on, edge_at)

    def check(self, now, commanded_on, edge_at=None):
        """One tick. `commanded_on`: the heater pin over the interval ending `now`.
        `edge_at`: when the pin changed, if not at the last tick (a trip in another thread
        dropped it mid-interval, at a moment the loop cannot know: pass `now`, so the
        current still decaying from that edge is not taken for a welded relay)."""
        commanded_on = bool(commanded_on)
        gap = None if self._last_now is None else now - self._last_now
        in_time = gap is not None and gap < self.cfg.hold_s   # the monostable held throughout
        if commanded_on != self._last_cmd:
            since = edge_at if edge_at is not None else \
                self._last_now if self._last_now is not None else now
            if commanded_on:
                self._on_since = since
            else:
                self._off_since = since
        since = self._on_since if commanded_on else self._off_since
        held_for = now - since
        # A command held for less than min_tick_s (a late loop catching up; a switching
        # edge still settling) is no evidence either way.
        settled = in_time and held_for >= self.cfg.min_tick_s - 1e-9
        self._last_now, self._last_cmd = now, commanded_on
        found = self._check_contactor(now)
        chain_closed = not found and self._chain_closed()
        driven = self._driven()
        if settled:
            found += self._check_feedback(commanded_on, driven)
        amps = self._read_current()
        if amps is None:
            return found + [(CURRENT_SENSE_ERROR, self._read_error)]
        if commanded_on and in_time and driven is not False and chain_closed:
            found += self._check_drawing(amps, held_for, settled)
        if not commanded_on:
            found += self._check_welded(amps, held_for, settled)
        return found

    def _check_feedback(self, commanded_on, driven):
        if driven is None:
            return []
        self._feedback.append(driven != commanded_on)
        bad = sum(self._feedback)
        if bad < self.cfg.feedback_window_bad:
            return []
        return [(HEATER_FEEDBACK_MISMATCH,
                 f'SSR drive read {"high" if driven else "low"} with the heater commanded '
                 f'{"on" if commanded_on else "off"}, and disagreed in {bad} of the last '
                 f'{len(self._feedback)} ticks (limit {self.cfg.feedback_window_bad:.0f})')]

    def _check_drawing(self, amps, on_for, settled):
        c = self.cfg
        if amps >= c.on_min_a:
            self._dead_bad = 0
            return []
        if not ((settled and amps < c.off_max_a) or on_for >= c.on_settle_s - 1e-9):
            return []
        self._dead_bad += 1
        if self._dead_bad < c.confirm_checks:
            return []
        return [(HEATER_NO_CURRENT,
                 f'element drew {amps:.2f} A with the heater on {on_for:.1f} s and the relay '
                 f'driven (at least {c.on_min_a:.2f} A expected)')]

    def _read_current(self):
        for _ in range(int(self.cfg.read_attempts)):
            try:
                amps = float(self._current_a())
                if amps == amps:                    # NaN is a broken reading
                    self.amps = amps
                    return amps
                last = ValueError('current reading is NaN')
            except Exception as exc:                # a failed read is a fault, never 0 A
                last = exc
        self.amps = None
        self._read_error = f'element current unreadable: {type(last).__name__}: {last}'
        return None

    def _check_welded(self, amps, off_for, settled):
        c = self.cfg
        if amps <= c.off_max_a:
            self._welded_bad = 0
            return []
        if not ((settled and amps > c.on_min_a) or off_for >= c.off_settle_s - 1e-9):
            return []
        self._welded_bad += 1
        if self._welded_bad < c.confirm_checks:
            return []
        return [(HEATER_CURRENT_WHILE_OFF,
                 f'element drew {amps:.2f} A {off_for:.1f} s after the heater '
                 f'was switched off (limit {self.cfg.off_max_a:.2f} A)')]

    def _check_contactor(self, now):
        closed, pressed = self._chain_closed(), self._estop_pressed()
        open_alone = not closed and not pressed
        stuck_in = closed and pressed
        self._open_since = (now if self._open_since is None else self._open_since) \
            if open_alone else None
        self._stuck_since = (now if self._stuck_since is None else self._stuck_since) \
            if stuck_in else None
        if open_alone and now - self._open_since >= self.cfg.chain_open_s:
            return [(SAFETY_CHAIN_OPEN, f'contactor out for {now - self._open_since:.1f} s '
                                        f'with the e-stop not pressed')]
        if stuck_in and now - self._stuck_since >= self.cfg.contactor_drop_s:
            return [(CONTACTOR_WELDED, f'contactor still in {now - self._stuck_since:.1f} s '
                                       f'after the e-stop was pressed (limit '
                                       f'{self.cfg.contactor_drop_s:.1f} s)')]
        return []
