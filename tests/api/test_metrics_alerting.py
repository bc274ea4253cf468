"""Metrics the alert rules need (deploy/monitoring): restarts and a stale chillybin loop."""
import threading
import time
from types import SimpleNamespace

from prometheus_client.exposition import generate_latest

from api.chillybin.service import BinCollector
from api.common.textmetrics import TextServiceMetrics, render
from api.common.metrics import ServiceMetrics


def _value(text, name):
    for line in text.splitlines():
        if line.startswith(name + ' '):
            return float(line.split()[1])
    return None


def test_metrics_every_service_exports_its_process_start_time():
    text = generate_latest(ServiceMetrics('jafflr', 'v1').registry).decode()
    started = _value(text, 'process_start_time_seconds')
    assert started is not None and time.time() - 7 * 24 * 3600 < started <= time.time()
    text = TextServiceMetrics('chillybin', 'v1').render().decode()      # chillybin's kind
    assert _value(text, 'process_start_time_seconds') == started


def _bin(last_tick):
    return SimpleNamespace(
        lock=threading.Lock(), last_tick=last_tick, scales=SimpleNamespace(bays={}),
        food=SimpleNamespace(clocks={}), reads=SimpleNamespace(errors={}),
        desk=SimpleNamespace(ledger=SimpleNamespace(open=lambda: [])),
        air=SimpleNamespace(temp_c=3.5, chiller=SimpleNamespace(on=False,
                                                                warm_for_s=lambda now: 0.0)))


def test_metrics_chillybin_loop_age_is_in_real_seconds_and_says_when_the_loop_died():
    clock = SimpleNamespace(monotonic=lambda: 130.0, speed=2.0)
    loop = SimpleNamespace(alive=True)
    text = render([BinCollector(_bin(100.0), clock, loop)]).decode()
    assert _value(text, 'chillybin_loop_seconds_since_tick') == 15.0   # 30 clock s at x2
    assert _value(text, 'chillybin_loop_running') == 1.0
    loop.alive = False
    text = render([BinCollector(_bin(None), clock, loop)]).decode()
    assert _value(text, 'chillybin_loop_seconds_since_tick') is None   # never ran: no sample
    assert _value(text, 'chillybin_loop_running') == 0.0
