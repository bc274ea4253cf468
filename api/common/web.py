"""The HTTP edge both services share.

- `ApiError`: raise it in a handler; it answers with the status and a body that names
  the field, what was wrong and what is allowed (JSON under /v2, a sentence under v1).
- `Edge`: WSGI middleware every request passes before the app: API version by header,
  DNS-rebinding defence (421 for a Host that is not ours), cross-site refusal of
  state-changing requests (403), body limits (413),
  v1 deprecation headers, request metrics.
- helpers to read query parameters and JSON bodies; the client's real address.
  (The admin token check is in adminauth.py.)
"""
import ipaddress
import json
import re
import socket
import time
from urllib.parse import urlsplit

import bottle

from .schema import SchemaError, validate

SAFE_METHODS = frozenset({'GET', 'HEAD', 'OPTIONS'})
KNOWN_METHODS = SAFE_METHODS | {'POST', 'PUT', 'PATCH', 'DELETE'}
API_VERSIONS = ('1', '2')
MAX_BODY_BYTES = 16 * 1024
_WHOLE_NUMBER = re.compile(r'[+-]?[0-9]+')
_MAX_DIGITS = 30


def wants_json(environ):
    path = environ.get('PATH_INFO', '')
    return path.startswith('/v2') or 'application/json' in environ.get('HTTP_ACCEPT', '')


def error_payload(status, message, *, code=None, field=None, allowed=None, as_json=True):
    if as_json:
        error = {'status': status, 'code': code or bottle.HTTP_CODES.get(status, 'error')
                 .lower().replace(' ', '-'), 'message': message}
        if field is not None:
            error['field'] = field
        if allowed is not None:
            error['allowed'] = allowed
        return 'application/json', json.dumps({'error': error}).encode()
    return 'text/plain; charset=utf-8', (message + '\n').encode()


class ApiError(bottle.HTTPResponse):
    """An answer that says what went wrong: raise ApiError(409, 'not enough cheese ...')."""

    def __init__(self, status, message, *, code=None, field=None, allowed=None, headers=None):
        self.message = message
        self.code = code
        ctype, body = error_payload(status, message, code=code, field=field, allowed=allowed,
                                    as_json=wants_json(bottle.request.environ))
        super().__init__(body=body, status=status, headers=headers)
        self.content_type = ctype


def install_error_pages(app, log):
    """Bottle's own 404/405/500 pages become our error bodies; a 500 never shows a traceback."""
    def handler(res):
        if res.status_code >= 500:
            log.error('%s %s failed: %s', bottle.request.method, bottle.request.path,
                      res.exception, exc_info=res.exception)
            message = 'something went wrong inside the service; it has been logged'
        elif res.status_code == 404:
            message = f'there is nothing at {bottle.request.path}'
        elif res.status_code == 405:
            message = (f'{bottle.request.method} is not allowed on {bottle.request.path}; '
                       f'use {res.headers.get("Allow", "another method")}')
        else:
            message = str(res.body)
        ctype, body = error_payload(res.status_code, message, as_json=wants_json(bottle.request.environ))
        bottle.response.content_type = ctype
        return body
    app.default_error_handler = handler


def json_answer(payload, status=200, headers=None):
    response = bottle.HTTPResponse(body=json.dumps(payload).encode(), status=status,
                                   headers=headers)
    response.content_type = 'application/json'
    return response


# -- reading requests ------------------------------------------------------------------
def query_all(name):
    """Every value of query parameter `name`, as the text the client sent. The WSGI server
    hands query values over as Latin-1 (PEP 3333); clients percent-encode UTF-8, so
    `customer=Jos%C3%A9` is 'José' here, not 'JosÃ©'."""
    try:
        return [v.encode('latin-1').decode('utf-8') for v in bottle.request.query.getall(name)]
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise ApiError(400, f'{name} is not UTF-8 text', field=name,
                       allowed='UTF-8, percent-encoded') from None


def query_one(name, default=None, required=False):
    values = query_all(name)
    if len(values) > 1:
        raise ApiError(400, f'give {name} once, not {len(values)} times', field=name)
    if not values:
        if required:
            raise ApiError(400, f'{name} is required', field=name)
        return default
    return values[0]


def query_int(name, lo, hi, default=None, required=False):
    raw = query_one(name, None, required)
    if raw is None:
        return default
    digits = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(digits):     # int() would take '1_0' and '１'
        raise ApiError(400, f'{name} must be a whole number from {lo} to {hi}, not {raw!r}',
                       field=name, allowed=f'{lo}-{hi}')
    if len(digits) > _MAX_DIGITS:    # int() refuses over 4300 digits: that was a 500
        raise ApiError(400, f'{name} must be from {lo} to {hi}, not a number of '
                            f'{len(digits)} digits', field=name, allowed=f'{lo}-{hi}')
    value = int(digits)     # str.strip() takes more than int() would skip ('0\x1f')
    if not lo <= value <= hi:
        raise ApiError(400, f'{name} must be from {lo} to {hi}, not {value}', field=name,
                       allowed=f'{lo}-{hi}')
    return value


