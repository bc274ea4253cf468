"""The one launcher (api/launcher.py): the environment every process gets, ready meaning
/v2/ready, the stop order, kill -9 and restart, cgroup confinement, a start that fails,
and `make run` itself."""
import os
import signal
import subprocess
import sys
import time

import pytest

from api import launcher as launcher_module
from api.launcher import ROOT, Launcher, Process, free_port, http_status
from hardware.sim.protocol import CHECKOUT_SOCKET

SPEED = 10


def test_launcher_environment_drops_what_is_one_units_and_the_callers_settings(monkeypatch, tmp_path):
    for name, value in {'LISTEN_FDS': '1', 'LISTEN_PID': '1', 'NOTIFY_SOCKET': '/run/n',
                        'CREDENTIALS_DIRECTORY': '/run/c', 'JAFFLR_FLAG_PICK_V2': 'off',
                        'JAFFLR_HOSTNAMES': 'kitchen.local', 'CHILLYBIN_TICK_S': '9',
                        'JAFFLR_SIM_SOCKET': '/elsewhere.sock', 'HOME': '/home/cook'}.items():
        monkeypatch.setenv(name, value)
    env = Launcher(tmp_path).environment()
    assert not {'LISTEN_FDS', 'LISTEN_PID', 'NOTIFY_SOCKET', 'CREDENTIALS_DIRECTORY',
                'JAFFLR_FLAG_PICK_V2', 'JAFFLR_HOSTNAMES', 'CHILLYBIN_TICK_S'} & set(env)
    assert env['HOME'] == '/home/cook'
    assert (env['JAFFLR_MACHINE'], env['JAFFLR_SIM_SOCKET'], env['JAFFLR_STATE_DIR'],
            env['PYTHONPATH']) == ('sim', str(tmp_path / 'sim.sock'), str(tmp_path), ROOT)
    # make run passes a developer's settings on; never systemd's sockets or notify socket
    kept = Launcher(tmp_path, inherit=True, env={'CHILLYBIN_TICK_S': '0.2'}).environment(
        str(tmp_path / 'jafflr'), {'JAFFLR_FLAG_PICK_V2': 'on'})
    assert kept['JAFFLR_HOSTNAMES'] == 'kitchen.local' and 'LISTEN_FDS' not in kept
    assert 'NOTIFY_SOCKET' not in kept and kept['JAFFLR_SIM_SOCKET'] == str(tmp_path / 'sim.sock')
    assert (kept['CHILLYBIN_TICK_S'], kept['JAFFLR_FLAG_PICK_V2'], kept['JAFFLR_STATE_DIR']) == \
        ('0.2', 'on', str(tmp_path / 'jafflr'))


def test_launcher_make_runs_socket_is_where_the_simulators_cli_looks():
    args = launcher_module._parser().parse_args([])
    assert os.path.join(args.state_dir, 'sim.sock') == CHECKOUT_SOCKET == \
        os.path.join(ROOT, '.run', 'sim.sock')
    assert (args.jafflr_port, args.chillybin_port) == (7000, 7001)


def test_launcher_ready_restart_confinement_and_stop_order(tmp_path, monkeypatch):
    groups = tmp_path / 'cgroups'

    def cpu_group(name):          # a folder stands in for a cgroup: cgroup.procs gets the pid
        (groups / name).mkdir(parents=True, exist_ok=True)
        return str(groups / name)
    stopped = []
    real_stop = Process.stop
    monkeypatch.setattr(Process, 'stop', lambda self, *a, **k: stopped.append(self.name) or
                        real_stop(self, *a, **k))
    machine = Launcher(tmp_path / 'machine', speed=SPEED, cpu_group=cpu_group)
    with machine:
        chilly, jafflr = machine['chillybin'], machine['jafflr']
        assert http_status(chilly.port, '/v2/ready') == 200
        assert http_status(jafflr.port, '/v2/ready') == 200
        # confined from before it ran; chillybin's replica in a group of its own; not the sim
        assert (groups / 'jafflr' / 'cgroup.procs').read_text() == str(jafflr.pid)
        assert (groups / 'chillybin' / 'cgroup.procs').read_text() == str(chilly.pid)
        replica = (groups / 'chillybin-replica' / 'cgroup.procs').read_text()
        assert replica and replica != str(chilly.pid)
        # the plate process (the heater control) started before jafflr, in a group of its own
        assert (groups / 'plate' / 'cgroup.procs').read_text() == str(machine['plate'].pid)
        assert sorted(machine.groups) == ['chillybin', 'chillybin-replica', 'jafflr', 'plate']
        # a crash and a restart: the same port and state, ready again
        machine.kill9('chillybin')
        assert chilly.returncode == -signal.SIGKILL
        again = machine.restart('chillybin')
        assert again is machine['chillybin'] and again.port == chilly.port
        assert http_status(again.port, '/v2/ready') == 200
        assert machine.token('chillybin') == machine.token('jafflr'), 'one state folder'
    # jafflr first (it drains while the machine is there), then its plate, the simulator
    # last, though chillybin was started after jafflr
    assert stopped == ['jafflr', 'plate', 'chillybin', 'sim']
    assert [p.name for p in machine.started] == ['sim', 'chillybin', 'plate', 'jafflr', 'chillybin']
    assert [p.returncode for p in machine.started] == [0, -signal.SIGKILL, 0, 0, 0]


