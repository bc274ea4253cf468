"""Fixtures shared by every test: a fake clock, and the simulated machine in process."""
import pytest

from hardware.clock import FakeClock
from hardware.sim.bus import SimBus
from hardware.sim.pins import LocalWire, SimPinFactory
from hardware.sim.world import World


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def world(clock):
    return World(clock, seed=1)


@pytest.fixture
def bus(world):
    return SimBus(world)


@pytest.fixture
def pin_factory(world):
    wire = LocalWire(world)
    factory = SimPinFactory(wire)
    try:
        yield factory
    finally:
        factory.close()
        wire.close()
