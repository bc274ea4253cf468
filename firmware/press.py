"""The press station: loads the assembled toastie, toasts it, delivers it.

The conveyor runs through the machine: one index moves the tray's sandwich into the
open press and whatever was in the press out to the chute. So when the next toastie is
waiting on the tray as the press opens, one index delivers the old and loads the new,
and the press is closed again 11 s after it opened (open 4 s, index 3 s, close 4 s).

Because every index moves everything on the belt, the conveyor never runs while the
assembler is building a toastie on the tray (the toasted one waits in the open press a
few seconds), and the assembler starts nothing while the conveyor may run: the press
claims the belt on the Tray (firmware/tray.py) under the tray's lock before it runs the
conveyor. A loaded toastie whose plate temperature differs from the last one's waits in
the open press for the plate before the press closes.

It also decides the plate's target: the profile of the next toastie to go in, standby
between orders (the controller turns the heater off after its standby time).

Every motion has a deadline; a motion that does not finish is a machine fault and
latches through the one shutdown. No network I/O happens here.
"""
import logging
from enum import StrEnum

from .config import checked
from .errors import HeaterFaulted
from .heater.profiles import profile
from .orderbook import STEP_S, OrderState, Step
from .safety import CONVEYOR_JAM, PRESS_JAM

log = logging.getLogger(__name__)


class Phase(StrEnum):
    """What the press station is doing."""
    IDLE = 'idle'                    # open, waiting for a toastie on the tray
    INDEXING = 'indexing'            # the conveyor moves the tray in and the press's out
    LOADED = 'loaded'                # in the open press, waiting for the plate
    CLOSING = 'closing'
    TOASTING = 'toasting'
    OPENING = 'opening'
    DELIVERING = 'delivering'        # toasted, waiting to be indexed out
    CLEARING = 'clearing'            # after a reset or an unclean start: index twice
    CLEARING_OPEN = 'clearing-open'  # ... opening the press first


