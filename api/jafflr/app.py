"""jafflr's HTTP API: v1 as the original project answered it, v2 in JSON, the panel.

`/toastie` (v1) answers `done` once the toastie is made; the request waits on the
order's event in its waitress thread, which holds no lock, so other requests go on.
At most `v1_waiter_limit` requests wait at once (a waitress thread each); past that, and
for a replay of the same Idempotency-Key, the answer comes at once: 202 with where to
follow the toastie, so waiting customers can never take every thread.
"""
import hashlib
import hmac
import json
import logging
import threading

import bottle

from firmware import errors
from firmware.safety import HOW_TO_CLEAR, PANEL
from ..common.web import ApiError, client_address, install_error_pages, json_answer, json_body, \
    query_int, query_one
from . import schemas
from .openapi import build_document
from .panel import add_panel_routes

log = logging.getLogger('jafflr')

MAX_PAUSE_S = 86400           # a pause given an expiry ends within a day at most
STATUS_OF = {'invalid': 400, 'unknown': 400, 'not-found': 404, 'insufficient': 409,
             'conflict': 409, 'locked': 423, 'sensor': 503, 'unavailable': 503,
             'queue-full': 503, 'needs-reset-button': 409}
V1_SUCCESSORS = {'/toastie': '/v2/toasties', '/': '/v2/status', '/health': '/v2/ready'}
V1_WAIT_S = 3600.0       # simulated seconds a v1 /toastie waits before giving an id instead
V1_WAITERS = 8           # v1 requests that may wait at once (each holds a waitress thread)
ORDER_SECRET = 'Order-Secret'


def refused(exc):
    headers = None
    if isinstance(exc, errors.QueueFull):
        headers = {'Retry-After': str(max(1, round(exc.retry_after_s)))}
    return ApiError(STATUS_OF.get(exc.kind, 400), exc.message, code=exc.kind, field=exc.field,
                    allowed=exc.allowed, headers=headers)


def failure_answer(order):
    """A v1 caller's answer for a toastie that was not made."""
    failure = order.failure or {}
    kind, reason = failure.get('kind', ''), failure.get('reason', 'failed')
    status = STATUS_OF.get(kind, 409 if kind == 'cancelled' else 503)
    return ApiError(status, f'toastie {order.id} was not made: {reason}: '
                            f'{failure.get("detail", "")}'.rstrip(': '), code=reason)


class Waiters:
    """How many v1 requests are waiting for their toastie; `enter()` is False at the limit."""

    def __init__(self, limit):
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def enter(self):
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def leave(self):
        with self._lock:
            self.count -= 1


def follow_answer(order, why):
    """A v1 answer that does not wait: where to follow the toastie."""
    link = f'/v2/toasties/{order.id}'
    response = bottle.HTTPResponse(
        body=f'toastie {order.id} is {order.state}: {why}; follow it at {link}\n', status=202,
        headers={'Location': link, 'Retry-After': '10'})
    response.content_type = 'text/plain; charset=utf-8'
    return response


