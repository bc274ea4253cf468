"""The panel's side of jafflr's app, in process and without a browser: the page and its
files, the plate history, and the routes that forward to chillybin (checked input, the
admin token, chillybin unreachable)."""
import io
import json
import re
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from api.common.adminauth import AdminAuth, authorization
from api.jafflr import schemas
from api.jafflr.app import build_app
from api.jafflr.openapi import build_document
from api.jafflr.panel_routes import assets, panel_page
from firmware.errors import Unavailable
from firmware.frontdesk import FrontDesk
from firmware.heater.history import PlateHistory
from firmware.safety import Shutdown
from hardware.clock import FakeClock

TOKEN = 'a-test-admin-token-of-some-length'
BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'


class FakeChillybin:
    """jafflr's chillybin client, answering from a table and recording what it was asked."""

    def __init__(self):
        self.calls = []
        self.answers = {}
        self.challenges = 0
        self.down = False

    def request(self, method, path, body=None, headers=None):
        if (method, path) == ('GET', '/v2/admin/challenge') and not self.down:
            self.challenges += 1       # each admin request is signed on a fresh nonce
            return 200, {'nonce': f'n{self.challenges}'}
        self.calls.append((method, path, body, dict(headers or {})))
        if self.down:
            raise Unavailable('chillybin at http://127.0.0.1:9 cannot be reached: Connection refused')
        return self.answers.get((method, urlsplit(path).path), (200, {'answered': path}))


@pytest.fixture
def service():
    clock = FakeClock()
    return SimpleNamespace(version='test', clock=clock, plate_history=PlateHistory(),
                           auth=AdminAuth(TOKEN, 'the admin-token file'), stock=FakeChillybin(),
                           shutdown=Shutdown())


@pytest.fixture
def app(service):
    s = service
    desk = FrontDesk(SimpleNamespace(toasting=False), None, None, None, s.shutdown, s.clock,
                     chillybin=s.stock, plate_history=s.plate_history)
    return build_app(desk, version=s.version, auth=s.auth, readiness=None, metrics=None,
                     chillybin=s.stock, panel=panel_page)


def call(app, method, path, body=None, headers=None):
    """(status, headers, body bytes) from the WSGI app."""
    path, _, query = path.partition('?')
    raw = json.dumps(body).encode() if body is not None else b''
    environ = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': query,
               'SERVER_NAME': '127.0.0.1', 'SERVER_PORT': '7000', 'HTTP_HOST': '127.0.0.1:7000',
               'wsgi.input': io.BytesIO(raw), 'wsgi.url_scheme': 'http', 'wsgi.errors': io.StringIO(),
               'CONTENT_LENGTH': str(len(raw)), 'REMOTE_ADDR': '127.0.0.1'}
    if body is not None:
        environ['CONTENT_TYPE'] = 'application/json'
    for name, value in (headers or {}).items():
        environ['HTTP_' + name.upper().replace('-', '_')] = value
    seen = {}

    def start_response(status, response_headers, exc_info=None):
        seen['status'] = int(status.split()[0])
        seen['headers'] = {k.lower(): v for k, v in response_headers}
    out = b''.join(app(environ, start_response))
    return seen['status'], seen['headers'], out


def admin(token=TOKEN):
    return {'Authorization': f'Bearer {token}'}


# -- the page and its files -------------------------------------------------------------
def test_panel_root_serves_the_page_to_a_browser_and_text_to_curl(app, service):
    status, headers, body = call(app, 'GET', '/', headers={'Accept': BROWSER})
    assert status == 200 and headers['content-type'] == 'text/html; charset=utf-8'
    assert b'<title>jafflr kitchen panel</title>' in body
    assert headers['vary'] == 'Accept' and "script-src 'self'" in headers['content-security-policy']
    status, headers, body = call(app, 'GET', '/', headers={'Accept': '*/*'})
    assert status == 200 and headers['content-type'].startswith('text/plain')
    assert body == b'toasting: false'
    service.shutdown.trip('heater-runaway', 'rose 3.0 C with the heater off', 1.0)
    _, _, body = call(app, 'GET', '/', headers={'Accept': '*/*'})
    assert body.decode() == ('toasting: false\nfault: heater-runaway: rose 3.0 C with the heater '
                             'off\nto clear: needs a person at the machine: hold its reset button '
                             'for 2 s, then reset from the panel (admin token) within 2 minutes')


