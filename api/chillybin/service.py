"""chillybin put together: the machine's bin parts, the store, the bin logic, its loop,
the HTTP app and the server."""
import logging
import os
import threading
import time

from hardware.board import default_bays, load_cell_slots, nominal_calibration
from hardware.platform import open_platform
from firmware.binstore import BinStore, DB_NAME
from firmware.chillybin import build_chillybin

from ..common.health import Readiness, storage_writable
from ..common.loop import PeriodicLoop
from ..common.textmetrics import CounterMetricFamily, GaugeMetricFamily, TextServiceMetrics
from ..common.replica import ReplicaCollector
from ..common.sdnotify import Notifier
from ..common.serve import HttpService, bind_socket, inherited_sockets
from ..common.settings import SettingsError, admin_token, load_settings
from .tick import TICK_RANGE_S, TICK_S, tick_period  # noqa: F401 (TICK_* re-exported)
from ..common.adminauth import AdminAuth
from .app import build_app
from .edge import edge
from .parts import BinParts
from .v1answer import V1StockAnswer

log = logging.getLogger('chillybin')
class BinCollector:
    """Prometheus gauges read from the bin at scrape time."""

    def __init__(self, chilly, clock, loop=None):
        self.chilly = chilly
        self.clock = clock
        self.loop = loop

    def describe(self):
        return []

    def collect(self):
        c = self.chilly
        with c.lock:
            temp = GaugeMetricFamily('chillybin_bin_temperature_celsius', 'Bin air temperature')
            if c.air.temp_c is not None:
                temp.add_metric([], c.air.temp_c)
            yield temp
            yield GaugeMetricFamily('chillybin_bin_above_5c_seconds', 'Continuous time above 5 C',
                                    value=c.air.chiller.warm_for_s(self.clock.monotonic()))
            yield GaugeMetricFamily('chillybin_chiller_on', 'Chiller running', value=int(c.air.chiller.on))
            yield GaugeMetricFamily('chillybin_reservations_open', 'Open reservations and picks',
                                    value=len(c.desk.ledger.open()))
            # Food-safety time is counted by the loop: a stale loop counts nothing.
            since = GaugeMetricFamily('chillybin_loop_seconds_since_tick',
                                      'Real seconds since the bin loop last ran')
            if c.last_tick is not None:
                since.add_metric([], max(0.0, self.clock.monotonic() - c.last_tick)
                                 / getattr(self.clock, 'speed', 1.0))
            yield since
            if self.loop is not None:
                yield GaugeMetricFamily('chillybin_loop_running', 'The bin loop thread is alive',
                                        value=int(self.loop.alive))
            families = {
                'units': GaugeMetricFamily('chillybin_bay_units', 'Units measured', labels=['bay']),
                'available': GaugeMetricFamily('chillybin_bay_available', 'Units available',
                                               labels=['bay']),
                'grams': GaugeMetricFamily('chillybin_bay_grams', 'Contents weight', labels=['bay']),
                'locked': GaugeMetricFamily('chillybin_bay_food_safety_locked',
                                            'Bay locked by food safety', labels=['bay']),
                'minutes': GaugeMetricFamily('chillybin_bay_food_safety_minutes',
                                             'Minutes above 5 C since restock', labels=['bay']),
                'sensor': GaugeMetricFamily('chillybin_bay_sensor_ok', 'Load cell readable',
                                            labels=['bay']),
            }
            for name, bay in c.scales.bays.items():
                if bay.units is not None:
                    families['units'].add_metric([name], bay.units)
                    families['available'].add_metric([name], c.desk.available(name))
                if bay.grams is not None:
                    families['grams'].add_metric([name], bay.grams)
                families['locked'].add_metric([name], int(c.food.clocks[name].refuses))
                families['minutes'].add_metric([name], c.food.clocks[name].seconds_above / 60.0)
                families['sensor'].add_metric([name], int(bay.error is None))
            yield from families.values()
            errors = CounterMetricFamily('chillybin_sensor_errors', 'Failed sensor reads',
                                         labels=['part'])
            for part, count in c.reads.errors.items():
                errors.add_metric([part], count)
            yield errors


def check_watchdog(notifier, tick_s, speed):
    """The bin loop pings systemd's watchdog once a tick at most, so its period in real
    seconds must leave room for two pings in WatchdogSec."""
    real_tick_s = tick_s / speed
    if notifier.watchdog_s and real_tick_s > notifier.watchdog_s / 4:
        raise SettingsError(f'CHILLYBIN_TICK_S={tick_s:g} ({real_tick_s:g} real s) is longer '
                            f'than a quarter of the watchdog ({notifier.watchdog_s:g} s, '
                            f'WatchdogSec=): the bin loop could not ping it in time')


