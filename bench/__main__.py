"""Every benchmark, one command: `python -m bench` (or `make bench`).

Prints a table of figures and targets and writes bench/results/all.json and PNG plots
beside it (bench/plots.py: control quality, control-loop lateness, HTTP). Run it on a
quiet machine: the HTTP and timing figures are only as good as the CPU they get.
Exit status 1 when a target is missed.
"""
import argparse
import json
import os
import sys
import time

from . import control_quality, control_timing, growth, http, memory, restart, throughput

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')


def run_all(only=None):
    suites = {
        'http': (lambda: http.measure(), http.verdicts),
        'control_timing': (control_timing.measure, control_timing.verdicts),
        'memory': (memory.measure, memory.verdicts),
        'growth': (growth.measure, growth.verdicts),
        'throughput': (lambda: [throughput.measure(d, 8) for d in
                                ('light', 'medium', 'well-done', 'burnt')], throughput.verdicts),
        'control_quality': (control_quality.measure_all, control_quality.verdicts),
        'restart': (restart.measure, restart.verdicts),
    }
    results, verdicts = {}, []
    for name, (measure, judge) in suites.items():
        if only and name not in only:
            continue
        started = time.monotonic()
        print(f'-- {name} ...', flush=True)
        results[name] = measure()
        results[name + '_seconds'] = round(time.monotonic() - started, 1)
        if judge:
            verdicts += judge(results[name])
    return results, verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench')
    parser.add_argument('only', nargs='*', help='run only these suites')
    args = parser.parse_args(argv)
    results, verdicts = run_all(set(args.only))
    for name, value in results.items():
        if not name.endswith('_seconds'):
            print(f'\n{name}:')
            rows = value if isinstance(value, list) else [value]
            for row in rows:
                print('  ' + json.dumps({k: v for k, v in row.items() if k != 'series'}
                                        if isinstance(row, dict) else row))
    print('\ntargets:')
    for what, ok, figure in verdicts:
        print(f'  [{"ok" if ok else "MISSED"}] {what}: {figure}')
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'all.json'), 'w') as f:
        json.dump({'results': results, 'targets': [
            {'target': w, 'met': ok, 'figure': fig} for w, ok, fig in verdicts]}, f, indent=2)
    from . import plots
    for png in plots.write_all(results, RESULTS):
        print(f'wrote {png}')
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == '__main__':
    sys.exit(main())
