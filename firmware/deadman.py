"""The dead-man: a thread of its own that calls `on_stall()` when the control loop has not
refreshed it for `timeout_s`.

The control loop refreshes it every tick (from PlateController's on_tick). If the loop
hangs (a stuck I2C transfer, a deadlock, a long GC pause) the dead-man forces the heater
pin off and latches control-loop-stalled, which is the composition root's `on_stall`.
The heartbeat monostable (1 s, in hardware) backs this up for a process that is dead or
frozen altogether: this thread is for the loop that stops while the process lives.

It is handed a clock (monotonic(), wait(event, timeout)) rather than reading the time,
so it runs on the real clock on the machine and on a sped-up clock in tests. The loop's
`now` values must come from the same clock.
"""
import logging
import threading

from .errors import ConfigError

log = logging.getLogger(__name__)


class DeadMan:
    """Calls `on_stall()` once per stall: when `timeout_s` passes without `refresh(now)`.
    A refresh after a stall re-arms it."""

    def __init__(self, clock, timeout_s, on_stall, *, poll_s=None, name='heater-dead-man'):
        if not timeout_s > 0:
            raise ConfigError(f'dead-man timeout ({timeout_s}) must be above 0 s')
        self._clock = clock
        self.timeout_s = float(timeout_s)
        # Checking ten times per timeout keeps the worst detection within 1.1 timeouts.
        self.poll_s = float(poll_s) if poll_s is not None else self.timeout_s / 10
        self._on_stall = on_stall
        self._name = name
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._last = None
        self._fired = False
        self.stalls = 0

    def refresh(self, now):
        """The control loop is alive at `now` (seconds on the dead-man's clock)."""
        with self._lock:
            self._last = now
            self._fired = False

    def start(self):
        """Arm it: from now the loop has `timeout_s` to refresh."""
        if self._thread is not None:
            raise RuntimeError('dead-man already started')
        with self._lock:
            if self._last is None:
                self._last = self._clock.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name=self._name, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def _watch(self):
        while not self._stop.is_set():
            self.check(self._clock.monotonic())
            self._clock.wait(self._stop, self.poll_s)

    def check(self, now):
        """Call on_stall() if the loop has not refreshed for timeout_s at `now`. The
        thread does this every poll_s; a caller that runs the loop itself, in turn with
        everything else on one thread (the in-process machine), calls it instead."""
        with self._lock:
            if self._last is None:        # never refreshed nor started: armed from now
                self._last = now
            stalled = not self._fired and now - self._last >= self.timeout_s
            if stalled:
                self._fired = True
                self.stalls += 1
                age = now - self._last
        if stalled:
            log.error('control loop not seen for %.2f s (limit %.2f s)', age, self.timeout_s)
            try:
                self._on_stall()
            except Exception:  # the watch must outlive a broken callback
                log.exception('dead-man on_stall failed')
