"""Plain HTTP to a service the tests started (api/launcher.py starts them): one request on
its own connection, and its answer.

    answer = request(jafflr.port, 'POST', '/v2/toasties', {'ingredients': ['cheese']})
    answer.status, answer.headers['location'], answer.json()
"""
import http.client
import json


class Answer:
    """One HTTP answer: status, headers (lower-case names), raw body, and json()."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    @property
    def text(self):
        return self.body.decode(errors='replace')

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f'<{self.status} {self.text[:300]!r}>'


def request(port, method, path, body=None, headers=None, timeout=30.0):
    headers = dict(headers or {})
    payload = body
    if body is not None and not isinstance(body, (bytes, str)):
        payload = json.dumps(body).encode()
        headers.setdefault('Content-Type', 'application/json')
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        conn.request(method, path, payload, headers)
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()
