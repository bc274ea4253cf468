"""jafflr's logic, wired one way: the one shutdown (its saved fault latched again first),
the reset button, the plate controller and what watches it (interlocks, chain monitor,
dead-man), the order book, the tray and the two stations, the kitchen, and what stops
the machine when an error escapes a station or a thread.

The service (api/jafflr/service.py), the whole machine in one process (inprocess/) and
the plate rig (inprocess/plate.py) all build through here, so a test or a benchmark runs the
machine the Pi runs. Like the rest of firmware/ it imports nothing of hardware/ and reads
no time for its logic: it is handed the machine (outputs and inputs), the sensors
(`plate_c()`, `element_current_a()` and the errors a failed read raises), the store,
chillybin's client and a clock, which it passes on to what keeps time of its own (the
dead-man) and to callbacks that arrive with no `now` (gpiozero edges, error hooks).
"""
import logging

from .assembler import Assembler
from .chain import ChainMonitor
from .deadman import DeadMan
from .flags import Flags
from .heater.control import PlateController
from .kitchen import Kitchen
from .orderbook import OrderBook
from .platehost import GatedHeater, PlateHost
from .press import PressStation
from .remoteplate import RemotePlate
from .safety import CONTROL_ERROR, CONTROL_LOOP_STALLED, Interlocks, ResetButton, Shutdown
from .tray import Tray

log = logging.getLogger('jafflr')

DEADMAN_S = 2.0     # clock seconds without a control tick before the dead-man trips
PLATE_GRACE_S = 10.0  # clock seconds jafflr waits at start for the plate process to answer


class Plate:
    """The PlateController and what watches it: the interlocks and the chain monitor every
    tick, and the dead-man (started by whoever runs the control loop) when ticks stop.
    `on_tick(now)` is called first on every control tick, then the dead-man is refreshed."""

    def __init__(self, machine, sensors, shutdown, clock, *, deadman_s=DEADMAN_S, chain=True,
                 chain_timing=None, on_tick=None, config=None, controller='pid', heater=None):
        """`heater`: what the controller drives (default machine.heater; the plate process
        hands a GatedHeater, whose heartbeat beats only while jafflr is attached)."""
        self.machine = machine
        self.shutdown = shutdown
        self._monotonic = clock.monotonic
        self._on_tick = on_tick
        self.chain = None
        if chain:
            self.chain = ChainMonitor(lambda: machine.heater.driven, sensors.element_current_a,
                                      lambda: machine.chain_closed, lambda: machine.estop_pressed,
                                      chain_timing)
        self.controller = PlateController(
            heater or machine.heater, lambda: sensors.plate_c(), shutdown, config, controller=controller,
            interlocks=Interlocks(machine, shutdown, clock.monotonic), on_tick=self._ticked,
            chain=self.chain, open_errors=sensors.open_errors, stale_errors=sensors.stale_errors)
        self.deadman = DeadMan(clock, deadman_s, self.on_stall)

    def tick(self, now):
        self.controller.tick(now)

    def reset_with(self, clear):
        return clear(None)  # one shutdown in this process: nothing else to clear

    def _ticked(self, now):
        if self._on_tick is not None:
            self._on_tick(now)      # the service's watchdog ping (and its stall hook)
        self.deadman.refresh(now)

    def on_stall(self):
        """The dead-man: the control loop has not ticked for its limit. Heater pin off
        directly (the loop that would switch it off is the one stuck), then latch."""
        try:
            self.machine.heater.off()
        finally:
            self.shutdown.trip(CONTROL_LOOP_STALLED, f'the control loop did not tick for '
                               f'{self.deadman.timeout_s:g} s', self._monotonic(),
                               by='the dead-man')


