"""The plate process's local socket: JSON lines on a Unix stream socket, one request and
one answer at a time (firmware/platehost.py says what they carry).

`LinkServer` serves PlateHost.handle, a thread per connection (jafflr keeps one open;
`python -m api.plate status` opens another that only reads). `LinkClient` is jafflr's end:
`client(request) -> answer`, connecting on first use and again after a failure; any
failure, a timeout included, is an OSError.

The socket file is made 0600 (the plate runs as jafflr's user): nothing else on the
machine may ask the heater for a temperature.
"""
import json
import logging
import os
import socket
import socketserver
import threading

log = logging.getLogger('plate')

TIMEOUT_S = 1.0     # real seconds to wait for one answer (jafflr passes timing.link_timeout_s)
MAX_LINE = 64 * 1024


class LinkServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path, host, now):
        """`host.handle(request, now, conn) -> answer` and `host.disconnected(conn, now)`
        (firmware.platehost.PlateHost); `now()` the clock's monotonic."""
        self.host = host
        self.now = now
        if os.path.exists(path):
            os.unlink(path)          # left by a process that was killed
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)
        self.path = path
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.serve_forever, kwargs={'poll_interval': 0.2},
                                        name='plate-link', daemon=True)
        self._thread.start()
        return self

    def close(self):
        self.shutdown()
        self.server_close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        server, conn = self.server, object()
        try:
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line:
                    return
                try:
                    request = json.loads(line)
                except ValueError as exc:
                    answer = {'error': 'invalid', 'message': f'not JSON: {exc}'}
                else:
                    answer = server.host.handle(request, server.now(), conn)
                self.wfile.write(json.dumps(answer, separators=(',', ':')).encode() + b'\n')
                self.wfile.flush()
        except OSError:
            pass
        finally:
            server.host.disconnected(conn, server.now())


class LinkClient:
    def __init__(self, path, timeout_s=TIMEOUT_S):
        self.path = path
        self.timeout_s = timeout_s
        self._sock = self._file = None
        self._lock = threading.Lock()

    def __call__(self, request):
        with self._lock:
            try:
                if self._sock is None:
                    self._connect()
                self._sock.sendall(json.dumps(request, separators=(',', ':')).encode() + b'\n')
                line = self._file.readline(MAX_LINE)
                if not line:
                    raise ConnectionResetError('the plate process closed the connection')
                return json.loads(line)
            except (OSError, ValueError) as exc:
                self._close()
                if isinstance(exc, OSError):
                    raise
                raise ConnectionError(f'the plate process answered garbage: {exc}') from exc

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self._sock, self._file = sock, sock.makefile('rb')

    def _close(self):
        for thing in (self._file, self._sock):
            try:
                if thing is not None:
                    thing.close()
            except OSError:
                pass
        self._sock = self._file = None

    def close(self):
        with self._lock:
            self._close()
