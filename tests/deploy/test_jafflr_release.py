"""The on-Pi release tool: install is atomic, switch and prune keep what must stay."""
import importlib.machinery
import importlib.util
import json
import os
import sys
import tarfile
import types

import pytest

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    'deploy', 'roles', 'jafflr_release', 'files', 'jafflr-release')


@pytest.fixture
def tool():
    loader = importlib.machinery.SourceFileLoader('jafflr_release_tool', TOOL)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    module.running_release = lambda layout, service: None   # no systemd on the test host
    return module


def _fake_release(base, name, mtime, versions=None):
    path = os.path.join(base, 'releases', name)
    os.makedirs(path)
    with open(os.path.join(path, 'VERSIONS.json'), 'w') as f:
        json.dump(versions or {'release': name, 'chillybin': 'c', 'jafflr': 'j-' + name}, f)
    marker = os.path.join(path, '.installed')
    open(marker, 'w').close()
    os.utime(marker, (mtime, mtime))


def _run(tool, base, *args, capsys):
    rc = tool.main(['--base', str(base), *args])
    return rc, json.loads(capsys.readouterr().out or 'null')


def test_jafflr_release_switch_is_a_symlink_rename_and_remembers_previous(tool, tmp_path, capsys):
    for n, name in enumerate('ABC'):
        _fake_release(tmp_path, name, 1000 + n)
    assert _run(tool, tmp_path, 'switch', 'A', capsys=capsys)[1]['previous'] is None
    rc, out = _run(tool, tmp_path, 'switch', 'B', capsys=capsys)
    assert rc == 0 and out == {'previous': 'A', 'current': 'B', 'changed': True}
    assert os.readlink(tmp_path / 'current') == 'releases/B'
    assert os.readlink(tmp_path / 'previous') == 'releases/A'
    assert _run(tool, tmp_path, 'switch', 'nope', capsys=capsys)[0] == 1


def test_jafflr_release_plan_restarts_services_not_running(tool, tmp_path, capsys):
    rc, out = _run(tool, tmp_path, 'plan', json.dumps({'chillybin': 'c', 'jafflr': 'j'}),
                   capsys=capsys)
    assert rc == 0 and out['restart'] == ['chillybin', 'jafflr']


def test_jafflr_release_plan_restarts_only_changed_services(tool, tmp_path, capsys):
    _fake_release(tmp_path, 'A', 1000)
    tool.running_release = lambda layout, service: 'A'
    rc, out = _run(tool, tmp_path, 'plan', json.dumps({'chillybin': 'c', 'jafflr': 'j-B'}),
                   capsys=capsys)
    assert out['restart'] == ['jafflr']


def test_jafflr_release_prune_keeps_the_newest_current_previous_and_running(tool, tmp_path, capsys):
    for n, name in enumerate('ABCDEF'):
        _fake_release(tmp_path, name, 1000 + n)
    _run(tool, tmp_path, 'switch', 'A', capsys=capsys)
    _run(tool, tmp_path, 'switch', 'B', capsys=capsys)
    tool.running_release = lambda layout, service: 'C' if service == 'chillybin' else 'B'
    rc, out = _run(tool, tmp_path, 'prune', '--keep', '2', capsys=capsys)
    assert rc == 0 and out['removed'] == ['D']
    assert sorted(os.listdir(tmp_path / 'releases')) == ['A', 'B', 'C', 'E', 'F']


def test_jafflr_release_install_refuses_an_archive_that_escapes(tool, tmp_path, capsys):
    evil = tmp_path / 'evil.tar.gz'
    outside = tmp_path / 'outside.txt'
    outside.write_text('x')
    with tarfile.open(evil, 'w:gz') as tar:
        tar.add(outside, arcname='../../escaped.txt')
    with pytest.raises((SystemExit, tarfile.TarError)):
        tool.main(['--base', str(tmp_path / 'base'), 'install', str(evil), 'E',
                   '--python', sys.executable])
    assert not (tmp_path / 'escaped.txt').exists()
    assert not os.path.exists(tmp_path / 'base' / 'releases' / 'E')


def _archive_from_someone_else(tmp_path):
    """A release archive as a laptop makes it: the builder's uid 1000, loose modes."""
    archive = tmp_path / 'laptop.tar.gz'
    src = tmp_path / 'src'
    (src / 'systemd').mkdir(parents=True)
    (src / 'systemd' / 'jafflr.service').write_text('[Service]\n')
    (src / 'run.sh').write_text('#!/bin/sh\n')

    def loose(info):
        info.uid, info.gid, info.uname, info.gname = 1000, 1000, 'pi', 'pi'
        info.mode = 0o777 if info.isdir() else (0o6777 if info.name.endswith('.sh') else 0o666)
        return info
    with tarfile.open(archive, 'w:gz') as tar:      # top-level names, as build_release adds them
        for name in ('systemd', 'run.sh'):
            tar.add(src / name, arcname=name, filter=loose)
    return archive


