"""chillybin's storage: bays and their calibration, food-safety clocks, reservations, in
one crash-safe TinyDB; events in a rotated journal. And the migrations that shape it.
"""
import os

from tinydb.table import Document

from .foodsafety import FoodSafetyClock
from .reservations import Reservation
from .store import Journal, Migration, migrate, open_db, transaction

DB_NAME = 'chillybin.json'


def _create_ingredients(defaults):
    """Migration 1, as the original project's first migration: bread, cheese, vegemite."""
    def up(db):
        bays = db.table('bays')
        for bay in defaults:
            bays.insert(dict(bay))

    def down(db):
        db.drop_table('bays')
    return up, down


def _add_food_safety(db):
    clocks = db.table('food_safety')
    for bay in db.table('bays').all():
        clocks.insert({'name': bay['name'], **FoodSafetyClock().to_dict()})


def _drop(*tables):
    def down(db):
        for table in tables:
            db.drop_table(table)
    return down


def _add_meta(db):
    db.table('meta').insert({'next_reservation': 1, 'last_seen_wall': None})


def migrations(default_bays):
    """The numbered migrations; `default_bays` are the first migration's ingredients
    (name, slot, unit_g, tare_counts, counts_per_g), handed in from the board."""
    up, down = _create_ingredients(default_bays)
    return [
        Migration(1, 'create ingredients', up, down),
        Migration(2, 'food-safety clocks', _add_food_safety, _drop('food_safety')),
        Migration(3, 'reservations and meta', _add_meta, _drop('meta', 'reservations')),
    ]


class BinStore:
    def __init__(self, state_dir, default_bays, fsync=True, now_wall=0.0):
        self.db = open_db(os.path.join(state_dir, DB_NAME), fsync=fsync)
        self.migrations = migrations(default_bays)
        self.applied = migrate(self.db, self.migrations, now=now_wall, service='chillybin')
        self.events = Journal(os.path.join(state_dir, 'chillybin-history'), 'events', fsync=fsync)
        self.temperatures = Journal(os.path.join(state_dir, 'chillybin-history'), 'bin-temperature',
                                    fsync=False, recent=60)

    def transaction(self):
        return transaction(self.db)

    # -- bays ---------------------------------------------------------------------------
    def bays(self):
        return sorted(self.db.table('bays').all(), key=lambda b: b['slot'])

    def save_bay(self, bay):
        table = self.db.table('bays')
        existing = [d.doc_id for d in table.all() if d['name'] == bay['name']]
        if existing:
            table.update(bay, doc_ids=existing)
        else:
            table.insert(bay)

    # -- food safety ------------------------------------------------------------------------
    def clocks(self):
        return {d['name']: FoodSafetyClock.from_dict(d) for d in self.db.table('food_safety').all()}

    def save_clocks(self, clocks, wall):
        table = self.db.table('food_safety')
        docs = {d['name']: d.doc_id for d in table.all()}
        with transaction(self.db):
            for name, clock in clocks.items():
                doc = {'name': name, **clock.to_dict()}
                if name in docs:
                    table.update(doc, doc_ids=[docs[name]])
                else:
                    table.insert(doc)
            self.set_meta(last_seen_wall=wall)

    # -- reservations ------------------------------------------------------------------------
    def reservations(self):
        return [Reservation.from_dict(d) for d in self.db.table('reservations').all()]

    def save_reservations(self, reservations):
        table = self.db.table('reservations')
        for r in reservations:
            table.upsert(Document(r.to_dict(), doc_id=int(r.id.lstrip('rp'))))

    def forget_reservations(self, reservations):
        if reservations:
            self.db.table('reservations').remove(doc_ids=[int(r.id.lstrip('rp')) for r in reservations])

    # -- meta ---------------------------------------------------------------------------
    def meta(self):
        docs = self.db.table('meta').all()
        return dict(docs[0]) if docs else {}

    def set_meta(self, **values):
        table = self.db.table('meta')
        table.update(values, doc_ids=[table.all()[0].doc_id])

    def close(self):
        self.events.close()
        self.temperatures.close()
