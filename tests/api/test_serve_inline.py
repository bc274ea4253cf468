"""HttpService(inline=): requests the predicate picks are answered on waitress's loop
thread itself (LaneDispatcher.run_inline), the rest by the thread pool; real HTTP over a
loopback socket. chillybin's read replica answers its GET / this way."""
import socket
import threading
import time

import pytest

from api.common import serve as serve_module
from api.common.sdnotify import Notifier


class App:
    """`/` answers at once and says which thread answered; `/slow` waits for `release`."""

    def __init__(self):
        self.release = threading.Event()
        self.threads = []

    def __call__(self, environ, start_response):
        self.threads.append(threading.current_thread().name)
        if environ['PATH_INFO'] == '/slow':
            self.release.wait(10)
        body = environ['PATH_INFO'].encode()
        start_response('200 OK', [('Content-Type', 'text/plain'),
                                  ('Content-Length', str(len(body)))])
        return [body]


@pytest.fixture
def served(monkeypatch):
    monkeypatch.setattr(serve_module.signal, 'signal', lambda *a: None)   # not the main thread
    app = App()
    listener = serve_module.bind_socket('127.0.0.1', 0)
    service = serve_module.HttpService(
        'inline-test', app, [listener], threads=1, notifier=Notifier(env={}),
        drain_timeout_s=5, inline=lambda request: request.path == '/')
    server = threading.Thread(target=service.serve, name='loop')
    server.start()
    yield app, listener.getsockname()[1], service
    app.release.set()
    service.stop()
    server.join(10)
    assert not server.is_alive()


def read_answers(sock, count):
    """`count` answers' bodies from `sock` (each has a Content-Length)."""
    data, bodies = b'', []
    while len(bodies) < count:
        head, sep, rest = data.partition(b'\r\n\r\n')
        if sep:
            length = int(next(line.split(b':')[1] for line in head.split(b'\r\n')
                              if line.lower().startswith(b'content-length')))
            if len(rest) >= length:
                bodies.append((head.split(b'\r\n', 1)[0], rest[:length]))
                data = rest[length:]
                continue
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return bodies


def get(port, paths, close=False):
    request = b''.join(f'GET {p} HTTP/1.1\r\nHost: x\r\n'.encode()
                       + (b'Connection: close\r\n' if close and i == len(paths) - 1 else b'')
                       + b'\r\n' for i, p in enumerate(paths))
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        s.sendall(request)          # pipelined: one write
        answers = read_answers(s, len(paths))
        tail = s.recv(100) if close else None
    return answers, tail


def test_inline_answers_while_every_thread_is_busy(served):
    app, port, _ = served
    slow = threading.Thread(target=get, args=(port, ['/slow']))
    slow.start()
    deadline = time.monotonic() + 5
    while not app.threads and time.monotonic() < deadline:
        time.sleep(0.01)            # until the one thread holds /slow
    started = time.monotonic()
    answers, _ = get(port, ['/'])
    took = time.monotonic() - started
    assert answers == [(b'HTTP/1.1 200 OK', b'/')]
    assert took < 2, f'GET / waited {took:.1f} s for the busy thread'
    assert app.threads[-1] == 'loop', app.threads
    app.release.set()
    slow.join(10)
    assert app.threads[0] != 'loop', '/slow went to the pool'


def test_inline_keeps_pipelined_answers_in_order_and_honours_connection_close(served):
    app, port, _ = served
    answers, tail = get(port, ['/', '/', '/other', '/', '/'], close=True)
    assert [body for _, body in answers] == [b'/', b'/', b'/other', b'/', b'/']
    assert {status for status, _ in answers} == {b'HTTP/1.1 200 OK'}
    assert tail == b'', 'closed after the answer that asked for it'
    # The loop answers the first two; /other goes to the pool, and the two after it
    # (queued behind it on the connection) follow it there, in order.
    assert app.threads[:2] == ['loop', 'loop'] and app.threads[2] != 'loop', app.threads


def test_inline_answers_a_bad_request_from_the_pool_with_400(served):
    app, port, _ = served
    with socket.create_connection(('127.0.0.1', port), timeout=5) as s:
        s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n')
        assert s.recv(4096).startswith(b'HTTP/1.1 400')
    assert app.threads == []
