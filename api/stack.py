"""`make run`: the whole machine on one computer, simulated.

Starts the simulated machine, then chillybin on 127.0.0.1:7001, then jafflr on
127.0.0.1:7000, each as its own process, waits until each answers, and prints where
they are. Ctrl-C (or SIGTERM) stops them in reverse order and waits for each to exit.
"""
import argparse
import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time

from api.jafflr.stopping import STOP_BOUND_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _wait_for_socket(path, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def _wait_for_http(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=1)
            conn.request('GET', '/health')
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _has(module):
    return importlib.util.find_spec(module) is not None


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m api.stack', description=__doc__.split('\n')[0])
    parser.add_argument('--speed', type=float, default=float(os.environ.get('SPEED', 1)),
                        help='simulated time runs this many times fast (default 1)')
    parser.add_argument('--state-dir', default=os.path.join(ROOT, '.run'))
    parser.add_argument('--chillybin-port', type=int, default=7001)
    parser.add_argument('--jafflr-port', type=int, default=7000)
    args = parser.parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    sim_socket = os.path.join(args.state_dir, 'sim.sock')
    env = dict(os.environ, JAFFLR_MACHINE='sim', JAFFLR_SIM_SOCKET=sim_socket,
               PYTHONUNBUFFERED='1', PYTHONPATH=ROOT)
    env.setdefault('JAFFLR_STATE_DIR', args.state_dir)
    py = sys.executable
    procs = []

    def stop(*_):
        # One at a time, last started first: jafflr drains (its toastie finishes or is
        # failed safely) while the simulated machine it drives is still there.
        for name, proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_BOUND_S + 10)
            except subprocess.TimeoutExpired:
                print(f'{name} did not stop within {STOP_BOUND_S + 10:.0f} s; killing it',
                      flush=True)
                proc.kill()
        print('stopped', flush=True)

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        sim = subprocess.Popen([py, '-m', 'hardware.sim', '--socket', sim_socket, 'serve',
                                '--speed', str(args.speed)], env=env, cwd=ROOT)
        procs.append(('simulator', sim))
        if not _wait_for_socket(sim_socket, sim, 10):
            raise SystemExit('the simulated machine did not start; see the messages above')
        where = [f'simulated machine  {sim_socket}  (python -m hardware.sim status)']
        for name, module, port in (('chillybin', 'api.chillybin', args.chillybin_port),
                                   ('jafflr', 'api.jafflr', args.jafflr_port)):
            if not _has(module):
                continue
            proc = subprocess.Popen([py, '-m', module, '--port', str(port)], env=env, cwd=ROOT)
            procs.append((name, proc))
            if not _wait_for_http(port, proc, 20):
                raise SystemExit(f'{name} did not start; see the messages above')
            where.append(f'{name:18} http://127.0.0.1:{port}/')
        print('\njafflr is running (simulated, speed x%g):' % args.speed)
        for line in where:
            print('  ' + line)
        print('Ctrl-C stops everything.\n', flush=True)
        while all(p.poll() is None for _, p in procs):
            time.sleep(0.5)
        for name, proc in procs:
            if proc.poll() is not None:
                print(f'{name} exited with status {proc.returncode}; stopping the rest', flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == '__main__':
    sys.exit(main())