class ChillybinService:
    def __init__(self, settings, platform, *, sockets, threads=None, tick_s=TICK_S,
                 replica=None, env=os.environ):
        # As many worker threads as the clients we plan for (32). Fewer looked right for
        # short handlers on two cores, but waitress then parks keep-alive connections
        # waiting for a thread: measured with wrk at 32 connections, 2 threads answered
        # 1,100 requests/s (p99 85 ms), 32 threads 4,000 (p99 17 ms). A thread costs
        # about 0.1 MB resident.
        threads = threads or int(os.environ.get('CHILLYBIN_THREADS', 16))
        self.settings = settings
        self.platform = platform
        self.replica = replica
        clock = platform.clock
        self.clock = clock
        parts = BinParts(platform.bus, clock)
        self.machine = platform.machine('chillybin')
        self.store = BinStore(settings.state_dir, default_bays(), now_wall=clock.time())
        refill = None
        if platform.simulated:
            refill = lambda slot, units, name: platform.link.fill(slot, units, name)
        chiller = self.machine.chiller
        self.chilly = build_chillybin(
            self.store, read_bin_c=parts.bin_c, read_counts=parts.counts,
            set_chiller=lambda on: chiller.on() if on else chiller.off(),
            nominal_calibration=nominal_calibration, slots=load_cell_slots(), refill=refill,
            now=clock.monotonic(), wall=clock.time(), wall_synchronised=clock.synchronised())
        self.v1_answer = V1StockAnswer(self.chilly, replica.shared.publish if replica else None)
        self.tick_s = tick_s
        # systemd's watchdog is fed from the bin loop itself, after a whole tick, never from
        # an HTTP thread: a stuck loop stops the food-safety clocks and the chiller while
        # HTTP would go on serving stale stock, so it must get the service restarted.
        self.notifier = Notifier(env)
        check_watchdog(self.notifier, tick_s, clock.speed)
        self._last_watchdog = 0.0
        self._stalled = threading.Event()      # debug hook: the bin loop hangs ...
        self._unstall = threading.Event()      # ... until this is set (at close)
        self.loop = PeriodicLoop('bin-loop', clock, tick_s, self._bin_tick)
        # Without prometheus_client: 1.9 MB of an idle chillybin (textmetrics.py)
        self.metrics = TextServiceMetrics('chillybin', settings.version)
        self.metrics.registry.register(BinCollector(self.chilly, clock, self.loop))
        self.readiness = self._readiness()
        auth = AdminAuth.from_file(settings.token_file, admin_token)
        debug = env.get('JAFFLR_DEBUG_HOOKS') == '1'
        app = build_app(self.chilly, v1_answer=self.v1_answer, clock=clock, auth=auth, metrics=self.metrics,
                        readiness=self.readiness, version=settings.version,
                        simulated=platform.simulated,
                        debug_stall=self._stalled.set if debug else None)
        if replica is not None:
            # The replica answers GET / from what the v1 answer publishes, forwards the rest here
            replica.shared.publish(self.v1_answer.body)
            self.metrics.registry.register(ReplicaCollector('chillybin', replica.shared, '/'))
        forwarder_ports = [replica.address[1]] if replica is not None else []
        self.http = HttpService('chillybin', edge(app, settings, self.metrics, forwarder_ports), sockets,
                                threads=threads, notifier=self.notifier,
                                before_exit=[self._before_exit],
                                before_drain=[replica.stop] if replica else [],
                                private_sockets=[replica.upstream] if replica else [])

    def _bin_tick(self, now):
        self.chilly.tick(now, self.clock.time())
        if self._stalled.is_set():
            self._unstall.wait()      # a test hook: the bin loop hangs here, for real
        real = time.monotonic()
        if self.notifier.watchdog_s and real - self._last_watchdog >= self.notifier.watchdog_s / 4:
            self._last_watchdog = real
            self.notifier.watchdog()

    def _readiness(self):
        r = Readiness()
        c = self.chilly
        r.add('storage', storage_writable(os.path.join(self.settings.state_dir, DB_NAME)))
        r.add('migrations', lambda: (True, f'schema {len(self.store.migrations)}'))
        # Stale after 20 periods or 2 real seconds, whichever is longer: on a sped-up
        # clock 2 clock seconds can be a millisecond, shorter than one round of reads.
        stale_s = max(20 * self.tick_s, 2.0 * self.clock.speed)

        def loop_ticking():
            if c.last_tick is None:
                return False, 'the bin loop has not run yet'
            age = self.clock.monotonic() - c.last_tick
            ok = self.loop.alive and age < stale_s
            return ok, (f'last tick {age:.1f} s ago' + ('' if self.loop.alive else
                                                        '; the loop thread has stopped'))
        r.add('bin-loop', loop_ticking)
        if self.replica is not None:
            r.add('replica', lambda: (self.replica.alive, f'pid {self.replica.pid}' if
                                      self.replica.alive else 'not running: the primary '
                                      'answers alone'), required=False)
        r.add('bin-sensor', lambda: (c.air.error is None, c.air.error or f'{c.air.temp_c} C'),
              required=False)
        bays = c.scales.bays
        r.add('load-cells', lambda: (any(b.error is None for b in bays.values()),
                                     '; '.join(f'{n}: {b.error or "ok"}' for n, b in bays.items())))
        return r

    def _before_exit(self):
        self._unstall.set()
        self.loop.stop()
        self.chilly.stop(self.clock.time())

    def run(self):
        self.chilly.count_every_bay(lambda: (self.clock.monotonic(), self.clock.time()))
        self.loop.start()
        try:
            self.http.serve()
        finally:
            self.close()

    def close(self):
        if self.replica is not None:
            self.replica.stop()
        self._unstall.set()
        self.loop.stop()
        self.store.close()
        self.platform.close()


def open_service(host, port, env=os.environ, *, settings=None, sockets=None, replica=None):
    """The service on `sockets` (else systemd's, else `host:port`), with `replica` (from
    fork_replica, which __main__ calls before importing this module) if given."""
    try:
        settings = settings or load_settings('chillybin', env)
        tick_s = tick_period(env)
        sockets = sockets or inherited_sockets(env) or [bind_socket(host, port)]
        platform = open_platform()
    except BaseException:
        replica and replica.stop()
        raise
    try:
        return ChillybinService(settings, platform, sockets=sockets, tick_s=tick_s,
                                replica=replica, env=env)
    except BaseException:
        replica and replica.stop()
        platform.close()
        raise
