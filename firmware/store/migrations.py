"""Numbered storage migrations with up and down steps, recorded in the database.

Migrations are additive by rule: an up step may add tables, documents and fields but
never remove or change what an earlier release reads. So the previous release keeps
running on a migrated database, which is what makes a deploy rollback safe. A migration
that cannot be additive raises `min_reader` (the oldest schema that can still read the
database); a release older than that refuses to start with a message saying what to do.
"""
from dataclasses import dataclass
from typing import Callable

from .atomic import transaction

TABLE = '_migrations'


class DatabaseTooNew(Exception):
    """The database was migrated by a newer release that this one cannot read."""


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    up: Callable
    down: Callable
    min_reader: int = 1     # the oldest schema whose code can read the result


def _records(db):
    return sorted(db.table(TABLE).all(), key=lambda r: r['number'])


def schema_version(db):
    records = _records(db)
    return records[-1]['number'] if records else 0


def _check_sequence(migrations):
    numbers = [m.number for m in migrations]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f'migrations must be numbered 1..n without gaps, not {numbers}')


def check_readable(db, migrations, service):
    """Refuse a database that needs a newer release than this one."""
    known = len(migrations)
    records = _records(db)
    floor = max((r.get('min_reader', 1) for r in records), default=1)
    if floor > known:
        raise DatabaseTooNew(
            f'{service}: the database at {db.storage.path} is at schema '
            f'{records[-1]["number"]} and needs a release that knows schema {floor} or '
            f'later; this release knows schema {known}. Deploy a newer release, or have '
            f'the newer release migrate it down with `python -m api.{service} migrate '
            f'--to {known}`.')


def migrate(db, migrations, target=None, now=0.0, service='service'):
    """Bring `db` to `target` (default: the newest known). Each step is one atomic write
    that includes its record. Returns the list of (number, 'up'|'down') applied."""
    _check_sequence(migrations)
    check_readable(db, migrations, service)
    target = len(migrations) if target is None else target
    if not 0 <= target <= len(migrations):
        raise ValueError(f'target schema {target} out of range (0:{len(migrations)})')
    current = schema_version(db)
    applied = []
    if current > len(migrations):
        # Newer, but still readable by us (additive): run as is, never migrate down blind.
        return applied
    while current < target:
        step = migrations[current]
        with transaction(db):
            step.up(db)
            db.table(TABLE).insert({'number': step.number, 'name': step.name,
                                    'applied_at': now, 'min_reader': step.min_reader})
        applied.append((step.number, 'up'))
        current += 1
    while current > target:
        step = migrations[current - 1]
        with transaction(db):
            step.down(db)
            table = db.table(TABLE)
            table.remove(doc_ids=[r.doc_id for r in table.all() if r['number'] == step.number])
        applied.append((step.number, 'down'))
        current -= 1
    return applied
