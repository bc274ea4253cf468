"""Reservations: stock is reserved before it is taken.

A reservation holds several items at once, all or nothing. While it is held, the units
it still expects to leave the bays are `outstanding`, and available = measured minus
outstanding, so two reservations can never take the same unit. When a bay's weight
falls, the fall is attributed to the oldest reservation still expecting units from that
bay; a fall nobody expected is an unexplained removal. A held reservation is confirmed
once every unit has dropped, cancelled (what was not taken goes back), or it expires.

A v1 pick is a reservation of one ingredient that is already "confirmed" by the caller:
it stays outstanding until its units drop or it expires.

Only the machine's dispensers make units fall while a reservation is held, so the
reservation jafflr dispenses for (`dispense`) is booked a fall before any other hold: a
client holding the same ingredient through the public API has no dispenser behind it,
and booking the dispensed unit to it would make jafflr see no drop and fail its toastie
as jammed with the unit already on the tray.
"""
import itertools
from dataclasses import dataclass, field

from .errors import Conflict, NotFound

HELD, CONFIRMED, CANCELLED, EXPIRED, TAKEN = 'held', 'confirmed', 'cancelled', 'expired', 'taken'
OPEN_STATES = (HELD, CONFIRMED)
DEFAULT_TTL_S = 120.0
PICK_TTL_S = 600.0       # a v1 pick waits this long for its units to leave the bay
KEEP_CLOSED_S = 24 * 3600.0   # closed reservations (and their idempotency keys) are kept a day,
KEEP_CLOSED_MAX = 2000        # but no more than this many, so the store stays small


@dataclass
class Reservation:
    id: str
    items: dict                  # ingredient -> units reserved
    created_at: float            # wall time
    expires_at: float            # wall time
    kind: str = 'reservation'    # or 'pick' (v1)
    key: str | None = None       # Idempotency-Key
    fingerprint: str = ''        # what was asked, to spot a key reused for something else
    state: str = HELD
    taken: dict = field(default_factory=dict)
    closed_at: float | None = None
    note: str = ''
    dispense: bool = False       # the machine's dispensers take its units (jafflr's orders)

    def outstanding(self, name):
        if self.state not in OPEN_STATES:
            return 0
        return self.items.get(name, 0) - self.taken.get(name, 0)

    @property
    def complete(self):
        return all(self.taken.get(n, 0) >= q for n, q in self.items.items())

    def to_dict(self):
        return {'id': self.id, 'kind': self.kind, 'state': self.state, 'items': dict(self.items),
                'taken': {n: self.taken.get(n, 0) for n in self.items},
                'created_at': self.created_at, 'expires_at': self.expires_at,
                'closed_at': self.closed_at, 'note': self.note, 'dispense': self.dispense,
                'key': self.key, 'fingerprint': self.fingerprint}

    @classmethod
    def from_dict(cls, d):
        return cls(d['id'], dict(d['items']), d['created_at'], d['expires_at'], d['kind'],
                   d.get('key'), d.get('fingerprint', ''), d['state'], dict(d.get('taken', {})),
                   d.get('closed_at'), d.get('note', ''), d.get('dispense', False))


