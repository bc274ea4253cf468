"""The kitchen panel: its page and files, served by jafflr itself (the kitchen's LAN may
have no internet, so nothing comes from a CDN), and the few routes it needs besides the
v2 core. The panel talks only to jafflr; chillybin is another origin, so jafflr forwards
what the panel needs of it:

    GET  /v2/plate/history                    the plate's last minutes, for the chart
    GET  /v2/admin/challenge                  a single-use nonce to sign an admin request with
    GET  /v2/admin/check                      does this request carry the admin token?
    POST /v2/chillybin/restock                admin: forwarded, signed again with jafflr's token
    POST /v2/chillybin/bays/<name>/calibrate  admin: forwarded, signed again with jafflr's token
    GET  /v2/chillybin/events                 chillybin's recent events
    GET  /v2/chillybin/alerts                 chillybin's alerts now

A 503 with code `chillybin-unreachable` means chillybin did not answer; the panel shows
that apart from jafflr itself not answering (no HTTP answer at all).
"""
import functools
import hashlib
import json
import math
import os
import re
from urllib.parse import quote, urlencode

import bottle

from firmware.errors import RefusedError
from ..common.adminauth import authorization
from ..common.web import ApiError, json_answer, json_body, query_int, query_one
from . import schemas

ASSET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'panel')
CONTENT_TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.ico': 'image/x-icon',
}
# Same-origin everything: the page may not be framed, nor load or send anything elsewhere.
SECURITY_HEADERS = {
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
    'X-Frame-Options': 'DENY',
}


class PanelAssets:
    """The panel's files, read once. Each is answered with its content type, a strong ETag
    and `Cache-Control: no-cache`: the browser keeps a copy but asks every time, so a
    reload after an upgrade never runs stale code and an unchanged file costs a 304."""

    def __init__(self, folder=ASSET_DIR):
        self.files = {}
        for name in sorted(os.listdir(folder)):
            ctype = CONTENT_TYPES.get(os.path.splitext(name)[1])
            if ctype is None:
                continue        # README.md and the like are for people, not browsers
            with open(os.path.join(folder, name), 'rb') as f:
                body = f.read()
            etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
            self.files[name] = (body, ctype, etag)

    def answer(self, name):
        if name not in self.files:
            raise ApiError(404, f'the panel has no file {name!r}', code='not-found')
        body, ctype, etag = self.files[name]
        headers = {'Content-Type': ctype, 'ETag': etag, 'Cache-Control': 'no-cache',
                   **SECURITY_HEADERS}
        if etag in _etags(bottle.request.get_header('If-None-Match', '')):
            return bottle.HTTPResponse(status=304, headers=headers)
        return bottle.HTTPResponse(body=body, headers=headers)


def _etags(header):
    return {tag.strip().removeprefix('W/') for tag in header.split(',') if tag.strip()}


@functools.cache
def assets():
    return PanelAssets()


def panel_page():
    """The page a browser gets at `/` (app.build_app's `panel`)."""
    response = assets().answer('index.html')
    response.set_header('Vary', 'Accept')     # the same URL answers curl in text
    return response


def add_panel_routes(app, desk, auth, chillybin):
    """`desk`: the FrontDesk (the plate's history); `auth`: the admin check; `chillybin`:
    the client that admin requests are forwarded with."""
    @app.get('/panel/<name:re:[a-z0-9-]+\\.[a-z]+>')
    def panel_file(name):
        return assets().answer(name)

    @app.get('/v2/plate/history')
    def plate_history():
        since = _query_wall('since')
        return json_answer(desk.plate_history(since))

    @app.get('/v2/admin/challenge')
    def admin_challenge():
        return json_answer(auth.challenge(), headers={'Cache-Control': 'no-store'})

    @app.get('/v2/admin/check')
    def admin_check():
        auth.check()
        return json_answer({'admin': True})

    add_chillybin_routes(app, Forwarder(chillybin, auth))


def add_chillybin_routes(app, forwarder):
    auth, forward = forwarder.auth, forwarder.forward

    @app.post('/v2/chillybin/restock')
    def chillybin_restock():
        auth.check()
        body = json_body(schemas.RESTOCK_REQUEST)
        return forward('POST', '/v2/restock', body, admin=True)

    @app.post('/v2/chillybin/bays/<name>/calibrate')
    def chillybin_calibrate(name):
        auth.check()
        if not re.fullmatch(schemas.NAME['pattern'], name):
            raise ApiError(400, f'{name!r} is not an ingredient name', field='name',
                           allowed=schemas.NAME['description'])
        body = json_body(schemas.CALIBRATE_REQUEST)
        return forward('POST', f'/v2/bays/{quote(name)}/calibrate', body, admin=True)

    @app.get('/v2/chillybin/events')
    def chillybin_events():
        params = {'limit': query_int('limit', 1, 500, default=50)}
        kind = query_one('kind')
        if kind is not None:
            params['kind'] = kind
        return forward('GET', f'/v2/events?{urlencode(params)}')

    @app.get('/v2/chillybin/alerts')
    def chillybin_alerts():
        return forward('GET', '/v2/alerts')


class Forwarder:
    """Requests to chillybin on the panel's behalf (chillybin is another origin)."""

    def __init__(self, chillybin, auth):
        self.chillybin = chillybin
        self.auth = auth

    def admin_headers(self, method, path, body):
        """An admin request to chillybin signed with jafflr's own token on a fresh nonce of
        chillybin's (the token never crosses a network, even to a chillybin elsewhere)."""
        status, challenge = self.chillybin.request('GET', '/v2/admin/challenge')
        if status != 200 or not isinstance(challenge, dict) or 'nonce' not in challenge:
            raise ApiError(502, f'chillybin gave no admin challenge (it answered {status}): '
                                f'update it with jafflr', code='chillybin-bad-answer')
        payload = json.dumps(body).encode() if body is not None else b''
        return {'Authorization': authorization(self.auth.token, challenge['nonce'], method, path,
                                               payload)}

    def forward(self, method, path, body=None, admin=False):
        """chillybin's answer, status and JSON body as they are; 503 when it cannot be reached."""
        try:
            headers = self.admin_headers(method, path, body) if admin else None
            status, answer = self.chillybin.request(method, path, body, headers)
        except RefusedError as exc:
            raise ApiError(503, exc.message, code='chillybin-unreachable') from None
        if status == 401:
            raise ApiError(502, 'chillybin refused the admin token that jafflr accepted: give '
                                'both services the same token file (JAFFLR_ADMIN_TOKEN_FILE)',
                           code='chillybin-token-differs')
        if not isinstance(answer, (dict, list)):
            raise ApiError(502, f'chillybin answered {status} without JSON: {str(answer)[:200]}',
                           code='chillybin-bad-answer')
        return json_answer(answer, status)


def _query_wall(name):
    raw = query_one(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ApiError(400, f'{name} must be a time in seconds since the epoch, not {raw!r}',
                       field=name, allowed='a number, e.g. the wall of the last sample you have')
    return value