@pytest.mark.parametrize('name,ctype', [
    ('panel.js', 'text/javascript; charset=utf-8'), ('api.js', 'text/javascript; charset=utf-8'),
    ('chart.js', 'text/javascript; charset=utf-8'), ('panel.css', 'text/css; charset=utf-8'),
    ('index.html', 'text/html; charset=utf-8')])
def test_panel_files_have_their_content_type_and_revalidate_by_etag(app, name, ctype):
    status, headers, body = call(app, 'GET', f'/panel/{name}')
    assert status == 200 and headers['content-type'] == ctype and body
    assert headers['cache-control'] == 'no-cache' and headers['x-content-type-options'] == 'nosniff'
    status, again, body = call(app, 'GET', f'/panel/{name}', headers={'If-None-Match': headers['etag']})
    assert status == 304 and body == b'' and again['etag'] == headers['etag']


def test_panel_serves_every_file_the_page_loads_and_nothing_from_elsewhere():
    files = assets().files
    page = files['index.html'][0].decode()
    wanted = set(re.findall(r'(?:src|href)="/panel/([^"]+)"', page))
    for name, (body, ctype, _) in files.items():
        if ctype.startswith('text/javascript'):
            wanted |= set(re.findall(r"from '\./([^']+)'", body.decode()))
    assert wanted and wanted <= set(files), wanted - set(files)
    for body, ctype, _ in files.values():
        if ctype.startswith('text/'):
            assert not re.search(rb'(?:src|href)="(?:https?:)?//', body), 'a file loads from another host'


@pytest.mark.parametrize('path', ['/panel/README.md', '/panel/nothing.js', '/panel/..%2fpanel.py'])
def test_panel_files_refuse_what_is_not_the_panels(app, path):
    assert call(app, 'GET', path)[0] == 404


# -- plate history and the admin check ------------------------------------------------------
def test_panel_plate_history_gives_the_samples_since_a_time(app, service):
    wall = service.clock.time()
    for t in range(5):
        service.plate_history.sample(t, wall + t, 20.0 + t, 195.0)
    status, _, body = call(app, 'GET', '/v2/plate/history')
    history = json.loads(body)
    assert status == 200 and len(history['samples']) == 5 and history['period_s'] == 1.0
    _, _, body = call(app, 'GET', f'/v2/plate/history?since={wall + 2}')
    assert [s['temp_c'] for s in json.loads(body)['samples']] == [23.0, 24.0]
    status, _, body = call(app, 'GET', '/v2/plate/history?since=soon')
    assert status == 400 and json.loads(body)['error']['field'] == 'since'


def test_panel_admin_check_needs_the_right_token(app):
    assert call(app, 'GET', '/v2/admin/check')[0] == 401
    assert call(app, 'GET', '/v2/admin/check', headers=admin('wrong-token-wrong-token'))[0] == 401
    status, _, body = call(app, 'GET', '/v2/admin/check', headers=admin())
    assert status == 200 and json.loads(body) == {'admin': True}


# -- forwarding to chillybin ------------------------------------------------------------------
@pytest.mark.parametrize('path,body', [
    ('/v2/chillybin/restock', {'items': {'cheese': 10}}),
    ('/v2/chillybin/bays/cheese/calibrate', {'step': 'tare'})])
def test_panel_admin_forwarding_needs_the_token_and_asks_chillybin_nothing_without_it(
        app, service, path, body):
    for headers in ({}, admin('wrong-token-wrong-token')):
        status, _, answer = call(app, 'POST', path, body, headers)
        assert status == 401 and json.loads(answer)['error']['code'].startswith('admin-token')
    assert service.stock.calls == []


@pytest.mark.parametrize('path,body,field', [
    ('/v2/chillybin/restock', {'items': {'cheese': 51}}, 'items.cheese'),
    ('/v2/chillybin/restock', {'items': {}}, 'items'),
    ('/v2/chillybin/restock', {'items': {'Cheese!': 1}}, 'items.Cheese!'),
    ('/v2/chillybin/restock', {'items': {'cheese': 1}, 'extra': 1}, 'extra'),
    ('/v2/chillybin/bays/cheese/calibrate', {'step': 'zero'}, 'step'),
    ('/v2/chillybin/bays/cheese/calibrate', {'step': 'span', 'known_g': 0}, 'known_g'),
    ('/v2/chillybin/bays/Cheese!/calibrate', {'step': 'tare'}, 'name')])
