"""The benchmarks' plots and the Pi bench's arithmetic, from small synthetic results (no
services, no cgroups)."""
import struct

import pytest

from bench import pi, plots

PNG = b'\x89PNG\r\n\x1a\n'


def png_size(path):
    """(width, height) of a PNG, checking its signature and that IHDR comes first."""
    data = path.read_bytes()
    assert data[:8] == PNG, f'{path.name} is not a PNG: {data[:8]!r}'
    length, kind = struct.unpack('>I4s', data[8:16])
    assert kind == b'IHDR' and length == 13
    assert data.endswith(b'IEND\xaeB`\x82'), f'{path.name} does not end with IEND'
    return struct.unpack('>II', data[16:24])


def synthetic():
    series = {'t': [0, 1, 2, 3, 4], 'plate_c': [21, 80, 170, 178, 177],
              'target_c': [177] * 5, 'loaded_at': 3}
    histogram = [[0.5, 10], [1.0, 5], [2.0, 3], [5.0, 1], [10.0, 1], [20.0, 0], [50.0, 0],
                 [100.0, 0], [250.0, 0], [1000.0, 0], [None, 0]]
    return {
        'control_quality': [dict(profile=name, overshoot_c=0.3, in_band_pct=100.0,
                                 series=series) for name in ('light', 'burnt')],
        'control_timing': [{'phase': 'idle', 'p99_ms': 1.0, 'histogram': histogram},
                           {'phase': 'wrk, 32 clients', 'p99_ms': 8.0,
                            'histogram': [[e, c * 2] for e, c in histogram]}],
        'http': [{'service': s, 'path': '/', 'clients': c, 'rps': 1000.0 / c, 'p99_ms': c}
                 for s in ('chillybin', 'jafflr') for c in (1, 8, 32)],
    }


def test_plots_write_a_valid_png_of_each_kind(tmp_path):
    written = plots.write_all(synthetic(), str(tmp_path), prefix='t-')
    names = sorted(p.rsplit('/', 1)[1] for p in written)
    assert names == ['t-control-quality.png', 't-http.png', 't-lateness.png']
    for name in names:
        width, height = png_size(tmp_path / name)
        assert width >= 400 and height >= 200, (name, width, height)


def test_plots_draw_only_what_the_results_hold(tmp_path):
    assert plots.write_all({'http': synthetic()['http']}, str(tmp_path)) == \
        [str(tmp_path / 'http.png')]
    assert plots.write_all({'memory': {}}, str(tmp_path / 'none')) == []


def test_pi_budget_keeps_the_quota_at_the_kernel_minimum_by_lengthening_the_period():
    assert pi.budget(0.5) == (2500, 5000)
    assert pi.budget(0.2) == (1000, 5000)
    quota, period = pi.budget(0.1375)           # a Pi 4 core on a fast x86 core
    assert quota == 1000 and period == 7273 and abs(quota / period - 0.1375) < 0.001
    with pytest.raises(ValueError, match='share 0 of a core'):
        pi.budget(0)


def pi_result(**changes):
    phase = {'p50_ms': 1.0, 'within_10ms': 1.0, 'load': {'errors': 0, 'requests': 750}}
    result = {
        'control_timing': [dict(phase, phase='idle', p99_ms=1.0),
                           dict(phase, phase='50 req/s', p99_ms=4.0),
                           dict(phase, phase='wrk, 32 clients + STOP', p99_ms=15.0,
                                load={'rps': 300.0, 'errors': ''})],
        'http': [{'service': s, 'clients': c, 'rps': 1200.0, 'p99_ms': 50.0, 'errors': ''}
                 for s in ('chillybin', 'jafflr') for c in (1, 8, 32)],
        'stops': [{'status': 200, 'ms': 40.0, 'reset_status': 200}] * 3,
        'memory': {'idle_mb': {'sim': 16.0, 'chillybin': 39.0, 'jafflr': 33.0},
                   'stack_idle_mb': 70.0, 'services_summed_idle_mb': 88.0},
    }
    result.update(changes)
    return result


def test_pi_verdicts_pass_a_result_that_meets_every_target():
    found = pi.verdicts(pi_result())
    assert all(ok for _, ok, _ in found), [f for f in found if not f[1]]
    assert len(found) == 10


@pytest.mark.parametrize('change, missed', [
    ({'stops': [{'status': 200, 'ms': 300.0, 'reset_status': 200}]}, 'STOP answered'),
    ({'stops': []}, 'STOP answered'),
    ({'fault_after': {'reason': 'control-loop-stalled', 'detail': 'no tick for 2.1 s'}},
     'no fault latched'),
    ({'stops': [{'status': 503, 'ms': 10.0, 'reset_status': 200}]}, 'no request failed'),
    ({'http': [{'service': s, 'clients': c, 'rps': 900.0, 'p99_ms': 50.0,
                'errors': 'connect 0, read 2, write 0, timeout 0'}
               for s in ('chillybin', 'jafflr') for c in (1, 8, 32)]}, 'chillybin GET /'),
    ({'memory': {'idle_mb': {'chillybin': 40.4, 'jafflr': 33.0}, 'stack_idle_mb': 70.0,
                 'services_summed_idle_mb': 101.0}}, 'chillybin idle'),
])
def test_pi_verdicts_name_each_miss(change, missed):
    failed = [what for what, ok, _ in pi.verdicts(pi_result(**change)) if not ok]
    assert any(what.startswith(missed) for what in failed), failed


def test_pi_verdicts_judge_lateness_and_status_against_their_own_targets():
    slow = pi_result()
    slow['control_timing'][1]['p99_ms'] = 10.5
    slow['control_timing'][2]['p99_ms'] = 19.0
    slow['http'][4]['p99_ms'] = 120.0              # jafflr at 8 clients
    failed = [what for what, ok, _ in pi.verdicts(slow) if not ok]
    assert failed == ['control loop p99 lateness < 10 ms at 50 req/s',
                      '/v2/status p99 < 100 ms at 8 clients']
