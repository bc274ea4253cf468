"""Fixtures for the hardware tests that need the simulated machine as its own process."""
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIM_SPEED = 10


@pytest.fixture
def sim(tmp_path):
    """`python -m hardware.sim serve` at x10 on a socket in tmp_path; yields the socket's
    path and expects a clean exit on SIGTERM."""
    sock = str(tmp_path / 'sim.sock')
    proc = subprocess.Popen([sys.executable, '-m', 'hardware.sim', '--socket', sock, 'serve',
                             '--speed', str(SIM_SPEED)], cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        assert proc.poll() is None and time.monotonic() < deadline, 'simulator did not start'
        time.sleep(0.02)
    yield sock
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
