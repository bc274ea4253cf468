"""Admin authentication on chillybin's app, in process: the token never has to cross the
network (a signed, single-use challenge-response), bearer only from loopback, a captured
request does not work twice, and a rotated token takes effect without a restart."""
import hashlib
import hmac
import io
import json
import os

import pytest

from api import admin
from api.chillybin.app import build_app
from api.common.adminauth import AdminAuth, Nonces, authorization, sign
from api.common.settings import admin_token
from api.common.web import Edge, HostNames


class Bin:
    def __init__(self):
        self.calls = []
        self.restocking = self

    def restock(self, items, wall, replaced=True):
        self.calls.append(items)

    def snapshot(self, now):
        return {'bays': []}


class Clock:
    def time(self):
        return 0.0

    def monotonic(self):
        return 0.0


class FakeMonotonic:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def setup(tmp_path):
    path = str(tmp_path / 'admin-token')
    admin_token(path)
    chilly = Bin()
    auth = AdminAuth.from_file(path, admin_token)
    app = Edge(build_app(chilly, v1_answer=None, clock=Clock(), auth=auth, metrics=None, readiness=None,
                         version='x', simulated=True), hostnames=HostNames(['chillybin.local']))
    return app, chilly, auth, path


def wsgi(app, method, path, body=b'', remote='192.168.1.20', **headers):
    environ = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': '',
               'HTTP_HOST': 'chillybin.local', 'SERVER_NAME': 'chillybin.local',
               'SERVER_PORT': '7001', 'wsgi.input': io.BytesIO(body), 'wsgi.url_scheme': 'http',
               'wsgi.errors': io.StringIO(), 'CONTENT_LENGTH': str(len(body)),
               'CONTENT_TYPE': 'application/json', 'REMOTE_ADDR': remote}
    environ.update({f'HTTP_{k.upper()}': v for k, v in headers.items()})
    seen = {}
    out = b"".join(app(environ, lambda status, hdrs, exc=None: seen.update(
        status=status, headers={k.lower(): v for k, v in hdrs})))
    return int(seen['status'][:3]), seen['headers'], json.loads(out) if out.startswith(b'{') else out


def nonce(app):
    status, headers, answer = wsgi(app, 'GET', '/v2/admin/challenge')
    assert status == 200 and headers['cache-control'] == 'no-store'
    return answer['nonce']


SIGNATURE_VECTOR = '3f4afc4f7647ff70141518b5b5b2ea9a2f429c57b93c9b26a193307b0e2481ee'
BODY = json.dumps({'items': {'cheese': 10}}).encode()


def signed(app, token, body=BODY, path='/v2/restock', signed_path=None, signed_body=None):
    n = nonce(app)
    header = authorization(token, n, 'POST', signed_path or path,
                           body if signed_body is None else signed_body)
    return header, lambda: wsgi(app, 'POST', path, body, authorization=header)


def test_adminauth_a_signed_request_works_once_from_the_lan(setup):
    app, chilly, auth, _ = setup
    _, send = signed(app, auth.token)
    assert send()[0] == 200 and chilly.calls == [{'cheese': 10}]
    status, _, answer = send()           # the very same bytes, captured and replayed
    assert status == 401 and answer['error']['code'] == 'admin-nonce-spent'
    assert chilly.calls == [{'cheese': 10}]


@pytest.mark.parametrize('change', ['path', 'body', 'token'])
def test_adminauth_a_signature_covers_path_body_and_token(setup, change):
    app, chilly, auth, _ = setup
    kwargs = {'path': dict(signed_path='/v2/bays/cheese/calibrate'),
              'body': dict(signed_body=b'{"items": {"cheese": 1}}'), 'token': {}}[change]
    token = 'not-the-token-at-all' if change == 'token' else auth.token
    _, send = signed(app, token, **kwargs)
    status, _, answer = send()
    assert status == 401 and answer['error']['code'] == 'admin-token-wrong' and not chilly.calls


def test_adminauth_bearer_only_from_loopback_and_never_believes_x_forwarded_for(setup):
    app, chilly, auth, _ = setup
    bearer = f'Bearer {auth.token}'
    status, headers, answer = wsgi(app, 'POST', '/v2/restock', BODY, authorization=bearer)
    assert status == 401 and answer['error']['code'] == 'admin-token-in-clear'
    assert 'rotate' in answer['error']['message']
    assert headers['www-authenticate'].startswith('Jafflr-HMAC')
    assert wsgi(app, 'POST', '/v2/restock', BODY, authorization=bearer,
                x_forwarded_for='127.0.0.1')[0] == 401
    assert not chilly.calls
    assert wsgi(app, 'POST', '/v2/restock', BODY, remote='127.0.0.1', authorization=bearer)[0] == 200
    assert wsgi(app, 'POST', '/v2/restock', BODY, remote='::1', authorization=bearer)[0] == 200
    assert wsgi(app, 'POST', '/v2/restock', BODY, remote='127.0.0.1',
                authorization='Bearer wrong-wrong-wrong')[2]['error']['code'] == 'admin-token-wrong'


def test_adminauth_nonces_expire_and_are_bounded():
    clock = FakeMonotonic()
    nonces = Nonces(ttl_s=60, limit=3, monotonic=clock)
    late, first = nonces.issue(), nonces.issue()
    clock.now += 61
    assert not nonces.spend(late)
    kept = [nonces.issue() for _ in range(3)]
    assert not nonces.spend(first)             # dropped: over the limit
    assert all(nonces.spend(n) for n in kept) and not nonces.spend(kept[0])


def test_adminauth_rotate_token_takes_effect_without_a_restart(setup, capsys):
    app, chilly, auth, path = setup
    old = auth.token
    assert admin.main(['rotate-token', '--file', path]) == 0
    assert oct(os.stat(path).st_mode & 0o777) == '0o600'
    new = admin.read_token(path)
    assert new != old and len(new) >= 32 and new not in capsys.readouterr().out
    assert signed(app, old)[1]()[0] == 401
    assert signed(app, new)[1]()[0] == 200


def test_adminauth_the_signature_is_hmac_sha256_of_nonce_method_path_body_hash():
    # The same vector tests/panel/test_panel_browser.py checks the panel's JavaScript against.
    text = b'n0nce\nPOST\n/v2/reset\n' + hashlib.sha256(b'{}').hexdigest().encode()
    assert hmac.new(b'k' * 32, text, hashlib.sha256).hexdigest() == SIGNATURE_VECTOR
    assert sign('k' * 32, 'n0nce', 'post', '/v2/reset', b'{}') == SIGNATURE_VECTOR
