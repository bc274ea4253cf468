"""The edge's cross-site rule for state-changing requests, in process: a request that looks
like it came from a browser needs the panel's X-Jafflr-Client header and, if it has an
Origin or Referer, this very origin; curl and scripts need nothing. Also the headers
every answer carries and whose address is believed."""
import io

import pytest

from api.common.web import Edge, HostNames, client_address

CHROME = ('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) '
          'Chrome/120.0.0.0 Safari/537.36')
NAVIGATION = {'user_agent': CHROME, 'upgrade_insecure_requests': '1',
              'accept': 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'}
PANEL = {'user_agent': CHROME, 'x_jafflr_client': 'panel', 'accept': 'application/json'}


def _app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [client_address(environ).encode()]


def _call(method='GET', path='/toastie', port='7000', trusted=(), **headers):
    edge = Edge(_app, hostnames=HostNames(['jafflr.local']), state_changing_gets={'/toastie'},
                trusted_forwarder_ports=trusted)
    environ = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'QUERY_STRING': '',
               'HTTP_HOST': 'jafflr.local', 'wsgi.input': io.BytesIO(), 'SERVER_PORT': port,
               'REMOTE_ADDR': '192.168.1.20'}
    environ.update({f'HTTP_{k.upper()}': v for k, v in headers.items()})
    seen = []
    body = b''.join(edge(environ, lambda status, hdrs, exc=None: seen.append((status, hdrs))))
    status, hdrs = seen[0]
    return int(status[:3]), dict(hdrs), body


def _status(**headers):
    return _call(**headers)[0]


@pytest.mark.parametrize('headers, status', [
    ({}, 200),                                                       # curl, wget, python
    ({'user_agent': 'curl/7.88.1', 'accept': '*/*'}, 200),
    ({'user_agent': 'python-requests/2.31'}, 200),
    ({**PANEL, 'origin': 'http://jafflr.local'}, 200),               # its own panel
    ({**PANEL, 'origin': 'http://jafflr.local:80', 'host': 'jafflr.local'}, 200),
    ({**PANEL, 'referer': 'http://jafflr.local/'}, 200),
    ({**PANEL}, 200),                      # plain-http LAN: a browser may send no Origin
    ({**PANEL, 'origin': 'http://jafflr.local:8080'}, 403),          # another service on the Pi
    ({**PANEL, 'referer': 'http://jafflr.local:7001/'}, 403),
    ({**PANEL, 'origin': 'http://printer.local'}, 403),
    ({**PANEL, 'origin': 'null'}, 403),
    ({'sec_fetch_site': 'cross-site', 'x_jafflr_client': 'x'}, 403),
    ({'sec_fetch_site': 'same-site', 'x_jafflr_client': 'x'}, 403),
    # What a page on another site can make a browser send to a plain-http LAN host:
    (NAVIGATION, 403),                                               # a link, a typed URL
    ({'user_agent': CHROME, 'accept': 'image/avif,image/webp,*/*'}, 403),     # <img>
    ({'user_agent': CHROME, 'accept': '*/*'}, 403),                  # <script>, no-cors fetch
    ({'user_agent': CHROME, 'origin': 'http://jafflr.local'}, 403),  # no panel header
    ({'referer': 'http://jafflr.local/'}, 403),                      # a browser with no UA
    ({'sec_fetch_site': 'same-origin'}, 403),
    ({'upgrade_insecure_requests': '1'}, 403),
    ({'accept': 'text/html'}, 403),
])
def test_edge_state_changing_requests_from_a_browser_need_the_panel_header(headers, status):
    assert _status(**headers) == status


@pytest.mark.parametrize('method, path', [('POST', '/v2/stop'), ('POST', '/v2/toasties'),
                                          ('PUT', '/v2/flags/x'), ('GET', '/toastie')])
def test_edge_browser_refusal_says_why_and_which_header_to_add(method, path):
    status, headers, body = _call(method, path, **NAVIGATION)
    assert status == 403
    assert b'X-Jafflr-Client' in body and b'browser User-Agent' in body
    assert headers['X-Content-Type-Options'] == 'nosniff'


def test_edge_reads_are_not_checked():
    assert _call('GET', '/v2/status', **NAVIGATION)[0] == 200
    assert _call('GET', '/', **NAVIGATION)[0] == 200


def test_edge_every_answer_is_nosniff():
    status, headers, _ = _call('GET', '/v2/status')
    assert status == 200 and headers['X-Content-Type-Options'] == 'nosniff'
    status, headers, _ = _call('GET', '/', host='evil.example')
    assert status == 421 and headers['X-Content-Type-Options'] == 'nosniff'


def test_edge_believes_x_forwarded_for_only_from_the_replicas_port():
    assert _call('GET', '/v2/status', x_forwarded_for='127.0.0.1')[2] == b'192.168.1.20'
    assert _call('GET', '/v2/status', port='7001', trusted=[45678],
                 x_forwarded_for='127.0.0.1')[2] == b'192.168.1.20'
    assert _call('GET', '/v2/status', port='45678', trusted=[45678],
                 x_forwarded_for='192.168.1.33')[2] == b'192.168.1.33'
