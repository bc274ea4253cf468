"""The press plate in process: the simulated machine (World, SimBus, wired gpiozero pins),
the real MCP9600 driver and HeaterRelay, and a PlateController composed as the service
composes it. Runs on a FakeClock, so ten minutes of toasting take about a second.

Used by bench/control_quality.py and by the firmware tests.
"""
import contextlib

from firmware.chain import ChainMonitor
from firmware.heater.control import PlateController
from firmware.safety import Shutdown, interlock_faults
from hardware.board import BOARD, element_amps
from hardware.i2c.ads1115 import ADS1115
from hardware.clock import FakeClock
from hardware.errors import NoNewConversion, SensorOpen
from hardware.i2c.mcp9600 import MCP9600
from hardware.machine import Machine
from hardware.sim.bus import SimBus
from hardware.sim.physics import Sandwich
from hardware.sim.pins import LocalWire, SimPinFactory
from hardware.sim.world import World

TICK_S = 0.1
# The brief's sandwich: two slices of bread, a slice of cheese, a scoop of vegemite.
CHEESE_AND_VEGEMITE = (('bread', 35.0), ('bread', 35.0), ('cheese', 21.0), ('vegemite', 6.0))


class PlateRig:
    """A PlateController on the simulated plate. `run()` ticks it and moves the clock."""

    def __init__(self, clock, world, bus, pin_factory, *, config=None, controller='pid',
                 on_tick=None, chain=False):
        """`chain`: watch the safety chain's read-backs too (ChainMonitor), as the
        service does; without it only the plate temperature checks the heater."""
        self.clock, self.world = clock, world
        self.machine = Machine(pin_factory=pin_factory, owner='jafflr')
        part = BOARD.i2c_part('plate_thermocouple')
        self.sensor = MCP9600(bus, part.address, name=part.name)
        self.shutdown = Shutdown()
        self.chain = None
        if chain:
            adc = ADS1115(bus, BOARD.i2c_part('element_current').address, name='element_current')
            self.chain = ChainMonitor(lambda: self.machine.heater.driven,
                                      lambda: element_amps(adc.volts),
                                      lambda: self.machine.chain_closed,
                                      lambda: self.machine.estop_pressed)
        self.plate = PlateController(self.machine.heater, lambda: self.sensor.hot_junction_c,
                                     self.shutdown, config, controller=controller,
                                     interlocks=lambda: interlock_faults(self.machine),
                                     on_tick=on_tick, chain=self.chain,
                                     open_errors=(SensorOpen,),
                                     stale_errors=(NoNewConversion,))

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
    clock = FakeClock()
    world = World(clock, seed=seed)
    wire = LocalWire(world)
    factory = SimPinFactory(wire)
    rig = None
    try:
        rig = PlateRig(clock, world, SimBus(world), factory, **kw)
        yield rig
    finally:
        if rig is not None:
            rig.close()
        factory.close()
        wire.close()
