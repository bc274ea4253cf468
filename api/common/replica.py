"""A read replica: a second process that shares a service's listening socket and
answers its busiest read itself, so that answer is not held to one process's GIL.

Why: one waitress process on two cores answered chillybin's `GET /` about 3,500 times a
second at 32 clients, using 1.1 cores; the rest of the time went to handing each request
between its threads under one GIL. Two processes accepting on one socket use both cores.

How:
- The primary (the service itself) keeps every part, the store and all the logic. It
  forks the replica first thing, before it imports the rest of itself, opens any
  hardware or starts a thread: what it loads and builds afterwards is its own, never
  shared and so never copied (measured: the replica's private memory 9 MB when forked
  after start-up, less when forked first; bench/README.md). Both accept on the
  same listening socket(s); the kernel gives each new connection to one of them.
- The primary publishes the hot answer (`SharedAnswer.publish`) into shared memory
  whenever it changes, before it acknowledges the change, so a client that got `200 ok`
  for a pick never reads the old stock afterwards, whichever process answers.
- The replica answers `GET /` (and HEAD) from that memory, through the same `Edge`
  checks as the primary. Every other request it forwards, as received, to the primary
  over a private loopback port and passes the answer back: writes are made in one place.
- The replica stops answering from memory the moment the primary is gone (it checks its
  parent and dies with it: PR_SET_PDEATHSIG), so it never serves stale stock.
- On SIGTERM the primary first stops the replica (which finishes what it accepted,
  forwarding included) and then drains itself; under systemd the socket stays open in
  systemd meanwhile, so nothing is refused.
- The replica's requests are counted in shared memory and exported by the primary as
  `<service>_replica_http_requests_total` and `..._replica_http_request_duration_seconds`.
"""
import ctypes
import faulthandler
import fcntl
import gc
import http.client
import logging
import mmap
import os
import signal
import socket
import struct
import sys
import threading
import time

from .latency import LATENCY_BUCKETS
from .sdnotify import Notifier
from .web import error_payload

log = logging.getLogger('api.replica')

MAX_BODY = 60 * 1024
_HEADER = struct.Struct('<QI')                  # version, length
STATUSES = (200, 304, 400, 403, 404, 405, 413, 421, 500, 503)    # the rest count as 0
_STATS_AT = 64 * 1024
_COUNTS = struct.Struct(f'<{len(STATUSES) + 1}Q')
_BUCKETS = struct.Struct(f'<{len(LATENCY_BUCKETS) + 1}Qd')
_SIZE = _STATS_AT + _COUNTS.size + _BUCKETS.size
HOP_BY_HOP = frozenset({'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization',
                        'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'server',
                        'date'})
STACKS_SIGNAL = signal.SIGUSR2   # the replica writes every thread's stack to stderr
IDLE_UPSTREAM_S = 20.0      # reuse a connection to the primary only if idle less than this
                            # (waitress closes idle ones after channel_timeout, 60 s)


class _ProcessLock:
    """A lock across a fork: a POSIX record lock on a memfd, which the kernel releases
    if its holder dies (a primary killed mid-publish cannot wedge the replica) and whose
    system calls order memory on every CPU, ARM included; plus a threading lock, because
    a record lock belongs to a process, not to one of its threads."""

    def __init__(self):
        self._fd = os.memfd_create('replica-lock', os.MFD_CLOEXEC)
        self._threads = threading.Lock()

    def __enter__(self):
        self._threads.acquire()
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    @property
    def threads(self):
        """The thread lock alone: for what only one process writes (see SharedAnswer)."""
        return self._threads


