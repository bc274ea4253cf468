"""A simulated I2C bus that answers the smbus2 calls the drivers make.

Chips are placed from the board description; those behind the TCA9548A are visible only
while their channel is selected. A part that is silenced by a fault, or that loses a
transfer to a configured NACK rate, raises OSError(EREMOTEIO) as smbus2 does.
"""
import errno
import random

from ..board import BOARD
from .chips import SimADS1115, SimMCP9600, SimMCP9808, SimNAU7802, SimTCA9548A


def _nack(address):
    return OSError(errno.EREMOTEIO, f'Remote I/O error (no ACK from 0x{address:02X})')


class SimBus:
    def __init__(self, world, bus=1, board=BOARD):
        self.world = world
        self.bus_number = bus
        self._rng = random.Random(world.seed * 7 + bus)
        self.direct = {}     # address -> chip
        self.behind = {}     # (mux channel, address) -> chip
        self.mux = None
        for part in board.i2c:
            if part.bus != bus:
                continue
            chip = self._make(part)
            if part.mux_channel is None:
                self.direct[part.address] = chip
                if isinstance(chip, SimTCA9548A):
                    self.mux = chip
            else:
                self.behind[(part.mux_channel, part.address)] = chip

    def _make(self, part):
        if part.chip == 'MCP9808':
            return SimMCP9808(self.world, part.name)
        if part.chip == 'MCP9600':
            return SimMCP9600(self.world, part.name)
        if part.chip == 'TCA9548A':
            return SimTCA9548A(self.world, part.name)
        if part.chip == 'ADS1115':
            return SimADS1115(self.world, part.name)
        if part.chip == 'NAU7802':
            bay = self.world.bays[int(part.name.rsplit('_', 1)[1])]
            return SimNAU7802(self.world, part.name, bay)
        raise ValueError(f'no simulation of chip {part.chip}')

    def _chip(self, address):
        self.world.sync()
        chip = self.direct.get(address)
        if chip is None and self.mux is not None:
            for channel in range(8):
                if self.mux.mask & (1 << channel) and (channel, address) in self.behind:
                    chip = self.behind[(channel, address)]
                    break
        if chip is None:
            raise _nack(address)
        rate = self.world.nack_rate(chip.part_name)
        if rate and self._rng.random() < rate:
            raise _nack(address)
        return chip

    # smbus2's signatures (the optional `force` argument is accepted and ignored)
    def read_byte_data(self, address, register, force=None):
        with self.world.lock:
            return self._chip(address).read(register, 1)[0]

    def write_byte_data(self, address, register, value, force=None):
        with self.world.lock:
            self._chip(address).write(register, bytes([value & 0xFF]))

    def read_word_data(self, address, register, force=None):
        with self.world.lock:
            data = self._chip(address).read(register, 2).ljust(2, b'\x00')
            return data[0] | (data[1] << 8)   # SMBus words are little-endian

    def read_i2c_block_data(self, address, register, length, force=None):
        with self.world.lock:
            data = self._chip(address).read(register, length)
            # A block read clocks out as many bytes as asked; a short register pads with 0.
            return list(data.ljust(length, b'\x00')[:length])

    def write_i2c_block_data(self, address, register, data, force=None):
        with self.world.lock:
            self._chip(address).write(register, bytes(data))

    def read_byte(self, address, force=None):
        with self.world.lock:
            chip = self._chip(address)
            if not hasattr(chip, 'read_byte'):
                raise _nack(address)
            return chip.read_byte()

    def write_byte(self, address, value, force=None):
        with self.world.lock:
            chip = self._chip(address)
            if not hasattr(chip, 'write_byte'):
                raise _nack(address)
            chip.write_byte(value)

    def close(self):
        pass
