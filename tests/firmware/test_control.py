"""PlateController on the simulated machine: it heats, holds and toasts without false
faults, and every fault opens the relay at once, latches, resets, and heats again.

Detection bounds tested here (from when the fault appears, 100 ms ticks):
  heater-dead from cold      <= 22 s after heating was asked for (20 s gain window)
  heater-welded while holding <= 10 s (runaway: 2.5 s grace + 2 C rise at 0.6 C/s)
  over-temperature           <= 3 s after the plate itself crosses the limit (probe lag)
  plate-sensor-open / -nack  the same tick
  plate-sensor-frozen        <= 2 s after the converter's last conversion (stale_s 1.5)
  lid-open / estop           the same tick; a trip from another thread at once
"""
import threading

import pytest

from firmware.errors import ConfigError, HeaterFaulted, OutOfRange
from firmware.heater.control import PlateController
from firmware.heater.profiles import DONENESS, STANDBY_C
from firmware.safety import Shutdown
from hardware.errors import SensorOpen


def preheat(rig, target_c=200.0):
    """Hold a plate that is already at the target (skips the 3-minute heat-up)."""
    rig.world.plate.temp_c = rig.world.plate.probe_c = target_c
    rig.plate.set_target(target_c, rig.now)
    rig.run(30)
    assert rig.plate.at_target(rig.now) and not rig.shutdown.latched


def until_relay_closed(rig):
    rig.run(5, until=rig.world.relay_closed)
    assert rig.world.relay_closed()


def heat_from_here(rig, target_c=200.0, limit_s=400):
    rig.plate.set_target(target_c, rig.now)
    return rig.run(limit_s, until=lambda: rig.plate.at_target(rig.now))


def assert_latched_off_then_recovers(rig, reason, clear=(), cool_to_c=None):
    """After a fault: relay open, fault latched with its reason and kept; a person clears
    the cause (and lets the plate cool) and resets; nothing heats until asked; then a
    heat-up works."""
    assert rig.shutdown.fault.reason == reason
    assert not rig.machine.heater.is_on
    assert rig.plate.status()['phase'] == 'faulted'
    welded = 'heater-welded' in rig.world.faults   # conducts whatever the pin says
    assert welded or not rig.world.relay_closed()
    closed = []
    rig.run(5, each=lambda: closed.append(rig.machine.heater.is_on or
                                          (not welded and rig.world.relay_closed())))
    assert rig.shutdown.fault.reason == reason and not any(closed)
    with pytest.raises(HeaterFaulted, match=reason):
        rig.plate.set_target(200.0, rig.now)
    for fault in clear:
        rig.world.set_fault(fault, False)
    if cool_to_c is not None:
        rig.run(600, until=lambda: rig.world.plate.probe_c < cool_to_c)
    assert rig.shutdown.reset(rig.now, 'test').reason == reason
    rig.run(2)
    assert not rig.shutdown.latched and rig.plate.status()['phase'] == 'off'
    assert not rig.world.relay_closed()
    assert heat_from_here(rig) < 400 and not rig.shutdown.latched


# -- no false faults ----------------------------------------------------------------------
def test_control_cold_start_heats_holds_and_cools_without_faults(rig):
    took = heat_from_here(rig)
    assert 150 <= took <= 260                     # about 3.5 min from 21 C, settle included
    band = []
    rig.run(300, each=lambda: band.append(abs(rig.world.plate.temp_c - 200.0)))
    assert max(band) <= 1.0 and rig.plate.status()['phase'] == 'holding'
    rig.plate.off(rig.now)
    on = []
    rig.run(900, each=lambda: on.append(rig.world.relay_closed()))
    assert not any(on) and rig.world.plate.temp_c < 150
    assert not rig.shutdown.latched and rig.shutdown.later == []


