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


@pytest.mark.parametrize('answer, says', [
    # chillybin killed while sending its answer: the headers promise more than comes
    (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 243\r\n\r\n',
     'IncompleteRead'),
    (b'SSH-2.0-not-http\r\n', 'BadStatusLine'),
], ids=['cut-off', 'not-http'])
def test_stock_client_an_answer_cut_off_is_unavailable_not_a_crash(answer, says):
    """Seen in the kill -9 campaign: jafflr's assembler asked for its reservation as
    chillybin was killed, read half an answer, and http.client's IncompleteRead (not an
    OSError) ended the assembler's thread: a false control-error. It is Unavailable, which
    the assembler takes as 'look again at the next poll'."""
    import socket
    from firmware.errors import Unavailable
    server = socket.create_server(('127.0.0.1', 0))
    asked = []

    def serve():
        conn, _ = server.accept()
        asked.append(conn.recv(65536))
        conn.sendall(answer)
        conn.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = ChillybinClient(f'http://127.0.0.1:{server.getsockname()[1]}', {}, {})
        with pytest.raises(Unavailable, match=says):
            client.reservation('r1')
        thread.join(5)
        assert asked and asked[0].startswith(b'GET /v2/reservations/r1 ')
    finally:
        server.close()
