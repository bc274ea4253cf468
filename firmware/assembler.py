"""The assembly station: builds a toastie on the tray, one unit at a time.

For each order: reserve everything at chillybin at once (or, with the `pick-v2` flag
off, one v1 pick per ingredient as the original project did); run each bay's dispenser
once per unit, bread first and last; wait until chillybin's load cell shows the unit
left the bay; confirm the reservation; leave the sandwich on the tray for the press.

Every step has a deadline. A unit that does not drop is a jam: the order fails, the
reservation is cancelled so what was not taken goes back, and the fault latches (the
tray holds a part-made sandwich a person must see to). `tick(now, wall)` does one small
step; the network calls it makes are bounded by the stock client's timeouts.

A unit counts as on the tray only once chillybin's load cell has seen it leave its bay.
So a unit in flight (its dispenser switched on, its drop not yet seen) whose load cell
fails is never assumed delivered: the order fails with loadcell-error and the machine
latches with "check the tray", even when the unit did fall. docs/architecture.md,
"Faults in the middle of a drop", lists this boundary for every fault.
"""
import logging
from enum import StrEnum

from .config import checked
from .errors import RefusedError, SensorFault, Unavailable, Unsupported
from .orderbook import DISPENSE_S_PER_UNIT, OrderState, Step
from .safety import ASSEMBLY_INTERRUPTED, DISPENSER_JAM, LOADCELL_ERROR

log = logging.getLogger(__name__)

STOCK_UNREACHABLE = 'chillybin-unreachable'


class Phase(StrEnum):
    """The assembler's step within one toastie (idle: none being built)."""
    IDLE = 'idle'
    RESERVE = 'reserve'          # at chillybin, or the v1 picks
    WEIGH = 'weigh'              # the bay before its dispenser runs
    RUN = 'run'                  # switch the dispenser on
    RUNNING = 'running'
    AWAIT_DROP = 'await-drop'    # until the load cell sees the unit leave
    CONFIRM = 'confirm'


def reservation_key(order):
    """The Idempotency-Key of an order's reservation: the same for every retry of this
    order, and never the same as another jafflr life's order of that number (a wiped state
    directory numbers from t1 again while chillybin remembers keys for a day)."""
    return f'jafflr-{order.id}-{order.created_at:.3f}'


