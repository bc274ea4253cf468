"""The board: every part of the machine, its pin or bus address, its polarity.

This is the one place that knows the wiring. The machine object, the drivers, the
commissioning check, the simulated machine and hardware/README.md's wiring table all
read it from here. Pin numbers are BCM GPIO numbers.
"""
from dataclasses import dataclass, field

I2C_BUS = 1


@dataclass(frozen=True)
class GpioPart:
    """One GPIO line: an output we drive or an input we read."""
    name: str
    pin: int
    direction: str          # 'out' or 'in'
    active_high: bool = True
    pull: str = 'none'      # 'up' / 'down' (internal, inputs) or 'external-down' (outputs)
    owner: str = 'jafflr'   # the service that claims the line
    note: str = ''


@dataclass(frozen=True)
class I2CPart:
    """One I2C chip: its bus, address, and mux channel when it sits behind the TCA9548A."""
    name: str
    chip: str
    address: int
    bus: int = I2C_BUS
    mux_channel: int | None = None
    owner: str = 'jafflr'
    note: str = ''


@dataclass(frozen=True)
class Ingredient:
    """What a unit of an ingredient weighs, nominally, and how much it varies."""
    name: str
    unit_g: float
    spread: float = 0.05    # relative standard deviation of one unit's weight


# Nominal unit weights of what the dispensers drop: a slice, a slice, a 6 g portion.
INGREDIENTS = {i.name: i for i in (
    Ingredient('bread', 35.0),
    Ingredient('cheese', 21.0),
    Ingredient('vegemite', 6.0, spread=0.08),
    Ingredient('ham', 15.0),
    Ingredient('tomato', 12.0, spread=0.12),
)}


@dataclass(frozen=True)
class BaySlot:
    """A physical bay: load cell on a mux channel, a dispenser on a GPIO."""
    index: int
    mux_channel: int
    dispenser_pin: int
    default_ingredient: str | None


# Five bays; the first three are filled as in the original project, the others by config.
BAYS = (
    BaySlot(0, 0, 5, 'bread'),
    BaySlot(1, 1, 6, 'cheese'),
    BaySlot(2, 2, 13, 'vegemite'),
    BaySlot(3, 3, 19, None),
    BaySlot(4, 4, 26, None),
)

# Load cells: 5 kg, 1 mV/V, excited at 3.3 V, into a NAU7802 at gain 128. Full scale
# (+/- AVDD/gain = 25.8 mV) is 2**23 counts, so 5 kg gives 3.3 mV = 1.07 M counts.
LOADCELL_COUNTS_PER_G = (3.3e-3 / (3.3 / 128)) * (1 << 23) / 5000.0
# The empty bay (tray and hopper) weighs this much on its cell; calibrated out by tare.
BAY_HOPPER_G = 240.0


GPIO_PARTS = (
    GpioPart('heater_relay', 17, 'out', pull='external-down',
             note='SSR input, AND-ed with the heartbeat monostable; 10k pull-down'),
    GpioPart('heater_heartbeat', 27, 'out',
             note='toggled by the control loop; retriggers the 1.0 s monostable'),
    GpioPart('chiller_relay', 22, 'out', pull='external-down', owner='chillybin'),
    *(GpioPart(f'dispenser_{b.index}', b.dispenser_pin, 'out', pull='external-down',
               note=f'bay {b.index} dispenser motor driver') for b in BAYS),
    GpioPart('tray_motor', 16, 'out', pull='external-down', note='conveyor, one index per run'),
    GpioPart('tray_index', 20, 'in', active_high=False, pull='up',
             note='photo-eye, low while the conveyor sits at an index mark'),
    GpioPart('press_close', 23, 'out', pull='external-down', note='press motor driver IN1'),
    GpioPart('press_open', 24, 'out', pull='external-down', note='press motor driver IN2'),
    GpioPart('press_open_limit', 25, 'in', active_high=False, pull='up',
             note='limit switch to ground, low when the press is fully open'),
    GpioPart('press_closed_limit', 8, 'in', active_high=False, pull='up',
             note='limit switch to ground, low when the press is fully closed'),
    GpioPart('lid_closed', 7, 'in', active_high=False, pull='up',
             note='closes to ground when the lid is shut; open lid or cut wire reads high'),
    GpioPart('estop_ok', 4, 'in', active_high=False, pull='up',
             note='normally-closed e-stop to ground; pressed or cut wire reads high'),
    GpioPart('reset_button', 12, 'in', active_high=False, pull='up',
             note='normally-open push button to ground on the machine, low while pressed; '
                  'held 2 s it lets a person clear a fault that needs them there'),
    GpioPart('buzzer', 18, 'out'),
    GpioPart('status_led', 21, 'out'),
)

I2C_PARTS = (
    I2CPart('plate_thermocouple', 'MCP9600', 0x60, note='type K probe in the press plate'),
    I2CPart('bin_air', 'MCP9808', 0x18, owner='chillybin', note='chilly bin air temperature'),
    I2CPart('mux', 'TCA9548A', 0x70, owner='chillybin', note='one channel per bay load cell'),
    *(I2CPart(f'loadcell_{b.index}', 'NAU7802', 0x2A, mux_channel=b.mux_channel,
              owner='chillybin', note=f'bay {b.index} load cell') for b in BAYS),
)

# The monostable on the heater's SSR input: how long the relay may stay closed after the
# last heartbeat edge. A stalled, hung or killed program opens the relay within this.
HEARTBEAT_HOLD_S = 1.0


@dataclass(frozen=True)
class Board:
    gpio: tuple = GPIO_PARTS
    i2c: tuple = I2C_PARTS
    bays: tuple = BAYS
    heartbeat_hold_s: float = HEARTBEAT_HOLD_S
    ingredients: dict = field(default_factory=lambda: dict(INGREDIENTS))

    def gpio_part(self, name):
        for part in self.gpio:
            if part.name == name:
                return part
        raise KeyError(f'no GPIO part named {name!r}')

    def i2c_part(self, name):
        for part in self.i2c:
            if part.name == name:
                return part
        raise KeyError(f'no I2C part named {name!r}')

    def parts_of(self, owner):
        return ([p for p in self.gpio if p.owner == owner],
                [p for p in self.i2c if p.owner == owner])


BOARD = Board()


def wiring_table(board=BOARD):
    """The wiring as a Markdown table (hardware/README.md is generated from this)."""
    rows = ['| part | kind | pin / address | polarity | owner | note |',
            '|---|---|---|---|---|---|']
    for p in board.gpio:
        pol = ('active high' if p.active_high else 'active low') + (
            f', pull {p.pull}' if p.pull != 'none' else '')
        rows.append(f'| {p.name} | GPIO {p.direction} | GPIO{p.pin} | {pol} | {p.owner} | {p.note} |')
    for p in board.i2c:
        where = f'bus {p.bus} 0x{p.address:02X}' + (
            f' via mux ch {p.mux_channel}' if p.mux_channel is not None else '')
        rows.append(f'| {p.name} | {p.chip} | {where} | | {p.owner} | {p.note} |')
    return '\n'.join(rows)
