"""The bays' scales: each bay's load cell read every round, its count of whole units,
its calibration, and which ingredient sits in which slot.

What a change in a bay's count means is not decided here: a rise, a fall and an empty
bay are told to whoever listens (`when_risen`, `when_fallen`, `when_empty`; the bin
wires food safety and the reservations to them).
"""
from .errors import InvalidRequest, SensorFault, UnknownIngredient
from .stock import Bay, Calibration

CALIBRATION_SAMPLES = 16
RESAMPLE_READS = 3


def bay_doc(bay):
    """A bay as the store keeps it."""
    return {'name': bay.name, 'slot': bay.slot, 'unit_g': bay.unit_g,
            'tare_counts': bay.calibration.tare_counts,
            'counts_per_g': bay.calibration.counts_per_g,
            'units': bay.units, 'baseline_g': bay.baseline_g}


class BayScales:
    """`read_counts(slot)` reads a load cell; `nominal_calibration(slot)` gives a cell's
    nominal (tare_counts, counts_per_g); `slots`: the slots that have a load cell (None:
    any)."""

    def __init__(self, store, read_counts, reads, history, lock, *, nominal_calibration,
                 slots=None):
        self.store = store
        self.read_counts = read_counts
        self.reads = reads
        self.history = history
        self.lock = lock
        self.nominal_calibration = nominal_calibration
        self.slots = None if slots is None else tuple(sorted(slots))
        self.bays = {b['name']: Bay(b['name'], b['slot'], b['unit_g'],
                                    Calibration(b['tare_counts'], b['counts_per_g']),
                                    b.get('units'), b.get('baseline_g'))
                     for b in store.bays()}
        self.when_risen = None       # (wall, bay, units)
        self.when_fallen = None      # (wall, bay, units)
        self.when_empty = None       # (bay)
        self.when_added = None       # (name, wall): a bay configured, inside its transaction

    def bay(self, name):
        try:
            return self.bays[name]
        except KeyError:
            raise UnknownIngredient(f'there is no {name!r} in the bin', field='name',
                                    allowed=', '.join(sorted(self.bays))) from None

    def by_slot(self):
        return sorted(self.bays, key=lambda n: self.bays[n].slot)

    @property
    def all_counted(self):
        """Every readable bay has a count (a failing one is reported as such)."""
        return all(b.units is not None or b.error is not None for b in self.bays.values())

    # -- every round ---------------------------------------------------------------------
    def read(self):
        """[(bay, (counts, error))]: one read of every bay, outside the lock."""
        with self.lock:     # PUT /v2/bays may add a bay while this round reads
            bays = list(self.bays.values())
        return [(bay, self.reads.read(self.read_counts, bay.slot)) for bay in bays]

    def take(self, wall, readings):
        """A round's readings; a bay replaced meanwhile, or a failure too short to report,
        is skipped (its last good reading stands)."""
        for bay, (value, error) in readings:
            if self.bays.get(bay.name) is bay and self.reads.reported(f'loadcell_{bay.slot}', error):
                self.weigh(wall, bay, value, error)

    def weigh(self, wall, bay, counts, error):
        if error is not None:
            if bay.error is None:
                self.history.record(wall, 'sensor', bay=bay.name, detail=f'load cell failed: {error}')
            bay.fail(error)
            return
        if bay.error is not None:
            self.history.record(wall, 'sensor', bay=bay.name, detail='load cell recovered')
        was_counted = bay.units is not None
        change = bay.sample(counts)
        if change or (bay.units is not None and not was_counted):
            # One write: a fall booked to a reservation but not to the count would be
            # seen again after a kill -9 between the two, and booked twice.
            with self.store.transaction():
                if change > 0 and self.when_risen is not None:
                    self.when_risen(wall, bay, change)
                elif change < 0 and self.when_fallen is not None:
                    self.when_fallen(wall, bay, -change)
                self.save(bay)
        if bay.units == 0 and self.when_empty is not None:
            self.when_empty(bay)

    def resample(self, bay, wall):
        """Measure a bay from scratch, at once (after a refill): a new baseline."""
        with self.lock:
            bay.resample()      # the rise was recorded by the caller
        for _ in range(RESAMPLE_READS):
            value, error = self.reads.read(self.read_counts, bay.slot)
            with self.lock:
                self.weigh(wall, bay, value, error)

    def save(self, bay):
        self.store.save_bay(bay_doc(bay))

    # -- a person's work -------------------------------------------------------------------
    def calibrate(self, name, step, wall, known_g=None):
        """'tare' with the bay empty, then 'span' with a known weight on it."""
        bay = self.bay(name)
        mean = self._mean_counts(bay)
        with self.lock:
            cal = bay.calibration
            if step == 'tare':
                cal.tare_counts = mean
            elif step == 'span':
                cal.counts_per_g = self._span(mean, cal.tare_counts, known_g)
            else:
                raise InvalidRequest(f'unknown calibration step {step!r}', field='step',
                                     allowed='tare, span')
            self.save(bay)
            bay.resample()
            self.history.record(wall, 'calibrated', bay=name, detail=f'{step}: tare '
                                f'{cal.tare_counts:.0f} counts, {cal.counts_per_g:.3f} counts/g')
            return bay.describe()

    def _mean_counts(self, bay):
        """The mean of CALIBRATION_SAMPLES readings without the two highest and lowest."""
        samples, failures = [], 0
        while len(samples) < CALIBRATION_SAMPLES:
            value, error = self.reads.read(self.read_counts, bay.slot)
            if error is None:
                samples.append(value)
                continue
            failures += 1      # one late conversion should not void a calibration; many do
            if failures > CALIBRATION_SAMPLES // 4:
                raise SensorFault(f'cannot calibrate {bay.name}: {failures} of its readings '
                                  f'failed, the last with {error}', field=bay.name)
        return sum(sorted(samples)[2:-2]) / (len(samples) - 4)

    @staticmethod
    def _span(mean, tare_counts, known_g):
        if not known_g or known_g <= 0:
            raise InvalidRequest('span calibration needs known_g, the weight placed on '
                                 'the bay in grams', field='known_g', allowed='> 0')
        per_g = (mean - tare_counts) / known_g
        if per_g <= 0:
            raise InvalidRequest(f'the bay reads {mean - tare_counts:.0f} counts over '
                                 f'its tare with {known_g} g on it; tare it empty first',
                                 field='known_g')
        return per_g

    def configure(self, name, slot, unit_g, wall, calibration=None):
        """Put an ingredient in a bay slot (more bays by configuration). A bay that stays
        in its slot keeps its calibration; one moved to another slot takes that slot's
        (`calibration`, default the slot's nominal one): calibration belongs to the cell."""
        if self.slots is not None and slot not in self.slots:
            raise InvalidRequest(f'there is no bay slot {slot} with a load cell on this machine',
                                 field='slot', allowed=', '.join(map(str, self.slots)))
        with self.lock:
            for other in self.bays.values():
                if other.slot == slot and other.name != name:
                    raise InvalidRequest(f'slot {slot} already holds {other.name}', field='slot')
            existing = self.bays.get(name)
            if existing is not None and existing.slot == slot:
                cal = existing.calibration
            else:
                cal = Calibration(*(calibration or self.nominal_calibration(slot)))
            bay = Bay(name, slot, unit_g, cal)
            self.bays[name] = bay
            with self.store.transaction():
                self.save(bay)
                if self.when_added is not None:
                    self.when_added(name, wall)
            self.history.record(wall, 'bay-configured', bay=name,
                                detail=f'slot {slot}, {unit_g} g a unit')
            return bay