def test_launcher_a_service_that_exits_at_start_is_named_with_its_log(tmp_path):
    machine = Launcher(tmp_path)
    with pytest.raises(RuntimeError) as caught:
        machine.start('jafflr', env={'JAFFLR_MACHINE': 'pi', 'JAFFLR_DEBUG_HOOKS': '1'})
    # jafflr's plate process starts first, with the same settings, and refuses them first
    assert 'plate exited with status 2' in str(caught.value)
    assert 'JAFFLR_DEBUG_HOOKS' in str(caught.value), 'its log is in the message'
    assert machine.close() == {}


def test_launcher_a_service_that_is_live_but_not_ready_is_a_timeout_naming_the_check(tmp_path):
    machine = Launcher(tmp_path, speed=SPEED)
    try:
        machine.start_sim()
        for bay in ('bread', 'cheese', 'vegemite'):     # no load cell answers: not ready
            machine.sim('fault', f'loadcell-nack:{bay}', 'on')
        with pytest.raises(TimeoutError, match=r'chillybin on port \d+ was not ready '
                                               r'\(GET /v2/ready 200\): not within 3 s'):
            machine.start('chillybin', timeout=3)
        live = machine.start('chillybin', until='live')
        assert http_status(live.port, '/health') == 200
        assert http_status(live.port, '/v2/ready') == 503
    finally:
        machine.close()


@pytest.mark.parametrize('how', ['ctrl-c', 'sigterm'])
def test_launcher_make_run_serves_until_stopped_then_stops_everything_in_order(tmp_path, how):
    """`make run` in a terminal: Ctrl-C reaches its whole process group. The services are
    in sessions of their own, so only the launcher hears it and stops them in order:
    jafflr drained before chillybin, the simulator last (no service loses its machine
    while closing: no traceback)."""
    ports = [free_port(), free_port()]
    run = subprocess.Popen(
        [sys.executable, '-m', 'api.launcher', '--speed', str(SPEED), '--state-dir',
         str(tmp_path), '--chillybin-port', str(ports[0]), '--jafflr-port', str(ports[1])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith('JAFFLR_')})
    try:
        lines = []
        for line in run.stdout:
            lines.append(line)
            if 'Ctrl-C stops everything' in line:
                break
        text = ''.join(lines)
        assert f'http://127.0.0.1:{ports[1]}/' in text, text
        assert f'--socket {tmp_path}/sim.sock status' in text, 'not the checkout\'s: says how'
        assert [http_status(p, '/v2/ready') for p in ports] == [200, 200]
        children = launcher_module.descendants(run.pid)
        if how == 'ctrl-c':
            os.killpg(run.pid, signal.SIGINT)
        else:
            run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0
        after = run.stdout.read()
        assert after.strip().endswith('stopped') and 'Traceback' not in after, after
        assert after.index('jafflr drained') < after.index('chillybin drained'), after
        assert [http_status(p, '/health') for p in ports] == [None, None]
        assert not [pid for pid in children if os.path.exists(f'/proc/{pid}')], 'left running'
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def test_launcher_asked_again_while_stopping_still_stops_everything(tmp_path, monkeypatch):
    """A second Ctrl-C (or SIGTERM) while jafflr drains: the rest are stopped at once, none
    left running in its own session where the terminal cannot reach it."""
    launcher = Launcher(str(tmp_path))
    for name in ('sim', 'chillybin', 'jafflr'):
        popen = subprocess.Popen(['sleep', '60'], start_new_session=True)
        launcher.started.append(Process(name, popen, str(tmp_path / f'{name}.log')))
    real_stop = Process.stop

    def draining_then_interrupted(self, timeout, signum=signal.SIGTERM):
        if self.name == 'jafflr':
            raise KeyboardInterrupt()          # Ctrl-C again during jafflr's drain
        return real_stop(self, timeout, signum)
    monkeypatch.setattr(Process, 'stop', draining_then_interrupted)
    started = time.monotonic()
    try:
        statuses = launcher.close()
        left = [p.name for p in launcher.started if p.alive()]
    except KeyboardInterrupt:
        pytest.fail('the second interrupt escaped close(): the rest were left running')
    finally:
        for p in launcher.started:
            p.popen.kill()
            p.popen.wait()
    assert left == [], statuses
    assert set(statuses) == {'sim', 'chillybin', 'jafflr'} and time.monotonic() - started < 10
