"""chillybin's app in process, for what the simulated service cannot show: a real
machine's /restock needs the admin token."""
import io
import json
import os
import stat
from wsgiref.util import setup_testing_defaults

from api.chillybin.app import build_app
from api.common.settings import admin_token
from api.common.adminauth import AdminAuth


class Restocks:
    def __init__(self):
        self.calls = []

    def restock(self, items, wall, replaced=True):
        self.calls.append(items)


class Clock:
    def time(self):
        return 0.0


def wsgi(app, path, headers=()):
    environ = {'PATH_INFO': path, 'REQUEST_METHOD': 'GET', 'wsgi.input': io.BytesIO()}
    setup_testing_defaults(environ)
    environ.update(headers)
    seen = {}
    body = b''.join(app(environ, lambda status, hdrs, exc=None: seen.update(status=status)))
    return int(seen['status'][:3]), body


def test_app_v1_restock_on_a_real_machine_needs_the_token(tmp_path):
    chilly = Restocks()
    token = admin_token(str(tmp_path / 'admin-token'))
    app = build_app(chilly, clock=Clock(), auth=AdminAuth(token, 'the-file'), metrics=None,
                    readiness=None, version='x', simulated=False)
    status, body = wsgi(app, '/restock')
    assert status == 401 and b'admin token' in body and b'the-file' in body and not chilly.calls
    status, body = wsgi(app, '/restock', {'HTTP_AUTHORIZATION': f'Bearer {token}',
                                          'REMOTE_ADDR': '127.0.0.1'})    # on the machine
    assert (status, body) == (200, b'ok')
    assert chilly.calls == [{'bread': 10, 'cheese': 10, 'vegemite': 10}]


def test_app_admin_token_file_is_created_0600_and_reused(tmp_path, caplog):
    path = str(tmp_path / 'admin-token')
    caplog.set_level('INFO')
    token = admin_token(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(token) >= 32
    assert admin_token(path) == token
    assert path in caplog.text and token not in caplog.text


def test_app_a_limit_of_thousands_of_digits_is_a_400_not_a_500(tmp_path):
    class Events:
        store = type('Store', (), {'events': type('Journal', (), {
            'recent': staticmethod(lambda limit, kind: [])})()})()
    app = build_app(Events(), clock=Clock(), auth=AdminAuth('t' * 32, 'the-file'), metrics=None,
                    readiness=None, version='x', simulated=True)
    for digits in ('9' * 5000, '0' * 4999 + '5', '-' + '9' * 4400):
        status, body = wsgi(app, '/v2/events', {'QUERY_STRING': f'limit={digits}'})
        assert status == 400 and json.loads(body)['error']['field'] == 'limit', body[:200]
    assert wsgi(app, '/v2/events', {'QUERY_STRING': 'limit=0005'})[0] == 200
    # str.strip() removes the separators \x1c-\x1f, which int() does not skip
    assert wsgi(app, '/v2/events', {'QUERY_STRING': 'limit=5%1F'})[0] == 200
