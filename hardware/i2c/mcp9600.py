"""MCP9600 thermocouple EMF-to-temperature converter: the press plate's type K probe."""
from ..errors import NoNewConversion, SensorOpen
from .base import I2CDevice

_REG_HOT_JUNCTION = 0x00
_REG_DELTA = 0x01
_REG_COLD_JUNCTION = 0x02
_REG_STATUS = 0x04
_REG_SENSOR_CONFIG = 0x05
_REG_DEVICE_CONFIG = 0x06
_REG_DEVICE_ID = 0x20

DEVICE_IDS = {0x40: 'MCP9600', 0x41: 'MCP9601'}

STATUS_BURST_COMPLETE = 0x80
STATUS_TH_UPDATE = 0x40      # a new hot-junction conversion is in register 0x00
STATUS_INPUT_RANGE = 0x10    # input out of range: what an open thermocouple looks like
TYPE_K_RANGE_C = (-200.0, 1372.0)   # what a type K thermocouple can measure at all

THERMOCOUPLE_K = 0b000
# Cold junction 0.0625 C, ADC 16 bits (about 80 ms a conversion), normal mode. 18 bits
# would take 320 ms, too slow for a 10 Hz control loop.
DEVICE_CONFIG_16BIT = 0b0_01_000_00
FILTER_OFF = 0b000


def decode_junction(msb, lsb):
    """A junction register (16-bit two's complement, 1/16 C per bit) to degrees C.
    >>> decode_junction(0x01, 0x90), decode_junction(0xFE, 0xC0), decode_junction(0x0C, 0x80)
    (25.0, -20.0, 200.0)
    """
    raw = (msb << 8) | lsb
    if raw & 0x8000:
        raw -= 0x10000
    return raw / 16.0


def encode_junction(celsius):
    raw = max(-0x8000, min(0x7FFF, round(celsius * 16)))
    return bytes(((raw >> 8) & 0xFF, raw & 0xFF))


class MCP9600(I2CDevice):
    chip = 'MCP9600'

    def __init__(self, bus, address=0x60, **kw):
        super().__init__(bus, address, **kw)
        ident = self.open_check(lambda: self.read_register(_REG_DEVICE_ID, 2))
        if ident[0] not in DEVICE_IDS:
            raise self.missing(f'device ID 0x{ident[0]:02X} is not an MCP9600 (expected 0x40)')
        self.variant = DEVICE_IDS[ident[0]]
        self.revision = ident[1]
        self.write_byte_register(_REG_SENSOR_CONFIG, (THERMOCOUPLE_K << 4) | FILTER_OFF)
        self.write_byte_register(_REG_DEVICE_CONFIG, DEVICE_CONFIG_16BIT)

    @property
    def identity(self):
        return f'{self.variant} rev 0x{self.revision:02X}'

    @property
    def status(self):
        return self.read_byte_register(_REG_STATUS)

    @property
    def hot_junction_c(self):
        """The plate temperature in degrees C from a conversion not read before.

        Taken only when the status register flags a new hot-junction conversion (TH
        update, bit 6), and the flag is cleared after reading, as the datasheet asks
        (DS20005426, status register: "cleared by the user"). Without that a converter
        that stopped converting would go on giving its last, plausible value. Raises
        NoNewConversion when nothing new is flagged (asked within one conversion time,
        ~80 ms, or the converter froze: the caller decides how long is too long), and
        SensorOpen if the probe is open or out of range."""
        status = self.status
        if status & STATUS_INPUT_RANGE:
            raise SensorOpen(f'{self.describe()}: thermocouple open or input out of range '
                             f'(status 0x{status:02X})')
        if not status & STATUS_TH_UPDATE:
            raise NoNewConversion(f'{self.describe()}: no new hot-junction conversion flagged '
                                  f'since the last read (status 0x{status:02X})')
        data = self.read_register(_REG_HOT_JUNCTION, 2)
        self.write_byte_register(_REG_STATUS, status & ~STATUS_TH_UPDATE & 0xFF)
        celsius = decode_junction(data[0], data[1])
        if not TYPE_K_RANGE_C[0] <= celsius <= TYPE_K_RANGE_C[1]:
            # Beyond what a type K thermocouple can measure: the probe opened between the
            # status read and this one (an open input floats to the top of the range).
            # Asked again, the chip says so; a value it still vouches for goes back to the
            # caller, whose range check latches a sensor fault.
            again = self.status
            if again & STATUS_INPUT_RANGE:
                raise SensorOpen(f'{self.describe()}: thermocouple open or input out of range '
                                 f'(status 0x{again:02X}, read {celsius:.1f} C)')
        return celsius

    def wait_for_hot_junction_c(self, timeout_s=1.0, poll_s=0.02):
        """The next new conversion, polling the status for up to `timeout_s` (for one-off
        readers such as the commissioning check; the control loop reads once a tick)."""
        for _ in range(max(1, round(timeout_s / poll_s))):
            try:
                return self.hot_junction_c
            except NoNewConversion as exc:
                last = exc
                self._sleep(poll_s)
        raise NoNewConversion(f'{last} for {timeout_s:.2f} s: the converter is not converting')

    @property
    def cold_junction_c(self):
        data = self.read_register(_REG_COLD_JUNCTION, 2)
        return decode_junction(data[0], data[1])
