"""Food safety for the chilly bin: per bay, the time its food has spent above 5 C.

ANZ's 2-hour/4-hour rule (FACTS.md): under 2 h, fine; 2-4 h, use now; over 4 h, discard.
So each bay keeps the cumulative time above 5 C since it was last restocked from empty.
At 2 h it warns ("use soon"); at 4 h it locks: picks are refused until the bay has been
emptied (its load cell saw it empty) and restocked. A top-up of a bay does not reset its clock: the old food is
still in there. A bin temperature that cannot be read counts as above 5 C, and so does
time the service was not running to watch.
"""
from dataclasses import dataclass

LIMIT_C = 5.0
WARN_S = 2 * 3600.0
LOCK_S = 4 * 3600.0

OK, USE_SOON, DISCARD = 'ok', 'use-soon', 'discard'


@dataclass
class FoodSafetyClock:
    seconds_above: float = 0.0
    locked: bool = False
    emptied: bool = False                   # the bay reached 0 units since its last restock
    restocked_at: float | None = None       # wall time

    @property
    def state(self):
        if self.locked:
            return DISCARD
        return USE_SOON if self.seconds_above >= WARN_S else OK

    def add(self, seconds, above):
        """Count `seconds` of holding; returns True when this crossed into a new state."""
        if not above or seconds <= 0:
            return False
        before = self.state
        self.seconds_above += seconds
        if self.seconds_above >= LOCK_S:
            self.locked = True
        return self.state != before

    def mark_empty(self):
        self.emptied = True

    def restocked(self, wall, replaced):
        """Fresh food went in. The clock starts again only when no old food is left: the
        bay was seen empty since its last restock, or (for a bay not yet locked) a person
        says the restock replaced the contents. A locked bay must be seen empty by its load
        cell: a person's word is exactly what the lock is there not to rely on.
        Returns True when the clock was reset."""
        if not (self.emptied or (replaced and not self.locked)):
            return False
        self.seconds_above = 0.0
        self.locked = False
        self.emptied = False
        self.restocked_at = wall
        return True

    def to_dict(self):
        return {'seconds_above': self.seconds_above, 'locked': self.locked,
                'emptied': self.emptied, 'restocked_at': self.restocked_at}

    @classmethod
    def from_dict(cls, d):
        return cls(d.get('seconds_above', 0.0), d.get('locked', False),
                   d.get('emptied', False), d.get('restocked_at'))

    def describe(self):
        return {'state': self.state, 'minutes_above_5c': round(self.seconds_above / 60.0, 1),
                'locked': self.locked, 'warn_at_minutes': WARN_S / 60, 'lock_at_minutes': LOCK_S / 60}


def is_above(temp_c):
    """None (sensor unreadable) counts as above: we cannot show the food was cold."""
    return temp_c is None or temp_c > LIMIT_C
