"""The wheelhouse: markers evaluated for the Pi, every wheel pinned with its hash, offline install."""
import os
import subprocess
import sys

import pytest

from deploy import build_wheelhouse
from deploy.build_wheelhouse import WheelhouseError, build, requirements_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIREMENTS = os.path.join(ROOT, 'requirements.txt')


def test_wheelhouse_markers_are_the_pi_s_not_the_controller_s():
    aarch64 = requirements_for(REQUIREMENTS, 'aarch64')
    x86 = requirements_for(REQUIREMENTS, 'x86_64')
    assert 'lgpio==0.2.2.0' in aarch64 and not [r for r in x86 if r.startswith('lgpio')]
    assert set(x86) < set(aarch64) and not [r for r in aarch64 if ';' in r]


def test_wheelhouse_refuses_a_32_bit_pi(tmp_path):
    with pytest.raises(WheelhouseError, match='64-bit'):
        build(REQUIREMENTS, 'armv7l', str(tmp_path))


def _fake_pip(folder):
    """A pip that 'downloads' two wheels, and remembers how it was called."""
    script = folder / 'pip.py'
    script.write_text(
        'import os, sys\n'
        f'open({str(folder / "argv")!r}, "w").write("\\n".join(sys.argv[1:]))\n'
        'dest = sys.argv[sys.argv.index("--dest") + 1]\n'
        'for name in ("lgpio-0.2.2.0-cp311-cp311-manylinux_2_34_aarch64.whl",\n'
        '             "tinydb-4.9.0-py3-none-any.whl"):\n'
        '    open(os.path.join(dest, name), "wb").write(name.encode())\n')
    return (sys.executable, str(script))


def test_wheelhouse_pins_every_wheel_with_its_sha256_and_asks_for_the_pi_s_platform(tmp_path):
    import hashlib
    out = build(REQUIREMENTS, 'aarch64', str(tmp_path / 'dist'), pip=_fake_pip(tmp_path))
    argv = (tmp_path / 'argv').read_text().split('\n')
    assert argv[argv.index('--platform') + 1] == 'manylinux_2_34_aarch64'
    assert argv[argv.index('--python-version') + 1] == '3.11' and '--only-binary=:all:' in argv
    assert 'lgpio==0.2.2.0' in argv
    lock = open(os.path.join(out['wheelhouse'], 'requirements.lock')).read().splitlines()
    digest = hashlib.sha256(b'tinydb-4.9.0-py3-none-any.whl').hexdigest()
    assert f'tinydb==4.9.0 --hash=sha256:{digest}' in lock and out['wheels'] == 2
    (tmp_path / 'argv').unlink()
    again = build(REQUIREMENTS, 'aarch64', str(tmp_path / 'dist'), pip=_fake_pip(tmp_path))
    assert again == out and not (tmp_path / 'argv').exists(), 'built twice'


def test_wheelhouse_real_x86_wheels_install_offline_with_hashes_and_a_tampered_one_is_refused(tmp_path):
    out = build(REQUIREMENTS, 'x86_64', str(tmp_path / 'dist'))
    house = out['wheelhouse']
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    pip = [sys.executable, '-m', 'pip', '--python', str(venv / 'bin' / 'python'), 'install',
           '--quiet', '--no-index', '--find-links', house, '--require-hashes', '-r',
           os.path.join(house, 'requirements.lock')]
    env = dict(os.environ, PIP_CONSTRAINT='', PIP_FIND_LINKS='', PIP_EXTRA_INDEX_URL='',
               PIP_CONFIG_FILE=os.devnull)
    done = subprocess.run(pip, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    tinydb = next(n for n in os.listdir(house) if n.startswith('tinydb'))
    with open(os.path.join(house, tinydb), 'ab') as f:
        f.write(b'tampered')
    again = subprocess.run(pip + ['--force-reinstall'], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode != 0 and 'hash' in again.stderr.lower(), again.stderr
