"""chillybin as a real process on loopback, for the tests over real HTTP: the launcher
(api/launcher.py) starts it beside the simulated machine; `Chillybin` adds requests.

Each test gets its own state directory and ephemeral port, and stops only what it started."""
import http.client
import json
import os

from api.launcher import Launcher


def simulator(folder, speed=20):
    """A launcher in `folder` with the simulated machine started."""
    machine = Launcher(folder, speed=speed)
    machine.start_sim()
    return machine


def run_chillybin(machine, state_dir, *args, **env):
    """`python -m api.chillybin ARGS` to completion (migrate, or a start that must fail);
    `machine` None: with no simulator to reach."""
    machine = machine or Launcher(state_dir)
    return machine.run('api.chillybin', *args, state_dir=state_dir, env=env)


class Chillybin:
    """One chillybin started on `machine` (ready: its /v2/ready answers 200), and requests
    to it. `env`: settings for this one."""

    def __init__(self, machine, state_dir, **env):
        os.makedirs(state_dir, exist_ok=True)
        self.process = machine.start('chillybin', state_dir=state_dir, env=env, timeout=20)
        self.port, self.proc, self.state_dir = self.process.port, self.process.popen, state_dir
        self.token = self.process.admin_token()

    def read_log(self):
        return self.process.log()

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
        """SIGTERM; its exit status (SIGKILL after 15 s, and then not 0)."""
        return self.process.stop(15)
