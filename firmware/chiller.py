"""Holding the chilly bin at about 3 C, and noticing when it is not cold.

Hysteresis control: the chiller turns on above `on_above_c` and off below `off_below_c`,
with a minimum time in each state to spare a compressor. An unreadable bin sensor keeps
the chiller running (cold food is the safe side). The bin above 5 C for more than
15 minutes raises the `bin-warm` alert, cleared once it is back at or below 5 C.
"""
from dataclasses import dataclass

from .foodsafety import LIMIT_C


@dataclass(frozen=True)
class ChillerConfig:
    on_above_c: float = 4.0
    off_below_c: float = 2.0
    min_on_s: float = 30.0
    min_off_s: float = 60.0
    warm_alert_s: float = 15 * 60.0

    def __post_init__(self):
        if not self.off_below_c < self.on_above_c <= LIMIT_C:
            raise ValueError(f'chiller band ({self.off_below_c:.1f}:{self.on_above_c:.1f}) must '
                             f'be increasing and at or below {LIMIT_C:.1f} C')


class ChillerControl:
    def __init__(self, config=ChillerConfig()):
        self.config = config
        self.on = False
        self.changed_at = float('-inf')
        self.warm_since = None
        self.alert = False

    def update(self, now, temp_c):
        """Decide the chiller for this moment; returns whether it should run."""
        c = self.config
        held = now - self.changed_at
        want = self.on
        if temp_c is None:
            want = True
        elif temp_c > c.on_above_c:
            want = True
        elif temp_c < c.off_below_c:
            want = False
        if want != self.on and held >= (c.min_on_s if self.on else c.min_off_s):
            self.on = want
            self.changed_at = now
        self._watch(now, temp_c)
        return self.on

    def _watch(self, now, temp_c):
        if temp_c is None or temp_c > LIMIT_C:
            if self.warm_since is None:
                self.warm_since = now
            self.alert = now - self.warm_since > self.config.warm_alert_s
        else:
            self.warm_since = None
            self.alert = False

    def warm_for_s(self, now):
        return 0.0 if self.warm_since is None else now - self.warm_since
