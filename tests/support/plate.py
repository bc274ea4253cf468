"""The whole machine in process with the plate in a "process" of its own, as the services
run it (api/plate): jafflr built by firmware.build.Jafflr with a `plate_link`, the plate by
firmware.build.PlateProcess on its own pins (the 'plate' owner) on the same simulated world,
and a link between them that calls PlateHost.handle directly, through JSON as the socket
carries it. The plate "process" can die (its link refuses, its pins stay as they were, as
after a kill -9), stall, and start again on the same state dir (plate.json).

    m = SplitMachine(tmp_path)
    m.kill_plate(); m.run(1.5); m.start_plate()
"""
import json

from firmware.build import DEADMAN_S, PlateProcess
from firmware.platehost import PlateStore
from hardware.platform import open_in_process
from inprocess import InProcessMachine


class InMemoryLink:
    """jafflr's end of the link (what api/plate/link.py's LinkClient is): a request in, an
    answer out, an OSError when the plate does not answer. A connection is made on first
    use and again after a failure, as the client does; `close()` is the socket closing."""

    def __init__(self, machine):
        self._m = machine
        self.conn = None
        self.requests = []          # the ops the plate answered, in order
        self.attempts = 0           # requests tried, answered or not
        self.broken = False         # the plate process answers no more (it is gone)
        self.on_answer = None       # on_answer(request, answer): a test's moment in between

    def __call__(self, request):
        self.attempts += 1
        host = self._m.plate_host if self._m.plate_alive and not self.broken else None
        if host is None:
            self.conn = None
            raise ConnectionRefusedError('[Errno 111] the plate process does not answer')
        if self.conn is None:
            self.conn = object()
        self.requests.append(request['op'])
        wire = json.loads(json.dumps(request))
        answer = json.loads(json.dumps(host.handle(wire, self._m.clock.monotonic(), self.conn)))
        if self.on_answer is not None:
            self.on_answer(request, answer)
        return answer

    def close(self):
        """The connection ends (jafflr stops or dies: the kernel closes its socket)."""
        conn, self.conn = self.conn, None
        if conn is not None and self._m.plate_alive:
            self._m.plate_host.disconnected(conn, self._m.clock.monotonic())


class SplitMachine(InProcessMachine):
    """InProcessMachine with the plate apart. Every control tick (100 ms) the plate ticks
    first (its lease and its controller), then jafflr's link loop (a ping), then each
    dead-man is checked; the stations every 50 ms as before."""

    def __init__(self, state_dir, *, lease_s=DEADMAN_S, plate_deadman_s=DEADMAN_S,
                 jafflr_deadman_s=DEADMAN_S, plate=True, **options):
        """`plate=False`: jafflr starts before its plate process (start_plate later)."""
        self.lease_s, self.plate_deadman_s = lease_s, plate_deadman_s
        self.jafflr_deadman_s = jafflr_deadman_s
        self.plate_alive = self.plate_stalled = False
        self.jafflr_alive = True
        self._plate_at_start = plate
        self.plate_parts = self.plate_platform = None
        self._plate_platforms = []
        self.link = None
        super().__init__(state_dir, **options)

    # -- the plate "process" ---------------------------------------------------------------------
    def start_plate(self):
        """The plate process starts (again) on the state dir: new pins on the same world,
        its saved fault (plate.json) latched again."""
        if self.plate_alive:
            raise RuntimeError('the plate process runs already')
        platform = open_in_process(self.clock, world=self.world)
        self._plate_platforms.append(platform)
        self.plate_platform = platform
        self.plate_parts = PlateProcess(platform.machine('plate'), platform.sensors('plate'),
                                        self.clock, PlateStore(self.state_dir, fsync=False),
                                        lease_s=self.lease_s, deadman_s=self.plate_deadman_s)
        self.plate_alive, self.plate_stalled = True, False
        return self.plate_parts

    def kill_plate(self):
        """kill -9: nothing runs any more and the link refuses; its pins stay as they were
        (a heater pin left high) until the next start claims them."""
        self.plate_alive = False

    def stall_plate(self, stalled=True):
        """The plate's control loop stops ticking; its link still answers."""
        self.plate_stalled = stalled

    plate_host = property(lambda self: self.plate_parts.host)
    plate_shutdown = property(lambda self: self.plate_parts.shutdown)
    plate_controller = property(lambda self: self.plate_parts.controller)
    remote = property(lambda self: self.jafflr.plate)

    def plate_reasons(self):
        return fault_reasons(self.plate_shutdown)

    def jafflr_reasons(self):
        return fault_reasons(self.shutdown)

    # -- jafflr ----------------------------------------------------------------------------------
    JAFFLR_OWNERS = 'jafflr'            # the plate's parts are its own "process"'s

    def _build_jafflr(self, platform):
        if self.plate_parts is None and self._plate_at_start:
            self.start_plate()
        self.link = InMemoryLink(self)
        super()._build_jafflr(platform)

    def _jafflr_options(self):
        return {'deadman_s': self.jafflr_deadman_s, 'plate_link': self.link}

    def kill_jafflr(self):
        """kill -9 jafflr: nothing of it runs any more, the kernel closes its socket (the
        plate sees it go), its pins stay as they were."""
        self.jafflr_alive = False
        self.link.close()

    def restart_jafflr(self):
        """jafflr's process ends, cleanly or not (either way the kernel closes its socket:
        the plate sees it go), and starts again on the same state dir."""
        self.link.close()
        super().restart_jafflr()
        self.jafflr_alive = True

    # -- running ---------------------------------------------------------------------------------
    def _control_ticks(self, now, wall):
        """As the in-process machine's, with the plate process's loop and dead-man first,
        and each side only while its process is alive."""
        self.chilly.tick(now, wall)
        if self.plate_alive:
            if not self.plate_stalled:
                self.plate_parts.tick(now)
            self.plate_parts.deadman.check(now)
        if self.jafflr_alive:
            if not self.control_stalled:
                self.jafflr.control_tick(now)
            self.jafflr.deadman.check(now)

    def _station_ticks(self, now, wall):
        if self.jafflr_alive:
            super()._station_ticks(now, wall)

    def close(self):
        if self._closed:
            return
        for platform in reversed(self._plate_platforms):   # before the world's own
            platform.close()
        super().close()


def fault_reasons(shutdown):
    """The latched reasons, the first and the later ones, as a set."""
    return {f['reason'] for f in shutdown.records()}
