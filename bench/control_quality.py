"""How well the plate controller holds each doneness profile, on the simulated machine.

For each profile, on a fresh simulated machine at 21 C and a FakeClock: heat from cold
until the controller says it is at target, load a cold sandwich into the closed press
(2 x 35 g bread, 21 g cheese, 6 g vegemite at 4 C), toast for the profile's time, unload.
Run once with the PID alone and once with the press station's load hint.

Figures are of the plate's own temperature (what the sandwich touches), which the
simulator knows and the controller does not: it sees the probe, 1.5 s behind.

  overshoot      highest plate temperature above target after first reaching it
  in band        share of the toasting phase within +/- 3 C of the target
  cold to band   from asking for heat at 21 C to first within 3 C; ready adds the settle
  dip, recover   lowest point below target after loading, and when it was back in band
                 for good (0 if it never left)

Targets: overshoot <= 5 C and >= 95 % in band for every toasting phase; the program
exits 1 if any is missed.

    python -m bench.control_quality [--profile NAME]... [--json PATH]
"""
import argparse
import json
import os
import sys

from firmware.heater.profiles import DONENESS, profile as profile_named

from inprocess.plate import CHEESE_AND_VEGEMITE, plate_rig

OVERSHOOT_MAX_C = 5.0
IN_BAND_MIN_PCT = 95.0
BAND_C = 3.0
SANDWICH_C = 4.0
# The press station's estimate of a cold sandwich's draw: contact conductance x the
# difference between plate and sandwich (4 W/K on this press).
CONTACT_W_PER_K = 4.0
HEAT_LIMIT_S = 900.0
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results',
                       'control_quality.json')


class Trace:
    """Plate temperatures against one target, phase by phase."""

    def __init__(self, rig, target_c):
        self.rig, self.target_c = rig, target_c
        self.reached_at = None
        self.overshoot_c = 0.0
        self.toast = []                  # (time, plate - target) while toasting
        self.started = rig.now
        self.series = {'t': [], 'plate_c': [], 'target_c': []}   # once a second, for plots

    def sample(self, toasting=False):
        now, error = self.rig.now, self.rig.world.plate.temp_c - self.target_c
        t = round(now - self.started, 1)
        if not self.series['t'] or t - self.series['t'][-1] >= 1.0:
            self.series['t'].append(t)
            self.series['plate_c'].append(round(self.rig.world.plate.temp_c, 2))
            self.series['target_c'].append(self.target_c)
        if self.reached_at is None and abs(error) <= BAND_C:
            self.reached_at = now
        if self.reached_at is not None:
            self.overshoot_c = max(self.overshoot_c, error)
        if toasting:
            self.toast.append((now, error))


def run_profile(profile, *, load_hint=False, seed=1):
    """One profile from cold; returns its figures as a dict."""
    with plate_rig(seed=seed) as rig:
        trace, plate = Trace(rig, profile.plate_c), rig.plate
        asked = rig.now
        plate.set_target(profile.plate_c, asked)
        rig.run(HEAT_LIMIT_S, until=lambda: plate.at_target(rig.now), each=trace.sample)
        ready = rig.now - asked
        plate.begin_order(rig.now, max_heater_on_s=profile.toast_s + 300)
        loaded = rig.now
        sandwich = rig.load_sandwich(CHEESE_AND_VEGEMITE, SANDWICH_C)
        if load_hint:
            plate.load_hint(rig.now, CONTACT_W_PER_K * (profile.plate_c - SANDWICH_C))
        rig.run(profile.toast_s, each=lambda: (trace.sample(toasting=True),
                                               plate.keep_alive(rig.now)))
        rig.unload_sandwich()
        on_s = plate.end_order(rig.now)
        fault = rig.shutdown.fault
        return figures(profile, load_hint, trace, asked, ready, loaded, on_s, sandwich, fault)


