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
        self.restocking = self

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
    app = build_app(chilly, v1_answer=None, clock=Clock(), auth=AdminAuth(token, 'the-file'), metrics=None,
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
        history = type('History', (), {'recent': staticmethod(lambda limit, kind: [])})()
    app = build_app(Events(), v1_answer=None, clock=Clock(), auth=AdminAuth('t' * 32, 'the-file'), metrics=None,
                    readiness=None, version='x', simulated=True)
    for digits in ('9' * 5000, '0' * 4999 + '5', '-' + '9' * 4400):
        status, body = wsgi(app, '/v2/events', {'QUERY_STRING': f'limit={digits}'})
        assert status == 400 and json.loads(body)['error']['field'] == 'limit', body[:200]
    assert wsgi(app, '/v2/events', {'QUERY_STRING': 'limit=0005'})[0] == 200
    # str.strip() removes the separators \x1c-\x1f, which int() does not skip
    assert wsgi(app, '/v2/events', {'QUERY_STRING': 'limit=5%1F'})[0] == 200


def test_app_debug_stall_exists_only_when_handed_in():
    stalls = []
    for hook, expected in ((None, 404), (lambda: stalls.append(1), 200)):
        app = build_app(Restocks(), v1_answer=None, clock=Clock(), auth=AdminAuth('t' * 32, 'f'), metrics=None,
                        readiness=None, version='x', simulated=True, debug_stall=hook)
        assert wsgi(app, '/v2/debug/stall', {'REQUEST_METHOD': 'POST'})[0] == expected
    assert stalls == [1]


def test_app_watchdog_longer_than_the_tick_is_refused():
    import pytest

    from api.chillybin.service import check_watchdog
    from api.common.sdnotify import Notifier
    notifier = Notifier({'NOTIFY_SOCKET': '/nonexistent', 'WATCHDOG_USEC': '10000000'})
    check_watchdog(notifier, 0.1, 1.0)
    check_watchdog(notifier, 60.0, 2000.0)      # a sped-up clock: 0.03 real s
    with pytest.raises(Exception, match=r'CHILLYBIN_TICK_S=60 .*quarter of the watchdog \(10 s'):
        check_watchdog(notifier, 60.0, 1.0)
    check_watchdog(Notifier({}), 60.0, 1.0)     # no watchdog: any tick
