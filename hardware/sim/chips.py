"""Register-level models of the I2C chips, answering what the drivers ask of real ones.

Each chip has read(register, length) -> bytes and write(register, data), plus the plain
byte read/write that a mux uses. Conversions happen on the chip's own schedule in world
time, and data-ready bits behave as the datasheets say.
"""
import math

from ..i2c.mcp9600 import STATUS_BURST_COMPLETE, STATUS_INPUT_RANGE, STATUS_TH_UPDATE, encode_junction
from ..i2c import ads1115 as ads
from ..i2c.mcp9808 import encode_temperature
from ..i2c import nau7802 as nau
from ..i2c.nau7802 import encode_counts


class SimChip:
    def __init__(self, world, part_name):
        self.world = world
        self.part_name = part_name

    def read(self, register, length):
        # Real chips ACK a read of a register they do not implement and return zeros.
        return bytes(length)

    def write(self, register, data):
        raise OSError(121, f'{type(self).__name__}: register 0x{register:02X} not writable')

    def _conversion_index(self, period_s):
        return math.floor(self.world.now / period_s)


class SimMCP9808(SimChip):
    CONVERSION_S = 0.25

    def __init__(self, world, part_name):
        super().__init__(world, part_name)
        self.regs = {0x01: 0x0000, 0x02: 0, 0x03: 0, 0x04: 0, 0x06: 0x0054, 0x07: 0x0400}
        self.resolution = 0x03
        self._latched = (None, 0)

    def _ambient(self):
        index = self._conversion_index(self.CONVERSION_S)
        if self._latched[0] != index:
            self._latched = (index, encode_temperature(self.world.bin.temp_c))
        return self._latched[1]

    def read(self, register, length):
        if register == 0x05:
            value = self._ambient()
        elif register == 0x08:
            return bytes([self.resolution])[:length]
        elif register in self.regs:
            value = self.regs[register]
        else:
            return super().read(register, length)
        return bytes(((value >> 8) & 0xFF, value & 0xFF))[:length]

    def write(self, register, data):
        if register == 0x08:
            self.resolution = data[0] & 0x03
        elif register in (0x01, 0x02, 0x03, 0x04) and len(data) >= 2:
            self.regs[register] = (data[0] << 8) | data[1]
        else:
            super().write(register, data)


class SimMCP9600(SimChip):
    CONVERSION_S = {0: 0.32, 1: 0.08, 2: 0.02, 3: 0.005}  # by ADC resolution bits 6:5

    def __init__(self, world, part_name):
        super().__init__(world, part_name)
        self.sensor_config = 0x00
        self.device_config = 0x00
        self.th_cleared_at = -1
        self._latched = (None, b'\x00\x00')
        self._frozen_index = None

    def _period(self):
        return self.CONVERSION_S[(self.device_config >> 5) & 0x03]

    def _open(self):
        return 'plate-sensor-open' in self.world.faults

    def _index(self):
        """The conversion the chip is at. `plate-sensor-frozen`: the converter stops at the
        conversion it had reached, so the flag is never set again and register 0x00 keeps
        that (plausible) value until the fault is switched off."""
        if 'plate-sensor-frozen' not in self.world.faults:
            self._frozen_index = None
            return self._conversion_index(self._period())
        if self._frozen_index is None:
            self._frozen_index = self._conversion_index(self._period())
        return self._frozen_index

    def _hot(self):
        index = self._index()
        if self._latched[0] != index:
            # An open thermocouple input floats to the top of the range.
            temp = 1800.0 if self._open() else self.world.plate.probe_c
            self._latched = (index, encode_junction(temp))
        return self._latched[1]

    def _status(self):
        status = STATUS_BURST_COMPLETE
        if self._index() > self.th_cleared_at:
            status |= STATUS_TH_UPDATE
        if self._open():
            status |= STATUS_INPUT_RANGE
        return status

    def read(self, register, length):
        if register == 0x00:
            data = self._hot()
        elif register == 0x01:
            data = encode_junction(self.world.plate.probe_c - self.world.ambient_c)
        elif register == 0x02:
            data = encode_junction(self.world.ambient_c)
        elif register == 0x04:
            data = bytes([self._status()])
        elif register == 0x05:
            data = bytes([self.sensor_config])
        elif register == 0x06:
            data = bytes([self.device_config])
        elif register == 0x20:
            data = bytes((0x40, 0x12))
        else:
            return super().read(register, length)
        return data[:length]

    def write(self, register, data):
        if register == 0x04:
            if not data[0] & STATUS_TH_UPDATE:
                self.th_cleared_at = self._index()
        elif register == 0x05:
            self.sensor_config = data[0]
        elif register == 0x06:
            self.device_config = data[0]
        else:
            super().write(register, data)


