"""Start the simulated machine and both services as separate processes, for benchmarks."""
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_http(port, path='/health', timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            conn.request('GET', path)
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f'nothing answered on port {port} within {timeout} s')


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


class Stack:
    """sim + chillybin + jafflr, each its own process, on free loopback ports."""

    def __init__(self, speed=1.0, state_dir=None, env=None, services=('chillybin', 'jafflr')):
        self.dir = state_dir or tempfile.mkdtemp(prefix='jafflr-bench-')
        self.sock = os.path.join(self.dir, 'sim.sock')
        self.ports = {'chillybin': free_port(), 'jafflr': free_port()}
        self.env = dict(os.environ, JAFFLR_MACHINE='sim', JAFFLR_SIM_SOCKET=self.sock,
                        JAFFLR_STATE_DIR=self.dir, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1',
                        CHILLYBIN_URL=f'http://127.0.0.1:{self.ports["chillybin"]}', **(env or {}))
        self.procs = {}
        self.speed = speed
        self.services = services

    def start(self):
        log = open(os.path.join(self.dir, 'stack.log'), 'ab')
        self.procs['sim'] = subprocess.Popen(
            [sys.executable, '-m', 'hardware.sim', '--socket', self.sock, 'serve', '--speed',
             str(self.speed)], cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline:
                raise TimeoutError('the simulator did not start')
            time.sleep(0.02)
        for name in self.services:
            self.procs[name] = subprocess.Popen(
                [sys.executable, '-m', f'api.{name}', '--port', str(self.ports[name])],
                cwd=ROOT, env=self.env, stdout=log, stderr=log)
            wait_http(self.ports[name])
        return self

    def url(self, service, path='/'):
        return f'http://127.0.0.1:{self.ports[service]}{path}'

    def token(self):
        with open(os.path.join(self.dir, 'admin-token')) as f:
            return f.read().strip()

    def stop(self):
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
