"""The control loop's lateness (how late each 100 ms tick starts), idle and while the
same jafflr process serves HTTP: at 200 requests/s, and flat out under wrk.

Read from jafflr's own Prometheus histogram, scraped before and after each phase, so each
figure covers exactly that phase. Target: p99 lateness under 10 ms at 200 requests/s.
"""
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

from .http import wrk
from api.launcher import ROOT, Launcher

METRIC = 'jafflr_control_loop_lateness_seconds'


def scrape(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    buckets = {}
    for le, value in re.findall(METRIC + r'_bucket\{le="([^"]+)"\} ([\d.e+]+)', text):
        buckets[float('inf') if le == '+Inf' else float(le)] = float(value)
    return buckets


def quantile(before, after, q):
    """histogram_quantile over the difference of two scrapes, in milliseconds."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1]
    if total <= 0:
        return None, 0
    rank, previous_edge, previous_count = q * total, 0.0, 0.0
    for edge, count in zip(edges, counts):
        if count >= rank:
            if edge == float('inf'):
                return previous_edge * 1000, int(total)
            share = (rank - previous_count) / max(count - previous_count, 1e-9)
            return (previous_edge + (edge - previous_edge) * share) * 1000, int(total)
        previous_edge, previous_count = edge, count
    return None, int(total)


def fraction_within(before, after, edge):
    total = after[float('inf')] - before.get(float('inf'), 0.0)
    return (after[edge] - before.get(edge, 0.0)) / total if total else None


def histogram(before, after):
    """[[upper edge in ms (None: +Inf), ticks in that bucket alone], ...] for plotting."""
    out, previous = [], 0.0
    for edge in sorted(after):
        cumulative = after[edge] - before.get(edge, 0.0)
        out.append([None if edge == float('inf') else round(edge * 1000, 3),
                    int(cumulative - previous)])
        previous = cumulative
    return out


def phase(metrics_url, name, load):
    before = scrape(metrics_url)
    extra = load() if load else time.sleep(15)
    after = scrape(metrics_url)
    p50, n = quantile(before, after, 0.5)
    p99, _ = quantile(before, after, 0.99)
    return {'phase': name, 'ticks': n, 'p50_ms': round(p50, 2), 'p99_ms': round(p99, 2),
            'within_10ms': round(fraction_within(before, after, 0.01), 4), 'load': extra,
            'histogram': histogram(before, after)}


def measure():
    with Launcher(speed=1.0) as stack:
        metrics = stack.url('jafflr', '/metrics')
        status = stack.url('jafflr', '/v2/status')
        # Keep the plate under control while measuring: a toastie's worth of heating.
        req = urllib.request.Request(stack.url('jafflr', '/v2/toasties'), method='POST',
                                     data=json.dumps({'ingredients': ['cheese']}).encode(),
                                     headers={'Content-Type': 'application/json'})
        urllib.request.urlopen(req, timeout=10).read()
        time.sleep(3)

        def paced():
            out = subprocess.run([sys.executable, '-m', 'bench.loadgen', status, '--rate', '200',
                                  '--seconds', '15', '--threads', '4'], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout)

        def flat_out():
            return wrk(status, 32, 15)
        return [phase(metrics, 'idle', None), phase(metrics, '200 req/s', paced),
                phase(metrics, 'wrk, 32 clients', flat_out)]


def verdicts(results):
    paced = next(r for r in results if r['phase'] == '200 req/s')
    return [('control loop p99 lateness < 10 ms at 200 req/s', paced['p99_ms'] < 10,
             f'{paced["p99_ms"]:.2f} ms')]
