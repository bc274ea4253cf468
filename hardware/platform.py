"""Choosing and opening the machine a service runs on: a Raspberry Pi or the simulator;
and `open_in_process`, the simulated machine inside this process on a clock it is given
(what the tests, the bench and inprocess/ run on).

The mode comes from JAFFLR_MACHINE: `pi`, `sim`, or `auto` (the default: `pi` when the
device tree says Raspberry Pi, else `sim`). There is no fallback: when the mode is `pi`
and a part cannot be opened, opening fails with the part's name; when it is `sim` and
the simulator is not running, opening fails and says how to start it.
"""
import logging
import os
import time

from .board import BOARD, element_amps
from .errors import BoardConfigError, NoNewConversion, PartMissing, SensorOpen
from .i2c import ADS1115, MCP9600, MCP9808, NAU7802, TCA9548A
from .machine import Machine

log = logging.getLogger('hardware')

MODES = ('auto', 'pi', 'sim')


def is_raspberry_pi(model_path='/proc/device-tree/model'):
    try:
        with open(model_path, 'rb') as f:
            return b'Raspberry Pi' in f.read()
    except OSError:
        return False


def resolve_mode(requested=None, model_path='/proc/device-tree/model'):
    requested = (requested or os.environ.get('JAFFLR_MACHINE') or 'auto').strip().lower()
    if requested not in MODES:
        raise BoardConfigError(f'JAFFLR_MACHINE={requested!r} is not one of {", ".join(MODES)}')
    if requested != 'auto':
        return requested, f'{requested} (chosen by configuration)'
    if is_raspberry_pi(model_path):
        return 'pi', 'pi (auto: device tree says Raspberry Pi)'
    return 'sim', 'sim (auto: no Raspberry Pi detected, using the simulated machine)'


class Platform:
    """What a service is handed: a clock, a pin factory, an I2C bus, and in simulation
    the simulator link (a person's hands: faults, refills). Close it to let go of all."""

    def __init__(self, mode, clock, pin_factory, bus, link=None, closers=(), world=None):
        self.mode = mode
        self.clock = clock
        self.pin_factory = pin_factory
        self.bus = bus
        self.link = link
        self.world = world          # in process only: the simulated world itself
        self._closers = list(closers)

    @property
    def simulated(self):
        return self.mode != 'pi'

    def machine(self, owner, board=BOARD):
        """The GPIO parts `owner` claims; closed (outputs off) before the platform closes."""
        machine = Machine(board, owner=owner, pin_factory=self.pin_factory)
        self._closers.append(machine.close)
        return machine

    def sensors(self, owner, bays=None):
        """The I2C parts `owner` claims, opened on this platform's bus and clock."""
        return Sensors(self.bus, owner=owner, bays=bays, sleep=self.clock.sleep,
                       monotonic=self.clock.monotonic)

    def close(self):
        for close in reversed(self._closers):
            try:
                close()
            except Exception:   # closing is best effort; each closer already made things safe
                log.exception('closing the platform')


def open_platform(mode=None, sim_socket=None, *, i2c=True):
    """Open the machine chosen by `mode` (see resolve_mode). Raises with the part's name.
    `i2c=False` opens GPIO only (the platform's bus is None): what safe_off needs, so that
    a broken I2C bus cannot stop it from switching outputs off."""
    mode, why = resolve_mode(mode)
    log.info('machine: %s', why)
    if mode == 'pi':
        return _open_pi(i2c)
    from .sim.link import connect
    from .sim.pins import SimPinFactory
    from .sim.protocol import default_socket_path
    # A service attaches to the simulator it is told of (or `serve`'s default), never to
    # another checkout's `make run` found by looking around: that machine's pins are
    # already driven by its own services. Looking around is for the CLI.
    link = connect(sim_socket or default_socket_path())
    factory = SimPinFactory(link)
    return Platform('sim', link.clock, factory, link.bus(1) if i2c else None, link=link,
                    closers=(link.close, factory.close))


