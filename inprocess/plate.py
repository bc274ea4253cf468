"""The press plate in process: the simulated machine (World, SimBus, wired gpiozero pins),
the real MCP9600 driver and HeaterRelay, and the plate's logic built by the service's own
builder (firmware.build.Plate: the PlateController, its interlocks, optionally the chain
monitor, and the dead-man, wired but not started). Runs on a FakeClock, so ten minutes of
toasting take about a second.

Used by bench/control_quality.py and by the firmware tests (tests and benchmarks share it here, not through each other).
"""
import contextlib

from firmware.build import Plate
from firmware.safety import Shutdown
from hardware.machine import Machine
from hardware.platform import Sensors, open_in_process
from hardware.sim.physics import Sandwich

TICK_S = 0.1
# The brief's sandwich: two slices of bread, a slice of cheese, a scoop of vegemite.
CHEESE_AND_VEGEMITE = (('bread', 35.0), ('bread', 35.0), ('cheese', 21.0), ('vegemite', 6.0))


class PlateRig:
    """A PlateController on the simulated plate. `run()` ticks it and moves the clock."""

    def __init__(self, clock, world, bus, pin_factory, *, config=None, controller='pid',
                 on_tick=None, chain=False):
        """`chain`: watch the safety chain's read-backs too (ChainMonitor), as the
        service does; without it only the plate temperature checks the heater.
        `on_tick(now)` is called every control tick, before the dead-man is refreshed."""
        self.clock, self.world = clock, world
        self.machine = Machine(pin_factory=pin_factory, owner=('jafflr', 'plate'))
        self.sensors = Sensors(bus, owner=('jafflr', 'plate'))
        self.shutdown = Shutdown()
        self.parts = Plate(self.machine, self.sensors, self.shutdown, clock, chain=chain,
                           on_tick=on_tick, config=config, controller=controller)
        self.plate, self.chain, self.deadman = self.parts.controller, self.parts.chain, self.parts.deadman

    @property
    def sensor(self):
        """The plate's thermocouple driver (a test may swap in one that counts reads)."""
        return self.sensors.plate

    @sensor.setter
    def sensor(self, sensor):
        self.sensors.plate = sensor

    @property
    def now(self):
        return self.clock.monotonic()

    def tick(self):
        """One control tick at the clock's time, then the clock moves one tick on."""
        self.plate.tick(self.now)
        self.clock.advance(TICK_S)

    def run(self, seconds, until=None, each=None):
        """Tick for `seconds`, or until `until()` is true; `each()` after every tick.
        Returns the seconds run."""
        start = self.now
        while self.now - start < seconds - 1e-9:
            self.tick()
            if each is not None:
                each()
            if until is not None and until():
                break
        return self.now - start

    def load_sandwich(self, units=CHEESE_AND_VEGEMITE, temp_c=4.0):
        """A cold sandwich into a closed press, as the press station leaves it."""
        sandwich = Sandwich()
        sandwich.units = list(units)
        sandwich.temp_c = temp_c
        with self.world.lock:
            self.world.sync()
            self.world.press.sandwich = sandwich
            self.world.press.position = 1.0
        return sandwich

    def unload_sandwich(self):
        with self.world.lock:
            self.world.sync()
            self.world.press.sandwich, sandwich = None, self.world.press.sandwich
            self.world.press.position = 0.0
        return sandwich

    def close(self):
        self.machine.close()


@contextlib.contextmanager
def plate_rig(seed=1, **kw):
    """A rig with its own FakeClock and World (for the bench)."""
    platform = open_in_process(seed=seed)
    rig = None
    try:
        rig = PlateRig(platform.clock, platform.world, platform.bus, platform.pin_factory, **kw)
        yield rig
    finally:
        if rig is not None:
            rig.close()
        platform.close()
