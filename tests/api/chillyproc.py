"""The simulator and chillybin as real processes on loopback, for tests over real HTTP.

Each test run gets its own socket, state directory and ephemeral port, and stops only the
processes it started."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def stop(proc, timeout=15):
    """SIGTERM one process we started; returns its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


class Simulator:
    def __init__(self, directory, speed=20):
        self.socket = os.path.join(directory, 'sim.sock')
        self.log = open(os.path.join(directory, 'sim.log'), 'wb')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'hardware.sim', '--socket', self.socket, 'serve',
             '--speed', str(speed)], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f'the simulator did not start: {self.read_log()}')
            time.sleep(0.02)

    def read_log(self):
        with open(self.log.name, 'rb') as f:
            return f.read().decode(errors='replace')

    def cli(self, *args):
        out = subprocess.run([sys.executable, '-m', 'hardware.sim', '--socket', self.socket, *args],
                             capture_output=True, text=True, cwd=ROOT, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def status(self):
        return json.loads(self.cli('status-json'))

    def close(self):
        status = stop(self.proc)
        self.log.close()
        return status


def service_env(sim, state_dir, **extra):
    """The environment of a chillybin on `sim` (None: no simulator, for `migrate`)."""
    env = dict(os.environ, JAFFLR_MACHINE='sim',
               JAFFLR_SIM_SOCKET=sim.socket if sim else os.path.join(state_dir, 'no-sim.sock'),
               JAFFLR_STATE_DIR=state_dir, PYTHONUNBUFFERED='1', PYTHONPATH=ROOT)
    for name in ('JAFFLR_ADMIN_TOKEN_FILE', 'CREDENTIALS_DIRECTORY', 'JAFFLR_HOSTNAMES',
                 'LISTEN_FDS', 'LISTEN_PID', 'NOTIFY_SOCKET'):
        env.pop(name, None)
    env.update(extra)
    return env


def run_chillybin(sim, state_dir, *args, **extra):
    """`python -m api.chillybin ARGS` to completion (migrate, or a start that must fail)."""
    return subprocess.run([sys.executable, '-m', 'api.chillybin', *args], cwd=ROOT,
                          env=service_env(sim, state_dir, **extra), capture_output=True,
                          text=True, timeout=30)


class Chillybin:
    def __init__(self, sim, state_dir, expect_bays=3, **extra):
        self.port = free_port()
        self.expect_bays = expect_bays
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.log = open(os.path.join(state_dir, 'chillybin.log'), 'wb')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'api.chillybin', '--port', str(self.port)], cwd=ROOT,
            env=service_env(sim, state_dir, **extra), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f'chillybin did not start: {self.read_log()}')
            try:
                if self.request('GET', '/health')[0] == 200 and self._measured():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        with open(os.path.join(state_dir, 'admin-token')) as f:
            self.token = f.read().strip()

    def _measured(self):
        status, _, body = self.request('GET', '/')
        return status == 200 and len(json.loads(body)) >= self.expect_bays

    def read_log(self):
        with open(self.log.name, 'rb') as f:
            return f.read().decode(errors='replace')

    def connection(self, timeout=10):
        return http.client.HTTPConnection('127.0.0.1', self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """(status, headers as a lower-cased dict, body bytes)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {'Content-Type': 'application/json', **(headers or {})}
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    response.read())
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data)

    def admin(self, extra=None):
        return {'Authorization': f'Bearer {self.token}', **(extra or {})}

    def close(self):
        status = stop(self.proc)
        self.log.close()
        return status
