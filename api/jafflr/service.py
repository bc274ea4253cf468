"""jafflr put together: the press's parts, the link to the plate process (the heater
control and its safety checks run in a process of their own: api/plate), the two stations
and their threads, the store, the chillybin client, the HTTP app and server.

Every way out leaves the heater off: a normal stop and SIGTERM/SIGINT drain and switch
every output off; an unhandled exception in any thread trips the shutdown (outputs
off); exit runs all_off once more; SIGKILL and hangs are caught outside the program by
the heartbeat monostable (1 s) and by systemd's watchdog and ExecStopPost.
"""
import atexit
import logging
import os
import threading
import time

from hardware.board import BOARD
from hardware.platform import open_platform
from firmware.build import Jafflr
from firmware.frontdesk import FrontDesk
from firmware.heater.history import PlateHistory
from firmware.jafflrstore import DB_NAME, OrderStore
from firmware.platehost import BUCKETS_S

from ..common.health import Readiness, storage_writable
from ..common.loop import PeriodicLoop
from ..common.metrics import ServiceMetrics
from ..common.sdnotify import Notifier
from ..common.serve import HttpService, bind_socket, inherited_sockets
from ..common.settings import admin_token, load_settings, secret_key
from ..common.adminauth import AdminAuth
from ..common.web import Edge, HostNames
from ..plate.link import LinkClient
from ..plate.service import socket_path
from ..plate.timing import CONTROL_PERIOD_S, deadman_seconds, link_timeout_s
from .app import V1_SUCCESSORS, build_app
from .collector import JafflrCollector
from .panel_routes import panel_page
from .chillybin_client import ChillybinClient
from .stopping import DRAIN_BOUND_S, REQUEST_DRAIN_S

log = logging.getLogger('jafflr')

STATION_PERIOD_S = 0.05
# Answered by threads of their own that ordinary requests never take (serve.LaneDispatcher):
# STOP first, then the machine's status and the panel's page and files.
PRIORITY_PATHS = {('POST', '/v2/stop'): 0, ('POST', '/stop'): 0, ('GET', '/v2/status'): 1,
                  ('GET', '/status'): 1, ('GET', '/'): 1, ('GET', '/panel/'): 1}


def answered_inline(request):
    """STOP and `GET /v2/status` are answered on waitress's loop thread as soon as they are
    read, STOP's first, not handed to a thread and back (serve.HttpService(inline=)): on a
    Pi's CPU budget each hand-off waits behind every runnable thread, and a STOP waited
    for the loop behind them. Neither waits on the disk (a STOP on a latched machine is
    saved by the recorder thread; the order book's queue is read without the lock its
    writes hold; the assembler writes outside the tray's lock) or on a socket that can
    hang, with one bound on purpose: a STOP tells the plate process before it answers
    (the heater is its output; the answer says the outputs are off), within the link's
    timeout (at most 1 s, api/plate/timing.py)."""
    return PRIORITY_PATHS.get((request.command, request.path)) == 0 or \
        (request.command, request.path) == ('GET', '/v2/status')


HISTORY_PERIOD_S = 1.0      # the panel's plate chart: one sample a second


