"""A test double: a stand-in for the ORIGINAL chillybin of toasties-galore (Go), which only
speaks v1. It is not the real service and knows nothing of load cells, reservations or
food safety: in-memory counters, as the Go service kept them.

    GET /                         the flat JSON map {"bread":10,"cheese":10,"vegemite":10}
    GET /pick?name=X&quantity=N   200 "ok" (takes N of X; 400 if there are not enough)
    GET /restock                  sets bread, cheese and vegemite to 10 each; 200 "ok"
    GET /health                   200 and the version string
    anything else                 404 text

It lets the tests check that a jafflr with the pick-v2 flag on fails clearly against a
chillybin that only speaks v1, and takes nothing; and that with the flag off it uses one
v1 /pick per ingredient. `picks` lists every pick it answered, for the tests to read at
GET /test/picks (a test hook the Go service did not have; everything else is as it was).

    python -m tests.support.original_chillybin --port P
"""
import argparse
import json
import threading
from urllib.parse import parse_qs

import waitress

VERSION = 'toasties-galore chillybin 1.0 (test double)'
INGREDIENTS = ('bread', 'cheese', 'vegemite')


class OriginalChillybin:
    def __init__(self):
        self.lock = threading.Lock()
        self.stock = dict.fromkeys(INGREDIENTS, 10)
        self.picks = []
        self.requests = []

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO', '')
        query = parse_qs(environ.get('QUERY_STRING', ''))
        with self.lock:
            self.requests.append(f'{environ["REQUEST_METHOD"]} {path}')
            status, ctype, body = self.answer(path, query)
        payload = body.encode()
        start_response(status, [('Content-Type', ctype), ('Content-Length', str(len(payload)))])
        return [payload]

    def answer(self, path, query):
        text = 'text/plain; charset=utf-8'
        if path == '/':
            return '200 OK', 'application/json', json.dumps(self.stock)
        if path == '/health':
            return '200 OK', text, VERSION
        if path == '/restock':
            self.stock = dict.fromkeys(INGREDIENTS, 10)
            return '200 OK', text, 'ok'
        if path == '/pick':
            name = query.get('name', [''])[0]
            try:
                quantity = int(query.get('quantity', ['1'])[0])
            except ValueError:
                return '400 Bad Request', text, 'bad quantity'
            if self.stock.get(name, 0) < quantity:
                return '400 Bad Request', text, f'not enough {name}'
            self.stock[name] -= quantity
            self.picks.append([name, quantity])
            return '200 OK', text, 'ok'
        if path == '/test/picks':
            return '200 OK', 'application/json', json.dumps({'picks': self.picks,
                                                             'requests': self.requests})
        return '404 Not Found', text, '404 page not found'


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m tests.support.original_chillybin')
    parser.add_argument('--port', type=int, required=True)
    args = parser.parse_args(argv)
    waitress.serve(OriginalChillybin(), host='127.0.0.1', port=args.port, threads=4,
                   ident='original-chillybin')


if __name__ == '__main__':
    main()
