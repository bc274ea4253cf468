"""What every I2C driver shares: the bus is handed in, transfers retry a bounded number
of times and then raise TransferFailed naming the part. Nothing here invents a value."""
import time

from ..errors import TransferFailed, PartMissing

# MCP9600's clock-stretching erratum makes single transfers fail now and then; reference
# drivers retry three times. The same bound serves every chip on the bus.
TRANSFER_ATTEMPTS = 3


class I2CDevice:
    """A chip at `address` on `bus` (an smbus2.SMBus, a simulated bus, or a MuxChannel)."""

    chip = 'I2C device'

    def __init__(self, bus, address, *, name=None, attempts=TRANSFER_ATTEMPTS, sleep=time.sleep):
        self.bus = bus
        self.address = address
        self.name = name or self.chip
        self.attempts = attempts
        self._sleep = sleep

    def __repr__(self):
        return f'<{type(self).__name__} {self.name} at 0x{self.address:02X}>'

    def describe(self):
        return f'{self.name} ({self.chip} at 0x{self.address:02X})'

    def _transfer(self, what, call, *args):
        last = None
        for _ in range(self.attempts):
            try:
                return call(self.address, *args)
            except OSError as exc:
                last = exc
        raise TransferFailed(
            f'{self.describe()}: {what} failed {self.attempts} times: {last}') from last

    def read_register(self, register, length):
        """Read `length` bytes starting at `register` as a bytes object."""
        data = self._transfer(f'read of register 0x{register:02X}',
                              self.bus.read_i2c_block_data, register, length)
        return bytes(data)

    def read_byte_register(self, register):
        return self._transfer(f'read of register 0x{register:02X}',
                              self.bus.read_byte_data, register)

    def write_byte_register(self, register, value):
        self._transfer(f'write of register 0x{register:02X}',
                       self.bus.write_byte_data, register, value)

    def read_u16(self, register):
        """A 16-bit register, most significant byte first (not smbus's little-endian word)."""
        data = self.read_register(register, 2)
        return (data[0] << 8) | data[1]

    def missing(self, detail):
        return PartMissing(f'{self.describe()}: {detail}')

    def open_check(self, probe):
        """Run `probe()` at open; a transfer failure there means the part is not there."""
        try:
            return probe()
        except TransferFailed as exc:
            raise self.missing(f'does not answer ({exc.__cause__})') from exc

    def close(self):
        """Drivers own no resources; the bus belongs to whoever opened it."""
