"""Serving a WSGI app with waitress: on sockets systemd passes (socket activation), or on
a port it binds itself when started by hand; READY=1 once serving; and on SIGTERM or
SIGINT a drain that finishes accepted requests before exit.

A restart under systemd loses nothing: systemd keeps the listening socket open while the
service restarts, so new connections wait in its backlog for the next process.
"""
import ctypes
import gc
import logging
import os
import signal
import socket
import threading
import time

import waitress
from waitress import wasyncore

from .lanes import CONNECTION_LIMIT, REQUEST_DEADLINE_S, ConnectionGuard, LaneDispatcher, \
    rank_by_paths
from .sdnotify import Notifier

log = logging.getLogger('api.serve')
INLINE_PER_POLL = 4     # requests the loop answers itself between two polls (see _run)
FRESH_GRACE_S = 2.0   # how long a just-accepted, not yet read connection counts as busy


def inherited_sockets(env=os.environ):
    """The listening sockets systemd passed (fds 3..), or [] when none were passed to us."""
    count = env.get('LISTEN_FDS')
    if not count or env.get('LISTEN_PID') != str(os.getpid()):
        return []
    sockets = [socket.socket(fileno=3 + i) for i in range(int(count))]
    for name in ('LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'):
        env.pop(name, None)       # so children do not think the sockets are theirs
    for sock in sockets:
        os.set_inheritable(sock.fileno(), False)
    return sockets


