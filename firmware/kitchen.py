"""The kitchen: orders, the two stations, the plate and the one shutdown, put together.

It checks a toastie before anything is taken (cheese required, known doneness, bays
that exist, enough stock for it after the toasties ahead of it), queues it, reports
the machine's state, and handles stop, reset, pause, the drain before a restart and the
recovery after one. The stations do the work on their own threads (see api/jafflr).

A start that did not follow a finished drain (a crash, a watchdog restart, a power cut)
is a safe start: the fault that was latched is latched again, and `unclean-start`
latches too, so nothing heats or moves until a person has looked (see CLEARED_BY).
"""
import logging
import threading
from collections import namedtuple
from enum import StrEnum

from .errors import (BayLocked, InvalidRequest, NotEnoughStock, ResetRefused, SensorFault,
                     Unavailable)
from .heater.profiles import DONENESS, profile
from .orderbook import ACTIVE, ASSEMBLED, ASSEMBLING, QUEUED, STEP_S, TOASTING, Step
from .safety import AT_MACHINE, FAULT_HELP, HOW_TO_CLEAR, STOPPED, UNCLEAN_START

log = logging.getLogger(__name__)

MAX_FILLINGS = 6
LOAD_S, CLOSE_S, OPEN_S, EJECT_S = (STEP_S[Step.LOADING], STEP_S[Step.CLOSING], STEP_S[Step.OPENING],
                                   STEP_S[Step.EJECTING])
HEAT_RATE_C_S, COOL_RATE_C_S = 0.8, 0.25      # the plate, roughly, for estimates
COLD_PLATE_C = 20.0
# A paused machine still finishes what it holds: the toastie in the press and the one on
# the tray (assembled, or being assembled; a new assembly starts only on an empty tray).
TOASTIES_HELD = 2
# Times an order's stock is asked again when another toastie's stock was taken meanwhile.
ADMISSION_TRIES = 3


class MachineState(StrEnum):
    """What the machine is doing, as `/v2/status` says it (first that applies wins)."""
    FAULTED = 'faulted'
    STOPPING = 'stopping'
    TOASTING = 'toasting'
    ASSEMBLING = 'assembling'
    PREHEATING = 'preheating'
    PAUSED = 'paused'
    AVAILABLE = 'available'


# One consistent reading of the line, taken under the tray's lock (Kitchen._line).
_Line = namedtuple('_Line', 'in_press loading toast_ends waiting assembling busy')


def drain_bound_s(profiles=None):
    """Clock seconds a paused machine may take to empty, at worst: every toastie it holds
    of the longest profile, and the plate heated from cold to the hottest profile. The
    deploy waits this long for `busy: false` before it restarts anything."""
    profiles = list((profiles or DONENESS).values())
    longest = max(p.toast_s for p in profiles)
    hottest = max(p.plate_c for p in profiles)
    cycle = LOAD_S + CLOSE_S + longest + OPEN_S + EJECT_S
    return TOASTIES_HELD * cycle + (hottest - COLD_PLATE_C) / HEAT_RATE_C_S


def check_toastie(ingredients, doneness):
    """The original project's rules, checked before anything is taken."""
    if not ingredients:
        raise InvalidRequest('a toastie needs at least one ingredient (and cheese)', field='i',
                             allowed='ingredient names, e.g. i=cheese&i=vegemite')
    if 'bread' in ingredients:
        raise InvalidRequest('leave out the bread: the machine adds two slices itself',
                             field='i')
    if 'cheese' not in ingredients:
        raise InvalidRequest('a toastie needs cheese', field='i', allowed='cheese plus others')
    if len(ingredients) > MAX_FILLINGS:
        raise InvalidRequest(f'at most {MAX_FILLINGS} fillings fit between the bread, not '
                             f'{len(ingredients)}', field='i', allowed=f'1-{MAX_FILLINGS}')
    if doneness not in DONENESS:
        raise InvalidRequest(f'unknown doneness {doneness!r}', field='doneness',
                             allowed=', '.join(DONENESS))


