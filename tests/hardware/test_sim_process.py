"""The simulated machine as its own process, reached over its socket as services reach it."""
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from hardware.board import BOARD
from hardware.errors import SimulatorUnavailable
from hardware.platform import open_platform

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from .conftest import SIM_SPEED as SPEED      # the speed the `sim` fixture runs at


def _cli(sock, *args):
    return subprocess.run([sys.executable, '-m', 'hardware.sim', '--socket', sock, *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=20)


def beat_for(machine, clock, seconds):
    """Wait `seconds` of simulated time beating the heartbeat, as the control loop does:
    the motor drivers' enable follows the heartbeat monostable."""
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        machine.heater.beat()
        clock.sleep(0.1)


def test_sim_process_status_and_fault_from_a_shell(sim):
    out = _cli(sim, 'status')
    assert out.returncode == 0 and 'plate' in out.stdout and 'bay 1 cheese' in out.stdout
    out = _cli(sim, 'fault', 'heater-welded', 'on')
    assert out.returncode == 0, out.stderr
    assert 'faults: heater-welded' in _cli(sim, 'status').stdout
    _cli(sim, 'fault', 'heater-welded', 'off')
    assert 'faults: none' in _cli(sim, 'status').stdout
    bad = _cli(sim, 'fault', 'kitchen-fire', 'on')
    assert bad.returncode == 1 and 'unknown fault' in bad.stderr


def test_sim_process_reset_button_from_a_shell(sim):
    out = _cli(sim, 'button', 'reset', '--hold', '30')
    assert out.returncode == 0 and 'reset button held for 30 s' in out.stdout, out.stderr
    assert 'buttons held: reset' in _cli(sim, 'status').stdout
    assert 'reset button pressed for 30 s' in _cli(sim, 'status').stdout
    bad = _cli(sim, 'button', 'reset', '--hold', '-1')
    assert bad.returncode == 1 and '0-600 s' in bad.stderr


def test_sim_process_chain_faults_and_hands_from_a_shell(sim):
    for fault in ('feedback-stuck', 'deadman-bypassed', 'current-sense-stuck',
                  'current-sense-failed', 'contactor-welded', 'thermal-fuse-open'):
        out = _cli(sim, 'fault', fault, 'on')
        assert out.returncode == 0, out.stderr
    status = _cli(sim, 'status').stdout
    assert 'contactor closed' in status and 'thermal-fuse-open' in status
    assert _cli(sim, 'fault', 'estop', 'on').returncode == 0
    assert 'contactor closed' in _cli(sim, 'status').stdout      # welded
    _cli(sim, 'fault', 'contactor-welded', 'off')
    assert 'contactor OPEN' in _cli(sim, 'status').stdout
    out = _cli(sim, 'hand', 'lid_closed', 'inactive')
    assert out.returncode == 0, out.stderr
    assert _cli(sim, 'hand', 'lid_closed', 'release').returncode == 0
    bad = _cli(sim, 'hand', 'no_such_input', 'active')
    assert bad.returncode == 1 and 'no input named' in bad.stderr
    assert 'thermostat closed' in _cli(sim, 'reset-thermostat').stdout


def test_sim_process_shares_its_clock_and_world_with_two_clients(sim):
    a = open_platform('sim', sim)
    b = open_platform('sim', sim)
    try:
        assert abs(a.clock.monotonic() - b.clock.monotonic()) < 0.05 * SPEED
        press_side = a.machine(('jafflr', 'plate'))
        bin_side = b.machine('chillybin')
        press_side.dispensers[1].on()
        beat_for(press_side, a.clock, 1.2)
        press_side.dispensers[1].off()
        status = b.link.status()
        assert status['bays'][1]['units'] == 9 and status['tray']['units'] == {'cheese': 1}
        bin_side.chiller.on()
        assert a.link.status()['chiller_on']
        press_side.close()
        bin_side.close()
    finally:
        a.close()
        b.close()


def test_sim_process_input_changes_are_pushed(sim):
    p = open_platform('sim', sim)
    try:
        m = p.machine(('jafflr', 'plate'))
        assert m.press.is_open
        m.press.start_closing()
        beat_for(m, p.clock, 4.3)
        assert m.press.is_closed and not m.press.is_open
        m.close()
    finally:
        p.close()


def test_sim_process_relay_opens_after_client_is_killed_with_heater_on(sim, tmp_path):
    """kill -9 a program holding the heater on: its lines keep their level, as on a Pi,
    and only the heartbeat monostable opens the relay, within its 1 s hold."""
    script = tmp_path / 'holder.py'
    script.write_text(
        'import sys\n'
        'from hardware.platform import open_platform\n'
        'p = open_platform("sim", sys.argv[1])\n'
        'm = p.machine(("jafflr", "plate"))\n'
        'm.heater.on()\n'
        'print("on", flush=True)\n'
        'while True:\n'
        '    m.heater.beat(); p.clock.sleep(0.1)\n')
    holder = subprocess.Popen([sys.executable, str(script), sim], cwd=ROOT, stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    assert holder.stdout.readline().strip() == b'on'
    p = open_platform('sim', sim)
    try:
        p.clock.sleep(0.5)
        assert p.link.status()['relay_closed']
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        killed_at = p.clock.monotonic()
        while p.link.status()['relay_closed']:
            assert p.clock.monotonic() - killed_at < 1.5, 'relay still closed'
            time.sleep(0.005)
        opened_after = p.clock.monotonic() - killed_at
        status = p.link.status()
        assert status['heater_pin'], 'the dead program left the pin high'
        assert opened_after <= 1.0 + 0.1 * SPEED * 0.05
    finally:
        p.close()


def test_sim_process_absent_is_a_loud_error_not_a_fallback(tmp_path):
    with pytest.raises(SimulatorUnavailable, match='python -m hardware.sim serve'):
        open_platform('sim', str(tmp_path / 'nothing.sock'))


def test_commissioning_check_runs_against_the_simulator(sim):
    out = subprocess.run([sys.executable, '-m', 'hardware.check', '--machine', 'sim',
                          '--sim-socket', sim], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'plate_thermocouple  MCP9600 bus 1 0x60' in out.stdout
    parts = len(BOARD.gpio) + len(BOARD.i2c)
    unchecked = len(BOARD.gpio) - 1          # every GPIO line but the heater's feedback
    assert f'{parts - unchecked} of {parts} parts OK, 0 failed, {unchecked} opened but not ' \
           f'checked' in out.stdout
    _cli(sim, 'fault', 'bin-sensor-nack', 'on')
    out = subprocess.run([sys.executable, '-m', 'hardware.check', '--machine', 'sim',
                          '--sim-socket', sim], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 1
    assert 'bin_air' in out.stdout and 'FAIL' in out.stdout
    assert f'{parts - unchecked - 1} of {parts} parts OK, 1 failed' in out.stdout


def test_safe_off_drives_a_killed_programs_outputs_low(sim, tmp_path):
    script = tmp_path / 'holder.py'
    script.write_text(
        'import sys, time\n'
        'from hardware.platform import open_platform\n'
        'p = open_platform("sim", sys.argv[1])\n'
        'm = p.machine(("jafflr", "plate"))\n'
        'm.heater.on(); m.heater.beat(); m.conveyor.run()\n'
        'print("on", flush=True)\n'
        'time.sleep(60)\n')
    holder = subprocess.Popen([sys.executable, str(script), sim], cwd=ROOT, stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    assert holder.stdout.readline().strip() == b'on'
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    p = open_platform('sim', sim)
    try:
        before = p.link.status()
        assert before['heater_pin'] and before['tray_motor_on'], 'the killed program left them on'
        for owner in ('jafflr', 'plate'):     # each unit's ExecStopPost, its own parts
            out = subprocess.run([sys.executable, '-m', 'hardware.safe_off', '--machine', 'sim',
                                  '--owner', owner],
                                 capture_output=True, text=True, cwd=ROOT, timeout=30,
                                 env=dict(os.environ, JAFFLR_SIM_SOCKET=sim))
            assert out.returncode == 0, out.stderr
            after = p.link.status()
            assert not after['tray_motor_on']
            assert after['heater_pin'] == (owner == 'jafflr')
        assert not after['relay_closed']
    finally:
        p.close()


def test_safe_off_without_a_machine_fails_loudly(tmp_path):
    out = subprocess.run([sys.executable, '-m', 'hardware.safe_off', '--machine', 'sim'],
                         capture_output=True, text=True, cwd=ROOT, timeout=30,
                         env=dict(os.environ, JAFFLR_SIM_SOCKET=str(tmp_path / 'none.sock')))
    assert out.returncode == 1 and 'cannot open the machine' in out.stderr


def test_sim_process_client_that_resets_its_connection_is_no_traceback(tmp_path):
    """Found by the crash campaign: every service killed with -9 left a traceback in the
    simulator's log (ConnectionResetError), as if the simulator had failed."""
    sock = str(tmp_path / 'sim.sock')
    proc = subprocess.Popen([sys.executable, '-m', 'hardware.sim', '--socket', sock, 'serve',
                             '--speed', str(SPEED)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert proc.poll() is None and time.monotonic() < deadline, 'simulator did not start'
            time.sleep(0.02)
        for request in (b'{"op": "hello"}\n', b'{"op": "subscribe"}\n'):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(sock)
            client.sendall(request)
            client.recv(4096)
            client.sendall(b'{"op": "hel')         # half a request, then a reset
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            client.close()
        assert _cli(sock, 'status').returncode == 0, 'the simulator still answers'
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert 'Traceback' not in err, err


# -- finding the machine: `python -m hardware.sim status` in a second terminal ---------------------
@pytest.fixture
def checkout():
    """A checkout of hardware/ alone (it imports nothing else of ours) in a short path (a
    Unix socket's path has room for 107 bytes), and the environment of a person's shell in
    it: no $JAFFLR_SIM_SOCKET, $XDG_RUNTIME_DIR a folder of its own."""
    import shutil
    import tempfile
    root = tempfile.mkdtemp(prefix='co-')
    shutil.copytree(os.path.join(ROOT, 'hardware'), os.path.join(root, 'hardware'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    os.makedirs(os.path.join(root, 'xdg'))
    env = {k: v for k, v in os.environ.items() if k not in ('JAFFLR_SIM_SOCKET', 'PYTHONPATH')}
    env['XDG_RUNTIME_DIR'] = os.path.join(root, 'xdg')
    started = []

    def run(*args, wait=True):
        argv = [sys.executable, '-m', 'hardware.sim', *args]
        if wait:
            return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True,
                                  timeout=20)
        started.append(subprocess.Popen(argv, cwd=root, env=env, stderr=subprocess.DEVNULL))
        return started[-1]
    try:
        yield root, env, run
    finally:
        for proc in started:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _serving(proc, path):
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        assert proc.poll() is None and time.monotonic() < deadline, 'simulator did not start'
        time.sleep(0.02)


def _stale_socket(path):
    """A socket file nobody listens on: what a killed `make run` leaves behind."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()


def test_sim_cli_in_a_checkout_finds_the_machine_make_run_started_there(checkout):
    root, _, run = checkout
    made_by_make_run = os.path.join(root, '.run', 'sim.sock')
    os.makedirs(os.path.dirname(made_by_make_run))
    _serving(run('--socket', made_by_make_run, 'serve', wait=False), made_by_make_run)
    out = run('status')
    assert out.returncode == 0 and 'plate' in out.stdout, out.stderr
    assert run('fault', 'lid-open', 'on').returncode == 0
    assert 'faults: lid-open' in run('status').stdout


def test_sim_cli_passes_a_stale_checkout_socket_for_the_default_one(checkout):
    root, env, run = checkout
    _stale_socket(os.path.join(root, '.run', 'sim.sock'))
    default = os.path.join(env['XDG_RUNTIME_DIR'], 'jafflr-sim.sock')
    _serving(run('serve', wait=False), default)          # serve's own default, no --socket
    out = run('status')
    assert out.returncode == 0 and 'plate' in out.stdout, out.stderr


def test_sim_cli_with_nothing_answering_names_every_place_it_looked(checkout):
    root, env, run = checkout
    stale = os.path.join(root, '.run', 'sim.sock')
    _stale_socket(stale)
    out = run('status')
    assert out.returncode == 2
    assert f"{stale} (make run's, in this checkout): Connection refused" in out.stderr
    assert f"{env['XDG_RUNTIME_DIR']}/jafflr-sim.sock" in out.stderr
    assert 'No such file or directory' in out.stderr and 'make run' in out.stderr
    assert 'Traceback' not in out.stderr


def test_sim_cli_an_explicit_socket_is_never_second_guessed(checkout):
    root, env, run = checkout
    made_by_make_run = os.path.join(root, '.run', 'sim.sock')
    os.makedirs(os.path.dirname(made_by_make_run))
    _serving(run('--socket', made_by_make_run, 'serve', wait=False), made_by_make_run)
    env['JAFFLR_SIM_SOCKET'] = os.path.join(root, 'elsewhere.sock')
    out = run('status')
    assert out.returncode == 2, 'it reached a machine it was not told to'
    assert f"{root}/elsewhere.sock ($JAFFLR_SIM_SOCKET): No such file" in out.stderr
    assert made_by_make_run not in out.stderr
    assert run('--socket', made_by_make_run, 'status').returncode == 0


def test_sim_process_all_off_sends_the_heater_then_the_rest_in_one_request(sim):
    """Machine.all_off over the simulator's socket: the heater's write alone and first, then
    every other output in one request (a Pi writes a line with an ioctl that keeps the GIL;
    a round trip each made a STOP under load wait for the GIL once per line). Everything
    is off in the world afterwards, and a write that fails still lets the others through."""
    p = open_platform('sim', sim)
    try:
        m = p.machine(('jafflr', 'plate'))
        m.heater.on()
        m.conveyor.run()
        for d in m.dispensers.values():
            d.on()
        m.buzzer.on()
        calls, call = [], p.link.call

        def counted(op, **fields):
            calls.append((op, fields))
            return call(op, **fields)
        p.link.call = counted
        m.all_off()
        assert [op for op, _ in calls] == ['drive', 'drive_many']
        heater_pin = BOARD.gpio_part('heater_relay').pin
        assert calls[0][1] == {'pin': heater_pin, 'level': False}
        sent = {pin for pin, level in calls[1][1]['pins'] if not level}
        assert {BOARD.gpio_part('tray_motor').pin, BOARD.gpio_part('buzzer').pin} <= sent
        assert {b.dispenser_pin for b in BOARD.bays} <= sent
        world = p.link.status()
        assert not world['relay_closed'] and not world['heater_pin'], world
        assert not world['tray_motor_on'] and not any(b['dispenser_on'] for b in world['bays'])
        # a device whose write fails: the others are still written, the failure is raised
        m.conveyor.run()
        m.dispensers[1].on()

        def fails():
            raise OSError('the buzzer line cannot be written')
        m.buzzer.off = fails
        calls.clear()
        with pytest.raises(OSError, match='buzzer line'):
            m.all_off()
        assert [op for op, _ in calls] == ['drive', 'drive_many']
        world = p.link.status()
        assert not world['tray_motor_on'] and not world['bays'][0]['dispenser_on'], world
        del m.buzzer.off
        p.link.call = call
        m.close()
    finally:
        p.close()
