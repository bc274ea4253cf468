"""The waitress thread pool's lanes, in process: a reserved thread answers STOP and the
status while every ordinary thread is stuck, and never takes ordinary work."""
import threading
from types import SimpleNamespace

from api.common.lanes import LaneDispatcher, rank_by_paths
from api.jafflr.service import PRIORITY_PATHS


class Task:
    def __init__(self, method, path, gate=None, log=None):
        self.requests = [SimpleNamespace(command=method, path=path)]
        self.gate, self.log = gate, log
        self.done = threading.Event()
        self.started = threading.Event()
        self.cancelled = False

    def service(self):
        self.started.set()
        if self.gate is not None:
            self.gate.wait()
        if self.log is not None:
            self.log.append(self.requests[0].path)
        self.done.set()

    def cancel(self):
        self.cancelled = True


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