class SharedAnswer:
    """One answer's bytes plus the replica's request counts, in memory shared across a
    fork, under one _ProcessLock; nobody holds it for more than a copy.

    The replica's hot path takes no system call: a read whose version is the one it read
    last returns that body again (the version is read without the lock; when it changed,
    the body is copied under it), and the counts, which only the replica writes, are
    written under the thread lock alone (a scrape may see a count and its histogram one
    request apart). Under a Pi 4's CPU budget the replica's threads spent 40 % of their
    time queued on this lock, whose holder gave the GIL away in each of its four record-
    lock calls a request."""

    def __init__(self):
        self._mm = mmap.mmap(-1, _SIZE)         # anonymous, MAP_SHARED: survives fork
        self._lock = _ProcessLock()
        self._last = (0, None)                  # (version, body) this process read last

    def publish(self, body):
        if len(body) > MAX_BODY:
            raise ValueError(f'a shared answer is at most {MAX_BODY} bytes, not {len(body)}')
        with self._lock:
            version = _HEADER.unpack_from(self._mm, 0)[0] + 1
            self._mm[_HEADER.size:_HEADER.size + len(body)] = body
            _HEADER.pack_into(self._mm, 0, version, len(body))

    def read(self):
        """The last answer published, or None before the first.

        A version read torn by a publish in progress differs from the last one (it is
        read again under the lock) or equals it (the answer before that publish, which
        is not finished, so nothing acknowledged is missed). A publish finished before
        this request arrived is seen: the request's own system calls order it."""
        last = self._last
        if last[1] is not None and _HEADER.unpack_from(self._mm, 0)[0] == last[0]:
            return last[1]
        with self._lock:
            version, length = _HEADER.unpack_from(self._mm, 0)
            body = self._mm[_HEADER.size:_HEADER.size + length] if version else None
        self._last = (version, body)
        return body

    def count(self, status, seconds):
        slot = STATUSES.index(status) + 1 if status in STATUSES else 0
        bucket = next((i for i, le in enumerate(LATENCY_BUCKETS) if seconds <= le),
                      len(LATENCY_BUCKETS))
        with self._lock.threads:        # only the replica writes them: see the class
            counts = list(_COUNTS.unpack_from(self._mm, _STATS_AT))
            counts[slot] += 1
            _COUNTS.pack_into(self._mm, _STATS_AT, *counts)
            at = _STATS_AT + _COUNTS.size
            *buckets, total = _BUCKETS.unpack_from(self._mm, at)
            buckets[bucket] += 1
            _BUCKETS.pack_into(self._mm, at, *buckets, total + seconds)

    def stats(self):
        with self._lock:
            counts = _COUNTS.unpack_from(self._mm, _STATS_AT)
            *buckets, total = _BUCKETS.unpack_from(self._mm, _STATS_AT + _COUNTS.size)
        by_status = {str(s): counts[i + 1] for i, s in enumerate(STATUSES) if counts[i + 1]}
        if counts[0]:
            by_status['other'] = counts[0]
        return by_status, buckets, total


class ReplicaCollector:
    """The replica's request counts, exported by the primary at scrape time."""

    def __init__(self, service, shared, route):
        self.service = service
        self.shared = shared
        self.route = route

    def describe(self):
        return []

    def collect(self):
        from .textmetrics import CounterMetricFamily, HistogramMetricFamily
        by_status, buckets, total = self.shared.stats()
        counts = CounterMetricFamily(f'{self.service}_replica_http_requests',
                                     'HTTP requests the read replica answered itself',
                                     labels=['route', 'status'])
        for status, n in by_status.items():
            counts.add_metric([self.route, status], n)
        yield counts
        cumulative, running = [], 0
        for le, n in zip([*map(str, LATENCY_BUCKETS), '+Inf'], buckets):
            running += n
            cumulative.append((le, running))
        family = HistogramMetricFamily(f'{self.service}_replica_http_request_duration_seconds',
                                       'Time the read replica took to answer', labels=['route'])
        family.add_metric([self.route], cumulative, total)
        yield family


class _ReplicaMetrics:
    """What `Edge` calls for each request the replica answers."""

    def __init__(self, shared):
        self.shared = shared

    def observe_request(self, method, route, status, seconds):
        self.shared.count(int(status), seconds)


