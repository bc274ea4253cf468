"""A restart loses no request: connections accepted but not yet read when the drain starts
are answered, and those still in the backlog wait for the next process (as under systemd,
which keeps its own copy of the listening socket)."""
import socket
import threading

from api.common import serve as serve_module
from api.common.sdnotify import Notifier

CLIENTS = 40


def _app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '2')])
    return [b'ok']


def _client(port, answers, i):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=20) as s:
            s.sendall(b'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
            data = b''
            while chunk := s.recv(4096):
                data += chunk
        answers[i] = data.split(b'\r\n', 1)[0].decode() or 'closed without an answer'
    except OSError as exc:
        answers[i] = f'{type(exc).__name__}: {exc}'


def test_serve_drain_right_after_start_answers_or_leaves_every_connection_waiting(monkeypatch):
    monkeypatch.setattr(serve_module.signal, 'signal', lambda *a: None)   # not the main thread
    listener = serve_module.bind_socket('127.0.0.1', 0)
    systemd_copy = listener.dup()        # what systemd holds across the restart
    port = listener.getsockname()[1]
    answers = [None] * CLIENTS
    clients = [threading.Thread(target=_client, args=(port, answers, i)) for i in range(CLIENTS)]
    for t in clients:                    # all in the backlog, requests sent, before we serve
        t.start()
    service = serve_module.HttpService('test', _app, [listener], notifier=Notifier(env={}),
                                       drain_timeout_s=10)
    server = threading.Thread(target=service.serve)
    server.start()
    while service._server is None or not any(hasattr(c, 'requests')
                                             for c in list(service._map().values())):
        pass                             # until the first connection is accepted
    service.stop()                       # SIGTERM at once, as in ten restarts in a row
    server.join(20)
    assert not server.is_alive()
    systemd_copy.settimeout(0.5)         # the next process answers what is still waiting
    try:
        while True:
            conn, _ = systemd_copy.accept()
            conn.recv(4096)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
            conn.close()
    except socket.timeout:
        pass
    for t in clients:
        t.join(20)
    systemd_copy.close()
    failed = [a for a in answers if not (a or '').startswith('HTTP/1.1 200')]
    assert failed == [], failed
