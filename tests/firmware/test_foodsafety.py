"""Food safety per bay: cumulative time above 5 C, 2 h warning, 4 h lock."""
from firmware.foodsafety import (DISCARD, LOCK_S, NEEDS_CHECK, OK, USE_SOON, WARN_S,
                                 FoodSafetyClock, is_above)


def test_foodsafety_unreadable_sensor_counts_as_above():
    assert is_above(None) and is_above(5.01)
    assert not is_above(5.0) and not is_above(-1.0)


def test_foodsafety_time_cold_does_not_count():
    clock = FoodSafetyClock()
    clock.add(10 * 3600, above=False)
    assert clock.seconds_above == 0 and clock.state == OK


def test_foodsafety_warns_at_two_hours_and_locks_at_four():
    clock = FoodSafetyClock()
    assert not clock.add(WARN_S - 1, True) and clock.state == OK
    assert clock.add(1, True) and clock.state == USE_SOON
    assert not clock.add(LOCK_S - WARN_S - 1, True) and not clock.locked
    assert clock.add(1, True) and clock.state == DISCARD and clock.locked


def test_foodsafety_time_is_cumulative_across_cold_spells():
    clock = FoodSafetyClock()
    for _ in range(4):
        clock.add(3600, True)
        clock.add(3600, False)
    assert clock.locked


def test_foodsafety_top_up_does_not_reset_the_clock():
    clock = FoodSafetyClock()
    clock.add(WARN_S + 60, True)
    assert not clock.restocked(1.0, replaced=False)
    assert clock.state == USE_SOON


def test_foodsafety_restock_after_empty_resets():
    clock = FoodSafetyClock()
    clock.add(WARN_S + 60, True)
    clock.mark_empty()
    assert clock.restocked(5.0, replaced=False)
    assert clock.state == OK and clock.seconds_above == 0 and clock.restocked_at == 5.0


def test_foodsafety_replaced_contents_reset_a_bay_that_is_not_locked():
    clock = FoodSafetyClock()
    clock.add(WARN_S + 60, True)
    assert clock.restocked(5.0, replaced=True) and clock.state == OK


def test_foodsafety_locked_bay_stays_locked_until_emptied_and_restocked():
    clock = FoodSafetyClock()
    clock.add(LOCK_S, True)
    assert not clock.restocked(1.0, replaced=False)
    assert not clock.restocked(2.0, replaced=True)     # a person's word is not enough
    assert clock.locked
    clock.mark_empty()
    assert clock.locked                                 # emptied, not yet restocked
    assert clock.restocked(3.0, replaced=False)
    assert not clock.locked and clock.state == OK


def test_foodsafety_clock_round_trips_through_storage_form():
    clock = FoodSafetyClock()
    clock.add(LOCK_S + 5, True)
    clock.mark_empty()
    again = FoodSafetyClock.from_dict(clock.to_dict())
    assert again == clock


def test_foodsafety_describe_gives_minutes_and_thresholds():
    clock = FoodSafetyClock()
    clock.add(90, True)
    assert clock.describe() == {'state': 'ok', 'minutes_above_5c': 1.5, 'locked': False,
                                'needs_check': None,
                                'warn_at_minutes': 120.0, 'lock_at_minutes': 240.0}


def test_foodsafety_past_two_hours_the_clock_runs_even_when_chilled_again():
    clock = FoodSafetyClock()
    clock.add(WARN_S - 60, True)
    clock.add(3600, False)                  # under 2 h: cold time does not count
    assert clock.seconds_above == WARN_S - 60
    clock.add(60, True)
    assert clock.state == USE_SOON
    clock.add(LOCK_S - WARN_S - 1, False)   # re-chilled: the food may not be kept
    assert clock.state == USE_SOON
    assert clock.add(1, False) and clock.locked and clock.state == DISCARD


def test_foodsafety_held_bay_refuses_until_a_person_checks_it():
    clock = FoodSafetyClock()
    clock.add(600, True)
    clock.hold('the downtime cannot be measured')
    assert clock.state == NEEDS_CHECK and clock.refuses
    assert clock.describe()['locked'] and clock.describe()['needs_check'] == \
        'the downtime cannot be measured'
    assert FoodSafetyClock.from_dict(clock.to_dict()) == clock     # survives a restart
    assert clock.checked() == 'the downtime cannot be measured'
    assert clock.state == OK and not clock.refuses and clock.seconds_above == 600
    assert clock.checked() is None


def test_foodsafety_replaced_contents_clear_a_hold():
    clock = FoodSafetyClock()
    clock.hold('x')
    assert not clock.restocked(1.0, replaced=False)           # a top-up: old food is in there
    assert clock.refuses
    assert clock.restocked(2.0, replaced=True) and not clock.refuses
