"""The control-quality bench: one profile meets the targets, and a miss fails the run."""
import json

from bench import control_quality
from firmware.heater.profiles import profile


def test_control_quality_light_profile_meets_the_targets():
    result = control_quality.run_profile(profile('light'))
    assert control_quality.misses(result) == []
    assert result['fault'] is None
    assert result['overshoot_c'] <= 5.0 and result['in_band_pct'] >= 95.0
    assert 150 <= result['cold_to_band_s'] <= 240          # 21 C to 177 C at ~1 C/s
    assert result['dip_c'] > -3.0 and result['browning'] > 0
    series = result['series']                              # for bench/plots.py
    assert series['t'][0] <= 0.2 and series['plate_c'][0] < 25
    assert len(series['t']) == len(series['plate_c']) == len(series['target_c'])
    assert max(series['plate_c']) > 170 and set(series['target_c']) == {result['target_c']}
    assert series['t'][-1] >= series['loaded_at'] + result['toast_s'] - 1


def test_control_quality_a_missed_target_fails_the_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(control_quality, 'OVERSHOOT_MAX_C', 0.01)
    out = tmp_path / 'cq.json'
    assert control_quality.main(['--profile', 'light', '--json', str(out)]) == 1
    written = json.loads(out.read_text())
    assert [r['profile'] for r in written['results']] == ['light', 'light']
    assert any('overshoot' in m for m in written['missed'])
    assert 'MISSED light: overshoot' in capsys.readouterr().err


def test_control_quality_misses_name_each_target():
    result = {'profile': 'burnt', 'load_hint': True, 'fault': None,
              'overshoot_c': 5.5, 'in_band_pct': 94.0}
    assert control_quality.misses(result) == ['burnt +hint: overshoot 5.50 C > 5.0 C',
                                              'burnt +hint: 94.0 % in band < 95.0 %']
