"""chillybin's HTTP API: v1 as the original project answered it, v2 in JSON.

Handlers are short: read and check the request, call the bin, shape the answer.
Refusals from the bin (firmware.errors) become statuses here and nowhere else.
"""
import hashlib
import json
import logging

import re

import bottle

from firmware import errors
from ..common.adminauth import AdminAuth
from ..common.web import ApiError, install_error_pages, json_answer, json_body, \
    query_int, query_one
from . import schemas
from .edge import V1_SUCCESSORS  # noqa: F401  (the v1 routes' successors)

log = logging.getLogger('chillybin')

STATUS_OF = {'invalid': 400, 'unknown': 404, 'not-found': 404, 'insufficient': 409,
             'conflict': 409, 'locked': 423, 'sensor': 503, 'unavailable': 503}



def refused(exc):
    return ApiError(STATUS_OF.get(exc.kind, 400), exc.message, code=exc.kind, field=exc.field,
                    allowed=exc.allowed)


def call(fn, *args, **kw):
    """fn(...), a refusal answered as its HTTP error."""
    try:
        return fn(*args, **kw)
    except errors.RefusedError as exc:
        raise refused(exc) from None


def build_app(chilly, *, v1_answer, clock, auth: AdminAuth, metrics, readiness, version,
              simulated, debug_stall=None):
    """chillybin's routes. `chilly`: the bin (every domain operation); `v1_answer`: the v1
    answer kept ready (api/chillybin/v1answer.py); the rest is HTTP's own: the `clock`, the
    admin `auth`, `readiness`, `metrics`, and `debug_stall`: only with JAFFLR_DEBUG_HOOKS=1
    (tests), adds POST /v2/debug/stall."""
    app = bottle.Bottle()
    app.uninstall(True)       # no JSON plugin or templates: handlers shape their own bytes
    install_error_pages(app, log)
    add_v1_routes(app, chilly, clock, v1_answer, auth, version, simulated)
    add_stock_routes(app, chilly, clock, version)
    add_reservation_routes(app, chilly, clock)
    add_admin_routes(app, chilly, clock, auth)
    add_history_routes(app, chilly, clock)
    add_service_routes(app, version, readiness, metrics, debug_stall)
    return app


def add_v1_routes(app, chilly, clock, v1_answer, auth, version, simulated):
    """v1, as the original project answered: the stock, a pick, a restock, the version."""
    @app.get('/')
    def v1_stock():
        bottle.response.content_type = 'application/json'
        return v1_answer.body

    @app.route('/pick', method=['GET', 'POST'])
    def v1_pick():
        name = query_one('name', required=True)
        quantity = query_int('quantity', 1, 10, required=True)
        call(chilly.desk.pick, name, quantity, clock.time())
        bottle.response.content_type = 'text/plain; charset=utf-8'
        return 'ok'

    @app.route('/restock', method=['GET', 'POST'])
    def v1_restock():
        if not simulated:
            auth.check()    # in simulation it stays open, so the original integration test runs
        call(chilly.restocking.restock, {'bread': 10, 'cheese': 10, 'vegemite': 10}, clock.time())
        bottle.response.content_type = 'text/plain; charset=utf-8'
        return 'ok'

    @app.get('/health')
    def health():
        bottle.response.content_type = 'text/plain; charset=utf-8'
        return version


def add_stock_routes(app, chilly, clock, version):
    """v2's index, the stock per bay and the bin."""
    @app.get('/v2/')
    def v2_index():
        return json_answer({'service': 'chillybin', 'version': version, 'links': {
            'stock': '/v2/stock', 'reservations': '/v2/reservations', 'events': '/v2/events',
            'alerts': '/v2/alerts', 'bin': '/v2/bin', 'ready': '/v2/ready',
            'openapi': '/v2/openapi.json'}})

    @app.get('/v2/stock')
    def v2_stock():
        return json_answer(chilly.snapshot(clock.monotonic()))

    @app.get('/v2/stock/<name>')
    def v2_stock_one(name):
        return json_answer(call(chilly.bay_snapshot, name))

    @app.get('/v2/bin')
    def v2_bin():
        return json_answer(chilly.air.status(clock.monotonic()))


