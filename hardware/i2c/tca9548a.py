"""TCA9548A 8-channel I2C multiplexer, and a bus view of one of its channels."""
import threading

from .base import I2CDevice


class TCA9548A(I2CDevice):
    chip = 'TCA9548A'
    CHANNELS = 8

    def __init__(self, bus, address=0x70, **kw):
        super().__init__(bus, address, **kw)
        # Transactions on different channels must not interleave: select + transfer
        # happen under this lock.
        self.lock = threading.RLock()
        self._selected = None
        self.open_check(lambda: self.select(None))
        readback = self._transfer('read of the channel mask', self.bus.read_byte)
        if readback != 0:
            raise self.missing(f'channel mask reads 0x{readback:02X} after clearing it')

    @property
    def identity(self):
        return 'channel mask read back'

    def select(self, channel):
        """Connect one downstream channel (None disconnects all)."""
        if channel is not None and not 0 <= channel < self.CHANNELS:
            raise ValueError(f'mux channel must be 0-{self.CHANNELS - 1}, not {channel}')
        mask = 0 if channel is None else 1 << channel
        if mask != self._selected:
            self._selected = None   # unknown until the write succeeds
            self._transfer(f'select channel {channel}', self.bus.write_byte, mask)
            self._selected = mask

    def channel(self, channel):
        return MuxChannel(self, channel)


class MuxChannel:
    """Looks like an smbus2 bus, but selects its mux channel before every transfer."""

    def __init__(self, mux, channel):
        self.mux = mux
        self.channel = channel

    def _call(self, name, *args):
        with self.mux.lock:
            self.mux.select(self.channel)
            return getattr(self.mux.bus, name)(*args)

    def read_byte_data(self, address, register):
        return self._call('read_byte_data', address, register)

    def write_byte_data(self, address, register, value):
        return self._call('write_byte_data', address, register, value)

    def read_i2c_block_data(self, address, register, length):
        return self._call('read_i2c_block_data', address, register, length)

    def write_i2c_block_data(self, address, register, data):
        return self._call('write_i2c_block_data', address, register, data)
