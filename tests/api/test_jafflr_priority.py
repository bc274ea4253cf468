"""STOP always gets through, over real sockets against a jafflr process: with 100 v1
customers waiting on /toastie, and with 300 slow connections that trickle a byte now and
then (slowloris). Also the v1 waits' bounds: a replay answers at once, and past the
waiter limit the answer says where to follow the toastie instead of waiting.

Figures are printed (pytest -s) and STOP must answer within STOP_BOUND_S each time.
"""
import concurrent.futures
import socket
import threading
import time

import pytest

from tests.api.conftest import restock, stop_machine
from tests.support.client import request

STOP_BOUND_S = 0.25
WAITERS = 100
SLOW_CONNECTIONS = 300


@pytest.fixture
def j(start_jafflr):
    return start_jafflr()


def admin(j):
    return {'Authorization': f'Bearer {j.admin_token()}'}


def timed_stop(j, by):
    started = time.monotonic()
    answer = request(j.port, 'POST', '/v2/stop', {'by': by}, timeout=10)
    took = time.monotonic() - started
    assert answer.status == 200 and answer.json()['fault']['reason'] == 'stopped', answer
    return took


def queue_length(j):
    return request(j.port, 'GET', '/v2/status').json()['queue']['length']


def test_priority_stop_answers_at_once_with_100_v1_customers_waiting(machine, j):
    restock(machine, bread=40, cheese=20)
    assert request(j.port, 'POST', '/v2/queue/pause', headers=admin(j)).status == 200
    # The case: many customers sharing one Idempotency-Key (they take no queue
    # slot), and more ordering toasties of their own until the queue is full.
    shared = {'Idempotency-Key': 'the-same-order'}
    answers = []

    def customer(n):
        headers = shared if n % 2 else {'Idempotency-Key': f'own-{n}'}
        started = time.monotonic()
        answer = request(j.port, 'GET', '/toastie?i=cheese', headers=headers, timeout=60)
        answers.append((n, answer, time.monotonic() - started))

    threads = [threading.Thread(target=customer, args=(n,), daemon=True) for n in range(WAITERS)]
    for t in threads:
        t.start()
    machine.wait_for(lambda: len(answers) >= WAITERS - 8, 20, 'all but the waiters answered')
    time.sleep(0.5)
    waiting = WAITERS - len(answers)
    stops = [timed_stop(j, f'the waiters test {i}') for i in range(3)]
    for t in threads:
        t.join(10)
    print(f'\n{WAITERS} v1 customers, {waiting} still waiting: STOP answered in '
          f'{", ".join(f"{s * 1000:.0f}" for s in stops)} ms')
    assert 1 <= waiting <= 8, f'{waiting} customers waited (the limit is 8 of 16 threads)'
    assert max(stops) < STOP_BOUND_S, stops
    assert len(answers) == WAITERS, 'a v1 customer got no answer after the stop'
    statuses = {}
    for n, answer, took in answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status == 202:           # a replay, or past the waiter limit: where to follow
            assert answer.headers['location'].startswith('/v2/toasties/t'), answer
            assert f'follow it at {answer.headers["location"]}' in answer.text
        else:
            assert answer.status in (409, 503), answer    # no stock or queue full, or stopped
    print(f'answers by status: {statuses}')
    assert statuses.get(202, 0) >= WAITERS // 2 - 1     # every replay answered at once


def test_priority_v1_replay_and_customers_past_the_limit_do_not_wait(machine, j):
    restock(machine, bread=40, cheese=20)
    assert request(j.port, 'POST', '/v2/queue/pause', headers=admin(j)).status == 200
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        first = pool.submit(request, j.port, 'GET', '/toastie?i=cheese', None,
                            {'Idempotency-Key': 'k1'}, 60)
        machine.wait_for(lambda: queue_length(j) == 1, 20, 'the first order queued')
        started = time.monotonic()
        replay = request(j.port, 'GET', '/toastie?i=cheese', headers={'Idempotency-Key': 'k1'})
        assert time.monotonic() - started < 2 and replay.status == 202, replay
        oid = replay.headers['location'].rsplit('/', 1)[1]
        assert 'ordered already with this Idempotency-Key' in replay.text
        assert request(j.port, 'GET', f'/v2/toasties/{oid}').json()['state'] == 'queued'
        more = [pool.submit(request, j.port, 'GET', f'/toastie?i=cheese&customer=c{n}', None,
                            None, 60) for n in range(8)]
        # 1 + 8 ordered: 8 may wait, so exactly one answered at once, with where to follow it.
        machine.wait_for(lambda: any(f.done() for f in more), 10, 'one answered at once')
        time.sleep(0.5)
        quick = [f.result() for f in more if f.done()]
        assert len(quick) == 1 and not first.done(), quick
        assert quick[0].status == 202 and 'customers are waiting already' in quick[0].text
        assert quick[0].headers['location'].startswith('/v2/toasties/t')
        timed_stop(j, 'the replay test')
        assert first.result(10).status == 503
        assert all(f.result(10).status in (202, 503) for f in more)


class Trickler:
    """`count` connections that each sent part of a request and add one byte a second,
    never finishing it: each is always active, so waitress's channel_timeout never ends it."""

    def __init__(self, port, count):
        self.port, self.count = port, count
        self.socks = []
        self.reconnects = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self):
        s = socket.create_connection(('127.0.0.1', self.port), timeout=5)
        s.sendall(b'GET /v2/status HTTP/1.1\r\nHost: 127.0.0.1\r\n')
        return s

    def start(self):
        for _ in range(self.count):
            self.socks.append(self._open())
        self.thread.start()

    def _run(self):
        while not self.stop.wait(1.0):
            for i, s in enumerate(self.socks):
                try:
                    s.sendall(b'X')
                except OSError:             # closed by the server: the attacker comes back
                    s.close()
                    self.reconnects += 1
                    try:
                        self.socks[i] = self._open()
                    except OSError:
                        pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for s in self.socks:
            s.close()


def test_priority_stop_answers_at_once_with_300_slow_connections_open(machine, j):
    trickler = Trickler(j.port, SLOW_CONNECTIONS)
    try:
        trickler.start()
        time.sleep(2.5)       # every connection accepted and trickling
        stops = [timed_stop(j, f'the slowloris test {i}') for i in range(3)]
        status = request(j.port, 'GET', '/v2/status', timeout=10)
        print(f'\n{SLOW_CONNECTIONS} slow connections ({trickler.reconnects} closed by jafflr '
              f'and reopened): STOP answered in {", ".join(f"{s * 1000:.0f}" for s in stops)} ms')
        assert max(stops) < STOP_BOUND_S, stops
        assert status.status == 200
    finally:
        trickler.close()
        stop_machine(j)


def test_priority_a_request_that_never_arrives_whole_is_closed_after_the_deadline(machine, j):
    s = socket.create_connection(('127.0.0.1', j.port), timeout=20)
    try:
        s.sendall(b'GET /v2/status HTTP/1.1\r\n')
        started = time.monotonic()
        closed = None
        while time.monotonic() - started < 16:
            try:
                s.sendall(b'X')
            except OSError:
                closed = time.monotonic() - started
                break
            time.sleep(0.5)
        assert closed is not None and 9 < closed < 14, closed    # REQUEST_DEADLINE_S 10
    finally:
        s.close()
