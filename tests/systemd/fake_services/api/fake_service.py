"""A tiny stand-in for a service, for the systemd tests only (see ../README.md)."""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def notify(message):
    address = os.environ.get('NOTIFY_SOCKET')
    if not address:
        return
    if address.startswith('@'):
        address = '\0' + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(message.encode())


def listening_socket(host, port):
    if os.environ.get('LISTEN_PID') == str(os.getpid()) and int(os.environ.get('LISTEN_FDS', 0)) >= 1:
        for name in ('LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'):
            os.environ.pop(name, None)
        return socket.socket(fileno=3)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s


def own_version(service):
    try:
        with open('VERSIONS.json') as f:
            return json.load(f)[service]
    except (OSError, ValueError, KeyError):
        return 'dev'


class State:
    """A JSON file in JAFFLR_STATE_DIR, rewritten atomically."""

    def __init__(self, name, default):
        self.path = os.path.join(os.environ.get('JAFFLR_STATE_DIR', '.'), name)
        self.lock = threading.Lock()
        try:
            with open(self.path) as f:
                self.data = json.load(f)
        except (OSError, ValueError):
            self.data = default

    def save(self):
        with open(self.path + '.tmp', 'w') as f:
            json.dump(self.data, f)
        os.replace(self.path + '.tmp', self.path)


def serve(service, routes, default_port, on_stop=lambda: None, before_ready=lambda: None):
    parser = argparse.ArgumentParser(prog=f'python -m api.{service}')
    parser.add_argument('command', nargs='?', choices=('migrate',))
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=default_port)
    args = parser.parse_args()
    if args.command == 'migrate':
        print(f'{service}: schema version 1')
        return 0
    version = own_version(service)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self, method):
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == '/health':
                status, body = 200, version
            elif (method, url.path) in routes:
                status, body = routes[(method, url.path)](query, self.headers)
            else:
                status, body = 404, 'not found'
            data = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'text/plain' if isinstance(body, str) else 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._answer('GET')

        def do_POST(self):
            self._answer('POST')

    server = ThreadingHTTPServer.__new__(ThreadingHTTPServer)
    server.daemon_threads = False   # server_close() waits for accepted requests
    ThreadingHTTPServer.__init__(server, ('127.0.0.1', 0), Handler, bind_and_activate=False)
    server.socket = listening_socket(args.host, args.port)

    def stop(*_):
        threading.Thread(target=server.shutdown).start()
    signal.signal(signal.SIGTERM, stop)
    before_ready()
    notify('READY=1')
    server.serve_forever(poll_interval=0.2)
    on_stop()
    server.server_close()
    return 0