class PressStation:
    SPEC = {
        'index_timeout_s': (6.0, 1.0, 60.0),    # one conveyor index takes 3 s
        # The photo-eye's mark is centred on the station and 0.3 s of travel wide: the
        # eye sees its leading edge 0.15 s before the tray is at the station, so the
        # conveyor runs on that long. Stopping at the edge leaves every sandwich short
        # of the press (it went in on the next index, a whole toastie late).
        'index_run_on_s': (0.15, 0.0, 1.0),
        'travel_timeout_s': (8.0, 1.0, 60.0),   # the press travels in 4 s
        'heater_margin_s': (120.0, 0.0, 3600.0),  # heater-on budget beyond the toasting time
    }

    def __init__(self, press, conveyor, controller, book, shutdown, events, tray, config=None):
        """`press`: start_closing/start_opening/stop/is_open/is_closed; `conveyor`:
        run/stop/marks_reached (index marks come to, counted on the eye's edge);
        `controller`: the PlateController; `tray`: the Tray the assembler leaves toasties on."""
        self.cfg = checked(config or {}, self.SPEC, 'PressStation')
        self.press = press
        self.conveyor = conveyor
        self.controller = controller
        self.book = book
        self.shutdown = shutdown
        self.events = events
        self.in_press = None        # the order toasting (or toasted, in the open press)
        self.loading = None         # the order being indexed in
        self.phase = Phase.IDLE
        self.deadline = None
        self.marks_at_start = 0
        self.mark_seen_at = None
        self.clears_left = 0
        self.halted = False
        self.toast_ends = None
        self.accepting = True       # False while the service drains: finish, load nothing new
        # The tray's lock is held while deciding to move the belt, and by the assembler while
        # deciding to drop onto it: a toastie started while the conveyor starts would be
        # dropped onto a moving tray, half of it into the press. The belt is claimed on the
        # tray from that decision until it has stopped (indexing, or clearing the machine).
        self.tray = tray

    # -- what the rest of the machine sees -------------------------------------------------------
    @property
    def clearing(self):
        return self.phase in (Phase.CLEARING, Phase.CLEARING_OPEN)

    @property
    def busy(self):
        return self.in_press is not None or self.loading is not None or self.clearing

    def snapshot(self):
        """(in the press, being loaded, when the toasting ends), read together under the
        tray's lock: a toastie moves between them only under it."""
        with self.tray.lock:
            return self.in_press, self.loading, self.toast_ends

    def stop_loading(self):
        """The service drains: finish what is in the press, load nothing new."""
        self.accepting = False

    def next_target(self, tray, assembling, queued):
        """The plate temperature the next toastie needs, or None for standby."""
        for order in (self.in_press, self.loading, tray, assembling, *queued[:1]):
            if order is not None and not order.finished:
                return profile(order.doneness).plate_c
        return None

    # -- the loop ------------------------------------------------------------------------
    def tick(self, now, wall, assembler, queued):
        """One step. `assembler` offers the sandwich on its tray; `queued` lists orders."""
        if self.shutdown.latched:
            self._halt(wall)
            return
        if self.halted:
            return
        self._steer_plate(now, assembler, queued)
        self._STEPS[self.phase](self, now, wall, assembler)

    def _steer_plate(self, now, assembler, queued):
        assembling, waiting = assembler.snapshot()
        target = self.next_target(waiting, assembling, queued)
        try:
            if target is None:
                if self.controller.status()['phase'] in ('heating', 'holding'):
                    self.controller.standby(now)
            elif self.controller.status()['target_c'] != target:
                self.controller.set_target(target, now)
            else:
                self.controller.keep_alive(now)
        except HeaterFaulted:
            pass    # the next tick halts on the latched fault

    def _plate_ready(self, now, order):
        return (self.controller.at_target(now)
                and self.controller.status()['target_c'] == profile(order.doneness).plate_c)

    def _ready_to_load(self, now, tray):
        return (self.accepting and tray is not None and self.press.is_open
                and self._plate_ready(now, tray))

    def _idle(self, now, wall, assembler):
        if not self.press.is_open:
            self._move_press(now, closing=False)    # an idle press waits open
            return
        tray = self.tray.waiting
        if tray is not None and tray.step != Step.WAITING_FOR_PLATE and not self._ready_to_load(now, tray):
            self.book.move(tray, tray.state, Step.WAITING_FOR_PLATE, wall)
        if self._ready_to_load(now, tray):
            self._begin_index(now, wall)

    def _begin_index(self, now, wall, assembler=None):
        """Claims the belt and takes the waiting toastie under the tray's lock (unless the
        assembler is building on the tray); the book's writes and the conveyor follow
        outside it, so a status read never waits on the disk. Returns whether it began."""
        with self.tray.lock:
            if assembler is not None and assembler.busy:
                return False
            self.tray.claim()
            self.loading = self.tray.take()
            self.phase = Phase.INDEXING
        if self.loading is not None:
            self.book.move(self.loading, OrderState.TOASTING, Step.LOADING, wall,
                           expected_s=STEP_S[Step.LOADING])
        if self.in_press is not None:
            self.book.move(self.in_press, OrderState.TOASTING, Step.EJECTING, wall,
                           expected_s=STEP_S[Step.EJECTING])
        self._run_conveyor(now)
        return True

    def _run_conveyor(self, now):
        self.marks_at_start = self.conveyor.marks_reached
        self.mark_seen_at = None
        self.deadline = now + self.cfg.index_timeout_s
        self.shutdown.run_unless_latched(self.conveyor.run)

    def _conveyor_arrived(self, now):
        """True once the conveyor has reached the middle of the next index mark (its
        leading edge, counted by the conveyor however short it was, then
        index_run_on_s more)."""
        if self.conveyor.marks_reached > self.marks_at_start:
            if self.mark_seen_at is None:
                self.mark_seen_at = now
            if now - self.mark_seen_at >= self.cfg.index_run_on_s:
                self.conveyor.stop()
                return True
        if now >= self.deadline:
            self.conveyor.stop()
            self.shutdown.trip(CONVEYOR_JAM, f'the conveyor did not reach its next index mark '
                               f'within {self.cfg.index_timeout_s:.0f} s', now)
        return False

    def _indexing(self, now, wall, assembler):
        if not self._conveyor_arrived(now):
            return
        if self.in_press is not None:
            self._deliver(now, wall)
        with self.tray.lock:
            self.in_press, self.loading = self.loading, None
            self.tray.release()
        if self.in_press is None:
            self.phase = Phase.IDLE
            return
        self.phase = Phase.LOADED
        self._loaded(now, wall, assembler)

    def _loaded(self, now, wall, assembler):
        """In the open press: close once the plate is at this toastie's temperature."""
        if not self._plate_ready(now, self.in_press):
            if self.in_press.step != Step.WAITING_FOR_PLATE:
                self.book.move(self.in_press, OrderState.TOASTING, Step.WAITING_FOR_PLATE, wall)
            return
        self.book.move(self.in_press, OrderState.TOASTING, Step.CLOSING, wall,
                       expected_s=STEP_S[Step.CLOSING])
        self._move_press(now, closing=True)

    def _move_press(self, now, closing):
        self.deadline = now + self.cfg.travel_timeout_s
        self.shutdown.run_unless_latched(self.press.start_closing if closing else self.press.start_opening)
        self.phase = Phase.CLOSING if closing else Phase.OPENING

    def _press_arrived(self, now, closed):
        if (self.press.is_closed if closed else self.press.is_open):
            self.press.stop()
            return True
        if now >= self.deadline:
            self.press.stop()
            self.shutdown.trip(PRESS_JAM, f'the press did not {"close" if closed else "open"} '
                               f'within {self.cfg.travel_timeout_s:.0f} s', now)
        return False

    def _closing(self, now, wall, assembler):
        if not self._press_arrived(now, closed=True):
            return
        p = profile(self.in_press.doneness)
        self.controller.begin_order(now, p.toast_s + self.cfg.heater_margin_s)
        self.toast_ends = now + p.toast_s
        self.book.move(self.in_press, OrderState.TOASTING, Step.TOASTING, wall, expected_s=p.toast_s)
        self.phase = Phase.TOASTING

    def _toasting(self, now, wall, assembler):
        if now < self.toast_ends:
            return
        self.controller.end_order(now)
        self.book.move(self.in_press, OrderState.TOASTING, Step.OPENING, wall,
                       expected_s=STEP_S[Step.OPENING])
        self._move_press(now, closing=False)

    def _opening(self, now, wall, assembler):
        if not self._press_arrived(now, closed=False):
            return
        self.phase = Phase.IDLE if self.in_press is None else Phase.DELIVERING

    def _delivering(self, now, wall, assembler):
        """The toasted one leaves by the next index, which also loads whatever is on the
        tray: so not while a toastie is half built there."""
        self._begin_index(now, wall, assembler)

    def _deliver(self, now, wall):
        order = self.in_press
        with self.tray.lock:
            self.in_press = None
        self.book.finish(order, OrderState.DONE, wall)
        self.events('order', order=order.id, detail='delivered to the chute')

    # -- clearing the machine: after a reset, or a start with unknown contents ---------------------
    def clear(self):
        """Open the press and index twice, so the tray and the press end up empty."""
        with self.tray.lock:
            self.tray.claim()
            self.halted = False
            self.clears_left = 2
            self.phase = Phase.CLEARING
            self.deadline = None

    def _clearing(self, now, wall, assembler):
        if self.deadline is None:
            if not self.press.is_open:
                self._move_press(now, closing=False)
                self.phase = Phase.CLEARING_OPEN
                return
            self._run_conveyor(now)
            return
        if self._conveyor_arrived(now):
            self.clears_left -= 1
            self.deadline = None
            if self.clears_left <= 0:
                self.events('machine', detail='tray and press cleared')
                self.phase = Phase.IDLE
                self.tray.release()

    def _clearing_open(self, now, wall, assembler):
        if self._press_arrived(now, closed=False):
            self.phase = Phase.CLEARING
            self.deadline = None

    def _halt(self, wall):
        """A fault latched: fail what is in the press; the outputs are already off."""
        if self.halted:
            return
        self.halted = True
        fault = self.shutdown.fault
        for order in (self.in_press, self.loading):
            if order is not None and not order.finished:
                self.book.fail(order, fault.reason, f'in the press when the machine stopped: '
                               f'{fault.detail}', wall)
        with self.tray.lock:
            self.in_press = self.loading = None
            self.tray.release()
        self.phase = Phase.IDLE
        self.toast_ends = None
        self.controller.end_order(self.shutdown.fault.at)

    # What each phase does on a tick: a phase without a step is an error at import time.
    _STEPS = {Phase.IDLE: _idle, Phase.INDEXING: _indexing, Phase.LOADED: _loaded,
              Phase.CLOSING: _closing, Phase.TOASTING: _toasting, Phase.OPENING: _opening,
              Phase.DELIVERING: _delivering, Phase.CLEARING: _clearing,
              Phase.CLEARING_OPEN: _clearing_open}
    if set(_STEPS) != set(Phase):
        raise TypeError(f'press phases without a step: {set(Phase) - set(_STEPS)}')