class JafflrApi:
    def __init__(self, service):
        self.s = service
        self.openapi = json.dumps(build_document(service.version)).encode()
        self.waiters = Waiters(getattr(service, 'v1_waiter_limit', V1_WAITERS))
        self._order_key = getattr(service, 'order_key', None) or b''

    def order_secret(self, order):
        """The per-order secret that lets whoever ordered cancel it: derived, not stored,
        so the order's stored form (and a rollback to an older release) is unchanged."""
        return hmac.new(self._order_key, f'{order.id}|{order.created_at!r}'.encode(),
                        hashlib.sha256).hexdigest()[:32]

    def check_cancel(self, order):
        given = bottle.request.get_header(ORDER_SECRET, '').strip()
        if given and self._order_key and hmac.compare_digest(given.encode(),
                                                             self.order_secret(order).encode()):
            return
        if bottle.request.get_header('Authorization'):
            self.s.auth.check()
            return
        raise ApiError(403, f'cancelling toastie {order.id} needs the header {ORDER_SECRET} '
                            f'with the cancel_secret given when it was ordered'
                            f'{" (that one is wrong)" if given else ""}, or the admin token',
                       code='order-secret-required', field=ORDER_SECRET)

    def v1_now(self, order):
        """A v1 replay's answer, at once: how the toastie ended, or where to follow it."""
        order = self.s.book.get(order.id)
        if order.state == 'done':
            return 'done'
        if order.finished:
            raise failure_answer(order)
        return follow_answer(order, 'it was ordered already with this Idempotency-Key')

    def order_json(self, order, now, wall, ready=None):
        d = order.to_dict()
        for private in ('key', 'fingerprint', 'step_started_at', 'step_expected_s', 'customer',
                        'source'):
            d.pop(private, None)
        d['units'] = order.units
        d['progress'] = order.progress(wall)
        ready = ready if ready is not None else self.s.kitchen.estimates(now, wall)
        d['ready_at'] = order.finished_at if order.finished else ready.get(order.id)
        d['time_left_s'] = None if d['ready_at'] is None else max(0.0, d['ready_at'] - wall)
        d['queue_position'] = self.s.book.position(order.id)
        d['waiting'] = self.s.kitchen.why_waiting(order)
        return d

    def call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except errors.RefusedError as exc:
            raise refused(exc) from None

    def submit(self, ingredients, doneness, name='', customer='', source='v2'):
        key = bottle.request.get_header('Idempotency-Key')
        if key is not None and not 1 <= len(key) <= 100:
            raise ApiError(400, 'Idempotency-Key must be 1 to 100 characters',
                           field='Idempotency-Key', allowed='1-100 characters')
        fingerprint = hashlib.sha256(json.dumps([sorted(ingredients), doneness, name, customer])
                                     .encode()).hexdigest()[:16]
        try:
            return self.s.kitchen.submit(ingredients, doneness, self.s.clock.time(), name=name,
                                         customer=customer, source=source, key=key,
                                         fingerprint=fingerprint)
        except errors.RefusedError as exc:
            if source == 'v2' and exc.field == 'i':
                exc.field = 'ingredients'    # the kitchen names v1's query parameter
            raise refused(exc) from None

    def wait_v1(self, order):
        """Wait for the toastie without holding anything another request needs. A v1
        customer has no other way to follow their toastie, so when the machine stops
        before it was started they are told at once and it is not made later."""
        s = self.s
        done = s.book.done_event(order.id)
        deadline = s.clock.monotonic() + V1_WAIT_S
        while not done.is_set():
            fault = s.shutdown.fault
            if fault is not None and s.book.fail_if_queued(
                    order.id, fault.reason, f'the machine stopped before it was started, and '
                    f'nothing was taken: {fault.detail}', s.clock.time()):
                break
            if s.released.is_set():
                raise ApiError(503, f'jafflr is restarting; toastie {order.id} is kept and will '
                                    f'be made: follow it at /v2/toasties/{order.id}',
                               code='restarting', headers={'Retry-After': '5'})
            if s.clock.monotonic() >= deadline:
                raise ApiError(504, f'toastie {order.id} is still being made; follow it at '
                                    f'/v2/toasties/{order.id}', code='still-cooking',
                               headers={'Location': f'/v2/toasties/{order.id}'})
            s.clock.wait(done, 1.0 * s.clock.speed)
        order = s.book.get(order.id)
        if order.state != 'done':
            raise failure_answer(order)


