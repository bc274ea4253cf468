"""chillybin's metrics without prometheus_client (api/common/textmetrics.py): the same
samples as prometheus_client writes for the same families, read back with its parser."""
import subprocess
import sys

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client import core
from prometheus_client.parser import text_string_to_metric_families

from api.common import textmetrics
from api.common.metrics import ServiceMetrics
from api.common.textmetrics import TextServiceMetrics, render

OBSERVED = [('GET', '/', 200, 0.0004), ('GET', '/', 200, 0.001), ('GET', '/', 200, 0.0011),
            ('POST', '/v2/reservations', 201, 0.02), ('POST', '/v2/reservations', 409, 7.5),
            ('GET', '/v2/stock', 200, 400.0), ('other', 'unknown', 404, 0.1)]


def samples(text, skip=('_created',)):
    """{(name, labels): value} as Prometheus reads the text; names ending with `skip` out."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith(skip):
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def families(m):
    """One of each kind, with labels that need escaping, built with module `m`'s classes."""
    gauge = m.GaugeMetricFamily('bin_temperature_celsius', 'Bin air\ntemperature \\ C')
    gauge.add_metric([], -1.5)
    yield gauge
    bays = m.GaugeMetricFamily('bay_units', 'Units measured', labels=['bay'])
    for bay, units in (('bread', 10), ('say "cheese"\\\n', 0), ('ham', float('inf'))):
        bays.add_metric([bay], units)
    yield bays
    yield m.GaugeMetricFamily('chiller_on', 'Chiller running', value=1)
    errors = m.CounterMetricFamily('sensor_errors', 'Failed reads', labels=['part'])
    errors.add_metric(['loadcell_0'], 3)
    errors.add_metric(['bin_air'], 0)
    yield errors
    histogram = m.HistogramMetricFamily('replica_seconds', 'Time to answer', labels=['route'])
    histogram.add_metric(['/'], [('0.001', 2), ('1.0', 5), ('+Inf', 6)], 12.25)
    yield histogram


class Collect:
    def __init__(self, made):
        self.made = made

    def collect(self):
        return self.made

    def describe(self):
        return []


def test_textmetrics_families_read_back_as_prometheus_client_writes_them():
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Collect(list(families(core))))
    want = generate_latest(registry).decode()
    got = render([Collect(list(families(textmetrics)))]).decode()
    assert samples(got) == samples(want)
    assert ('bay_units', (('bay', 'say "cheese"\\\n'),)) in samples(got)
    assert ('sensor_errors_total', (('part', 'loadcell_0'),)) in samples(got)


def test_textmetrics_service_metrics_as_service_metrics_exports_them():
    eager, text = ServiceMetrics('chillybin', 'v9'), TextServiceMetrics('chillybin', 'v9')
    for row in OBSERVED:
        eager.observe_request(*row)
        text.observe_request(*row)
    want = samples(eager.render().decode(), skip=('_created',))
    got = samples(text.render().decode(), skip=('_created',))
    process = {k for k in want if k[0].startswith('process_')}
    assert {k for k in got if k[0].startswith('process_')} == process
    for key in process - {('process_cpu_seconds_total', ()), ('process_virtual_memory_bytes', ()),
                          ('process_resident_memory_bytes', ()), ('process_open_fds', ())}:
        assert got[key] == want[key], key          # start time, max fds
    assert {k: v for k, v in got.items() if k not in process} == \
        {k: v for k, v in want.items() if k not in process}
    assert got[('chillybin_http_request_duration_seconds_bucket',
                (('le', '0.001'), ('route', '/')))] == 2.0
    created = samples(text.render().decode(), skip=('_total', '_bucket', '_count', '_sum', '_info',
                                                    '_seconds', '_bytes', '_fds'))
    assert len(created) == 5 + 4       # one per request counter, one per route


def test_textmetrics_process_start_time_is_prometheus_clients():
    want = samples(generate_latest(_registry_with(ProcessCollector)).decode())
    got = samples(render([textmetrics.ProcessCollector()]).decode())
    key = ('process_start_time_seconds', ())
    assert got[key] == want[key] and set(got) == set(want)


def _registry_with(collector):
    registry = CollectorRegistry()
    collector(registry=registry)
    return registry


def test_textmetrics_chillybin_never_imports_prometheus_client():
    code = ('import sys\n'
            'import api.chillybin.service\n'
            'from api.common.textmetrics import TextServiceMetrics\n'
            'm = TextServiceMetrics("chillybin", "v")\n'
            'm.observe_request("GET", "/", 200, 0.01)\n'
            'm.render()\n'
            'print("prometheus_client" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['False']