def figures(profile, load_hint, trace, asked, ready, loaded, on_s, sandwich, fault):
    errors = [e for _, e in trace.toast]
    outside = [t for t, e in trace.toast if abs(e) > BAND_C]
    return {
        'profile': profile.name,
        'load_hint': load_hint,
        'target_c': profile.plate_c,
        'toast_s': profile.toast_s,
        'cold_to_band_s': None if trace.reached_at is None else round(trace.reached_at - asked, 1),
        'cold_to_ready_s': round(ready, 1),
        'overshoot_c': round(trace.overshoot_c, 2),
        'in_band_pct': round(100.0 * (len(errors) - len(outside)) / max(1, len(errors)), 2),
        'dip_c': round(min(errors, default=0.0), 2),
        'recover_s': round(outside[-1] - loaded, 1) if outside else 0.0,
        'heater_on_s': None if on_s is None else round(on_s, 1),
        'sandwich_c': round(sandwich.temp_c, 1),
        'browning': round(sandwich.browning),
        'fault': None if fault is None else f'{fault.reason}: {fault.detail}',
        # Plate and target once a second from asking for heat (bench/plots.py draws it).
        'series': dict(trace.series, loaded_at=round(loaded - trace.started, 1)),
    }


def misses(result):
    """What this result misses of the targets, as sentences; empty when it meets them."""
    name = f"{result['profile']}{' +hint' if result['load_hint'] else ''}"
    found = []
    if result['fault']:
        found.append(f"{name}: faulted ({result['fault']})")
    if result['overshoot_c'] > OVERSHOOT_MAX_C:
        found.append(f"{name}: overshoot {result['overshoot_c']:.2f} C > {OVERSHOOT_MAX_C} C")
    if result['in_band_pct'] < IN_BAND_MIN_PCT:
        found.append(f"{name}: {result['in_band_pct']:.1f} % in band < {IN_BAND_MIN_PCT} %")
    return found


def table(results):
    head = ('profile', 'hint', 'target C', 'toast s', 'cold->band s', 'ready s',
            'overshoot C', 'in band %', 'dip C', 'recover s', 'on s', 'browning')
    rows = [head] + [(r['profile'], 'yes' if r['load_hint'] else 'no', f"{r['target_c']:.0f}",
                      f"{r['toast_s']:.0f}", f"{r['cold_to_band_s']}", f"{r['cold_to_ready_s']}",
                      f"{r['overshoot_c']:.2f}", f"{r['in_band_pct']:.1f}", f"{r['dip_c']:.2f}",
                      f"{r['recover_s']}", f"{r['heater_on_s']}", f"{r['browning']}")
                     for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return '\n'.join('  '.join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--profile', action='append', choices=list(DONENESS),
                        help='profile to run (repeatable); default all')
    parser.add_argument('--json', default=RESULTS, help='where to write the figures')
    args = parser.parse_args(argv)
    names = args.profile or list(DONENESS)
    results = [run_profile(profile_named(n), load_hint=hint)
               for n in names for hint in (False, True)]
    print(table(results))
    found = [m for r in results for m in misses(r)]
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as out:
        json.dump({'targets': {'overshoot_max_c': OVERSHOOT_MAX_C,
                               'in_band_min_pct': IN_BAND_MIN_PCT, 'band_c': BAND_C},
                   'results': results, 'missed': found}, out, indent=2)
    print(f'\nwrote {args.json}')
    for line in found:
        print(f'MISSED {line}', file=sys.stderr)
    print('targets: overshoot <= %.0f C, >= %.0f %% within +/-%.0f C while toasting: %s'
          % (OVERSHOOT_MAX_C, IN_BAND_MIN_PCT, BAND_C, 'MISSED' if found else 'met'))
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())


def measure_all():
    """Every profile, without the load hint (what the service runs), for `python -m bench`."""
    return [run_profile(profile_named(n), load_hint=False) for n in DONENESS]


def verdicts(results):
    return [(f"control quality {r['profile']}: overshoot <= {OVERSHOOT_MAX_C:.0f} C, "
             f">= {IN_BAND_MIN_PCT:.0f} % in band", not misses(r),
             f"{r['overshoot_c']:.2f} C, {r['in_band_pct']:.1f} %, cold to band "
             f"{r['cold_to_band_s']} s") for r in results]
