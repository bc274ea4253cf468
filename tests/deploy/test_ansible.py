"""The playbook passes ansible-lint (offline) and ansible-playbook's syntax check."""
import os
import shutil
import subprocess
import sys

import pytest

DEPLOY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      'deploy')


def _tool(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        path = shutil.which(name)
    if not path:
        pytest.fail(f'{name} is missing: pip install -r deploy/requirements.txt (make test does)')
    return path


def _env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(DEPLOY, 'ansible.cfg'), NO_COLOR='1',
                PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))


def test_ansible_lint_offline_passes():
    out = subprocess.run([_tool('ansible-lint'), '--offline', 'site.yml'], capture_output=True,
                         text=True, cwd=DEPLOY, env=_env(), timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ansible_playbook_syntax_check_with_the_example_inventory():
    out = subprocess.run([_tool('ansible-playbook'), '--syntax-check', '-i',
                          'inventory/example.yml', 'site.yml'], capture_output=True, text=True,
                         cwd=DEPLOY, env=_env(), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


LIMIT_INVENTORY = """all:
  children:
    jafflr_pis:
      vars:
        ansible_connection: local
        ansible_become: false
        ansible_python_interpreter: {python}
        jafflr_machine: sim
        jafflr_base: {base}
      children:
        shop_north:
          hosts: {{north-01: {{}}, north-02: {{}}}}
        shop_south:
          hosts: {{south-01: {{}}}}
"""


def _limited_check(tmp_path, limit):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(LIMIT_INVENTORY.format(python=sys.executable, base=tmp_path / 'opt'))
    return subprocess.run(
        [_tool('ansible-playbook'), '-i', str(inventory), 'site.yml', '--check', '-l', limit,
         '-e', f'release_out={tmp_path / "dist"}', '-e', 'release_version=limited1'],
        capture_output=True, text=True, cwd=DEPLOY, env=_env(), timeout=300)


@pytest.mark.parametrize('limit, hosts', [('shop_north', ['north-01', 'north-02']),
                                          ('north-02', ['north-02'])])
def test_ansible_a_limited_run_builds_the_release_and_hands_it_to_its_pis(tmp_path, limit, hosts):
    # The Pis are this machine over a local connection, in --check: the run goes as far as
    # this machine allows (it is not booted by systemd), which is past the build and the
    # hand-over of the release to the first batch.
    out = _limited_check(tmp_path, limit)
    text = out.stdout + out.stderr
    assert 'is undefined' not in text and "hostvars['localhost']" not in text, text[-3000:]
    for host in hosts:
        assert f'release limited1 (jafflr ' in text and f') for {host}' in text, text[-3000:]
    assert 'south-01' not in text and (len(hosts) == 2 or 'north-01' not in text.replace(
        'north-01 -> localhost', '')), text[-3000:]
    assert f'ok: [{hosts[0]}]' in text.split('Check this Pi has the release this run built')[1], \
        text[-3000:]
    assert (tmp_path / 'dist' / 'jafflr-limited1.tar.gz').exists()
