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