class JafflrService:
    def __init__(self, settings, platform, *, sockets, chillybin_url, env=os.environ, threads=None):
        self.settings = settings
        self.version = settings.version
        self.platform = platform
        self.clock = clock = platform.clock
        self.debug_hooks = env.get('JAFFLR_DEBUG_HOOKS') == '1'
        self.notifier = Notifier(env)
        self.released = threading.Event()      # v1 waiters stop waiting (restart)
        self._stalled = threading.Event()      # debug hook: the control loop hangs ...
        self._unstall = threading.Event()      # ... until this is set (never, in practice)
        self._raise_in = set()                 # debug hook: stations whose next tick raises
        self._last_watchdog = 0.0
        self.machine = machine = platform.machine('jafflr')
        self.store = OrderStore(settings.state_dir, now_wall=clock.time())
        self.stock = ChillybinClient(chillybin_url, {b.default_ingredient: b.index for b in BOARD.bays
                                                     if b.default_ingredient},
                                     {n: i.unit_g for n, i in BOARD.ingredients.items()})
        self.deadman_s = deadman_seconds(env, clock)
        # The heater control runs in the plate process; jafflr reaches it on a local socket.
        self.plate_link = LinkClient(socket_path(env, settings.state_dir),
                                     link_timeout_s(self.deadman_s, clock))
        # Every part of the machine's logic and its safety wiring: firmware/build.py, the
        # one builder the in-process machine and the bench use too.
        self.jafflr = parts = Jafflr(machine, platform.sensors('jafflr'), clock, self.store,
                                     self.stock, env=env, deadman_s=self.deadman_s,
                                     on_control_tick=self._on_control_tick,
                                     plate_link=self.plate_link)
        self.shutdown, self.reset_button, self.flags = parts.shutdown, parts.reset_button, parts.flags
        self.controller, self.deadman, self.book = parts.controller, parts.deadman, parts.book
        self.assembler, self.press, self.kitchen = parts.assembler, parts.press, parts.kitchen
        self.events = parts.events
        self.metrics = ServiceMetrics('jafflr', settings.version)
        # jafflr's own loop: each tick renews the plate's lease and brings its status back
        # (the plate's control loop lateness is exported from the plate: collector.py).
        lateness = self.metrics.histogram(
            'plate_link_lateness_seconds', 'How late each tick of the link to the plate '
            'process started (real seconds)', buckets=BUCKETS_S)
        self.control_loop = PeriodicLoop('plate-link', clock, CONTROL_PERIOD_S, parts.control_tick,
                                         observe=lateness.observe)
        self.press_loop = PeriodicLoop('press', clock, STATION_PERIOD_S, self._press_tick,
                                       on_error=self.jafflr.station_failed)
        self.assembler_loop = PeriodicLoop('assembler', clock, STATION_PERIOD_S,
                                           self._assembler_tick, on_error=self.jafflr.station_failed)
        self.plate_history = PlateHistory({'period_s': HISTORY_PERIOD_S})
        self.history_loop = PeriodicLoop('plate-history', clock, HISTORY_PERIOD_S,
                                         self._record_plate)
        self.metrics.registry.register(JafflrCollector(self))
        self.readiness = self._readiness()
        self.auth = AdminAuth.from_file(settings.token_file, admin_token)
        self.order_key = secret_key(os.path.join(settings.state_dir, 'order-key'))
        threads = threads or int(env.get('JAFFLR_THREADS', 16))
        # v1 customers waiting for their toastie may hold at most half the ordinary
        # threads; STOP, status and the panel have reserved threads besides (serve.py).
        self.v1_waiter_limit = max(1, threads // 2)
        # What the HTTP layer talks to for every domain operation.
        self.desk = FrontDesk(self.kitchen, self.book, self.store, self.flags, self.shutdown, clock,
                              chillybin=self.stock, plate_history=self.plate_history,
                              released=self.released, order_key=self.order_key,
                              events=self.events)
        self.http = HttpService('jafflr', None, sockets, before_exit=[self._drain],
                                threads=threads, priority_paths=PRIORITY_PATHS,
                                notifier=self.notifier, drain_timeout_s=REQUEST_DRAIN_S,
                                inline=answered_inline)
        app = build_app(self.desk, version=self.version, auth=self.auth, readiness=self.readiness,
                        metrics=self.metrics, chillybin=self.stock,
                        v1_waiter_limit=self.v1_waiter_limit,
                        debug=self if self.debug_hooks else None, panel=panel_page)
        self.http.app = Edge(app,
                             hostnames=HostNames(settings.hostnames),
                             state_changing_gets={'/toastie'}, v1_successors=V1_SUCCESSORS,
                             metrics=self.metrics, draining=self.http.draining)

    # -- safety wiring (the rest is firmware/build.py) ------------------------------------------
    def _on_control_tick(self, now):
        """Each control tick, before the dead-man is refreshed: systemd's watchdog."""
        if self._stalled.is_set():
            self._unstall.wait()      # a test hook: the control loop hangs here, for real
        real = time.monotonic()
        if self.notifier.watchdog_s and real - self._last_watchdog >= self.notifier.watchdog_s / 4:
            self._last_watchdog = real
            self.notifier.watchdog()

    def stall_control_loop(self):
        self._stalled.set()

    def raise_in(self, where):
        """Debug hook: an unhandled exception in a station's next tick ('press' or
        'assembler'), or in a thread of its own ('thread', which threading.excepthook
        catches)."""
        if where == 'thread':
            threading.Thread(target=self._raise, args=(where,), name='debug-raise',
                             daemon=True).start()
        else:
            self._raise_in.add(where)

    @staticmethod
    def _raise(where):
        raise RuntimeError(f'raised in the {where} by the debug hook (POST /v2/debug/raise)')

    def _record_plate(self, now):
        plate = self.controller.status()
        self.plate_history.sample(now, self.clock.time(), plate['temp_c'], plate['target_c'])

    def _press_tick(self, now):
        if 'press' in self._raise_in:
            self._raise_in.discard('press')
            self._raise('press station')
        self.jafflr.press_tick(now, self.clock.time())

    def _assembler_tick(self, now):
        if 'assembler' in self._raise_in:
            self._raise_in.discard('assembler')
            self._raise('assembler station')
        self.jafflr.assembler_tick(now, self.clock.time())

    # -- what is reported ---------------------------------------------------------------------
    def _readiness(self):
        r = Readiness()
        r.add('storage', storage_writable(os.path.join(self.settings.state_dir, DB_NAME)))
        r.add('migrations', lambda: (True, f'schema {len(self.store.migrations)}'))
        r.add('control-loop', self._control_loop_check)
        r.add('plate', lambda: (self.jafflr.plate.attached,
                                f'the plate process {"answers" if self.jafflr.plate.attached else "does not answer"} '
                                f'on {self.plate_link.path}'))
        r.add('plate-sensor', lambda: (self.controller.status()['temp_c'] is not None,
                                       f'{self.controller.status()["temp_c"]} C'))
        r.add('chillybin', self._chillybin_check, required=False)
        return r

    def _control_loop_check(self):
        loop = self.control_loop
        if not loop.alive or loop.last_run is None:
            return False, 'the link to the plate is not running'
        # In real seconds: a sped-up clock makes simulated seconds short.
        quiet = (self.clock.monotonic() - loop.last_run) / self.clock.speed
        return quiet < 1.0, f'last tick {quiet * 1000:.0f} ms ago; lateness {loop.lateness_summary()}'


    def _chillybin_check(self):
        from firmware.errors import RefusedError
        try:
            status, _ = self.stock.request('GET', '/health')
            return status == 200, f'{self.stock.url} answers {status}'
        except RefusedError as exc:
            return False, exc.message

    # -- running and stopping -------------------------------------------------------------------
    def run(self):
        threading.excepthook = self.jafflr.thread_died
        atexit.register(self._off_at_exit)
        # Before any loop starts: the fault kept from before, or unclean-start, latches
        # first, so nothing heats or moves after a crash until a person has looked.
        self.kitchen.recover(self.clock.monotonic(), self.clock.time())
        self.control_loop.start()
        self.deadman.start()
        self.press_loop.start()
        self.assembler_loop.start()
        self.history_loop.start()
        try:
            self.http.serve()
        finally:
            self.close()

    def _off_at_exit(self):
        try:
            self.machine.all_off()
        except Exception as exc:   # the machine may be gone; the heartbeat has stopped anyway
            log.warning('at exit, could not drive the outputs off: %s', exc)

    def _drain(self):
        """SIGTERM: nothing new; let the toastie in the press finish (bounded); then stop."""
        self.kitchen.begin_drain()
        started = self.clock.monotonic()
        while not self.kitchen.drained() and self.clock.monotonic() - started < DRAIN_BOUND_S:
            self.clock.sleep(0.1)
        self.kitchen.fail_unfinished_press(self.clock.monotonic(), self.clock.time(),
                                           self.clock.monotonic() - started)
        self.released.set()
        for loop in (self.assembler_loop, self.press_loop):
            loop.stop()
        # The heater off first: the clean-stop marker only ever follows a plate switched off.
        self.controller.off(self.clock.monotonic())
        self.kitchen.finish_drain()

    def close(self):
        for loop in (self.history_loop, self.assembler_loop, self.press_loop):
            loop.stop()
        self.controller.off(self.clock.monotonic())
        self.deadman.stop()
        # A loop the dead-man found stuck will not come back: do not wait 5 s for it.
        self.control_loop.stop(timeout=0.5 if self.deadman.stalls else 5.0)
        self.machine.all_off()
        self.plate_link.close()       # the plate sees jafflr go: off, no heartbeat
        self.shutdown.recorded()      # a STOP's fault is on disk before the store closes
        self.store.close()
        self.platform.close()


def open_service(host, port, env=os.environ):
    settings = load_settings('jafflr', env)
    sockets = inherited_sockets(env) or [bind_socket(host, port)]
    platform = open_platform(i2c=False)      # the plate's sensors are the plate process's
    try:
        return JafflrService(settings, platform, sockets=sockets,
                             chillybin_url=env.get('CHILLYBIN_URL', 'http://127.0.0.1:7001'), env=env)
    except BaseException:
        platform.close()
        raise

