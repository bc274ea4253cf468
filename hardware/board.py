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
    owner: str = 'jafflr'   # the process that claims the line: jafflr, plate, chillybin
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
    GpioPart('heater_relay', 17, 'out', pull='external-down', owner='plate',
             note='SSR input, AND-ed with the heartbeat monostable; 10k pull-down'),
    GpioPart('heater_heartbeat', 27, 'out', owner='plate',
             note='toggled by the control loop while jafflr is attached; retriggers the '
                  '1.0 s monostable'),
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
    GpioPart('lid_closed', 7, 'in', active_high=False, pull='up', owner='plate',
             note='closes to ground when the lid is shut; open lid or cut wire reads high'),
    GpioPart('estop_ok', 4, 'in', active_high=False, pull='up', owner='plate',
             note='normally-closed e-stop to ground; pressed or cut wire reads high'),
    GpioPart('reset_button', 10, 'in', active_high=False, pull='up',
             note='normally-open push button to ground on the machine, low while pressed; '
                  'held 2 s it lets a person clear a fault that needs them there'),
    GpioPart('buzzer', 18, 'out'),
    GpioPart('status_led', 21, 'out'),
    # The safety chain's read-backs (see SAFETY_CHAIN): what the hardware actually does.
    GpioPart('heater_feedback', 12, 'in', pull='down', owner='plate',
             note='SSR drive after the AND gate, through a 10k/20k divider (5 V to 3.3 V); '
                  'high while the SSR is told to conduct'),
    GpioPart('contactor_closed', 9, 'in', active_high=False, pull='up', owner='plate',
             note="K1's auxiliary NO contact to ground: low while the e-stop chain powers "
                  'the heater and the motors; a dropped K1 or a cut wire reads high'),
)

I2C_PARTS = (
    I2CPart('plate_thermocouple', 'MCP9600', 0x60, owner='plate', note='type K probe in the press plate'),
    I2CPart('bin_air', 'MCP9808', 0x18, owner='chillybin', note='chilly bin air temperature'),
    I2CPart('mux', 'TCA9548A', 0x70, owner='chillybin', note='one channel per bay load cell'),
    *(I2CPart(f'loadcell_{b.index}', 'NAU7802', 0x2A, mux_channel=b.mux_channel,
              owner='chillybin', note=f'bay {b.index} load cell') for b in BAYS),
    I2CPart('element_current', 'ADS1115', 0x48, owner='plate',
            note='current transformer on the element, rectified and filtered, on AIN0'),
)

# The monostable on the heater's SSR input: how long the relay may stay closed after the
# last heartbeat edge. A stalled, hung or killed program opens the relay within this.
HEARTBEAT_HOLD_S = 1.0

# The element and its current sense. A YHDC SCT-013-010 current transformer (10 A RMS
# gives 1 V RMS across its built-in burden) on the element's live lead, after the SSR,
# into a precision full-wave rectifier and a 47 ms RC filter, into the ADS1115's AIN0 at
# +/-2.048 V full scale. A rectified sine averages 2*sqrt(2)/pi (0.900) of its RMS.
MAINS_V = 230.0
ELEMENT_W = 1800.0
ELEMENT_A = ELEMENT_W / MAINS_V                    # 7.83 A drawn with the SSR conducting
CT_V_PER_A = 0.1 * 0.9003                          # filtered volts per RMS ampere
CT_FILTER_TAU_S = 0.047                            # 10 kOhm x 4.7 uF
# What the software and the commissioning check call "current" and "no current".
ELEMENT_ON_MIN_A = ELEMENT_A / 2                   # a healthy element draws at least this
ELEMENT_OFF_MAX_A = 1.0                            # a leaking or welded SSR passes more


def element_amps(volts):
    """The filtered current-transformer voltage at the ADC as element RMS amperes."""
    return volts / CT_V_PER_A


@dataclass(frozen=True)
class ChainPart:
    """One part of the safety chain: what it is, what it is rated for, what it breaks.

    `opens` says what the part interrupts when it acts; `read_by` names the GPIO or I2C
    part that lets the software see it (empty for parts that act alone)."""
    name: str
    ref: str                # the reference designator on the drawings
    kind: str
    part_number: str        # an example part; any part with the same ratings will do
    rating: str
    opens: str
    read_by: str = ''
    note: str = ''


