"""The plate process's side of the link to jafflr: the heater control and its checks run
in a process of their own (api/plate), so HTTP load in jafflr cannot delay a control tick
and a crash of jafflr cannot stop the checks. jafflr asks for a target, an order's heater
budget and the plate's status over a local socket; the requests and their answers are
plain dicts (`PlateHost.handle`), the socket is api/plate's.

The lease. jafflr attaches with `hello` and renews its lease with every request (it pings
every control period). While attached, the control loop beats the heartbeat, which keeps
the SSR gate and the motor drivers' enable up (hardware/board.py). When jafflr's
connection ends (a clean stop or a crash: the kernel closes the socket either way) the
plate switches off, drops its target and stops beating: nothing heats or moves until a
jafflr attaches again. When jafflr is attached but silent for `lease_s` (stuck), the plate
also latches `control-loop-stalled`: a person looks before anything runs again.

Faults are kept in step both ways, by reason: every request from jafflr carries jafflr's
latched faults, and the plate trips any it lacks (a STOP pressed in jafflr switches the
heater off here); every answer carries the plate's, which jafflr trips in turn. Only a
person's reset clears them, plate first (`reset`, refused when the plate holds a reason
jafflr did not see), then jafflr; jafflr checks who may reset (the reset button) before.

Nothing here reads a clock: `now` is handed in.
"""
import logging
import os
import threading

from .errors import HeaterFaulted, OutOfRange
from .safety import CONTROL_LOOP_STALLED, interlock_faults
from .store.atomic import AtomicJSONStorage

log = logging.getLogger(__name__)

PLATE_FILE = 'plate.json'
BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class GatedHeater:
    """The heater relay as the plate controller drives it, with its heartbeat beaten only
    while `allowed()`: a plate with no jafflr attached keeps its loop and its checks but
    lets the monostable drop (the SSR gate and the motors' enable with it)."""

    def __init__(self, heater, allowed):
        self._heater = heater
        self._allowed = allowed

    def on(self):
        self._heater.on()

    def off(self):
        self._heater.off()

    def beat(self):
        if self._allowed():
            self._heater.beat()

    @property
    def is_on(self):
        return self._heater.is_on

    @property
    def driven(self):
        return self._heater.driven


