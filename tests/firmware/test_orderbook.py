"""Orders and the bounded queue (firmware/orderbook.py), on a real OrderStore in a temp dir."""
import pytest

from firmware.errors import Conflict, NotFound, QueueFull
from firmware.orderbook import Order, OrderBook
from firmware.jafflrstore import OrderStore

WALL = 1_700_000_000.0


@pytest.fixture
def store(tmp_path):
    s = OrderStore(str(tmp_path), fsync=False)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def book(store):
    return OrderBook(store, max_queue=3, keep_finished=2)


def test_order_units_are_bread_fillings_bread():
    order = Order('t1', ['cheese', 'vegemite', 'cheese'], 'medium', WALL)
    assert order.units == ['bread', 'cheese', 'vegemite', 'cheese', 'bread']
    assert order.needs() == {'bread': 2, 'cheese': 2, 'vegemite': 1}


def test_order_progress_runs_through_the_step_towards_the_next():
    order = Order('t1', ['cheese'], 'light', WALL, step='toasting', step_started_at=WALL,
                  step_expected_s=60.0, state='toasting')
    assert order.progress(WALL) == 0.3
    assert order.progress(WALL + 30) == pytest.approx(0.61)
    assert order.progress(WALL + 600) == 0.92        # never past the next step's start
    order.state = 'done'
    assert order.progress(WALL) == 1.0


def test_order_round_trips_through_a_dict():
    order = Order('t7', ['cheese'], 'burnt', WALL, name='Kim', key='k', stock={'mode': 'v2'})
    assert Order.from_dict(order.to_dict()) == order


def test_orders_submit_queues_in_order_and_numbers_them(book):
    first, replayed = book.submit(['cheese'], 'light', WALL)
    second, _ = book.submit(['cheese'], 'light', WALL + 1)
    assert (first.id, second.id, replayed) == ('t1', 't2', False)
    assert [o.id for o in book.queued()] == ['t1', 't2']
    assert book.position('t2') == 1 and book.position('t9') is None
    assert book.take_next(WALL + 2) is first
    assert (first.state, first.step, first.started_at) == ('assembling', 'reserving', WALL + 2)
    assert book.position('t2') == 0


def test_orders_queue_is_bounded(book):
    for _ in range(3):
        book.submit(['cheese'], 'light', WALL)
    with pytest.raises(QueueFull, match=r'the queue is full \(3 toasties waiting\); try again '
                                        r'in about 71 s') as full:
        book.submit(['cheese'], 'light', WALL, retry_after_s=71)
    assert full.value.retry_after_s == 71 and full.value.kind == 'queue-full'
    book.take_next(WALL)
    book.submit(['cheese'], 'light', WALL)          # room again


def test_orders_same_key_same_toastie_is_the_same_order(book):
    first, _ = book.submit(['cheese'], 'light', WALL, key='k1', fingerprint='a')
    again, replayed = book.submit(['cheese'], 'light', WALL, key='k1', fingerprint='a')
    assert again is first and replayed
    assert len(book.queue) == 1


def test_orders_same_key_other_toastie_is_a_conflict(book):
    book.submit(['cheese'], 'light', WALL, key='k1', fingerprint='a')
    with pytest.raises(Conflict, match="Idempotency-Key 'k1' was already used for a different "
                                       "toastie \\(order t1\\)") as conflict:
        book.submit(['cheese', 'ham'], 'light', WALL, key='k1', fingerprint='b')
    assert conflict.value.field == 'Idempotency-Key'


def test_orders_cancel_only_while_queued(book):
    queued, _ = book.submit(['cheese'], 'light', WALL)
    started, _ = book.submit(['cheese'], 'light', WALL)
    cancelled = book.cancel(queued.id, WALL + 1)
    assert cancelled.state == 'cancelled' and cancelled.failure['reason'] == 'cancelled'
    assert book.cancel(queued.id, WALL + 2) is cancelled            # again: the same answer
    book.take_next(WALL)
    with pytest.raises(Conflict, match='toastie t2 is assembling; only a queued toastie can be '
                                       'cancelled'):
        book.cancel(started.id, WALL)
    with pytest.raises(NotFound, match="there is no toastie 't99'"):
        book.cancel('t99', WALL)


def test_orders_finish_once_counts_outcomes_and_wakes_waiters(book):
    a, _ = book.submit(['cheese'], 'light', WALL)
    b, _ = book.submit(['cheese'], 'light', WALL)
    waiter = book.done_event(a.id)
    assert not waiter.is_set()
    book.finish(a, 'done', WALL + 100)
    book.fail(b, 'press-jam', 'the press did not open within 8 s', WALL + 101)
    book.finish(a, 'failed', WALL + 102)               # a finished order stays as it ended
    assert waiter.is_set() and book.done_event(b.id).is_set()
    assert (a.state, a.finished_at, b.failure['reason']) == ('done', WALL + 100, 'press-jam')
    assert book.outcomes == {'done': 1, 'press-jam': 1}


