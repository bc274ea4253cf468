"""Capacity that ordinary traffic cannot take: STOP always gets through.

Two things can starve a waitress server, and each gets its own guard:

- Threads. Every waitress worker may be busy (v1 customers waiting for their toastie,
  a slow chillybin): `LaneDispatcher` keeps `reserved` threads that answer only the
  priority requests (STOP first, then the machine's status and the panel), and every
  thread takes a priority request before an ordinary one.
- The GIL. Under load every thread is runnable, and each time a STOP's thread gives the
  GIL away (a socket, a contended lock) it waits its turn behind all of them; on a Pi's
  CPU budget a turn is many milliseconds. While a STOP is being answered no thread starts
  another request (those already running finish), so the STOP competes with few: for
  at most STOP_FIRST_S, and at most half the time however many STOPs come.
- Connections. waitress stops accepting at its connection limit, and its
  channel_timeout counts inactivity only, so clients that trickle a byte now and then
  (slowloris) hold every slot for ever and a new connection, STOP's included, waits in
  the backlog. `ConnectionGuard` closes a request that has not arrived whole within
  `request_deadline_s`, and at the limit it accepts anyway and closes the connection
  that has waited longest without a complete request (or been idle longest) instead.
  A request that has arrived, or is being answered, is never closed.
"""
import functools
import logging
import threading
import time
from collections import deque

from waitress.task import ThreadedTaskDispatcher

log = logging.getLogger('api.lanes')

STOP_RANK, PRIORITY_RANK, ORDINARY_RANK = 0, 1, 2
CONNECTION_LIMIT = 200
REQUEST_DEADLINE_S = 10.0     # a request line, headers and body must arrive within this
# A STOP holds back other requests at most this long (one that hangs), and a new hold
# starts at most once every two of these (a flood of STOPs leaves the others half the time).
STOP_FIRST_S = 1.0


def rank_by_paths(paths):
    """A ranking function from {(method, path): rank}; a path ending in '/' (other than
    '/') is a prefix."""
    exact = {(m, p): r for (m, p), r in paths.items() if p == '/' or not p.endswith('/')}
    prefixes = [(m, p, r) for (m, p), r in paths.items() if p != '/' and p.endswith('/')]

    def rank(method, path):
        found = exact.get((method, path))
        if found is not None:
            return found
        for m, prefix, r in prefixes:
            if method == m and path.startswith(prefix):
                return r
        return ORDINARY_RANK
    return rank


class LaneDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool with lanes: `ordinary` threads take any task (priority
    first), `reserved` threads only priority ones. `rank(method, path)` gives a task's lane."""

    def __init__(self, ordinary, reserved, rank, inline=None):
        """`inline(request)`: true for a request cheap enough, and sure not to block, to
        answer on the server's loop thread itself (see `run_inline`)."""
        super().__init__()
        self.ordinary = ordinary
        self.reserved = reserved
        self.rank = rank
        self.inline = inline
        self.loop_thread = None         # the server loop's thread ident, once it runs
        # Channels whose request the loop answers itself, by rank (STOP's first).
        self.inline_lanes = (deque(), deque(), deque())
        self.lanes = (deque(), deque(), deque())     # stop, priority, ordinary
        self.reserved_cv = self.queue_cv.__class__(self.lock)
        self.stops_running = 0      # STOP requests being answered: nothing else starts ...
        self.stop_first_until = 0.0     # ... until this (time.monotonic()) at the latest
        self.next_hold_at = 0.0         # no new hold before this

    def start(self):
        self.set_thread_count(self.ordinary + self.reserved)
        return self

    def _rank_of(self, task):
        requests = getattr(task, 'requests', None)
        request = requests[0] if requests else None
        if request is None:
            return ORDINARY_RANK
        try:
            return self.rank(request.command, request.path)
        except Exception:       # never let classifying lose a request
            return ORDINARY_RANK

    def add_task(self, task):
        if self.inline is not None and threading.get_ident() == self.loop_thread \
                and self._inline_ok(task):
            self.inline_lanes[self._rank_of(task)].append(task)     # see run_inline
            return
        rank = self._rank_of(task)
        with self.lock:
            self.lanes[rank].append(task)
            if rank < ORDINARY_RANK:
                self.reserved_cv.notify()
            self.queue_cv.notify()

    def _inline_ok(self, task):
        requests = getattr(task, 'requests', None)
        if not requests or requests[0].error:
            return False
        # Only with nothing waiting to be sent (a client that does not read its answers):
        # waitress waits for the loop to flush output above its high-watermark, which on
        # the loop itself would be for ever. One answer (at most 64 KB) cannot reach it.
        if getattr(task, 'total_outbufs_len', 0):
            return False
        try:
            return bool(self.inline(requests[0]))
        except Exception:       # never let classifying lose a request: a thread takes it
            return False

    @property
    def inline_pending(self):
        return any(self.inline_lanes)

    def run_inline(self, limit=None):
        """On the loop thread, after each poll (HttpService's loop): answer up to `limit`
        of the requests `add_task` kept for it, STOP's first, and send each answer at once.

        A request handed to a thread costs two GIL hand-offs (to the thread, and back
        through the loop's trigger to send); on a Pi's CPU budget each waits behind every
        runnable thread. Used by chillybin's read replica for its one answer from shared
        memory (api/common/replica.py), and by jafflr for STOP and its status (their
        answers wait on no disk). A few at a time, then the loop polls again (at once while
        any are left): a STOP read meanwhile goes ahead of those left, so it waits for at
        most `limit` answers, not for every client that asked in the same poll. A STOP
        holds the others back here as on a thread (no new request starts meanwhile)."""
        done = 0
        while limit is None or done < limit:
            lane = next((lane for lane in self.inline_lanes if lane), None)
            if lane is None:
                return
            channel = lane.popleft()
            done += 1
            stop = lane is self.inline_lanes[STOP_RANK]
            if stop:
                with self.lock:
                    self._stop_started()
            try:
                channel.service()      # waitress's own: the task, keep-alive, pipelining
                if channel.connected:
                    channel.handle_write()
            except Exception:       # waitress's own failure (the app's is its 500): close
                self.logger.exception('Exception when servicing %r inline', channel)
                try:
                    channel.handle_close()
                except Exception:
                    pass
            finally:
                if stop:
                    self._stop_finished()

    def _next(self, reserved):
        """(rank, task) to run next on this thread, or (None, None)."""
        for rank, lane in enumerate(self.lanes):
            if rank > STOP_RANK and self._stop_first():
                break           # a STOP is being answered: it has the process first
            if lane and (rank < ORDINARY_RANK or not reserved):
                return rank, lane.popleft()
        return None, None

    def _stop_first(self):
        return self.stops_running and time.monotonic() < self.stop_first_until

    def _stop_started(self):
        """Under the lock: a STOP task begins. The first of overlapping ones starts a hold,
        unless one started less than 2 x STOP_FIRST_S ago."""
        self.stops_running += 1
        now = time.monotonic()
        if self.stops_running == 1 and now >= self.next_hold_at:
            self.stop_first_until = now + STOP_FIRST_S
            self.next_hold_at = now + 2 * STOP_FIRST_S

    def handler_thread(self, thread_no):
        reserved = thread_no >= self.ordinary
        cv = self.reserved_cv if reserved else self.queue_cv
        while True:
            with self.lock:
                task = rank = None
                while self.stop_count == 0:
                    rank, task = self._next(reserved)
                    if task is not None:
                        if rank == STOP_RANK:
                            self._stop_started()
                        break
                    self.active_count -= 1
                    cv.wait(max(0.0, self.stop_first_until - time.monotonic())
                            if self._stop_first() else None)
                    self.active_count += 1
                if task is None:           # asked to stop
                    self.active_count -= 1
                    self.stop_count -= 1
                    self.threads.discard(thread_no)
                    self.thread_exit_cv.notify()
                    break
            try:
                task.service()
            except BaseException:
                self.logger.exception('Exception when servicing %r', task)
            finally:
                if rank == STOP_RANK:
                    self._stop_finished()

    def _stop_finished(self):
        with self.lock:
            self.stops_running -= 1
            if not self.stops_running:      # the others may start again
                self.queue_cv.notify_all()
                self.reserved_cv.notify_all()

    def set_thread_count(self, count):
        super().set_thread_count(count)
        with self.lock:
            self.queue_cv.notify_all()
            self.reserved_cv.notify_all()

    def shutdown(self, cancel_pending=True, timeout=5):
        self.set_thread_count(0)
        expiration = time.time() + timeout
        with self.lock:
            while self.threads and time.time() < expiration:
                self.thread_exit_cv.wait(0.1)
            if self.threads:
                self.logger.warning('%d thread(s) still running', len(self.threads))
            if cancel_pending:
                for lane in self.lanes:
                    while lane:
                        lane.popleft().cancel()
        return not self.threads


