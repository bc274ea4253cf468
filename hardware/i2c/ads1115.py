"""ADS1115 16-bit ADC: the heater element's current, from a current transformer.

The chip has no identity register. What identifies it is its register file: the two
comparator threshold registers power up as 0x8000 (low) and 0x7FFF (high), which we
never change, and the configuration we write reads back the same (bit 15, the
conversion status, reads as the chip's state, not what was written).
"""
from .base import I2CDevice

_REG_CONVERSION = 0x00
_REG_CONFIG = 0x01
_REG_LO_THRESH = 0x02
_REG_HI_THRESH = 0x03

LO_THRESH_RESET = 0x8000
HI_THRESH_RESET = 0x7FFF
CONFIG_RESET = 0x8583            # the power-on configuration (datasheet, register 0x01)

_CONFIG_OS = 0x8000              # write: start a single conversion; read: 1 = idle
_MUX_AIN0_GND = 0b100 << 12      # AIN0 against ground
_PGA_SHIFT = 9
_PGA_2_048 = 0b010 << _PGA_SHIFT
_MODE_SINGLE = 1 << 8            # 0 = continuous conversion
_DR_128 = 0b100 << 5             # 128 samples/s, 7.8 ms a conversion
_COMP_DISABLE = 0b11             # comparator off, ALERT/RDY high impedance

# Continuous conversion of AIN0, +/-2.048 V, 128 samples/s, comparator off.
CONFIG_CONTINUOUS_AIN0 = _MUX_AIN0_GND | _PGA_2_048 | _DR_128 | _COMP_DISABLE   # 0x4483

# Full-scale volts for each PGA code (bits 11:9); codes 5-7 are all +/-0.256 V.
FULL_SCALE_V = {0: 6.144, 1: 4.096, 2: 2.048, 3: 1.024, 4: 0.512, 5: 0.256, 6: 0.256, 7: 0.256}


def full_scale_v(config):
    """The full-scale range (volts) a configuration register value selects."""
    return FULL_SCALE_V[(config >> _PGA_SHIFT) & 0x07]


def decode_volts(raw, full_scale=2.048):
    """The conversion register (16-bit two's complement, MSB first) to volts.

    Datasheet table "Output codes": +FS(2^15 - 1)/2^15 is 0x7FFF, +FS/2^15 is 0x0001,
    0 is 0x0000, -FS/2^15 is 0xFFFF, -FS is 0x8000.
    >>> decode_volts(0x7FFF), decode_volts(0x0001), decode_volts(0xFFFF), decode_volts(0x8000)
    (2.0479375, 6.25e-05, -6.25e-05, -2.048)
    """
    if raw & 0x8000:
        raw -= 0x10000
    return raw * full_scale / 0x8000


def encode_volts(volts, full_scale=2.048):
    """The inverse of decode_volts, for the simulated chip: clamped to the range, as the
    converter saturates."""
    code = max(-0x8000, min(0x7FFF, round(volts * 0x8000 / full_scale)))
    return code & 0xFFFF


class ADS1115(I2CDevice):
    chip = 'ADS1115'

    def __init__(self, bus, address=0x48, *, config=CONFIG_CONTINUOUS_AIN0, **kw):
        super().__init__(bus, address, **kw)
        lo = self.open_check(lambda: self.read_u16(_REG_LO_THRESH))
        hi = self.read_u16(_REG_HI_THRESH)
        if (lo, hi) != (LO_THRESH_RESET, HI_THRESH_RESET):
            raise self.missing(
                f'threshold registers read 0x{lo:04X}/0x{hi:04X}, not an ADS1115 '
                f'(expected its power-on 0x{LO_THRESH_RESET:04X}/0x{HI_THRESH_RESET:04X})')
        self.write_u16(_REG_CONFIG, config)
        back = self.read_u16(_REG_CONFIG)
        if back & ~_CONFIG_OS != config & ~_CONFIG_OS:
            raise self.missing(f'configuration 0x{config:04X} read back as 0x{back:04X}')
        self.config = config
        self.full_scale_v = full_scale_v(config)

    def write_u16(self, register, value):
        """A 16-bit register, most significant byte first."""
        self._transfer(f'write of register 0x{register:02X}', self.bus.write_i2c_block_data,
                       register, [(value >> 8) & 0xFF, value & 0xFF])

    @property
    def identity(self):
        return f'thresholds 0x{LO_THRESH_RESET:04X}/0x{HI_THRESH_RESET:04X}, config 0x{self.config:04X}'

    @property
    def volts(self):
        """The latest conversion of AIN0, in volts."""
        return decode_volts(self.read_u16(_REG_CONVERSION), self.full_scale_v)
