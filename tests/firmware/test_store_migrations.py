import pytest

from firmware.store import DatabaseTooNew, Migration, migrate, open_db, schema_version


def _add(table, doc):
    return lambda db: db.table(table).insert(doc)


def _drop(table):
    return lambda db: db.drop_table(table)


MIGRATIONS = [
    Migration(1, 'ingredients', _add('bays', {'name': 'cheese'}), _drop('bays')),
    Migration(2, 'settings', _add('settings', {'k': 'v'}), _drop('settings')),
]


def test_migrations_apply_in_order_and_are_recorded(tmp_path):
    db = open_db(str(tmp_path / 'db.json'))
    assert migrate(db, MIGRATIONS, now=5.0) == [(1, 'up'), (2, 'up')]
    assert schema_version(db) == 2
    assert migrate(db, MIGRATIONS) == []          # already there
    assert db.table('_migrations').all()[0]['applied_at'] == 5.0


def test_migrations_go_down_step_by_step(tmp_path):
    db = open_db(str(tmp_path / 'db.json'))
    migrate(db, MIGRATIONS)
    assert migrate(db, MIGRATIONS, target=0) == [(2, 'down'), (1, 'down')]
    assert schema_version(db) == 0 and 'bays' not in db.tables()


def test_migrations_older_release_runs_on_additive_newer_schema(tmp_path):
    db = open_db(str(tmp_path / 'db.json'))
    migrate(db, MIGRATIONS)
    assert migrate(db, MIGRATIONS[:1]) == []      # the previous release starts, changes nothing
    assert schema_version(db) == 2


def test_migrations_refuse_a_database_that_needs_a_newer_release(tmp_path):
    breaking = MIGRATIONS + [Migration(3, 'rename', lambda db: None, lambda db: None, min_reader=3)]
    db = open_db(str(tmp_path / 'db.json'))
    migrate(db, breaking)
    with pytest.raises(DatabaseTooNew, match=r'schema 3 .* knows schema 2\. Deploy a newer release'):
        migrate(db, MIGRATIONS, service='chillybin')


def test_migrations_must_be_numbered_without_gaps():
    with pytest.raises(ValueError, match='without gaps'):
        migrate(None, [MIGRATIONS[1]])
