"""The plate history: one sample a second at most, bounded, and read back since a time."""
import math

import pytest

from firmware.errors import ConfigError
from firmware.heater.history import PlateHistory

WALL = 1_700_000_000.0


def test_plate_history_keeps_one_sample_per_period_whatever_the_caller_rate():
    h = PlateHistory()
    recorded = [h.sample(t / 10, WALL + t / 10, 20.0 + t, 180.0) for t in range(100)]   # 10 Hz
    assert sum(recorded) == 10 and len(h) == 10
    assert [s['wall'] for s in h.since()] == [WALL + i for i in range(10)]


def test_plate_history_is_a_bounded_ring_that_drops_the_oldest():
    h = PlateHistory({'keep': 10})
    for t in range(25):
        h.sample(t, WALL + t, float(t), None)
    samples = h.since()
    assert len(samples) == 10 and samples[0]['temp_c'] == 15.0 and samples[-1]['temp_c'] == 24.0


def test_plate_history_since_returns_only_newer_samples():
    h = PlateHistory()
    for t in range(5):
        h.sample(t, WALL + t, 100.0, 195.0)
    assert [s['wall'] for s in h.since(WALL + 2)] == [WALL + 3, WALL + 4]
    assert h.since(WALL + 10) == []


def test_plate_history_records_an_unread_or_impossible_temperature_as_none():
    h = PlateHistory()
    h.sample(0, WALL, None, None)
    h.sample(1, WALL + 1, math.nan, 160.0)
    assert [(s['temp_c'], s['target_c']) for s in h.since()] == [(None, None), (None, 160.0)]


def test_plate_history_rejects_settings_out_of_range():
    with pytest.raises(ConfigError, match='keep'):
        PlateHistory({'keep': 1})
    with pytest.raises(ConfigError, match='unknown'):
        PlateHistory({'minutes': 5})
