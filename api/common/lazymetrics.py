"""Request metrics for a service that must stay small while idle (chillybin: every
service under 40 MB, issue 16). The same families as `ServiceMetrics` (metrics.py), but
counted in plain dicts, with prometheus_client (and the http.server, wsgiref and urllib
it brings) imported at the first scrape of /metrics instead of at start: 1.3 MB of the
primary's idle memory, measured with bench/memory.py.

Collectors registered on `registry` are kept until that first scrape and then collected
with the rest; they must import prometheus_client themselves, inside `collect()`.
"""
import bisect
import threading
import time

from .latency import LATENCY_BUCKETS


class _PendingRegistry:
    def __init__(self):
        self.collectors = []

    def register(self, collector):
        self.collectors.append(collector)


class LazyServiceMetrics:
    def __init__(self, service, version):
        self.service = service
        self.version = version
        self.registry = _PendingRegistry()
        self._lock = threading.Lock()
        self._requests = {}        # (method, route, status) -> [count, created]
        self._latency = {}         # route -> [count in each bucket ... +Inf, sum, created]
        self._real = None          # the prometheus registry, from the first scrape on

    @property
    def content_type(self):
        from prometheus_client.exposition import CONTENT_TYPE_LATEST
        return CONTENT_TYPE_LATEST

    def observe_request(self, method, route, status, seconds):
        bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)     # le is inclusive
        with self._lock:
            counted = self._requests.get((method, route, status))
            if counted is None:
                counted = self._requests[(method, route, status)] = [0, time.time()]
            counted[0] += 1
            latency = self._latency.get(route)
            if latency is None:
                latency = self._latency[route] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0, time.time()]
            latency[bucket] += 1
            latency[-2] += seconds

    def render(self):
        from prometheus_client.exposition import generate_latest
        with self._lock:
            if self._real is None:
                self._real = self._registry()
        return generate_latest(self._real)

    def _registry(self):
        from prometheus_client import CollectorRegistry, ProcessCollector
        registry = CollectorRegistry(auto_describe=True)
        # process_start_time_seconds and friends, read from /proc at each scrape
        ProcessCollector(registry=registry)
        registry.register(_RequestCollector(self))
        for collector in self.registry.collectors:
            registry.register(collector)
        self.registry = registry          # later registrations go straight in
        return registry

    def families(self):
        """The request counters, latencies and build info as prometheus families."""
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                            HistogramMetricFamily)
        from prometheus_client.utils import floatToGoString
        with self._lock:
            requests = {k: list(v) for k, v in self._requests.items()}
            latency = {k: list(v) for k, v in self._latency.items()}
        counts = CounterMetricFamily(f'{self.service}_http_requests', 'HTTP requests answered',
                                     labels=['method', 'route', 'status'])
        for (method, route, status), (n, created) in requests.items():
            counts.add_metric([method, route, str(status)], n, created=created)
        yield counts
        durations = HistogramMetricFamily(f'{self.service}_http_request_duration_seconds',
                                          'Time to answer an HTTP request', labels=['route'])
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), '+Inf']
        for route, row in latency.items():
            running, cumulative = 0, []
            for le, n in zip(bounds, row[:len(bounds)]):
                running += n
                cumulative.append((le, running))
            durations.add_metric([route], cumulative, row[-2])
        yield durations
        build = GaugeMetricFamily(f'{self.service}_build_info', 'The version running (always 1)',
                                  labels=['version'])
        build.add_metric([self.version], 1)
        yield build


class _RequestCollector:
    def __init__(self, metrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        return self.metrics.families()
