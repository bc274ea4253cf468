"""Stock measured by load cells: a bay's weight, filtered against vibration spikes, and
the whole units of its ingredient that weight means.

A bay reads raw ADC counts; calibration (tare and scale) turns them into grams; a median
filter rejects single-sample spikes (a dispenser or conveyor shaking the cell).

Units are counted from where the weight last settled, not from the nearest whole number:
ten real slices rarely weigh ten nominal slices (10.3 units of vegemite is usual), so a
band around whole numbers would miss the first unit taken. The count moves when the
weight has moved half a unit from its last settled value, and that value then moves with
it, so noise around the half-unit point cannot make the count flicker back and forth.
"""
import math
from collections import deque
from dataclasses import dataclass

MEDIAN_WINDOW = 5          # a spike must last 3 of 5 samples to count
STEP_AT_UNITS = 0.5        # the count moves once the weight moved this many units


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
        self.settled_g = None      # the weight the count was last set at
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
        return self._update_units()

    def _update_units(self):
        if self.units is None:
            self.units = max(0, round(self.grams / self.unit_g))
            self.settled_g = self.grams
            return 0
        moved = (self.grams - self.settled_g) / self.unit_g
        if abs(moved) < STEP_AT_UNITS:
            return 0
        new = max(0, self.units + int(math.copysign(math.floor(abs(moved) + 0.5), moved)))
        if self.grams < STEP_AT_UNITS * self.unit_g:
            new = 0                      # less than half a unit on the cell: empty
        self.settled_g = self.grams
        change, self.units = new - self.units, new
        return change

    def fail(self, error):
        """The cell could not be read: say so, by name. The reading is not replaced by 0."""
        self.error = str(error)

    def resample(self):
        """Forget the filter's history (after a restock, so the new weight shows at once)."""
        self.filter.reset()

    def rebase(self):
        """Forget the history and the count: the next readings set the count afresh
        (after a restock or a calibration, whose change the caller records itself)."""
        self.filter.reset()
        self.units = None
        self.settled_g = None

    def describe(self):
        return {'name': self.name, 'slot': self.slot, 'unit_g': self.unit_g,
                'grams': None if self.grams is None else round(self.grams, 1),
                'units': self.units, 'sensor': {'ok': self.error is None, 'error': self.error}}
