"""Time-proportioning of the heater's solid state relay.

The SSR switches at zero crossings, so it can change state on any control tick (100 ms
is five mains cycles at 50 Hz). A duty is turned into on/off ticks by a first-order
sigma-delta in time: the on-time owed (commanded minus delivered, in seconds) is carried
from tick to tick and the relay is closed for the next tick when that is nearer to
paying it off. So:

- resolution: one tick of on-time; the owed time stays within half a tick, so over any
  N ticks the relay's mean duty is within 1/N of the mean commanded duty (1 % over 10 s);
- duty 0 is always off and duty 1 always on, with nothing carried over;
- no fixed window: a change of duty acts on the next tick, which the PID prefers to a
  2 s window's worth of delay on top of the probe's 1.5 s lag.
"""
import math

from ..config import checked


class TimeProportioning:
    """Turns a duty in [0, 1] into relay on/off, one decision per control tick."""

    SPEC = {
        'tick_s': (0.1, 0.01, 10.0),   # the control loop's nominal period
    }

    def __init__(self, config=None):
        self.cfg = checked(config, self.SPEC, 'TimeProportioning')
        self.reset()

    def reset(self):
        self._last_now = None
        self._duty = 0.0
        self._on = False
        self._owed_s = 0.0

    def update(self, now, duty):
        """Relay state for the tick starting at `now`."""
        tick = self.cfg.tick_s
        if self._last_now is not None:
            # What the last interval owed: its commanded duty minus what the relay gave.
            # Clamped to one tick, so a late tick (a stall) is not paid back afterwards as
            # a burst of heat or a long gap.
            dt = max(0.0, now - self._last_now)
            owed = self._owed_s + (self._duty - (1.0 if self._on else 0.0)) * dt
            self._owed_s = min(tick, max(-tick, owed))
        self._last_now = now
        duty = float(duty)
        duty = 0.0 if math.isnan(duty) else min(1.0, max(0.0, duty))   # NaN means off
        self._duty = duty
        if duty <= 0.0 or duty >= 1.0:
            self._owed_s = 0.0
            self._on = duty >= 1.0
        else:
            self._on = self._owed_s + duty * tick > tick / 2
        return self._on
