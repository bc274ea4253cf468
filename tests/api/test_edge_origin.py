"""The edge's same-origin rule for state-changing requests, in process."""
import io

import pytest

from api.common.web import Edge, HostNames


def _app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


def _status(**headers):
    edge = Edge(_app, hostnames=HostNames(['jafflr.local']), state_changing_gets={'/toastie'})
    environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/toastie', 'QUERY_STRING': '',
               'HTTP_HOST': 'jafflr.local', 'wsgi.input': io.BytesIO()}
    environ.update({f'HTTP_{k.upper()}': v for k, v in headers.items()})
    seen = []
    edge(environ, lambda status, hdrs, exc=None: seen.append(status))
    return int(seen[0][:3])


@pytest.mark.parametrize('headers, status', [
    ({}, 200),                                                       # curl
    ({'origin': 'http://jafflr.local'}, 200),                        # its own panel
    ({'origin': 'http://jafflr.local:80', 'host': 'jafflr.local'}, 200),
    ({'referer': 'http://jafflr.local/'}, 200),
    ({'origin': 'http://jafflr.local:8080'}, 403),                   # another service on the Pi
    ({'referer': 'http://jafflr.local:7001/'}, 403),
    ({'origin': 'http://printer.local'}, 403),
    ({'sec_fetch_site': 'cross-site'}, 403),
    ({'origin': 'null'}, 403),
])
def test_edge_state_changing_requests_are_same_origin_only(headers, status):
    assert _status(**headers) == status