class Kitchen:
    def __init__(self, book, store, controller, shutdown, assembler, press, tray, stock, events,
                 all_off, reset_button, plate=None):
        self.book = book
        self.store = store
        self.controller = controller
        self.shutdown = shutdown
        self.assembler = assembler
        self.press = press
        self.tray = tray
        self.stock = stock
        self.events = events
        self.all_off = all_off
        self.reset_button = reset_button
        # A reset clears the plate's latch too when the plate runs in its own process
        # (firmware/remoteplate.py); in this one there is one shutdown.
        self._reset_with = plate.reset_with if plate is not None else (lambda clear: clear(None))
        self.draining = False
        # Checking the stock and queueing are one step: two customers at once must not
        # both be promised the last two slices.
        self._taking = threading.Lock()
        meta = store.meta()
        self.assembler.set_paused(bool(meta.get('paused')))
        self.pause_expires = meta.get('pause_expires') if self.assembler.paused else None
        self._resetting = threading.Lock()
        # In the tripping thread: outputs off at once, before the fault is saved; the
        # stations fail their orders on their own next tick (network calls stay on the
        # assembler's thread).
        shutdown.add_listener(lambda fault: self.all_off(), first=True)
        shutdown.add_listener(self._on_fault)

    def _on_fault(self, fault):
        self.events('fault', reason=fault.reason, detail=fault.detail, by=fault.by)

    # -- taking orders -----------------------------------------------------------------------
    def submit(self, ingredients, doneness, wall, **order_fields):
        """Check and queue a toastie; returns (order, replayed).

        Asking chillybin for its stock is a network call (3 s timeout): it is made outside
        the admission lock, so a slow chillybin delays only this customer. Nothing is taken
        at admission (the assembler reserves, under the order's own Idempotency-Key), so
        there is nothing to give back when it is refused. Under the lock the answer is
        used only if no toastie's stock was taken at chillybin meanwhile (the book's
        `held_changes`): else the answer may count as free what that toastie now holds,
        while the toasties ahead no longer count it, and the stock is asked again."""
        check_toastie(ingredients, doneness)
        key, fingerprint = order_fields.get('key'), order_fields.get('fingerprint', '')
        replay = self.book.replay(key, fingerprint)
        if replay is not None:
            return replay, True
        self._check_machine()
        for _ in range(ADMISSION_TRIES):
            held_changes = self.book.held_changes
            bays = self.stock.bays()
            with self._taking:
                # A retry with the same key may have been admitted while this one asked.
                replay = self.book.replay(key, fingerprint)
                if replay is not None:
                    return replay, True
                if self.book.held_changes != held_changes:
                    continue
                self._check_stock(ingredients, bays)
                order, replayed = self.book.submit(ingredients, doneness, wall,
                                                   retry_after_s=self.queue_wait_s(),
                                                   **order_fields)
                break
        else:
            raise Unavailable(f'the stock changed {ADMISSION_TRIES} times while it was being '
                              f'checked for this toastie; try again')
        if not replayed:
            self.events('order', order=order.id, detail=f'queued: {", ".join(order.units)}, '
                        f'{doneness}' + (f' for {order.name}' if order.name else ''))
        return order, replayed

    def _check_machine(self):
        if self.draining:
            raise Unavailable('jafflr is restarting and takes no new toasties for a few seconds; '
                              'try again shortly')
        fault = self.shutdown.fault
        if fault is not None:
            raise Unavailable(f'the machine is stopped ({fault.reason}: {fault.detail}); '
                              f'{FAULT_HELP.get(fault.reason, "a person must reset it")}')

    def _check_stock(self, ingredients, bays):
        """Enough for this toastie after what the toasties ahead of it will take, by
        chillybin's answer `bays`. Called holding the admission lock."""
        needs = {'bread': 2}
        for name in ingredients:
            needs[name] = needs.get(name, 0) + 1
        unknown = [n for n in needs if n not in bays]
        if unknown:
            raise InvalidRequest(f'there is no {", ".join(unknown)} in the machine', field='i',
                                 allowed=', '.join(n for n in sorted(bays) if n != 'bread'))
        ahead = self._not_yet_held()
        for name, count in needs.items():
            bay = bays[name]
            if not bay['sensor_ok']:
                raise SensorFault(f'the {name} bay\'s load cell cannot be read, so its stock is '
                                  f'unknown', field='i')
            if bay['locked']:
                raise BayLocked(f'{name} has been above 5 C too long and must be thrown out '
                                f'and restocked', field='i')
            left = bay['available'] - ahead.get(name, 0)
            if left < count:
                raise NotEnoughStock(f'not enough {name}: {max(0, left)} left after the '
                                     f'toasties ahead, this one needs {count}', field='i')

    def _not_yet_held(self):
        """What the toasties ahead will take that chillybin does not hold for them yet: all
        of a queued one, and of one being assembled whatever it has not reserved or picked
        (it left the queue before its reservation was made)."""
        ahead = {}
        for order in self.book.active():
            if order.state not in (QUEUED, ASSEMBLING):
                continue
            held = order.stock.get('reserved') or order.stock.get('picked') or {}
            for name, count in order.needs().items():
                ahead[name] = ahead.get(name, 0) + max(0, count - held.get(name, 0))
        return ahead

    def cancel(self, oid, wall):
        order = self.book.cancel(oid, wall)
        self.events('order', order=oid, detail='cancelled while queued')
        return order

    # -- a person's buttons ----------------------------------------------------------------------
    def stop(self, now, wall, by, record_later=False):
        """Every output off, latched. `record_later`: answer once they are off (STOP from
        HTTP); the fault is saved and recorded just after (Shutdown.trip)."""
        return self.shutdown.trip(STOPPED, f'stop pressed ({by})', now, wall,
                                  by=f'stop ({by})', record_later=record_later)

    def reset(self, now, wall, by):
        """Clear the latched fault if the fault allows it (CLEARED_BY: a fault that needs a
        person at the machine needs the reset button held since it latched); the machine
        empties its tray and press before new work. ResetRefused says what to do."""
        needs = self.shutdown.clearance()

        def allowed(shutdown, reasons):     # under the shutdown's lock: nothing latches meanwhile
            if reasons is not None:         # what the plate was reset for (remoteplate)
                new = [r for r in shutdown.reasons() if r not in reasons]
                if new:
                    raise ResetRefused(f'{", ".join(new)} latched during the reset: reset again')
            if shutdown.clearance() == AT_MACHINE:
                self._check_reset_button(now)
                self.reset_button.disarm()
        if needs == AT_MACHINE:
            by = f'{by}, after the reset button on the machine'
            self._check_reset_button(now)       # said before the plate is asked
        cleared = self._reset_with(lambda reasons: self.shutdown.reset(
            now, by, check=lambda shutdown: allowed(shutdown, reasons)))
        if cleared is not None:
            self.assembler.resume()
            self.press.clear()
            self.events('reset', reason=cleared.reason, detail=f'reset by {by}')
        return cleared

    def _check_reset_button(self, now):
        """ResetRefused unless the reset button was held since the newest fault that needs
        a person at the machine latched, within the last armed_s."""
        hold = self.reset_button.armed_hold(now)
        if hold is None or hold[0] < self.shutdown.at_machine_since():
            raise ResetRefused(self._refusal(now, None if hold is None else hold[1]))

    def _refusal(self, now, armed):
        b = self.reset_button
        if b.held():
            state = 'the button is held now: keep it down'
        elif armed is not None:
            state = (f'the last hold, {now - armed:.0f} s ago, was before the fault latched '
                     f'{now - self.shutdown.at_machine_since():.0f} s ago')
        else:
            state = 'the button has not been held since the fault latched'
        return (f'{", ".join(self.shutdown.at_machine_reasons())} needs a person at the machine: '
                f'hold the reset button on the machine for {b.hold_s:.0f} s, then reset within '
                f'{b.armed_s / 60:.0f} minutes ({state})')

    def reset_status(self, now):
        """Who may clear what is latched, how, and whether a reset would be accepted now."""
        needs = self.shutdown.clearance()
        button = self.reset_button.describe(now)
        hold = self.reset_button.armed_hold(now)
        since = self.shutdown.at_machine_since()
        return {'cleared_by': needs, 'how_to_clear': HOW_TO_CLEAR.get(needs),
                'allowed': needs is not None and (
                    needs != AT_MACHINE or (hold is not None and hold[0] >= since)),
                'button': button}

    def why_waiting(self, order):
        """Why a queued toastie is not being made now, or None."""
        if order.state != QUEUED:
            return None
        fault = self.shutdown.fault
        if fault is not None:
            how = HOW_TO_CLEAR.get(self.shutdown.clearance(), 'reset it')
            return (f'held: the machine is stopped ({fault.reason}: {fault.detail}); it is '
                    f'kept and made once it is reset ({how})')
        if self.draining:
            return 'held: jafflr is restarting; it is kept and made after the restart'
        if self.assembler.paused:
            return 'held: the queue is paused'
        return None

    def pause(self, paused, expires=None):
        """Pause (no new toastie starts; what the machine holds finishes) or resume.
        `expires` (wall seconds) ends a pause by itself, so a deploy that dies half way
        cannot leave the machine paused for good; it is stored, and honoured after a restart."""
        self.assembler.set_paused(paused)
        self.pause_expires = expires if paused else None
        self.store.set_meta(paused=paused, pause_expires=self.pause_expires)
        until = f' until wall {expires:.0f}' if self.pause_expires is not None else ''
        self.events('queue', detail=f'paused: no new toastie starts{until}' if paused else 'resumed')

    def expire_pause(self, wall):
        """Resume when the pause has expired; True if it did. Called at start and each tick."""
        if not (self.assembler.paused and not self.draining and self.pause_expires is not None
                and wall >= self.pause_expires):
            return False
        expired = self.pause_expires
        self.assembler.set_paused(False)
        self.pause_expires = None
        self.store.set_meta(paused=False, pause_expires=None)
        self.events('queue', detail=f'resumed: the pause expired at wall {expired:.0f} '
                                    f'({wall - expired:.0f} s ago) and nobody resumed it')
        log.warning('the queue pause expired at wall %.0f and nobody resumed it: resumed', expired)
        return True

    # -- restarts --------------------------------------------------------------------------------
    def begin_drain(self):
        """SIGTERM: take no new orders, start no new assembly, load nothing new."""
        self.draining = True
        self.assembler.set_paused(True)
        self.press.stop_loading()

    def drained(self):
        """True when no toastie is being assembled or is in the press."""
        return not self.assembler.busy and not self.press.busy

    def fail_unfinished_press(self, now, wall, waited_s):
        if not self.drained():
            self.shutdown.trip(STOPPED, f'jafflr was stopping and the toastie could not finish '
                               f'within {waited_s:.0f} s', now, wall)

    def finish_drain(self):
        """The last step of a finished drain: the marker that the next start is a clean one.
        It records what is on the tray so that start can carry on with it; with a fault
        latched (a drain that had to stop a toastie half way, or a machine that was
        stopped already) the fault is saved and comes back, and the tray is not kept."""
        self.shutdown.recorded()     # a STOP's fault saved before the marker that follows it
        tray = None if self.shutdown.latched else self.tray.waiting
        self.store.set_meta(clean_stop={'tray': tray.id if tray else None})

    def recover(self, now, wall):
        """At start, before any output may switch on. The fault latched before the restart
        is latched again. A start without the clean-stop marker (a crash, a watchdog, a
        power cut) latches `unclean-start`, saying what was happening. Orders that were in
        the machine: after a clean drain the tray's toastie carries on; otherwise each is
        failed with the reason, its stock noted, and the machine is cleared. Queued
        orders are kept."""
        self.expire_pause(wall)
        meta = self.store.meta()
        kept = self.shutdown.restore(meta.get('fault'), now)
        first_start = 'clean_stop' not in meta          # a new state dir: nothing ran here
        clean = meta.get('clean_stop')
        self.store.set_meta(clean_stop=None)    # only the next finished drain writes it again
        doing = self._what_was_happening()
        cleared = False
        for order in self.book.active():
            if order.state == QUEUED:
                continue
            if order.state == ASSEMBLED and (clean or {}).get('tray') == order.id:
                self.tray.put(order)
                continue
            where = {ASSEMBLING: 'being assembled', ASSEMBLED: 'on the tray',
                     TOASTING: 'in the press'}.get(order.state, order.state)
            self.book.fail(order, 'restarted', f'jafflr restarted while the toastie was {where}; '
                           f'it was not finished (its ingredients: {order.stock or "none taken"})',
                           wall)
            self.assembler.reservation_to_cancel(order, now)
            cleared = True
        if kept is not None:
            self.events('fault', reason=kept.reason, detail=f'kept from before the restart: '
                        f'{kept.detail}', by=kept.by)
        if clean is None and not first_start:
            self.shutdown.trip(UNCLEAN_START, f'needs attention: restarted while {doing}, '
                               f'without a finished drain (a crash, a watchdog restart or a '
                               f'power cut)', now, wall, by='the start-up check')
        # Clearing moves the press and the conveyor: after a crash it waits behind the
        # unclean-start latch; on the very first start (a new state directory) nothing
        # moves until the first toastie asks for it.
        if cleared or (not clean and not first_start):
            self.press.clear()

    def _what_was_happening(self):
        active = {o.state: o for o in self.book.active()}
        for state, text in ((TOASTING, 'a toastie was in the press'),
                            (ASSEMBLED, 'a toastie was on the tray'),
                            (ASSEMBLING, 'a toastie was being assembled')):
            if state in active:
                return f'{text} ({active[state].id})'
        queued = len(self.book.queued())
        return f'idle with {queued} toastie{"s" if queued != 1 else ""} queued' if queued \
            else 'idle'

    # -- what the machine is doing -----------------------------------------------------------------
    def _line(self):
        """Where each toastie in the machine is, read in one go under the tray's lock."""
        with self.tray.lock:
            in_press, loading, toast_ends = self.press.snapshot()
            assembling, waiting = self.assembler.snapshot()
            # Busy while the machine holds any toastie: being assembled, waiting on the
            # tray, or in the press (a deploy waits for busy: false before a restart).
            busy = self.assembler.busy or waiting is not None or self.press.busy
            return _Line(in_press, loading, toast_ends, waiting, assembling, busy)

    def state(self, now, line=None):
        line = line or self._line()
        if self.shutdown.latched:
            return MachineState.FAULTED
        if self.draining:
            return MachineState.STOPPING
        if line.in_press is not None or line.loading is not None:
            return MachineState.TOASTING
        if line.assembling is not None:
            return MachineState.ASSEMBLING
        plate = self.controller.status()
        if line.waiting is not None or (plate['target_c'] and not plate['at_target']
                                        and plate['phase'] == 'heating'):
            return MachineState.PREHEATING
        return MachineState.PAUSED if self.assembler.paused else MachineState.AVAILABLE

    @property
    def toasting(self):
        """A toastie is in the press (v1's `toasting: true`)."""
        return self._line().in_press is not None

    @property
    def busy(self):
        return self._line().busy

    def queue_wait_s(self):
        """Roughly how long until the queue has room again: one toastie's cycle."""
        queued = self.book.queued()
        doneness = queued[0].doneness if queued else 'medium'
        return profile(doneness).toast_s + LOAD_S + CLOSE_S + OPEN_S

    def estimates(self, now, wall):
        """Estimated ready time (wall) of each active order, in the order they will go."""
        plate = self.controller.status()
        temp = plate['temp_c'] or 20.0
        free_at = wall
        line = self._line()
        in_press = line.in_press
        if in_press is not None and line.toast_ends is not None:
            free_at = wall + max(0.0, line.toast_ends - now) + OPEN_S
        ready = {}
        if in_press is not None:
            ready[in_press.id] = free_at + EJECT_S
        ahead = [o for o in (line.loading, line.waiting, line.assembling) if o]
        for order in ahead + self.book.queued():
            p = profile(order.doneness)
            gap = p.plate_c - temp
            preheat = gap / HEAT_RATE_C_S if gap > 3 else (-gap / COOL_RATE_C_S if gap < -3 else 0)
            start = max(free_at, wall + preheat)
            free_at = start + LOAD_S + CLOSE_S + p.toast_s + OPEN_S
            ready[order.id] = free_at + EJECT_S
            temp = p.plate_c
        return ready

    def status(self, now, wall):
        plate = self.controller.status()
        fault = self.shutdown.fault
        queued = self.book.queued()
        line = self._line()
        return {
            'state': self.state(now, line),
            'busy': line.busy,
            'paused': self.assembler.paused,
            'pause_expires': self.pause_expires,
            'plate': plate,
            'fault': fault.as_dict() if fault else None,
            'later_faults': [f.reason for f in self.shutdown.later],
            'reset': self.reset_status(now),
            'queue': {'length': len(queued), 'max': self.book.max_queue,
                      'orders': [o.id for o in queued]},
            'press': line.in_press.id if line.in_press else None,
            'tray': line.waiting.id if line.waiting else None,
            'assembling': line.assembling.id if line.assembling else None,
        }

    def active_orders(self):
        return [o for o in self.book.active() if o.state in ACTIVE]
