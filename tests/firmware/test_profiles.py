"""Doneness profiles: the original ratio of times, hotter plates for longer toasts."""
import pytest

from firmware.errors import UnknownDoneness
from firmware.heater.profiles import DONENESS, STANDBY_C, profile


def test_profiles_are_the_four_doneness_names():
    assert set(DONENESS) == {'light', 'medium', 'well-done', 'burnt'}


def test_profiles_toast_times_keep_the_ratio_1_2_5_10():
    times = [p.toast_s for p in DONENESS.values()]
    assert times == [60, 120, 300, 600]
    assert [t / times[0] for t in times] == [1, 2, 5, 10]


def test_profiles_plates_get_hotter_with_doneness_within_180_to_230():
    temps = [p.plate_c for p in DONENESS.values()]
    assert temps == sorted(set(temps))
    assert 180 <= temps[0] and temps[-1] <= 230
    assert STANDBY_C < temps[0]


def test_profiles_lookup_by_name_and_frozen():
    assert profile('medium') is DONENESS['medium']
    with pytest.raises(AttributeError):
        profile('medium').plate_c = 300


@pytest.mark.parametrize('name', ['crispy', '', None, 'Light'])
def test_profiles_unknown_name_names_the_allowed_values(name):
    with pytest.raises(UnknownDoneness, match='use one of light, medium, well-done, burnt'):
        profile(name)
    with pytest.raises(ValueError):
        profile(name)
