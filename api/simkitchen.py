"""The whole machine in one process on a fake clock: the simulated world, chillybin's
logic and jafflr's logic, wired as the services wire them but calling each other
directly instead of over HTTP. Tests, benchmarks and the fault campaign use it, so
hours of toasting run in seconds and every run repeats exactly.

    kitchen = SimKitchen(tmp_path)
    order, _ = kitchen.submit(['cheese'], 'light')
    kitchen.run_until(lambda: order.finished, limit_s=600)
"""
import json

from hardware.clock import FakeClock
from hardware.errors import NoNewConversion, SensorOpen
from hardware.machine import Machine
from hardware.platform import Sensors
from hardware.sim.bus import SimBus
from hardware.sim.pins import LocalWire, SimPinFactory
from hardware.sim.world import World
from firmware.assembler import Assembler
from firmware.binstore import BinStore
from firmware.chillybin import build_chillybin
from firmware.flags import Flags
from firmware.chain import ChainMonitor
from firmware.heater.control import PlateController
from firmware.kitchen import Kitchen
from firmware.orders import OrderBook
from firmware.orderstore import OrderStore
from firmware.press import PressStation
from firmware.safety import Interlocks, ResetButton, Shutdown

from hardware.board import default_bays, load_cell_slots, nominal_calibration
from .jafflr.stock_client import bays_from_stock, grams_of

TICK_S = 0.05


class LocalStock:
    """chillybin's client, answered by a chillybin built in this process."""

    def __init__(self, chilly, clock):
        self.chilly = chilly
        self.clock = clock
        self.calls = 0

    def _wall(self):
        self.calls += 1
        return self.clock.time()

    def bays(self):
        self._wall()
        return bays_from_stock(self.chilly.snapshot(self.clock.monotonic()))

    def stock(self):
        return json.loads(json.dumps(self.chilly.snapshot(self.clock.monotonic())))

    def reserve(self, items, key):
        return self.chilly.desk.reserve(items, self._wall(), key=key, dispense=True,
                                   fingerprint=json.dumps(items, sort_keys=True))[0].to_dict()

    def reservation(self, rid):
        self._wall()
        return self.chilly.desk.reservation(rid).to_dict()

    def confirm(self, rid):
        return self.chilly.desk.confirm(rid, self._wall()).to_dict()

    def cancel(self, rid):
        return self.chilly.desk.cancel(rid, self._wall()).to_dict()

    def pick(self, name, quantity):
        self.chilly.desk.pick(name, quantity, self._wall())

    def grams(self, name):
        self._wall()
        return grams_of(name, self.chilly.bay_snapshot(name))


class SimKitchen:
    def __init__(self, state_dir, *, seed=1, env=None, units=10, fsync=False):
        self.clock = clock = FakeClock()
        self.world = World(clock, seed=seed, units=units)
        self.bus = SimBus(self.world)
        self.wire = LocalWire(self.world)
        self.pins = SimPinFactory(self.wire)
        self._build_chillybin(state_dir, fsync)
        self._build_jafflr(state_dir, fsync, env or {})
        self.ticks = 0

    def _build_chillybin(self, state_dir, fsync):
        clock = self.clock
        sensors = Sensors(self.bus, owner='chillybin', sleep=clock.sleep, monotonic=clock.monotonic)
        self.bin_machine = Machine(owner='chillybin', pin_factory=self.pins)
        chiller = self.bin_machine.chiller
        self.bin_store = BinStore(str(state_dir), default_bays(), fsync=fsync, now_wall=clock.time())
        self.chilly = build_chillybin(
            self.bin_store, read_bin_c=lambda: sensors.bin_air.temperature_c,
            read_counts=lambda slot: sensors.loadcells[slot].raw_counts,
            set_chiller=lambda on: chiller.on() if on else chiller.off(),
            nominal_calibration=nominal_calibration, slots=load_cell_slots(),
            refill=lambda slot, units, name: self.world.fill(slot, units, name),
            now=clock.monotonic(), wall=clock.time())

    def _build_jafflr(self, state_dir, fsync, env):
        clock = self.clock
        self.sensors = Sensors(self.bus, owner='jafflr', sleep=clock.sleep, monotonic=clock.monotonic)
        self.machine = m = Machine(owner='jafflr', pin_factory=self.pins)
        self.store = OrderStore(str(state_dir), fsync=fsync, now_wall=clock.time())
        self.shutdown = Shutdown(wall_clock=clock.time, save=self.store.save_fault)
        self.reset_button = ResetButton()
        self.reset_button.watch(m.reset_button, clock.monotonic)
        self.flags = Flags(self.store.flags(), env)
        self.stock = LocalStock(self.chilly, clock)
        self.controller = PlateController(
            m.heater, lambda: self.sensors.plate.hot_junction_c, self.shutdown,
            interlocks=Interlocks(m, self.shutdown, clock.monotonic), open_errors=(SensorOpen,),
            stale_errors=(NoNewConversion,),
            chain=ChainMonitor(lambda: m.heater.driven, self.sensors.element_current_a,
                               lambda: m.chain_closed, lambda: m.estop_pressed))
        self.book = OrderBook(self.store, self.store.orders(), self.store.meta()['next_order'])
        self.assembler = Assembler(self.book, self.stock, m.dispensers, self.flags, self.shutdown,
                                   self.events)
        self.press = PressStation(m.press, m.conveyor, self.controller, self.book, self.shutdown,
                                  self.events)
        self.kitchen = Kitchen(self.book, self.store, self.controller, self.shutdown, self.assembler,
                               self.press, self.stock, self.events, m.all_off,
                               reset_button=self.reset_button)

    def events(self, kind, **fields):
        return self.store.events.append({'wall': self.clock.time(), 'kind': kind, **fields})

    def submit(self, ingredients, doneness='medium', **fields):
        return self.kitchen.submit(ingredients, doneness, self.clock.time(), **fields)

    def step(self):
        """One station tick (50 ms); the control loop and chillybin tick every other one."""
        self.clock.advance(TICK_S)
        now, wall = self.clock.monotonic(), self.clock.time()
        if self.ticks % 2 == 0:
            self.chilly.tick(now, wall)
            self.controller.tick(now)
        self.press.tick(now, wall, self.assembler, self.book.queued())
        self.kitchen.expire_pause(wall)
        self.assembler.tick(now, wall)
        self.ticks += 1

    def run(self, seconds):
        for _ in range(round(seconds / TICK_S)):
            self.step()

    def hold_reset_button(self, hold_s=3.0):
        """A person at the machine holds its reset button (the world lets go after hold_s)."""
        self.world.hold_button('reset', hold_s)
        self.run(hold_s + 0.1)

    def run_until(self, condition, limit_s):
        """Tick until condition() holds; returns the simulated seconds it took."""
        start = self.clock.monotonic()
        while not condition():
            if self.clock.monotonic() - start > limit_s:
                raise TimeoutError(f'not within {limit_s} simulated seconds')
            self.step()
        return self.clock.monotonic() - start

    def close(self):
        self.machine.close()
        self.bin_machine.close()
        self.store.close()
        self.bin_store.close()
        self.pins.close()
        self.wire.close()
