"""The heater relay opens by itself when the heartbeat stops, whatever the heater pin says."""
import pytest

from hardware.board import HEARTBEAT_HOLD_S
from hardware.machine import Machine


@pytest.fixture
def machine(pin_factory):
    with Machine(pin_factory=pin_factory) as m:
        yield m


def test_failsafe_relay_closes_only_with_pin_and_heartbeat(machine, world, clock):
    machine.heater.on()
    assert not world.relay_closed()          # no heartbeat yet
    machine.heater.beat()
    assert world.relay_closed()
    machine.heater.off()
    assert not world.relay_closed()


def test_failsafe_relay_opens_within_hold_time_when_heartbeat_stops(machine, world, clock):
    machine.heater.on()
    for _ in range(30):
        clock.advance(0.1)
        machine.heater.beat()
    assert world.relay_closed()
    clock.advance(HEARTBEAT_HOLD_S - 0.05)
    assert world.relay_closed()
    clock.advance(0.1)
    assert not world.relay_closed()
    assert machine.heater.is_on              # the pin is still high: only the monostable saved us


def test_failsafe_heartbeat_slower_than_hold_keeps_dropping_out(machine, world, clock):
    machine.heater.on()
    machine.heater.beat()
    closed = 0
    for _ in range(100):
        clock.advance(0.1)
        closed += world.relay_closed()
        if _ % 15 == 0:
            machine.heater.beat()
    assert closed < 80


def test_failsafe_welded_relay_heats_regardless(machine, world, clock):
    world.set_fault('heater-welded', True)
    before = world.plate.temp_c
    clock.advance(30)
    assert world.relay_closed() and world.plate.temp_c > before + 10


def test_failsafe_dead_heater_closes_but_makes_no_heat(machine, world, clock):
    world.set_fault('heater-dead', True)
    machine.heater.on()
    for _ in range(100):
        machine.heater.beat()
        clock.advance(0.1)
    assert world.relay_closed() and world.plate.temp_c == pytest.approx(21.0, abs=0.1)


def test_failsafe_closing_the_machine_releases_heater_to_its_pull_down(pin_factory, world, clock):
    m = Machine(pin_factory=pin_factory)
    m.heater.on()
    m.heater.beat()
    assert world.relay_closed()
    m.close()
    assert not world.relay_closed()
    assert not world.is_active('heater_relay')
