"""The machine as real processes for the campaign, started by the launcher
(api/launcher.py): the simulator and both services on free loopback ports and a state
directory of the test's own, with kill -9 and restart of one service, plain HTTP with one
connection a request, and the simulated world's state. Only processes started here are
ever signalled, by their pid."""
import http.client
import json
import socket

from api.launcher import Launcher


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


class Machine(Launcher):
    """sim + chillybin + jafflr as processes, as the launcher starts them; the state
    directory is kept across restarts."""

    def __init__(self, state_dir, speed=10.0, seed=1, env=None):
        super().__init__(state_dir, speed=speed, seed=seed, stop_timeout_s=60,
                         env={'CHILLYBIN_TICK_S': '0.2', **(env or {})})

    @property
    def ports(self):
        return {name: p.port for name, p in self.processes.items() if p.port}

    def start_service(self, name):
        """Start a service again (same port and state), after kill9 or a crash."""
        return self.restart(name)

    # -- talking to it -----------------------------------------------------------------------
    def admin(self):
        return {'Authorization': f'Bearer {self.token()}'}

    def http(self, service, method, path, body=None, headers=None, timeout=30.0):
        return request(self[service].port, method, path, body, headers, timeout)

    def status(self):
        """The simulated machine as `python -m hardware.sim status-json` prints it."""
        return self.world()

    def bay_units(self):
        return {b['ingredient']: b['units'] for b in self.status()['bays'] if b['ingredient']}

    def wait(self, condition, timeout, what, every=0.1):
        return self.wait_for(condition, timeout, what, interval=every)
