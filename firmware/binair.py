"""The bin's air: its thermometer, the chiller it drives, and the recent temperatures."""
from collections import deque

from .chiller import ChillerConfig, ChillerControl
from .foodsafety import LIMIT_C, is_above

TEMPERATURE_HISTORY = 360          # one sample every 5 s: the last half hour
TEMPERATURE_EVERY_S = 5.0


class BinAir:
    """`read_c()` reads the air temperature; `set_chiller(on)` switches the chiller;
    `samples` is the journal the temperatures are kept in."""

    def __init__(self, read_c, set_chiller, reads, history, samples, lock,
                 chiller=ChillerConfig()):
        self.read_c = read_c
        self.set_chiller = set_chiller
        self.reads = reads
        self.history = history
        self.samples = samples
        self.lock = lock
        self.chiller = ChillerControl(chiller)
        self.temp_c = None
        self.error = 'not read yet'
        self.temperatures = deque(maxlen=TEMPERATURE_HISTORY)
        self._sampled_at = None

    @property
    def above_limit(self):
        """Food-safety time counts: above 5 C, or unknown."""
        return is_above(self.temp_c)

    def read(self):
        """(temperature, error): one read, outside the lock."""
        return self.reads.read(self.read_c)

    def take(self, now, wall, reading):
        """One round's reading: a failure too short to report keeps the last good one."""
        temp, error = reading
        if not self.reads.reported('bin_air', error):
            temp, error = self.temp_c, self.error
        if (error is None) != (self.error is None):
            self.history.record(wall, 'sensor', detail=f'bin air sensor '
                                f'{"recovered" if error is None else "failed: " + error}')
        self.temp_c, self.error = temp, error
        self._drive_chiller(now, wall, temp)
        if self._sampled_at is None or now - self._sampled_at >= TEMPERATURE_EVERY_S:
            self._sampled_at = now
            self.temperatures.append((wall, temp))
            self.samples.append({'wall': wall, 'c': temp})

    def _drive_chiller(self, now, wall, temp):
        was_alert, was_cooling = self.chiller.alert, self.chiller.not_cooling is None
        self.set_chiller(self.chiller.update(now, temp))
        if self.chiller.alert != was_alert:
            self.history.record(wall, 'alert', detail='bin above 5 C for more than 15 minutes'
                                if self.chiller.alert else 'bin back at or below 5 C')
        if (self.chiller.not_cooling is None) != was_cooling:
            self.history.record(wall, 'alert',
                                detail=self.chiller.not_cooling or 'the chiller cools again')

    def status(self, now):
        with self.lock:
            return {'temp_c': self.temp_c, 'ok': self.error is None, 'error': self.error,
                    'chiller_on': self.chiller.on, 'limit_c': LIMIT_C,
                    'above_5c_minutes': round(self.chiller.warm_for_s(now) / 60.0, 1),
                    'alert': 'bin-warm' if self.chiller.alert else None,
                    'history': [{'wall': w, 'c': c} for w, c in self.temperatures]}

    def alerts(self, now):
        found = []
        if self.chiller.alert:
            found.append({'alert': 'bin-warm', 'detail': f'the bin has been above 5 C for '
                          f'{self.chiller.warm_for_s(now) / 60:.0f} minutes'})
        if self.chiller.not_cooling:
            found.append({'alert': 'chiller-not-cooling', 'detail': self.chiller.not_cooling})
        if self.error:
            found.append({'alert': 'bin-sensor', 'detail': self.error})
        return found