def _is_channel(thing):
    return hasattr(thing, 'requests') and hasattr(thing, 'last_activity')


class ConnectionGuard:
    """Keeps a waitress server accepting: see the module's docstring. Runs in the server's
    loop thread only (from the listeners' readable() and handle_accept())."""

    def __init__(self, limit=CONNECTION_LIMIT, request_deadline_s=REQUEST_DEADLINE_S,
                 sweep_every_s=0.25, clock=time.time):
        self.limit = limit
        self.request_deadline_s = request_deadline_s
        self.sweep_every_s = sweep_every_s
        self.clock = clock
        self._map = None
        self._private = set()
        self._next_sweep = 0.0
        self._seen = {}      # id(channel) -> (id(the request arriving) or None, since when)
        self.closed_late = 0          # requests closed for not arriving within the deadline
        self.evicted = 0              # connections closed to make room at the limit

    def install(self, server_map, listeners, private=()):
        """`private`: listeners whose connections are our own (the read replica's way to
        the primary); they are never closed to make room."""
        self._map = server_map
        self._private = set(id(p) for p in private)
        for listener in listeners:
            listener.readable = functools.partial(self._readable, listener, listener.readable)
            listener.handle_accept = functools.partial(self._accept, listener.handle_accept)

    def channels(self):
        return [c for c in list(self._map.values())
                if _is_channel(c) and id(getattr(c, 'server', None)) not in self._private]

    def _readable(self, listener, waitress_readable, *_):
        waitress_readable()      # its periodic maintenance (channel_timeout); we decide below
        now = self.clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every_s
            self.sweep(now)
        return bool(listener.accepting)

    def _accept(self, waitress_accept, *_):
        waitress_accept()
        self.make_room(self.clock())

    @staticmethod
    def _busy(channel):
        return bool(channel.requests or channel.total_outbufs_len)

    def _started(self, channel, now):
        """When the request arriving on `channel` began, or None when none is arriving.
        A connection's first request counts from the connection; a later one on a
        kept-alive connection from when the guard first saw it arriving."""
        key = id(channel)
        request = getattr(channel, 'request', None)
        if request is None:
            if channel.last_activity == channel.creation_time and key not in self._seen:
                return channel.creation_time       # connected, sent nothing yet
            self._seen[key] = (None, None)         # between requests
            return None
        seen = self._seen.get(key)
        if seen is None:
            seen = (id(request), channel.creation_time)
        elif seen[0] != id(request):
            seen = (id(request), now)
        self._seen[key] = seen
        return seen[1]

    def sweep(self, now):
        alive = set()
        for channel in self.channels():
            alive.add(id(channel))
            if self._busy(channel):
                self._seen[id(channel)] = (None, None)
                continue
            started = self._started(channel, now)
            if started is not None and now - started > self.request_deadline_s:
                self.closed_late += 1
                self._close(channel)
        for key in list(self._seen):
            if key not in alive:
                del self._seen[key]

    def make_room(self, now):
        channels = self.channels()
        excess = len(channels) - self.limit
        if excess <= 0:
            return
        ranked = []
        for channel in channels:
            if self._busy(channel) or now - channel.creation_time < 0.05:
                continue       # being answered, or the one just accepted
            started = self._started(channel, now)
            ranked.append((0, started, id(channel), channel) if started is not None
                          else (1, channel.last_activity, id(channel), channel))
        ranked.sort(key=lambda item: item[:3])
        for *_, channel in ranked[:excess]:
            self.evicted += 1
            self._close(channel)
        if self.evicted and self.evicted % 100 == 1:
            log.warning('connection limit %d reached: closed %d connections that sent no '
                        'complete request (or were idle longest) to keep accepting',
                        self.limit, self.evicted)

    def _close(self, channel):
        self._seen.pop(id(channel), None)
        try:
            channel.handle_close()
        except OSError:
            pass