class Assembler:
    SPEC = {
        'run_s': (1.0, 0.1, 10.0),            # one dispenser run; the cam drops at 0.8 s
        'drop_timeout_s': (4.0, 0.5, 30.0),   # after the run, for the load cell to see it
        'poll_s': (0.2, 0.02, 5.0),           # how often to ask chillybin
        'reserve_timeout_s': (10.0, 1.0, 60.0),
        'confirm_timeout_s': (10.0, 1.0, 60.0),
    }

    def __init__(self, book, stock, dispensers, flags, shutdown, events, tray, config=None):
        """`stock`: the chillybin client; `dispensers`: slot -> device with on()/off();
        `events(kind, **fields)` records what happened; `tray`: the Tray it hands the
        assembled toastie to the press on."""
        self.cfg = checked(config or {}, self.SPEC, 'Assembler')
        self.book = book
        self.stock = stock
        self.dispensers = dispensers
        self.flags = flags
        self.shutdown = shutdown
        self.events = events
        self.tray = tray
        self.order = None          # being assembled
        self._starting = False     # taking the next order from the book (see tick)
        self._paused = False
        self.halted = False        # after a fault, until reset
        self.to_cancel = []        # (order, reservation, not before): held, to give back
        self._reset_work()

    def _reset_work(self):
        self.phase = Phase.IDLE
        self.deadline = None
        self.next_poll = 0.0
        self.plan = []             # units still to drop
        self.bays = {}             # ingredient -> {'slot', 'unit_g'}
        self.reservation = None
        self.dropped = {}          # ingredient -> units seen leaving the bay
        self.running = None        # the dispenser slot running now
        self.baseline_g = None

    @property
    def busy(self):
        return self.order is not None or self._starting

    @property
    def paused(self):
        """No new toastie starts (what is on the tray or being built finishes)."""
        return self._paused

    def set_paused(self, paused):
        self._paused = bool(paused)

    def snapshot(self):
        """(being assembled, waiting on the tray), read together under the tray's lock:
        a toastie moves from one to the other, and to the press, only under it."""
        with self.tray.lock:
            return self.order, self.tray.waiting

    # -- the loop --------------------------------------------------------------------------
    def tick(self, now, wall):
        self._cancel_leftovers(now)
        fault = self.shutdown.fault
        if fault is not None and not self.halted:
            self.abandon(fault.reason, fault.detail, wall, now)
        if self.halted:
            self._stop_dispenser()
            return
        if self.order is None:
            # A reservation not yet given back would be booked the next toastie's drops.
            if not self._paused and not self.to_cancel:
                with self.tray.lock:
                    if not self.tray.free_to_build():
                        return
                    self._starting = True   # busy: the press starts no conveyor meanwhile
                try:
                    # The book's and the journal's writes, outside the tray's lock: status
                    # reads take it, on the HTTP loop (api/jafflr/service.py).
                    self._start(now, wall)
                finally:
                    self._starting = False
            return
        try:
            self._STEPS[self.phase](self, now, wall)
        except RefusedError as exc:
            self._fail(exc.kind, exc.message, wall, now)

    def _start(self, now, wall):
        order = self.book.take_next(wall)
        if order is None:
            return
        self.order = order
        self._reset_work()
        self.plan = list(order.units)
        self.phase = Phase.RESERVE
        self.deadline = now + self.cfg.reserve_timeout_s
        self.events('order', order=order.id, detail=f'assembling {", ".join(order.units)}')

    def _reserve(self, now, wall):
        order = self.order
        try:
            self.bays = self.stock.bays()
            missing = [n for n in order.needs() if n not in self.bays]
            if missing:
                raise RefusedError(f'chillybin has no bay for {", ".join(missing)}')
            if self.flags.enabled('pick-v2', order.customer):
                r = self.stock.reserve(order.needs(), key=reservation_key(order))
                self.reservation = r['id']
                self.book.note_stock(order, mode='v2', reservation=r['id'], reserved=order.needs())
            else:
                self._pick_v1(order)
        except Unsupported as exc:
            raise Unsupported(f'could not reserve at chillybin: {exc.message}') from None
        except Unavailable as exc:
            if now < self.deadline:
                return      # retried next tick; the idempotency key makes that safe
            raise Unavailable(f'could not reserve at chillybin: {exc.message}') from None
        self.book.move(order, order.state, Step.DISPENSING, wall,
                       expected_s=len(self.plan) * DISPENSE_S_PER_UNIT)
        self.phase = Phase.WEIGH

    def _pick_v1(self, order):
        """One /pick per ingredient, no rollback: what v2 reservations replace. Whatever was
        picked before a failure stays recorded on the order, so it is accounted for."""
        picked = dict(order.stock.get('picked', {}))
        for name, quantity in order.needs().items():
            if name in picked:
                continue
            try:
                self.stock.pick(name, quantity)
            except RefusedError:
                self.book.note_stock(order, mode='v1', picked=picked)
                raise
            picked[name] = quantity
            self.book.note_stock(order, mode='v1', picked=picked)

    def _weigh(self, now, wall):
        """The bay's weight before the run: a unit counts as dropped only when the bay lost
        it, whatever chillybin booked to the reservation meanwhile (a person emptying a bay
        books a unit to it without anything reaching the tray). A phase of its own: the
        run is timed from the next tick's `now`, not from before this network call. A bay
        whose load cell chillybin cannot read (SensorFault) is not run at all."""
        try:
            self.baseline_g = self.stock.grams(self.plan[0])
        except SensorFault as exc:
            # The drop could not be seen, so the dispenser does not run: no unit leaves the
            # bay unseen. Units already on the tray need a person (latch); none, nothing does.
            self._fail(LOADCELL_ERROR, f'the bay {self.bays[self.plan[0]]["slot"]} dispenser '
                       f'was not run: {exc.message}', wall, now, latch=bool(self.dropped))
            return
        except Unavailable:
            if now < self.deadline:
                return      # asked again next tick
            raise
        self.phase = Phase.RUN

    def _run(self, now, wall):
        name = self.plan[0]
        self.running = self.bays[name]['slot']
        device = self.dispensers[self.running]
        if not self.shutdown.run_unless_latched(device.on):
            return      # a fault latched meanwhile; the next tick abandons the order
        self.deadline = now + self.cfg.run_s
        self.phase = Phase.RUNNING

    def _running(self, now, wall):
        if now < self.deadline:
            return
        self._stop_dispenser()
        self.phase = Phase.AWAIT_DROP
        self.deadline = now + self.cfg.drop_timeout_s
        self.next_poll = now

    def _await_drop(self, now, wall):
        if now < self.next_poll:
            return
        self.next_poll = now + self.cfg.poll_s
        name = self.plan[0]
        try:
            seen = self._dropped(name)
        except SensorFault as exc:
            # The dispenser ran: the unit may lie on the tray or still be in the bay, and
            # with the cell unread nothing here can tell which. Fail safe, for a person.
            self._fail(LOADCELL_ERROR, f'the bay {self.bays[name]["slot"]} dispenser ran but '
                       f'{exc.message}, so no drop could be seen; check the tray', wall, now,
                       latch=True)
            return
        except Unavailable:
            seen = False
        if seen:
            self.dropped[name] = self.dropped.get(name, 0) + 1
            self.plan.pop(0)
            self.book.note_stock(self.order, dropped=dict(self.dropped))
            self.phase = Phase.WEIGH if self.plan else Phase.CONFIRM
            self.deadline = now + self.cfg.confirm_timeout_s
        elif now >= self.deadline:
            self._fail(*self._why_no_drop(name), wall, now, latch=True)

    def _dropped(self, name):
        if self.reservation:
            r = self.stock.reservation(self.reservation)
            if r['taken'].get(name, 0) < self.dropped.get(name, 0) + 1:
                return False
        if self.baseline_g is None:
            return True     # no weight to compare (a v1-only chillybin): trust the count or the dispenser
        grams = self.stock.grams(name)
        return grams is not None and grams <= self.baseline_g - 0.5 * self.bays[name]['unit_g']

    def _why_no_drop(self, name):
        """(reason, detail) when no unit was seen to leave the bay: a jam or an empty bay,
        unless chillybin could not look (its load cell or chillybin itself failed)."""
        slot = self.bays[name]['slot']
        waited = f'{self.cfg.drop_timeout_s:.0f} s'
        try:
            bay = self.stock.bays().get(name, {})
        except Unavailable as exc:
            return (STOCK_UNREACHABLE, f'the bay {slot} dispenser ran but chillybin could not be '
                    f'asked whether any {name} left the bay: {exc.message}')
        if not bay.get('sensor_ok', True):
            return (LOADCELL_ERROR, f'the bay {slot} dispenser ran but chillybin cannot read the '
                    f'{name} load cell, so no drop could be seen within {waited}; check the tray')
        return (DISPENSER_JAM, f'no {name} reached the tray: the bay {slot} dispenser ran but '
                f'chillybin\'s load cell saw nothing leave within {waited} (jammed or empty)')

    def _confirm(self, now, wall):
        if self.reservation:
            try:
                self.stock.confirm(self.reservation)
            except Unavailable:
                if now < self.deadline:
                    return
                raise
        order = self.order
        self.book.note_stock(order, taken=order.needs())
        self.book.move(order, OrderState.ASSEMBLED, Step.WAITING_FOR_PRESS, wall)
        self.events('order', order=order.id, detail='assembled; waiting for the press')
        with self.tray.lock:
            self.tray.put(order)
            self.order = None
        self._reset_work()

    # -- when things go wrong ------------------------------------------------------------------
    def _stop_dispenser(self):
        if self.running is not None:
            self.dispensers[self.running].off()
            self.running = None

    def _fail(self, kind, detail, wall, now, latch=False, in_flight=False):
        order = self.order
        on_tray = dict(self.dropped)
        self._stop_dispenser()
        self.book.note_stock(order, dropped=on_tray, **self._give_back(now, in_flight))
        # The machine latches before the order is failed: whoever is told it failed (a v1
        # customer waiting on it) then finds the machine stopped, not still assembling.
        if latch:
            self.shutdown.trip(kind, detail, now, wall)
        elif on_tray and not self.shutdown.latched:
            # Units lie on the tray and nothing will take them off: the next toastie would
            # be built on top of them. A person clears the tray; the reset indexes it away.
            units = ', '.join(f'{q} {n}' for n, q in on_tray.items())
            self.shutdown.trip(ASSEMBLY_INTERRUPTED, f'{order.id} stopped with {units} on the '
                               f'tray: {detail}', now, wall)
        self.book.fail(order, kind, detail, wall, kind=kind)
        self.events('order-failed', order=order.id, reason=kind, detail=detail)
        with self.tray.lock:
            self.order = None
        self._reset_work()

    def _give_back(self, now=None, in_flight=False):
        """Cancel the reservation: chillybin returns every unit that has not left its bay.
        Returns what to note on the order: `returned`, and `left_bays` (what chillybin saw
        leave the bays: dropped on the tray, or taken out by a person meanwhile).
        If chillybin cannot be reached now, the cancel is retried every tick until it is
        (a held reservation left open would be booked the next toastie's drops).

        A failure while a dispenser ran (`in_flight`) waits as long as a drop is given to
        show before giving back: a unit that fell as the motor stopped is seen by the load
        cell a moment later, and a cancel before that books it to nobody while it lies on
        the tray. Nothing new starts until it is given back."""
        if not self.reservation:
            return {'returned': {}}
        if in_flight and now is not None:
            self.to_cancel.append((self.order, self.reservation, now + self.cfg.drop_timeout_s))
            return {'returned': {'pending': 'giving back once the load cell has settled'}}
        try:
            r = self.stock.cancel(self.reservation)
            return {'returned': {n: q - r['taken'].get(n, 0) for n, q in r['items'].items()},
                    'left_bays': dict(r['taken'])}
        except Unavailable as exc:
            log.warning('could not cancel reservation %s now (%s); trying again',
                        self.reservation, exc)
            self.to_cancel.append((self.order, self.reservation, 0.0))
            return {'returned': {'pending': 'cancelling at chillybin'}}
        except RefusedError as exc:
            log.warning('could not cancel reservation %s: %s', self.reservation, exc)
            return {'returned': {'pending': f'chillybin refused the cancel: {exc.message}'}}

    def reservation_to_cancel(self, order, now=0.0):
        """After a crash: a reservation still held for an order that will not be made is
        given back, but only `drop_timeout_s` after the start. A unit the dispenser let go
        as jafflr died (its motor turns until the heartbeat monostable drops) is seen by
        the load cell a moment later; a cancel before that books its fall to nobody.

        A reservation jafflr asked for but never recorded (it died between chillybin
        making it and the answer arriving) is found by the order's idempotency key. Left
        held, chillybin would book the next toastie's drops to it (the oldest held one),
        and that toastie would fail as jammed with its unit on the tray, booked to nobody."""
        if 'taken' in order.stock:
            return
        rid = order.stock.get('reservation')
        if rid is None and (order.stock.get('mode') == 'v1'
                            or not self.flags.enabled('pick-v2', order.customer)):
            return      # v1 picks are recorded one by one, before the next is asked
        self.to_cancel.append((order, rid, now + self.cfg.drop_timeout_s))

    def _reservation_made_for(self, order):
        """The id of the reservation chillybin made under the order's key, or None. Asking
        again with the same key answers the one it made; if it made none, the one made now
        is given back just the same."""
        try:
            r = self.stock.reserve(order.needs(), key=reservation_key(order))
        except Unsupported:
            return None     # a v1-only chillybin: it never made one
        except Unavailable:
            raise           # asked again next tick
        except RefusedError as exc:     # not enough stock, a locked bay: none was made
            log.info('no reservation to give back for %s: %s', order.id, exc)
            return None
        self.book.note_stock(order, mode='v2', reservation=r['id'])
        return r['id']

    def _cancel_leftovers(self, now):
        for entry in list(self.to_cancel):
            order, rid, not_before = entry
            if now < not_before:
                continue
            try:
                if rid is None:
                    rid = self._reservation_made_for(order)
                r = None if rid is None else self.stock.cancel(rid)
            except Unavailable:
                return      # try again next tick; chillybin expires it anyway
            except RefusedError as exc:
                r = None
                log.warning('reservation %s of %s: %s', rid, order.id, exc)
            self.to_cancel.remove(entry)
            if r is not None:
                self.book.note_stock(order, returned={n: q - r['taken'].get(n, 0)
                                                      for n, q in r['items'].items()},
                                     left_bays=dict(r['taken']))

    def abandon(self, reason, detail, wall, now=None):
        """A latched fault elsewhere: stop, fail the order being built, give back stock.
        Called from the assembler's own thread (see Kitchen) so network calls stay here."""
        if self.order is not None:
            # Stopped mid-run or before the load cell showed the unit (a jam has had that time)
            self._fail(reason, detail, wall, now,
                       in_flight=self.phase in (Phase.RUNNING, Phase.AWAIT_DROP))
        self._stop_dispenser()
        waiting = self.tray.discard()
        if waiting is not None:
            self.book.fail(waiting, reason, f'waiting on the tray when the machine stopped: '
                           f'{detail}', wall)
        self.halted = True

    def resume(self):
        self.halted = False
        self._reset_work()

    # What each phase does on a tick: a phase without a step is an error at import time.
    _STEPS = {Phase.RESERVE: _reserve, Phase.WEIGH: _weigh, Phase.RUN: _run,
              Phase.RUNNING: _running, Phase.AWAIT_DROP: _await_drop, Phase.CONFIRM: _confirm}
    if set(_STEPS) != set(Phase) - {Phase.IDLE}:
        raise TypeError(f'assembler phases without a step: {set(Phase) - {Phase.IDLE} - set(_STEPS)}')

