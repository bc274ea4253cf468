"""Control algorithms: feed-forward, anti-windup, derivative on the measurement, and a
closed loop on a simple plate model that settles on the target."""
import math

import pytest
from hypothesis import given, strategies as st

from firmware.errors import ConfigError
from firmware.heater.pid import CONTROLLERS, PID, BangBang, make_controller

TICK = 0.1


def steady_feed(target_c, pid):
    c = pid.cfg
    return c.loss_w_per_k * (target_c - c.ambient_c) / c.heater_w


def test_pid_at_target_gives_the_steady_loss_feed_forward():
    pid = PID()
    duty = pid.update(0.0, 200.0, 200.0)
    assert duty == pytest.approx(3.0 * (200 - 21) / 1800)     # 0.298: 537 W of loss


def test_pid_below_target_gives_more_duty_by_kp():
    pid = PID({'kp': 0.1, 'ki': 0.0, 'kd': 0.0})
    assert pid.update(0.0, 196.0, 200.0) == pytest.approx(steady_feed(200, pid) + 0.4)


def test_pid_anti_windup_integral_stays_still_through_a_saturated_heat_up():
    pid = PID()
    for i in range(3000):                                     # five minutes, far below target
        assert pid.update(i * TICK, 20.0 + i * 0.05, 230.0) == 1.0
    assert pid.terms['i'] == 0.0
    # Arriving at the target the output is the feed-forward, not a wound-up integral.
    duty = pid.update(3000 * TICK, 230.0, 230.0)
    assert duty <= steady_feed(230, pid) + 0.01


def test_pid_integral_is_clamped_to_its_limit():
    pid = PID({'kp': 0.0, 'kd': 0.0, 'loss_w_per_k': 0.0, 'ki': 0.01, 'integral_limit': 0.2})
    for i in range(10000):
        duty = pid.update(i * TICK, 199.0, 200.0)
    assert pid.terms['i'] == pytest.approx(0.2) and duty == pytest.approx(0.2)


def test_pid_derivative_on_measurement_gives_no_kick_on_a_target_step():
    pid = PID({'ki': 0.0})
    pid.update(0.0, 150.0, 150.0)
    before = pid.update(TICK, 150.0, 150.0)
    after = pid.update(2 * TICK, 150.0, 152.0)
    assert pid.terms['d'] == 0.0
    assert after - before == pytest.approx(pid.cfg.kp * 2 + steady_feed(152, pid) - steady_feed(150, pid))


def test_pid_derivative_opposes_a_rising_plate_and_is_filtered():
    pid = PID({'kd': 1.0, 'derivative_filter_s': 1.0})
    pid.update(0.0, 150.0, 150.0)
    pid.update(TICK, 150.0625, 150.0)                        # one 1/16 C step of the probe
    assert -0.625 < pid.terms['d'] < -0.05                    # unfiltered it would be -0.625
    for i in range(2, 200):
        pid.update(i * TICK, 150.0 + i * TICK * 1.0, 150.0)   # rising 1 C/s
    assert pid.terms['d'] == pytest.approx(-1.0, abs=0.01)


def test_pid_load_hint_adds_feed_at_once_and_fades():
    pid = PID({'kp': 0.0, 'ki': 0.0, 'kd': 0.0, 'load_tau_s': 60.0})
    base = pid.update(0.0, 200.0, 200.0)
    pid.load_hint(0.0, 900.0)
    assert pid.update(0.0, 200.0, 200.0) == pytest.approx(base + 0.5)
    assert pid.update(60.0, 200.0, 200.0) == pytest.approx(base + 0.5 / math.e)


def test_pid_reset_forgets_integral_slope_and_load():
    pid = PID()
    pid.load_hint(0.0, 500.0)
    for i in range(100):
        pid.update(i * TICK, 180.0 + i, 200.0)
    pid.reset()
    assert pid.update(20.0, 200.0, 200.0) == pytest.approx(steady_feed(200, pid))


def plate_model_step(temp_c, duty, dt, loss_w_per_k=3.0):
    return temp_c + (duty * 1800.0 - loss_w_per_k * (temp_c - 21.0)) / 1800.0 * dt


@pytest.mark.parametrize('real_loss', [3.0, 4.5, 1.5])
def test_pid_closed_loop_settles_on_target_even_with_a_wrong_loss_model(real_loss):
    pid, temp = PID(), 21.0
    for i in range(6000):                                     # ten minutes
        temp = plate_model_step(temp, pid.update(i * TICK, temp, 200.0), TICK, real_loss)
    assert temp == pytest.approx(200.0, abs=0.1)


@given(st.lists(st.tuples(st.floats(-50, 600), st.floats(40, 240)), min_size=1, max_size=50))
def test_pid_duty_is_always_between_0_and_1(readings):
    pid = PID()
    for i, (temp, target) in enumerate(readings):
        assert 0.0 <= pid.update(i * TICK, temp, target) <= 1.0


def test_bang_bang_switches_outside_its_band_and_keeps_state_inside():
    bb = BangBang({'max_delta_c': 2.0})
    assert bb.update(0, 190.0, 200.0) == 1.0
    assert bb.update(1, 201.0, 200.0) == 1.0                  # inside the band: still on
    assert bb.update(2, 202.0, 200.0) == 0.0
    assert bb.update(3, 199.0, 200.0) == 0.0                  # inside the band: still off
    assert bb.update(4, 198.0, 200.0) == 1.0


def test_controllers_are_chosen_by_name():
    assert set(CONTROLLERS) == {'pid', 'bang-bang'}
    assert isinstance(make_controller('bang-bang'), BangBang)
    assert make_controller('pid', {'kp': 0.5}).cfg.kp == 0.5
    with pytest.raises(ConfigError, match="unknown controller 'pi'; known: bang-bang, pid"):
        make_controller('pi')


def test_controllers_reject_unknown_settings():
    with pytest.raises(ConfigError, match='PID: unknown setting'):
        PID({'kq': 1.0})
    with pytest.raises(ConfigError, match=r'kp \(-1.000\) out of range'):
        PID({'kp': -1})
