"""Orders and the queue they wait in.

An order is stored (durably) the moment it is accepted and at every change of state, so
a crash loses none; a retried request with the same Idempotency-Key gets the order it
made the first time. Progress is not stored: it is derived from when the current step
started and how long it is expected to take.
"""
import itertools
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from .errors import Conflict, NotFound, QueueFull

class OrderState(StrEnum):
    """Where a toastie is. A str: stored and answered as its value, so records written
    before this enum load unchanged (and `order.state == 'done'` still holds)."""
    QUEUED = 'queued'
    ASSEMBLING = 'assembling'
    ASSEMBLED = 'assembled'
    TOASTING = 'toasting'
    DONE = 'done'
    FAILED = 'failed'
    CANCELLED = 'cancelled'


QUEUED, ASSEMBLING, ASSEMBLED, TOASTING = (OrderState.QUEUED, OrderState.ASSEMBLING,
                                           OrderState.ASSEMBLED, OrderState.TOASTING)
DONE, FAILED, CANCELLED = OrderState.DONE, OrderState.FAILED, OrderState.CANCELLED
ACTIVE = (QUEUED, ASSEMBLING, ASSEMBLED, TOASTING)
FINISHED = (DONE, FAILED, CANCELLED)


class Step(StrEnum):
    """What is being done to a toastie now, within its state (shown to the customer)."""
    QUEUED = 'queued'
    RESERVING = 'reserving'
    DISPENSING = 'dispensing'
    CONFIRMING = 'confirming'
    WAITING_FOR_PRESS = 'waiting for the press'
    WAITING_FOR_PLATE = 'waiting for the plate'
    LOADING = 'loading'
    CLOSING = 'closing'
    TOASTING = 'toasting'
    OPENING = 'opening'
    EJECTING = 'ejecting'
    DONE = 'done'
    FAILED = 'failed'          # the step of a finished order is its end state
    CANCELLED = 'cancelled'


# Where each step sits in an order's progress bar (fraction done when the step starts).
STEP_PROGRESS = {
    Step.QUEUED: 0.0, Step.RESERVING: 0.02, Step.DISPENSING: 0.05, Step.CONFIRMING: 0.18,
    Step.WAITING_FOR_PRESS: 0.2, Step.WAITING_FOR_PLATE: 0.2, Step.LOADING: 0.22,
    Step.CLOSING: 0.25, Step.TOASTING: 0.3, Step.OPENING: 0.92, Step.EJECTING: 0.96,
    Step.DONE: 1.0,
}

# How long the machine's fixed steps take, in clock seconds: the one place the press
# station's progress and the kitchen's estimates read them from. The press travels in
# 4 s each way and one conveyor index takes 3 s (hardware/sim/physics); dispensing is one
# 1 s run plus the load cell's settling per unit.
STEP_S = {Step.LOADING: 3.0, Step.CLOSING: 4.0, Step.OPENING: 4.0, Step.EJECTING: 3.0}
DISPENSE_S_PER_UNIT = 1.5


log = logging.getLogger(__name__)


@dataclass
class Order:
    id: str
    ingredients: list           # the fillings asked for; the machine adds the bread
    doneness: str
    created_at: float           # wall
    name: str = ''
    customer: str = ''
    source: str = 'v2'
    key: str | None = None
    fingerprint: str = ''
    state: OrderState = QUEUED
    step: Step = Step.QUEUED
    step_started_at: float | None = None   # wall
    step_expected_s: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    failure: dict | None = None            # {'reason', 'detail', 'kind'}
    stock: dict = field(default_factory=dict)   # how stock was taken and what became of it

    @property
    def units(self):
        """What the dispensers drop, in order: a slice of bread, the fillings, bread."""
        return ['bread', *self.ingredients, 'bread']

    def needs(self):
        counts = {}
        for unit in self.units:
            counts[unit] = counts.get(unit, 0) + 1
        return counts

    @property
    def finished(self):
        return self.state in FINISHED

    def progress(self, wall):
        if self.state == DONE:
            return 1.0
        start = STEP_PROGRESS.get(self.step, 0.0)
        following = [v for v in STEP_PROGRESS.values() if v > start]
        end = min(following) if following else 1.0
        if self.step_started_at is None or self.step_expected_s <= 0:
            return start
        within = min(1.0, max(0.0, (wall - self.step_started_at) / self.step_expected_s))
        return round(start + (end - start) * within, 3)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """From its stored (or archived) form; an unknown state or step is an error."""
        return cls(**{**d, 'state': OrderState(d.get('state', QUEUED)),
                      'step': Step(d.get('step', Step.QUEUED))})


