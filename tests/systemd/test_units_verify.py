"""Every unit in systemd/ passes `systemd-analyze verify`, and says what the contract needs."""
import os
import shutil
import subprocess

import pytest

from .units import DROP_INS, UNIT_DIR, UNITS, unit

EXECUTABLES = ('/opt/jafflr/current/venv/bin/python',)


@pytest.fixture(scope='module')
def verify_root(tmp_path_factory):
    """A scratch root holding the units where a Pi holds them, the distribution's units
    they refer to, and stand-ins for the release's executables, which verify insists on."""
    if not shutil.which('systemd-analyze'):
        pytest.skip("systemd-analyze is missing: apt-get install systemd (.ci/run does)")
    root = tmp_path_factory.mktemp('verify-root')
    shutil.copytree('/usr/lib/systemd/system', root / 'usr/lib/systemd/system', symlinks=True)
    etc = root / 'etc/systemd/system'
    etc.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(os.path.join(UNIT_DIR, name), etc / name)
    for service in ('chillybin.service', 'jafflr.service'):
        (etc / f'{service}.d').mkdir()
        for drop_in in DROP_INS:
            shutil.copy(os.path.join(UNIT_DIR, drop_in), etc / f'{service}.d' / drop_in)
    for exe in EXECUTABLES:
        path = root / exe.lstrip('/')
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy('/bin/true', path)
    return root


@pytest.mark.parametrize('name', UNITS)
def test_unit_passes_systemd_analyze_verify(verify_root, name):
    # verify exits 0 on settings it ignores, so its messages count as failures too.
    out = subprocess.run(['systemd-analyze', 'verify', f'--root={verify_root}', name],
                         capture_output=True, text=True, cwd=verify_root, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip() and not out.stdout.strip(), \
        f'{name}: rc {out.returncode}\n{out.stdout}{out.stderr}'


def test_units_verify_catches_a_bad_setting(verify_root):
    bad = verify_root / 'etc/systemd/system/broken.service'
    bad.write_text('[Service]\nType=notiffy\nExecStart=/opt/jafflr/current/venv/bin/python\n')
    out = subprocess.run(['systemd-analyze', 'verify', f'--root={verify_root}', 'broken.service'],
                         capture_output=True, text=True, cwd=verify_root, timeout=60)
    assert 'notiffy' in out.stderr
    bad.unlink()


@pytest.mark.parametrize('name,port', [('jafflr', '80'), ('chillybin', '7001')])
def test_units_services_are_socket_activated_notify_services(name, port):
    socket, service = unit(f'{name}.socket'), unit(f'{name}.service')
    assert socket['Socket']['ListenStream'] == [port]
    s = service['Service']
    assert service['Unit']['Requires'] == [f'{name}.socket']
    assert s['Type'] == ['notify'] and s['Restart'] == ['on-failure']
    assert s['User'] == ['jafflr'] and s['SupplementaryGroups'] == ['gpio i2c']
    assert s['ExecStart'] == [f'/opt/jafflr/current/venv/bin/python -m api.{name}']
    assert s['ExecStartPre'] == [f'/opt/jafflr/current/venv/bin/python -m api.{name} migrate']
    assert s['ExecStopPost'] == [
        f'/opt/jafflr/current/venv/bin/python -m hardware.safe_off --owner {name}']
    assert s['StateDirectory'] == ['jafflr']
    assert {'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'NoNewPrivileges'} <= set(s)
    assert s['DeviceAllow'] == ['char-gpiochip rw', 'char-i2c rw']
    assert 'JAFFLR_ADMIN_TOKEN_FILE=%d/admin-token' in s['Environment']


def test_units_jafflr_has_a_watchdog_and_time_to_finish_a_toastie():
    s = unit('jafflr.service')['Service']
    assert s['WatchdogSec'] == ['5']
    # Derived from the service's own bound: systemd must not SIGKILL a jafflr that is still
    # finishing a toastie (DRAIN_BOUND_S) and closing; and not wait far longer than that.
    from api.jafflr.stopping import DRAIN_BOUND_S, STOP_BOUND_S
    stop = int(s['TimeoutStopSec'][0])
    assert STOP_BOUND_S > DRAIN_BOUND_S and STOP_BOUND_S <= stop <= STOP_BOUND_S + 30, \
        f'TimeoutStopSec={stop} must be from {STOP_BOUND_S:.0f} to {STOP_BOUND_S + 30:.0f} s'


def test_units_simulator_socket_is_for_the_jafflr_group():
    s = unit('jafflr-sim.service')['Service']
    assert s['RuntimeDirectory'] == ['jafflr-sim'] and s['Group'] == ['jafflr']
    assert '/run/jafflr-sim/sim.sock' in s['ExecStart'][0]
    drop_in = unit('simulated-machine.conf')
    assert 'JAFFLR_SIM_SOCKET=/run/jafflr-sim/sim.sock' in drop_in['Service']['Environment'][0]