@pytest.mark.parametrize('name', list(DONENESS))
def test_control_toast_of_each_profile_with_a_cold_sandwich_trips_nothing(rig, name):
    p = DONENESS[name]
    assert heat_from_here(rig, p.plate_c) < 300
    rig.plate.begin_order(rig.now, max_heater_on_s=p.toast_s + 300)
    rig.load_sandwich()
    dev = []
    rig.run(p.toast_s, each=lambda: (dev.append(rig.world.plate.temp_c - p.plate_c),
                                     rig.plate.keep_alive(rig.now)))
    rig.unload_sandwich()
    used = rig.plate.end_order(rig.now)
    assert 0.3 * p.toast_s < used < 0.9 * p.toast_s
    assert -3.0 <= min(dev) and max(dev) <= 3.0
    rig.plate.standby(rig.now)
    rig.run(120)
    rig.plate.off(rig.now)
    rig.run(300)
    assert not rig.shutdown.latched and rig.shutdown.later == []


def test_control_flaky_i2c_at_2_percent_does_not_trip(rig, world):
    world.set_nack_rate('plate_thermocouple', 0.02)
    assert heat_from_here(rig) < 300
    rig.run(600)
    assert not rig.shutdown.latched


def test_control_flaky_i2c_at_90_percent_trips_sensor_error(rig, world):
    preheat(rig)
    world.set_nack_rate('plate_thermocouple', 0.9)
    rig.run(2, until=lambda: rig.shutdown.latched)
    world.set_nack_rate('plate_thermocouple', 0.0)
    assert_latched_off_then_recovers(rig, 'plate-sensor-error')


def test_control_bang_bang_by_name_holds_without_false_faults(make_rig):
    rig = make_rig(controller='bang-bang')
    assert heat_from_here(rig) < 300
    dev = []
    rig.run(300, each=lambda: dev.append(abs(rig.world.plate.temp_c - 200.0)))
    assert max(dev) < 5.0 and not rig.shutdown.latched


# -- faults -------------------------------------------------------------------------------
def test_control_dead_heater_detected_within_gain_window_from_heat_request(rig, world):
    world.set_fault('heater-dead', True)
    asked = rig.now
    rig.plate.set_target(200.0, asked)
    rig.run(60, until=lambda: rig.shutdown.latched)
    assert rig.shutdown.fault.reason == 'heater-not-heating'
    assert 20.0 <= rig.shutdown.fault.at - asked <= 22.0
    assert_latched_off_then_recovers(rig, 'heater-not-heating', clear=['heater-dead'])


def test_control_welded_relay_while_holding_detected_within_10_s(rig, world):
    preheat(rig)
    world.set_fault('heater-welded', True)
    began = rig.now
    rig.run(30, until=lambda: rig.shutdown.latched)
    assert rig.shutdown.fault.reason == 'heater-runaway'
    assert rig.shutdown.fault.at - began <= 10.0
    assert not world.is_active('heater_relay')    # the pin is off; only a person can help now
    assert_latched_off_then_recovers(rig, 'heater-runaway', clear=['heater-welded'])


def test_control_reset_with_the_relay_still_welded_trips_again_within_10_s(rig, world):
    preheat(rig)
    world.set_fault('heater-welded', True)
    rig.run(30, until=lambda: rig.shutdown.latched)
    rig.shutdown.reset(rig.now, 'someone hopeful')
    reset_at = rig.now
    rig.run(30, until=lambda: rig.shutdown.latched)
    assert rig.shutdown.fault.reason == 'heater-runaway'
    assert rig.shutdown.fault.at - reset_at <= 10.0


def test_control_welded_relay_while_idle_detected(rig, world):
    world.set_fault('heater-welded', True)
    rig.run(10, until=lambda: rig.shutdown.latched)
    assert rig.shutdown.fault.reason == 'heater-runaway' and rig.shutdown.fault.at <= 6.0


