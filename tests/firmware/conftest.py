"""The plate rig for firmware tests: PlateController on the in-process simulated machine
(World + SimBus + wired gpiozero pins + the real MCP9600 driver and HeaterRelay)."""
import pytest

from bench.rig import PlateRig


@pytest.fixture
def make_rig(clock, world, bus, pin_factory):
    """make_rig(config=None, controller='pid') -> PlateRig; one per test (the pins are claimed)."""
    made = []

    def make(config=None, controller='pid'):
        made.append(PlateRig(clock, world, bus, pin_factory, config=config, controller=controller))
        return made[-1]
    try:
        yield make
    finally:
        for rig in made:
            rig.close()


@pytest.fixture
def rig(make_rig):
    return make_rig()
