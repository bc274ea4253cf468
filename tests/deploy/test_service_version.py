"""Per-service versions on a scratch git repository: a commit moves only the services it touches."""
import json
import os
import subprocess
import sys

import pytest

from deploy.service_version import module_closure, service_files, service_version

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FILES = {
    'api/__init__.py': '',
    'api/common/__init__.py': '',
    'api/common/serving.py': 'import socket\nfrom hardware import clock\n',
    'api/common/metrics.py': '',
    'api/common/unused.py': '',
    'api/chillybin/__init__.py': '',
    'api/chillybin/__main__.py': 'from .app import build\n',
    'api/chillybin/app.py': 'from ..common import serving\nfrom firmware.stock import Stock\n',
    'api/jafflr/__init__.py': '',
    'api/jafflr/__main__.py': 'import api.common.serving\nfrom . import app\n',
    'api/jafflr/app.py': 'def lazy():\n    from firmware import heater\n    import bottle\n',
    'api/jafflr/openapi.yaml': 'openapi: 3.1.0\n',
    'api/jafflr/panel/index.html': '<p>panel</p>\n',
    'api/jafflr/panel/js/panel.js': 'let a = 1;\n',
    'api/jafflr/panel/README.md': '# panel\n',
    'firmware/heater/curves/k.csv': '0,0\n',
    'firmware/__init__.py': '',
    'firmware/stock.py': 'X = 1\n',
    'firmware/heater/__init__.py': 'from .pid import Pid\n',
    'firmware/heater/pid.py': 'class Pid: pass\n',
    'hardware/__init__.py': '',
    'hardware/clock.py': '',
    'hardware/sim/__init__.py': '',
    'requirements.txt': 'bottle==0.13.4\n',
    'systemd/chillybin.service': '[Service]\n',
    'systemd/jafflr.service': '[Service]\n',
    'api/plate/__init__.py': '',
    'api/plate/__main__.py': 'from firmware import platehost\n',
    'firmware/platehost.py': 'X = 1\n',
    'systemd/jafflr-plate.service': '[Service]\n',
    'README.md': '# scratch\n',
    'api/README.md': '# api\n',
}


def _git(repo, *args):
    return subprocess.run(['git', '-C', str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _commit(repo, changes, message):
    for path, text in changes.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(repo, 'add', '-A')
    _git(repo, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', 'commit', '-qm', message)
    return _git(repo, 'rev-parse', 'HEAD')


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, 'init', '-q')
    _commit(tmp_path, FILES, 'first')
    return tmp_path


def _versions(repo):
    return {s: service_version(str(repo), s) for s in ('chillybin', 'jafflr')}


def test_service_version_closure_follows_relative_absolute_and_lazy_imports(repo):
    assert module_closure(str(repo), 'jafflr') == [
        'api/__init__.py', 'api/common/__init__.py', 'api/common/serving.py',
        'api/jafflr/__init__.py', 'api/jafflr/__main__.py', 'api/jafflr/app.py',
        'firmware/__init__.py', 'firmware/heater/__init__.py', 'firmware/heater/pid.py',
        'hardware/__init__.py', 'hardware/clock.py']
    chillybin = module_closure(str(repo), 'chillybin')
    assert 'firmware/stock.py' in chillybin and 'firmware/heater/pid.py' not in chillybin


def test_service_version_files_add_data_requirements_and_units_not_readmes(repo):
    files = service_files(str(repo), 'jafflr')
    assert {'api/jafflr/openapi.yaml', 'requirements.txt', 'systemd/jafflr.service'} <= set(files)
    assert 'systemd/chillybin.service' not in files
    assert not [f for f in files if f.endswith('.md')]


def test_service_version_files_include_sub_folders_that_are_not_packages(repo):
    files = service_files(str(repo), 'jafflr')
    assert {'api/jafflr/panel/index.html', 'api/jafflr/panel/js/panel.js',
            'firmware/heater/curves/k.csv'} <= set(files)
    assert 'api/jafflr/panel/README.md' not in files
    assert not [f for f in service_files(str(repo), 'chillybin') if '/panel/' in f]


@pytest.mark.parametrize('path', ['api/jafflr/panel/index.html', 'api/jafflr/panel/js/panel.js'])
def test_service_version_a_panel_only_commit_moves_jafflr_only(repo, path):
    # The old rule counted data files beside modules, not in sub-folders: the old panel
    # kept being served after a deploy.
    before = _versions(repo)
    commit = _commit(repo, {path: 'changed\n'}, 'panel only')
    assert _versions(repo) == {'chillybin': before['chillybin'], 'jafflr': commit}
    _commit(repo, {'api/jafflr/panel/README.md': '# says more\n'}, 'panel readme')
    assert _versions(repo) == {'chillybin': before['chillybin'], 'jafflr': commit}


def test_service_version_a_chillybin_only_commit_moves_only_chillybin(repo):
    before = _versions(repo)
    commit = _commit(repo, {'firmware/stock.py': 'X = 2\n'}, 'stock only')
    after = _versions(repo)
    assert after == {'chillybin': commit, 'jafflr': before['jafflr']}


def test_service_version_a_lazy_import_change_moves_jafflr(repo):
    before = _versions(repo)
    commit = _commit(repo, {'firmware/heater/pid.py': 'class Pid:\n    kp = 1\n'}, 'pid')
    assert _versions(repo) == {'chillybin': before['chillybin'], 'jafflr': commit}


def test_service_version_shared_code_and_requirements_move_both(repo):
    commit = _commit(repo, {'hardware/clock.py': 'T = 1\n'}, 'clock')
    assert set(_versions(repo).values()) == {commit}
    commit = _commit(repo, {'requirements.txt': 'bottle==0.13.5\n'}, 'deps')
    assert set(_versions(repo).values()) == {commit}


def test_service_version_unrelated_commits_move_neither(repo):
    # The original's bug: every service changed on every commit.
    before = _versions(repo)
    _commit(repo, {'README.md': '# changed\n', 'api/common/unused.py': 'Y = 1\n',
                   'hardware/sim/__init__.py': 'Z = 1\n', 'api/README.md': 'x\n'}, 'others')
    assert _versions(repo) == before


@pytest.mark.parametrize('path', ['api/plate/__main__.py', 'firmware/platehost.py',
                                  'systemd/jafflr-plate.service'])
def test_service_version_the_plate_is_part_of_jafflr(repo, path):
    # The plate process (api/plate, jafflr-plate.service) runs jafflr's release and the
    # deploy restarts it with jafflr: a change to it alone must move jafflr's version.
    before = _versions(repo)
    assert path in service_files(str(repo), 'jafflr')
    assert path not in service_files(str(repo), 'chillybin')
    commit = _commit(repo, {path: open(repo / path).read() + '# changed\n'}, 'plate only')
    assert _versions(repo) == {'chillybin': before['chillybin'], 'jafflr': commit}


def test_service_version_command_line(repo):
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'service_version.py'),
                          '--all', '--repo', str(repo)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == _versions(repo)
