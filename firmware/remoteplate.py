"""jafflr's side of the plate in a process of its own (firmware/platehost.py says why and
what the link carries): the PlateController's interface, answered over a link.

`link(request) -> answer` is handed in (api/plate/link.py: JSON lines on a Unix socket);
it raises OSError when the plate process does not answer. `tick(now)` runs on jafflr's
control loop: it attaches (`hello`) or pings, which renews the plate's lease, carries
jafflr's latched faults there and brings the plate's back. The plate's status is kept
from each answer, so the panel, the status page and the press read it without a call.

When the plate process stops answering, jafflr latches `plate-lost` (its heartbeat stops
with it, so the heater and the motors are off in hardware); it tries again every tick and,
attached again, the plate takes jafflr's latched faults. jafflr's own dead-man watches this
loop: stuck, it latches `control-loop-stalled` (jafflr's motors off), and the plate's lease
runs out there too. The link's timeout is shorter than that dead-man (api/plate/timing.py),
so a hung plate is `plate-lost`, and status() never waits on a request in flight.

Requests ignore the `now` they are handed (the interface is the controller's): the plate
keeps time on its own clock, the same simulator or the same machine.
"""
import logging
import threading

from .errors import HeaterFaulted, OutOfRange, ResetRefused
from .heater.control import check_order_budget, refuse_if_faulted
from .safety import CONTROL_LOOP_STALLED, PLATE_LOST

log = logging.getLogger(__name__)

# The press asks the plate to keep its target every station tick; the idle timeout it
# renews is 20 minutes, so once every this many clock seconds is enough on the link.
KEEPALIVE_EVERY_S = 10.0
# Asked only of a plate that jafflr is attached to (say hello first).
COMMANDS = ('set_target', 'standby', 'keep_alive', 'load_hint', 'begin_order', 'end_order')

LOST_STATUS = {'temp_c': None, 'target_c': None, 'duty': 0.0, 'relay_on': False,
               'phase': 'lost', 'at_target': False, 'fault': None}