class SimNAU7802(SimChip):
    """Powers up, calibrates and converts in world time, like the part."""
    POWER_UP_S = 0.0002
    CALIBRATION_S = 0.01
    RATES = {0b000: 10, 0b001: 20, 0b010: 40, 0b011: 80, 0b111: 320}

    def __init__(self, world, part_name, bay):
        super().__init__(world, part_name)
        self.bay = bay
        self.regs = {}
        self._reset()

    def _reset(self):
        self.regs = {nau._REG_PU_CTRL: 0x00, nau._REG_CTRL1: 0x00, nau._REG_CTRL2: 0x00,
                     nau._REG_PGA_PWR: 0x00}
        self.powered_at = None
        self.calibration_done_at = None
        self.last_read_conversion = None
        self.result = b'\x00\x00\x00'

    def _rate(self):
        return self.RATES.get((self.regs[nau._REG_CTRL2] >> 4) & 0x07, 10)

    def _converting(self):
        pu = self.regs[nau._REG_PU_CTRL]
        return self._ready() and pu & nau.PU_CS

    def _ready(self):
        return self.powered_at is not None and self.world.now - self.powered_at >= self.POWER_UP_S

    def _pu_ctrl(self):
        value = self.regs[nau._REG_PU_CTRL] & ~(nau.PU_PUR | nau.PU_CR)
        if self._ready():
            value |= nau.PU_PUR
        if self._converting():
            index = self._conversion_index(1.0 / self._rate())
            if index != self.last_read_conversion:
                value |= nau.PU_CR
        return value

    def _ctrl2(self):
        value = self.regs[nau._REG_CTRL2]
        if self.calibration_done_at is not None and self.world.now >= self.calibration_done_at:
            value &= ~nau.CTRL2_CALS
            self.regs[nau._REG_CTRL2] = value
            self.calibration_done_at = None
        return value

    def read(self, register, length):
        if register == nau._REG_PU_CTRL:
            data = bytes([self._pu_ctrl()])
        elif register == nau._REG_CTRL2:
            data = bytes([self._ctrl2()])
        elif register == nau._REG_ADCO_B2:
            data = self._convert()
        elif register == nau._REG_REVISION:
            data = bytes([0x0F])
        elif register in self.regs:
            data = bytes([self.regs[register]])
        else:
            data = b'\x00'
        return data[:length]

    def _convert(self):
        if not self._converting():
            return self.result
        index = self._conversion_index(1.0 / self._rate())
        if index != self.last_read_conversion:
            self.last_read_conversion = index
            motors = any(self.world.is_active(f'dispenser_{b.index}') for b in self.world.bays) \
                or self.world.is_active('tray_motor')
            self.result = encode_counts(self.bay.load_counts(motors))
        return self.result

    def write(self, register, data):
        value = data[0]
        if register == nau._REG_PU_CTRL:
            if value & nau.PU_RR:
                self._reset()
                self.regs[nau._REG_PU_CTRL] = nau.PU_RR
                return
            powering = value & nau.PU_PUD and value & nau.PU_PUA
            if powering and self.powered_at is None:
                self.powered_at = self.world.now
            elif not powering:
                self.powered_at = None
            self.regs[register] = value & ~(nau.PU_PUR | nau.PU_CR)
        elif register == nau._REG_CTRL2:
            self.regs[register] = value & ~nau.CTRL2_CAL_ERR
            if value & nau.CTRL2_CALS:
                self.calibration_done_at = self.world.now + self.CALIBRATION_S
        else:
            self.regs[register] = value


class SimTCA9548A(SimChip):
    def __init__(self, world, part_name):
        super().__init__(world, part_name)
        self.mask = 0

    def read_byte(self):
        return self.mask

    def write_byte(self, value):
        self.mask = value & 0xFF


class SimADS1115(SimChip):
    """The element current ADC: power-on registers as the datasheet gives them, and in
    continuous mode a new conversion of the current transformer's filtered voltage every
    1/data-rate seconds. `current-sense-stuck` freezes the conversion register."""
    RATES = (8, 16, 32, 64, 128, 250, 475, 860)   # samples/s by DR code (bits 7:5)

    def __init__(self, world, part_name):
        super().__init__(world, part_name)
        self.config = ads.CONFIG_RESET
        self.thresholds = {ads._REG_LO_THRESH: ads.LO_THRESH_RESET,
                           ads._REG_HI_THRESH: ads.HI_THRESH_RESET}
        self._latched = (None, 0)

    def _conversion(self):
        if self.config & ads._MODE_SINGLE or 'current-sense-stuck' in self.world.faults:
            return self._latched[1]
        index = self._conversion_index(1.0 / self.RATES[(self.config >> 5) & 0x07])
        if self._latched[0] != index:
            volts = self.world.chain.ct_reading_v()
            self._latched = (index, ads.encode_volts(volts, ads.full_scale_v(self.config)))
        return self._latched[1]

    def read(self, register, length):
        if register == ads._REG_CONVERSION:
            value = self._conversion()
        elif register == ads._REG_CONFIG:
            # Bit 15 reads 0 while converting (always, in continuous mode).
            value = self.config & ~ads._CONFIG_OS if not self.config & ads._MODE_SINGLE \
                else self.config | ads._CONFIG_OS
        elif register in self.thresholds:
            value = self.thresholds[register]
        else:
            return super().read(register, length)
        return bytes(((value >> 8) & 0xFF, value & 0xFF))[:length]

    def write(self, register, data):
        if len(data) < 2:
            raise OSError(121, f'SimADS1115: register 0x{register:02X} takes two bytes')
        value = (data[0] << 8) | data[1]
        if register == ads._REG_CONFIG:
            self.config = value & ~ads._CONFIG_OS
        elif register in self.thresholds:
            self.thresholds[register] = value
        else:
            super().write(register, data)
