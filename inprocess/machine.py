"""The whole machine in one process on a fake clock: the simulated world, chillybin's
logic and jafflr's logic, built as the services build them (jafflr by firmware/build.py,
with its dead-man, its station error hook and its excepthook) but calling each other
directly instead of over HTTP. Tests, benchmarks and the fault campaign use it, so hours
of toasting run in seconds and every run repeats exactly.

    m = InProcessMachine(tmp_path)
    order, _ = m.submit(['cheese'], 'light')
    m.run_until(lambda: order.finished, limit_s=600)
"""
import json
import logging
import threading

from firmware.binstore import BinStore
from firmware.bays import bays_from_stock, grams_of
from firmware.build import Jafflr
from firmware.chillybin import build_chillybin
from firmware.jafflrstore import OrderStore
from hardware.board import default_bays, load_cell_slots, nominal_calibration
from hardware.platform import open_in_process

log = logging.getLogger(__name__)

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


class InProcessMachine:
    """chillybin and jafflr on one simulated world, ticked in turn on one thread: the
    control loop and chillybin every 100 ms, the stations every 50 ms, the dead-man
    checked after every control tick."""

    def __init__(self, state_dir, *, seed=1, env=None, units=10, fsync=False):
        self.state_dir, self.env, self.fsync = str(state_dir), env or {}, fsync
        self.platform = open_in_process(seed=seed, units=units)
        self.clock, self.world = self.platform.clock, self.platform.world
        self._restarted = []        # the platforms of earlier jafflr "processes"
        self.ticks = 0
        self.control_stalled = False
        self._closed = False
        self._build_chillybin()
        self._build_jafflr(self.platform)
        self._previous_excepthook = threading.excepthook
        threading.excepthook = self._thread_died

    def _build_chillybin(self):
        clock = self.clock
        sensors = self.platform.sensors('chillybin')
        self.bin_machine = self.platform.machine('chillybin')
        chiller = self.bin_machine.chiller
        self.bin_store = BinStore(self.state_dir, default_bays(), fsync=self.fsync,
                                  now_wall=clock.time())
        self.chilly = build_chillybin(
            self.bin_store, read_bin_c=lambda: sensors.bin_air.temperature_c,
            read_counts=lambda slot: sensors.loadcells[slot].raw_counts,
            set_chiller=lambda on: chiller.on() if on else chiller.off(),
            nominal_calibration=nominal_calibration, slots=load_cell_slots(),
            refill=lambda slot, units, name: self.world.fill(slot, units, name),
            now=clock.monotonic(), wall=clock.time())
        self.stock = LocalStock(self.chilly, clock)

    # The parts jafflr's "process" claims: here the plate's too, which runs inside it.
    JAFFLR_OWNERS = ('jafflr', 'plate')

    def _build_jafflr(self, platform):
        self.jafflr_platform = platform
        self.sensors = platform.sensors(self.JAFFLR_OWNERS)
        self.machine = platform.machine(self.JAFFLR_OWNERS)
        self.store = OrderStore(self.state_dir, fsync=self.fsync, now_wall=self.clock.time())
        self.jafflr = Jafflr(self.machine, self.sensors, self.clock, self.store, self.stock,
                             env=self.env, **self._jafflr_options())

    def _jafflr_options(self):
        """More of the builder's options (a machine whose plate is apart gives its link)."""
        return {}

    def restart_jafflr(self):
        """jafflr's process ends (as a crash leaves it: the lines as they were until the
        next start claims them) and starts again on the same state dir, with new pins; the
        world, its clock and chillybin carry on. The caller runs `kitchen.recover`, as the
        service does at every start."""
        self.machine.close()
        self.store.close()
        # The old pins stay open until the end: closing them would release lines the new
        # "process" has claimed.
        self._restarted.append(self.jafflr_platform)
        self._build_jafflr(open_in_process(self.clock, world=self.world))

    # -- jafflr's parts, as the tests read them ------------------------------------------------
    shutdown = property(lambda self: self.jafflr.shutdown)
    kitchen = property(lambda self: self.jafflr.kitchen)
    book = property(lambda self: self.jafflr.book)
    tray = property(lambda self: self.jafflr.tray)
    assembler = property(lambda self: self.jafflr.assembler)
    press = property(lambda self: self.jafflr.press)
    controller = property(lambda self: self.jafflr.controller)
    deadman = property(lambda self: self.jafflr.deadman)
    flags = property(lambda self: self.jafflr.flags)
    events = property(lambda self: self.jafflr.events)

    def submit(self, ingredients, doneness='medium', **fields):
        return self.kitchen.submit(ingredients, doneness, self.clock.time(), **fields)

    # -- running ---------------------------------------------------------------------------------
    def step(self):
        """One station tick (50 ms); the control loop and chillybin tick every other one."""
        self.clock.advance(TICK_S)
        now, wall = self.clock.monotonic(), self.clock.time()
        if self.ticks % 2 == 0:
            self._control_ticks(now, wall)
        self._station_ticks(now, wall)
        self.ticks += 1

    def _control_ticks(self, now, wall):
        """chillybin, the control loop and its dead-man (every other station tick)."""
        self.chilly.tick(now, wall)
        if not self.control_stalled:
            self.jafflr.control_tick(now)
        self.jafflr.deadman.check(now)

    def _station_ticks(self, now, wall):
        j = self.jafflr
        for name, tick in (('press', j.press_tick), ('assembler', j.assembler_tick)):
            try:
                tick(now, wall)
            except Exception as exc:    # as the service's station loops: stop the machine
                log.exception('%s station: tick failed', name)
                j.station_failed(name, exc)

    def run(self, seconds):
        for _ in range(round(seconds / TICK_S)):
            self.step()

    def run_until(self, condition, limit_s):
        """Tick until condition() holds; returns the simulated seconds it took."""
        start = self.clock.monotonic()
        while not condition():
            if self.clock.monotonic() - start > limit_s:
                raise TimeoutError(f'not within {limit_s} simulated seconds')
            self.step()
        return self.clock.monotonic() - start

    def hold_reset_button(self, hold_s=3.0):
        """A person at the machine holds its reset button (the world lets go after hold_s)."""
        self.world.hold_button('reset', hold_s)
        self.run(hold_s + 0.1)

    def stall_control_loop(self, stalled=True):
        """The control loop stops ticking (the service's debug hook): the dead-man's case."""
        self.control_stalled = stalled

    def _thread_died(self, args):
        try:
            self.jafflr.thread_died(args)
        finally:
            self._previous_excepthook(args)

    def close(self):
        if self._closed:
            return
        self._closed = True
        if threading.excepthook == self._thread_died:
            threading.excepthook = self._previous_excepthook
        self.store.close()
        self.bin_store.close()
        # The newest pins first, then the older "processes'", then chillybin's and the world's.
        platforms = [self.jafflr_platform, *reversed(self._restarted), self.platform]
        for i, platform in enumerate(platforms):
            if platform not in platforms[:i]:
                platform.close()
