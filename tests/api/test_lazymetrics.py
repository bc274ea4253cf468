"""LazyServiceMetrics (chillybin's request metrics): the same exposition as ServiceMetrics,
with prometheus_client left unimported until the first scrape."""
import re
import subprocess
import sys

from api.common.lazymetrics import LazyServiceMetrics
from api.common.metrics import ServiceMetrics

OBSERVED = [('GET', '/', 200, 0.0004), ('GET', '/', 200, 0.001), ('GET', '/', 200, 0.0011),
            ('POST', '/v2/reservations', 201, 0.02), ('POST', '/v2/reservations', 409, 7.5),
            ('GET', '/v2/stock', 200, 400.0), ('other', 'unknown', 404, 0.1)]


def _samples(text):
    """Every sample line but timestamps that differ by construction (created, process)."""
    return sorted(line for line in text.splitlines()
                  if line and not line.startswith('#') and '_created' not in line
                  and not line.startswith('process_'))


def test_lazymetrics_exposes_what_service_metrics_exposes():
    eager, lazy = ServiceMetrics('chillybin', 'v9'), LazyServiceMetrics('chillybin', 'v9')
    for row in OBSERVED:
        eager.observe_request(*row)
        lazy.observe_request(*row)
    want = _samples(eager.render().decode())
    got = _samples(lazy.render().decode())
    assert got == want
    assert 'chillybin_http_request_duration_seconds_bucket{le="0.001",route="/"} 2.0' in got
    assert lazy.content_type == eager.content_type
    lazy.observe_request('GET', '/', 200, 0.002)            # counted after the first scrape too
    assert 'chillybin_http_requests_total{method="GET",route="/",status="200"} 4.0' in \
        lazy.render().decode()


def test_lazymetrics_collectors_registered_before_and_after_the_first_scrape():
    class One:
        def __init__(self, name):
            self.name = name

        def describe(self):
            return []

        def collect(self):
            from prometheus_client.core import GaugeMetricFamily
            yield GaugeMetricFamily(self.name, 'a test gauge', value=1)

    lazy = LazyServiceMetrics('chillybin', 'v9')
    lazy.registry.register(One('before_scrape'))
    assert re.search(r'^before_scrape 1\.0$', lazy.render().decode(), re.M)
    lazy.registry.register(One('after_scrape'))
    text = lazy.render().decode()
    assert re.search(r'^before_scrape 1\.0$', text, re.M) and re.search(r'^after_scrape 1\.0$', text, re.M)


def test_lazymetrics_prometheus_client_is_imported_at_the_first_scrape_not_before():
    code = ('import sys\n'
            'from api.common.lazymetrics import LazyServiceMetrics\n'
            'm = LazyServiceMetrics("chillybin", "v")\n'
            'm.observe_request("GET", "/", 200, 0.01)\n'
            'print("prometheus_client" in sys.modules)\n'
            'm.render()\n'
            'print("prometheus_client" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ['False', 'True']
