"""jafflr's HTTP API: v1 as the original project answered it, v2 in JSON, the panel.

`/toastie` (v1) answers `done` once the toastie is made; the request waits on the
order's event in its waitress thread, which holds no lock, so other requests go on.
At most `v1_waiter_limit` requests wait at once (a waitress thread each); past that, and
for a replay of the same Idempotency-Key, the answer comes at once: 202 with where to
follow the toastie, so waiting customers can never take every thread.
"""
import json
import logging
import threading

import bottle

from firmware import errors
from firmware.frontdesk import MAX_PAUSE_S, Wait
from firmware.orderbook import DONE
from ..common.web import ApiError, client_address, conform, install_error_pages, json_answer, \
    json_body, query_all, query_int, query_one
from . import schemas
from .openapi import build_document
from .panel_routes import add_panel_routes

log = logging.getLogger('jafflr')

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
    """What the handlers share: the front desk, and the v1 waiters."""

    def __init__(self, desk, auth, v1_waiter_limit=V1_WAITERS):
        self.desk = desk
        self.auth = auth
        self.waiters = Waiters(v1_waiter_limit)

    def check_cancel(self, order):
        given = bottle.request.get_header(ORDER_SECRET, '').strip()
        if self.desk.secret_matches(order, given):
            return
        if bottle.request.get_header('Authorization'):
            self.auth.check()
            return
        raise ApiError(403, f'cancelling toastie {order.id} needs the header {ORDER_SECRET} '
                            f'with the cancel_secret given when it was ordered'
                            f'{" (that one is wrong)" if given else ""}, or the admin token',
                       code='order-secret-required', field=ORDER_SECRET)

    def v1_now(self, order):
        """A v1 replay's answer, at once: how the toastie ended, or where to follow it."""
        order, made = self.desk.made(order.id)
        if made:
            return 'done'
        if order.finished:
            raise failure_answer(order)
        return follow_answer(order, 'it was ordered already with this Idempotency-Key')

    def submit(self, ingredients, doneness, name='', customer='', source='v2'):
        key = bottle.request.get_header('Idempotency-Key')
        if key is not None and not 1 <= len(key) <= 100:
            raise ApiError(400, 'Idempotency-Key must be 1 to 100 characters',
                           field='Idempotency-Key', allowed='1-100 characters')
        try:
            return self.desk.order(ingredients, doneness, name=name, customer=customer,
                                   source=source, key=key)
        except errors.RefusedError as exc:
            if source == 'v2' and exc.field == 'i':
                exc.field = 'ingredients'    # the kitchen names v1's query parameter
            raise refused(exc) from None

    def wait_v1(self, order):
        """Wait for the toastie (the desk holds nothing another request needs meanwhile)."""
        how, order = self.desk.wait(order.id, V1_WAIT_S)
        if how == Wait.RESTARTING:
            raise ApiError(503, f'jafflr is restarting; toastie {order.id} is kept and will '
                                f'be made: follow it at /v2/toasties/{order.id}',
                           code='restarting', headers={'Retry-After': '5'})
        if how == Wait.STILL_COOKING:
            raise ApiError(504, f'toastie {order.id} is still being made; follow it at '
                                f'/v2/toasties/{order.id}', code='still-cooking',
                           headers={'Location': f'/v2/toasties/{order.id}'})
        if order.state != DONE:
            raise failure_answer(order)


def call(fn, *args, **kw):
    """fn(...), a refusal answered as its HTTP error."""
    try:
        return fn(*args, **kw)
    except errors.RefusedError as exc:
        raise refused(exc) from None


def build_app(desk, *, version, auth, readiness, metrics, chillybin, v1_waiter_limit=V1_WAITERS,
              debug=None, panel=None):
    """jafflr's routes. `desk`: the FrontDesk (every domain operation); the rest is HTTP's
    own: the admin `auth`, `readiness`, `metrics`, the `chillybin` client that the panel's
    routes forward to, and `debug` (stall_control_loop, raise_in) when JAFFLR_DEBUG_HOOKS=1."""
    api = JafflrApi(desk, auth, v1_waiter_limit)
    app = bottle.Bottle()
    app.uninstall(True)
    install_error_pages(app, log)
    add_v1_routes(app, api, version, panel)
    add_toastie_routes(app, api, version)
    add_machine_routes(app, api, version)
    add_service_routes(app, version, readiness, metrics, debug)
    add_panel_routes(app, desk, auth, chillybin)
    return app


