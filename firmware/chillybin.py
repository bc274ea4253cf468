"""chillybin's logic: the bin's bays, their stock, reservations, food safety, the chiller.

It is handed how to read the bin's air temperature and each bay's load cell, how to
switch the chiller, and its store; `tick(now, wall)` does one round of measuring and
deciding, and the request methods (reserve, confirm, cancel, pick, restock, calibrate)
change state under one lock, each change persisted before it is acknowledged.
"""
import json
import threading
from collections import deque
from datetime import datetime, timezone

from .chiller import ChillerConfig, ChillerControl
from .errors import (BayLocked, Conflict, InvalidRequest, NotEnoughStock, SensorFault, Unavailable,
                     UnknownIngredient)
from .foodsafety import FoodSafetyClock, is_above
from .reservations import DEFAULT_TTL_S, HELD, PICK_TTL_S, CONFIRMED, Ledger, Reservation
from .stock import MEDIAN_WINDOW, Bay, Calibration

PERSIST_CLOCKS_EVERY_S = 60.0
CALIBRATION_SAMPLES = 16
TEMPERATURE_HISTORY = 360          # one sample every 5 s: the last half hour
TEMPERATURE_EVERY_S = 5.0
# A part is reported failed once this many reads in a row have failed. The drivers retry
# each transfer 3 times, so one failed read on a bus that drops 2 % of transfers comes
# every few hours per part; three in a row, never (see tests/campaign/test_flaky_i2c.py).
# Until then the last good reading stands (never 0, never an invented value) and the
# failure is counted in sensor_errors. At the default 0.1 s tick a dead part is named
# within 0.3 s.
FAILED_AFTER_READS = 3


