"""The plate process put together: the heater control and its safety checks (the plate
controller, interlocks, chain monitor, dead-man: firmware.build.PlateProcess) on a control
loop of their own, answering jafflr on a local socket (link.py).

Why a process of its own: on a Pi's CPU the control loop shared jafflr's GIL and CPU with
every HTTP thread, and ran late under load; here nothing but this loop competes for this
process, and systemd runs it at a higher priority (systemd/jafflr-plate.service). A crash
of jafflr cannot stop these checks; a crash of this process stops the heartbeat, which
opens the SSR gate and the motor enable in hardware, and jafflr latches `plate-lost`.

Every way out leaves the heater off: SIGTERM/SIGINT stop the loop and switch off; exit
runs all_off once more; SIGKILL and hangs are caught by the heartbeat monostable (1 s), the
dead-man, systemd's watchdog and ExecStopPost (hardware.safe_off --owner plate).
"""
import atexit
import logging
import os
import signal
import threading
import time

from firmware.build import PlateProcess
from firmware.platehost import LatenessHistogram, PlateStore
from hardware.platform import open_platform

from ..common.loop import PeriodicLoop
from ..common.sdnotify import Notifier
from ..common.settings import load_settings
from .link import LinkServer
from .timing import CONTROL_PERIOD_S, chain_timing, deadman_seconds

log = logging.getLogger('plate')

def socket_path(env=os.environ, state_dir=None):
    """Where the plate listens and jafflr connects: JAFFLR_PLATE_SOCKET, else plate.sock in
    the state directory (systemd: /run/jafflr-plate/plate.sock, set by the units)."""
    return env.get('JAFFLR_PLATE_SOCKET') or os.path.join(
        state_dir or load_settings('jafflr', env).state_dir, 'plate.sock')


class PlateService:
    def __init__(self, platform, state_dir, path, env=os.environ):
        self.platform = platform
        self.clock = clock = platform.clock
        self.notifier = Notifier(env)
        self._last_watchdog = 0.0
        self.machine = platform.machine('plate')
        deadman_s = deadman_seconds(env, clock)
        self.lateness = LatenessHistogram()
        self.parts = PlateProcess(self.machine, platform.sensors('plate'), clock,
                                  PlateStore(state_dir), lease_s=deadman_s, deadman_s=deadman_s,
                                  chain_timing=chain_timing(clock),
                                  on_control_tick=self._on_control_tick, lateness=self.lateness)
        self.controller, self.deadman = self.parts.controller, self.parts.deadman
        self.control_loop = PeriodicLoop('plate-control', clock, CONTROL_PERIOD_S,
                                         self.parts.tick, observe=self.lateness.observe)
        self.server = LinkServer(path, self.parts.host, clock.monotonic)
        self._stop = threading.Event()

    def _on_control_tick(self, now):
        real = time.monotonic()
        if self.notifier.watchdog_s and real - self._last_watchdog >= self.notifier.watchdog_s / 4:
            self._last_watchdog = real
            self.notifier.watchdog()

    def run(self):
        atexit.register(self._off_at_exit)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stop.set())
        self.control_loop.start()
        self.deadman.start()
        self.server.start()
        fault = self.parts.shutdown.fault
        log.info('plate: control loop every %g s, lease %g s, listening on %s%s',
                 CONTROL_PERIOD_S, self.parts.host.lease_s, self.server.path,
                 f'; kept fault {fault.reason}' if fault else '')
        self.notifier.ready('controlling the plate')
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.notifier.stopping('switching the heater off')
            self.close()

    def _off_at_exit(self):
        try:
            self.machine.all_off()
        except Exception as exc:
            log.warning('at exit, could not drive the heater off: %s', exc)

    def close(self):
        # First: no command is obeyed any more (a connection's thread may still answer).
        self.parts.host.close(self.clock.monotonic())
        self.server.close()
        self.controller.off(self.clock.monotonic())
        self.deadman.stop()
        self.control_loop.stop(timeout=0.5 if self.deadman.stalls else 5.0)
        self.machine.all_off()
        self.platform.close()


def open_service(env=os.environ):
    state_dir = load_settings('jafflr', env).state_dir
    path = socket_path(env, state_dir)
    platform = open_platform()
    try:
        return PlateService(platform, state_dir, path, env)
    except BaseException:
        platform.close()
        raise
