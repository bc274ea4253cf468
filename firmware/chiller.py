"""Holding the chilly bin at about 3 C, and noticing when it is not cold.

Hysteresis control: the chiller turns on above `on_above_c` and off below `off_below_c`,
with a minimum time in each state to spare a compressor. An unreadable bin sensor keeps
the chiller running (cold food is the safe side). The bin above 5 C for more than
15 minutes raises the `bin-warm` alert, cleared once it is back at or below 5 C.

A dead chiller (or a lid left open) shows sooner than that: a chiller that has run for
`cooling_window_s` (5 min) while the bin fell less than `min_cooling_c` over that window
raises `chiller-not-cooling` with the numbers, within 10 minutes of it running in vain
wherever the bin is. The bin model cools about 0.7 C in 5 minutes near 4 C in a 21 C
kitchen (0.4 C at 30 C), a dead chiller lets it warm 0.5 C.
"""
from collections import deque
from dataclasses import dataclass

from .foodsafety import LIMIT_C


@dataclass(frozen=True)
class ChillerConfig:
    on_above_c: float = 4.0
    off_below_c: float = 2.0
    min_on_s: float = 30.0
    min_off_s: float = 60.0
    warm_alert_s: float = 15 * 60.0
    cooling_window_s: float = 5 * 60.0
    min_cooling_c: float = 0.2

    def __post_init__(self):
        if not self.off_below_c < self.on_above_c <= LIMIT_C:
            raise ValueError(f'chiller band ({self.off_below_c:.1f}:{self.on_above_c:.1f}) must '
                             f'be increasing and at or below {LIMIT_C:.1f} C')
        if not 60.0 <= self.cooling_window_s <= 9 * 60.0:
            raise ValueError(f'cooling_window_s ({self.cooling_window_s:.0f}) must be 60-540 s: '
                             f'a chiller running in vain is reported within 10 minutes')


class ChillerControl:
    def __init__(self, config=ChillerConfig()):
        self.config = config
        self.on = False
        self.changed_at = float('-inf')
        self.warm_since = None
        self.alert = False
        self._running = deque()          # (now, temp_c) while the chiller has run
        self.not_cooling = None          # the alert's detail while it is active

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
        self._watch_cooling(now, temp_c)
        return self.on

    def _watch_cooling(self, now, temp_c):
        """Is the running chiller cooling? Compared over a sliding window, so a chiller
        that dies mid-run is found as soon as one that never worked."""
        c = self.config
        if not self.on or temp_c is None:
            self._running.clear()      # off (cold enough), or nothing to judge by
            if not self.on:
                self.not_cooling = None
            return
        self._running.append((now, temp_c))
        while len(self._running) > 1 and self._running[1][0] <= now - c.cooling_window_s:
            self._running.popleft()
        since, then_c = self._running[0]
        if now - since < c.cooling_window_s:
            return
        fell = then_c - temp_c
        if fell < c.min_cooling_c:
            self.not_cooling = (f'the chiller has run {(now - self.changed_at) / 60:.0f} min and '
                                f'the bin went from {then_c:.2f} C to {temp_c:.2f} C in the last '
                                f'{(now - since) / 60:.1f} min (a working chiller cools it at least '
                                f'{c.min_cooling_c:.1f} C): check the chiller and that the lid is shut')
        else:
            self.not_cooling = None

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
