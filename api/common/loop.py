"""A periodic loop on its own thread, on a clock: calls `step(now)` every `period_s`
clock seconds, measures how late each call was, and never dies of one bad step. A step
that raises is logged and counted, and `on_error(name, exc)` is told: a service whose
loop drives outputs makes that a fault (jafflr trips control-error and turns them off)."""
import logging
import threading
from collections import deque

log = logging.getLogger('api.loop')


class PeriodicLoop:
    def __init__(self, name, clock, period_s, step, *, keep_lateness=2000, observe=None,
                 on_error=None):
        """`observe(seconds_late)` is called for every step (a metrics histogram)."""
        self.name = name
        self.on_error = on_error
        self.clock = clock
        self.period_s = period_s
        self.step = step
        self.observe = observe
        self.lateness = deque(maxlen=keep_lateness)   # real seconds late, per call
        self.errors = 0
        self.last_error = None
        self.last_run = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self):
        return self._thread.is_alive()

    def _run(self):
        due = self.clock.monotonic()
        while not self._stop.is_set():
            now = self.clock.monotonic()
            if now < due:
                self.clock.wait(self._stop, due - now)
                continue
            late = (now - due) / self.clock.speed
            self.lateness.append(late)
            if self.observe is not None:
                self.observe(late)
            try:
                self.step(now)
            except Exception as exc:   # one bad step is logged; the loop goes on
                self.errors += 1
                self.last_error = f'{type(exc).__name__}: {exc}'
                log.exception('%s: step failed', self.name)
                if self.on_error is not None:
                    try:
                        self.on_error(self.name, exc)
                    except Exception:
                        log.exception('%s: on_error failed', self.name)
            self.last_run = now
            due += self.period_s
            if self.clock.monotonic() - due > 10 * self.period_s:
                due = self.clock.monotonic()    # fell far behind (suspended?): do not burst

    def lateness_summary(self):
        values = sorted(self.lateness)
        if not values:
            return {'count': 0}
        pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
        return {'count': len(values), 'p50_ms': pick(0.5) * 1000, 'p99_ms': pick(0.99) * 1000,
                'max_ms': values[-1] * 1000}
