"""The waitress thread pool's lanes, in process: a reserved thread answers STOP and the
status while every ordinary thread is stuck, and never takes ordinary work."""
import threading
import time
from types import SimpleNamespace

from api.common.lanes import LaneDispatcher, rank_by_paths
from api.jafflr.service import PRIORITY_PATHS


class Task:
    def __init__(self, method, path, gate=None, log=None):
        self.requests = [SimpleNamespace(command=method, path=path, error=None)]
        self.gate, self.log = gate, log
        self.done = threading.Event()
        self.started = threading.Event()
        self.cancelled = False

    def service(self):
        self.at = time.monotonic()
        self.started.set()
        if self.gate is not None:
            self.gate.wait()
        if self.log is not None:
            self.log.append(self.requests[0].path)
        self.done.set()

    def cancel(self):
        self.cancelled = True


def started_stop(dispatcher, gate):
    """A STOP task given to `dispatcher`, once a thread is answering it (until `gate`)."""
    stop = Task('POST', '/v2/stop', gate)
    dispatcher.add_task(stop)
    assert stop.started.wait(2)
    return stop


def test_lanes_rank_stop_first_then_status_and_the_panel():
    rank = rank_by_paths(PRIORITY_PATHS)
    assert rank('POST', '/v2/stop') == 0
    assert rank('GET', '/v2/status') == rank('GET', '/') == rank('GET', '/panel/panel.js') == 1
    assert rank('GET', '/toastie') == rank('GET', '/v2/stop') == rank('POST', '/v2/toasties') == 2


def test_lanes_a_reserved_thread_answers_stop_while_every_ordinary_thread_is_stuck():
    dispatcher = LaneDispatcher(2, 1, rank_by_paths(PRIORITY_PATHS)).start()
    stuck = threading.Event()
    try:
        waiting = [Task('GET', '/toastie', stuck) for _ in range(5)]
        for task in waiting:
            dispatcher.add_task(task)
        stop, status = Task('POST', '/v2/stop'), Task('GET', '/v2/status')
        dispatcher.add_task(stop)
        dispatcher.add_task(status)
        assert stop.done.wait(2) and status.done.wait(2)
        ordinary = Task('GET', '/v2/events')
        dispatcher.add_task(ordinary)
        assert not ordinary.done.wait(0.3), 'the reserved thread took ordinary work'
        stuck.set()
        assert ordinary.done.wait(2) and all(t.done.wait(2) for t in waiting)
    finally:
        stuck.set()
        assert dispatcher.shutdown(timeout=2)


def test_lanes_stop_goes_ahead_of_everything_queued():
    dispatcher = LaneDispatcher(1, 0, rank_by_paths(PRIORITY_PATHS)).start()
    gate, order = threading.Event(), []
    try:
        first = Task('GET', '/first', gate, order)
        dispatcher.add_task(first)
        assert first.started.wait(2)
        queued = [Task('GET', '/v2/events', log=order), Task('GET', '/v2/status', log=order),
                  Task('POST', '/v2/stop', log=order)]
        for task in queued:
            dispatcher.add_task(task)
        gate.set()
        assert all(t.done.wait(2) for t in queued)
        assert order == ['/first', '/v2/stop', '/v2/status', '/v2/events']
    finally:
        gate.set()
        dispatcher.shutdown(timeout=2)


def test_lanes_while_a_stop_is_answered_no_other_request_starts(monkeypatch):
    """Under load each GIL hand-off on a STOP's way waits behind every runnable thread: while
    it is answered, queued requests wait (those already running finish) and start after."""
    from api.common import lanes
    monkeypatch.setattr(lanes, 'STOP_FIRST_S', 5.0)     # no slack lost to a loaded machine
    dispatcher = LaneDispatcher(3, 1, rank_by_paths(PRIORITY_PATHS)).start()
    stopping = threading.Event()
    try:
        started_stop(dispatcher, stopping)
        held = [Task('GET', '/v2/status'), Task('GET', '/v2/events')]
        for task in held:
            dispatcher.add_task(task)
        assert not any(t.started.wait(0.3) for t in held), 'a request started beside the STOP'
        second = Task('POST', '/v2/stop')           # another STOP is not held back
        dispatcher.add_task(second)
        assert second.done.wait(2)
        stopping.set()
        assert all(t.done.wait(2) for t in held), 'held requests did not start after the STOP'
    finally:
        stopping.set()
        assert dispatcher.shutdown(timeout=2)


def test_lanes_a_stop_that_hangs_holds_the_others_back_one_second_at_most(monkeypatch):
    from api.common import lanes
    monkeypatch.setattr(lanes, 'STOP_FIRST_S', 0.3)
    dispatcher = LaneDispatcher(2, 0, rank_by_paths(PRIORITY_PATHS)).start()
    hung = threading.Event()
    try:
        started_stop(dispatcher, hung)
        status = Task('GET', '/v2/status')
        dispatcher.add_task(status)
        assert not status.started.wait(0.15)
        assert status.done.wait(2), 'a hung STOP held the others back for good'
    finally:
        hung.set()
        assert dispatcher.shutdown(timeout=2)


