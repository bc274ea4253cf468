"""A load generator in its own process: GETs at a fixed rate (or a fixed count as fast as
it can), over keep-alive connections, reporting latency and errors as JSON.

    python -m bench.loadgen http://127.0.0.1:7000/v2/status --rate 200 --seconds 20
    python -m bench.loadgen http://127.0.0.1:7001/ --count 10000 --threads 8
"""
import argparse
import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def worker(url, interval, until, count, latencies, errors, lock):
    parts = urlsplit(url)
    path = parts.path + (f'?{parts.query}' if parts.query else '')
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    next_at = time.monotonic()
    while True:
        with lock:
            if count is not None:
                if count[0] <= 0:
                    break
                count[0] -= 1
        if until is not None and time.monotonic() >= until:
            break
        if interval:
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            next_at += interval
        started = time.perf_counter()
        try:
            conn.request('GET', path)
            response = conn.getresponse()
            response.read()
            ok = response.status < 500
        except OSError:
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            ok = False
        took = time.perf_counter() - started
        with lock:
            latencies.append(took)
            if not ok:
                errors[0] += 1


def run(url, rate=None, seconds=None, count=None, threads=4):
    latencies, errors, lock = [], [0], threading.Lock()
    interval = threads / rate if rate else None
    until = time.monotonic() + seconds if seconds else None
    shared = [count] if count is not None else None
    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(url, interval, until, shared, latencies,
                                                  errors, lock)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    took = time.monotonic() - started
    return {'requests': len(latencies), 'errors': errors[0], 'seconds': round(took, 2),
            'rate': round(len(latencies) / took, 1),
            'p50_ms': round(percentile(latencies, 0.5) * 1000, 2) if latencies else None,
            'p99_ms': round(percentile(latencies, 0.99) * 1000, 2) if latencies else None,
            'max_ms': round(max(latencies) * 1000, 2) if latencies else None}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.loadgen')
    parser.add_argument('url')
    parser.add_argument('--rate', type=float)
    parser.add_argument('--seconds', type=float)
    parser.add_argument('--count', type=int)
    parser.add_argument('--threads', type=int, default=4)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.url, args.rate, args.seconds, args.count, args.threads)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
