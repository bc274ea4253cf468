"""Admin authentication that never sends the admin token over the network.

The kitchen LAN is plain HTTP, so a bearer token crossing it can be read and replayed by
anyone on the Wi-Fi. Instead a client proves it holds the token, once per request:

1. `GET /v2/admin/challenge` answers a fresh nonce (single use, `NONCE_TTL_S` to live);
2. the request carries `Authorization: Jafflr-HMAC nonce="<nonce>", mac="<hex>"` where
   mac = HMAC-SHA256(token, nonce \\n METHOD \\n path?query \\n hex SHA-256 of the body).

The nonce is spent by the first request that names it, whatever the outcome, so a
captured request does not work a second time, and the MAC binds it to its method, path
and body. `Authorization: Bearer <token>` still works from a loopback client (curl on
the machine itself, the deploy, the tests), where nothing crosses the network.

The token file is read again whenever it changes, so `python -m api.admin rotate-token`
takes effect at the next admin request without a restart.
"""
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
import time
from collections import OrderedDict

import bottle

from .web import ApiError, client_address

SCHEME = 'Jafflr-HMAC'
NONCE_TTL_S = 60.0
MAX_NONCES = 1024          # outstanding challenges; the oldest is dropped past this
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def signing_string(nonce, method, target, body):
    return '\n'.join([nonce, method.upper(), target, hashlib.sha256(body).hexdigest()]).encode()


def sign(token, nonce, method, target, body=b''):
    """The MAC a client sends for one request (`target` is the path with its query)."""
    return hmac.new(token.encode(), signing_string(nonce, method, target, body),
                    hashlib.sha256).hexdigest()


def authorization(token, nonce, method, target, body=b''):
    return f'{SCHEME} nonce="{nonce}", mac="{sign(token, nonce, method, target, body)}"'


def is_loopback(address):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class Nonces:
    """Challenges handed out and not yet spent, each for NONCE_TTL_S (monotonic seconds)."""

    def __init__(self, ttl_s=NONCE_TTL_S, limit=MAX_NONCES, monotonic=time.monotonic):
        self.ttl_s = ttl_s
        self.limit = limit
        self.monotonic = monotonic
        self._open = OrderedDict()
        self._lock = threading.Lock()

    def issue(self):
        nonce = secrets.token_hex(16)
        now = self.monotonic()
        with self._lock:
            self._open[nonce] = now + self.ttl_s
            while len(self._open) > self.limit:
                self._open.popitem(last=False)
        return nonce

    def spend(self, nonce):
        """True once for a nonce issued less than ttl_s ago; False ever after."""
        with self._lock:
            expires = self._open.pop(nonce, None)
        return expires is not None and self.monotonic() < expires


class TokenFile:
    """The admin token, read again when its file changes (rotation needs no restart)."""

    def __init__(self, path, read):
        self.path = path
        self._read = read
        self._seen = None
        self._token = None
        self._lock = threading.Lock()

    def get(self):
        try:
            st = os.stat(self.path)
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            seen = self._seen         # gone for a moment (a rename): keep the last one
        with self._lock:
            if seen != self._seen or self._token is None:
                self._token = self._read(self.path)
                self._seen = seen
            return self._token


class AdminAuth:
    """Admin actions: a signed request (any client), or a bearer token from loopback.
    The token is compared in constant time and never logged."""

    def __init__(self, token, where, *, nonces=None):
        self._token = token if callable(token) else (lambda t=token: t)
        self.where = where
        self.nonces = nonces or Nonces()

    @classmethod
    def from_file(cls, path, read):
        """`read(path)` gives the token (settings.admin_token, which creates the file);
        read once now, so a missing or bad token stops the service at start."""
        token_file = TokenFile(path, read)
        token_file.get()
        return cls(token_file.get, path)

    @property
    def token(self):
        return self._token()

    def _refuse(self, message, code, error=None):
        challenge = f'{SCHEME} realm="jafflr", challenge="/v2/admin/challenge"'
        if error:
            challenge += f', error="{error}"'
        raise ApiError(401, message, code=code,
                       headers={'WWW-Authenticate': f'{challenge}, Bearer realm="jafflr"'})

    def check(self):
        header = bottle.request.get_header('Authorization', '')
        scheme, _, rest = header.partition(' ')
        if scheme.lower() == 'bearer' and rest.strip():
            return self._check_bearer(rest.strip())
        if scheme == SCHEME:
            return self._check_signed(dict(_PARAM.findall(rest)))
        self._refuse(f'this needs the admin token: sign the request ({SCHEME}: GET '
                     f'/v2/admin/challenge, then HMAC-SHA256 of the nonce, method, path and '
                     f'body hash; `python -m api.admin call` does it), or on the machine itself '
                     f'send "Authorization: Bearer <token>" (the token is in {self.where})',
                     'admin-token-required')

    def _check_bearer(self, given):
        address = client_address()
        if not is_loopback(address):
            self._refuse(f'the admin token may not cross the network in clear ({address} is '
                         f'not this machine): sign the request instead ({SCHEME}, see '
                         f'/v2/admin/challenge), and rotate the token if it was sent before '
                         f'(python -m api.admin rotate-token)', 'admin-token-in-clear',
                         'invalid_request')
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            self._refuse('the admin token is wrong', 'admin-token-wrong', 'invalid_token')

    def _check_signed(self, params):
        nonce, mac = params.get('nonce', ''), params.get('mac', '')
        if not nonce or not mac:
            self._refuse(f'{SCHEME} needs nonce="..." and mac="..."', 'admin-signature-malformed',
                         'invalid_request')
        if not self.nonces.spend(nonce):
            self._refuse(f'the nonce is unknown, used already or older than '
                         f'{self.nonces.ttl_s:g} s: get a new one from /v2/admin/challenge for '
                         f'each request', 'admin-nonce-spent', 'invalid_token')
        environ = bottle.request.environ
        target = environ.get('jafflr.path', environ.get('PATH_INFO', ''))
        if environ.get('QUERY_STRING'):
            target += '?' + environ['QUERY_STRING']
        body = bottle.request.body.read()
        expected = sign(self.token, nonce, bottle.request.method, target, body)
        if not hmac.compare_digest(mac.lower().encode(), expected.encode()):
            self._refuse(f'the signature does not match: the token is wrong, or the method, '
                         f'path ({target}) or body was not the one signed', 'admin-token-wrong',
                         'invalid_token')

    def allows(self):
        try:
            self.check()
            return True
        except ApiError:
            return False

    def challenge(self):
        """The answer to GET /v2/admin/challenge."""
        return {'nonce': self.nonces.issue(), 'expires_in_s': self.nonces.ttl_s,
                'scheme': SCHEME, 'mac': 'HMAC-SHA256(token, nonce LF METHOD LF path LF '
                                          'hex(SHA-256(body)))'}