def test_panel_admin_forwarding_checks_the_body_before_asking_chillybin(app, service, path, body,
                                                                        field):
    status, _, answer = call(app, 'POST', path, body, admin())
    assert status == 400 and json.loads(answer)['error']['field'] == field
    assert service.stock.calls == []


def signed_for_chillybin(nonce, method, path, body):
    return {'Authorization': authorization(TOKEN, nonce, method, path, json.dumps(body).encode())}


def test_panel_restock_and_calibrate_reach_chillybin_signed_with_jafflrs_token(app, service):
    service.stock.answers[('POST', '/v2/restock')] = (200, {'bays': [], 'bin': {}})
    status, _, answer = call(app, 'POST', '/v2/chillybin/restock',
                             {'items': {'cheese': 10}, 'replaced': False}, admin())
    assert status == 200 and json.loads(answer) == {'bays': [], 'bin': {}}
    service.stock.answers[('POST', '/v2/bays/cheese/calibrate')] = (
        409, {'error': {'status': 409, 'code': 'insufficient', 'message': 'no'}})
    status, _, answer = call(app, 'POST', '/v2/chillybin/bays/cheese/calibrate',
                             {'step': 'span', 'known_g': 500}, admin())
    assert status == 409 and json.loads(answer)['error']['code'] == 'insufficient'
    restock, calibrate = {'items': {'cheese': 10}, 'replaced': False}, {'step': 'span', 'known_g': 500}
    assert service.stock.calls == [
        ('POST', '/v2/restock', restock, signed_for_chillybin('n1', 'POST', '/v2/restock', restock)),
        ('POST', '/v2/bays/cheese/calibrate', calibrate,
         signed_for_chillybin('n2', 'POST', '/v2/bays/cheese/calibrate', calibrate))]


def test_panel_forwarding_says_when_chillybin_cannot_be_reached_or_refuses_the_token(app, service):
    service.stock.down = True
    for method, path, body in (('GET', '/v2/chillybin/alerts', None),
                               ('GET', '/v2/chillybin/events', None),
                               ('POST', '/v2/chillybin/restock', {'items': {'cheese': 1}})):
        status, _, answer = call(app, method, path, body, admin())
        error = json.loads(answer)['error']
        assert status == 503 and error['code'] == 'chillybin-unreachable', path
        assert 'cannot be reached' in error['message']
    service.stock.down = False
    service.stock.answers[('POST', '/v2/restock')] = (401, {'error': {'message': 'wrong'}})
    status, _, answer = call(app, 'POST', '/v2/chillybin/restock', {'items': {'cheese': 1}}, admin())
    assert status == 502 and json.loads(answer)['error']['code'] == 'chillybin-token-differs'


def test_panel_events_and_alerts_are_forwarded_with_their_query(app, service):
    service.stock.answers[('GET', '/v2/alerts')] = (200, {'alerts': [{'alert': 'bin-warm', 'detail': 'x'}]})
    status, _, answer = call(app, 'GET', '/v2/chillybin/alerts')
    assert status == 200 and json.loads(answer)['alerts'][0]['alert'] == 'bin-warm'
    assert call(app, 'GET', '/v2/chillybin/events?limit=20&kind=restock')[0] == 200
    assert service.stock.calls[-1][:2] == ('GET', '/v2/events?limit=20&kind=restock')
    assert call(app, 'GET', '/v2/chillybin/events?limit=0')[0] == 400


# -- what is documented ------------------------------------------------------------------------
def test_panel_routes_are_in_the_openapi_document_with_the_bodies_they_check():
    paths = build_document('test')['paths']
    body = lambda p, m: paths[p][m]['requestBody']['content']['application/json']['schema']
    assert body('/v2/chillybin/restock', 'post') is schemas.RESTOCK_REQUEST
    assert body('/v2/chillybin/bays/{name}/calibrate', 'post') is schemas.CALIBRATE_REQUEST
    for path in ('/v2/plate/history', '/v2/admin/check', '/v2/chillybin/events', '/v2/chillybin/alerts'):
        assert path in paths
    assert paths['/v2/chillybin/restock']['post']['security'] == [{'admin': []}]
