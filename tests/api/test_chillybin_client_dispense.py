"""jafflr asks chillybin for reservations its dispensers take (`dispense`), so a client's
hold on the same bay is never booked the dispensed unit. A chillybin from before the
field refuses it by name (400, field `dispense`): jafflr asks again without it."""
import json
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from api.chillybin.schemas import RESERVATION_REQUEST
from api.common.schema import SchemaError, validate
from api.jafflr.chillybin_client import ChillybinClient
from firmware.errors import SensorFault

BEFORE_DISPENSE = {**RESERVATION_REQUEST, 'properties': {
    k: v for k, v in RESERVATION_REQUEST['properties'].items() if k != 'dispense'}}


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(params=['now', 'before-dispense'])
def chillybin(request):
    schema = RESERVATION_REQUEST if request.param == 'now' else BEFORE_DISPENSE
    bodies = []

    def app(environ, start_response):
        body = json.loads(environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0)))
        bodies.append(body)
        try:
            validate(schema, body)
        except SchemaError as exc:
            payload = {'error': {'status': 400, 'code': 'Bad Request', 'field': exc.field,
                                 'message': f'{exc.field} {exc.problem}'}}
            status = '400 Bad Request'
        else:
            payload = {'id': 'r1', 'kind': 'reservation', 'state': 'held', 'items': body['items'],
                       'taken': {}, 'created_at': 0.0, 'expires_at': 120.0}
            status = '201 Created'
        raw = json.dumps(payload).encode()
        start_response(status, [('Content-Type', 'application/json'),
                                ('Content-Length', str(len(raw)))])
        return [raw]

    server = make_server('127.0.0.1', 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield request.param, f'http://127.0.0.1:{server.server_port}', bodies
    finally:
        server.shutdown()
        server.server_close()


def test_stock_client_reserves_for_the_dispensers_and_falls_back_without(chillybin):
    which, url, bodies = chillybin
    client = ChillybinClient(url, {'bread': 0}, {'bread': 35.0})
    assert client.reserve({'bread': 2}, key='jafflr-t1-1.000')['id'] == 'r1'
    if which == 'now':
        assert bodies == [{'items': {'bread': 2}, 'dispense': True}]
    else:
        assert bodies == [{'items': {'bread': 2}, 'dispense': True}, {'items': {'bread': 2}}]


def test_stock_client_grams_names_an_unreadable_load_cell():
    client = ChillybinClient('http://127.0.0.1:9', {'bread': 0}, {'bread': 35.0})
    client.request = lambda method, path, *a: (200, {'name': 'bread', 'grams': 350.0, 'sensor': {
        'ok': False, 'error': 'TransferFailed: loadcell_0 (NAU7802 at 0x2A): read failed'}})
    with pytest.raises(SensorFault, match=r'the bread load cell cannot be read \(TransferFailed'):
        client.grams('bread')
    client.request = lambda method, path, *a: (200, {'grams': 350.0, 'sensor': {'ok': True}})
    assert client.grams('bread') == 350.0