def test_control_over_temperature_trips_within_3_s_of_the_plate_crossing(make_rig, world):
    # A lower limit, and a runaway check too lax to act first, to reach over-temperature.
    rig = make_rig({'max_target_c': 200.0,
                    'verify': {'max_temp_c': 215.0, 'runaway_rise_c': 30.0}})
    preheat(rig)
    world.set_fault('heater-welded', True)
    crossed = []
    rig.run(120, until=lambda: rig.shutdown.latched,
            each=lambda: world.plate.temp_c > 215.0 and not crossed and crossed.append(rig.now))
    assert rig.shutdown.fault.reason == 'plate-over-temperature'
    assert 0 <= rig.shutdown.fault.at - crossed[0] <= 3.0
    assert_latched_off_then_recovers(rig, 'plate-over-temperature', clear=['heater-welded'],
                                     cool_to_c=205.0)


@pytest.mark.parametrize('world_fault, reason', [
    ('plate-sensor-open', 'plate-sensor-open'),
    ('plate-sensor-nack', 'plate-sensor-error'),
    ('lid-open', 'lid-open'),
    ('estop', 'estop'),
])
def test_control_fault_detected_in_the_same_tick(rig, world, world_fault, reason):
    preheat(rig)
    until_relay_closed(rig)
    world.set_fault(world_fault, True)
    rig.plate.tick(rig.now)                       # one tick, no time passes
    assert rig.shutdown.fault.reason == reason
    assert not world.relay_closed()
    assert_latched_off_then_recovers(rig, reason, clear=[world_fault])


def test_control_frozen_converter_trips_within_2_s_of_its_last_conversion(rig, world):
    preheat(rig)
    until_relay_closed(rig)
    world.set_fault('plate-sensor-frozen', True)
    frozen_at = rig.now
    rig.run(3, until=lambda: rig.shutdown.latched)
    fault = rig.shutdown.fault
    assert fault.reason == 'plate-sensor-error' and 'no new conversion for' in fault.detail
    assert fault.at - frozen_at <= 2.0, f'tripped {fault.at - frozen_at:.2f} s after it froze'
    assert fault.at - frozen_at >= 1.4, 'tripped before the stale limit: a false alarm'
    assert not world.relay_closed()
    assert_latched_off_then_recovers(rig, 'plate-sensor-error', clear=['plate-sensor-frozen'])


def test_control_reads_between_conversions_are_not_faults(rig, world):
    """A tick that comes within one conversion of the last (no new one flagged yet) keeps
    the last reading: 5 minutes at 10 Hz against an 80 ms converter, no fault."""
    preheat(rig)
    rig.run(300)
    assert not rig.shutdown.latched


def test_control_stale_reading_is_recognised_only_by_the_types_handed_in():
    class Stale(Exception):
        pass
    readings = iter([150.0])

    def read():
        try:
            return next(readings)
        except StopIteration:
            raise Stale('status 0x80') from None
    plate, heater, shutdown = plain(read, stale_errors=(Stale,))
    for tick in range(16):                     # 0.0 .. 1.5 s
        plate.tick(tick / 10)
        assert shutdown.fault is None or tick == 15, shutdown.fault
    assert shutdown.fault.reason == 'plate-sensor-error' and '1.50 s' in shutdown.fault.detail
    readings = iter([150.0])
    plate, heater, shutdown = plain(read)
    plate.tick(0.0)
    plate.tick(0.1)
    assert shutdown.fault.reason == 'plate-sensor-error' and 'Stale' in shutdown.fault.detail


