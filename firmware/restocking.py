"""A person restocking the bin (in simulation, the simulator's hands do it)."""
from .errors import InvalidRequest, Unavailable


class Restocking:
    """`refill(slot, units, ingredient)` is a person's hands in the simulator (None on real
    hardware, where a person fills the bay before saying so)."""

    def __init__(self, scales, food, desk, history, lock, changed, refill=None):
        self.scales = scales
        self.food = food
        self.desk = desk
        self.history = history
        self.lock = lock
        self.changed = changed
        self.refill = refill

    def restock(self, items, wall, replaced=True):
        """Each bay's reading restarts at once, and its count is what the person says.
        Replaced food restarts the food-safety clock of a bay that is not locked; a locked
        bay restarts only once its load cell saw it empty (the simulator's hands empty a
        bay before refilling it when `replaced`)."""
        for name in items:
            self.scales.bay(name)
        for name, units in items.items():
            bay = self.scales.bays[name]
            if self.refill is not None:
                if replaced:
                    self._refill(bay, 0)
                    self.scales.resample(bay, wall)
                self._refill(bay, units)
            self.scales.resample(bay, wall)
            with self.lock:
                if bay.grams is not None:
                    bay.declare(units)
                    self.scales.save(bay)
                if replaced:
                    self.desk.settle_picks(name, wall)
                detail = 'restocked by a person' + self.food.restocked(name, wall, replaced)
                self.history.record(wall, 'restock', bay=name, units=units, detail=detail)
        with self.lock:
            self.food.save(wall)
            self.changed()

    def _refill(self, bay, units):
        try:
            self.refill(bay.slot, units, bay.name)
        except ValueError as exc:
            raise InvalidRequest(f'the simulated machine cannot fill the {bay.name} bay: {exc}',
                                 field=f'items.{bay.name}') from None
        except Exception as exc:   # the simulator went away: say so, do not pretend it filled
            raise Unavailable(f'the simulated machine did not fill the {bay.name} bay: {exc}',
                              field=f'items.{bay.name}') from None
