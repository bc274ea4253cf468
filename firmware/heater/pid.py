"""Plate temperature control algorithms, chosen by name (Klipper style).

Each is a small class with the same two methods:

    reset()                                  forget history (new target, after a fault)
    update(now, temp_c, target_c) -> duty    heater duty in [0, 1] for the next tick

and an optional `load_hint(now, watts)` (a no-op unless the algorithm uses it). `now` is
monotonic seconds handed in by the loop; nothing here reads a clock.
"""
import math

from ..config import checked
from ..errors import ConfigError


class Controller:
    """What every control algorithm offers; the defaults do nothing."""

    SPEC = {}     # setting name -> (default, min, max)

    def __init__(self, config=None):
        self.cfg = checked(config, self.SPEC, type(self).__name__)
        self.reset()

    def reset(self):
        pass

    def update(self, now, temp_c, target_c):
        raise NotImplementedError

    def load_hint(self, now, watts):
        """A load is about to draw `watts` from the plate (a cold sandwich went in)."""


class PID(Controller):
    """PID with feed-forward, on the plate probe.

    - Feed-forward: the duty that holds the target against the plate's steady loss to
      the room, loss_w_per_k x (target - ambient) / heater_w, so the integral only
      carries the model's error, not the whole operating point.
    - Load feed-forward: `load_hint(now, watts)` adds watts / heater_w of duty, fading
      with `load_tau_s` (a cold sandwich warms, and draws less, with a time constant of
      about a minute), so a sandwich is answered in the tick it enters instead of after
      the probe has seen the plate drop.
    - Derivative on the measurement, low-pass filtered: a target step gives no kick,
      and the probe's 1/16 C steps do not rattle the output.
    - Anti-windup: the integral stops while the output is saturated in the direction the
      error pushes it (the whole 4-minute heat-up runs at full power), and is clamped
      to +/- integral_limit of duty.

    Gains are in duty per C (kp), per C-second (ki), per C/s (kd). The defaults are tuned
    on the simulated plate, which from duty to probe is nearly an integrator (full power
    heats 1800 J/K at 1 C/s; the 600 s loss time constant hardly matters) behind the
    probe's 1.5 s lag:
    - kp 0.25: a 4 s closed-loop time constant, well below the lag's 0.67 rad/s corner;
    - kd 0.6 (kd/kp = 2.4 s of lead) cancels most of the probe lag and the filter;
    - ki 0.006 (integral time 42 s): slow enough not to wind up at the end of a heat-up,
      fast enough to follow a cold sandwich's draw, which fades over about 70 s.
    Sweeping kp 0.15-0.4, ki 0.006-0.012, kd 0.3-1.0 against plates with a 3 s probe
    lag, 1500 W, 4.5 W/K of loss or 1400 J/K: every setting kept a cold sandwich's dip
    under 2.5 C and overshoot under 1.7 C; these gains (dip 1.7 C, overshoot 0.5 C at
    worst over those plates) sit in the middle of that range, not at an edge.
    """

    SPEC = {
        'kp': (0.25, 0.0, 10.0),
        'ki': (0.006, 0.0, 1.0),
        'kd': (0.6, 0.0, 100.0),
        'derivative_filter_s': (1.0, 0.0, 30.0),
        'integral_limit': (0.3, 0.0, 1.0),
        'heater_w': (1800.0, 10.0, 20000.0),
        'loss_w_per_k': (3.0, 0.0, 100.0),
        'ambient_c': (21.0, -20.0, 50.0),
        'load_tau_s': (70.0, 1.0, 3600.0),
    }

    def reset(self):
        self._last_now = None
        self._last_temp = None
        self._slope = 0.0          # filtered d(temp)/dt, C/s
        self._integral = 0.0       # in duty
        self._load_w = 0.0
        self._load_at = None
        self.terms = {}            # last update's terms, for status pages and tuning

    def load_hint(self, now, watts):
        self._load_w = self._load_now(now) + max(0.0, float(watts))
        self._load_at = now

    def _load_now(self, now):
        if self._load_at is None:
            return 0.0
        return self._load_w * math.exp(-max(0.0, now - self._load_at) / self.cfg.load_tau_s)

    def _measure_slope(self, now, temp_c):
        dt = 0.0 if self._last_now is None else now - self._last_now
        if dt > 0:
            raw = (temp_c - self._last_temp) / dt
            alpha = dt / (dt + self.cfg.derivative_filter_s)
            self._slope += alpha * (raw - self._slope)
        self._last_now, self._last_temp = now, temp_c
        return dt

    def update(self, now, temp_c, target_c):
        c = self.cfg
        dt = self._measure_slope(now, temp_c)
        error = target_c - temp_c
        feed = (c.loss_w_per_k * (target_c - c.ambient_c) + self._load_now(now)) / c.heater_w
        p, d = c.kp * error, -c.kd * self._slope
        unclamped = feed + p + self._integral + d
        pushing_past_limit = (unclamped >= 1.0 and error > 0) or (unclamped <= 0.0 and error < 0)
        if dt > 0 and not pushing_past_limit:
            self._integral = min(c.integral_limit, max(-c.integral_limit,
                                                       self._integral + c.ki * error * dt))
        duty = min(1.0, max(0.0, feed + p + self._integral + d))
        self.terms = {'feed': feed, 'p': p, 'i': self._integral, 'd': d, 'duty': duty}
        return duty


class BangBang(Controller):
    """On below target - max_delta_c, off above target + max_delta_c, else as it was
    (Klipper's watermark). A fallback for a plate whose PID has not been tuned: it
    overshoots by the probe lag times the heating rate, a few degrees more than PID."""

    SPEC = {'max_delta_c': (2.0, 0.1, 20.0)}

    def reset(self):
        self._on = False

    def update(self, now, temp_c, target_c):
        if temp_c <= target_c - self.cfg.max_delta_c:
            self._on = True
        elif temp_c >= target_c + self.cfg.max_delta_c:
            self._on = False
        return 1.0 if self._on else 0.0


CONTROLLERS = {'pid': PID, 'bang-bang': BangBang}


def make_controller(name, config=None):
    """The control algorithm called `name`, built with its own settings."""
    try:
        cls = CONTROLLERS[name]
    except (KeyError, TypeError):
        raise ConfigError(f'unknown controller {name!r}; known: '
                          f'{", ".join(sorted(CONTROLLERS))}') from None
    return cls(config)
