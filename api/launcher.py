"""The simulated machine and the services as processes, started one way for everyone:
`make run` (`python -m api.launcher`), the benchmarks and every test harness.

    with Launcher(folder, speed=10) as machine:      # simulator, chillybin, the plate, jafflr
        machine.url('jafflr', '/v2/status')

or a piece at a time (a test that starts its own jafflr, kills chillybin, ...):

    launcher = Launcher(folder, speed=20)
    launcher.start_sim(plate_c=175)
    chilly = launcher.start('chillybin')
    jafflr = launcher.start('jafflr', state_dir=..., env={'JAFFLR_DEADMAN_S': '8'})
    launcher.kill9('chillybin'); launcher.restart('chillybin')
    launcher.close()          # jafflr first, then its plate, the simulator last; each waited for

Starting jafflr starts its plate process first (`start_plate`: the heater control, which
jafflr reaches on a local socket), unless one runs for the same state directory.

Every process gets the same environment (`environment`), is ready by the same test (the
simulator's socket answers; a service's `/v2/ready` is 200) and is stopped the same way
(SIGTERM, then SIGKILL after `stop_timeout_s`). Output goes to a log file per process in
the folder (`logs()` for an assertion message), or to this terminal for `make run`.
"""
import argparse
import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from signal import SIGKILL, SIGTERM

from api.jafflr.stopping import STOP_BOUND_S
from hardware.sim.protocol import CHECKOUT_SOCKET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICES = ('chillybin', 'jafflr')          # the order they start in; they stop in reverse
READY_PATH = '/v2/ready'                    # each service's own readiness (api/common/health.py)
LIVE_PATH = '/health'                       # answers as soon as it serves, ready or not
# What systemd hands one unit (its sockets, notify socket, watchdog, credentials): never
# for a process we start, or it would take another's sockets or report as it.
ONE_PROCESS_ONLY = ('LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET',
                    'WATCHDOG_USEC', 'WATCHDOG_PID', 'CREDENTIALS_DIRECTORY')
SETTINGS_PREFIXES = ('JAFFLR_', 'CHILLYBIN_')
# The plate process's priority, as systemd/jafflr-plate.service gives it (Nice=-10). Not
# its SCHED_FIFO: a real-time process would escape bench/pi.py's CPU quota (the quota
# governs the normal scheduler), so the Pi figures are measured without that advantage.
PLATE_NICE = -10


