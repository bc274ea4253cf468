"""Stock measured by load cells: a bay's weight, filtered against vibration spikes, and
the whole units of its ingredient that weight means.

A bay reads raw ADC counts; calibration (tare and scale) turns them into grams; a median
filter rejects single-sample spikes (a dispenser or conveyor shaking the cell).

Units are counted by steps in weight, not by dividing the total: real units vary (a
vegemite portion is 6 g give or take 8 %), so ten portions may weigh 10.3 "units" and
nine 9.3, and rounding the total would miss a drop. Instead the bay keeps a baseline
weight; a change of at least half a unit from it is a step of round(change / unit)
units (at least one), and becomes the new baseline. The count is anchored by what a
person declares on restock; after a restart it carries on from the stored count and the
weight it stood for, and what changed while nobody watched is a step like any other (a
unit that fell for a reservation then is still booked to it); when nothing is known it
is estimated from the total, and when the bay reads empty it is zero.
"""
from collections import deque
from dataclasses import dataclass

MEDIAN_WINDOW = 5          # a spike must last 3 of 5 samples to count
STEP_UNITS = 0.5           # a change of half a unit's weight is a step


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

    def __init__(self, name, slot, unit_g, calibration, units=None, baseline_g=None):
        if unit_g <= 0:
            raise ValueError(f'unit weight of {name} must be above 0 g, not {unit_g}')
        self.name = name
        self.slot = slot
        self.unit_g = float(unit_g)
        self.calibration = calibration
        self.filter = SpikeFilter()
        self.grams = None          # filtered weight of the contents; None until measured
        self.units = None          # whole units; None until measured
        self.baseline_g = None     # the weight the current count stands for
        self.stored = (units, baseline_g) if units is not None and baseline_g is not None else None
        self.estimated = False     # True when the count came from dividing the total
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
        return self._count(self.grams)

    def _count(self, grams):
        if self.units is None:
            stored, self.stored = self.stored, None
            if not stored:
                self.units, self.estimated = max(0, round(grams / self.unit_g)), True
                self.baseline_g = grams
                return 0
            self.units, self.baseline_g, self.estimated = stored[0], stored[1], False
        step = grams - self.baseline_g
        if abs(step) >= STEP_UNITS * self.unit_g:
            new = max(0, self.units + (round(step / self.unit_g) or (1 if step > 0 else -1)))
        elif grams < STEP_UNITS * self.unit_g and self.units:
            new = 0        # it reads empty: whatever the count said, nothing is left
        else:
            return 0
        change, self.units, self.baseline_g = new - self.units, new, grams
        return change

    def declare(self, units):
        """A person says how many units are in the bay now (a restock): the count is that,
        and the weight it stands for is what the cell reads."""
        self.units, self.baseline_g, self.estimated = units, self.grams, False

    def fail(self, error):
        """The cell could not be read: say so, by name. The reading is not replaced by 0."""
        self.error = str(error)

    def resample(self):
        """Measure from scratch: forget the filter's history and the count's baseline (after
        a restock or a calibration, so the new weight shows at once)."""
        self.filter.reset()
        self.units = None
        self.baseline_g = None

    def describe(self):
        return {'name': self.name, 'slot': self.slot, 'unit_g': self.unit_g,
                'grams': None if self.grams is None else round(self.grams, 1),
                'units': self.units, 'estimated': self.estimated,
                'sensor': {'ok': self.error is None, 'error': self.error}}