class Jafflr:
    """jafflr's parts, built and wired. Read them as attributes: shutdown, reset_button,
    flags, plate (controller, deadman), controller, book, tray, assembler, press, kitchen.
    Nothing here starts a thread or a loop: the caller ticks `control_tick`, `press_tick`
    and `assembler_tick` (the service on loops of its own, the in-process machine in turn),
    sends an escaped error to `station_failed` / `thread_died`, and starts the dead-man."""

    def __init__(self, machine, sensors, clock, store, stock, *, env=None, deadman_s=DEADMAN_S,
                 chain_timing=None, on_control_tick=None, plate_link=None):
        """`plate_link`: the plate runs in a process of its own, reached by
        `plate_link(request) -> answer` (`RemotePlate`); without it, here (`Plate`)."""
        self.machine = machine
        self.clock = clock
        self.store = store
        self.stock = stock
        # A latched fault is saved (after the outputs are off) and restored at start.
        self.shutdown = Shutdown(wall_clock=clock.time, save=store.save_fault)
        # The saved fault is latched again now, before the lid, e-stop and reset-button
        # callbacks are wired: a trip from them during start-up must add to it, never
        # replace it on disk. (Kitchen.recover restores it too; the second time is a no-op.)
        self.shutdown.restore(store.saved_fault(), clock.monotonic())
        self.reset_button = ResetButton()
        self.reset_button.watch(machine.reset_button, clock.monotonic)
        self.flags = Flags(store.flags(), env if env is not None else {})
        if plate_link is None:
            self.plate = Plate(machine, sensors, self.shutdown, clock, deadman_s=deadman_s,
                               chain_timing=chain_timing, on_tick=on_control_tick)
            self.controller = self.plate.controller
        else:
            self.plate = self.controller = RemotePlate(plate_link, self.shutdown, clock,
                                                       grace_s=max(deadman_s, PLATE_GRACE_S),
                                                       on_tick=on_control_tick)
            self.plate.deadman = DeadMan(clock, deadman_s, self.plate.on_stall,
                                         name='plate-link-dead-man')
        self.book = OrderBook(store, store.orders(), store.meta()['next_order'])
        self.tray = Tray()
        self.assembler = Assembler(self.book, stock, machine.dispensers, self.flags,
                                   self.shutdown, self.events, self.tray)
        self.press = PressStation(machine.press, machine.conveyor, self.controller, self.book,
                                  self.shutdown, self.events, self.tray)
        self.kitchen = Kitchen(self.book, store, self.controller, self.shutdown, self.assembler,
                               self.press, self.tray, stock, self.events, machine.all_off,
                               reset_button=self.reset_button, plate=self.plate)
        if plate_link is not None:
            # After the kitchen's: jafflr's own outputs off first (instant), then the plate
            # is told over its socket.
            self.shutdown.add_listener(self.plate.tell_fault, first=True)

    @property
    def deadman(self):
        return self.plate.deadman

    def events(self, kind, **fields):
        """Record what happened, stamped with the wall time it was recorded at."""
        return self.store.events.append({'wall': self.clock.time(), 'kind': kind, **fields})

    # -- the three loops' steps, in one place ------------------------------------------------
    def control_tick(self, now):
        self.plate.tick(now)

    def press_tick(self, now, wall):
        self.press.tick(now, wall, self.assembler, self.book.queued())

    def assembler_tick(self, now, wall):
        self.kitchen.expire_pause(wall)
        self.assembler.tick(now, wall)

    # -- when an error escapes -------------------------------------------------------------
    def station_failed(self, name, exc):
        """A station's tick raised: its state is unknown now, so stop the machine."""
        self.machine.all_off()
        self.shutdown.trip(CONTROL_ERROR, f'{type(exc).__name__} in the {name} station: {exc}',
                           self.clock.monotonic())

    def thread_died(self, args):
        """threading.excepthook: an exception nobody caught ended a thread. Stop."""
        name = getattr(args.thread, 'name', '?')
        log.critical('unhandled exception in thread %s', name,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        self.machine.all_off()
        self.shutdown.trip(CONTROL_ERROR, f'{args.exc_type.__name__} in thread {name}: '
                           f'{args.exc_value}', self.clock.monotonic())


class PlateProcess:
    """The plate in a process of its own (api/plate): its own shutdown, saved and restored
    through `store` (saved_fault(), save_fault(record)), the Plate with its interlocks, chain
    monitor and dead-man, driving a heater whose heartbeat beats only while jafflr is
    attached, and the PlateHost that answers jafflr (firmware/platehost.py). The caller runs
    `tick(now)` on a loop, starts the dead-man and serves `host.handle`."""

    def __init__(self, machine, sensors, clock, store, *, lease_s, deadman_s=DEADMAN_S,
                 chain_timing=None, on_control_tick=None, lateness=None):
        self.machine = machine
        self.clock = clock
        self.shutdown = Shutdown(wall_clock=clock.time, save=store.save_fault)
        self.shutdown.restore(store.saved_fault(), clock.monotonic())
        self.host = None
        heater = GatedHeater(machine.heater, lambda: self.host is not None and
                             self.host.beat_allowed())
        self.plate = Plate(machine, sensors, self.shutdown, clock, deadman_s=deadman_s,
                           chain_timing=chain_timing, on_tick=on_control_tick, heater=heater)
        self.controller = self.plate.controller
        self.host = PlateHost(self.plate, self.shutdown, lease_s=lease_s, lateness=lateness)

    @property
    def deadman(self):
        return self.plate.deadman

    def tick(self, now):
        self.host.tick(now)
