"""The machine as real processes for the campaign: the simulator and both services on
free loopback ports and a state directory of the test's own, with kill -9 and restart
of one service, plain HTTP with one connection a request, and the simulator's
`status-json`. Only processes started here are ever signalled, by their pid."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

from bench.stack import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVICES = ('chillybin', 'jafflr')


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        """The v2 error body's {'status', 'code', 'message', ...}, or {}."""
        try:
            return self.json.get('error') or {}
        except (ValueError, AttributeError):
            return {}

    def __repr__(self):
        return f'<{self.status} {self.body[:200]!r}>'


def request(port, method, path, body=None, headers=None, timeout=30.0):
    """One request on its own connection; an Answer, or OSError when there was none."""
    headers = dict(headers or {})
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers['Content-Type'] = 'application/json'
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, payload, headers)
        response = conn.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      response.read())
    finally:
        conn.close()


def send_and_drop(port, method, path, body=None, headers=None):
    """Send a whole request, then hang up before the answer: a client whose connection
    dropped. The service may or may not have acted on it."""
    payload = json.dumps(body).encode() if body is not None else b''
    lines = [f'{method} {path} HTTP/1.1', f'Host: 127.0.0.1:{port}',
             f'Content-Length: {len(payload)}', 'Connection: close']
    if body is not None:
        lines.append('Content-Type: application/json')
    lines += [f'{k}: {v}' for k, v in (headers or {}).items()]
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        sock.sendall(('\r\n'.join(lines) + '\r\n\r\n').encode() + payload)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    # SO_LINGER 0: the close sends a reset, the way a dropped network does.


class Machine:
    """sim + chillybin + jafflr as processes. `state_dir` is kept across restarts."""

    def __init__(self, state_dir, speed=10.0, seed=1, env=None):
        self.dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.sock = os.path.join(state_dir, 'sim.sock')
        self.speed = speed
        self.seed = seed
        self.ports = {name: free_port() for name in SERVICES}
        self.env = dict(os.environ, JAFFLR_MACHINE='sim', JAFFLR_SIM_SOCKET=self.sock,
                        JAFFLR_STATE_DIR=state_dir, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1',
                        CHILLYBIN_URL=f'http://127.0.0.1:{self.ports["chillybin"]}',
                        CHILLYBIN_TICK_S='0.2')
        for name in ('JAFFLR_ADMIN_TOKEN_FILE', 'CREDENTIALS_DIRECTORY', 'LISTEN_FDS',
                     'LISTEN_PID', 'NOTIFY_SOCKET', 'JAFFLR_HOSTNAMES'):
            self.env.pop(name, None)
        self.env.update(env or {})
        self.procs = {}
        self.log = open(os.path.join(state_dir, 'machine.log'), 'ab')
        self.starts = {name: 0 for name in SERVICES}

    # -- processes -------------------------------------------------------------------------
    def start(self):
        self.procs['sim'] = subprocess.Popen(
            [sys.executable, '-m', 'hardware.sim', '--socket', self.sock, 'serve', '--speed',
             str(self.speed), '--seed', str(self.seed)], cwd=ROOT, env=self.env,
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.procs['sim'].poll() is not None:
                raise RuntimeError('the simulator did not start')
            time.sleep(0.02)
        for name in SERVICES:
            self.start_service(name)
        return self

    def start_service(self, name, timeout=40.0):
        self.starts[name] += 1
        self.procs[name] = subprocess.Popen(
            [sys.executable, '-m', f'api.{name}', '--port', str(self.ports[name])], cwd=ROOT,
            env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout
        while not self._serving(name):
            if self.procs[name].poll() is not None:
                raise RuntimeError(f'{name} exited with {self.procs[name].returncode}; see '
                                   f'{self.log.name}')
            if time.monotonic() > deadline:
                raise TimeoutError(f'{name} did not become ready within {timeout} s')
            time.sleep(0.05)

    def _serving(self, name):
        try:
            if name == 'chillybin':
                answer = request(self.ports[name], 'GET', '/', timeout=2)
                return answer.status == 200 and len(answer.json) >= 3
            return request(self.ports[name], 'GET', '/v2/ready', timeout=2).status == 200
        except (OSError, ValueError):
            return False

    def kill9(self, name):
        """SIGKILL one service (ours, by pid) and reap it."""
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self, name):
        self.kill9(name) if self.procs[name].poll() is None else None
        self.start_service(name)

    def stop(self):
        for name in ('jafflr', 'chillybin', 'sim'):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- talking to it -----------------------------------------------------------------------
    def token(self):
        with open(os.path.join(self.dir, 'admin-token')) as f:
            return f.read().strip()

    def admin(self):
        return {'Authorization': f'Bearer {self.token()}'}

    def http(self, service, method, path, body=None, headers=None, timeout=30.0):
        return request(self.ports[service], method, path, body, headers, timeout)

    def sim(self, *args):
        out = subprocess.run([sys.executable, '-m', 'hardware.sim', '--socket', self.sock, *args],
                             capture_output=True, text=True, cwd=ROOT, env=self.env, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f'hardware.sim {" ".join(args)}: {out.stderr}')
        return out.stdout

    def status(self):
        """The simulated machine as `python -m hardware.sim status-json` prints it."""
        return json.loads(self.sim('status-json'))

    def bay_units(self):
        return {b['ingredient']: b['units'] for b in self.status()['bays'] if b['ingredient']}

    def wait(self, condition, timeout, what, every=0.1):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f'{what}: not within {timeout} s')
            time.sleep(every)

    def log_text(self):
        self.log.flush()
        with open(self.log.name, 'rb') as f:
            return f.read().decode(errors='replace')
