"""Fake chillybin for the systemd tests (see tests/systemd/fake_services/README.md)."""
import sys

from ..fake_service import State, serve

stock = State('fake-chillybin.json', {'bread': 10, 'cheese': 10, 'vegemite': 10})


def restock(query, headers):
    with stock.lock:
        stock.data.update(bread=10, cheese=10, vegemite=10)
        stock.save()
    return 200, 'ok'


def pick(query, headers):
    name, quantity = query.get('name', [''])[0], int(query.get('quantity', ['1'])[0])
    with stock.lock:
        if stock.data.get(name, 0) < quantity:
            return 409, f'not enough {name}'
        stock.data[name] -= quantity
        stock.save()
    return 200, 'ok'


ROUTES = {
    ('GET', '/'): lambda q, h: (200, stock.data),
    ('GET', '/restock'): restock,
    ('GET', '/pick'): pick,
    ('GET', '/v2/ready'): lambda q, h: (200, {'ready': True, 'checks': {}}),
}

sys.exit(serve('chillybin', ROUTES, 7001))