def test_control_a_late_loop_meeting_the_same_conversion_again_is_not_a_frozen_converter():
    """Seen under load: the plate process stalled 3.4 s between a tick's `now` and its read,
    and the next tick, right after, came within the same 80 ms conversion: "no new
    conversion for 3.38 s" latched though the converter was converting. One tick like that
    is not evidence; a converter that stays frozen still trips (three ticks later at most)."""
    class Stale(Exception):
        pass
    answers = iter([150.0, Stale('status 0x80'), 151.0] + [Stale('status 0x80')] * 30)

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer
    plate, heater, shutdown = plain(read, stale_errors=(Stale,))
    plate.tick(0.0)             # its read came late, but counts from this tick's now
    plate.tick(3.4)             # the same conversion again: not frozen
    assert shutdown.fault is None
    plate.tick(3.5)             # a new one
    tick = 3.5
    while shutdown.fault is None and tick < 8:
        tick = round(tick + 0.1, 1)
        plate.tick(tick)
    assert shutdown.fault.reason == 'plate-sensor-error' and tick == 5.0, (tick, shutdown.fault)
    # Frozen after a late tick: at most STALE_MIN_TICKS - 1 ticks more than the age alone.
    answers = iter([150.0] + [Stale('status 0x80')] * 10)
    plate, heater, shutdown = plain(read, stale_errors=(Stale,))
    plate.tick(0.0)
    for tick in (5.0, 5.1):
        plate.tick(tick)
        assert shutdown.fault is None
    plate.tick(5.2)
    assert shutdown.fault.reason == 'plate-sensor-error'


def test_control_reset_while_the_lid_is_still_open_latches_again(rig, world):
    world.set_fault('lid-open', True)
    rig.run(1)
    rig.shutdown.reset(rig.now, 'test')
    rig.run(0.1)
    assert rig.shutdown.fault.reason == 'lid-open'


def test_control_trip_from_another_thread_opens_the_relay_at_once(rig, world):
    preheat(rig)
    until_relay_closed(rig)
    button = threading.Thread(target=rig.shutdown.trip, args=('estop', 'gpiozero callback', rig.now))
    button.start()
    button.join()
    assert not world.relay_closed()               # before the control loop ticks again
    rig.run(3)
    assert not world.relay_closed()
    assert_latched_off_then_recovers(rig, 'estop')


def test_control_heater_on_time_budget_trips(rig, world):
    rig.plate.begin_order(rig.now, max_heater_on_s=30.0)
    rig.plate.set_target(200.0, rig.now)           # from cold: on all the time
    rig.run(60, until=lambda: rig.shutdown.latched)
    assert rig.shutdown.fault.reason == 'heater-on-time-limit'
    assert 30.0 <= rig.shutdown.fault.at <= 30.3
    assert rig.plate.end_order(rig.now) is None    # the fault ended the order
    assert_latched_off_then_recovers(rig, 'heater-on-time-limit')


# -- targets, timeouts, status ----------------------------------------------------------
def test_control_phases_from_off_to_heating_holding_standby_and_off(rig):
    assert rig.plate.status()['phase'] == 'off'
    rig.plate.set_target(200.0, rig.now)
    rig.run(1)
    assert rig.plate.status()['phase'] == 'heating'
    rig.run(400, until=lambda: rig.plate.at_target(rig.now))
    assert rig.plate.status()['phase'] == 'holding'
    rig.plate.standby(rig.now)
    rig.run(1)
    status = rig.plate.status()
    assert (status['phase'], status['target_c']) == ('standby', STANDBY_C)
    rig.plate.off(rig.now)
    rig.run(1)
    assert rig.plate.status()['phase'] == 'off' and rig.plate.status()['duty'] == 0.0


def test_control_idle_hold_drops_to_standby_then_off(make_rig):
    rig = make_rig({'idle_timeout_s': 60.0, 'standby_s': 30.0})
    preheat(rig)                                    # 30 s of the 60 already used
    rig.run(29)
    assert rig.plate.status()['phase'] == 'holding'
    rig.run(2)
    assert rig.plate.status()['phase'] == 'standby'
    rig.run(29)
    assert rig.plate.status()['phase'] == 'standby'
    rig.run(2)
    assert rig.plate.status()['phase'] == 'off'
    assert not rig.shutdown.latched


def test_control_keep_alive_postpones_the_idle_timeout(make_rig):
    rig = make_rig({'idle_timeout_s': 60.0})
    preheat(rig)
    for _ in range(5):
        rig.plate.keep_alive(rig.now)
        rig.run(50)
    assert rig.plate.status()['phase'] == 'holding'


