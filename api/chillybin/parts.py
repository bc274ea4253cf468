"""The bin's I2C parts, each opened on its own and opened again later if it failed.

hardware.platform.Sensors opens every part at once and fails if one is missing, which
suits a commissioning check. chillybin must not work that way: a dead load cell or bin
sensor at start would stop the whole service, and with it the food-safety watch of the
bays that are fine (and while it is down, every bay's clock counts as above 5 C). Here
a part that cannot be opened makes its own readings fail by name, and is tried again
every `retry_s` clock seconds, so a reconnected part comes back by itself.
"""
import logging
import threading

from hardware.board import BOARD
from hardware.errors import HardwareError, PartMissing
from hardware.i2c import MCP9808, NAU7802, TCA9548A

log = logging.getLogger('chillybin.parts')


class BinParts:
    retry_s = 5.0

    def __init__(self, bus, clock, board=BOARD, owner='chillybin'):
        self.clock = clock
        self._lock = threading.Lock()
        self._drivers = {}
        self._failed = {}          # name -> (message, clock time of the attempt)
        self._makers = {}
        for part in board.i2c:
            if part.owner != owner:
                continue
            if part.chip == 'MCP9808':
                self._makers[part.name] = lambda p=part: MCP9808(bus, p.address, name=p.name,
                                                                 sleep=clock.sleep)
            elif part.chip == 'TCA9548A':
                self._makers[part.name] = lambda p=part: TCA9548A(bus, p.address, name=p.name,
                                                                  sleep=clock.sleep)
            elif part.chip == 'NAU7802':
                self._makers[part.name] = lambda p=part: NAU7802(
                    self.part('mux').channel(p.mux_channel), p.address, name=p.name,
                    sleep=clock.sleep, monotonic=clock.monotonic)
        for name in self._makers:
            try:
                self.part(name)
            except HardwareError:
                pass       # logged by part(); its readings say so until it answers

    def part(self, name):
        """The opened driver, or a PartMissing naming the part and why it is not open."""
        with self._lock:
            driver = self._drivers.get(name)
            if driver is not None:
                return driver
            if name not in self._makers:
                raise PartMissing(f'{name}: not a part of the chilly bin on this board')
            failed = self._failed.get(name)
            now = self.clock.monotonic()
            if failed is not None and now - failed[1] < self.retry_s:
                raise PartMissing(failed[0])
        try:
            driver = self._makers[name]()
        except HardwareError as exc:
            with self._lock:
                if name not in self._failed:
                    log.error('%s cannot be opened: %s', name, exc)
                self._failed[name] = (str(exc), self.clock.monotonic())
            raise PartMissing(str(exc)) from None
        with self._lock:
            if name in self._failed:
                log.info('%s answers again', name)
                del self._failed[name]
            self._drivers[name] = driver
            return driver

    def bin_c(self):
        return self.part('bin_air').temperature_c

    def counts(self, slot):
        return self.part(f'loadcell_{slot}').raw_counts

    def problems(self):
        with self._lock:
            return {name: message for name, (message, _) in self._failed.items()}
