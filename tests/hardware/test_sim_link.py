"""SimLink, a service's connection to the simulator, against a stand-in simulator that
answers one call late: a timed-out call must not poison the calls after it."""
import json
import os
import socket
import threading
import time

import pytest

from hardware.errors import SimulatorUnavailable
from hardware.sim import link as link_module
from hardware.sim.link import SimLink


class SlowOnceSimulator:
    """Answers `echo` calls with their `n`; the first one named in `slow` comes late."""

    def __init__(self, path, late_s):
        self.late_s = late_s
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen()
        self.connections = 0
        self.slowed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn, conn.makefile('rb') as lines:
            for line in lines:
                request = json.loads(line)
                if request['op'] == 'hello':
                    result = {'clock': {'kind': 'RealClock', 'speed': 1.0}, 'pid': os.getpid()}
                elif request['op'] == 'subscribe':
                    result = 'subscribed'
                else:
                    if request.get('slow') and not self.slowed:
                        self.slowed = True
                        time.sleep(self.late_s)
                    result = request['n']
                try:
                    conn.sendall((json.dumps({'ok': True, 'result': result}) + '\n').encode())
                except OSError:
                    return

    def close(self):
        self.server.close()


@pytest.fixture
def slow_sim(tmp_path, monkeypatch):
    monkeypatch.setattr(link_module, 'CALL_TIMEOUT_S', 0.3)
    sim = SlowOnceSimulator(str(tmp_path / 'sim.sock'), late_s=0.6)
    yield sim
    sim.close()


def test_sim_link_call_after_a_timed_out_call_gets_its_own_answer(slow_sim, tmp_path):
    link = SimLink(str(tmp_path / 'sim.sock'))
    try:
        assert link.call('echo', n=1) == 1
        with pytest.raises(SimulatorUnavailable):
            link.call('echo', n=2, slow=True)
        time.sleep(0.5)           # the late answer to call 2 arrives meanwhile
        assert [link.call('echo', n=n) for n in (3, 4, 5)] == [3, 4, 5]
        assert slow_sim.connections == 3     # calls, input stream, calls again
    finally:
        link.close()


def test_sim_link_closed_does_not_reconnect(slow_sim, tmp_path):
    link = SimLink(str(tmp_path / 'sim.sock'))
    link.close()
    with pytest.raises(SimulatorUnavailable):
        link.call('echo', n=1)
    with pytest.raises(SimulatorUnavailable, match='closed'):
        link.call('echo', n=2)
