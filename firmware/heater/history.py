"""The plate's recent temperature and target, once a second, for the kitchen panel's chart.

Kept in memory in a bounded ring: a reload of the panel still shows the last minutes, a
restart of jafflr starts it empty (the chart is for looking, not for records). Nothing
here reads a clock: `sample(now, wall, ...)` is handed both.
"""
import math
import threading
from collections import deque

from ..config import checked


class PlateHistory:
    SPEC = {
        'period_s': (1.0, 0.1, 60.0),     # at most one sample per this many clock seconds
        'keep': (600, 10, 36000),         # samples kept: ten minutes at the default period
    }

    def __init__(self, config=None):
        cfg = checked(config or {}, self.SPEC, 'PlateHistory')
        self.period_s = cfg.period_s
        self._samples = deque(maxlen=int(cfg.keep))
        self._last_at = None
        self._lock = threading.Lock()    # held only to append or copy

    def sample(self, now, wall, temp_c, target_c):
        """Record the plate (None when unread or off) unless the last sample is too recent.
        Returns True when it recorded one."""
        if self._last_at is not None and now - self._last_at < self.period_s * 0.95:
            return False
        self._last_at = now
        entry = {'wall': round(wall, 3), 'temp_c': _rounded(temp_c), 'target_c': _rounded(target_c)}
        with self._lock:
            self._samples.append(entry)
        return True

    def since(self, wall=None):
        """Samples newer than `wall` (all when None), oldest first."""
        with self._lock:
            samples = list(self._samples)
        if wall is None:
            return samples
        return [s for s in samples if s['wall'] > wall]

    def __len__(self):
        return len(self._samples)


def _rounded(value):
    if value is None or not math.isfinite(value):
        return None
    return round(value, 2)
