import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from firmware.store import StorageCorrupt, open_db, transaction

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WRITER = '''
import sys
from firmware.store import open_db, transaction
db = open_db(sys.argv[1])
start = len(db.table("acks"))
for n in range(start, start + 100000):
    with transaction(db):
        db.table("acks").insert({"n": n})
        db.table("last").truncate()
        db.table("last").insert({"n": n, "pad": "x" * (n % 500)})
    print(n, flush=True)
'''


def test_atomic_write_then_reopen_keeps_everything(tmp_path):
    path = tmp_path / 'db.json'
    db = open_db(str(path))
    db.table('stock').insert({'bay': 'cheese', 'units': 9})
    again = open_db(str(path))
    assert again.table('stock').all() == [{'bay': 'cheese', 'units': 9}]
    assert not os.path.exists(f'{path}.tmp')


def test_atomic_transaction_writes_once(tmp_path):
    db = open_db(str(tmp_path / 'db.json'))
    before = db.storage.writes
    with transaction(db):
        db.table('a').insert({'x': 1})
        db.table('b').insert({'y': 2})
        db.table('a').update({'x': 3})
    assert db.storage.writes == before + 1
    assert open_db(str(tmp_path / 'db.json')).table('a').all() == [{'x': 3}]


def test_atomic_transaction_that_raises_leaves_nothing_behind(tmp_path):
    db = open_db(str(tmp_path / 'db.json'))
    db.table('a').insert({'x': 1})
    with pytest.raises(RuntimeError):
        with transaction(db):
            db.table('a').insert({'x': 2})
            raise RuntimeError('half way')
    assert db.table('a').all() == [{'x': 1}]
    assert open_db(str(tmp_path / 'db.json')).table('a').all() == [{'x': 1}]


def test_atomic_corrupt_file_is_refused_not_replaced(tmp_path):
    path = tmp_path / 'db.json'
    path.write_text('{"stock": {"1": {"bay": "chee')
    with pytest.raises(StorageCorrupt, match='Restore it from a backup'):
        open_db(str(path))
    assert path.read_text().startswith('{"stock"')


def test_atomic_survives_kill_9_at_random_moments(tmp_path):
    """Kill a writer at random moments many times: the file always loads and holds every
    write the writer had acknowledged (printed after the write returned)."""
    path = str(tmp_path / 'db.json')
    rng = random.Random(42)
    acked = -1
    for attempt in range(40):
        proc = subprocess.Popen([sys.executable, '-c', WRITER, path], cwd=ROOT,
                                stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
        out = proc.stdout.readline()          # it is writing now (start-up is slow when loaded)
        deadline = time.monotonic() + rng.uniform(0.0, 0.08)
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            out += proc.stdout.read() or b''
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out += proc.stdout.read() or b''
        lines = [int(x) for x in out.split()]
        if lines:
            acked = max(acked, lines[-1])
        with open(path) as f:
            data = json.load(f)             # always loads
        ns = {doc['n'] for doc in data.get('acks', {}).values()}
        assert set(range(acked + 1)) <= ns, f'attempt {attempt}: lost an acknowledged write'
        last = list(data['last'].values())
        assert len(last) == 1 and last[0]['n'] == max(ns)   # the two tables moved together
    assert acked > 100
