"""HTTP throughput and latency with wrk (Debian's package), a load generator that is not
the code under test: chillybin `GET /` and jafflr `GET /v2/status` at 1, 8 and 32
concurrent connections.

Targets: chillybin at 32 clients >= 4000 requests/s with p99 < 50 ms; jafflr status
p99 < 20 ms.
"""
import re
import shutil
import subprocess

from api.launcher import Launcher

UNITS = {'us': 1e-3, 'ms': 1.0, 's': 1000.0}


def _ms(text):
    value, unit = re.fullmatch(r'([\d.]+)(us|ms|s)', text).groups()
    return float(value) * UNITS[unit]


def wrk(url, connections, seconds):
    if shutil.which('wrk') is None:
        raise RuntimeError('wrk is not installed: apt-get install wrk')
    out = subprocess.run(['wrk', f'-t{min(connections, 2)}', f'-c{connections}', f'-d{seconds}s',
                          '--latency', url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
    p50 = _ms(re.search(r'\s50%\s+(\S+)', out).group(1))
    p99 = _ms(re.search(r'\s99%\s+(\S+)', out).group(1))
    errors = re.search(r'Socket errors: (.*)', out)
    non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return {'rps': rps, 'p50_ms': p50, 'p99_ms': p99,
            'errors': (errors.group(1) if errors else '') + (f' non-2xx {non2xx.group(1)}'
                                                             if non2xx else '')}


def measure(seconds=8):
    results = []
    with Launcher(speed=1.0) as stack:
        for service, path in (('chillybin', '/'), ('jafflr', '/v2/status')):
            for connections in (1, 8, 32):
                r = wrk(stack.url(service, path), connections, seconds)
                results.append({'service': service, 'path': path, 'clients': connections, **r})
    return results


def verdicts(results):
    out = []
    for r in results:
        if r['service'] == 'chillybin' and r['clients'] == 32:
            out.append(('chillybin GET / at 32 clients >= 4000 req/s', r['rps'] >= 4000, f'{r["rps"]:.0f}'))
            out.append(('chillybin GET / at 32 clients p99 < 50 ms', r['p99_ms'] < 50, f'{r["p99_ms"]:.1f} ms'))
        if r['service'] == 'jafflr':
            out.append((f'jafflr status p99 < 20 ms ({r["clients"]} clients)', r['p99_ms'] < 20,
                        f'{r["p99_ms"]:.1f} ms'))
    return out