class ChillyBin:
    def __init__(self, store, read_bin_c, read_counts, set_chiller, *, now, wall,
                 default_calibration, chiller=ChillerConfig(), refill=None, simulated=False,
                 slots=None, wall_synchronised=None):
        """`read_counts(slot)` reads a load cell; `default_calibration(slot)` gives the
        nominal (tare_counts, counts_per_g) of a slot's cell; `refill(slot, units,
        ingredient)` is a person's hands in the simulator (None on real hardware);
        `slots` are the bay slots that have a load cell (None: any);
        `wall_synchronised`: whether `wall` is known right at start (True, False, or None
        when that cannot be known)."""
        self.default_calibration = default_calibration
        self.slots = None if slots is None else tuple(sorted(slots))
        self.store = store
        self.read_bin_c = read_bin_c
        self.read_counts = read_counts
        self.set_chiller = set_chiller
        self.refill = refill
        self.simulated = simulated
        self.lock = threading.RLock()
        self.bays = {b['name']: Bay(b['name'], b['slot'], b['unit_g'],
                                    Calibration(b['tare_counts'], b['counts_per_g']),
                                    b.get('units'), b.get('baseline_g'))
                     for b in store.bays()}
        self.clocks = store.clocks()
        for name in self.bays:
            self.clocks.setdefault(name, FoodSafetyClock())
        meta = store.meta()
        self.ledger = Ledger(store.reservations(), meta.get('next_reservation', 1))
        self.chiller = ChillerControl(chiller)
        self.bin_c = None
        self.bin_error = 'not read yet'
        self.sensor_errors = {}            # part -> failed reads, for metrics
        self.failing_reads = {}            # part -> failed reads in a row, not yet reported
        self.last_tick = None
        self.last_clock_save = now
        self.temperatures = deque(maxlen=TEMPERATURE_HISTORY)
        self.last_temperature_at = None
        self._v1_json = b'{}'
        self.on_v1 = None                  # told of each new v1 answer (a read replica)
        self._count_downtime(meta.get('last_seen_wall'), wall, wall_synchronised)
        self.store.forget_reservations(self.ledger.forget_old(wall))

    def _count_downtime(self, last_seen, wall, synchronised):
        """Time nobody watched the bin counts as above 5 C. Time that cannot be measured
        is the worst case: every bay is held until a person checks it."""
        why = unmeasurable_downtime(last_seen, wall, synchronised)
        if why is not None:
            for clock in self.clocks.values():
                clock.hold(f'the time the service was down cannot be measured: {why}')
            self.event(wall, 'food-safety', detail=f'every bay held until a person checks it: '
                       f'the downtime cannot be measured ({why})')
        elif last_seen is not None and wall > last_seen:
            for clock in self.clocks.values():
                clock.add(wall - last_seen, True)
            self.event(wall, 'food-safety', detail=f'{(wall - last_seen) / 60:.1f} min unwatched '
                       f'(service not running) counted as above 5 C')
        self.store.save_clocks(self.clocks, wall)

    # -- measuring ---------------------------------------------------------------------
    def tick(self, now, wall):
        """One round: read the bin and every bay, drive the chiller, keep the clocks."""
        with self.lock:     # PUT /v2/bays may add a bay while this round reads
            bays = list(self.bays.values())
        temp, temp_error = self._read(self.read_bin_c)
        counts = [(bay, self._read(self.read_counts, bay.slot)) for bay in bays]
        with self.lock:
            dt = 0.0 if self.last_tick is None else max(0.0, now - self.last_tick)
            self.last_tick = now
            if self._reported('bin_air', temp_error):
                self._take_bin_reading(now, wall, temp, temp_error)
            else:
                self._take_bin_reading(now, wall, self.bin_c, self.bin_error)
            for bay, (value, error) in counts:
                if self.bays.get(bay.name) is bay and self._reported(f'loadcell_{bay.slot}', error):
                    self._take_bay_reading(wall, bay, value, error)
            self._count_food_safety(dt, wall)
            for r in self.ledger.expire(wall):
                self._closed(r, wall)
            if now - self.last_clock_save >= PERSIST_CLOCKS_EVERY_S:
                self.store.save_clocks(self.clocks, wall)
                self.store.forget_reservations(self.ledger.forget_old(wall))
                self.last_clock_save = now
            self._refresh_v1()

    def count_every_bay(self, now_wall, rounds=2 * MEDIAN_WINDOW):
        """Before answering anyone: measure until every readable bay has a count (a few
        rounds; a failing cell is reported as usual). After a crash a unit may have left a
        bay while nobody watched; a cancel answered before the first count would give it
        back while it lies on the tray, and book its fall to nobody."""
        for _ in range(rounds):
            self.tick(*now_wall())
            with self.lock:
                if all(b.units is not None or b.error is not None for b in self.bays.values()):
                    return True
        return False

    @staticmethod
    def _read(reader, *args):
        try:
            return reader(*args), None
        except Exception as exc:   # a failed read is reported by name, never a made-up value
            return None, f'{type(exc).__name__}: {exc}'

    def _reported(self, part, error):
        """Count a failed read; False while a failure is too short to report (fewer than
        FAILED_AFTER_READS in a row): the caller keeps the last good reading."""
        if error is None:
            self.failing_reads.pop(part, None)
            return True
        self.sensor_errors[part] = self.sensor_errors.get(part, 0) + 1
        self.failing_reads[part] = self.failing_reads.get(part, 0) + 1
        return self.failing_reads[part] >= FAILED_AFTER_READS

    def _take_bin_reading(self, now, wall, temp, error):
        if (error is None) != (self.bin_error is None):
            self.event(wall, 'sensor', detail=f'bin air sensor {"recovered" if error is None else "failed: " + error}')
        self.bin_c, self.bin_error = temp, error
        was_alert, was_cooling = self.chiller.alert, self.chiller.not_cooling is None
        self.set_chiller(self.chiller.update(now, temp))
        if self.chiller.alert != was_alert:
            self.event(wall, 'alert', detail='bin above 5 C for more than 15 minutes'
                       if self.chiller.alert else 'bin back at or below 5 C')
        if (self.chiller.not_cooling is None) != was_cooling:
            self.event(wall, 'alert', detail=self.chiller.not_cooling or 'the chiller cools again')
        if self.last_temperature_at is None or now - self.last_temperature_at >= TEMPERATURE_EVERY_S:
            self.last_temperature_at = now
            self.temperatures.append((wall, temp))
            self.store.temperatures.append({'wall': wall, 'c': temp})

    def _take_bay_reading(self, wall, bay, counts, error):
        if error is not None:
            if bay.error is None:
                self.event(wall, 'sensor', bay=bay.name, detail=f'load cell failed: {error}')
            bay.fail(error)
            return
        if bay.error is not None:
            self.event(wall, 'sensor', bay=bay.name, detail='load cell recovered')
        was_counted = bay.units is not None
        change = bay.sample(counts)
        if change or (bay.units is not None and not was_counted):
            # One write: a fall booked to a reservation but not to the count would be
            # seen again after a kill -9 between the two, and booked twice.
            with self.store.transaction():
                if change > 0:
                    self._risen(wall, bay, change)
                elif change < 0:
                    self._fallen(wall, bay, -change)
                self.store.save_bay(self._bay_doc(bay))
        if bay.units == 0:
            self.clocks[bay.name].mark_empty()

    def _risen(self, wall, bay, units):
        clock = self.clocks[bay.name]
        reset = clock.restocked(wall, replaced=False)
        self.event(wall, 'restock', bay=bay.name, units=units,
                   detail='refilled from empty: food-safety clock restarted' if reset
                   else 'topped up: the food-safety clock keeps the oldest food\'s time')

    def _fallen(self, wall, bay, units):
        explained, changed = self.ledger.attribute(bay.name, units, wall)
        with self.store.transaction():
            self.store.save_reservations(changed)
        for r in changed:
            self.event(wall, 'taken', bay=bay.name, reservation=r.id, units=r.taken[bay.name],
                       detail=f'{r.taken[bay.name]}/{r.items[bay.name]} {bay.name} of {r.id} left the bay')
        if units > explained:
            self.event(wall, 'removal', bay=bay.name, units=units - explained,
                       detail=f'{units - explained} {bay.name} left the bay that no reservation expected')

    def _count_food_safety(self, dt, wall):
        above = is_above(self.bin_c)
        for name, clock in self.clocks.items():
            if clock.add(dt, above):
                self.event(wall, 'food-safety', bay=name, detail=f'{name} is now {clock.state} '
                           f'({clock.seconds_above / 60:.0f} min above 5 C)')
                self.store.save_clocks(self.clocks, wall)

    # -- what requests see -------------------------------------------------------------------
    def available(self, name):
        bay = self.bays[name]
        if bay.units is None:
            return 0
        return max(0, bay.units - self.ledger.outstanding(name))

    def _refresh_v1(self):
        stock = {n: self.available(n) for n, b in self.bays.items() if b.ok}
        answer = json.dumps(stock).encode()
        if answer != self._v1_json:
            self._v1_json = answer
            if self.on_v1 is not None:     # before the change is acknowledged to anyone
                self.on_v1(answer)

    def v1_stock_json(self):
        """The original project's flat map of name -> units, as bytes (kept ready: it is
        the busiest answer the service gives)."""
        return self._v1_json

    def bay_snapshot(self, name, now=None):
        bay = self.bays[name]
        outstanding = self.ledger.outstanding(name)
        return {**bay.describe(), 'reserved': outstanding, 'available': self.available(name),
                'food_safety': self.clocks[name].describe()}

    def snapshot(self, now):
        with self.lock:
            return {'bays': [self.bay_snapshot(n) for n in sorted(self.bays, key=lambda n: self.bays[n].slot)],
                    'bin': self.bin_status(now)}

    def bin_status(self, now):
        return {'temp_c': self.bin_c, 'ok': self.bin_error is None, 'error': self.bin_error,
                'chiller_on': self.chiller.on, 'limit_c': 5.0,
                'above_5c_minutes': round(self.chiller.warm_for_s(now) / 60.0, 1),
                'alert': 'bin-warm' if self.chiller.alert else None,
                'history': [{'wall': w, 'c': c} for w, c in self.temperatures]}

    def bay(self, name):
        try:
            return self.bays[name]
        except KeyError:
            raise UnknownIngredient(f'there is no {name!r} in the bin', field='name',
                                    allowed=', '.join(sorted(self.bays))) from None

    # -- reservations ---------------------------------------------------------------------------
    def reserve(self, items, wall, *, key=None, fingerprint='', ttl_s=DEFAULT_TTL_S, kind='reservation',
                dispense=False):
        """Reserve every item or none; `dispense`: the machine's dispensers take the units.
        Returns (reservation, replayed)."""
        if not items:
            raise InvalidRequest('a reservation needs at least one item', field='items')
        with self.lock:
            existing = self.ledger.replay(key, fingerprint)
            if existing is not None:
                return existing, True
            for name, quantity in items.items():
                self._check_can_take(name, quantity)
            rid = self.ledger.new_id('p' if kind == 'pick' else 'r')
            r = Reservation(rid, dict(items), wall, wall + ttl_s, kind, key, fingerprint,
                            CONFIRMED if kind == 'pick' else HELD, dispense=dispense)
            self.ledger.add(r)
            with self.store.transaction():
                self.store.save_reservations([r])
                self.store.set_meta(next_reservation=int(rid[1:]) + 1)
            self.event(wall, 'reserved' if kind != 'pick' else 'pick', reservation=rid,
                       detail=', '.join(f'{q} {n}' for n, q in items.items()))
            self._refresh_v1()
            return r, False

    def _check_can_take(self, name, quantity):
        bay = self.bay(name)
        if bay.error is not None:
            raise SensorFault(f'the {name} load cell cannot be read ({bay.error}); stock is unknown',
                              field=name)
        if bay.units is None:
            raise SensorFault(f'the {name} load cell has not given a reading yet', field=name)
        if self.clocks[name].locked:
            raise BayLocked(f'{name} has been above 5 C for more than 4 hours and must be thrown '
                            f'out: empty and restock the bay', field=name)
        if self.clocks[name].check is not None:
            raise BayLocked(f'{name} is held until a person checks it ({self.clocks[name].check}): '
                            f'check the food, then POST /v2/bays/{name}/food-check saying what '
                            f'you confirmed, or replace it (restock)', field=name)
        available = self.available(name)
        if quantity > available:
            raise NotEnoughStock(f'not enough {name}: {available} available, {quantity} asked',
                                 field=name, allowed=f'0-{available}')

    def pick(self, name, quantity, wall):
        """v1 /pick: take `quantity` of one ingredient now."""
        return self.reserve({name: quantity}, wall, ttl_s=PICK_TTL_S, kind='pick')[0]

    def confirm(self, rid, wall):
        with self.lock:
            r = self.ledger.confirm(rid, wall)
            self._closed(r, wall)
            return r

    def cancel(self, rid, wall):
        with self.lock:
            r = self.ledger.cancel(rid, wall)
            self._closed(r, wall)
            return r

    def reservation(self, rid):
        with self.lock:
            return self.ledger.get(rid)

    def _closed(self, r, wall):
        self.store.save_reservations([r])
        returned = {n: q - r.taken.get(n, 0) for n, q in r.items.items() if q > r.taken.get(n, 0)}
        self.event(wall, r.state, reservation=r.id, detail=r.note or r.state,
                   returned=returned or None)
        self._refresh_v1()

    # -- a person's work -----------------------------------------------------------------------
    def restock(self, items, wall, replaced=True):
        """A person refilled bays (in simulation, the simulator's hands do it). Each bay's
        reading restarts at once. Replaced food restarts the food-safety clock of a bay
        that is not locked; a locked bay restarts only once its load cell saw it empty
        (the simulator's hands empty a bay before refilling it when `replaced`)."""
        for name in items:
            self.bay(name)
        for name, units in items.items():
            bay = self.bays[name]
            if self.refill is not None:
                if replaced:
                    self._refill(bay, 0)
                    self._resample(bay, wall)
                self._refill(bay, units)
            self._resample(bay, wall)
            with self.lock:
                if bay.grams is not None:
                    bay.declare(units)
                    self.store.save_bay(self._bay_doc(bay))
                if replaced:
                    self._settle_picks(name, wall)
                clock = self.clocks[name]
                reset = clock.restocked(wall, replaced)
                detail = 'restocked by a person'
                if reset:
                    detail += '; food-safety clock restarted'
                elif clock.locked:
                    detail += ('; still locked: its load cell has not seen it empty since it '
                               'was locked, so old food may be in it')
                self.event(wall, 'restock', bay=name, units=units, detail=detail)
        with self.lock:
            self.store.save_clocks(self.clocks, wall)
            self._refresh_v1()

    def _settle_picks(self, name, wall):
        """v1 picks still waiting for their units when the bay's contents are replaced are
        closed: the original's /restock set the count to what was put in, and a pick made
        before it must not hold back the new food (it would, for up to ten minutes, if
        nobody ran the dispenser). Held v2 reservations keep their claim on the new food."""
        for r in self.ledger.open():
            if r.kind == 'pick' and r.outstanding(name) > 0:
                self.ledger.cancel(r.id, wall, note=f'the {name} bay was restocked before '
                                   f'this pick\'s units left it')
                self._closed(r, wall)

    def food_check(self, name, confirmed, wall):
        """A person checked a held bay's food and says what they confirmed. It clears the
        hold (the clock keeps its time); the words are kept in the journal."""
        self.bay(name)
        confirmed = confirmed.strip()
        if len(confirmed) < 10:
            raise InvalidRequest('say what you checked and confirmed, in at least 10 characters',
                                 field='confirmed', allowed='10-500 characters')
        with self.lock:
            clock = self.clocks[name]
            if clock.check is None:
                raise Conflict(f'{name} is not held for a check (its state is {clock.state}): '
                               f'nothing to confirm', field='name')
            reason = clock.checked()
            self.store.save_clocks(self.clocks, wall)
            self.event(wall, 'food-check', bay=name, detail=f'checked by a person, who confirmed: '
                       f'{confirmed} (held because {reason})')
            self._refresh_v1()
            return {'bay': name, 'confirmed': confirmed, 'was_held_because': reason,
                    'food_safety': clock.describe()}

    def _refill(self, bay, units):
        try:
            self.refill(bay.slot, units, bay.name)
        except ValueError as exc:
            raise InvalidRequest(f'the simulated machine cannot fill the {bay.name} bay: {exc}',
                                 field=f'items.{bay.name}') from None
        except Exception as exc:   # the simulator went away: say so, do not pretend it filled
            raise Unavailable(f'the simulated machine did not fill the {bay.name} bay: {exc}',
                              field=f'items.{bay.name}') from None

    def _resample(self, bay, wall):
        with self.lock:
            bay.resample()      # a new baseline: the rise was recorded by the caller
        for _ in range(3):
            value, error = self._read(self.read_counts, bay.slot)
            with self.lock:
                self._take_bay_reading(wall, bay, value, error)

    def calibrate(self, name, step, wall, known_g=None):
        """'tare' with the bay empty, then 'span' with a known weight on it."""
        bay = self.bay(name)
        samples, failures = [], 0
        while len(samples) < CALIBRATION_SAMPLES:
            value, error = self._read(self.read_counts, bay.slot)
            if error is None:
                samples.append(value)
                continue
            failures += 1      # one late conversion should not void a calibration; many do
            if failures > CALIBRATION_SAMPLES // 4:
                raise SensorFault(f'cannot calibrate {name}: {failures} of its readings failed, '
                                  f'the last with {error}', field=name)
        mean = sum(sorted(samples)[2:-2]) / (len(samples) - 4)
        with self.lock:
            cal = bay.calibration
            if step == 'tare':
                cal.tare_counts = mean
            elif step == 'span':
                if not known_g or known_g <= 0:
                    raise InvalidRequest('span calibration needs known_g, the weight placed on '
                                         'the bay in grams', field='known_g', allowed='> 0')
                per_g = (mean - cal.tare_counts) / known_g
                if per_g <= 0:
                    raise InvalidRequest(f'the bay reads {mean - cal.tare_counts:.0f} counts over '
                                         f'its tare with {known_g} g on it; tare it empty first',
                                         field='known_g')
                cal.counts_per_g = per_g
            else:
                raise InvalidRequest(f'unknown calibration step {step!r}', field='step',
                                     allowed='tare, span')
            self.store.save_bay(self._bay_doc(bay))
            bay.resample()
            self.event(wall, 'calibrated', bay=name, detail=f'{step}: tare {cal.tare_counts:.0f} '
                       f'counts, {cal.counts_per_g:.3f} counts/g')
            return bay.describe()

    @staticmethod
    def _bay_doc(bay):
        return {'name': bay.name, 'slot': bay.slot, 'unit_g': bay.unit_g,
                'tare_counts': bay.calibration.tare_counts,
                'counts_per_g': bay.calibration.counts_per_g,
                'units': bay.units, 'baseline_g': bay.baseline_g}

    def configure_bay(self, name, slot, unit_g, wall, calibration=None):
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
                cal = Calibration(*(calibration or self.default_calibration(slot)))
            bay = Bay(name, slot, unit_g, cal)
            self.bays[name] = bay
            self.clocks.setdefault(name, FoodSafetyClock())
            with self.store.transaction():
                self.store.save_bay(self._bay_doc(bay))
                self.store.save_clocks(self.clocks, wall)
            self.event(wall, 'bay-configured', bay=name, detail=f'slot {slot}, {unit_g} g a unit')
            return bay

    # -- history -------------------------------------------------------------------------------
    def event(self, wall, kind, **fields):
        return self.store.events.append({'wall': wall, 'kind': kind,
                                         **{k: v for k, v in fields.items() if v is not None}})

    def alerts(self, now):
        with self.lock:
            found = []
            if self.chiller.alert:
                found.append({'alert': 'bin-warm', 'detail': f'the bin has been above 5 C for '
                              f'{self.chiller.warm_for_s(now) / 60:.0f} minutes'})
            if self.chiller.not_cooling:
                found.append({'alert': 'chiller-not-cooling', 'detail': self.chiller.not_cooling})
            if self.bin_error:
                found.append({'alert': 'bin-sensor', 'detail': self.bin_error})
            for name, bay in self.bays.items():
                if bay.error:
                    found.append({'alert': 'loadcell', 'bay': name, 'detail': bay.error})
                state = self.clocks[name].state
                if state != 'ok':
                    found.append({'alert': f'food-safety-{state}', 'bay': name,
                                  'detail': f'{name}: {self.clocks[name].seconds_above / 60:.0f} '
                                            f'min above 5 C' + (
                                                f'; held: {self.clocks[name].check}'
                                                if self.clocks[name].check else '')})
            return found

    def stop(self, wall):
        with self.lock:
            self.store.save_clocks(self.clocks, wall)


def _iso(wall):
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec='seconds')


def unmeasurable_downtime(last_seen, wall, synchronised):
    """Why the time since `last_seen` (the last save, wall seconds) cannot be trusted, or
    None. A Pi without a real-time clock restores the last time fake-hwclock saved, so
    after a power cut it starts earlier than our last save, and only NTP puts it right."""
    if last_seen is None:
        return None
    if wall < last_seen:
        return (f'the wall clock at start ({_iso(wall)}) is {(last_seen - wall) / 60:.1f} min '
                f'earlier than the last save ({_iso(last_seen)})')
    if synchronised is False:
        return (f'the wall clock is not synchronised yet, so the {(wall - last_seen) / 60:.1f} '
                f'min since the last save ({_iso(last_seen)}) may be wrong')
    return None
