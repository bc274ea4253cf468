"""Resident memory of each service idle and after 10 000 requests, and of the whole stack
(simulator included). Targets: each service under 40 MB idle; the stack under 120 MB."""
import json
import subprocess
import sys
import time

from .stack import ROOT, Stack, rss_kb


def measure():
    with Stack(speed=1.0) as stack:
        time.sleep(5)
        idle = {name: rss_kb(p.pid) / 1024 for name, p in stack.procs.items()}
        for service, path in (('chillybin', '/'), ('jafflr', '/v2/status')):
            subprocess.run([sys.executable, '-m', 'bench.loadgen', stack.url(service, path),
                            '--count', '10000', '--threads', '8'], cwd=ROOT, check=True,
                           capture_output=True)
        time.sleep(1)
        loaded = {name: rss_kb(p.pid) / 1024 for name, p in stack.procs.items()}
    return {'idle_mb': {k: round(v, 1) for k, v in idle.items()},
            'after_10000_requests_mb': {k: round(v, 1) for k, v in loaded.items()},
            'stack_idle_mb': round(sum(idle.values()), 1),
            'stack_after_mb': round(sum(loaded.values()), 1)}


def verdicts(r):
    out = [(f'{name} idle < 40 MB', mb < 40, f'{mb:.1f} MB') for name, mb in r['idle_mb'].items()
           if name != 'sim']
    out.append(('whole stack < 120 MB', r['stack_after_mb'] < 120, f'{r["stack_after_mb"]:.1f} MB'))
    return out


if __name__ == '__main__':
    print(json.dumps(measure(), indent=2))