class Ledger:
    """All reservations and the arithmetic of outstanding units. The caller holds the
    lock and persists what `changed` returns."""

    def __init__(self, reservations=(), next_number=1):
        self.by_id = {r.id: r for r in reservations}
        self.by_key = {r.key: r for r in reservations if r.key}
        # Only open reservations count towards outstanding units: keeping them apart makes
        # a pick cost the same with a day of closed reservations behind it as with none.
        self._open = {r.id: r for r in reservations if r.state in OPEN_STATES}
        self._numbers = itertools.count(next_number)

    def new_id(self, prefix='r'):
        return f'{prefix}{next(self._numbers)}'

    def outstanding(self, name):
        return sum(r.outstanding(name) for r in self._open.values())

    def open(self):
        return list(self._open.values())

    def get(self, rid):
        try:
            return self.by_id[rid]
        except KeyError:
            raise NotFound(f'there is no reservation {rid!r}', field='id') from None

    def replay(self, key, fingerprint):
        """The reservation an Idempotency-Key already made, or None for a new key."""
        if not key:
            return None
        existing = self.by_key.get(key)
        if existing is not None and existing.fingerprint != fingerprint:
            raise Conflict(f'Idempotency-Key {key!r} was already used for a different request '
                           f'(reservation {existing.id}); use a new key', field='Idempotency-Key')
        return existing

    def add(self, reservation):
        self.by_id[reservation.id] = reservation
        if reservation.state in OPEN_STATES:
            self._open[reservation.id] = reservation
        if reservation.key:
            self.by_key[reservation.key] = reservation

    def attribute(self, name, units, wall):
        """`units` fell off bay `name`: give them to the oldest reservations expecting them,
        held ones first. A held reservation is being dispensed right now (it is confirmed or
        cancelled as soon as its toastie is built); a v1 pick stays open for PICK_TTL_S
        whether or not its units ever drop, and one left by a failed order must not take
        the next toastie's drops. Among held ones, those a dispenser serves come first: a
        client's hold has nothing that drops units for it. Returns (units explained,
        reservations changed)."""
        changed = []
        left = units
        for r in sorted(self.open(), key=lambda r: (r.state != HELD, not r.dispense, r.created_at)):
            take = min(left, r.outstanding(name))
            if take <= 0:
                continue
            r.taken[name] = r.taken.get(name, 0) + take
            left -= take
            if r.state == CONFIRMED and r.complete:
                self._close(r, TAKEN, wall)
            changed.append(r)
            if not left:
                break
        return units - left, changed

    def confirm(self, rid, wall):
        r = self.get(rid)
        if r.state == CONFIRMED or r.state == TAKEN:
            return r
        if r.state != HELD:
            raise Conflict(f'reservation {rid} is {r.state}; only a held reservation can be confirmed')
        if not r.complete:
            missing = ', '.join(f'{n} {r.taken.get(n, 0)}/{q}' for n, q in r.items.items()
                                if r.taken.get(n, 0) < q)
            raise Conflict(f'reservation {rid} cannot be confirmed: not every unit has left its '
                           f'bay yet ({missing} dropped); cancel it to give the rest back')
        self._close(r, TAKEN, wall)
        return r

    def cancel(self, rid, wall, note='cancelled'):
        r = self.get(rid)
        if r.state in (CANCELLED, EXPIRED):
            return r
        if r.state == TAKEN:
            raise Conflict(f'reservation {rid} was already taken in full; nothing to give back')
        self._close(r, CANCELLED, wall, note)
        return r

    def expire(self, wall):
        """Close what ran out of time; returns the reservations closed."""
        due = [r for r in self.open() if r.expires_at <= wall]
        for r in due:
            self._close(r, EXPIRED, wall, 'expired before all its units left the bay')
        return due

    def _close(self, r, state, wall, note=''):
        self._open.pop(r.id, None)
        r.state = state
        r.closed_at = wall
        if note:
            r.note = note

    def forget_old(self, wall):
        """Drop closed reservations older than a day, or beyond the newest KEEP_CLOSED_MAX,
        so the store stays small. Their events stay in the journal."""
        closed = sorted((r for r in self.by_id.values() if r.state not in OPEN_STATES),
                        key=lambda r: r.closed_at or 0.0)
        excess = max(0, len(closed) - KEEP_CLOSED_MAX)
        old = closed[:excess] + [r for r in closed[excess:]
                                 if r.closed_at is not None and wall - r.closed_at > KEEP_CLOSED_S]
        for r in old:
            del self.by_id[r.id]
            if r.key and self.by_key.get(r.key) is r:
                del self.by_key[r.key]
        return old
