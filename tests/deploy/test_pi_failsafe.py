"""deploy/roles/pi_failsafe run for real (ansible-playbook, local connection) against a
scratch tree standing in for a Pi's /boot/firmware and /etc/systemd: what it writes, that it
says a reboot is needed exactly when config.txt changed, and that it refuses a Pi without
config.txt. Nothing on this machine is touched (pi_failsafe_apply_now=false: no re-exec)."""
import json
import os
import subprocess
import sys

import pytest

from .test_ansible import DEPLOY, _env, _tool

PLAYBOOK = '''---
- name: The Pi fail-safe role alone
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - pi_failsafe
'''
STOCK_CONFIG = '''# Raspberry Pi OS bookworm's config.txt, shortened
dtparam=i2c_arm=on
[cm4]
otg_mode=1
[pi4]
arm_boost=1
'''


@pytest.fixture
def pi(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('the role writes root-owned files: run as root (CI does)')
    (tmp_path / 'boot').mkdir()
    (tmp_path / 'boot/config.txt').write_text(STOCK_CONFIG)
    (tmp_path / 'units').mkdir()
    (tmp_path / 'units/systemd-time-wait-sync.service').write_text('[Unit]\n')
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    return tmp_path


def run_role(pi, machine='pi', **extra):
    variables = {'jafflr_machine': machine, 'pi_failsafe_apply_now': False,
                 'ansible_python_interpreter': sys.executable,
                 'pi_failsafe_config_txt': str(pi / 'boot/config.txt'),
                 'pi_failsafe_systemd_dir': str(pi / 'etc-systemd'),
                 'pi_failsafe_unit_dir': str(pi / 'units'), **extra}
    env = dict(_env(), ANSIBLE_ROLES_PATH=os.path.join(DEPLOY, 'roles'))
    return subprocess.run([_tool('ansible-playbook'), '-i', 'localhost,', str(pi / 'play.yml'),
                           '-e', json.dumps(variables)], capture_output=True, text=True,
                          env=env, cwd=str(pi), timeout=300)


def test_pi_failsafe_sets_strict_gpiod_for_every_model_and_arms_the_watchdog(pi):
    out = run_role(pi)
    assert out.returncode == 0, out.stdout + out.stderr
    config = (pi / 'boot/config.txt').read_text()
    assert config.startswith(STOCK_CONFIG), 'the rest of config.txt is kept'
    block = config[len(STOCK_CONFIG):].splitlines()
    # [all] first: appended after [pi4] the lines would otherwise apply to a Pi 4 only.
    assert block[1:4] == ['[all]', 'dtparam=strict_gpiod', 'dtparam=watchdog=on'], block
    assert 'REBOOT the Pi' in out.stdout
    manager = (pi / 'etc-systemd/system.conf.d/jafflr-watchdog.conf').read_text()
    assert '[Manager]\n' in manager and 'RuntimeWatchdogSec=15s\n' in manager
    wait = (pi / 'etc-systemd/system/systemd-time-wait-sync.service.d/jafflr.conf').read_text()
    assert 'TimeoutStartSec=2min' in wait
    again = run_role(pi)                    # nothing changed: no reboot asked for
    assert again.returncode == 0 and 'REBOOT' not in again.stdout, again.stdout
    assert 'changed=0' in again.stdout
    assert (pi / 'boot/config.txt').read_text() == config


def test_pi_failsafe_refuses_a_pi_without_config_txt(pi):
    (pi / 'boot/config.txt').unlink()
    out = run_role(pi)
    assert out.returncode != 0
    assert 'released GPIO lines cannot be made to return to inputs' in out.stdout


def test_pi_failsafe_leaves_a_simulated_host_alone(pi):
    out = run_role(pi, machine='sim')
    assert out.returncode == 0, out.stdout + out.stderr
    assert (pi / 'boot/config.txt').read_text() == STOCK_CONFIG
    assert not (pi / 'etc-systemd').exists()


def test_pi_failsafe_says_when_boots_cannot_wait_for_the_clock(pi):
    (pi / 'units/systemd-time-wait-sync.service').unlink()
    out = run_role(pi)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'systemd-time-wait-sync.service is not installed' in out.stdout