def free_port(host='127.0.0.1'):
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def socket_answers(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_status(port, path, timeout=2.0):
    """The status GET `path` answers on 127.0.0.1:port, or None when nothing answered."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request('GET', path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def descendants(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            kids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []
    return [p for kid in kids for p in [kid] + descendants(kid)]


def join_cgroup(group, pid=0):
    """Put pid (0: this process) into a cgroup directory; run in the child before exec."""
    with open(os.path.join(group, 'cgroup.procs'), 'w') as f:
        f.write(str(pid or os.getpid()))


def _before_exec(group, nice):
    """In the child, before exec: its cgroup, and a higher priority where allowed (root)."""
    if group:
        join_cgroup(group)
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass            # not root: the plate runs at the same priority as the rest


class Process:
    """One process the launcher started: the simulator or a service."""

    def __init__(self, name, popen, log_path, port=None, state_dir=None, start=None):
        self.name, self.popen, self.log_path = name, popen, log_path
        self.port, self.state_dir = port, state_dir
        self.start_kwargs = start or {}       # what restart() starts again

    @property
    def pid(self):
        return self.popen.pid

    @property
    def returncode(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def signal(self, signum):
        if self.alive():
            self.popen.send_signal(signum)

    def wait(self, timeout):
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout, signum=SIGTERM):
        """`signum`, then SIGKILL if it has not exited within `timeout` s; its exit status."""
        self.signal(signum)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f'{self.name} (pid {self.pid}) did not stop within {timeout:g} s; killing it',
                  file=sys.stderr, flush=True)
            self.popen.kill()
            return self.popen.wait()

    def url(self, path='/'):
        return f'http://127.0.0.1:{self.port}{path}'

    def admin_token(self):
        with open(os.path.join(self.state_dir, 'admin-token'), encoding='utf-8') as f:
            return f.read().strip()

    def log(self, lines=None):
        """The last `lines` lines of its output (all of it with None); '' on a terminal."""
        if self.log_path is None:
            return ''
        try:
            with open(self.log_path, encoding='utf-8', errors='replace') as f:
                return ''.join(f.readlines()[-lines:] if lines else f.readlines())
        except OSError:
            return ''

    def __repr__(self):
        state = 'running' if self.alive() else f'exit {self.returncode}'
        return f'<{self.name} pid {self.pid} port {self.port} {state}>'


class Launcher:
    """The simulator and services of one machine as processes, in one folder.

    `inherit`: pass the caller's own JAFFLR_* and CHILLYBIN_* settings on (`make run`, so
    `JAFFLR_HOSTNAMES=... make run` works); a test or benchmark leaves them out and sets
    what it means with `env`. `cpu_group(name)`: a cgroup directory for the process
    called name ('chillybin', 'jafflr', 'chillybin-replica'), or None (bench/pi.py).
    `console`: output to this terminal, not to log files."""

    def __init__(self, folder=None, speed=1.0, seed=1, env=None, inherit=False,
                 console=False, cpu_group=None, stop_timeout_s=STOP_BOUND_S + 10):
        self.folder = str(folder or tempfile.mkdtemp(prefix='jafflr-'))
        os.makedirs(self.folder, exist_ok=True)
        self.speed, self.seed = speed, seed
        self.sim_socket = os.path.join(self.folder, 'sim.sock')
        self.env = dict(env or {})           # for every process; may be changed before start
        self.inherit, self.console = inherit, console
        self.cpu_group = cpu_group
        self.stop_timeout_s = stop_timeout_s
        self.processes = {}                  # name -> the latest process of that name
        self.started = []                    # every process, in the order started
        self.groups = {}                     # name -> cgroup directory, with cpu_group
        self._count = itertools.count(1)
        self._link = None

    # -- the environment -------------------------------------------------------------------
    def environment(self, state_dir=None, extra=None):
        env = {k: v for k, v in os.environ.items() if k not in ONE_PROCESS_ONLY and
               (self.inherit or not k.startswith(SETTINGS_PREFIXES))}
        env.update(PYTHONPATH=ROOT, PYTHONUNBUFFERED='1', JAFFLR_MACHINE='sim',
                   JAFFLR_SIM_SOCKET=self.sim_socket)
        env['JAFFLR_STATE_DIR'] = state_dir or self.folder
        env.update(self.env)
        env.update(extra or {})
        return env

    # -- starting --------------------------------------------------------------------------
    def _spawn(self, name, argv, state_dir=None, env=None, port=None, group=None, start=None,
               nice=0):
        log_path, out = None, None
        if not self.console:
            log_path = os.path.join(self.folder, f'{next(self._count):02d}-{name}.log')
            out = open(log_path, 'wb')
        try:
            # A session of its own: a Ctrl-C in the terminal reaches the launcher alone,
            # which stops them in order (jafflr drains while the simulator is still there).
            popen = subprocess.Popen(
                [sys.executable, *argv], cwd=ROOT, env=self.environment(state_dir, env),
                stdout=out, stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
                preexec_fn=(lambda: _before_exec(group, nice)) if group or nice else None)
        finally:
            if out:
                out.close()
        process = Process(name, popen, log_path, port, state_dir or self.folder, start)
        self.processes[name] = process
        self.started.append(process)
        return process

    def start_sim(self, seed=None, plate_c=None, timeout=20.0):
        """`python -m hardware.sim serve`; returns once its socket answers. `plate_c`: the
        plate starts that hot (saves 3.5 simulated minutes of preheat)."""
        argv = ['-m', 'hardware.sim', '--socket', self.sim_socket, 'serve', '--speed',
                f'{self.speed:g}', '--seed', str(self.seed if seed is None else seed)]
        if plate_c is not None:
            argv += ['--plate-c', f'{plate_c:g}']
        sim = self._spawn('sim', argv)
        self.wait_for(lambda: self._up(sim) and socket_answers(self.sim_socket), timeout,
                      'the simulated machine did not start')
        return sim

    def start(self, name, port=None, state_dir=None, env=None, until='ready', timeout=40.0,
              module=None, chillybin=None):
        """A service, `python -m api.<name> --port P` (or `module`), on `port` (default: a free
        one). `until`: 'ready' (its /v2/ready answers 200), 'live' (its /health does: for a
        service started into a fault on purpose) or None. jafflr is pointed at `chillybin`
        (a Process; default the latest chillybin started)."""
        port = port or free_port()
        kwargs = dict(port=port, state_dir=state_dir, env=env, until=until, timeout=timeout,
                      module=module, chillybin=chillybin)
        extra = dict(env or {})
        chillybin = chillybin or self.processes.get('chillybin')
        if name == 'jafflr' and chillybin is not None:
            extra.setdefault('CHILLYBIN_URL', f'http://127.0.0.1:{chillybin.port}')
        if name == 'jafflr' and module is None:
            plate = self.start_plate(state_dir, env)
            extra.setdefault('JAFFLR_PLATE_SOCKET', plate.socket)
        group = self.cpu_group(name) if self.cpu_group else None
        process = self._spawn(name, ['-m', module or f'api.{name}', '--port', str(port)],
                              state_dir, extra, port, group, kwargs)
        if until:
            self.wait_ready(process, until, timeout)
        if group:
            self._confine(process, group)
        return process

    def start_plate(self, state_dir=None, env=None, timeout=40.0):
        """The plate process (`python -m api.plate`: the heater control) for a jafflr on
        `state_dir`, as systemd keeps it: one per machine, left running when jafflr is
        killed or restarts. One left by a jafflr on another state dir is stopped first (two
        would drive the same heater). Started again for the same state dir (`restart('plate')`
        after a kill -9) it listens on the same socket, where that jafflr reconnects. Ready
        when its socket answers."""
        state_dir = state_dir or self.folder
        plate = self.processes.get('plate')
        if plate is not None and plate.alive() and plate.state_dir == state_dir:
            return plate
        if plate is not None and plate.alive():
            self.stop(plate)
        # A plate started again for the same jafflr listens where that jafflr connects
        # (systemd's is always /run/jafflr-plate/plate.sock).
        if plate is not None and plate.state_dir == state_dir:
            socket_path = plate.socket
        else:
            socket_path = os.path.join(self.folder, f'plate-{next(self._count):02d}.sock')
        extra = {**(env or {}), 'JAFFLR_PLATE_SOCKET': socket_path}
        group = self.cpu_group('plate') if self.cpu_group else None
        plate = self._spawn('plate', ['-m', 'api.plate'], state_dir, extra, group=group,
                            nice=PLATE_NICE,
                            start={'state_dir': state_dir, 'env': env, 'timeout': timeout})
        plate.socket = socket_path
        self.wait_for(lambda: self._up(plate) and socket_answers(socket_path), timeout,
                      'the plate process did not start')
        if group:
            self.groups['plate'] = group
        return plate

    def wait_ready(self, process, until='ready', timeout=40.0):
        path = {'ready': READY_PATH, 'live': LIVE_PATH}[until]
        self.wait_for(lambda: self._up(process) and http_status(process.port, path) == 200,
                      timeout, f'{process.name} on port {process.port} was not {until} '
                               f'(GET {path} 200)')

    def _up(self, process):
        if not process.alive():
            raise RuntimeError(f'{process.name} exited with status {process.returncode}'
                               f'\n{self.logs()}')
        return True

    def _confine(self, process, group):
        """The service is in its group from before it ran; its children (chillybin's
        replica, forked at start) each move to a group of their own."""
        self.groups[process.name] = group
        for i, pid in enumerate(descendants(process.pid)):
            label = f'{process.name}-replica' if i == 0 else f'{process.name}-{i + 1}'
            own = self.cpu_group(label)
            if own:
                join_cgroup(own, pid)
                self.groups[label] = own

    def start_all(self):
        """The simulator, then each service once the one before it is ready."""
        self.start_sim()
        for name in SERVICES:
            self.start(name)
        return self

    def run(self, module, *args, state_dir=None, env=None, timeout=60):
        """`python -m module ARGS` to completion (a migration, a start that must fail)."""
        return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT,
                              env=self.environment(state_dir, env), capture_output=True,
                              text=True, timeout=timeout)

    # -- using -----------------------------------------------------------------------------
    def __getitem__(self, name):
        return self.processes[name]

    def url(self, name, path='/'):
        return self.processes[name].url(path)

    def token(self, name='jafflr'):
        return self.processes[name].admin_token()

    def sim(self, *args):
        """`python -m hardware.sim ARGS` on this machine, as a person at a shell would."""
        out = subprocess.run([sys.executable, '-m', 'hardware.sim', '--socket', self.sim_socket,
                              *args], cwd=ROOT, env=self.environment(), capture_output=True,
                             text=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError(f'hardware.sim {" ".join(args)} exited {out.returncode}: '
                               f'{out.stderr.strip()}')
        return out.stdout

    @property
    def link(self):
        """The simulator reached in this process (faults, status, its clock)."""
        if self._link is None:
            from hardware.sim.link import SimLink
            self._link = SimLink(self.sim_socket)
        return self._link

    def world(self):
        """The simulated world's state (plate, relay, bays, faults...), through the link."""
        return self.link.status()

    def sim_time(self):
        """The simulator's clock, in simulated seconds."""
        return self.link.clock.monotonic()

    def wait_for(self, condition, timeout, what, interval=0.02):
        """Poll condition() (real seconds) until it returns something true; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f'{what}: not within {timeout:g} s\n{self.logs()}')
            time.sleep(interval)

    def logs(self, lines=25):
        """The tail of each process's log, for an assertion message ('' on a terminal)."""
        if self.console:
            return ''
        return '\n'.join(f'--- {p!r} ---\n{p.log(lines)}' for p in self.started)

    def log_text(self):
        return ''.join(p.log() for p in self.started)

    # -- stopping --------------------------------------------------------------------------
    def stop(self, name, signum=SIGTERM, timeout=None):
        """Stop one process (a name: the latest of that name); its exit status."""
        process = self.processes[name] if isinstance(name, str) else name
        return process.stop(self.stop_timeout_s if timeout is None else timeout, signum)

    def kill9(self, name):
        """SIGKILL one process (ours, by pid) and reap it: a crash."""
        process = self.processes[name]
        os.kill(process.pid, SIGKILL)
        process.wait(10)

    def restart(self, name):
        """Start a service again as it was started (same port and state); kill -9 first
        if it still runs."""
        process = self.processes[name]
        if process.alive():
            self.kill9(name)
        if name == 'plate':
            return self.start_plate(**process.start_kwargs)
        return self.start(name, **process.start_kwargs)

    def close(self):
        """Stop whatever still runs: jafflr first (it drains while the machine it drives is
        still there), the simulator last, the rest last started first. {name: status}."""
        order = sorted(reversed(self.started),
                       key=lambda p: {'jafflr': 0, 'plate': 1, 'sim': 3}.get(p.name, 2))
        statuses, hurry = {}, False
        for process in order:
            if not process.alive():
                continue
            try:
                # Asked again while stopping (a second Ctrl-C, SIGTERM): stop the rest at
                # once, but never leave one running, in its own session out of reach.
                statuses[process.name] = self.stop(process, timeout=1.0 if hurry else None)
            except KeyboardInterrupt:
                hurry = True
                process.popen.kill()
                statuses[process.name] = process.popen.wait()
        if self._link is not None:
            self._link.close()
            self._link = None
        return statuses

    def __enter__(self):
        try:
            return self.start_all()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()