class Upstream:
    """Forwards a WSGI request to the primary over its private loopback port: one
    kept-alive connection per replica thread."""

    def __init__(self, address, timeout=60.0):
        self.address = address
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self):
        conn, used = getattr(self._local, 'conn', None), getattr(self._local, 'used', 0.0)
        if conn is not None and time.monotonic() - used > IDLE_UPSTREAM_S:
            conn.close()
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(*self.address, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self):
        conn = getattr(self._local, 'conn', None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def forward(self, environ):
        """(status line, headers, body) from the primary; raises OSError when it could
        not be asked or did not answer."""
        headers = {}
        for key, value in environ.items():
            if key.startswith('HTTP_'):
                name = key[5:].replace('_', '-').title()
                if name.lower() not in HOP_BY_HOP:
                    headers[name] = value
        if environ.get('CONTENT_TYPE'):
            headers['Content-Type'] = environ['CONTENT_TYPE']
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else None
        headers['Content-Length'] = str(length)
        headers['X-Forwarded-For'] = environ.get('REMOTE_ADDR', '')
        method = environ['REQUEST_METHOD']
        uri = environ.get('REQUEST_URI') or environ.get('PATH_INFO', '/')
        conn = self._connection()
        try:
            conn.request(method, uri, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise OSError(f'the primary did not answer: {exc}') from exc
        self._local.used = time.monotonic()
        if response.will_close:
            self._drop()
        out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        return f'{response.status} {response.reason}', out, payload


def replica_app(edge_for, shared, upstream, hot_path, primary_pid):
    """The replica's WSGI app: `GET hot_path` from shared memory through `edge_for(app)`
    (the service's own Edge), anything else forwarded to the primary as it came."""

    def hot(environ, start_response):
        body = shared.read() if os.getppid() == primary_pid else None
        if body is None:                    # nothing published yet, or the primary is gone
            return forward(environ, start_response)
        start_response('200 OK', [('Content-Type', 'application/json'),
                                  ('Content-Length', str(len(body)))])
        return [b''] if environ['REQUEST_METHOD'] == 'HEAD' else [body]

    answer_hot = edge_for(hot)

    def forward(environ, start_response):
        try:
            status, headers, body = upstream.forward(environ)
        except OSError as exc:
            log.warning('replica: %s', exc)
            ctype, body = error_payload(
                503, 'the service is restarting; ask again in a moment',
                code='restarting', as_json=environ.get('PATH_INFO', '').startswith('/v2/'))
            start_response('503 Service Unavailable', [
                ('Content-Type', ctype), ('Content-Length', str(len(body))),
                ('Retry-After', '1')])
            return [body]
        start_response(status, headers)
        return [body]

    def app(environ, start_response):
        if is_hot(hot_path, environ['REQUEST_METHOD'], environ.get('PATH_INFO'),
                  environ.get('QUERY_STRING'), environ.get('HTTP_API_VERSION')):
            return answer_hot(environ, start_response)
        return forward(environ, start_response)
    return app


def is_hot(hot_path, method, path, query, api_version):
    """The request the replica answers from shared memory: GET or HEAD of `hot_path`,
    no query, API version 1 (none said)."""
    return (method in ('GET', 'HEAD') and path == hot_path and not query
            and (api_version or '1').strip() == '1')


def answered_inline(hot_path, shared, primary_pid):
    """For HttpService(inline=): a waitress request the replica's loop thread answers
    itself, without a thread: a hot one while there is an answer in memory to give (the
    rest, forwarded to the primary, wait on a socket and go to the threads)."""
    def inline(request):
        return (is_hot(hot_path, request.command, request.path, request.query,
                       request.headers.get('API_VERSION'))
                and os.getppid() == primary_pid and shared.read() is not None)
    # Once published the answer is never None again, so the app forwards from the loop
    # only when the primary died in between, whose port then refuses at once. The read
    # waits on the primary's lock only when a new answer was published since the last.
    return inline


def dump_stacks_on_signal(file=None):
    """In the replica: STACKS_SIGNAL writes every thread's stack to `file` (stderr: the
    journal), from C, so a replica whose Python threads are all stuck still says where
    (stop()). The file must stay open."""
    faulthandler.register(STACKS_SIGNAL, file=file or sys.stderr, all_threads=True)


def _die_with_parent():
    """Linux: SIGKILL this process when its parent thread's process exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)      # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Replica:
    """The replica process, seen from the primary. `start()` forks it; call it before
    the primary imports what only it needs, opens hardware or starts any thread."""

    def __init__(self, name, sockets, *, edge_for, hot_path='/', threads=8):
        self.name = name
        self.sockets = sockets
        self.edge_for = edge_for
        self.hot_path = hot_path
        self.threads = threads
        self.shared = SharedAnswer()
        # A loopback port of the primary's own: waitress serves internet or unix sockets,
        # not both. It answers exactly what the public socket answers, no more.
        self.upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.upstream.bind(('127.0.0.1', 0))
        self.upstream.listen(256)
        self.address = self.upstream.getsockname()
        self.pid = None

    def start(self):
        if threading.active_count() > 1:
            raise RuntimeError('fork the replica before starting any thread')
        primary = os.getpid()
        # Everything imported so far moves to the collector's permanent generation: no
        # collection in either process walks it (and writes to it), so its pages stay
        # shared instead of being copied into the replica.
        gc.collect()
        gc.freeze()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            self.pid = pid
            return self
        status = 1
        try:
            _die_with_parent()
            if os.getppid() != primary:
                os._exit(0)
            self.upstream.close()
            dump_stacks_on_signal()
            status = self._serve(primary)
        except BaseException:
            log.exception('%s replica failed', self.name)
        finally:
            logging.shutdown()
            os._exit(status)

    def _serve(self, primary):
        from .serve import HttpService
        app = replica_app(lambda hot: self.edge_for(hot, _ReplicaMetrics(self.shared)),
                          self.shared, Upstream(self.address), self.hot_path,
                          primary)
        http = HttpService(f'{self.name}-replica', app, self.sockets, threads=self.threads,
                           notifier=Notifier(env={}),
                           inline=answered_inline(self.hot_path, self.shared, primary))
        log.info('%s replica (pid %d) answers GET %s; the rest goes to pid %d', self.name,
                 os.getpid(), self.hot_path, primary)
        http.serve(ready_status='replica')
        return 0

    def stop(self, timeout=30.0):
        """SIGTERM the replica and wait for it to finish what it accepted."""
        if self.pid is None:
            return None
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        started = time.monotonic()
        deadline, dump_at = started + timeout, started + timeout / 2
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.pid = None
                return os.waitstatus_to_exitcode(status)
            now = time.monotonic()
            if dump_at is not None and now > dump_at:
                # Stuck (seen once on real systemd: no "draining" from it at all): its
                # threads' stacks go to the journal, at half the bound, so they are written
                # before systemd's own TimeoutStopSec (30 s, from the stop's start) kills
                # the whole service.
                dump_at = None
                log.error('%s replica (pid %d) has not stopped %.0f s after SIGTERM; its '
                          'threads\' stacks follow (SIGKILL at %.0f s)', self.name, self.pid,
                          now - started, timeout)
                try:
                    os.kill(self.pid, STACKS_SIGNAL)
                except ProcessLookupError:
                    pass
            if now > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.pid = None
                return None
            time.sleep(0.02)

    @property
    def alive(self):
        if self.pid is None:
            return False
        done, status = os.waitpid(self.pid, os.WNOHANG)
        if done:     # reaped now: remember it, a second waitpid on it would raise
            log.error('%s replica (pid %d) ended (exit %s); the primary answers alone',
                      self.name, self.pid, os.waitstatus_to_exitcode(status))
            self.pid = None
        return not done


def replica_count(env, variable):
    """How many replicas: `variable` (0 or 1), default 1 when the machine has two or more
    CPUs, else 0 (on one core a second process only adds hand-offs)."""
    raw = env.get(variable)
    if raw is None or raw == '':
        return 1 if (os.cpu_count() or 1) >= 2 else 0
    if raw not in ('0', '1'):
        from .settings import SettingsError
        raise SettingsError(f'{variable}={raw!r}: 0 (no read replica) or 1')
    return int(raw)


def fork_replica(name, sockets, edge_for, env=os.environ):
    """The replica for `name`, started, or None when `<NAME>_REPLICAS` is 0."""
    if not replica_count(env, f'{name.upper()}_REPLICAS'):
        return None
    return Replica(name, sockets, edge_for=edge_for).start()
