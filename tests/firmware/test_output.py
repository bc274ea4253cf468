"""Time-proportioning: the relay's duty follows the commanded duty to within one tick."""
import random

import pytest

from firmware.heater.output import TimeProportioning

TICK = 0.1


def drive(tp, duties, start=0.0, tick=TICK):
    return [tp.update(start + i * tick, d) for i, d in enumerate(duties)]


@pytest.mark.parametrize('duty', [0.01, 0.05, 0.3, 0.5, 0.77, 0.95, 0.999])
def test_output_mean_duty_is_within_one_tick_over_any_window(duty):
    states = drive(TimeProportioning(), [duty] * 1000)
    assert abs(sum(states) - 1000 * duty) <= 1
    for start in range(0, 980, 7):                             # every 2 s window
        assert abs(sum(states[start:start + 20]) - 20 * duty) <= 1


def test_output_zero_is_always_off_and_one_always_on():
    tp = TimeProportioning()
    drive(tp, [0.9] * 15)
    assert not any(drive(tp, [0.0] * 50, start=2.0))           # no owed on-time leaks out
    assert all(drive(tp, [1.0] * 50, start=10.0))
    assert not tp.update(20.0, float('nan'))


def test_output_a_change_of_duty_acts_within_two_ticks():
    tp = TimeProportioning()
    drive(tp, [0.0] * 20)
    assert any(drive(tp, [0.6] * 2, start=2.0))
    assert not all(drive(tp, [0.4] * 2, start=2.2))


def test_output_follows_the_time_not_the_tick_count_when_ticks_jitter():
    tp, rng, now, on_s = TimeProportioning(), random.Random(3), 0.0, 0.0
    on = tp.update(now, 0.3)
    for _ in range(2000):
        dt = rng.uniform(0.07, 0.13)
        on_s += dt if on else 0.0
        now += dt
        on = tp.update(now, 0.3)
    assert on_s / now == pytest.approx(0.3, abs=0.13 / now * 2)


def longest_run_on(states):
    run = best = 0
    for on in states:
        run = run + 1 if on else 0
        best = max(best, run)
    return best


def test_output_stall_is_not_paid_back_as_a_burst():
    tp = TimeProportioning()
    drive(tp, [0.5] * 10)
    # Five seconds without a tick, which owed 2.5 s of on-time (the relay was forced off
    # meanwhile): paying it back would be 25 ticks on in a row.
    after = drive(tp, [0.5] * 20, start=6.0)
    assert abs(sum(after) - 10) <= 1
    assert longest_run_on(after) <= 2
