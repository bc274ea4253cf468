"""jafflr's storage (firmware/jafflrstore.py): orders, meta, flags, the archive."""
import pytest

from firmware.orderbook import Order
from firmware.jafflrstore import ARCHIVE_MEMORY, OrderStore
from firmware.store import schema_version

WALL = 1_700_000_000.0


@pytest.fixture
def open_store(tmp_path):
    opened = []

    def make():
        opened.append(OrderStore(str(tmp_path), fsync=False, now_wall=WALL))
        return opened[-1]
    try:
        yield make
    finally:
        for s in opened:
            s.close()


def test_orderstore_new_is_migrated_with_meta_and_flags(open_store):
    store = open_store()
    assert schema_version(store.db) == 2 and len(store.applied) == 2
    assert store.meta() == {'next_order': 1, 'paused': False}
    assert store.flags() == {} and store.orders() == []


def test_orderstore_reopened_applies_nothing_and_keeps_everything(open_store):
    store = open_store()
    store.save_order(Order('t1', ['cheese'], 'light', WALL, key='k'), next_number=2)
    store.set_meta(paused=True, clean_stop={'tray': 't1'})
    store.save_flags({'pick-v2': {'enabled': False, 'customers': ['kim'], 'percent': 5}})
    store.events.append({'wall': WALL, 'kind': 'order', 'detail': 'x'})
    store.close()
    again = open_store()
    assert again.applied == []
    assert again.orders() == [Order('t1', ['cheese'], 'light', WALL, key='k')]
    assert again.meta() == {'next_order': 2, 'paused': True, 'clean_stop': {'tray': 't1'}}
    assert again.flags()['pick-v2']['customers'] == ['kim']
    assert again.events.recent(5)[0]['detail'] == 'x'


def test_orderstore_save_is_an_upsert_by_order_number(open_store):
    store = open_store()
    order = Order('t5', ['cheese'], 'light', WALL)
    store.save_order(order)
    order.state = 'done'
    store.save_order(order)
    assert [o.state for o in store.orders()] == ['done']


def test_orderstore_archive_moves_an_order_out_and_keeps_finding_it(open_store):
    store = open_store()
    order = Order('t3', ['cheese'], 'light', WALL, key='key-3', state='done')
    store.save_order(order)
    store.archive_order(order)
    assert store.orders() == []
    assert store.archived_order('t3') == order
    assert store.order_for_key('key-3') == order
    assert store.archived_order('t4') is None and store.order_for_key('nope') is None
    store.close()
    assert open_store().order_for_key('key-3') == order, 'the archive outlives a restart'


def test_orderstore_archive_remembers_the_last_thousand_keys(open_store):
    store = open_store()
    for n in range(1, ARCHIVE_MEMORY + 3):
        store.archive_order(Order(f't{n}', ['cheese'], 'light', WALL, key=f'k{n}', state='done'))
    assert store.order_for_key('k1') is None and store.order_for_key('k2') is None
    assert store.order_for_key('k3').id == 't3'
    assert store.order_for_key(f'k{ARCHIVE_MEMORY + 2}') is not None


def test_orderstore_meta_writes_from_two_threads_lose_nothing(tmp_path, monkeypatch):
    """A fault being saved and a pause written at the same moment: each read-change-write
    holds the storage's lock, so neither writes back the other's stale copy."""
    import threading
    import time
    store = OrderStore(str(tmp_path), fsync=False)
    storage = store.db.storage
    real_read = type(storage).read

    def slow_read(self):        # widen the window between TinyDB's read and its write
        data = real_read(self)
        time.sleep(0.002)
        return data
    monkeypatch.setattr(type(storage), 'read', slow_read)
    start = threading.Barrier(2)

    def writer(key):
        start.wait()
        for i in range(40):
            store.set_meta(**{key: i})
    threads = [threading.Thread(target=writer, args=(key,)) for key in ('fault', 'paused')]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    meta = store.meta()
    assert meta['fault'] == 39 and meta['paused'] == 39, meta
    store.close()
