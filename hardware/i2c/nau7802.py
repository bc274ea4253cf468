"""NAU7802 24-bit ADC for a bay's load cell."""
import time

from ..errors import ConversionTimeout, HardwareError
from .base import I2CDevice

_REG_PU_CTRL = 0x00
_REG_CTRL1 = 0x01
_REG_CTRL2 = 0x02
_REG_ADCO_B2 = 0x12
_REG_PGA_PWR = 0x1C
_REG_REVISION = 0x1F

PU_RR = 0x01      # register reset
PU_PUD = 0x02     # power up digital
PU_PUA = 0x04     # power up analog
PU_PUR = 0x08     # power up ready (read only)
PU_CS = 0x10      # cycle start
PU_CR = 0x20      # conversion ready (read only)
PU_AVDDS = 0x80   # use the internal LDO for AVDD

CTRL1_GAIN_128 = 0b111
CTRL1_LDO_3V3 = 0b100 << 3
CTRL2_CALS = 0x04
CTRL2_CAL_ERR = 0x08
CTRL2_RATE_80SPS = 0b011 << 4
PGA_CAP_EN = 0x80

REVISION_NIBBLE = 0x0F


def decode_counts(b2, b1, b0):
    """Three result bytes (MSB first, 24-bit two's complement) to a signed count.
    >>> decode_counts(0x7F, 0xFF, 0xFF), decode_counts(0x80, 0x00, 0x00), decode_counts(0xFF, 0xFF, 0xFF)
    (8388607, -8388608, -1)
    """
    raw = (b2 << 16) | (b1 << 8) | b0
    if raw & 0x800000:
        raw -= 0x1000000
    return raw


def encode_counts(counts):
    counts = max(-0x800000, min(0x7FFFFF, int(counts)))
    raw = counts & 0xFFFFFF
    return bytes(((raw >> 16) & 0xFF, (raw >> 8) & 0xFF, raw & 0xFF))


class NAU7802(I2CDevice):
    chip = 'NAU7802'
    POWER_UP_TIMEOUT_S = 0.1
    CALIBRATION_TIMEOUT_S = 1.0
    CONVERSION_TIMEOUT_S = 0.1   # 8 conversion periods at 80 SPS

    def __init__(self, bus, address=0x2A, *, sleep=time.sleep, monotonic=time.monotonic, **kw):
        super().__init__(bus, address, sleep=sleep, **kw)
        self._monotonic = monotonic
        revision = self.open_check(lambda: self.read_byte_register(_REG_REVISION))
        if revision & 0x0F != REVISION_NIBBLE:
            raise self.missing(f'revision register reads 0x{revision:02X}, not 0x?F')
        self.revision = revision
        self._start()

    @property
    def identity(self):
        return f'revision 0x{self.revision:02X}'

    def _wait_for(self, register, mask, want_set, timeout, what):
        deadline = self._monotonic() + timeout
        while True:
            value = self.read_byte_register(register)
            if bool(value & mask) == want_set:
                return value
            if self._monotonic() >= deadline:
                raise ConversionTimeout(f'{self.describe()}: {what} not within {timeout:.3f} s')
            self._sleep(0.001)

    def _start(self):
        self.write_byte_register(_REG_PU_CTRL, PU_RR)
        self.write_byte_register(_REG_PU_CTRL, 0)
        self.write_byte_register(_REG_PU_CTRL, PU_PUD | PU_PUA)
        self._wait_for(_REG_PU_CTRL, PU_PUR, True, self.POWER_UP_TIMEOUT_S, 'power-up ready')
        self.write_byte_register(_REG_CTRL1, CTRL1_GAIN_128 | CTRL1_LDO_3V3)
        self.write_byte_register(_REG_CTRL2, CTRL2_RATE_80SPS)
        self.write_byte_register(_REG_PGA_PWR, PGA_CAP_EN)
        self.write_byte_register(_REG_PU_CTRL, PU_PUD | PU_PUA | PU_AVDDS | PU_CS)
        self.calibrate()

    def calibrate(self):
        """Internal offset calibration of the analogue front end (after power-up or gain change)."""
        self.write_byte_register(_REG_CTRL2, CTRL2_RATE_80SPS | CTRL2_CALS)
        ctrl2 = self._wait_for(_REG_CTRL2, CTRL2_CALS, False, self.CALIBRATION_TIMEOUT_S,
                               'offset calibration')
        if ctrl2 & CTRL2_CAL_ERR:
            raise HardwareError(f'{self.describe()}: offset calibration reported an error')

    @property
    def raw_counts(self):
        """The next conversion result, in ADC counts (signed 24 bits)."""
        self._wait_for(_REG_PU_CTRL, PU_CR, True, self.CONVERSION_TIMEOUT_S, 'conversion ready')
        return decode_counts(*self.read_register(_REG_ADCO_B2, 3))
