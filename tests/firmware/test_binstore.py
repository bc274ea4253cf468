"""chillybin's storage and its migrations. Each migration is additive: the previous
release keeps running on a database the next one migrated, which is what makes a
rollback safe. Checked for every migration in firmware/binstore.py."""
import copy

import pytest

from firmware.binstore import DB_NAME, BinStore, migrations
from firmware.reservations import Reservation
from firmware.store import DatabaseTooNew, migrate, open_db, schema_version

from .binrig import BAYS

MIGRATIONS = migrations(BAYS)
NUMBERS = [m.number for m in MIGRATIONS]


def _use_like_a_release(db, schema):
    """What a release at `schema` writes in normal use, so the check covers real data."""
    if schema >= 1:
        bays = db.table('bays')
        bays.update({'tare_counts': 12345.0}, doc_ids=[bays.all()[0].doc_id])
    if schema >= 2:
        clocks = db.table('food_safety')
        clocks.update({'seconds_above': 600.0, 'emptied': True}, doc_ids=[clocks.all()[0].doc_id])
    if schema >= 3:
        meta = db.table('meta')
        meta.update({'next_reservation': 3, 'last_seen_wall': 1.7e9}, doc_ids=[meta.all()[0].doc_id])
        r = Reservation('r2', {'bread': 2}, 1.0, 121.0, key='k', fingerprint='f')
        db.table('reservations').insert(r.to_dict())


def _snapshot(db):
    """Every table with its documents; an empty table is the same as none to TinyDB."""
    return {t: docs for t, docs in copy.deepcopy(db.storage.read() or {}).items() if docs}


def _db_at(tmp_path, schema):
    db = open_db(str(tmp_path / DB_NAME), fsync=False)
    migrate(db, MIGRATIONS, target=schema, service='chillybin')
    _use_like_a_release(db, schema)
    return db


def test_binstore_migrations_are_numbered_and_the_first_creates_the_ingredients(tmp_path):
    assert NUMBERS == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[0].name == 'create ingredients'
    db = open_db(str(tmp_path / DB_NAME), fsync=False)
    migrate(db, MIGRATIONS[:1])
    assert [b['name'] for b in db.table('bays').all()] == ['bread', 'cheese', 'vegemite']
    records = db.table('_migrations').all()
    assert [(r['number'], r['name']) for r in records] == [(1, 'create ingredients')]


@pytest.mark.parametrize('n', NUMBERS)
def test_binstore_migration_keeps_everything_the_previous_release_reads(tmp_path, n):
    db = _db_at(tmp_path, n - 1)
    before = _snapshot(db)
    assert migrate(db, MIGRATIONS[:n], service='chillybin') == [(n, 'up')]
    after = _snapshot(db)
    for table, docs in before.items():
        assert table in after, f'migration {n} removed table {table}'
        for doc_id, doc in docs.items():
            assert doc_id in after[table], f'migration {n} removed {table}/{doc_id}'
            for field, value in doc.items():
                assert after[table][doc_id].get(field, object()) == value, \
                    f'migration {n} changed {table}/{doc_id}.{field}'


def test_binstore_every_migration_is_readable_by_the_release_before_it():
    assert [m.min_reader for m in MIGRATIONS] == [1] * len(MIGRATIONS)


@pytest.mark.parametrize('n', NUMBERS[1:])     # before migration 1 there was no release
def test_binstore_previous_release_starts_on_a_migrated_database(tmp_path, n):
    db = _db_at(tmp_path, n)
    assert migrate(db, MIGRATIONS[:n - 1], service='chillybin') == []    # no refusal, no change
    assert schema_version(db) == n


@pytest.mark.parametrize('n', NUMBERS)
def test_binstore_migration_up_then_down_returns_to_the_previous_schema(tmp_path, n):
    db = _db_at(tmp_path, n - 1)
    before = _snapshot(db)
    migrate(db, MIGRATIONS[:n])
    assert migrate(db, MIGRATIONS[:n], target=n - 1) == [(n, 'down')]
    assert _snapshot(db) == before
    assert schema_version(db) == n - 1


def test_binstore_opens_fresh_at_the_newest_schema_and_reopens_without_change(tmp_path):
    store = BinStore(str(tmp_path), BAYS, fsync=False, now_wall=5.0)
    assert store.applied == [(n, 'up') for n in NUMBERS]
    store.close()
    again = BinStore(str(tmp_path), BAYS, fsync=False)
    assert again.applied == [] and len(again.bays()) == 3
    again.close()


def test_binstore_refuses_a_database_from_a_newer_release_saying_what_to_do(tmp_path):
    store = BinStore(str(tmp_path), BAYS, fsync=False)
    store.db.table('_migrations').insert({'number': len(NUMBERS) + 1, 'name': 'future',
                                          'applied_at': 0, 'min_reader': len(NUMBERS) + 1})
    store.close()
    with pytest.raises(DatabaseTooNew, match=r'chillybin: .* Deploy a newer release, or .*'
                                             rf'python -m api.chillybin migrate --to {len(NUMBERS)}'):
        BinStore(str(tmp_path), BAYS, fsync=False)


def test_binstore_runs_on_an_additive_newer_schema(tmp_path):
    store = BinStore(str(tmp_path), BAYS, fsync=False)
    store.db.table('_migrations').insert({'number': len(NUMBERS) + 1, 'name': 'future',
                                          'applied_at': 0, 'min_reader': 1})
    store.close()
    again = BinStore(str(tmp_path), BAYS, fsync=False)
    assert again.applied == [] and schema_version(again.db) == len(NUMBERS) + 1
    again.close()


def test_binstore_events_journal_is_rotated_and_capped(tmp_path):
    store = BinStore(str(tmp_path), BAYS, fsync=False)
    store.events.max_bytes = 2000
    for i in range(400):
        store.events.append({'wall': float(i), 'kind': 'restock', 'detail': 'x' * 40})
    store.close()
    files = sorted(p.name for p in (tmp_path / 'chillybin-history').iterdir()
                   if p.name.startswith('events'))
    assert len(files) == store.events.keep
    assert sum((tmp_path / 'chillybin-history' / f).stat().st_size for f in files) < 2000 * 12
