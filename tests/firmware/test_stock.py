"""Stock from load-cell counts: calibration, the spike filter, and whole units."""
import pytest

from firmware.stock import Bay, Calibration, SpikeFilter

PER_G = 100.0
TARE = 24_000.0


def counts(grams):
    return TARE + grams * PER_G


def make_bay(unit_g=6.0):
    return Bay('vegemite', 2, unit_g, Calibration(TARE, PER_G))


def feed(bay, grams, times=5):
    change = 0
    for _ in range(times):
        change += bay.sample(counts(grams))
    return change


def test_calibration_turns_counts_into_grams():
    assert Calibration(TARE, PER_G).grams(counts(123.5)) == pytest.approx(123.5)


def test_spike_filter_needs_a_majority_before_it_answers():
    f = SpikeFilter(5)
    assert f.add(1.0) is None and f.add(1.0) is None
    assert f.add(1.0) == 1.0


def test_spike_filter_ignores_one_and_two_wild_samples():
    f = SpikeFilter(5)
    for _ in range(5):
        f.add(100.0)
    assert f.add(9999.0) == 100.0
    assert f.add(-9999.0) == 100.0
    assert f.add(100.0) == 100.0


def test_stock_single_sample_spike_never_moves_units():
    bay = make_bay()
    feed(bay, 60.0)
    assert bay.units == 10
    assert bay.sample(counts(60.0 - 80.0)) == 0      # a motor's jolt
    assert bay.sample(counts(60.0 + 80.0)) == 0
    assert bay.units == 10 and feed(bay, 60.0) == 0


def test_stock_units_are_weight_over_unit_weight():
    bay = make_bay(unit_g=21.0)
    feed(bay, 21.0 * 7 + 3.0)
    assert bay.units == 7 and bay.grams == pytest.approx(150.0)


def test_stock_fall_of_one_unit_is_seen_even_when_the_bay_sits_off_a_whole_number():
    # Ten real units rarely weigh exactly ten nominal units: here 10.31 of them. Taking
    # one away must still count as one, not wait for the second.
    bay = make_bay(unit_g=6.0)
    feed(bay, 61.86)
    assert bay.units == 10
    assert feed(bay, 61.86 - 6.0) == -1 and bay.units == 9
    assert feed(bay, 61.86 - 6.0 - 5.6) == -1 and bay.units == 8


def test_stock_light_unit_still_counts_as_one():
    bay = make_bay(unit_g=12.0)
    feed(bay, 120.0)
    assert feed(bay, 120.0 - 12.0 * 0.62) == -1     # a tomato slice 38 % under weight


def test_stock_noise_at_half_a_unit_does_not_flicker():
    bay = make_bay(unit_g=6.0)
    feed(bay, 60.0)
    changes = [feed(bay, 60.0 - 3.0 + d, times=3) for d in (-0.05, 0.05, -0.05, 0.05, -0.05)]
    assert sum(abs(c) for c in changes) <= 1         # at most one step, never back and forth


def test_stock_rise_is_positive_change():
    bay = make_bay(unit_g=35.0)
    feed(bay, 35.0 * 2)
    assert feed(bay, 35.0 * 10) == 8 and bay.units == 10


def test_stock_empty_reads_zero_units_never_negative():
    bay = make_bay(unit_g=35.0)
    feed(bay, 35.0)
    assert feed(bay, -2.0) == -1 and bay.units == 0
    assert feed(bay, -40.0) == 0 and bay.units == 0   # hopper lifted out: still 0, not -1


def test_stock_failure_is_named_and_keeps_no_made_up_value():
    bay = make_bay()
    bay.fail('TransferFailed: loadcell_2 read failed 3 times')
    assert not bay.ok and bay.units is None and bay.grams is None
    assert bay.describe()['sensor'] == {'ok': False, 'error': 'TransferFailed: loadcell_2 read failed 3 times'}
    feed(bay, 60.0)
    assert bay.ok and bay.units == 10


def test_stock_rebase_takes_the_next_reading_as_is():
    bay = make_bay()
    feed(bay, 60.0)
    bay.resample()
    assert bay.units is None
    assert feed(bay, 30.0) == 0 and bay.units == 5


def test_stock_unit_weight_must_be_positive():
    with pytest.raises(ValueError, match='above 0 g'):
        Bay('air', 0, 0, Calibration(0, 1))
