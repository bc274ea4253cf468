"""chillybin's read replica (api/common/replica.py), as real processes over real HTTP:
both processes answer on one port, a read after an acknowledged write never sees the old
stock whichever process answers, everything but GET / is made by the primary, and the
replica never outlives the primary."""
import json
import os
import re
import signal
import time

import pytest

from api.common.replica import SharedAnswer

from .chillyproc import Chillybin, run_chillybin, simulator


FULL = {'items': {'bread': 10, 'cheese': 10, 'vegemite': 10}}


@pytest.fixture(scope='module')
def machine(tmp_path_factory):
    made = simulator(str(tmp_path_factory.mktemp('machine')), speed=20)
    yield made
    assert made.close().get('sim') == 0, made.logs()


@pytest.fixture
def chilly(machine, tmp_path):
    made = Chillybin(machine, str(tmp_path / 'state'))
    assert made.request('POST', '/v2/restock', FULL, made.admin())[0] == 200
    yield made
    if made.proc.poll() is None:
        assert made.close() == 0, made.read_log()


def children(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def metric(text, name, **labels):
    want = ','.join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(rf'{name}\{{(.*)\}} (\S+)', line)
        if m and ','.join(sorted(m.group(1).split(','))) == want:
            return float(m.group(2))
    return 0.0


def test_shared_answer_crosses_a_fork():
    shared = SharedAnswer()
    assert shared.read() is None, 'nothing published yet'
    shared.publish(b'{"cheese": 1}')
    pid = os.fork()
    if pid == 0:
        ok = shared.read() == b'{"cheese": 1}'
        shared.count(200, 0.002)
        shared.count(421, 0.2)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, 'the child read what the parent published'
    by_status, buckets, total = shared.stats()
    assert by_status == {'200': 1, '421': 1} and sum(buckets) == 2
    assert total == pytest.approx(0.202)
    with pytest.raises(ValueError, match='at most'):
        shared.publish(b'x' * (64 * 1024))


def test_shared_answer_hot_path_takes_no_system_call_until_a_new_publish(monkeypatch):
    """The replica's GET /: reading the same version again and counting take no record
    lock (each was a system call that gave the GIL away, under a lock every thread queued
    on); a new publish is read, under the lock, at once."""
    from api.common import replica
    shared = SharedAnswer()
    shared.publish(b'{"cheese": 1}')
    assert shared.read() == b'{"cheese": 1}'
    calls = []
    real = replica.fcntl.lockf
    monkeypatch.setattr(replica.fcntl, 'lockf', lambda *a: (calls.append(a[1]), real(*a)))
    for _ in range(5):
        assert shared.read() == b'{"cheese": 1}'
        shared.count(200, 0.001)
    assert calls == [], 'the hot path took the record lock'
    shared.publish(b'{"cheese": 2}')
    calls.clear()
    assert shared.read() == b'{"cheese": 2}'
    assert calls, 'a new version must be read under the lock'
    assert shared.stats()[0] == {'200': 5}


def test_replica_reads_follow_acknowledged_writes_whoever_answers(chilly):
    replica = children(chilly.proc.pid)
    assert len(replica) == 1, 'chillybin forked one replica'
    before = json.loads(chilly.request('GET', '/')[2])['cheese']
    for n in range(1, 8):
        status, _, body = chilly.request('GET', f'/pick?name=cheese&quantity=1')
        assert (status, body) == (200, b'ok')
        for _ in range(6):       # new connections: the kernel spreads them over both
            status, headers, body = chilly.request('GET', '/')
            assert status == 200 and headers['content-type'] == 'application/json'
            assert headers['link'] == '</v2/stock>; rel="successor-version"'
            assert json.loads(body)['cheese'] == before - n, 'a read saw the stock before the pick'
    metrics = chilly.request('GET', '/metrics')[2].decode()
    by_replica = metric(metrics, 'chillybin_replica_http_requests_total', route='/', status='200')
    by_primary = metric(metrics, 'chillybin_http_requests_total', method='GET', route='/',
                        status='200')
    print(f'\nGET / answered by the replica {by_replica:.0f} times, by the primary '
          f'{by_primary:.0f} times')
    assert by_replica > 0 and by_primary > 0, 'both processes answered GET /'
    assert metric(metrics, 'chillybin_replica_http_request_duration_seconds_count', route='/') \
        == by_replica


def test_replica_forwards_everything_else_as_it_came(chilly):
    key = {'Idempotency-Key': 'replica-1'}
    answers = [chilly.json('POST', '/v2/reservations', {'items': {'bread': 2}}, key)
               for _ in range(6)]
    assert {s for s, _ in answers} <= {200, 201} and answers[0][0] == 201
    assert len({body['id'] for _, body in answers}) == 1, 'one reservation, replayed'
    status, body = chilly.json('POST', '/v2/reservations', {'items': {'bread': 'two'}})
    assert status == 400 and body['error']['field'] == 'items.bread'
    for _ in range(4):
        assert chilly.request('POST', '/v2/restock', FULL)[0] == 401
        assert chilly.request('POST', '/v2/restock', FULL, chilly.admin())[0] == 200
        status, _, body = chilly.request('GET', '/', headers={'Host': 'evil.example'})
        assert status == 421 and b'evil.example' in body
        status, _, body = chilly.request('HEAD', '/')
        assert status == 200 and body == b''
        status, headers, _ = chilly.request('GET', '/', headers={'API-Version': '2'})
        assert status == 200 and 'deprecation' not in headers, 'API-Version 2 is /v2/'
        assert chilly.request('GET', '/nowhere')[0] == 404
    status, ready = chilly.json('GET', '/v2/ready')
    assert status == 200 and 'replica' in json.dumps(ready)


def test_replica_dies_with_the_primary(machine, tmp_path):
    chilly = Chillybin(machine, str(tmp_path / 'state'))
    (replica,) = children(chilly.proc.pid)
    os.kill(chilly.proc.pid, signal.SIGKILL)
    chilly.proc.wait()
    deadline = time.monotonic() + 5
    while alive(replica) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(replica), 'the replica outlived a killed primary (it would serve stale stock)'
    with pytest.raises(OSError):
        chilly.request('GET', '/')


def test_a_dead_replica_leaves_the_primary_answering_and_says_so(chilly):
    (replica,) = children(chilly.proc.pid)
    os.kill(replica, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while chilly.json('GET', '/v2/ready')[1]['checks']['replica']['ok'] and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):       # reaped once, then remembered: the check never raises
        status, ready = chilly.json('GET', '/v2/ready')
        assert status == 200 and ready['checks']['replica']['ok'] is False, ready
    assert chilly.request('GET', '/')[0] == 200


def test_sigterm_stops_both_and_exits_0(machine, tmp_path):
    chilly = Chillybin(machine, str(tmp_path / 'state'))
    (replica,) = children(chilly.proc.pid)
    assert chilly.close() == 0
    assert not alive(replica)
    assert 'chillybin-replica drained' in chilly.read_log()


def test_no_replica_when_asked_and_a_bad_setting_is_named(machine, tmp_path):
    chilly = Chillybin(machine, str(tmp_path / 'state'), CHILLYBIN_REPLICAS='0')
    try:
        assert children(chilly.proc.pid) == []
        assert chilly.request('GET', '/')[0] == 200
    finally:
        assert chilly.close() == 0
    out = run_chillybin(machine, str(tmp_path / 'other'), '--port', '0',   # 7001 may be taken
                        CHILLYBIN_REPLICAS='2')
    assert out.returncode == 2 and "CHILLYBIN_REPLICAS='2'" in out.stderr


def test_a_replica_that_does_not_stop_says_where_it_is_stuck_then_is_killed(tmp_path, caplog):
    """Seen once on real systemd: a replica that did not even log "draining" after
    SIGTERM, killed 30 s later with nothing to say why. Now its threads' stacks reach
    stderr (the journal) at half the bound, before systemd's TimeoutStopSec could kill it. The child stands in for a stuck replica: it
    ignores SIGTERM, and dumps its stacks as the replica does (dump_stacks_on_signal)."""
    from api.common import replica
    err = tmp_path / 'stderr'
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = open(err, 'w')
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            replica.dump_stacks_on_signal(out)
            os.write(ready_w, b'x')
            while True:
                time.sleep(1)
        finally:
            os._exit(1)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b'x'
    os.close(ready_r)
    stuck = replica.Replica('test', [], edge_for=None)
    stuck.pid = pid
    started = time.monotonic()
    with caplog.at_level('ERROR', logger='api.replica'):
        assert stuck.stop(timeout=0.5) is None          # killed, not exited
    assert time.monotonic() - started < 3
    assert stuck.pid is None
    stacks = err.read_text()
    assert 'most recent call first' in stacks and 'test_chillybin_replica.py' in stacks, stacks
    assert f'replica (pid {pid}) has not stopped 0 s after SIGTERM' in caplog.text, caplog.text
    stuck.upstream.close()