def add_v1_routes(app, api, version, panel):
    """v1, as the original project answered: text, `/toastie` waits for the toastie."""
    desk = api.desk

    @app.get('/')
    def index():
        if panel is not None and 'text/html' in bottle.request.get_header('Accept', ''):
            return panel()
        bottle.response.content_type = 'text/plain; charset=utf-8'
        now = desk.v1_status()
        text = f'toasting: {"true" if now["toasting"] else "false"}'
        fault = now['fault']
        if fault is not None:     # v1's one line, then why the machine is stopped
            text += f'\nfault: {fault.reason}: {fault.detail}\nto clear: {now["to_clear"]}'
        return text

    @app.get('/toastie')
    def v1_toastie():
        ingredients = query_all('i')
        doneness = query_one('doneness', default='medium')
        customer = conform(schemas.LABEL, query_one('customer', default=''), 'customer')
        order, replayed = api.submit(ingredients, doneness, customer=customer, source='v1')
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
        return version


def add_toastie_routes(app, api, version):
    """v2's index and toasties."""
    desk = api.desk

    @app.get('/v2/')
    def v2_index():
        return json_answer({'service': 'jafflr', 'version': version, 'links': {
            'toasties': '/v2/toasties', 'status': '/v2/status', 'flags': '/v2/flags',
            'events': '/v2/events', 'stock': '/v2/stock', 'ready': '/v2/ready',
            'openapi': '/v2/openapi.json'}})

    @app.post('/v2/toasties')
    def v2_create():
        body = json_body(schemas.TOASTIE_REQUEST)
        order, replayed = api.submit(body['ingredients'], body.get('doneness', 'medium'),
                                     body.get('name', ''), body.get('customer', ''))
        headers = {'Location': f'/v2/toasties/{order.id}'}
        if replayed:
            headers['Idempotent-Replayed'] = 'true'
        answer = desk.describe(order)
        answer['cancel_secret'] = desk.order_secret(order)     # only ever in this answer
        return json_answer(answer, 200 if replayed else 202, headers)

    @app.get('/v2/toasties')
    def v2_list():
        return json_answer({'orders': desk.describe_recent(query_int('limit', 1, 100, 30))})

    @app.get('/v2/toasties/<oid>')
    def v2_order(oid):
        return json_answer(desk.describe(call(desk.get, oid)))

    @app.post('/v2/toasties/<oid>/cancel')
    def v2_cancel(oid):
        api.check_cancel(call(desk.get, oid))
        return json_answer(desk.describe(call(desk.cancel, oid)))


def add_machine_routes(app, api, version):
    """v2's machine: status, stop, reset, the queue's pause, flags, events, stock."""
    desk, auth = api.desk, api.auth

    def status():
        return {**desk.status(), 'version': version}

    @app.get('/v2/status')
    def v2_status():
        return json_answer(status())

    @app.post('/v2/stop')
    def v2_stop():
        body = json_body(schemas.STOP_REQUEST)
        by = body.get('by')     # what the caller says; the address is the connection's
        desk.stop(f'{by}, from {client_address()}' if by else f'HTTP from {client_address()}')
        return json_answer(status())

    @app.post('/v2/reset')
    def v2_reset():
        auth.check()
        call(desk.reset, f'admin from {client_address()}')
        return json_answer(status())

    @app.post('/v2/queue/<action:re:pause|resume>')
    def v2_queue(action):
        auth.check()
        if action == 'resume':
            desk.resume()
        else:
            desk.pause(query_int('expires_s', 1, MAX_PAUSE_S))
        return json_answer(status())

    @app.get('/v2/flags')
    def v2_flags():
        return json_answer({'flags': desk.describe_flags()})

    @app.put('/v2/flags/<name>')
    def v2_set_flag(name):
        auth.check()
        body = json_body(schemas.FLAG_REQUEST)
        return json_answer(call(desk.set_flag, name, body))

    @app.get('/v2/events')
    def v2_events():
        limit = query_int('limit', 1, 500, default=50)
        return json_answer({'events': desk.events(limit, query_one('kind'))})

    @app.get('/v2/stock')
    def v2_stock():
        try:
            return json_answer(desk.chillybin_stock())
        except errors.Unavailable as exc:
            raise ApiError(503, exc.message, code='chillybin-unreachable') from None


def add_service_routes(app, version, readiness, metrics, debug):
    """What every service answers: readiness, the OpenAPI document, metrics; debug hooks."""
    openapi = json.dumps(build_document(version)).encode()

    @app.get('/v2/ready')
    def v2_ready():
        ready, checks = readiness.report()
        return json_answer({'ready': ready, 'checks': checks}, 200 if ready else 503)

    @app.get('/v2/openapi.json')
    def v2_openapi():
        bottle.response.content_type = 'application/json'
        return openapi

    @app.get('/metrics')
    def prometheus():
        bottle.response.content_type = metrics.content_type
        return metrics.render()

    if debug is not None:    # JAFFLR_DEBUG_HOOKS=1 only: for the exit-path tests, never on a machine
        @app.post('/v2/debug/stall')
        def v2_debug_stall():
            debug.stall_control_loop()
            return json_answer({'stalled': True})

        @app.post('/v2/debug/raise')
        def v2_debug_raise():
            where = json_body(schemas.DEBUG_RAISE_REQUEST).get('where', 'press')
            debug.raise_in(where)
            return json_answer({'raising_in': where})