def open_in_process(clock=None, *, seed=1, units=10, world=None):
    """The simulated machine in this process, no simulator process: a World on `clock`
    (a new FakeClock by default: it moves only when advanced) behind the same pin factory
    and I2C bus a service is handed. `platform.world` is the world, for a test's hands.
    Given a `world` (and its clock), a second program's pins and bus on that same world:
    another process attached to one simulator."""
    from .clock import FakeClock
    from .sim.bus import SimBus
    from .sim.pins import LocalWire, SimPinFactory
    from .sim.world import World
    clock = clock if clock is not None else FakeClock()
    if world is None:
        world = World(clock, seed=seed, units=units)
    wire = LocalWire(world)
    factory = SimPinFactory(wire)
    return Platform('in-process', clock, factory, SimBus(world), closers=(wire.close, factory.close),
                    world=world)


def _open_pi(i2c=True):
    from .clock import RealClock
    bus, closers = None, []
    if i2c:
        try:
            import smbus2
            bus = smbus2.SMBus(BOARD.i2c[0].bus)
        except (OSError, ImportError) as exc:
            raise PartMissing(f'I2C bus {BOARD.i2c[0].bus} (/dev/i2c-{BOARD.i2c[0].bus}): {exc}; '
                              f'enable I2C with raspi-config and add this user to the i2c '
                              f'group') from exc
        closers.append(bus.close)
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
        factory = LGPIOFactory()
    except Exception as exc:
        if bus is not None:
            bus.close()
        raise PartMissing(f'GPIO (lgpio on /dev/gpiochip*): {exc}; '
                          f'install lgpio and add this user to the gpio group') from exc
    return Platform('pi', RealClock(), factory, bus, closers=(*closers, factory.close))


class Sensors:
    """The I2C parts a service owns, opened and identity-checked."""

    # What a failed read raises, for the logic handed these sensors: the plate's
    # thermocouple is open, or a converter has no new conversion since the last read.
    open_errors = (SensorOpen,)
    stale_errors = (NoNewConversion,)

    def __init__(self, bus, board=BOARD, owner=None, bays=None, sleep=time.sleep,
                 monotonic=time.monotonic):
        """`bays`: the bay numbers whose load cells to open (default: all on the board)."""
        self.board = board
        self.plate = self.bin_air = self.mux = self.current_adc = None
        self.loadcells = {}
        owners = (owner,) if isinstance(owner, str) else owner
        parts = [p for p in board.i2c if owners is None or p.owner in owners]
        by_chip = {p.chip: p for p in parts if p.mux_channel is None}
        if 'MCP9600' in by_chip:
            self.plate = MCP9600(bus, by_chip['MCP9600'].address, name='plate_thermocouple',
                                 sleep=sleep)
        if 'MCP9808' in by_chip:
            self.bin_air = MCP9808(bus, by_chip['MCP9808'].address, name='bin_air', sleep=sleep)
        if 'ADS1115' in by_chip:
            self.current_adc = ADS1115(bus, by_chip['ADS1115'].address,
                                       name=by_chip['ADS1115'].name, sleep=sleep)
        if 'TCA9548A' in by_chip:
            self.mux = TCA9548A(bus, by_chip['TCA9548A'].address, name='mux', sleep=sleep)
        for part in parts:
            index = int(part.name.rsplit('_', 1)[1]) if part.chip == 'NAU7802' else None
            if index is not None and self.mux is not None and (bays is None or index in bays):
                self.loadcells[index] = NAU7802(self.mux.channel(part.mux_channel), part.address,
                                                name=part.name, sleep=sleep, monotonic=monotonic)

    def plate_c(self):
        """The press plate's temperature in C (the thermocouple's hot junction)."""
        return self.plate.hot_junction_c

    def element_current_a(self):
        """The heater element's RMS current in amperes, from the current transformer."""
        return element_amps(self.current_adc.volts)