def test_control_at_target_needs_the_settle_time_in_band(make_rig):
    rig = make_rig({'settle_s': 5.0})
    rig.world.plate.temp_c = rig.world.plate.probe_c = 200.0
    rig.plate.set_target(200.0, rig.now)
    rig.run(4.8)
    assert not rig.plate.at_target(rig.now) and not rig.plate.status()['at_target']
    rig.run(0.4)
    assert rig.plate.at_target(rig.now) and rig.plate.status()['at_target']


def test_control_status_reports_the_tick(rig):
    preheat(rig)
    status = rig.plate.status()
    assert status['temp_c'] == pytest.approx(200.0, abs=1.0)
    assert status['target_c'] == 200.0 and 0.0 < status['duty'] < 1.0
    assert status['relay_on'] == rig.machine.heater.is_on
    assert status['fault'] is None


def test_control_target_out_of_range_is_refused_with_the_numbers(rig):
    with pytest.raises(OutOfRange, match=r'Requested temperature \(300\.0\) out of range '
                                         r'\(40\.0:240\.0\)'):
        rig.plate.set_target(300.0, rig.now)
    with pytest.raises(OutOfRange):
        rig.plate.set_target(float('nan'), rig.now)
    with pytest.raises(OutOfRange):
        rig.plate.begin_order(rig.now, 0)


# -- the tick never raises ---------------------------------------------------------------
class FakeHeater:
    def __init__(self, beat_error=None):
        self.is_on, self.beats, self.beat_error = False, 0, beat_error

    def on(self):
        self.is_on = True

    def off(self):
        self.is_on = False

    def beat(self):
        if self.beat_error:
            raise self.beat_error
        self.beats += 1


def plain(read, heater=None, **kw):
    heater = heater or FakeHeater()
    shutdown = Shutdown()
    return PlateController(heater, read, shutdown, **kw), heater, shutdown


@pytest.mark.parametrize('read, reason', [
    (lambda: 'hot', 'plate-sensor-error'),
    (lambda: float('nan'), 'plate-sensor-fault'),
    (lambda: 900.0, 'plate-sensor-fault'),
])
def test_control_bad_readings_trip_instead_of_raising(read, reason):
    plate, heater, shutdown = plain(read)
    plate.set_target(200.0, 0.0)
    plate.tick(0.0)
    assert shutdown.fault.reason == reason and not heater.is_on


def test_control_open_probe_is_recognised_only_by_the_types_handed_in():
    def read():
        raise SensorOpen('status 0x10')
    assert_first_fault = []
    for open_errors, reason in (((SensorOpen,), 'plate-sensor-open'), ((), 'plate-sensor-error')):
        plate, heater, shutdown = plain(read, open_errors=open_errors)
        plate.tick(0.0)
        assert_first_fault.append(shutdown.fault.reason)
    assert assert_first_fault == ['plate-sensor-open', 'plate-sensor-error']


def test_control_one_failed_read_is_retried_within_the_tick():
    answers = iter([OSError('nack'), 150.0, OSError('nack'), OSError('nack')])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer
    plate, heater, shutdown = plain(read)
    plate.tick(0.0)
    assert not shutdown.latched and plate.status()['temp_c'] == 150.0
    plate.tick(0.1)
    assert shutdown.fault.reason == 'plate-sensor-error' and 'nack' in shutdown.fault.detail


@pytest.mark.parametrize('where', ['beat', 'on_tick', 'interlocks'])
def test_control_its_own_failures_become_control_error(where):
    boom = RuntimeError('boom')

    def fail(*args):
        raise boom
    heater = FakeHeater(beat_error=boom if where == 'beat' else None)
    plate, heater, shutdown = plain(lambda: 150.0, heater,
                                    on_tick=fail if where == 'on_tick' else None,
                                    interlocks=fail if where == 'interlocks' else None)
    plate.set_target(200.0, 0.0)
    plate.tick(0.0)
    assert shutdown.fault.reason == 'control-error' and 'boom' in shutdown.fault.detail
    assert not heater.is_on


