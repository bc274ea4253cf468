"""A chillybin on fake readers: load cells that weigh what a test says, a bin thermometer
that reads what it says (or fails by name), and a chiller that records its switching."""
from firmware.binstore import BinStore
from firmware.chillybin import build_chillybin
from hardware.errors import TransferFailed

TARE = 24_000.0
PER_G = 100.0
BAYS = [{'name': 'bread', 'slot': 0, 'unit_g': 35.0, 'tare_counts': TARE, 'counts_per_g': PER_G},
        {'name': 'cheese', 'slot': 1, 'unit_g': 21.0, 'tare_counts': TARE, 'counts_per_g': PER_G},
        {'name': 'vegemite', 'slot': 2, 'unit_g': 6.0, 'tare_counts': TARE, 'counts_per_g': PER_G}]


class FakeBinParts:
    def __init__(self):
        self.grams = {0: 350.0, 1: 210.0, 2: 60.0, 3: 0.0, 4: 0.0}
        self.bin_c = 3.0
        self.failing = set()        # 'bin_air' or a slot number
        self.chiller = []

    def read_bin_c(self):
        if 'bin_air' in self.failing:
            raise TransferFailed('bin_air (MCP9808 at 0x18): read of register 0x05 failed 3 times')
        return self.bin_c

    def read_counts(self, slot):
        if slot in self.failing:
            raise TransferFailed(f'loadcell_{slot} (NAU7802 at 0x2A): read failed 3 times')
        return TARE + self.grams[slot] * PER_G

    def set_chiller(self, on):
        if not self.chiller or self.chiller[-1] != on:
            self.chiller.append(on)


class BinRig:
    def __init__(self, state_dir, clock, parts=None, refill=None):
        self.state_dir = state_dir
        self.clock = clock
        self.parts = parts or FakeBinParts()
        self.refill = refill
        self.open()

    def open(self, wall_behind_s=0.0, synchronised=None):
        """`wall_behind_s`: the wall clock starts this far behind the truth (a Pi without a
        real-time clock after an outage); `synchronised`: what the clock knows of that."""
        wall = self.clock.time() - wall_behind_s
        self.store = BinStore(str(self.state_dir), BAYS, fsync=False, now_wall=wall)
        self.bin = build_chillybin(self.store, read_bin_c=self.parts.read_bin_c,
                                   read_counts=self.parts.read_counts,
                                   set_chiller=self.parts.set_chiller,
                                   nominal_calibration=lambda slot: (TARE, PER_G),
                                   slots=range(5), refill=self.refill,
                                   now=self.clock.monotonic(), wall=wall,
                                   wall_synchronised=synchronised)
        return self.bin

    def close(self):
        self.bin.stop(self.clock.time())
        self.store.close()

    def restart(self, down_s=0.0, **kw):
        self.close()
        self.clock.advance(down_s)
        return self.open(**kw)

    def tick(self, times=1, step=0.1):
        for _ in range(times):
            self.clock.advance(step)
            self.bin.tick(self.clock.monotonic(), self.clock.time())

    def run(self, seconds, step=10.0):
        self.tick(round(seconds / step), step)

    def events(self, kind=None):
        return self.store.events.recent(500, kind)