def test_lanes_a_flood_of_stops_leaves_the_others_half_the_time(monkeypatch):
    """STOP needs no login: STOPs sent one after another, overlapping, must not hold the
    rest back for good. The first starts a hold; none starts another until 2 x STOP_FIRST_S."""
    from api.common import lanes
    monkeypatch.setattr(lanes, 'STOP_FIRST_S', 0.3)
    dispatcher = LaneDispatcher(12, 0, rank_by_paths(PRIORITY_PATHS)).start()
    flood = threading.Event()
    try:
        started_stop(dispatcher, flood)
        started = time.monotonic()
        status = Task('GET', '/v2/status')
        dispatcher.add_task(status)
        for _ in range(8):          # a STOP every 0.15 s for 1.2 s, each hanging
            time.sleep(0.15)
            dispatcher.add_task(Task('POST', '/v2/stop', flood))
        assert status.done.wait(2)
        assert status.at - started < 0.3 + 0.3, \
            f'overlapping STOPs held the others back {status.at - started:.2f} s'
    finally:
        flood.set()
        assert dispatcher.shutdown(timeout=2)


class Channel(Task):
    """What run_inline drives: waitress's channel (service(), connected, handle_write)."""
    connected = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written = False

    def handle_write(self):
        self.written = True


def test_lanes_a_stop_answered_on_the_loop_thread_holds_the_others_back_too(monkeypatch):
    """jafflr answers STOP on waitress's loop thread (serve.HttpService(inline=)): the
    dispatcher keeps it for that thread, and while it runs no queued request starts."""
    from api.common import lanes
    monkeypatch.setattr(lanes, 'STOP_FIRST_S', 5.0)
    dispatcher = LaneDispatcher(2, 1, rank_by_paths(PRIORITY_PATHS),
                                inline=lambda r: PRIORITY_PATHS.get((r.command, r.path)) == 0)
    dispatcher.start()
    dispatcher.loop_thread = threading.get_ident()      # this test is the loop
    stopping = threading.Event()
    try:
        stop = Channel('POST', '/v2/stop', stopping)
        dispatcher.add_task(stop)
        assert list(dispatcher.inline_lanes[0]) == [stop] and not stop.started.wait(0.2), \
            'the STOP went to a thread, not kept for the loop'
        other = Task('GET', '/v2/status')
        threading.Thread(target=dispatcher.add_task, args=(other,)).start()  # not the loop's
        assert other.started.wait(2), 'a request from another thread is not kept for the loop'
        loop = threading.Thread(target=dispatcher.run_inline)
        dispatcher.loop_thread = None
        loop.start()
        assert stop.started.wait(2)
        held = Task('GET', '/v2/events')
        dispatcher.add_task(held)
        assert not held.started.wait(0.3), 'a request started beside the inline STOP'
        stopping.set()
        loop.join(2)
        assert stop.done.is_set() and stop.written, 'answered and its answer sent at once'
        assert held.done.wait(2), 'the held request did not start after the STOP'
    finally:
        stopping.set()
        assert dispatcher.shutdown(timeout=2)


def test_lanes_the_loop_answers_a_few_at_a_time_and_a_stop_first():
    """After each poll the loop answers at most `limit` of the requests kept for it, STOP's
    first: a STOP read in a busy poll waits for a few answers, not for every client's."""
    log = []
    dispatcher = LaneDispatcher(1, 0, rank_by_paths(PRIORITY_PATHS), inline=lambda r: True)
    dispatcher.loop_thread = threading.get_ident()
    statuses = [Channel('GET', '/v2/status', log=log) for _ in range(6)]
    for task in statuses:
        dispatcher.add_task(task)
    dispatcher.add_task(Channel('POST', '/v2/stop', log=log))
    dispatcher.run_inline(limit=3)
    assert log == ['/v2/stop', '/v2/status', '/v2/status'] and dispatcher.inline_pending
    dispatcher.run_inline()
    assert len(log) == 7 and not dispatcher.inline_pending
    assert all(t.written for t in statuses), 'each answer sent as soon as it was made'


def test_lanes_a_connection_with_answers_unsent_goes_to_a_thread_not_the_loop():
    """waitress waits for the loop to flush above its high-watermark: on the loop itself
    that would be for ever, so a client that is not reading its answers gets a thread."""
    dispatcher = LaneDispatcher(1, 0, rank_by_paths(PRIORITY_PATHS),
                                inline=lambda r: True).start()
    dispatcher.loop_thread = threading.get_ident()
    try:
        backed_up = Channel('GET', '/v2/status')
        backed_up.total_outbufs_len = 1 << 20
        dispatcher.add_task(backed_up)
        assert not dispatcher.inline_pending and backed_up.done.wait(2)
    finally:
        assert dispatcher.shutdown(timeout=2)