def _modes_and_owners(tree):
    found = {}
    for top, dirs, files in os.walk(tree):
        for path in [top] + [os.path.join(top, n) for n in dirs + files]:
            st = os.lstat(path)
            found[os.path.relpath(path, tree)] = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
    return found


@pytest.mark.parametrize('no_data_filter', [False, True])
def test_jafflr_release_unpack_gives_every_file_to_root_whatever_the_archive_says(
        tool, tmp_path, monkeypatch, no_data_filter):
    if no_data_filter:   # Debian 12's Python 3.11.2 has no tarfile.data_filter
        monkeypatch.delattr(tool.tarfile, 'data_filter', raising=False)
    into = tmp_path / 'release'
    into.mkdir()
    tool._unpack(str(_archive_from_someone_else(tmp_path)), str(into))
    found = _modes_and_owners(into)
    assert {'systemd/jafflr.service', 'run.sh', 'systemd'} <= set(found)
    for path, (uid, gid, mode) in found.items():
        assert not mode & 0o7022, f'{path}: mode {mode:o} lets others write or is set-id'
        if os.geteuid() == 0 and path != '.':
            assert (uid, gid) == (0, 0), f'{path} is owned by {uid}:{gid}, not root'


def test_jafflr_release_own_by_root_fixes_a_tree_made_by_another_user(tool, tmp_path):
    if os.geteuid() != 0:
        pytest.skip('changing owners needs root (the tool runs as root on the Pi)')
    tree = tmp_path / 'tree'
    (tree / 'venv' / 'bin').mkdir(parents=True)
    script = tree / 'venv' / 'bin' / 'python'
    script.write_text('x')
    os.chmod(script, 0o4777)
    os.symlink('/etc/passwd', tree / 'link')      # the link is changed, never /etc/passwd
    passwd = os.stat('/etc/passwd')
    for path in (tree, tree / 'venv', tree / 'venv' / 'bin', script):
        os.chown(path, 1000, 1000)
    os.lchown(tree / 'link', 1000, 1000)
    tool._own_by_root(str(tree))
    for path, (uid, gid, mode) in _modes_and_owners(tree).items():
        assert (uid, gid) == (0, 0), path
        assert path == 'link' or not mode & 0o7022, f'{path}: {mode:o}'
    assert stat_unchanged(passwd, os.stat('/etc/passwd'))


def stat_unchanged(before, after):
    return (before.st_uid, before.st_gid, before.st_mode) == (after.st_uid, after.st_gid, after.st_mode)


def _states(state):
    """--state arguments: jafflr's directory `state`, chillybin's beside it (never the
    machine's own /var/lib/chillybin)."""
    return ('--state', f'jafflr={state}', '--state', f'chillybin={state}-chillybin')


def _release_that_refuses(base, name, mtime):
    """A release whose `migrate` refuses the data (exit 2) when the service's state
    directory holds `schema-3`."""
    _fake_release(base, name, mtime)
    python = os.path.join(base, 'releases', name, 'venv', 'bin', 'python')
    os.makedirs(os.path.dirname(python))
    with open(python, 'w') as f:
        f.write('#!/bin/sh\n[ -e "$JAFFLR_STATE_DIR/schema-3" ] && { echo "needs schema 3" >&2; '
                'exit 2; }\nexit 0\n')
    os.chmod(python, 0o755)


def test_jafflr_release_rollback_across_an_unreadable_migration_restores_the_snapshot(
        tool, tmp_path, capsys):
    base, state = tmp_path / 'opt', tmp_path / 'state'
    _release_that_refuses(base, 'OLD', 1000)
    _fake_release(base, 'NEW', 1001)
    state.mkdir()
    (state / 'jafflr.json').write_text('{"orders": "before"}')
    stopped = []
    tool.stop_services = lambda: stopped.append(True)
    assert _run(tool, base, 'snapshot', 'NEW', *_states(state), capsys=capsys)[0] == 0
    # NEW starts: it migrates to schema 3, which OLD cannot read; then NEW fails, rollback.
    (state / 'jafflr.json').write_text('{"orders": "after", "schema": 3}')
    (state / 'schema-3').write_text('')
    rc, out = _run(tool, base, 'restore-if-unreadable', 'OLD', '--newer', 'NEW', *_states(state),
                   capsys=capsys)
    assert rc == 0 and out['restored'] is True and stopped
    assert 'restored the snapshot taken before NEW' in out['message']
    assert (state / 'jafflr.json').read_text() == '{"orders": "before"}'
    assert not (state / 'schema-3').exists() and not (state / '.snapshot.json').exists()
    assert json.loads(open(os.path.join(out['aside']['jafflr'], 'jafflr.json')).read())['schema'] == 3
    assert 'chillybin kept its data' in out['message'] and set(out['aside']) == {'jafflr'}