class OrderBook:
    """Every order this machine knows of, the queue of those waiting, and waiters.
    Thread-safe; persists through `store` (save_order, archive_order)."""

    def __init__(self, store, orders=(), next_number=1, max_queue=10, keep_finished=100):
        self.store = store
        self.max_queue = max_queue
        self.keep_finished = keep_finished
        self.lock = threading.RLock()
        self.orders = {o.id: o for o in orders}
        self.by_key = {o.key: o for o in orders if o.key}
        self.queue = deque(o.id for o in sorted(orders, key=lambda o: o.created_at)
                           if o.state == QUEUED)
        self._numbers = itertools.count(next_number)
        self._done = {}
        self.outcomes = {}          # 'done', 'cancelled' or the failure reason -> count
        # Counts the notes that stock was taken for an order at chillybin (reserved, or v1
        # picked): the kitchen's admission uses it to tell a stale stock answer.
        self.held_changes = 0

    # -- accepting ---------------------------------------------------------------------
    def replay(self, key, fingerprint):
        if not key:
            return None
        with self.lock:
            existing = self.by_key.get(key) or self.store.order_for_key(key)
        if existing is not None and existing.fingerprint != fingerprint:
            raise Conflict(f'Idempotency-Key {key!r} was already used for a different toastie '
                           f'(order {existing.id}); use a new key', field='Idempotency-Key')
        return existing

    def submit(self, ingredients, doneness, wall, *, name='', customer='', source='v2', key=None,
               fingerprint='', retry_after_s=60):
        """Queue a new order; returns (order, replayed)."""
        with self.lock:
            existing = self.replay(key, fingerprint)
            if existing is not None:
                return existing, True
            if len(self.queue) >= self.max_queue:
                raise QueueFull(f'the queue is full ({self.max_queue} toasties waiting); try again '
                                f'in about {retry_after_s:.0f} s', retry_after_s)
            number = next(self._numbers)
            order = Order(f't{number}', list(ingredients), doneness, wall, name, customer, source,
                          key, fingerprint, step_started_at=wall)
            self.store.save_order(order, next_number=number + 1)
            self.orders[order.id] = order
            if key:
                self.by_key[key] = order
            self.queue.append(order.id)
            return order, False

    # -- reading -------------------------------------------------------------------------
    def get(self, oid):
        with self.lock:
            order = self.orders.get(oid) or self.store.archived_order(oid)
        if order is None:
            raise NotFound(f'there is no toastie {oid!r}', field='id')
        return order

    def queued(self):
        """The queued toasties, oldest first, without the lock: the status reads this on
        the HTTP loop itself (api/jafflr/service.py), and the book's writes hold the lock
        across the disk. The queue's ids are copied in one step (deque.copy, a C call
        that runs no Python code once it reads, so the GIL is not given away meanwhile),
        each looked up after."""
        ids, orders = self.queue.copy(), self.orders
        return [o for o in map(orders.get, ids) if o is not None]

    def active(self):
        with self.lock:
            return [o for o in self.orders.values() if o.state in ACTIVE]

    def recent(self, limit=20):
        with self.lock:
            return sorted(self.orders.values(), key=lambda o: o.created_at, reverse=True)[:limit]

    def position(self, oid):
        with self.lock:
            return list(self.queue).index(oid) if oid in self.queue else None

    # -- moving orders along --------------------------------------------------------------------
    def take_next(self, wall):
        """The oldest queued order, now assembling; None when the queue is empty."""
        with self.lock:
            if not self.queue:
                return None
            order = self.orders[self.queue.popleft()]
            order.started_at = wall
            self.move(order, ASSEMBLING, Step.RESERVING, wall)
            return order

    def move(self, order, state, step, wall, expected_s=0.0, **changes):
        with self.lock:
            order.state = OrderState(state)
            order.step = Step(step)
            order.step_started_at = wall
            order.step_expected_s = expected_s
            for name, value in changes.items():
                setattr(order, name, value)
            self.store.save_order(order)

    def note_stock(self, order, **stock):
        with self.lock:
            order.stock.update(stock)
            if 'reserved' in stock or 'picked' in stock:
                self.held_changes += 1
            self.store.save_order(order)

    def finish(self, order, state, wall, failure=None):
        with self.lock:
            if order.finished:
                return order
            if order.id in self.queue:
                self.queue.remove(order.id)
            order.failure = failure
            order.finished_at = wall
            self.move(order, state, Step(state), wall)
            outcome = str(state) if state != FAILED else (failure or {}).get('reason', str(FAILED))
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            self._prune()
        if state == FAILED:
            reason = (failure or {}).get('reason', FAILED)
            log.warning('toastie %s failed: %s: %s', order.id, reason,
                        (failure or {}).get('detail', ''),
                        extra={'order_id': order.id, 'fault_reason': reason})
        self._done.setdefault(order.id, threading.Event()).set()
        return order

    def fail(self, order, reason, detail, wall, kind='machine'):
        return self.finish(order, FAILED, wall, {'reason': reason, 'detail': detail, 'kind': kind})

    def fail_if_queued(self, oid, reason, detail, wall, kind='unavailable'):
        """Fail an order that has not started (nothing taken yet); None if it has started."""
        with self.lock:
            order = self.orders.get(oid)
            if order is None or order.state != QUEUED:
                return None
            return self.fail(order, reason, detail, wall, kind=kind)

    def cancel(self, oid, wall):
        with self.lock:
            order = self.get(oid)
            if order.state == CANCELLED:
                return order
            if order.state != QUEUED:
                raise Conflict(f'toastie {oid} is {order.state}; only a queued toastie can be '
                               f'cancelled')
            return self.finish(order, CANCELLED, wall, {'reason': 'cancelled', 'kind': 'cancelled',
                                                        'detail': 'cancelled while queued'})

    def _prune(self):
        finished = sorted((o for o in self.orders.values() if o.finished),
                          key=lambda o: o.finished_at or 0)
        for order in finished[:-self.keep_finished] if len(finished) > self.keep_finished else ():
            self.store.archive_order(order)
            del self.orders[order.id]
            if order.key and self.by_key.get(order.key) is order:
                del self.by_key[order.key]

    # -- waiting -------------------------------------------------------------------------
    def done_event(self, oid):
        with self.lock:
            event = self._done.setdefault(oid, threading.Event())
            if self.get(oid).finished:
                event.set()
            return event
