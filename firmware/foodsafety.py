"""Food safety for the chilly bin: per bay, the time its food has spent above 5 C.

ANZ's 2-hour/4-hour rule (FACTS.md): under 2 h, fine; 2-4 h, use now; over 4 h, discard.
So each bay keeps the cumulative time above 5 C since it was last restocked from empty.
At 2 h it warns ("use soon"), and from then on its clock keeps running whatever the
temperature: food that has been out 2 h must be used now, and chilling it again does not
make it keepable. At 4 h it locks: picks are refused until the bay has been emptied (its
load cell saw it empty) and restocked. A top-up of a bay does not reset its clock: the old
food is still in there. A bin temperature that cannot be read counts as above 5 C, and so
does time the service was not running to watch.

Downtime that cannot be measured (the wall clock at start earlier than the last save, or
known not to be synchronised) is the worst case: nobody can say how long the food was
out, so the bay is held (`needs-check`) until a person has checked it and says what they
confirmed (or its contents are replaced).
"""
from dataclasses import dataclass

LIMIT_C = 5.0
WARN_S = 2 * 3600.0
LOCK_S = 4 * 3600.0

OK, USE_SOON, DISCARD, NEEDS_CHECK = 'ok', 'use-soon', 'discard', 'needs-check'


@dataclass
class FoodSafetyClock:
    seconds_above: float = 0.0
    locked: bool = False
    emptied: bool = False                   # the bay reached 0 units since its last restock
    restocked_at: float | None = None       # wall time
    check: str | None = None                # why a person must check the bay before use

    @property
    def state(self):
        if self.locked:
            return DISCARD
        if self.check is not None:
            return NEEDS_CHECK
        return USE_SOON if self.seconds_above >= WARN_S else OK

    @property
    def refuses(self):
        """Picks from the bay are refused: locked (discard) or held for a person's check."""
        return self.locked or self.check is not None

    def add(self, seconds, above):
        """Count `seconds` of holding; returns True when this crossed into a new state.
        Past WARN_S every second counts, cold or not."""
        if seconds <= 0 or not (above or self.seconds_above >= WARN_S):
            return False
        before = self.state
        self.seconds_above += seconds
        if self.seconds_above >= LOCK_S:
            self.locked = True
        return self.state != before

    def mark_empty(self):
        self.emptied = True

    def hold(self, reason):
        """Nobody can show how long this food was out: refuse it until a person checks."""
        self.check = reason

    def checked(self):
        """A person checked the bay; returns the reason it was held (None: it was not)."""
        reason, self.check = self.check, None
        return reason

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
        self.check = None
        self.restocked_at = wall
        return True

    def to_dict(self):
        return {'seconds_above': self.seconds_above, 'locked': self.locked,
                'emptied': self.emptied, 'restocked_at': self.restocked_at, 'check': self.check}

    @classmethod
    def from_dict(cls, d):
        return cls(d.get('seconds_above', 0.0), d.get('locked', False),
                   d.get('emptied', False), d.get('restocked_at'), d.get('check'))

    def describe(self):
        """`locked`: picks are refused (discard, or held for a check: `needs_check` says why)."""
        return {'state': self.state, 'minutes_above_5c': round(self.seconds_above / 60.0, 1),
                'locked': self.refuses, 'needs_check': self.check,
                'warn_at_minutes': WARN_S / 60, 'lock_at_minutes': LOCK_S / 60}


def is_above(temp_c):
    """None (sensor unreadable) counts as above: we cannot show the food was cold."""
    return temp_c is None or temp_c > LIMIT_C
