"""The reservation desk: the bin's side of every reservation and v1 pick. It checks a
request against the bays (readable, counted), food safety and what is already reserved,
books it in the ledger (firmware/reservations.py), persists it before it is answered,
books each fall of a bay's weight to the reservations expecting it, and records it all.

An `Idempotency-Key` retried answers the first reservation: a retried pick never takes
stock twice.
"""
from .errors import InvalidRequest, NotEnoughStock, SensorFault
from .reservations import CONFIRMED, DEFAULT_TTL_S, HELD, PICK_TTL_S, Ledger, Reservation


class ReservationDesk:
    """`changed()` is called, under the bin's lock, whenever what is available changed."""

    def __init__(self, store, scales, food, history, lock, changed):
        self.store = store
        self.scales = scales
        self.food = food
        self.history = history
        self.lock = lock
        self.changed = changed
        self.ledger = Ledger(store.reservations(), store.meta().get('next_reservation', 1))

    def available(self, name):
        """Measured units less those reserved and not yet taken."""
        bay = self.scales.bays[name]
        if bay.units is None:
            return 0
        return max(0, bay.units - self.ledger.outstanding(name))

    def reserve(self, items, wall, *, key=None, fingerprint='', ttl_s=DEFAULT_TTL_S,
                kind='reservation', dispense=False):
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
            self.history.record(wall, 'reserved' if kind != 'pick' else 'pick', reservation=rid,
                                detail=', '.join(f'{q} {n}' for n, q in items.items()))
            self.changed()
            return r, False

    def _check_can_take(self, name, quantity):
        bay = self.scales.bay(name)
        if bay.error is not None:
            raise SensorFault(f'the {name} load cell cannot be read ({bay.error}); stock is unknown',
                              field=name)
        if bay.units is None:
            raise SensorFault(f'the {name} load cell has not given a reading yet', field=name)
        self.food.check_can_take(name)
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

    def expire(self, wall):
        for r in self.ledger.expire(wall):
            self._closed(r, wall)

    def forget_old(self, wall):
        self.store.forget_reservations(self.ledger.forget_old(wall))

    def _closed(self, r, wall):
        self.store.save_reservations([r])
        returned = {n: q - r.taken.get(n, 0) for n, q in r.items.items() if q > r.taken.get(n, 0)}
        self.history.record(wall, r.state, reservation=r.id, detail=r.note or r.state,
                            returned=returned or None)
        self.changed()

    def units_fell(self, wall, bay, units):
        """`units` left the bay: booked to the reservations expecting them, oldest first;
        the rest is a removal nobody expected."""
        explained, changed = self.ledger.attribute(bay.name, units, wall)
        with self.store.transaction():
            self.store.save_reservations(changed)
        for r in changed:
            self.history.record(wall, 'taken', bay=bay.name, reservation=r.id,
                                units=r.taken[bay.name], detail=f'{r.taken[bay.name]}/'
                                f'{r.items[bay.name]} {bay.name} of {r.id} left the bay')
        if units > explained:
            self.history.record(wall, 'removal', bay=bay.name, units=units - explained,
                                detail=f'{units - explained} {bay.name} left the bay that no '
                                f'reservation expected')

    def settle_picks(self, name, wall):
        """v1 picks still waiting for their units when the bay's contents are replaced are
        closed: the original's /restock set the count to what was put in, and a pick made
        before it must not hold back the new food (it would, for up to ten minutes, if
        nobody ran the dispenser). Held v2 reservations keep their claim on the new food."""
        for r in self.ledger.open():
            if r.kind == 'pick' and r.outstanding(name) > 0:
                self.ledger.cancel(r.id, wall, note=f'the {name} bay was restocked before '
                                   f'this pick\'s units left it')
                self._closed(r, wall)