# -- make run ------------------------------------------------------------------------------
def _parser():
    parser = argparse.ArgumentParser(prog='python -m api.launcher',
                                     description='make run: the whole machine, simulated')
    parser.add_argument('--speed', type=float, default=float(os.environ.get('SPEED', 1)),
                        help='simulated time runs this many times fast (default 1)')
    parser.add_argument('--state-dir', default=os.path.dirname(CHECKOUT_SOCKET),
                        help='the simulator\'s socket and, unless $JAFFLR_STATE_DIR says '
                             'otherwise, the services\' state (default: .run in the checkout)')
    parser.add_argument('--chillybin-port', type=int, default=7001)
    parser.add_argument('--jafflr-port', type=int, default=7000)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    launcher = Launcher(args.state_dir, speed=args.speed, inherit=True, console=True)
    state_dir = os.environ.get('JAFFLR_STATE_DIR') or launcher.folder
    # Ctrl-C and SIGTERM stop everything, in order, also when started with SIGINT ignored
    # (a script's background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        launcher.start_sim()
        for name in SERVICES:
            launcher.start(name, port=getattr(args, f'{name}_port'), state_dir=state_dir)
        _print_where(launcher)
        while all(p.alive() for p in launcher.started):
            time.sleep(0.5)
        for p in launcher.started:
            if not p.alive():
                print(f'{p.name} exited with status {p.returncode}; stopping the rest', flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f'make run: {exc}', file=sys.stderr, flush=True)
        return 1
    finally:
        launcher.close()
        print('stopped', flush=True)


def _print_where(launcher):
    sim = 'python -m hardware.sim status'
    if os.path.abspath(launcher.sim_socket) != CHECKOUT_SOCKET:
        sim = f'python -m hardware.sim --socket {launcher.sim_socket} status'
    print(f'\njafflr is running (simulated, speed x{launcher.speed:g}):')
    print(f'  simulated machine  {launcher.sim_socket}  ({sim})')
    for name in SERVICES:
        print(f'  {name:18} {launcher.url(name)}')
    plate = launcher.processes.get('plate')
    if plate is not None:
        print(f'  {"heater control":18} {plate.socket}  '
              f'(JAFFLR_PLATE_SOCKET={plate.socket} python -m api.plate status)')
    print('Ctrl-C stops everything.\n', flush=True)


if __name__ == '__main__':
    sys.exit(main())
