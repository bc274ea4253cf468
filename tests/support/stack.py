"""The services as real processes for tests: the simulated machine, chillybin and jafflr,
each started with its own socket, port and state directory, talked to over real HTTP.

    stack = Stack(tmp_path, speed=20)
    stack.start_sim(); stack.start_chillybin(); stack.start_jafflr()
    status, headers, body = stack.jafflr('GET', '/v2/status')
    stack.close()           # SIGTERM to whatever still runs, in reverse order

Each process's output goes to a log file in the stack's directory; `logs()` returns
their tails for an assertion message. The simulator is also reached in process through
its link (`stack.link`), for faults, status and its clock.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

from hardware.sim.link import SimLink

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Answer:
    """One HTTP answer: status, headers (lower-case names), raw body, and json()."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self):
        return self.body.decode(errors='replace')

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f'<{self.status} {self.text[:300]!r}>'


def request(port, method, path, body=None, headers=None, timeout=30.0):
    headers = dict(headers or {})
    payload = body
    if body is not None and not isinstance(body, (bytes, str)):
        payload = json.dumps(body).encode()
        headers.setdefault('Content-Type', 'application/json')
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, payload, headers)
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()


class Service:
    def __init__(self, name, proc, log_path, port=None, state_dir=None):
        self.name, self.proc, self.log_path = name, proc, log_path
        self.port, self.state_dir = port, state_dir

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, signum):
        if self.alive():
            self.proc.send_signal(signum)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def log(self, lines=40):
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError:
            return ''

    def admin_token(self):
        with open(os.path.join(self.state_dir, 'admin-token'), encoding='utf-8') as f:
            return f.read().strip()


class Stack:
    def __init__(self, root, speed=20.0):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.speed = speed
        self.sock = os.path.join(self.root, 'sim.sock')
        self.services = []
        self.link = None
        self.sim_proc = self.chilly = None
        self.jafflr_env = {}        # given to every jafflr started (a test's env= adds to it)
        self._starts = 0

    # -- starting -------------------------------------------------------------------------
    def _env(self, state_dir, extra):
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1', JAFFLR_MACHINE='sim',
                   JAFFLR_SIM_SOCKET=self.sock, JAFFLR_STATE_DIR=state_dir)
        for name in [n for n in env if n.startswith(('JAFFLR_FLAG_', 'NOTIFY_SOCKET', 'LISTEN_'))]:
            del env[name]
        env.update(extra or {})
        return env

    def _spawn(self, name, args, state_dir, env=None, port=None):
        self._starts += 1
        log_path = os.path.join(self.root, f'{self._starts:02d}-{name}.log')
        with open(log_path, 'wb') as log:
            proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT, env=self._env(state_dir, env))
        service = Service(name, proc, log_path, port, state_dir)
        self.services.append(service)
        return service

    def start_sim(self, seed=1, plate_c=None):
        """`plate_c`: the plate starts that hot (saves 3.5 simulated minutes of preheat)."""
        args = ['-m', 'hardware.sim', '--socket', self.sock, 'serve', '--speed', str(self.speed),
                '--seed', str(seed)]
        if plate_c is not None:
            args += ['--plate-c', str(plate_c)]
        self.sim_proc = self._spawn('sim', args, self.root)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.sock):
            assert self.sim_proc.alive(), f'the simulator exited:\n{self.sim_proc.log()}'
            assert time.monotonic() < deadline, 'the simulator did not start within 20 s'
            time.sleep(0.02)
        self.link = SimLink(self.sock)
        return self.sim_proc

    def start_chillybin(self, state_dir=None, env=None, port=None):
        state_dir = state_dir or os.path.join(self.root, 'chillybin')
        port = port or free_port()
        self.chilly = self._spawn('chillybin', ['-m', 'api.chillybin', '--port', str(port)],
                                  state_dir, env, port)
        self.wait_healthy(self.chilly)
        return self.chilly

    def start_original_chillybin(self, port=None):
        """The stand-in of the original Go chillybin (v1 only): tests/support/original_chillybin."""
        port = port or free_port()
        service = self._spawn('original-chillybin', ['-m', 'tests.support.original_chillybin',
                                                     '--port', str(port)], self.root, None, port)
        self.wait_healthy(service)
        return service

    def start_jafflr(self, state_dir=None, env=None, port=None, chillybin=None):
        state_dir = state_dir or os.path.join(self.root, 'jafflr')
        port = port or free_port()
        chillybin = chillybin or self.chilly
        extra = {'CHILLYBIN_URL': f'http://127.0.0.1:{chillybin.port}', **self.jafflr_env,
                 **(env or {})}
        service = self._spawn('jafflr', ['-m', 'api.jafflr', '--port', str(port)], state_dir,
                              extra, port)
        self.wait_healthy(service)
        return service

    def wait_healthy(self, service, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            assert service.alive(), f'{service.name} exited:\n{service.log()}'
            try:
                if request(service.port, 'GET', '/health', timeout=2).status == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f'{service.name} did not answer:\n{service.log()}'
            time.sleep(0.05)

    # -- using ----------------------------------------------------------------------------
    def sim_time(self):
        return self.link.clock.monotonic()

    def world(self):
        return self.link.status()

    def wait_for(self, condition, timeout_s, what, interval=0.02):
        """Poll condition() (real seconds) until it returns something true; returns it."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f'{what}: not within {timeout_s} s\n{self.logs()}')
            time.sleep(interval)

    def logs(self, lines=25):
        return '\n'.join(f'--- {s.name} (pid {s.pid}, '
                         f'{"running" if s.alive() else f"exit {s.proc.returncode}"}) ---\n'
                         f'{s.log(lines)}' for s in self.services)

    # -- stopping -------------------------------------------------------------------------
    def stop(self, service, signum=signal.SIGTERM, timeout=30.0):
        service.signal(signum)
        return service.wait(timeout)

    def close(self):
        for service in reversed(self.services):
            if service.alive():
                service.signal(signal.SIGTERM)
                try:
                    service.wait(20)
                except subprocess.TimeoutExpired:
                    service.signal(signal.SIGKILL)
                    service.wait(5)
        if self.link is not None:
            self.link.close()
            self.link = None
