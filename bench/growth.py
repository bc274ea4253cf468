"""Cost as the work grows: pick (reservation) latency at chillybin and order latency at
jafflr with 10, 1 000 and 100 000 past orders, reservations and events in storage.

The history is written with the services' own storage classes, as a long life would
leave it: events and finished orders in the rotated journals, closed reservations in
chillybin's database (its start prunes them to the newest 2000, as it does every minute
in service). Target: flat, the 100 000 case within 1.5x of the 10 case.
"""
import http.client
import json
import time

from tinydb.table import Document

from hardware.board import default_bays
from firmware.binstore import BinStore
from firmware.orderbook import Order
from firmware.jafflrstore import OrderStore
from firmware.reservations import Reservation

from .loadgen import percentile
from api.launcher import Launcher

SIZES = (10, 1_000, 100_000)
SAMPLES = 300


def seed(state_dir, n, wall=1_700_000_000.0):
    bins = BinStore(state_dir, default_bays(), fsync=False, now_wall=wall)
    bins.db.table('reservations').insert_multiple(
        Document(Reservation(f'r{i}', {'cheese': 1}, wall - 60 - i, wall, state='taken',
                             taken={'cheese': 1}, closed_at=wall - 60 - i).to_dict(), doc_id=i)
        for i in range(1, n + 1))
    bins.set_meta(next_reservation=n + 1)
    for i in range(n):
        bins.events.append({'wall': wall - i, 'kind': 'taken', 'bay': 'cheese', 'units': 1,
                            'reservation': f'r{i}'})
    bins.close()
    orders = OrderStore(state_dir, fsync=False, now_wall=wall)
    for i in range(1, n + 1):
        order = Order(f't{i}', ['cheese'], 'medium', wall - 3600 - i, state='done',
                      finished_at=wall - 3600 - i)
        orders.archive.append({'kind': 'order', **order.to_dict()})
        orders.events.append({'wall': wall - i, 'kind': 'order', 'order': order.id})
    orders.set_meta(next_order=n + 1)
    orders.close()


def _post(conn, path, body=None, headers=None):
    started = time.perf_counter()
    conn.request('POST', path, json.dumps(body or {}), {'Content-Type': 'application/json',
                                                       **(headers or {})})
    response = conn.getresponse()
    data = json.loads(response.read())
    return time.perf_counter() - started, response.status, data


def measure_one(n):
    import tempfile
    with tempfile.TemporaryDirectory() as state:
        seed(state, n)
        with Launcher(state, speed=1.0) as stack:
            cb = http.client.HTTPConnection('127.0.0.1', stack['chillybin'].port, timeout=10)
            picks = []
            for _ in range(SAMPLES):
                took, status, r = _post(cb, '/v2/reservations', {'items': {'cheese': 1}})
                assert status == 201, r
                picks.append(took)
                _post(cb, f'/v2/reservations/{r["id"]}/cancel')
            jf = http.client.HTTPConnection('127.0.0.1', stack['jafflr'].port, timeout=10)
            _post(jf, '/v2/queue/pause', headers={'Authorization': f'Bearer {stack.token()}'})
            orders = []
            for _ in range(SAMPLES):
                took, status, o = _post(jf, '/v2/toasties', {'ingredients': ['cheese']})
                assert status == 202, o
                orders.append(took)
                _post(jf, f'/v2/toasties/{o["id"]}/cancel',
                      headers={'Order-Secret': o['cancel_secret']})
    ms = lambda values, q: round(percentile(values, q) * 1000, 2)
    return {'stored': n, 'pick_p50_ms': ms(picks, 0.5), 'pick_p99_ms': ms(picks, 0.99),
            'order_p50_ms': ms(orders, 0.5), 'order_p99_ms': ms(orders, 0.99)}


def measure():
    return [measure_one(n) for n in SIZES]


def verdicts(results):
    small, large = results[0], results[-1]
    return [(f'pick latency flat to {large["stored"]:,} stored (p50 within 1.5x)',
             large['pick_p50_ms'] <= 1.5 * small['pick_p50_ms'],
             f'{small["pick_p50_ms"]:.2f} -> {large["pick_p50_ms"]:.2f} ms'),
            (f'order latency flat to {large["stored"]:,} stored (p50 within 1.5x)',
             large['order_p50_ms'] <= 1.5 * small['order_p50_ms'],
             f'{small["order_p50_ms"]:.2f} -> {large["order_p50_ms"]:.2f} ms')]
