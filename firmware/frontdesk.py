"""The front desk: everything a customer, a person at the panel or a program asks of jafflr,
in one object. The HTTP layer talks only to this (and to what is HTTP's own: the admin
token check, readiness, metrics); the rules live here, not in the request handlers:

- ordering (the Idempotency-Key's fingerprint), following, cancelling and who may cancel
  (the order's secret);
- a v1 customer waits for their toastie; one still queued when the machine stops is failed
  at once, so it is not made later for nobody;
- stop, reset, pause (with an expiry) and resume; flags are saved and recorded as events;
- what a customer sees of a toastie (progress, ready time, place in the queue, why it waits).

It is handed the clock and reads it for the caller; the rules take `now`/`wall` where a
test on a FakeClock needs them to.
"""
import hashlib
import hmac
import json
from enum import StrEnum

from .errors import Unavailable
from .orderbook import DONE, QUEUED
from .safety import HOW_TO_CLEAR, PANEL

# Fields of a stored order that are not the customer's to see.
PRIVATE_FIELDS = ('key', 'fingerprint', 'step_started_at', 'step_expected_s', 'customer', 'source')
MAX_PAUSE_S = 86400           # a pause given an expiry ends within a day at most


class Wait(StrEnum):
    """How waiting for a toastie ended."""
    FINISHED = 'finished'           # done, failed or cancelled: see the order
    RESTARTING = 'restarting'       # jafflr is restarting; the toastie is kept
    STILL_COOKING = 'still-cooking'  # the wait's limit passed first


def fingerprint(ingredients, doneness, name, customer):
    """What an Idempotency-Key is bound to: the same key for another toastie is a conflict."""
    return hashlib.sha256(json.dumps([sorted(ingredients), doneness, name, customer])
                          .encode()).hexdigest()[:16]


