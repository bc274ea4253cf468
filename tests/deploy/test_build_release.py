"""The release builder: works on Debian 12's Python 3.11.2 (no `filter=`), refuses unsafe archives."""
import io
import json
import os
import tarfile

import pytest

from deploy import build_release
from deploy.build_release import UnsafeArchive, build, safe_extract

from .test_service_version import FILES, _commit, _git


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / 'repo'
    path.mkdir()
    _git(path, 'init', '-q')
    _commit(path, FILES, 'first')
    return path


@pytest.fixture(params=['3.11.2', 'current'])
def python_tarfile(request, monkeypatch):
    """Run each test with tarfile as Debian 12's Python 3.11.2 has it (no data_filter, and
    extractall() raising TypeError on `filter=`), and as this Python has it."""
    if request.param == '3.11.2':
        monkeypatch.delattr(tarfile, 'data_filter', raising=False)
        original = tarfile.TarFile.extractall

        def extractall(self, path='.', members=None, *, numeric_owner=False, **kwargs):
            if kwargs:
                raise TypeError(f'extractall() got an unexpected keyword argument {next(iter(kwargs))!r}')
            return original(self, path, members, numeric_owner=numeric_owner)
        monkeypatch.setattr(tarfile.TarFile, 'extractall', extractall)
    return request.param


def test_build_release_builds_with_either_tarfile(repo, tmp_path, python_tarfile):
    out = build(str(repo), 'HEAD', 'v1', str(tmp_path / 'dist'))
    with tarfile.open(out['archive']) as tar:
        names = tar.getnames()
        versions = json.load(tar.extractfile('VERSIONS.json'))
    assert 'api/jafflr/app.py' in names and 'README.md' in names
    assert versions['release'] == 'v1' and versions['jafflr'] == out['jafflr'] == out['commit']


def _tar(*members):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode='w') as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    data.seek(0)
    return tarfile.open(fileobj=data)


def _file(name, body=b'x'):
    info = tarfile.TarInfo(name)
    info.size = len(body)
    return info, body


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name):
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


@pytest.mark.parametrize('member', [
    _file('/etc/evil'), _file('../escaped'), _file('api/../../escaped'),
    _link('api/out', '../../etc/passwd'), _link('api/abs', '/etc/passwd'),
    _link('api/hard', '../outside', tarfile.LNKTYPE), _device('api/null')],
    ids=['absolute', 'dotdot', 'nested-dotdot', 'symlink-out', 'symlink-absolute',
         'hardlink-out', 'device'])
def test_build_release_refuses_unsafe_members(tmp_path, member, python_tarfile):
    into = tmp_path / 'tree'
    into.mkdir()
    with _tar(_file('api/ok.py'), member) as tar, pytest.raises(UnsafeArchive):
        safe_extract(tar, str(into))
    assert not (tmp_path / 'escaped').exists() and not (tmp_path / 'outside').exists()


def test_build_release_keeps_links_inside_the_tree(tmp_path, python_tarfile):
    into = tmp_path / 'tree'
    into.mkdir()
    with _tar(_file('api/ok.py', b'A = 1\n'), _link('api/alias.py', 'ok.py')) as tar:
        safe_extract(tar, str(into))
    assert (into / 'api' / 'alias.py').read_text() == 'A = 1\n'


def test_build_release_main_prints_one_json_line(repo, tmp_path, capsys):
    assert build_release.main(['--repo', str(repo), '--out', str(tmp_path / 'd'),
                               '--version', 'x1']) == 0
    assert json.loads(capsys.readouterr().out)['release'] == 'x1'


def test_build_release_records_the_drain_bound_of_the_release_s_own_profiles(repo, tmp_path):
    assert build(str(repo), 'HEAD', 'v1', str(tmp_path / 'd'))['drain_s'] is None   # too old
    _commit(repo, {'firmware/kitchen.py': 'def drain_bound_s():\n    return 1234.2\n'}, 'bound')
    out = build(str(repo), 'HEAD', 'v2', str(tmp_path / 'd'))
    assert out['drain_s'] == 1235
    with tarfile.open(out['archive']) as tar:
        assert json.load(tar.extractfile('VERSIONS.json'))['drain_s'] == 1235
    _commit(repo, {'firmware/kitchen.py': 'def drain_bound_s(:\n'}, 'broken')
    with pytest.raises(SystemExit, match='drain bound'):
        build(str(repo), 'HEAD', 'v3', str(tmp_path / 'd'))


def test_build_release_drain_bound_of_this_repository_covers_two_burnt_toasties():
    from firmware.kitchen import drain_bound_s
    assert build_release.drain_seconds(build_release.REPO) == -(-drain_bound_s() // 1) >= 1200


def test_build_release_content_hash_names_the_code_not_the_commit(repo, tmp_path):
    first = build(str(repo), 'HEAD', 'v1', str(tmp_path / 'a'))
    _commit(repo, {'docs/notes.txt': 'not shipped\n'}, 'docs only')
    same = build(str(repo), 'HEAD', 'v1', str(tmp_path / 'a'))     # rebuilt: same code, fine
    assert same['content'] == first['content'] and same['commit'] != first['commit']
    _commit(repo, {'api/jafflr/panel/index.html': '<p>new panel</p>\n'}, 'panel')
    other = build(str(repo), 'HEAD', 'v2', str(tmp_path / 'a'))
    assert other['content'] != first['content']


def test_build_release_refuses_a_reused_name_with_other_code(repo, tmp_path):
    build(str(repo), 'HEAD', 'v1', str(tmp_path / 'd'))
    _commit(repo, {'firmware/stock.py': 'X = 3\n'}, 'stock')
    with pytest.raises(SystemExit, match="release name 'v1' was already built from other code"):
        build(str(repo), 'HEAD', 'v1', str(tmp_path / 'd'))