class RemotePlate:
    """The plate, reached over `link`. Read it as the PlateController: status(),
    at_target(now), set_target, standby, off, keep_alive, load_hint, begin_order,
    end_order; and tick(now) (the link's loop), deadman, reset_with(clear)."""

    def __init__(self, link, shutdown, clock, *, grace_s, on_tick=None):
        """`deadman` (firmware.deadman.DeadMan, calling `on_stall`) is set by the builder."""
        self._link = link
        self.shutdown = shutdown
        self._monotonic = clock.monotonic
        self._on_tick = on_tick
        self._lock = threading.RLock()       # one request at a time on the one connection
        self._attached = False
        self._status = dict(LOST_STATUS)
        self._plate_faults = (0, [])     # (jafflr's shutdown.resets when asked, the faults)
        self._started = None
        # Not attached for this long after the first tick is plate-lost (start-up order).
        self.grace_s = grace_s
        self.lease_s = None
        self.deadman = None
        self._keepalive_at = None
        self._tell = threading.Event()      # a fault latched here: the courier tells the plate
        self._courier = None
        # tell_fault is added to the shutdown's first listeners by the builder, after
        # jafflr's own outputs (instant) are: this one waits on a socket.

    @property
    def attached(self):
        """The plate process answered the last request."""
        return self._attached

    # -- the link's loop -----------------------------------------------------------------
    def tick(self, now):
        if self._started is None:
            self._started = now
            self._courier = threading.Thread(target=self._carry_faults, name='plate-fault-courier',
                                             daemon=True)
            self._courier.start()
        try:
            self._sync('ping' if self._attached else 'hello')
        except HeaterFaulted:
            pass        # said in _ask: lost (tripped once attached, or after the grace)
        if not self._attached and now - self._started >= self.grace_s:
            self._lost(now, 'the plate process did not answer jafflr\'s hello for '
                            f'{now - self._started:.1f} s')
        self._mirror(now)
        if self._on_tick is not None:
            self._on_tick(now)
        self.deadman.refresh(now)

    def on_stall(self):
        """jafflr's dead-man: this loop has not ticked (the plate's lease will run out)."""
        self.shutdown.trip(CONTROL_LOOP_STALLED, f'jafflr\'s plate link did not tick for '
                           f'{self.deadman.timeout_s:g} s', self._monotonic(), by='the dead-man')

    def _sync(self, op):
        """hello (attach) or ping (renew the lease), carrying jafflr's latched faults; the
        answer brings the plate's status and faults back. The faults are read holding the
        link: read before a reset (which holds it too) and sent after, they would latch
        again in the plate what the person just cleared."""
        with self._lock:
            return self._ask({'op': op, 'faults': self.shutdown.records()}, quiet=True)

    def _ask(self, request, quiet=False):
        """The answer to `request`; HeaterFaulted when the plate does not answer."""
        with self._lock:
            if request['op'] in COMMANDS and not self._attached:
                self._sync('hello')
            epoch = self.shutdown.resets        # see _mirror
            try:
                answer = self._link(request)
            except OSError as exc:
                was, self._attached = self._attached, False
                self._status = dict(LOST_STATUS)
                if was:
                    self._lost(self._monotonic(), f'{type(exc).__name__}: {exc}')
                elif not quiet:
                    log.warning('the plate process does not answer: %s', exc)
                raise HeaterFaulted(f'the plate process does not answer ({exc})') from exc
            if request['op'] in ('hello', 'ping'):
                if request['op'] == 'hello':
                    self.lease_s = answer.get('lease_s')
                    log.info('attached to the plate process (lease %s s)', self.lease_s)
                self._attached = True
            self._status = answer.get('plate') or dict(LOST_STATUS)
            self._plate_faults = (epoch, answer.get('faults') or [])
        error = answer.get('error')
        if error == 'out-of-range':
            raise OutOfRange(answer['message'])
        if error is not None:
            raise HeaterFaulted(answer.get('message', error))
        return answer

    def _lost(self, now, detail):
        self.shutdown.trip(PLATE_LOST, detail, now, by='jafflr\'s plate link')

    def _mirror(self, now):
        """The plate's latched faults, latched here too (outside the link's lock: the
        listeners send them back, which the plate ignores, holding them already). Not
        when a reset here came after the answer that brought them: that answer is from
        before the plate's own reset (reset_with clears the plate, then here, holding the
        link), and the faults in it are the ones just cleared."""
        epoch, faults = self._plate_faults
        self.shutdown.adopt(faults, now, 'the plate process', epoch=epoch)

    def tell_fault(self, fault):
        """A first listener of jafflr's shutdown: the plate latches it too, which switches
        the heater off and stops the heartbeat. Told here when the link is free; when a
        request holds it (a slow scrape, the press), by the courier thread as soon as it
        is free: a STOP must not queue behind them. A plate that is not attached takes it
        from the hello that attaches it again."""
        if fault.reason == PLATE_LOST or not self._attached:
            return
        if not self._lock.acquire(blocking=False):
            self._tell.set()
            return
        try:
            if fault.reason not in self.shutdown.reasons():
                return      # cleared already (a reset got the link first)
            self._ask({'op': 'trip', 'fault': fault.record()}, quiet=True)
        except HeaterFaulted:
            pass        # lost: tripped in _ask
        finally:
            self._lock.release()

    def _carry_faults(self):
        while True:
            self._tell.wait()
            self._tell.clear()
            if not self._attached:
                continue
            try:
                self._sync('ping')
            except HeaterFaulted:
                pass        # lost: tripped in _ask

    # -- the controller's interface ------------------------------------------------------
    def status(self):
        """What the plate's last answer said. Never waits: a request in flight holds the
        link, and readers (the status page, the panel) must not queue behind it."""
        return dict(self._status)

    def at_target(self, now):
        return bool(self._status.get('at_target')) and not self.shutdown.latched

    def set_target(self, target_c, now):
        refuse_if_faulted(self.shutdown)
        self._ask({'op': 'set_target', 'target_c': float(target_c)})

    def standby(self, now):
        refuse_if_faulted(self.shutdown)
        self._ask({'op': 'standby'})

    def off(self, now):
        """Always allowed. A plate that does not answer is off by itself (no heartbeat)."""
        try:
            self._ask({'op': 'off'})
        except HeaterFaulted:
            pass

    def keep_alive(self, now):
        if self._keepalive_at is not None and now - self._keepalive_at < KEEPALIVE_EVERY_S:
            return
        self._ask({'op': 'keep_alive'})
        self._keepalive_at = now

    def load_hint(self, now, watts):
        self._ask({'op': 'load_hint', 'watts': float(watts)})

    def begin_order(self, now, max_heater_on_s):
        check_order_budget(max_heater_on_s)     # here too: said before a round trip
        self._ask({'op': 'begin_order', 'max_heater_on_s': float(max_heater_on_s)})

    def end_order(self, now):
        try:
            return self._ask({'op': 'end_order'}).get('on_s')
        except HeaterFaulted:
            return None

    def metrics(self):
        """The plate process's control loop lateness and dead-man count, or None."""
        try:
            return self._ask({'op': 'metrics'}, quiet=True)
        except HeaterFaulted:
            return None

    def reset_with(self, clear):
        """A person's reset, which jafflr has checked (`clear(reasons)` clears its shutdown,
        refusing if it latched a reason not in `reasons` meanwhile: a STOP pressed during
        the reset is not cleared unseen): the plate first, with the reasons jafflr holds;
        refused when it holds another."""
        # A fault still being saved and told is first: the reset waits for it anyway (in
        # clear(), holding the link), and here it waits without holding the link.
        self.shutdown.recorded()
        with self._lock:
            reasons = self.shutdown.reasons()
            if not reasons:
                return clear(reasons)
            try:
                answer = self._ask({'op': 'reset', 'reasons': reasons, 'by': 'jafflr'})
            except HeaterFaulted as exc:
                raise ResetRefused(f'the heater control does not answer, so its fault cannot '
                                   f'be cleared: {exc.args[0]}') from exc
            if not answer.get('cleared'):
                raise ResetRefused(f'{answer.get("message")}: reset again')
            try:
                cleared = clear(reasons)
            except BaseException:
                # jafflr refused after all: the plate latches jafflr's faults again now.
                self._sync('ping')
                raise
            # What the plate holds after its reset is news here, not something just cleared.
            self._plate_faults = (self.shutdown.resets, answer.get('faults') or [])
            return cleared
