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


def _join(group, pid=0):
    """Put pid (0: this process) into a cgroup; run in the child before exec."""
    with open(os.path.join(group, 'cgroup.procs'), 'w') as f:
        f.write(str(pid or os.getpid()))


def _descendants(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            kids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
    return [p for kid in kids for p in [kid] + _descendants(kid)]


class Stack:
    """sim + chillybin + jafflr, each its own process, on free loopback ports."""

    def __init__(self, speed=1.0, state_dir=None, env=None, services=('chillybin', 'jafflr'),
                 cpu_group=None):
        """`cpu_group(name)`: a cgroup directory (bench/cgroup.py) for the process called
        name ('chillybin', 'jafflr', 'chillybin-replica'), or None to leave it unconfined.
        A service is in its group from before it runs (its replica, forked at start,
        follows, and is then moved to a group of its own); the simulator never is."""
        self.dir = state_dir or tempfile.mkdtemp(prefix='jafflr-bench-')
        self.sock = os.path.join(self.dir, 'sim.sock')
        self.ports = {'chillybin': free_port(), 'jafflr': free_port()}
        self.env = dict(os.environ, JAFFLR_MACHINE='sim', JAFFLR_SIM_SOCKET=self.sock,
                        JAFFLR_STATE_DIR=self.dir, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1',
                        CHILLYBIN_URL=f'http://127.0.0.1:{self.ports["chillybin"]}', **(env or {}))
        self.procs = {}
        self.speed = speed
        self.services = services
        self.cpu_group = cpu_group or (lambda name: None)
        self.groups = {}

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
            group = self.cpu_group(name)
            self.procs[name] = subprocess.Popen(
                [sys.executable, '-m', f'api.{name}', '--port', str(self.ports[name])],
                cwd=ROOT, env=self.env, stdout=log, stderr=log,
                preexec_fn=(lambda g=group: _join(g)) if group else None)
            if group:
                self.groups[name] = group
            wait_http(self.ports[name])
            if group:
                for i, pid in enumerate(_descendants(self.procs[name].pid)):
                    label = f'{name}-replica' if i == 0 else f'{name}-{i + 1}'
                    own = self.cpu_group(label)
                    if own:
                        _join(own, pid)
                        self.groups[label] = own
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
