"""Toasties per hour at saturation, against the machine's physical limit.

The physical limit is one toastie per (toasting time + loading and ejecting time): the
press cannot do better than close, toast, open and index, back to back. The simulated
machine runs on a fake clock with the queue kept full; the figure is measured between
the first and last delivery, so the cold start is reported separately.

    python -m bench.throughput [--doneness medium] [--toasties 12]
"""
import argparse
import json
import os
import sys
import tempfile

from inprocess import InProcessMachine
from firmware.heater.profiles import profile

OPEN_S = CLOSE_S = 4.0     # press travel (hardware/sim/physics.Press.travel_s)
INDEX_S = 3.0              # one conveyor index (hardware/sim/physics.Tray.index_s)
TARGET = 0.90


def measure(doneness='medium', toasties=12, seed=1):
    with tempfile.TemporaryDirectory() as state:
        k = InProcessMachine(state, seed=seed, units=60)
        k.run(1.0)
        deliveries = []
        orders = []
        while len(deliveries) < toasties:
            while len(orders) < toasties and len(k.book.queue) < k.book.max_queue:
                orders.append(k.submit(['cheese', 'vegemite'], doneness)[0])
            before = len([o for o in orders if o.state == 'done'])
            k.step()
            done = [o for o in orders if o.state == 'done']
            if len(done) > before:
                deliveries.append(k.clock.monotonic())
            failed = [o for o in orders if o.state == 'failed']
            if failed:
                raise RuntimeError(f'{failed[0].id} failed: {failed[0].failure}')
        first = deliveries[0]
        cycle = (deliveries[-1] - first) / (len(deliveries) - 1)
        k.close()
    p = profile(doneness)
    limit_per_h = 3600.0 / (p.toast_s + OPEN_S + INDEX_S + CLOSE_S)
    rate = 3600.0 / cycle
    return {'doneness': doneness, 'toast_s': p.toast_s, 'toasties': toasties,
            'first_toastie_from_cold_s': round(first, 1), 'cycle_s': round(cycle, 2),
            'per_hour': round(rate, 2), 'physical_limit_per_hour': round(limit_per_h, 2),
            'fraction_of_limit': round(rate / limit_per_h, 4)}


def verdicts(results):
    return [(f"{r['doneness']}: >= {TARGET:.0%} of the physical limit", r['fraction_of_limit'] >= TARGET,
             f"{r['per_hour']:.2f}/h of {r['physical_limit_per_hour']:.2f}/h "
             f"({r['fraction_of_limit']:.1%}); first from cold {r['first_toastie_from_cold_s']:.0f} s")
            for r in results]


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench.throughput')
    parser.add_argument('--doneness', default='all')
    parser.add_argument('--toasties', type=int, default=8)
    args = parser.parse_args(argv)
    names = ['light', 'medium', 'well-done', 'burnt'] if args.doneness == 'all' else [args.doneness]
    results = [measure(n, args.toasties) for n in names]
    print(f'{"doneness":10} {"toast s":>7} {"cycle s":>8} {"per hour":>9} {"limit/h":>8} '
          f'{"of limit":>9} {"first from cold s":>18}')
    for r in results:
        print(f'{r["doneness"]:10} {r["toast_s"]:7.0f} {r["cycle_s"]:8.1f} {r["per_hour"]:9.2f} '
              f'{r["physical_limit_per_hour"]:8.2f} {r["fraction_of_limit"]:9.1%} '
              f'{r["first_toastie_from_cold_s"]:18.1f}')
    os.makedirs(os.path.join(os.path.dirname(__file__), 'results'), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), 'results', 'throughput.json'), 'w') as f:
        json.dump(results, f, indent=2)
    missed = [r for r in results if r['fraction_of_limit'] < TARGET]
    if missed:
        print(f'MISSED: below {TARGET:.0%} of the physical limit: '
              f'{", ".join(r["doneness"] for r in missed)}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