def test_control_on_tick_is_called_with_now_every_tick():
    seen = []
    plate, heater, shutdown = plain(lambda: 21.0, on_tick=seen.append)
    for i in range(3):
        plate.tick(i * 0.1)
    assert seen == [0.0, 0.1, 0.2] and heater.beats == 3


def test_control_rejects_bad_configuration():
    with pytest.raises(ConfigError, match=r'max_target_c \(250\.0\) must be at least 15\.0 C '
                                          r'below max_temp_c \(260\.0\)'):
        plain(lambda: 21.0, config={'max_target_c': 250.0})
    with pytest.raises(ConfigError, match='PlateController: unknown setting'):
        plain(lambda: 21.0, config={'idle_timeout': 5})
    with pytest.raises(ConfigError, match='HeaterVerifier: unknown setting'):
        plain(lambda: 21.0, config={'verify': {'hysteresis': 5}})
    with pytest.raises(ConfigError, match="unknown controller 'pi'"):
        plain(lambda: 21.0, controller='pi')


def tick_stuck_in_the_read(then_c):
    """A plate heating at 150 C whose second tick is stuck inside the plate read until
    `release` is set, then reads `then_c`: (plate, heater, the tick's thread, release)."""
    release, reading = threading.Event(), threading.Event()
    temps = iter([150.0])

    def read():
        value = next(temps, None)
        if value is None:
            reading.set()
            release.wait(10)
            return then_c
        return value
    plate, heater, _ = plain(read)
    plate.set_target(200.0, 0.0)
    plate.tick(0.0)
    assert heater.is_on and plate.status()['phase'] == 'heating'
    tick = threading.Thread(target=plate.tick, args=(0.1,), daemon=True)
    tick.start()
    assert reading.wait(5)
    return plate, heater, tick, release


def test_control_a_stuck_tick_blocks_no_reader_and_off_still_works():
    """A tick stuck inside the plate read (a hung transfer) holds the controller: the
    panel's status, the press station's calls and the drain's off() must not hang on
    it. They wait at most LOCK_WAIT_S, then: the last status (phase 'stalled'),
    HeaterFaulted, and the heater pin switched off directly."""
    import time
    from firmware.heater.control import LOCK_WAIT_S
    plate, heater, stuck, release = tick_stuck_in_the_read(then_c=150.0)
    started = time.monotonic()
    status = plate.status()
    assert status['phase'] == 'stalled' and status['temp_c'] == 150.0
    assert plate.at_target(0.2) is False
    with pytest.raises(HeaterFaulted, match='stuck'):
        plate.set_target(180.0, 0.2)
    plate.off(0.2)
    assert not heater.is_on, 'off() switched the pin off itself'
    assert time.monotonic() - started < 4 * LOCK_WAIT_S + 1.0
    release.set()
    stuck.join(5)
    assert plate.status()['phase'] in ('heating', 'off')


def test_control_readers_do_not_queue_behind_a_busy_tick():
    """While a tick is busy reading the plate, one reader waits for it (to tell slow
    from stuck) and every other reader answers at once with the last tick's status:
    under HTTP load the panel's status must not line up behind the I2C read."""
    plate, heater, busy, release = tick_stuck_in_the_read(then_c=151.0)
    waiter_answer = []
    waiter = threading.Thread(target=lambda: waiter_answer.append(plate.status()), daemon=True)
    waiter.start()
    while not plate._probe.locked():
        waiter.join(0.001)
    others = [plate.status() for _ in range(5)]
    assert waiter.is_alive(), 'the waiting reader is still waiting: the others did not queue'
    assert all(s['phase'] == 'heating' and s['temp_c'] == 150.0 for s in others), others
    release.set()
    busy.join(5)
    waiter.join(5)
    assert waiter_answer[0]['temp_c'] == 151.0, 'the waiting reader got the fresh status'
    assert plate.status()['temp_c'] == 151.0
