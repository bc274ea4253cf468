"""chillybin's logic: the bin put together from one object per concern.

    history      BinHistory        every event, in the rotated journal    (binhistory.py)
    reads        PartReads         failed reads by name, reported after 3 (binreads.py)
    air          BinAir            the bin's thermometer and the chiller  (binair.py)
    scales       BayScales         each bay's load cell, count, calibration, slot (bayscales.py)
    food         FoodSafetyWatch   each bay's food-safety clock            (foodwatch.py)
    desk         ReservationDesk   reservations and v1 picks               (bindesk.py)
    restocking   Restocking        a person refilling bays                 (restocking.py)

`build_chillybin` is the one place they are made and wired (as gpiozero's composite
devices hand every child the same pin factory, every part here gets the same lock,
store and history). `ChillyBin.tick(now, wall)` does one round of measuring and deciding;
requests go to the part they concern (`bin.desk.reserve(...)`), each change persisted
before it is acknowledged. Nothing here reads the clock: `now` and `wall` are passed in.
"""
import threading

from .bayscales import BayScales
from .binair import BinAir
from .bindesk import ReservationDesk
from .binhistory import BinHistory
from .binreads import FAILED_AFTER_READS, PartReads
from .chiller import ChillerConfig
from .foodwatch import FoodSafetyWatch
from .restocking import Restocking
from .stock import MEDIAN_WINDOW

PERSIST_CLOCKS_EVERY_S = 60.0

__all__ = ['ChillyBin', 'build_chillybin', 'FAILED_AFTER_READS']


class StockChanged:
    """Tells `callback` (one listener: the v1 answer's cache in api/) that what is
    available may have changed. Called under the bin's lock, before the change is
    acknowledged to anyone."""

    def __init__(self):
        self.callback = None

    def __call__(self):
        if self.callback is not None:
            self.callback()


class ChillyBin:
    """The bin: its parts, and the round that reads and decides across them."""

    def __init__(self, *, store, lock, history, reads, air, scales, food, desk, restocking,
                 changed, now):
        self.store = store
        self.lock = lock
        self.history = history
        self.reads = reads
        self.air = air
        self.scales = scales
        self.food = food
        self.desk = desk
        self.restocking = restocking
        self._changed = changed
        self.last_tick = None
        self._last_save = now

    @property
    def when_stock_changed(self):
        return self._changed.callback

    @when_stock_changed.setter
    def when_stock_changed(self, callback):
        self._changed.callback = callback

    # -- measuring ---------------------------------------------------------------------
    def tick(self, now, wall):
        """One round: read the bin and every bay, drive the chiller, keep the clocks."""
        air = self.air.read()
        bays = self.scales.read()
        with self.lock:
            dt = 0.0 if self.last_tick is None else max(0.0, now - self.last_tick)
            self.last_tick = now
            self.air.take(now, wall, air)
            self.scales.take(wall, bays)
            self.food.count(dt, wall, self.air.above_limit)
            self.desk.expire(wall)
            if now - self._last_save >= PERSIST_CLOCKS_EVERY_S:
                self.food.save(wall)
                self.desk.forget_old(wall)
                self._last_save = now
            self._changed()

    def count_every_bay(self, now_wall, rounds=2 * MEDIAN_WINDOW):
        """Before answering anyone: measure until every readable bay has a count (a few
        rounds; a failing cell is reported as usual). After a crash a unit may have left a
        bay while nobody watched; a cancel answered before the first count would give it
        back while it lies on the tray, and book its fall to nobody."""
        for _ in range(rounds):
            self.tick(*now_wall())
            with self.lock:
                if self.scales.all_counted:
                    return True
        return False

    # -- what requests see -------------------------------------------------------------------
    def available_stock(self):
        """{name: units available} of every readable bay: the original project's answer.
        A bay that cannot be read is left out, never 0."""
        with self.lock:
            return {n: self.desk.available(n) for n, b in self.scales.bays.items() if b.ok}

    def bay_snapshot(self, name):
        with self.lock:
            bay = self.scales.bay(name)
            return {**bay.describe(), 'reserved': self.desk.ledger.outstanding(name),
                    'available': self.desk.available(name),
                    'food_safety': self.food.clocks[name].describe()}

    def snapshot(self, now):
        with self.lock:
            return {'bays': [self.bay_snapshot(n) for n in self.scales.by_slot()],
                    'bin': self.air.status(now)}

    def alerts(self, now):
        with self.lock:
            found = self.air.alerts(now)
            for name, bay in self.scales.bays.items():
                if bay.error:
                    found.append({'alert': 'loadcell', 'bay': name, 'detail': bay.error})
                food = self.food.alert(name)
                if food is not None:
                    found.append(food)
            return found

    def stop(self, wall):
        with self.lock:
            self.food.save(wall)


def build_chillybin(store, *, read_bin_c, read_counts, set_chiller, nominal_calibration, now,
                    wall, slots=None, refill=None, wall_synchronised=None,
                    chiller=ChillerConfig()):
    """The bin, from what it is handed: `read_bin_c()` the air temperature, `read_counts(slot)`
    a load cell, `set_chiller(on)`, `nominal_calibration(slot)` a cell's nominal
    (tare_counts, counts_per_g), `slots` the bay slots that have a load cell (None: any),
    `refill(slot, units, ingredient)` a person's hands in the simulator (None on real
    hardware), `wall_synchronised` whether `wall` is known right at start (True, False, or
    None when that cannot be known). Time nobody watched is counted at once."""
    lock = threading.RLock()
    history = BinHistory(store.events)
    reads = PartReads()
    changed = StockChanged()
    air = BinAir(read_bin_c, set_chiller, reads, history, store.temperatures, lock, chiller)
    scales = BayScales(store, read_counts, reads, history, lock,
                       nominal_calibration=nominal_calibration, slots=slots)
    food = FoodSafetyWatch(store, scales, history, lock)
    desk = ReservationDesk(store, scales, food, history, lock, changed)
    restocking = Restocking(scales, food, desk, history, lock, changed, refill)
    scales.when_risen = food.topped_up
    scales.when_fallen = desk.units_fell
    scales.when_empty = food.mark_empty
    scales.when_added = food.add_bay
    bin_ = ChillyBin(store=store, lock=lock, history=history, reads=reads, air=air,
                     scales=scales, food=food, desk=desk, restocking=restocking,
                     changed=changed, now=now)
    food.count_downtime(store.meta().get('last_seen_wall'), wall, wall_synchronised)
    desk.forget_old(wall)
    return bin_