class LatenessHistogram:
    """How late each control tick started (real seconds), counted in BUCKETS_S: what jafflr
    exports as its control loop's lateness (the loop is here now)."""

    def __init__(self, buckets=BUCKETS_S):
        self.buckets = tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds):
        with self._lock:
            for i, edge in enumerate(self.buckets):
                if seconds <= edge:
                    self._counts[i] += 1
                    break
            else:
                self._counts[-1] += 1
            self._sum += seconds

    def snapshot(self):
        """{'buckets': [[le, cumulative count], ...] (le None: +Inf), 'sum', 'count'}."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out, running = [], 0
        for edge, count in zip((*self.buckets, None), counts):
            running += count
            out.append([edge, running])
        return {'buckets': out, 'sum': total, 'count': running}


class PlateStore:
    """The plate's latched fault, in a file of its own (PLATE_FILE) in jafflr's state
    directory, written atomically (a power cut leaves the old or the new, never half)."""

    def __init__(self, state_dir, fsync=True):
        self._file = AtomicJSONStorage(os.path.join(state_dir, PLATE_FILE), fsync=fsync)

    def saved_fault(self):
        return (self._file.read() or {}).get('fault')

    def save_fault(self, record):
        self._file.write({'fault': record})


class PlateHost:
    """What the plate process answers. `plate` is firmware.build.Plate (controller, chain
    monitor, dead-man) on `shutdown`, the plate's own (saved in its own file)."""

    OPS = ('hello', 'ping', 'status', 'metrics', 'set_target', 'standby', 'off', 'keep_alive',
           'load_hint', 'begin_order', 'end_order', 'trip', 'reset')
    # Asked only of the jafflr attached (and not while the plate process stops): anyone
    # else's (an old jafflr's connection, a status tool) is refused. Off, trip, status
    # and metrics are anyone's.
    COMMANDS = ('set_target', 'standby', 'keep_alive', 'load_hint', 'begin_order', 'end_order',
                'reset')

    def __init__(self, plate, shutdown, *, lease_s, lateness=None):
        if not lease_s > 0:
            raise ValueError(f'lease ({lease_s}) must be above 0 s')
        self.plate = plate
        self.controller = plate.controller
        self.shutdown = shutdown
        self.lease_s = float(lease_s)
        self.lateness = lateness or LatenessHistogram()
        self._lock = threading.Lock()
        self._attached = None         # the connection jafflr attached on, or None
        self._renewed_at = None
        self._closed = False
        self.attaches = 0

    @property
    def attached(self):
        return self._attached is not None

    def beat_allowed(self):
        """The heartbeat (the SSR gate and the motors' enable) beats only while jafflr is
        attached and nothing is latched: a lid opened, the e-stop, STOP or any fault drops
        the motors' enable in hardware within the monostable's hold, whatever jafflr does
        (nothing moves while latched: the stations switch on only through
        run_unless_latched)."""
        return self._attached is not None and not self._closed and not self.shutdown.latched

    def close(self, now):
        """The plate process is stopping: no command is obeyed from now on; heater off."""
        with self._lock:
            self._closed = True
            self._attached = None
        self.controller.off(now)

    # -- the loop's side ---------------------------------------------------------------
    def tick(self, now):
        """Every control tick, before the controller's: jafflr's lease."""
        with self._lock:
            expired = (self._attached is not None and now - self._renewed_at >= self.lease_s)
            age = None if not expired else now - self._renewed_at
            if expired:
                self._attached = None
        if expired:
            self.controller.off(now)
            self.shutdown.trip(CONTROL_LOOP_STALLED,
                               f'jafflr did not renew the plate\'s lease for {age:.1f} s (limit '
                               f'{self.lease_s:g} s): the orders and motors process is stuck',
                               now, by='the plate\'s lease')
        self.plate.tick(now)

    def disconnected(self, conn, now):
        """A connection ended. jafflr's (clean stop or crash): off, no target, no beat."""
        with self._lock:
            mine = conn is not None and conn == self._attached
            if mine:
                self._attached = None
        if mine:
            log.warning('jafflr let go of the plate: heater off, heartbeat stopped')
            self.controller.off(now)

    # -- requests ----------------------------------------------------------------------
    def handle(self, request, now, conn=None):
        """One request (a dict with 'op') -> its answer (a dict). Never raises."""
        op = request.get('op') if isinstance(request, dict) else None
        if op not in self.OPS:
            return {'error': 'unknown-op', 'message': f'unknown op {op!r}: one of '
                                                      f'{", ".join(self.OPS)}'}
        try:
            if op in ('hello', 'ping') and not self._closed:
                self._renew(conn, now, hello=op == 'hello')
            if op in self.COMMANDS and (self._closed or self._attached is None
                                        or conn != self._attached):
                raise HeaterFaulted('the plate process is stopping' if self._closed else
                                    'not attached: say hello first (another jafflr is, or '
                                    'the lease ran out)')
            if 'faults' in request:
                self.shutdown.adopt(request['faults'], now, 'jafflr')
            answer = getattr(self, f'_op_{op}')(request, now) or {}
        except OutOfRange as exc:
            answer = {'error': 'out-of-range', 'message': str(exc)}
        except HeaterFaulted as exc:
            answer = {'error': 'heater-faulted', 'message': str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            answer = {'error': 'invalid', 'message': f'{op}: {type(exc).__name__}: {exc}'}
        answer.update(plate=self.controller.status(), faults=self.shutdown.records(),
                      attached=self.attached)
        return answer

    def _renew(self, conn, now, hello):
        with self._lock:
            if hello or self._attached is None or self._attached == conn:
                if hello and self._attached is not None and self._attached != conn:
                    log.warning('a new jafflr attached; the last one\'s commands are refused')
                if self._attached != conn:
                    self.attaches += 1
                self._attached, self._renewed_at = conn, now

    def _op_hello(self, request, now):
        return {'lease_s': self.lease_s}

    def _op_ping(self, request, now):
        return None

    def _op_status(self, request, now):
        return None

    def _op_metrics(self, request, now):
        return {'lateness': self.lateness.snapshot(),
                'stalls': self.plate.deadman.stalls, 'attaches': self.attaches}

    def _op_set_target(self, request, now):
        self.controller.set_target(float(request['target_c']), now)

    def _op_standby(self, request, now):
        self.controller.standby(now)

    def _op_off(self, request, now):
        self.controller.off(now)

    def _op_keep_alive(self, request, now):
        self.controller.keep_alive(now)

    def _op_load_hint(self, request, now):
        self.controller.load_hint(now, float(request['watts']))

    def _op_begin_order(self, request, now):
        self.controller.begin_order(now, float(request['max_heater_on_s']))

    def _op_end_order(self, request, now):
        return {'on_s': self.controller.end_order(now)}

    def _op_trip(self, request, now):
        self.shutdown.adopt([request['fault']], now, 'jafflr')

    def _op_reset(self, request, now):
        """A person's reset, checked in jafflr: clears the plate's latch if every reason it
        holds is one jafflr cleared (`reasons`), else refuses and says which it did not."""
        reasons = set(request['reasons'])
        by = str(request.get('by', 'jafflr'))
        open_now = interlock_faults(self.plate.machine)
        if open_now:        # cleared now, it would latch again at the next tick
            return {'cleared': False, 'refused': [r for r, _ in open_now],
                    'message': '; '.join(d for _, d in open_now) + ': fix that first'}
        refused = []

        def check(shutdown):
            refused.extend(r for r in shutdown.reasons() if r not in reasons)
            if refused:
                raise HeaterFaulted(f'the plate latched {", ".join(refused)} meanwhile')
        try:
            cleared = self.shutdown.reset(now, by, check=check)
        except HeaterFaulted as exc:
            return {'cleared': False, 'refused': refused, 'message': str(exc)}
        return {'cleared': True, 'reason': None if cleared is None else cleared.reason}