def build_app(service, panel=None):
    s = service
    api = JafflrApi(service)
    app = bottle.Bottle()
    app.uninstall(True)
    install_error_pages(app, log)

    def now_wall():
        return s.clock.monotonic(), s.clock.time()

    # -- v1 ------------------------------------------------------------------------------
    @app.get('/')
    def index():
        if panel is not None and 'text/html' in bottle.request.get_header('Accept', ''):
            return panel()
        bottle.response.content_type = 'text/plain; charset=utf-8'
        text = f'toasting: {"true" if s.press.in_press is not None else "false"}'
        fault = s.shutdown.fault
        if fault is not None:     # v1's one line, then why the machine is stopped
            text += (f'\nfault: {fault.reason}: {fault.detail}'
                     f'\nto clear: {HOW_TO_CLEAR[s.shutdown.clearance() or PANEL]}')
        return text

    @app.get('/toastie')
    def v1_toastie():
        ingredients = bottle.request.query.getall('i')
        doneness = query_one('doneness', default='medium')
        customer = query_one('customer', default='')
        order, replayed = api.submit(ingredients, doneness, customer=customer[:40], source='v1')
        bottle.response.content_type = 'text/plain; charset=utf-8'
        if replayed:
            return api.v1_now(order)
        if not api.waiters.enter():
            return follow_answer(order, f'{api.waiters.limit} customers are waiting already, '
                                        f'so this answer does not wait')
        try:
            api.wait_v1(order)
        finally:
            api.waiters.leave()
        return 'done'

    @app.get('/health')
    def health():
        bottle.response.content_type = 'text/plain; charset=utf-8'
        return s.version

    # -- v2 ------------------------------------------------------------------------------
    @app.get('/v2/')
    def v2_index():
        return json_answer({'service': 'jafflr', 'version': s.version, 'links': {
            'toasties': '/v2/toasties', 'status': '/v2/status', 'flags': '/v2/flags',
            'events': '/v2/events', 'stock': '/v2/stock', 'ready': '/v2/ready',
            'openapi': '/v2/openapi.json'}})

    @app.post('/v2/toasties')
    def v2_create():
        body = json_body(schemas.TOASTIE_REQUEST)
        order, replayed = api.submit(body['ingredients'], body.get('doneness', 'medium'),
                                     body.get('name', ''), body.get('customer', ''))
        now, wall = now_wall()
        headers = {'Location': f'/v2/toasties/{order.id}'}
        if replayed:
            headers['Idempotent-Replayed'] = 'true'
        answer = api.order_json(order, now, wall)
        answer['cancel_secret'] = api.order_secret(order)     # only ever in this answer
        return json_answer(answer, 200 if replayed else 202, headers)

    @app.get('/v2/toasties')
    def v2_list():
        now, wall = now_wall()
        ready = s.kitchen.estimates(now, wall)
        return json_answer({'orders': [api.order_json(o, now, wall, ready)
                                       for o in s.book.recent(query_int('limit', 1, 100, 30))]})

    @app.get('/v2/toasties/<oid>')
    def v2_order(oid):
        now, wall = now_wall()
        return json_answer(api.order_json(api.call(s.book.get, oid), now, wall))

    @app.post('/v2/toasties/<oid>/cancel')
    def v2_cancel(oid):
        api.check_cancel(api.call(s.book.get, oid))
        now, wall = now_wall()
        return json_answer(api.order_json(api.call(s.kitchen.cancel, oid, wall), now, wall))

    @app.get('/v2/status')
    def v2_status():
        return json_answer(s.status())

    @app.post('/v2/stop')
    def v2_stop():
        body = json_body(schemas.STOP_REQUEST)
        now, wall = now_wall()
        by = body.get('by')     # what the caller says; the address is the connection's
        s.kitchen.stop(now, wall, f'{by}, from {client_address()}' if by else
                       f'HTTP from {client_address()}')
        return json_answer(s.status())

    @app.post('/v2/reset')
    def v2_reset():
        s.auth.check()
        now, wall = now_wall()
        api.call(s.kitchen.reset, now, wall, f'admin from {client_address()}')
        return json_answer(s.status())

    @app.post('/v2/queue/<action:re:pause|resume>')
    def v2_queue(action):
        s.auth.check()
        if action == 'resume':
            s.kitchen.pause(False)
        else:
            # A deploy always gives one, so a deploy that dies cannot leave the queue paused.
            expires_s = query_int('expires_s', 1, MAX_PAUSE_S)
            s.kitchen.pause(True, None if expires_s is None else s.clock.time() + expires_s)
        return json_answer(s.status())

    @app.get('/v2/flags')
    def v2_flags():
        return json_answer({'flags': s.flags.describe()})

    @app.put('/v2/flags/<name>')
    def v2_set_flag(name):
        s.auth.check()
        body = json_body(schemas.FLAG_REQUEST)
        api.call(s.flags.set, name, body.get('enabled'), body.get('customers'), body.get('percent'))
        s.store.save_flags(s.flags.stored())
        s.events('flag', detail=f'{name} set to {body}')
        return json_answer(s.flags.describe(name)[0])

    @app.get('/v2/events')
    def v2_events():
        limit = query_int('limit', 1, 500, default=50)
        return json_answer({'events': s.store.events.recent(limit, query_one('kind'))})

    @app.get('/v2/stock')
    def v2_stock():
        try:
            stock = s.stock.stock()
        except errors.Unavailable as exc:
            raise ApiError(503, exc.message, code='chillybin-unreachable') from None
        if stock is None:
            raise ApiError(503, 'chillybin did not give its stock', code='chillybin-unreachable')
        return json_answer(stock)

    @app.get('/v2/ready')
    def v2_ready():
        ready, checks = s.readiness.report()
        return json_answer({'ready': ready, 'checks': checks}, 200 if ready else 503)

    @app.get('/v2/openapi.json')
    def v2_openapi():
        bottle.response.content_type = 'application/json'
        return api.openapi

    @app.get('/metrics')
    def prometheus():
        bottle.response.content_type = s.metrics.content_type
        return s.metrics.render()

    if s.debug_hooks:      # JAFFLR_DEBUG_HOOKS=1 only: for the exit-path tests, never on a machine
        @app.post('/v2/debug/stall')
        def v2_debug_stall():
            s.stall_control_loop()
            return json_answer({'stalled': True})

        @app.post('/v2/debug/raise')
        def v2_debug_raise():
            where = json_body(schemas.DEBUG_RAISE_REQUEST).get('where', 'press')
            s.raise_in(where)
            return json_answer({'raising_in': where})

    add_panel_routes(app, s)
    return app