# In the order the heater's current flows through them, then the motors' side. A part
# that acts on its own (fuse, thermostat) has no read_by: the software sees its effect
# through the current sense.
SAFETY_CHAIN = (
    ChainPart('mains_fuse', 'F1', 'fuse', 'Littelfuse 0218010.HXP (5x20 mm) in a fused, '
              'switched IEC inlet', '10 A time-lag, 250 VAC, 1500 A breaking',
              'everything on mains', note='the machine\'s own short-circuit protection'),
    ChainPart('estop_button', 'S1', 'emergency stop', 'Schneider XB5AS8442 + ZBE102 contact '
              'block', '3 NC contacts, positive opening (IEC 60947-5-1 annex K), turn to '
              'release', 'both safety relay channels; a third NC contact to GPIO4',
              read_by='estop_ok', note='red mushroom on yellow, within reach of the press'),
    ChainPart('safety_relay', 'K0', 'safety relay', 'Pilz PNOZ s3 24VDC (750103)',
              '24 VDC, 2 NO safety contacts 6 A, 1 NC auxiliary, dual channel',
              "K1's coil (contact 13-14) and the motor drivers' 24 V supply (contact 23-24)",
              note='dual channel with cross-monitoring; K1\'s NC mirror contact in its '
                   'feedback loop (Y1-Y2), so a welded K1 stops it closing again'),
    ChainPart('contactor', 'K1', 'contactor', 'Schneider LC1D09BD',
              '24 VDC coil, 25 A AC-1 per pole, 1 NO + 1 NC (mirror) auxiliary',
              'the element circuit, both poles (L and N)', read_by='contactor_closed',
              note='NO auxiliary to GPIO9, NC mirror contact to the safety relay feedback'),
    ChainPart('thermal_fuse', 'F2', 'thermal cut-off', 'SEFUSE SF240E',
              'opens at 240 C (holding 200 C), 10 A 250 VAC, one shot',
              'the element circuit', read_by='element_current',
              note='on the element terminal bracket, which runs about 60 C below the plate: '
                   'opens with the plate near 300 C; check the bracket temperature at '
                   'commissioning'),
    ChainPart('thermostat', 'F3', 'manual-reset thermostat', 'capillary safety limiter, '
              'manual reset, fixed 280 C (E.G.O. or Limitor; choose by the rating)', 'opens at 280 C at the bulb, '
              '16 A 250 VAC, reset by hand only when below 250 C', 'the element circuit',
              read_by='element_current', note='bulb clamped in the plate beside the thermocouple'),
    ChainPart('monostable', 'U1', 'retriggerable monostable', '74HC123 (U1A), Rx 220 kOhm, '
              'Cx 10 uF', f'{HEARTBEAT_HOLD_S:.1f} s hold (0.45 Rx Cx), 5 V',
              'the SSR drive and the motor drivers\' enable when the heartbeat stops',
              read_by='heater_feedback', note='clocked by the heartbeat pin GPIO27'),
    ChainPart('and_gate', 'U2', 'AND gate', '74HCT08 (U2A heater, U2B motors)',
              '5 V, 4 mA per output', 'U2A: SSR drive = GPIO17 AND U1 Q; U2B: motor enable '
              '= U1 Q AND K0 24-V output (through an opto)', read_by='heater_feedback'),
    ChainPart('ssr', 'K2', 'zero-cross solid state relay', 'Crydom D2425',
              '25 A 24-280 VAC, 3-32 VDC control, zero-cross, on a 1.0 K/W heatsink',
              'the element, every half cycle', read_by='element_current',
              note='fails closed (welded) more often than open: hence K1 and the current sense'),
    ChainPart('element', 'R1', 'heating element', '1.8 kW 230 V cartridge pair in the plate',
              f'{ELEMENT_W:.0f} W, {ELEMENT_A:.1f} A at {MAINS_V:.0f} V', '',
              read_by='element_current', note='heats the plate'),
    ChainPart('current_transformer', 'T1', 'current transformer', 'YHDC SCT-013-010',
              '10 A RMS to 1 V RMS, built-in burden', '', read_by='element_current',
              note='clipped round the element\'s live lead after the SSR; into an MCP6002 '
                   'precision rectifier and a 10 kOhm / 4.7 uF filter'),
    ChainPart('current_adc', 'U3', 'ADC', 'TI ADS1115 (ADDR to GND)',
              '16 bit, +/-2.048 V range, 128 samples/s, 3.3 V', '', read_by='element_current'),
    ChainPart('motor_drivers', 'A1-A7', 'motor drivers', 'TI DRV8871 boards (5 dispensers, '
              'conveyor, press)', '6.5-45 V, 3.6 A peak; nSLEEP as enable',
              'every motor: enable from U2B, supply through K0 23-24',
              note='a hung program drops U1 Q and every motor stops; the e-stop cuts their supply'),
)


def chain_part(name):
    for part in SAFETY_CHAIN:
        if part.name == name:
            return part
    raise KeyError(f'no safety-chain part named {name!r}')


@dataclass(frozen=True)
class Board:
    gpio: tuple = GPIO_PARTS
    i2c: tuple = I2C_PARTS
    bays: tuple = BAYS
    heartbeat_hold_s: float = HEARTBEAT_HOLD_S
    chain: tuple = SAFETY_CHAIN
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

    def has_part(self, name):
        """True when a GPIO or I2C part of this name is on the board (parts added by
        later revisions, such as a reset button, are looked up by name)."""
        return any(p.name == name for p in (*self.gpio, *self.i2c))

    def parts_of(self, owner):
        return ([p for p in self.gpio if p.owner == owner],
                [p for p in self.i2c if p.owner == owner])


BOARD = Board()


def nominal_calibration(slot):
    """A bay's load cell as delivered: the empty hopper's counts, and counts per gram."""
    return (BAY_HOPPER_G * LOADCELL_COUNTS_PER_G, LOADCELL_COUNTS_PER_G)


def default_bays(board=BOARD):
    """The bays filled as in the original project (chillybin's first bays): name, slot,
    unit weight and the cell's nominal calibration."""
    bays = []
    for slot in board.bays:
        if slot.default_ingredient:
            tare, per_g = nominal_calibration(slot.index)
            bays.append({'name': slot.default_ingredient, 'slot': slot.index,
                         'unit_g': board.ingredients[slot.default_ingredient].unit_g,
                         'tare_counts': tare, 'counts_per_g': per_g})
    return bays


def load_cell_slots(board=BOARD):
    """The bay slots that have a load cell."""
    return [slot.index for slot in board.bays]


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