def add_reservation_routes(app, chilly, clock):
    """v2's reservations: reserve (idempotent with a key), read, confirm, cancel."""
    @app.post('/v2/reservations')
    def v2_reserve():
        body = json_body(schemas.RESERVATION_REQUEST)
        key = bottle.request.get_header('Idempotency-Key')
        if key is not None and not 1 <= len(key) <= 100:
            raise ApiError(400, 'Idempotency-Key must be 1 to 100 characters',
                           field='Idempotency-Key', allowed='1-100 characters')
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        r, replayed = call(chilly.desk.reserve, body['items'], clock.time(), key=key,
                           fingerprint=fingerprint, ttl_s=body.get('ttl_s', 120),
                           dispense=body.get('dispense', False))
        headers = {'Location': f'/v2/reservations/{r.id}'}
        if replayed:
            headers['Idempotent-Replayed'] = 'true'
        return json_answer(public(r), 200 if replayed else 201, headers)

    @app.get('/v2/reservations/<rid>')
    def v2_reservation(rid):
        return json_answer(public(call(chilly.desk.reservation, rid)))

    @app.post('/v2/reservations/<rid>/confirm')
    def v2_confirm(rid):
        return json_answer(public(call(chilly.desk.confirm, rid, clock.time())))

    @app.post('/v2/reservations/<rid>/cancel')
    def v2_cancel(rid):
        return json_answer(public(call(chilly.desk.cancel, rid, clock.time())))


def add_admin_routes(app, chilly, clock, auth):
    """v2's admin: the challenge, then signed restock, calibration, food check, bay setup."""
    @app.get('/v2/admin/challenge')
    def v2_admin_challenge():
        return json_answer(auth.challenge(), headers={'Cache-Control': 'no-store'})

    @app.post('/v2/restock')
    def v2_restock():
        auth.check()
        body = json_body(schemas.RESTOCK_REQUEST)
        call(chilly.restocking.restock, body['items'], clock.time(),
             replaced=body.get('replaced', True))
        return json_answer(chilly.snapshot(clock.monotonic()))

    @app.post('/v2/bays/<name>/calibrate')
    def v2_calibrate(name):
        auth.check()
        body = json_body(schemas.CALIBRATE_REQUEST)
        return json_answer(call(chilly.scales.calibrate, name, body['step'], clock.time(),
                                body.get('known_g')))

    @app.post('/v2/bays/<name>/food-check')
    def v2_food_check(name):
        auth.check()
        body = json_body(schemas.FOOD_CHECK_REQUEST)
        return json_answer(call(chilly.food.food_check, name, body['confirmed'], clock.time()))

    @app.put('/v2/bays/<name>')
    def v2_configure_bay(name):
        auth.check()
        if not re.fullmatch(schemas.NAME['pattern'], name):
            raise ApiError(400, f'{name!r} is not an ingredient name', field='name',
                           allowed=schemas.NAME['description'])
        body = json_body(schemas.BAY_REQUEST)
        call(chilly.scales.configure, name, body['slot'], body['unit_g'], clock.time())
        return json_answer(chilly.bay_snapshot(name))


def add_history_routes(app, chilly, clock):
    """v2's events and the alerts active now."""
    @app.get('/v2/events')
    def v2_events():
        limit = query_int('limit', 1, 500, default=50)
        kind = query_one('kind')
        return json_answer({'events': chilly.history.recent(limit, kind)})

    @app.get('/v2/alerts')
    def v2_alerts():
        return json_answer({'alerts': chilly.alerts(clock.monotonic())})


def add_service_routes(app, version, readiness, metrics, debug_stall):
    """What every service answers: readiness, the OpenAPI document, metrics; the debug hook."""
    openapi = []          # built at its first request: nobody asks for it at idle

    @app.get('/v2/ready')
    def v2_ready():
        ready, checks = readiness.report()
        return json_answer({'ready': ready, 'checks': checks}, 200 if ready else 503)

    @app.get('/v2/openapi.json')
    def v2_openapi():
        bottle.response.content_type = 'application/json'
        if not openapi:
            from .openapi import build_document
            openapi.append(json.dumps(build_document(version)).encode())
        return openapi[0]

    @app.get('/metrics')
    def prometheus():
        bottle.response.content_type = metrics.content_type
        return metrics.render()

    if debug_stall is not None:   # JAFFLR_DEBUG_HOOKS=1 only: for the watchdog test, never on a machine
        @app.post('/v2/debug/stall')
        def v2_debug_stall():
            debug_stall()
            return json_answer({'stalled': True})


def public(r):
    d = r.to_dict()
    d.pop('key', None)
    d.pop('fingerprint', None)
    return d
