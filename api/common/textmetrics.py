"""Prometheus metrics for a service that must stay small (chillybin: every service under
40 MB, issue 16), written in the Prometheus text format here instead of through
prometheus_client. Importing prometheus_client (and the http.server, wsgiref, urllib and
decimal it brings) costs chillybin's primary 1.9 MB, at start or at the first scrape;
what a service needs of it is a few families and a page of text.

`TextServiceMetrics` exports what `ServiceMetrics` (metrics.py) exports: the request
counter and latency histogram, build info and the process's own figures. Collectors
registered on it yield families made with the classes below, which take the same
arguments as prometheus_client.core's (tests/api/test_textmetrics.py holds the output
against prometheus_client's for the same families).
"""
import bisect
import math
import os
import threading
import time

from .latency import LATENCY_BUCKETS

CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'


def _number(value):
    value = float(value)
    if math.isnan(value):
        return 'NaN'
    if math.isinf(value):
        return '+Inf' if value > 0 else '-Inf'
    return repr(value)


def _escape(text, quote=True):
    text = text.replace('\\', r'\\').replace('\n', r'\n')
    return text.replace('"', r'\"') if quote else text


def _labels(pairs):
    if not pairs:
        return ''
    return '{' + ','.join(f'{k}="{_escape(str(v))}"' for k, v in pairs) + '}'


class _Family:
    type = 'gauge'
    suffix = ''

    def __init__(self, name, documentation, value=None, labels=None):
        self.name = name
        self.documentation = documentation
        self.labels = list(labels or ())
        self.samples = []            # (suffix, label pairs, value)
        self.created = []            # (label pairs, wall time)
        if value is not None:
            self.add_metric([], value)

    def _pairs(self, values):
        return list(zip(self.labels, values))

    def lines(self):
        name = self.name + self.suffix
        yield f'# HELP {name} {_escape(self.documentation, quote=False)}'
        yield f'# TYPE {name} {self.type}'
        for suffix, pairs, value in self.samples:
            yield f'{self.name}{suffix}{_labels(pairs)} {_number(value)}'
        if self.created:
            yield f'# HELP {self.name}_created {_escape(self.documentation, quote=False)}'
            yield f'# TYPE {self.name}_created gauge'
            for pairs, at in self.created:
                yield f'{self.name}_created{_labels(pairs)} {_number(at)}'


class GaugeMetricFamily(_Family):
    def add_metric(self, labels, value):
        self.samples.append(('', self._pairs(labels), value))


class CounterMetricFamily(_Family):
    type = 'counter'
    suffix = '_total'

    def __init__(self, name, documentation, value=None, labels=None):
        super().__init__(name[:-len('_total')] if name.endswith('_total') else name,
                         documentation, value, labels)

    def add_metric(self, labels, value, created=None):
        pairs = self._pairs(labels)
        self.samples.append(('_total', pairs, value))
        if created is not None:
            self.created.append((pairs, created))


class HistogramMetricFamily(_Family):
    type = 'histogram'

    def add_metric(self, labels, buckets, sum_value, created=None):
        """`buckets`: [(le, cumulative count)], the last le '+Inf'."""
        pairs = self._pairs(labels)
        for le, count in buckets:
            self.samples.append(('_bucket', pairs + [('le', le)], count))
        self.samples.append(('_count', pairs, buckets[-1][1]))
        self.samples.append(('_sum', pairs, sum_value))
        if created is not None:
            self.created.append((pairs, created))


def bucket_bound(le):
    """A histogram bound as Prometheus writes it (0.001, 1.0, 300.0, +Inf)."""
    return _number(le)


class ProcessCollector:
    """This process's CPU, memory, start time and file descriptors, from /proc (Linux),
    named as prometheus_client names them (the alert rules count restarts from
    process_start_time_seconds)."""

    def __init__(self, proc='/proc'):
        self.proc = proc
        self.ticks = os.sysconf('SC_CLK_TCK')
        self.page = os.sysconf('SC_PAGE_SIZE')
        self.boot = None
        try:
            with open(os.path.join(proc, 'stat'), 'rb') as f:
                self.boot = next(float(line.split()[1]) for line in f if line.startswith(b'btime '))
        except (OSError, StopIteration):
            pass

    def collect(self):
        if self.boot is None:
            return
        me = os.path.join(self.proc, 'self')
        try:
            with open(os.path.join(me, 'stat'), 'rb') as f:
                fields = f.read().rsplit(b')', 1)[1].split()
        except OSError:
            return
        # fields[0] is the state (field 3 of proc(5)): utime is field 14, so fields[11]
        yield GaugeMetricFamily('process_virtual_memory_bytes', 'Virtual memory size in bytes.',
                                value=float(fields[20]))
        yield GaugeMetricFamily('process_resident_memory_bytes', 'Resident memory size in bytes.',
                                value=float(fields[21]) * self.page)
        yield GaugeMetricFamily('process_start_time_seconds',
                                'Start time of the process since unix epoch in seconds.',
                                value=float(fields[19]) / self.ticks + self.boot)
        yield CounterMetricFamily('process_cpu_seconds_total',
                                  'Total user and system CPU time spent in seconds.',
                                  value=(float(fields[11]) + float(fields[12])) / self.ticks)
        try:
            yield GaugeMetricFamily('process_open_fds', 'Number of open file descriptors.',
                                    value=len(os.listdir(os.path.join(me, 'fd'))))
            with open(os.path.join(me, 'limits'), 'rb') as f:
                limit = next(line.split()[3] for line in f if line.startswith(b'Max open files'))
            yield GaugeMetricFamily('process_max_fds', 'Maximum number of open file descriptors.',
                                    value=float(limit))
        except (OSError, StopIteration):
            pass


class _Registry:
    def __init__(self):
        self.collectors = []

    def register(self, collector):
        self.collectors.append(collector)


class TextServiceMetrics:
    """What a service's `Edge` and `/metrics` need: `observe_request`, `registry.register`,
    `render`, `content_type`."""
    content_type = CONTENT_TYPE

    def __init__(self, service, version):
        self.service = service
        self.version = version
        self.registry = _Registry()
        self.registry.register(ProcessCollector())
        self.registry.register(self)
        self._lock = threading.Lock()
        self._requests = {}        # (method, route, status) -> [count, created]
        self._latency = {}         # route -> [count in each bucket ... +Inf, sum, created]

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

    def collect(self):
        """The request counters, latencies and build info."""
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
        bounds = [*map(bucket_bound, LATENCY_BUCKETS), '+Inf']
        for route, row in latency.items():
            running, cumulative = 0, []
            for le, n in zip(bounds, row):
                running += n
                cumulative.append((le, running))
            durations.add_metric([route], cumulative, row[-2], created=row[-1])
        yield durations
        build = GaugeMetricFamily(f'{self.service}_build_info', 'The version running (always 1)',
                                  labels=['version'])
        build.add_metric([self.version], 1)
        yield build

    def render(self):
        return render(list(self.registry.collectors))


def render(collectors):
    """The text exposition of every family the collectors yield."""
    lines = [line for collector in collectors for family in collector.collect()
             for line in family.lines()]
    return ('\n'.join(lines) + '\n').encode()