def json_body(schema, limit=MAX_BODY_BYTES):
    """The request's JSON body, validated against `schema`, or an ApiError naming the problem."""
    request = bottle.request
    length = request.content_length
    if length > limit:
        raise ApiError(413, f'the body is {length} bytes; at most {limit} are accepted',
                       allowed=f'<= {limit} bytes')
    raw = request.body.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, f'the body is over {limit} bytes', allowed=f'<= {limit} bytes')
    if not raw.strip():
        raw = b'{}'
    elif 'json' not in (request.content_type or ''):
        raise ApiError(415, f'send the body as JSON (Content-Type: application/json), not '
                            f'{request.content_type or "no content type"}',
                       allowed='application/json')
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f'the body is not valid JSON: {exc}', field='(body)') from None
    except RecursionError:
        raise ApiError(400, 'the body is nested too deeply to be a request', field='(body)') from None
    return conform(schema, value)


def conform(schema, value, field=''):
    """`value` when it fits `schema`, else a 400 naming the field, the problem and what is allowed."""
    try:
        return validate(schema, value, field)
    except SchemaError as exc:
        raise ApiError(400, f'{exc.field} {exc.problem}', field=exc.field,
                       allowed=exc.allowed) from None


def _refuse_constant(name):
    # Python's json reads NaN and Infinity, which are not JSON and slip past range checks.
    raise ValueError(f'{name} is not a number JSON allows')


# -- the edge ---------------------------------------------------------------------------
class HostNames:
    """The names and addresses this service answers to. Anything else is a DNS-rebinding
    attempt (a hostile page's name resolving to us) and gets 421."""

    def __init__(self, extra=()):
        host = socket.gethostname()
        self.names = {'localhost', host.lower(), f'{host.lower()}.local', *(n.lower() for n in extra)}
        self._addresses = {}

    def _is_ours(self, address):
        if address not in self._addresses:
            if len(self._addresses) > 256:
                self._addresses.clear()
            try:
                ip = ipaddress.ip_address(address)
                with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET) as s:
                    s.bind((address, 0))   # bindable means it is one of this machine's addresses
                self._addresses[address] = True
            except (ValueError, OSError):
                self._addresses[address] = False
        return self._addresses[address]

    def allows(self, host_header):
        host = host_header.strip().lower()
        if host.startswith('['):
            host = host[1:host.find(']')]
        elif host.count(':') == 1:
            host = host.split(':')[0]
        return host in self.names or self._is_ours(host)


def _without_default_port(netloc):
    netloc = netloc.strip().lower()
    return netloc[:-3] if netloc.endswith(':80') else netloc


CLIENT_HEADER = 'X-Jafflr-Client'
_BROWSER_HEADERS = ('HTTP_ORIGIN', 'HTTP_REFERER', 'HTTP_UPGRADE_INSECURE_REQUESTS',
                    'HTTP_SEC_CH_UA')


def browser_signs(environ):
    """What makes this request look like it came from a web browser (a list of reasons;
    empty for curl, wget, Python and the like). A browser on a plain-http LAN page sends
    no fetch metadata and may send no Origin or Referer, but always a browser
    User-Agent (they all start `Mozilla/`)."""
    signs = []
    if 'mozilla/' in environ.get('HTTP_USER_AGENT', '').lower():
        signs.append('a browser User-Agent')
    signs += [k[5:].replace('_', '-').title() for k in _BROWSER_HEADERS if k in environ]
    signs += [k[5:].replace('_', '-').title() for k in environ if k.startswith('HTTP_SEC_FETCH_')]
    if 'text/html' in environ.get('HTTP_ACCEPT', ''):
        signs.append('Accept: text/html')
    return signs


def cross_site_refusal(environ):
    """None when a state-changing request may go on, else (message, code).

    A web page on another site can make a browser send navigations, <img>/<script>
    loads, form GETs and POSTs and no-cors fetches, but never with a custom header: that
    needs a CORS preflight, which we never grant. So a request that looks like it comes
    from a browser must carry X-Jafflr-Client (the panel always sends it), and an Origin or
    Referer, when present, must be this very origin. curl and scripts send neither and
    need nothing."""
    site = environ.get('HTTP_SEC_FETCH_SITE')
    if site is not None and site not in ('same-origin', 'none'):
        return (f'refused: another site asked your browser to make this request '
                f'(Sec-Fetch-Site: {site})'), 'cross-site'
    host = _without_default_port(environ.get('HTTP_HOST', ''))
    for header in ('HTTP_ORIGIN', 'HTTP_REFERER'):
        value = environ.get(header)
        # Same origin only: a page from another port of this machine (another service on
        # the Pi) is as foreign as any other site. 'null' is what sandboxed frames and
        # file: pages send: never our own origin.
        if value and (value == 'null' or _without_default_port(urlsplit(value).netloc) != host):
            return (f'refused: a page from {urlsplit(value).netloc or value} may not change '
                    f'this machine'), 'cross-site'
    signs = browser_signs(environ)
    if signs and not environ.get('HTTP_X_JAFFLR_CLIENT', '').strip():
        return (f'refused: this looks like a request from a web browser ({", ".join(signs)}), '
                f'which a page on another site can make your browser send. The kitchen panel '
                f'adds the header "{CLIENT_HEADER}: panel"; a script sending browser headers '
                f'must add "{CLIENT_HEADER}" too (curl needs nothing)'), 'browser-needs-client-header'
    return None


