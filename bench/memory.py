"""Resident memory of each service idle and after 10 000 requests, and of the whole stack
(simulator included). Targets: each service under 40 MB idle; the stack under 120 MB.

A service may be more than one process: chillybin forks a read replica that shares the
primary's pages copy-on-write (api/common/replica.py). Adding the two RSS figures would
count every shared page twice, so a service's memory is the sum of its processes'
first process's RSS plus the pages private to each of the others (their Uss: what
they added). That counts a page shared inside the service once, and a page shared with
other programs (the Python interpreter, libc) in full, as RSS does: what the service
would take running alone. Each process's RSS, Pss and Uss are reported as well; the
whole stack is the sum of every process's Pss (every page once).
"""
import json
import subprocess
import sys
import time

from api.launcher import ROOT, Launcher


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def tree(pid):
    """pid and every descendant."""
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            kids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
    return [pid] + [p for kid in kids for p in tree(kid)]


def rollup_kb(pid):
    """{'Pss': kB, 'Uss': kB} from /proc/PID/smaps_rollup."""
    fields = {}
    with open(f'/proc/{pid}/smaps_rollup') as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == 'kB':
                fields[parts[0].rstrip(':')] = int(parts[1])
    return {'Pss': fields.get('Pss', 0),
            'Uss': fields.get('Private_Clean', 0) + fields.get('Private_Dirty', 0)}


def snapshot(stack):
    services, processes, pss = {}, {}, 0
    for name, proc in stack.processes.items():
        pids = tree(proc.pid)
        rolls = [rollup_kb(p) for p in pids]
        services[name] = round((rss_kb(pids[0]) + sum(r['Uss'] for r in rolls[1:])) / 1024, 1)
        pss += sum(r['Pss'] for r in rolls)
        for i, (pid, roll) in enumerate(zip(pids, rolls)):
            label = name if i == 0 else f'{name}-replica' if i == 1 else f'{name}-{i}'
            processes[label] = {'rss_mb': round(rss_kb(pid) / 1024, 1),
                                'pss_mb': round(roll['Pss'] / 1024, 1),
                                'uss_mb': round(roll['Uss'] / 1024, 1)}
    return services, processes, round(pss / 1024, 1)


def measure():
    with Launcher(speed=1.0) as stack:
        time.sleep(5)
        idle, idle_procs, idle_pss = snapshot(stack)
        for service, path in (('chillybin', '/'), ('jafflr', '/v2/status')):
            subprocess.run([sys.executable, '-m', 'bench.loadgen', stack.url(service, path),
                            '--count', '10000', '--threads', '8'], cwd=ROOT, check=True,
                           capture_output=True)
        time.sleep(1)
        loaded, loaded_procs, loaded_pss = snapshot(stack)
    return {'idle_mb': idle, 'after_10000_requests_mb': loaded,
            'processes_idle': idle_procs, 'processes_after': loaded_procs,
            'stack_idle_mb': idle_pss, 'stack_after_mb': loaded_pss,
            'services_summed_after_mb': round(sum(loaded.values()), 1)}


def verdicts(r):
    out = [(f'{name} idle < 40 MB', mb < 40, f'{mb:.1f} MB')
           for name, mb in r['idle_mb'].items() if name != 'sim']
    worst = max(r['stack_after_mb'], r['services_summed_after_mb'])
    out.append(('whole stack < 120 MB', worst < 120,
                f'{r["stack_after_mb"]:.1f} MB (Pss; services counted alone '
                f'{r["services_summed_after_mb"]:.1f} MB)'))
    return out


if __name__ == '__main__':
    print(json.dumps(measure(), indent=2))