def bind_socket(host, port, backlog=1024):
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def _give_back_free_memory():
    """Return the C heap's free pages to the system (glibc's malloc_trim): start-up
    (imports, loading the store) frees more than it keeps. Measured on chillybin: see
    bench/README.md. A no-op where there is no glibc."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


class HttpService:
    """One waitress server over one or more listening sockets, with a graceful drain.

    `before_exit` hooks run during the drain, after new connections stop being accepted
    and while accepted requests are still being answered (jafflr finishes the toastie in
    the press there). `draining` is visible to the app so it can refuse new work and
    send `Connection: close`.
    """

    def __init__(self, name, app, sockets, *, threads=8, drain_timeout_s=30.0,
                 max_body_bytes=64 * 1024, notifier=None, before_exit=(), before_drain=(),
                 private_sockets=(), priority_paths=None, reserved_threads=2,
                 connection_limit=CONNECTION_LIMIT, request_deadline_s=REQUEST_DEADLINE_S,
                 inline=None):
        self.name = name
        self.app = app
        self.sockets = sockets
        self.threads = threads
        self.drain_timeout_s = drain_timeout_s
        self.max_body_bytes = max_body_bytes
        self.notifier = notifier or Notifier()
        self.before_exit = list(before_exit)
        # `before_drain` runs once the public sockets stop accepting and while the
        # private ones (a read replica's way in) still do: it stops the replica.
        self.before_drain = list(before_drain)
        self.private_sockets = list(private_sockets)
        # `priority_paths` {(method, path): rank} get `reserved_threads` of their own
        # (lanes.LaneDispatcher); every server gets the connection guard. `inline(request)`
        # picks requests the loop thread answers itself (LaneDispatcher.run_inline).
        self.dispatcher = LaneDispatcher(threads, reserved_threads if priority_paths else 0,
                                         rank_by_paths(priority_paths or {}), inline=inline)
        self.guard = ConnectionGuard(connection_limit, request_deadline_s)
        self.draining = threading.Event()
        self.stopped = threading.Event()
        self.drained = threading.Event()
        self._server = None
        self._stop_lock = threading.Lock()

    @property
    def addresses(self):
        return [s.getsockname()[:2] for s in self.sockets]

    def _map(self):
        server = self._server
        return server.map if hasattr(server, 'map') else server._map

    def _listeners(self):
        return [d for d in self._map().values() if hasattr(d, 'accept_connections')]

    def _call_in_loop(self, thunk):
        done = threading.Event()

        def run():
            try:
                thunk()
            finally:
                done.set()
        self._trigger.pull_trigger(run)
        done.wait(5)

    def serve(self, ready_status='serving'):
        """Serve until stopped; returns once the drain has finished."""
        # connection_limit is the guard's (it closes the worst connection to stay under
        # it); waitress's own, which stops accepting, is only a backstop above it.
        self._server = waitress.create_server(
            self.app, sockets=self.sockets + self.private_sockets, threads=self.threads, ident=self.name,
            asyncore_use_poll=True, channel_timeout=60,
            connection_limit=self.guard.limit + 64, _dispatcher=self.dispatcher.start(),
            max_request_body_size=self.max_body_bytes, backlog=1024,
            expose_tracebacks=False)   # asyncore_loop_timeout stays 1 s: waitress int()s it
        private = {s.fileno() for s in self.private_sockets}
        self.guard.install(self._map(), self._listeners(),
                           [ls for ls in self._listeners() if ls.socket.fileno() in private])
        # The loop's own wake-up channel: it stays in the map until the very end.
        self._trigger = self._listeners()[0].trigger
        if self.dispatcher.inline is not None:
            self.dispatcher.loop_thread = threading.get_ident()     # the loop is on this one
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())
        # What start-up built lives as long as the process: move it out of the garbage
        # collector's sight, so a full collection under load scans only what requests
        # allocate (measured: fewer long pauses at 32 clients; see bench/README.md).
        gc.collect()
        gc.freeze()
        _give_back_free_memory()
        self.notifier.ready(ready_status)
        log.info('%s serving on %s', self.name,
                 ', '.join(f'{h}:{p}' for h, p in self.addresses))
        try:
            self._run()
            if self.draining.is_set():     # the loop ends inside the drain: let it finish
                self.drained.wait(10)
        finally:
            self.stopped.set()

    def _run(self):
        """waitress's loop; with `inline`, after each poll the loop answers up to
        INLINE_PER_POLL of the requests kept for it, and polls again at once while any are
        left (LaneDispatcher.run_inline)."""
        dispatcher = self.dispatcher
        if dispatcher.inline is None:
            self._server.run()
            return
        timeout, map_ = self._server.adj.asyncore_loop_timeout, self._map()
        try:
            while map_:
                wasyncore.poll2(0.0 if dispatcher.inline_pending else timeout, map_)
                dispatcher.run_inline(INLINE_PER_POLL)
        except (SystemExit, KeyboardInterrupt):     # as waitress's own run()
            dispatcher.shutdown()
            wasyncore.close_all(map_)

    def stop(self):
        """Begin the drain (idempotent; safe from a signal handler)."""
        with self._stop_lock:
            if self.draining.is_set():
                return
            self.draining.set()
        threading.Thread(target=self._drain, name='drain', daemon=True).start()

    def _stop_accepting(self, private=False):
        mine = {s.fileno() for s in (self.private_sockets if private else self.sockets)}
        for listener in self._listeners():
            if listener.socket.fileno() not in mine:
                continue
            listener.accepting = False
            listener.del_channel()
            listener.socket.close()   # systemd still holds its copy: new clients wait for the next us

    @staticmethod
    def _busy(channel, now=None):
        # `request` is one still arriving (headers or body not all read yet): it was
        # accepted, so it is finished too, within the drain timeout. A connection accepted
        # from the backlog but not read yet has nothing received at all (last_activity is
        # still its creation time), though its request is already in the socket buffer:
        # closing it would reset the client, so it gets FRESH_GRACE_S to be read.
        now = time.time() if now is None else now
        fresh = (channel.last_activity == channel.creation_time
                 and now - channel.creation_time < FRESH_GRACE_S)
        return bool(channel.requests or channel.total_outbufs_len or fresh
                    or getattr(channel, 'request', None) is not None)

    def _busy_channels(self):
        return [c for c in list(self._map().values())
                if hasattr(c, 'requests') and self._busy(c)]

    def _close_idle(self):
        for channel in list(self._map().values()):
            if hasattr(channel, 'requests') and not self._busy(channel):
                channel.will_close = True

    def _drain(self):
        try:
            self._drain_steps()
        finally:
            self.drained.set()

    def _drain_steps(self):
        started = time.monotonic()
        self.notifier.stopping('draining')
        log.info('%s draining: no new connections; finishing accepted requests', self.name)
        self._call_in_loop(self._stop_accepting)
        for hook in self.before_drain:
            try:
                hook()
            except Exception:
                log.exception('%s: a before-drain hook failed', self.name)
        self._call_in_loop(lambda: self._stop_accepting(private=True))
        for hook in self.before_exit:
            try:
                hook()
            except Exception:
                log.exception('%s: a before-exit hook failed', self.name)
        deadline = started + self.drain_timeout_s
        while self._busy_channels() and time.monotonic() < deadline:
            self._call_in_loop(self._close_idle)
            time.sleep(0.05)
        left = len(self._busy_channels())
        if left:
            log.warning('%s: %d requests still running after %.0f s; closing', self.name, left,
                        self.drain_timeout_s)
        self._call_in_loop(lambda: wasyncore.close_all(self._map()))
        self._server.task_dispatcher.shutdown(timeout=2)
        log.info('%s drained in %.2f s', self.name, time.monotonic() - started)
