"""The safety chain on the simulated machine: the SSR drive feedback, the contactor the
e-stop drops, the motors' enable, the thermal fuse and thermostat, and each chain fault."""
import pytest

from hardware.board import BOARD, ELEMENT_A, SAFETY_CHAIN
from hardware.machine import Machine


@pytest.fixture
def machine(pin_factory):
    with Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory) as m:
        yield m


def beat(machine, clock, seconds, step=0.1):
    for _ in range(round(seconds / step)):
        machine.heater.beat()
        clock.advance(step)


def test_board_pins_and_addresses_are_unique():
    pins = [p.pin for p in BOARD.gpio]
    assert len(pins) == len(set(pins)), sorted(pins)
    where = [(p.bus, p.address, p.mux_channel) for p in BOARD.i2c]
    assert len(where) == len(set(where))


def test_board_chain_parts_have_ratings_and_name_real_read_backs():
    refs = [p.ref for p in SAFETY_CHAIN]
    assert len(refs) == len(set(refs))
    for part in SAFETY_CHAIN:
        assert part.part_number and part.rating, part.name
        if part.read_by:
            assert BOARD.has_part(part.read_by), (part.name, part.read_by)


def test_chain_feedback_follows_the_pin_while_the_heartbeat_beats(machine, world, clock):
    assert machine.heater.driven is False
    machine.heater.on()
    machine.heater.beat()
    clock.advance(0.05)
    assert machine.heater.driven is True and world.relay_closed()
    machine.heater.off()
    clock.advance(0.05)
    assert machine.heater.driven is False


def test_chain_feedback_drops_when_the_heartbeat_stops(machine, world, clock):
    machine.heater.on()
    beat(machine, clock, 0.5)
    clock.advance(0.9)
    assert machine.heater.driven is True           # 0.9 s since the last edge: still held
    clock.advance(0.2)
    assert machine.heater.driven is False and not world.relay_closed()
    assert machine.heater.is_on                    # the pin is still high


def test_chain_deadman_bypassed_feedback_follows_the_pin_alone(machine, world, clock):
    world.set_fault('deadman-bypassed', True)
    machine.heater.on()
    clock.advance(5.0)                             # no heartbeat at all
    assert machine.heater.driven is True and world.relay_closed()
    machine.conveyor.run()
    clock.advance(1.0)
    assert world.tray.position > 0                 # the motors' enable is bypassed too


def test_chain_feedback_stuck_holds_its_level(machine, world, clock):
    world.set_fault('feedback-stuck', True)
    machine.heater.on()
    beat(machine, clock, 0.3)
    assert machine.heater.driven is False and world.relay_closed()


def test_chain_motors_stop_when_the_heartbeat_stops(machine, world, clock):
    machine.press.start_closing()
    beat(machine, clock, 1.0)
    moved = world.press.position
    assert moved == pytest.approx(0.25, abs=0.03)
    clock.advance(3.0)                             # the program hangs with the motor pin high
    # It ran on for the monostable's 1 s hold (a quarter of its travel), then stopped.
    assert world.press.position == pytest.approx(moved + 0.25, abs=0.03)
    stopped = world.press.position
    clock.advance(3.0)
    assert world.press.position == stopped
    assert machine.press.is_moving and not world.motor_enable()


def test_chain_estop_drops_the_contactor_the_heater_and_the_motors(machine, world, clock):
    assert machine.chain_closed
    machine.heater.on()
    machine.conveyor.run()
    beat(machine, clock, 0.3)
    assert world.chain.current_a == pytest.approx(ELEMENT_A)
    world.set_fault('estop', True)
    position = world.tray.position
    beat(machine, clock, 0.5)
    assert not machine.chain_closed and machine.estop_pressed
    assert world.chain.current_a == 0.0 and world.tray.position == position
    assert world.relay_closed()                    # the SSR is still told to conduct
    world.set_fault('estop', False)
    clock.advance(0.01)
    assert machine.chain_closed


def test_chain_contactor_welded_keeps_power_through_the_estop(machine, world, clock):
    world.set_fault('contactor-welded', True)
    world.set_fault('estop', True)
    machine.heater.on()
    beat(machine, clock, 0.3)
    assert machine.estop_pressed and machine.chain_closed
    assert world.chain.current_a == pytest.approx(ELEMENT_A)


def test_chain_thermal_fuse_open_no_current_no_heat(machine, world, clock):
    world.set_fault('thermal-fuse-open', True)
    machine.heater.on()
    beat(machine, clock, 10.0)
    assert machine.heater.driven and world.relay_closed()
    assert world.chain.current_a == 0.0
    assert world.plate.temp_c == pytest.approx(21.0, abs=0.1)


def test_chain_heater_dead_draws_no_current(machine, world, clock):
    world.set_fault('heater-dead', True)
    machine.heater.on()
    beat(machine, clock, 0.5)
    assert world.chain.current_a == 0.0 and world.status()['element_a'] == 0.0


def test_chain_thermostat_opens_at_its_trip_and_resets_only_by_hand_when_cool(world, clock):
    world.set_fault('heater-welded', True)
    world.plate.temp_c = 275.0
    clock.advance(10.0)
    assert world.chain.thermostat_open and world.chain.current_a == 0.0
    assert world.plate.temp_c < 290.0
    assert world.reset_thermostat() is False        # still too hot
    world.set_fault('heater-welded', False)
    world.plate.temp_c = 200.0
    assert world.reset_thermostat() is True
    assert not world.status()['thermostat_open']


def test_chain_hand_holds_an_input_and_lets_go(machine, world):
    world.hand('lid_closed', False)
    assert machine.lid_open
    world.hand('lid_closed', None)
    assert not machine.lid_open
    with pytest.raises(ValueError, match='no input named'):
        world.hand('heater_relay', True)


def test_chain_dispenser_paused_by_the_enable_resumes_its_run(machine, world, clock):
    """A disabled driver stops the cam where it is; when the heartbeat comes (back) the
    same run goes on and drops its unit: the program never stopped the motor, so the
    drop is late, not lost (no false jam from a loop that hiccuped)."""
    cheese = world.bays[1]
    before = len(cheese.items)
    machine.dispensers[1].on()                     # no heartbeat yet: the enable is low
    clock.advance(3.0)
    assert len(cheese.items) == before and cheese.run_s == 0.0
    beat(machine, clock, 0.5)
    assert len(cheese.items) == before and cheese.run_s == pytest.approx(0.5, abs=0.05)
    beat(machine, clock, 0.4)
    assert len(cheese.items) == before - 1
