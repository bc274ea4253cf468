"""MCP9808 digital temperature sensor: the chilly bin's air temperature."""
from .base import I2CDevice

_REG_CONFIG = 0x01
_REG_AMBIENT = 0x05
_REG_MANUFACTURER = 0x06
_REG_DEVICE = 0x07
_REG_RESOLUTION = 0x08

MANUFACTURER_ID = 0x0054
DEVICE_ID = 0x04          # upper byte of register 0x07; the lower is the revision
RESOLUTION_0_0625 = 0x03  # 0.0625 C per bit, about 250 ms per conversion


def decode_temperature(raw):
    """Register 0x05 (16 bits, MSB first) to degrees C.

    Bits 15..13 are alert flags and are ignored; bit 12 is the sign; bits 11..0 are
    sixteenths of a degree, two's complement over 13 bits.
    >>> decode_temperature(0x0040), decode_temperature(0x1FF0), decode_temperature(0xE190)
    (4.0, -1.0, 25.0)
    """
    value = raw & 0x0FFF
    if raw & 0x1000:
        value -= 0x1000
    return value / 16.0


def encode_temperature(celsius, flags=0):
    """The inverse of decode_temperature, for the simulated chip (clamped to the range)."""
    sixteenths = max(-0x1000, min(0x0FFF, round(celsius * 16)))
    return (flags << 13) | (sixteenths & 0x1FFF)


class MCP9808(I2CDevice):
    chip = 'MCP9808'

    def __init__(self, bus, address=0x18, **kw):
        super().__init__(bus, address, **kw)
        manufacturer = self.open_check(lambda: self.read_u16(_REG_MANUFACTURER))
        device = self.read_u16(_REG_DEVICE) >> 8
        if manufacturer != MANUFACTURER_ID or device != DEVICE_ID:
            raise self.missing(
                f'identity 0x{manufacturer:04X}/0x{device:02X} is not an MCP9808 '
                f'(expected 0x{MANUFACTURER_ID:04X}/0x{DEVICE_ID:02X})')
        self.write_byte_register(_REG_RESOLUTION, RESOLUTION_0_0625)

    @property
    def identity(self):
        return f'manufacturer 0x{MANUFACTURER_ID:04X} device 0x{DEVICE_ID:02X}'

    @property
    def temperature_c(self):
        """The latest conversion of the ambient air, in degrees C."""
        return decode_temperature(self.read_u16(_REG_AMBIENT))