def _tree(path):
    """{relative path: (uid, gid, mode, content)} of a directory, itself included."""
    found = {}
    for top, dirs, files in os.walk(path):
        for name in ['.'] + dirs + files:
            full = os.path.normpath(os.path.join(top, name))
            st = os.lstat(full)
            content = open(full).read() if os.path.isfile(full) else None
            found[os.path.relpath(full, path)] = (st.st_uid, st.st_gid, st.st_mode & 0o7777, content)
    return found


def test_jafflr_release_rollback_restores_chillybins_own_directory_with_owners_and_modes(
        tool, tmp_path, capsys):
    """chillybin keeps its state in its own directory (/var/lib/chillybin, 0700, its own
    user): a migration of chillybin's store that the old release cannot read is undone from
    the snapshot of that directory, owners and modes as they were; jafflr's data, which the
    old release reads, is kept as it is."""
    base, state = tmp_path / 'opt', tmp_path / 'jafflr'
    chilly = tmp_path / 'jafflr-chillybin'
    _release_that_refuses(base, 'OLD', 1000)
    _fake_release(base, 'NEW', 1001)
    state.mkdir(mode=0o700)
    chilly.mkdir(mode=0o700)
    (state / 'jafflr.json').write_text('{"orders": "before"}')
    (chilly / 'chillybin.json').write_text('{"stock": "before"}')
    os.chmod(chilly / 'chillybin.json', 0o600)
    if os.geteuid() == 0:     # as on a Pi: each directory its service's user
        for path in (chilly, chilly / 'chillybin.json'):
            os.chown(path, 4242, 4343)
    before = _tree(chilly)
    tool.stop_services = lambda: None
    rc, snap = _run(tool, base, 'snapshot', 'NEW', *_states(state), capsys=capsys)
    assert rc == 0 and snap['present'] == {'jafflr': True, 'chillybin': True}, snap
    copy = os.path.join(snap['snapshot'], 'chillybin')
    assert _tree(copy) == before
    assert os.stat(snap['snapshot']).st_mode & 0o777 == 0o700
    # NEW migrates chillybin's store to a layout OLD cannot read, and jafflr's additively.
    (chilly / 'chillybin.json').write_text('{"stock": "after", "schema": 3}')
    (chilly / 'schema-3').write_text('')
    (state / 'jafflr.json').write_text('{"orders": "after"}')
    rc, out = _run(tool, base, 'restore-if-unreadable', 'OLD', '--newer', 'NEW', *_states(state),
                   capsys=capsys)
    assert rc == 0 and out['restored'] is True and set(out['refused']) == {'chillybin'}, out
    assert _tree(chilly) == before
    assert (state / 'jafflr.json').read_text() == '{"orders": "after"}'
    assert set(out['aside']) == {'chillybin'} and 'jafflr kept its data' in out['message']
    assert json.loads(open(os.path.join(out['aside']['chillybin'], 'chillybin.json')).read())[
        'schema'] == 3


def test_jafflr_release_snapshot_refuses_a_state_argument_without_its_service(tool, tmp_path):
    with pytest.raises(SystemExit, match=r"--state '/var/lib/x': give SERVICE=/ABSOLUTE/DIR"):
        tool.main(['--base', str(tmp_path), 'snapshot', 'NEW', '--state', '/var/lib/x'])


def test_jafflr_release_rollback_keeps_data_the_old_release_reads(tool, tmp_path, capsys):
    base, state = tmp_path / 'opt', tmp_path / 'state'
    _release_that_refuses(base, 'OLD', 1000)
    _fake_release(base, 'NEW', 1001)
    state.mkdir()
    (state / 'jafflr.json').write_text('{"orders": "before"}')
    _run(tool, base, 'snapshot', 'NEW', *_states(state), capsys=capsys)
    (state / 'jafflr.json').write_text('{"orders": "after"}')   # an additive migration
    tool.stop_services = lambda: pytest.fail('stopped the services for nothing')
    rc, out = _run(tool, base, 'restore-if-unreadable', 'OLD', '--newer', 'NEW', *_states(state),
                   capsys=capsys)
    assert rc == 0 and out['restored'] is False and 'kept' in out['message']
    assert (state / 'jafflr.json').read_text() == '{"orders": "after"}'


