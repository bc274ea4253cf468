"""Continuous HTTP load for the restart proofs: N client threads, bounded in time.

Each request opens its own connection (Connection: close), so a request can never be
sent on a kept-alive connection the server is closing; a failure is any error or any
status other than 200, and is never retried. Each client sends at most one request per
`pace` seconds, so the load generator leaves CPU for the deploy it is measuring (this
machine has two cores).
"""
import http.client
import threading
import time


class Load:
    def __init__(self, targets, clients=24, timeout=60, max_seconds=900, pace=0.05):
        self.targets = targets          # [(port, path)], taken in turn
        self.clients, self.timeout, self.max_seconds = clients, timeout, max_seconds
        self.pace = pace
        self.latencies, self.failures = [], []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []

    def _one(self, port, path):
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=self.timeout)
            conn.request('GET', path, headers={'Connection': 'close'})
            answer = conn.getresponse()
            answer.read()
            conn.close()
            error = None if answer.status == 200 else f'{answer.status} {answer.reason}'
        except (OSError, http.client.HTTPException) as exc:
            error = f'{type(exc).__name__}: {exc}'
        took = time.monotonic() - started
        with self._lock:
            self.latencies.append(took)
            if error:
                self.failures.append((time.strftime('%H:%M:%S'), port, path, error))

    def _client(self, n):
        deadline = time.monotonic() + self.max_seconds
        i = n
        while not self._stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            self._one(*self.targets[i % len(self.targets)])
            i += 1
            self._stop.wait(max(0.0, self.pace - (time.monotonic() - started)))

    def __enter__(self):
        for n in range(self.clients):
            t = threading.Thread(target=self._client, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def summary(self):
        lat = sorted(self.latencies) or [0.0]
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]   # noqa: E731
        return {'requests': len(self.latencies), 'failed': len(self.failures),
                'p50_ms': round(pick(0.5) * 1000, 1), 'p99_ms': round(pick(0.99) * 1000, 1),
                'max_ms': round(lat[-1] * 1000, 1), 'clients': self.clients}