def test_orders_finished_beyond_the_recent_are_archived_and_still_found(book, store):
    orders = [book.submit(['cheese'], 'light', WALL, key=f'k{i}', fingerprint='f')[0]
              for i in range(3)]
    for i, order in enumerate(orders):
        book.take_next(WALL)
        book.finish(order, 'done', WALL + i)
    assert sorted(book.orders) == ['t2', 't3']                     # keep_finished=2
    assert [d['id'] for d in store.db.table('orders').all()] == ['t2', 't3']
    archived = book.get('t1')
    assert archived.state == 'done' and archived.id == 't1'
    again, replayed = book.submit(['cheese'], 'light', WALL, key='k0', fingerprint='f')
    assert replayed and again.id == 't1', 'an archived order still answers its key'


def test_orders_survive_a_restart_with_their_queue_and_keys(store, tmp_path):
    book = OrderBook(store)
    a, _ = book.submit(['cheese'], 'light', WALL, key='ka', fingerprint='f')
    b, _ = book.submit(['cheese', 'vegemite'], 'medium', WALL + 1, key='kb', fingerprint='f')
    c, _ = book.submit(['cheese'], 'light', WALL + 2)
    book.take_next(WALL + 3)
    book.note_stock(a, mode='v2', reservation='r1')
    store.close()
    reopened = OrderStore(str(tmp_path), fsync=False)
    try:
        again = OrderBook(reopened, reopened.orders(), reopened.meta()['next_order'])
        assert [o.id for o in again.queued()] == ['t2', 't3']
        assert again.get('t1').state == 'assembling'
        assert again.get('t1').stock == {'mode': 'v2', 'reservation': 'r1'}
        assert again.replay('kb', 'f').id == 't2'
        assert again.submit(['cheese'], 'light', WALL)[0].id == 't4'
    finally:
        reopened.close()


def test_orders_fail_if_queued_only_fails_what_has_not_started(book):
    started, _ = book.submit(['cheese'], 'light', WALL)
    waiting, _ = book.submit(['cheese'], 'light', WALL)
    book.take_next(WALL)                              # the first is being assembled now
    assert book.fail_if_queued(started.id, 'estop', 'pressed', WALL) is None
    failed = book.fail_if_queued(waiting.id, 'estop', 'pressed', WALL)
    assert failed.state == 'failed' and failed.failure == {'reason': 'estop', 'detail': 'pressed',
                                                           'kind': 'unavailable'}
    assert book.queued() == [] and book.fail_if_queued('t9', 'estop', '', WALL) is None


# -- states and steps are enums that store and answer as the strings they always were ------
OLD_RECORD = {   # an order as the code before the enums wrote it to jafflr.json
    'id': 't7', 'ingredients': ['cheese'], 'doneness': 'light', 'created_at': WALL, 'name': '',
    'customer': '', 'source': 'v1', 'key': 'k7', 'fingerprint': 'f', 'state': 'toasting',
    'step': 'waiting for the plate', 'step_started_at': WALL, 'step_expected_s': 0.0,
    'started_at': WALL, 'finished_at': None, 'failure': None, 'stock': {'mode': 'v2'}}


def test_orders_stored_by_the_old_code_load_as_enums_and_store_the_same_strings(tmp_path):
    import json
    from firmware.orderbook import OrderState, Step
    from tinydb.table import Document
    store = OrderStore(str(tmp_path), fsync=False)
    store.db.table('orders').insert(Document(dict(OLD_RECORD), doc_id=7))
    store.close()
    again = OrderStore(str(tmp_path), fsync=False)
    try:
        (order,) = again.orders()
        assert order.state is OrderState.TOASTING and order.step is Step.WAITING_FOR_PLATE
        assert order.state == 'toasting'           # old comparisons still hold
        again.save_order(order)
        assert json.loads(json.dumps(order.to_dict())) == OLD_RECORD
        with open(tmp_path / 'jafflr.json') as f:
            assert json.load(f)['orders']['7'] == OLD_RECORD     # byte-for-byte the old strings
    finally:
        again.close()


def test_orders_an_unknown_state_or_step_is_an_error_not_a_new_string(book):
    order, _ = book.submit(['cheese'], 'light', WALL)
    with pytest.raises(ValueError, match='toastng'):
        book.move(order, 'toasting', 'toastng', WALL)
    with pytest.raises(ValueError, match='bakeing'):
        Order.from_dict(dict(OLD_RECORD, state='bakeing'))


def test_orders_finish_sets_the_step_to_the_end_state(book):
    from firmware.orderbook import OrderState, Step
    order, _ = book.submit(['cheese'], 'light', WALL)
    book.cancel(order.id, WALL)
    assert order.state is OrderState.CANCELLED and order.step is Step.CANCELLED


def test_orders_queued_does_not_wait_for_a_write_in_progress(book):
    """The status reads the queue on the HTTP loop itself: a write holding the book's lock
    across the disk must not hold the loop (and a STOP behind it) too."""
    from tests.support.threads import held_by_another_thread
    import threading
    book.submit(['cheese'], 'light', WALL)
    book.submit(['cheese'], 'light', WALL + 1)
    answered = []
    with held_by_another_thread(book.lock):
        reader = threading.Thread(target=lambda: answered.append(book.queued()))
        reader.start()
        reader.join(1)
        assert answered, 'queued() waited for the lock'
    assert [o.id for o in answered[0]] == ['t1', 't2']