def test_jafflr_release_soak_passes_while_ready_and_fails_on_a_restart(tool, tmp_path, capsys):
    import http.server
    import threading
    server = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_port}/'
    try:
        restarts = iter(['0'] * 100)
        tool._systemctl_show = lambda unit, prop: next(restarts)
        rc, out = _run(tool, tmp_path, 'soak', '--seconds', '0.3', '--every', '0.1', '--url', url,
                       '--unit', 'jafflr.service', capsys=capsys)
        assert rc == 0 and out['soaked'] and out['polls'] >= 2
        restarts = iter(['0', '0', '1'])
        tool._systemctl_show = lambda unit, prop: next(restarts)
        rc, out = _run(tool, tmp_path, 'soak', '--seconds', '5', '--every', '0.1', '--url', url,
                       '--unit', 'jafflr.service', capsys=capsys)
        assert rc == 1 and 'restarted jafflr.service (0 -> 1' in out['why']
    finally:
        server.shutdown()
        server.server_close()
    rc, out = _run(tool, tmp_path, 'soak', '--seconds', '5', '--url', url, capsys=capsys)
    assert rc == 1 and not out['soaked']


def test_jafflr_release_restored_snapshot_keeps_the_drain_that_preceded_it(tool, tmp_path, capsys):
    """The snapshot was taken while jafflr ran (no clean-stop marker in it); the stop before
    the restore was a finished drain, so the restored data says so and jafflr is not held
    as if it had crashed. A drain that did not finish is not carried."""
    def store(meta):
        return json.dumps({'meta': {'1': {'next_order': 4, **meta}}, 'orders': {}})
    for drained, carried in ((True, {'tray': None}), (False, None)):
        base, state = tmp_path / f'opt{drained}', tmp_path / f'state{drained}'
        _release_that_refuses(base, 'OLD', 1000)
        _fake_release(base, 'NEW', 1001)
        state.mkdir()
        (state / 'jafflr.json').write_text(store({'clean_stop': None}))
        tool.stop_services = lambda: None
        _run(tool, base, 'snapshot', 'NEW', *_states(state), capsys=capsys)
        (state / 'jafflr.json').write_text(store({'clean_stop': {'tray': 't9'} if drained else None}))
        (state / 'schema-3').write_text('')
        rc, out = _run(tool, base, 'restore-if-unreadable', 'OLD', '--newer', 'NEW', *_states(state),
                       capsys=capsys)
        assert rc == 0 and out['restored'] is True
        meta = json.loads((state / 'jafflr.json').read_text())['meta']['1']
        assert meta['clean_stop'] == carried and meta['next_order'] == 4
        assert ('starts held' in out['message']) is (not drained)


def test_jafflr_release_a_restore_stops_the_plate_with_jafflr_in_one_job(tool, monkeypatch):
    """The plate (jafflr-plate.service) writes /var/lib/jafflr (plate.json): a restore that
    puts that directory aside stops it with the services, after the sockets (a socket with
    a waiting connection starts its service again the moment it stops, and jafflr pulls in
    the plate, cancelling its stop: seen on real systemd, test_fleet step 12). The plate's
    stop stops jafflr in the same transaction (Requires=)."""
    calls = []

    def run(argv, **kw):
        calls.append(argv)
        return types.SimpleNamespace(returncode=0)
    monkeypatch.setattr(tool.subprocess, 'run', run)
    tool.stop_services()
    assert calls == [['systemctl', 'stop', 'chillybin.socket', 'jafflr.socket',
                      'jafflr-plate.service', 'chillybin.service', 'jafflr.service']]


def test_jafflr_release_a_stop_cancelled_by_a_start_is_tried_again(tool, monkeypatch):
    """A stop that a start cancels ("Job for jafflr-plate.service canceled.") is tried
    again; one that keeps failing stops the restore before it touches anything."""
    codes, slept = [1, 1, 0], []
    monkeypatch.setattr(tool.subprocess, 'run',
                        lambda argv, **kw: types.SimpleNamespace(returncode=codes.pop(0)))
    tool.stop_services(sleep=slept.append)
    assert codes == [] and slept == [1.0, 1.0]
    codes[:] = [1, 1, 1]
    with pytest.raises(SystemExit, match='failed 3 times'):
        tool.stop_services(sleep=slept.append)
