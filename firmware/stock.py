"""Stock measured by load cells: a bay's weight, filtered against vibration spikes, and
the whole units of its ingredient that weight means.

A bay reads raw ADC counts; calibration (tare and scale) turns them into grams; a median
filter rejects single-sample spikes (a dispenser or conveyor shaking the cell); units
move with hysteresis so noise at a half-unit boundary does not make stock flicker.
"""
from collections import deque
from dataclasses import dataclass

MEDIAN_WINDOW = 5          # a spike must last 3 of 5 samples to count
UNIT_HYSTERESIS = 0.2      # units change only when grams/unit is 0.2 past the boundary


@dataclass
class Calibration:
    tare_counts: float     # counts with the bay empty
    counts_per_g: float    # scale

    def grams(self, counts):
        return (counts - self.tare_counts) / self.counts_per_g


class SpikeFilter:
    """Median of the last few samples: one or two wild samples never move the output."""

    def __init__(self, window=MEDIAN_WINDOW):
        self.samples = deque(maxlen=window)

    def add(self, value):
        self.samples.append(value)
        if len(self.samples) < self.samples.maxlen // 2 + 1:
            return None
        ordered = sorted(self.samples)
        return ordered[len(ordered) // 2]

    def reset(self):
        self.samples.clear()


class Bay:
    """One ingredient's bay: its load cell's meaning and state. Not thread-safe on its own;
    the bin holds one lock around all bays."""

    def __init__(self, name, slot, unit_g, calibration):
        if unit_g <= 0:
            raise ValueError(f'unit weight of {name} must be above 0 g, not {unit_g}')
        self.name = name
        self.slot = slot
        self.unit_g = float(unit_g)
        self.calibration = calibration
        self.filter = SpikeFilter()
        self.grams = None          # filtered weight of the contents; None until measured
        self.units = None          # whole units; None until measured
        self.error = None          # the named sensor error, while the cell cannot be read
        self.last_raw = None

    @property
    def ok(self):
        return self.error is None and self.units is not None

    def sample(self, counts):
        """Take one reading; returns the change in whole units (0 when none)."""
        self.error = None
        self.last_raw = counts
        filtered = self.filter.add(counts)
        if filtered is None:
            return 0
        self.grams = self.calibration.grams(filtered)
        return self._update_units(self.grams / self.unit_g)

    def _update_units(self, exact):
        exact = max(0.0, exact)
        if self.units is None:
            self.units = round(exact)
            return 0
        if abs(exact - self.units) < 0.5 + UNIT_HYSTERESIS:
            return 0
        new = round(exact)
        change, self.units = new - self.units, new
        return change

    def fail(self, error):
        """The cell could not be read: say so, by name. The reading is not replaced by 0."""
        self.error = str(error)

    def resample(self):
        """Forget the filter's history (after a restock, so the new weight shows at once)."""
        self.filter.reset()

    def describe(self):
        return {'name': self.name, 'slot': self.slot, 'unit_g': self.unit_g,
                'grams': None if self.grams is None else round(self.grams, 1),
                'units': self.units, 'sensor': {'ok': self.error is None, 'error': self.error}}
