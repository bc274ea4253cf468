"""jafflr's storage: orders (active and recent), feature flags and meta in one crash-safe
TinyDB; finished orders beyond the recent ones archived to a rotated journal; events in
another journal. The live database stays small (at most `keep_finished` finished
orders), so a write costs the same with 10 or 100 000 orders behind it.

Idempotency keys are honoured for every order still in the live database or among the
last 1000 archived: more than a day of toasties at the machine's top speed."""
import os

from tinydb.table import Document

from .orderbook import Order
from .store import Journal, Migration, migrate, open_db, transaction

DB_NAME = 'jafflr.json'
ARCHIVE_MEMORY = 1000


def _create_meta(db):
    db.table('meta').insert({'next_order': 1, 'paused': False})


def _create_flags(db):
    db.table('flags').insert({'stored': {}})


def _drop(*tables):
    def down(db):
        for table in tables:
            db.drop_table(table)
    return down


MIGRATIONS = [
    Migration(1, 'orders and meta', _create_meta, _drop('meta', 'orders')),
    Migration(2, 'feature flags', _create_flags, _drop('flags')),
]


class OrderStore:
    def __init__(self, state_dir, fsync=True, now_wall=0.0):
        self.db = open_db(os.path.join(state_dir, DB_NAME), fsync=fsync)
        self.migrations = MIGRATIONS
        self.applied = migrate(self.db, MIGRATIONS, now=now_wall, service='jafflr')
        history = os.path.join(state_dir, 'jafflr-history')
        self.events = Journal(history, 'events', fsync=fsync)
        self.archive = Journal(history, 'orders', fsync=fsync, recent=ARCHIVE_MEMORY)

    def orders(self):
        return [Order.from_dict(d) for d in self.db.table('orders').all()]

    def meta(self):
        return dict(self.db.table('meta').all()[0])

    def set_meta(self, **values):
        # Read, change and write under the storage's lock (a batch): two threads writing
        # meta at once (a fault being saved, a pause) must not write each other's stale copy.
        with transaction(self.db):
            table = self.db.table('meta')
            table.update(values, doc_ids=[table.all()[0].doc_id])

    def saved_fault(self):
        """The latched fault as the shutdown saved it (Shutdown.record()), or None."""
        return self.meta().get('fault')

    def save_fault(self, record):
        """Durable before it returns (the storage fsyncs and renames)."""
        self.set_meta(fault=record)

    def save_order(self, order, next_number=None):
        with transaction(self.db):
            self.db.table('orders').upsert(Document(order.to_dict(), doc_id=int(order.id[1:])))
            if next_number is not None:
                self.set_meta(next_order=next_number)

    def archive_order(self, order):
        """Move a finished order out of the live database into the archive journal."""
        self.archive.append({'kind': 'order', **order.to_dict()})
        with transaction(self.db):
            self.db.table('orders').remove(doc_ids=[int(order.id[1:])])

    def _archived(self, field, value):
        for record in self.archive.recent(ARCHIVE_MEMORY):
            if record.get(field) == value:
                return Order.from_dict({k: v for k, v in record.items() if k not in ('kind', 'seq')})
        return None

    def archived_order(self, oid):
        return self._archived('id', oid)

    def order_for_key(self, key):
        return self._archived('key', key)

    def flags(self):
        return self.db.table('flags').all()[0]['stored']

    def save_flags(self, stored):
        with transaction(self.db):
            table = self.db.table('flags')
            table.update({'stored': stored}, doc_ids=[table.all()[0].doc_id])

    def close(self):
        self.events.close()
        self.archive.close()
