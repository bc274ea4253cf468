"""The chiller: hysteresis around 3 C, minimum on/off times, the 15-minute warm alert."""
import pytest

from firmware.chiller import ChillerConfig, ChillerControl


def test_chiller_band_must_be_increasing_and_at_or_below_5c():
    with pytest.raises(ValueError, match='chiller band'):
        ChillerConfig(on_above_c=2.0, off_below_c=4.0)
    with pytest.raises(ValueError, match='at or below 5.0 C'):
        ChillerConfig(on_above_c=6.0)


def test_chiller_hysteresis_around_3c():
    c = ChillerControl(ChillerConfig(min_on_s=0, min_off_s=0))
    assert not c.update(0, 3.0)           # in band, starts off
    assert c.update(1, 4.1)               # above 4: on
    assert c.update(2, 3.0)               # in band: stays on
    assert c.update(3, 2.1)
    assert not c.update(4, 1.9)           # below 2: off
    assert not c.update(5, 3.9)           # in band: stays off


def test_chiller_minimum_times_spare_the_compressor():
    c = ChillerControl(ChillerConfig(min_on_s=30, min_off_s=60))
    assert c.update(0, 4.5)
    assert c.update(10, 1.0)              # on for only 10 s
    assert not c.update(30, 1.0)          # 30 s on: may stop
    assert not c.update(60, 4.5)          # off for 30 s of the 60
    assert c.update(90, 4.5)


def test_chiller_runs_when_the_sensor_cannot_be_read():
    c = ChillerControl(ChillerConfig(min_on_s=0, min_off_s=0))
    assert c.update(0, None)


def test_chiller_alert_after_more_than_15_minutes_above_5c():
    c = ChillerControl()
    c.update(0, 5.5)
    c.update(15 * 60, 6.0)
    assert not c.alert and c.warm_for_s(15 * 60) == 15 * 60
    c.update(15 * 60 + 1, 6.0)
    assert c.alert
    c.update(15 * 60 + 2, 5.0)
    assert not c.alert and c.warm_for_s(15 * 60 + 2) == 0


def test_chiller_dip_below_5c_restarts_the_alert_timer():
    c = ChillerControl()
    c.update(0, 6.0)
    c.update(600, 4.9)
    c.update(601, 6.0)
    c.update(601 + 15 * 60, 6.0)
    assert not c.alert


def test_chiller_unreadable_sensor_counts_towards_the_alert():
    c = ChillerControl()
    c.update(0, None)
    c.update(15 * 60 + 1, None)
    assert c.alert
