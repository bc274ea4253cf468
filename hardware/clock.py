"""Clocks: where the rest of the program gets its time from.

Logic never reads the time itself; it is handed `now` by a loop that owns a clock.
Three clocks share one small interface:

- RealClock: the wall and the monotonic clock of this computer;
- ScaledClock: real time sped up by a factor, for demos and end-to-end tests. Every
  process that is given the same origin and speed agrees on the time, because
  CLOCK_MONOTONIC is shared by all processes of one machine;
- FakeClock: only moves when a test (or a benchmark) advances it. Listeners, such as the
  simulated world, are advanced with it, so a three-minute toast runs in milliseconds.

`monotonic()` is for intervals and deadlines; `time()` is seconds since the epoch, for
timestamps that must survive a restart. On a ScaledClock both run `speed` times fast.
"""
import os
import threading
import time as _time


class Clock:
    """Interface shared by all clocks."""

    speed = 1.0

    def monotonic(self):
        raise NotImplementedError

    def time(self):
        raise NotImplementedError

    def sleep(self, seconds):
        raise NotImplementedError

    def wait(self, event, timeout):
        """Wait on a threading.Event for `timeout` clock seconds; returns event.is_set()."""
        raise NotImplementedError

    def describe(self):
        return {'kind': type(self).__name__, 'speed': self.speed}

    def synchronised(self):
        """Is `time()` known to be right? True, False, or None (cannot be known). A
        simulated clock is whatever it says."""
        return True


# systemd-timesyncd (Raspberry Pi OS's time client) keeps this directory while it runs and
# touches `synchronized` in it once the kernel clock is synchronised (systemd-timesyncd(8)).
TIMESYNC_DIR = '/run/systemd/timesync'


class RealClock(Clock):
    """This computer's clocks, unscaled."""

    def __init__(self, timesync_dir=TIMESYNC_DIR):
        self.timesync_dir = timesync_dir

    def synchronised(self):
        """A Pi has no real-time clock: after an outage fake-hwclock restores the last
        saved time, earlier than the truth, until NTP has synchronised. Known only where
        timesyncd runs (its directory exists); elsewhere None. (adjtimex() would say so
        for any NTP client, but ProtectClock= forbids that system call.)"""
        if not os.path.isdir(self.timesync_dir):
            return None
        return os.path.exists(os.path.join(self.timesync_dir, 'synchronized'))

    def monotonic(self):
        return _time.monotonic()

    def time(self):
        return _time.time()

    def sleep(self, seconds):
        if seconds > 0:
            _time.sleep(seconds)

    def wait(self, event, timeout):
        return event.wait(max(0.0, timeout))


class ScaledClock(Clock):
    """Real time multiplied by `speed` from a shared origin."""

    def __init__(self, speed, origin_monotonic=None, origin_wall=None):
        if not speed > 0:
            raise ValueError(f'clock speed must be above 0, not {speed!r}')
        self.speed = float(speed)
        self.origin_monotonic = _time.monotonic() if origin_monotonic is None else origin_monotonic
        self.origin_wall = _time.time() if origin_wall is None else origin_wall

    def monotonic(self):
        return (_time.monotonic() - self.origin_monotonic) * self.speed

    def time(self):
        return self.origin_wall + self.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            _time.sleep(seconds / self.speed)

    def wait(self, event, timeout):
        return event.wait(max(0.0, timeout) / self.speed)

    def describe(self):
        return {'kind': 'ScaledClock', 'speed': self.speed,
                'origin_monotonic': self.origin_monotonic, 'origin_wall': self.origin_wall}


class FakeClock(Clock):
    """A clock that moves only when advanced. Sleeping advances it.

    Listeners are called as listener(now) after every advance, in order of registration;
    the simulated world registers itself so that physics keeps pace with the clock.
    """

    def __init__(self, start_wall=1_700_000_000.0):
        self._now = 0.0
        self._start_wall = start_wall
        self._listeners = []
        self._lock = threading.RLock()

    def monotonic(self):
        return self._now

    def time(self):
        return self._start_wall + self._now

    def add_listener(self, listener):
        self._listeners.append(listener)

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError(f'a fake clock cannot go back ({seconds} s)')
        with self._lock:
            self._now += seconds
            for listener in self._listeners:
                listener(self._now)

    def sleep(self, seconds):
        self.advance(max(0.0, seconds))

    def wait(self, event, timeout):
        if not event.is_set():
            self.advance(max(0.0, timeout))
        return event.is_set()


def clock_from_description(desc):
    """Rebuild a clock from `describe()` output (how a service adopts the simulator's time)."""
    kind = desc.get('kind')
    if kind == 'ScaledClock':
        return ScaledClock(desc['speed'], desc['origin_monotonic'], desc['origin_wall'])
    if kind == 'RealClock':
        return RealClock()
    raise ValueError(f'cannot share a clock of kind {kind!r} between processes')