def client_address(environ=None):
    """The address of the connection this request came on (REMOTE_ADDR). bottle's
    remote_addr believes X-Forwarded-For, which any caller can write; the Edge takes it
    only from the service's own read replica (`trusted_forwarder_ports`)."""
    environ = bottle.request.environ if environ is None else environ
    return environ.get('jafflr.client') or environ.get('REMOTE_ADDR', '')


class Edge:
    def __init__(self, app, *, hostnames, state_changing_gets=(), v1_successors=None,
                 metrics=None, draining=None, max_body_bytes=MAX_BODY_BYTES,
                 trusted_forwarder_ports=()):
        self.app = app
        # Requests on these ports come from our own read replica, which passes the real
        # client's address in X-Forwarded-For; on any other port that header is ignored.
        self.trusted_forwarder_ports = frozenset(str(p) for p in trusted_forwarder_ports)
        self.hostnames = hostnames
        self.state_changing_gets = frozenset(state_changing_gets)
        self.v1_successors = v1_successors or {}
        self.metrics = metrics
        self.draining = draining
        self.max_body_bytes = max_body_bytes

    def _refuse(self, environ, start_response, status, message, code):
        ctype, body = error_payload(status, message, code=code, as_json=wants_json(environ))
        headers = [('Content-Type', ctype), ('Content-Length', str(len(body)))]
        if code == 'browser-needs-client-header':
            headers.append(('Vary', CLIENT_HEADER))
        start_response(f'{status} {bottle.HTTP_CODES[status]}', headers)
        return [body]

    def _check(self, environ):
        """None when the request may go on, else (status, message, code)."""
        if not self.hostnames.allows(environ.get('HTTP_HOST', '')):
            return 421, (f'this service does not answer to the name '
                         f'{environ.get("HTTP_HOST", "")!r}'), 'misdirected-request'
        version = environ.get('HTTP_API_VERSION')
        if version is not None and version.strip() not in API_VERSIONS:
            return 400, (f'API-Version must be one of {", ".join(API_VERSIONS)}, not '
                         f'{version!r}'), 'bad-api-version'
        method = environ['REQUEST_METHOD']
        if method not in SAFE_METHODS or environ['PATH_INFO'] in self.state_changing_gets:
            refusal = cross_site_refusal(environ)
            if refusal:
                return 403, refusal[0], refusal[1]
        try:
            length = int(environ.get('CONTENT_LENGTH') or 0)
        except ValueError:
            return 400, 'Content-Length is not a number', 'bad-content-length'
        if length > self.max_body_bytes:
            return 413, (f'the body is {length} bytes; at most {self.max_body_bytes} are '
                         f'accepted'), 'body-too-large'
        return None

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        path = environ.get('PATH_INFO', '')
        environ['jafflr.path'] = path          # as sent: admin signatures cover it
        forwarded = environ.get('HTTP_X_FORWARDED_FOR')
        if forwarded and environ.get('SERVER_PORT') in self.trusted_forwarder_ports:
            environ['jafflr.client'] = forwarded.split(',')[-1].strip()
        if (environ.get('HTTP_API_VERSION') or '').strip() == '2' and \
                not path.startswith(('/v2/', '/v1/')):
            environ['PATH_INFO'] = path = '/v2' + path if path != '/' else '/v2/'
        refusal = self._check(environ)
        extra = []
        # While draining, keep-alive connections are closed by the server once their
        # answer is out (HttpService._close_idle). A WSGI app may not send `Connection`
        # itself: waitress refuses hop-by-hop headers, turning every answer into a 500.
        successor = self.v1_successors.get(path)
        if successor:
            extra += [('Deprecation', '@1767225600'),
                      ('Link', f'<{successor}>; rel="successor-version"')]
        status_seen = []

        def respond(status, headers, exc_info=None):
            status_seen.append(status)
            if not any(k.lower() == 'x-content-type-options' for k, _ in headers):
                headers = headers + [('X-Content-Type-Options', 'nosniff')]
            return start_response(status, headers + extra, exc_info)
        try:
            if refusal:
                return self._refuse(environ, respond, *refusal)
            return self.app(environ, respond)
        finally:
            if self.metrics is not None and status_seen:
                route = environ.get('bottle.route')
                method = environ['REQUEST_METHOD']
                self.metrics.observe_request(method if method in KNOWN_METHODS else 'other',
                                             route.rule if route else 'unmatched',
                                             status_seen[0][:3], time.perf_counter() - started)
