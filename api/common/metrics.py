"""Prometheus metrics for one service: its own registry (no process-global state), the
request counters and latencies every service has, and build info. Each service adds
its domain gauges to `registry`."""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from .latency import LATENCY_BUCKETS


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service, version):
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        # process_start_time_seconds and friends: a restart (by systemd, the watchdog or a
        # deploy) shows as a new start time, which the alerts count.
        ProcessCollector(registry=self.registry)
        self.requests = Counter(f'{service}_http_requests', 'HTTP requests answered',
                                ('method', 'route', 'status'), registry=self.registry)
        self.latency = Histogram(f'{service}_http_request_duration_seconds',
                                 'Time to answer an HTTP request', ('route',),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.build_info = Gauge(f'{service}_build_info', 'The version running (always 1)',
                                ('version',), registry=self.registry)
        self.build_info.labels(version).set(1)
        self._children = {}

    def gauge(self, name, doc, labels=()):
        return Gauge(f'{self.service}_{name}', doc, labels, registry=self.registry)

    def histogram(self, name, doc, labels=(), buckets=LATENCY_BUCKETS):
        return Histogram(f'{self.service}_{name}', doc, labels, buckets=buckets,
                         registry=self.registry)

    def counter(self, name, doc, labels=()):
        return Counter(f'{self.service}_{name}', doc, labels, registry=self.registry)

    def observe_request(self, method, route, status, seconds):
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:   # labels() takes a lock and builds a key: do it once per key
            children = (self.requests.labels(method, route, status), self.latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self):
        return generate_latest(self.registry)