class FrontDesk:
    def __init__(self, kitchen, book, store, flags, shutdown, clock, *, chillybin=None,
                 plate_history=None, released=None, order_key=b'', events=None):
        """`kitchen`: firmware.kitchen.Kitchen; `book`: its OrderBook; `store`: jafflr's
        store (flags, events); `chillybin`: the chillybin client (its stock, for the
        panel); `released`: a threading.Event set when waiting customers are let go (a
        restart); `order_key`: the secret the orders' cancel secrets derive from."""
        self.kitchen = kitchen
        self.book = book
        self.store = store
        self.flags = flags
        self.shutdown = shutdown
        self.clock = clock
        self.chillybin = chillybin
        self.history = plate_history
        self.released = released
        self.order_key = order_key or b''
        self.record = events

    def _now_wall(self):
        return self.clock.monotonic(), self.clock.time()

    # -- toasties --------------------------------------------------------------------------
    def order(self, ingredients, doneness, *, name='', customer='', source='v2', key=None):
        """Check and queue a toastie: (order, replayed). RefusedError says why not."""
        return self.kitchen.submit(ingredients, doneness, self.clock.time(), name=name,
                                   customer=customer, source=source, key=key,
                                   fingerprint=fingerprint(ingredients, doneness, name, customer))

    def get(self, oid):
        return self.book.get(oid)

    def recent(self, limit):
        return self.book.recent(limit)

    def cancel(self, oid):
        """Cancel a queued toastie (Conflict once it has started); again answers the same."""
        return self.kitchen.cancel(oid, self.clock.time())

    def order_secret(self, order):
        """The per-order secret that lets whoever ordered cancel it: derived, not stored,
        so the order's stored form (and a rollback to an older release) is unchanged."""
        return hmac.new(self.order_key, f'{order.id}|{order.created_at!r}'.encode(),
                        hashlib.sha256).hexdigest()[:32]

    def secret_matches(self, order, given):
        return bool(given and self.order_key and hmac.compare_digest(
            given.encode(), self.order_secret(order).encode()))

    def describe(self, order, ready=None):
        """What the customer sees of a toastie. `ready`: estimates() when describing many."""
        now, wall = self._now_wall()
        d = order.to_dict()
        for private in PRIVATE_FIELDS:
            d.pop(private, None)
        d['units'] = order.units
        d['progress'] = order.progress(wall)
        ready = ready if ready is not None else self.kitchen.estimates(now, wall)
        d['ready_at'] = order.finished_at if order.finished else ready.get(order.id)
        d['time_left_s'] = None if d['ready_at'] is None else max(0.0, d['ready_at'] - wall)
        d['queue_position'] = self.book.position(order.id)
        d['waiting'] = self.kitchen.why_waiting(order)
        return d

    def describe_recent(self, limit):
        ready = self.kitchen.estimates(*self._now_wall())
        return [self.describe(o, ready) for o in self.book.recent(limit)]

    # -- a v1 customer waiting ---------------------------------------------------------------
    def fail_if_stopped_before_start(self, oid, wall):
        """A v1 customer has no other way to follow their toastie: when the machine stops
        before it was started they are told at once, and it is not made later. True if
        the toastie was failed so."""
        fault = self.shutdown.fault
        return fault is not None and self.book.fail_if_queued(
            oid, fault.reason, f'the machine stopped before it was started, and nothing was '
            f'taken: {fault.detail}', wall) is not None

    def wait(self, oid, limit_s):
        """Wait (at most `limit_s` clock seconds) for a toastie, holding nothing another
        request needs: (Wait, the order as it is now)."""
        clock = self.clock
        done = self.book.done_event(oid)
        deadline = clock.monotonic() + limit_s
        while not done.is_set():
            if self.fail_if_stopped_before_start(oid, clock.time()):
                break
            if self.released is not None and self.released.is_set():
                return Wait.RESTARTING, self.book.get(oid)
            if clock.monotonic() >= deadline:
                return Wait.STILL_COOKING, self.book.get(oid)
            clock.wait(done, 1.0 * clock.speed)      # about a real second
        return Wait.FINISHED, self.book.get(oid)

    def made(self, oid):
        """The toastie as it is now, and whether it was made (a replay's answer)."""
        order = self.book.get(oid)
        return order, order.state == DONE

    # -- the machine ---------------------------------------------------------------------------
    def status(self):
        return self.kitchen.status(*self._now_wall())

    def v1_status(self):
        """v1's `/`: is a toastie in the press, and the latched fault and how to clear it."""
        fault = self.shutdown.fault
        return {'toasting': self.kitchen.toasting, 'fault': fault,
                'to_clear': HOW_TO_CLEAR[self.shutdown.clearance() or PANEL] if fault else None}

    def stop(self, by):
        """Anyone: every output off, latched until reset. Answered once they are off; the
        fault is saved and recorded just after (Kitchen.stop, `record_later`)."""
        return self.kitchen.stop(*self._now_wall(), by, record_later=True)

    def reset(self, by):
        """Clear the latched fault, if it allows (ResetRefused says what to do)."""
        return self.kitchen.reset(*self._now_wall(), by)

    def pause(self, expires_s=None):
        """No new toastie starts; with `expires_s` the pause ends by itself that much later
        (a deploy always gives one, so a deploy that dies cannot leave the queue paused)."""
        self.kitchen.pause(True, None if expires_s is None else self.clock.time() + expires_s)

    def resume(self):
        self.kitchen.pause(False)

    # -- flags, history ----------------------------------------------------------------------
    def describe_flags(self, name=None):
        return self.flags.describe(name)

    def set_flag(self, name, setting):
        """`setting`: {'enabled', 'customers', 'percent'}, each optional. Saved, and
        recorded as an event; returns the flag as it is now."""
        self.flags.set(name, setting.get('enabled'), setting.get('customers'),
                       setting.get('percent'))
        self.store.save_flags(self.flags.stored())
        self.record('flag', detail=f'{name} set to {setting}')
        return self.flags.describe(name)[0]

    def events(self, limit, kind=None):
        return self.store.events.recent(limit, kind)

    def plate_history(self, since=None):
        return {'wall': self.clock.time(), 'period_s': self.history.period_s,
                'samples': self.history.since(since)}

    def chillybin_stock(self):
        """chillybin's v2 stock as the panel shows it; Unavailable when it cannot say."""
        stock = self.chillybin.stock()
        if stock is None:
            raise Unavailable('chillybin did not give its stock')
        return stock
