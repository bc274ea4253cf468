"""The food-safety watch over every bay: one FoodSafetyClock a bay, counted each round
from the bin's air, the time nobody watched counted at start, locks and holds that refuse
picks, a person's restock and check, and the clocks saved."""
from datetime import datetime, timezone

from .errors import BayLocked, Conflict, InvalidRequest
from .foodsafety import OK, FoodSafetyClock


class FoodSafetyWatch:
    def __init__(self, store, scales, history, lock):
        self.store = store
        self.scales = scales
        self.history = history
        self.lock = lock
        self.clocks = store.clocks()
        for name in scales.bays:
            self.clocks.setdefault(name, FoodSafetyClock())

    def save(self, wall):
        """The clocks, and `wall` as the last time the bin was watched."""
        self.store.save_clocks(self.clocks, wall)

    def count_downtime(self, last_seen, wall, synchronised):
        """At start: time nobody watched the bin counts as above 5 C. Time that cannot be
        measured is the worst case: every bay is held until a person checks it."""
        why = unmeasurable_downtime(last_seen, wall, synchronised)
        if why is not None:
            for clock in self.clocks.values():
                clock.hold(f'the time the service was down cannot be measured: {why}')
            self.history.record(wall, 'food-safety', detail=f'every bay held until a person '
                                f'checks it: the downtime cannot be measured ({why})')
        elif last_seen is not None and wall > last_seen:
            for clock in self.clocks.values():
                clock.add(wall - last_seen, True)
            self.history.record(wall, 'food-safety', detail=f'{(wall - last_seen) / 60:.1f} min '
                                f'unwatched (service not running) counted as above 5 C')
        self.save(wall)

    def count(self, dt, wall, above):
        """One round of `dt` seconds, the bin `above` 5 C or not."""
        for name, clock in self.clocks.items():
            if clock.add(dt, above):
                self.history.record(wall, 'food-safety', bay=name, detail=f'{name} is now '
                                    f'{clock.state} ({clock.seconds_above / 60:.0f} min above 5 C)')
                self.save(wall)

    def add_bay(self, name, wall):
        self.clocks.setdefault(name, FoodSafetyClock())
        self.save(wall)

    def topped_up(self, wall, bay, units):
        """The bay's weight rose by `units` (a person's hands)."""
        reset = self.clocks[bay.name].restocked(wall, replaced=False)
        self.history.record(wall, 'restock', bay=bay.name, units=units,
                            detail='refilled from empty: food-safety clock restarted' if reset
                            else 'topped up: the food-safety clock keeps the oldest food\'s time')

    def mark_empty(self, bay):
        self.clocks[bay.name].mark_empty()

    def check_can_take(self, name):
        """Raise BayLocked when the bay's food must not be used."""
        clock = self.clocks[name]
        if clock.locked:
            raise BayLocked(f'{name} has been above 5 C for more than 4 hours and must be thrown '
                            f'out: empty and restock the bay', field=name)
        if clock.check is not None:
            raise BayLocked(f'{name} is held until a person checks it ({clock.check}): '
                            f'check the food, then POST /v2/bays/{name}/food-check saying what '
                            f'you confirmed, or replace it (restock)', field=name)

    def restocked(self, name, wall, replaced):
        """A person restocked the bay; returns what that did to its clock, in words."""
        clock = self.clocks[name]
        if clock.restocked(wall, replaced):
            return '; food-safety clock restarted'
        if clock.locked:
            return ('; still locked: its load cell has not seen it empty since it '
                    'was locked, so old food may be in it')
        return ''

    def food_check(self, name, confirmed, wall):
        """A person checked a held bay's food and says what they confirmed. It clears the
        hold (the clock keeps its time); the words are kept in the journal."""
        self.scales.bay(name)
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
            self.save(wall)
            self.history.record(wall, 'food-check', bay=name, detail=f'checked by a person, who '
                                f'confirmed: {confirmed} (held because {reason})')
            return {'bay': name, 'confirmed': confirmed, 'was_held_because': reason,
                    'food_safety': clock.describe()}

    def alert(self, name):
        """The bay's food-safety alert, or None while it is ok."""
        clock = self.clocks[name]
        if clock.state == OK:
            return None
        return {'alert': f'food-safety-{clock.state}', 'bay': name,
                'detail': f'{name}: {clock.seconds_above / 60:.0f} min above 5 C'
                + (f'; held: {clock.check}' if clock.check else '')}


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
