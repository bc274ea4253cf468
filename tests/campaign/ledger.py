"""What the concurrency and crash parts share: every answer a client got, checked against
the OpenAPI documents; a watch on chillybin's stock; every order read back; and the
units that left the simulated bays set against what orders and reservations booked."""
import collections
import glob
import json
import os
import re
import threading
import time

from .procs import request

JSON = {'Accept': 'application/json'}


class Answers:
    """Every answer the clients got, thread-safe. A non-2xx must be a status the
    operation documents and carry an error body with a code and a message."""

    def __init__(self, machine):
        self.lock = threading.Lock()
        self.seen = collections.Counter()           # (service, op, status, code)
        self.unexplained = []                       # (service, op, status, body)
        self.no_answer = collections.Counter()      # (service, op) -> OSError count
        self.documented = {s: _documented(machine, s) for s in ('chillybin', 'jafflr')}

    def record(self, service, method, path, answer):
        op = f'{method} {_template(path)}'
        code = answer.error.get('code', '') if answer.status >= 300 else ''
        with self.lock:
            self.seen[(service, op, answer.status, code)] += 1
            if answer.status < 300:
                return
            allowed = self.documented[service].get(op, set())
            error = answer.error
            if (str(answer.status) not in allowed or not error.get('message')
                    or not error.get('code') or answer.status >= 500 and not code):
                self.unexplained.append((service, op, answer.status, answer.body[:300]))

    def lost(self, service, method, path):
        with self.lock:
            self.no_answer[(service, f'{method} {_template(path)}')] += 1

    def refusals(self):
        """'service op status code' -> count, for the report."""
        return {f'{s} {op} {st} {code}'.rstrip(): n for (s, op, st, code), n
                in sorted(self.seen.items()) if st >= 300}

    def successes(self):
        return {f'{s} {op} {st}': n for (s, op, st, _), n in sorted(self.seen.items()) if st < 300}


def _template(path):
    path = path.split('?')[0]
    path = re.sub(r'^/v2/toasties/[^/]+', '/v2/toasties/{oid}', path)
    return re.sub(r'^/v2/reservations/[^/]+', '/v2/reservations/{rid}', path)


def _documented(machine, service):
    doc = machine.http(service, 'GET', '/v2/openapi.json').json
    return {f'{method.upper()} {path}': {s for s in op.get('responses', {}) if s.isdigit()}
            for path, ops in doc['paths'].items() for method, op in ops.items()}


class StockWatch:
    """Polls chillybin's stock in a thread: units, reserved and available must never be
    negative (nor missing while the load cells read), v1's flat map neither."""

    def __init__(self, machine, every_s=0.1):
        self.machine = machine
        self.every_s = every_s
        self.polls = 0
        self.unreachable = 0
        self.negative = []
        self.lowest = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='stock-watch', daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self):
        while not self._stop.wait(self.every_s):
            try:
                v2 = self.machine.http('chillybin', 'GET', '/v2/stock', headers=JSON, timeout=5)
                v1 = self.machine.http('chillybin', 'GET', '/', timeout=5)
            except OSError:
                self.unreachable += 1       # being restarted (the crash part)
                continue
            if v2.status != 200 or v1.status != 200:
                self.unreachable += 1
                continue
            self.polls += 1
            for bay in v2.json['bays']:
                for field in ('units', 'reserved', 'available'):
                    value = bay[field]
                    if value is not None:
                        key = f'{bay["name"]}.{field}'
                        self.lowest[key] = min(self.lowest.get(key, value), value)
                    if value is not None and value < 0:
                        self.negative.append((time.monotonic(), bay['name'], field, value))
            for name, value in v1.json.items():
                if value < 0:
                    self.negative.append((time.monotonic(), name, 'v1', value))


def all_orders(machine):
    """Every order jafflr made, t1 upwards (archived ones too), as the v2 API shows it."""
    orders = []
    while True:
        answer = machine.http('jafflr', 'GET', f'/v2/toasties/t{len(orders) + 1}', headers=JSON)
        if answer.status == 404:
            return orders
        assert answer.status == 200, answer
        orders.append(answer.json)


def reservation(machine, rid):
    answer = machine.http('chillybin', 'GET', f'/v2/reservations/{rid}', headers=JSON)
    assert answer.status == 200, (rid, answer)
    return answer.json


def all_reservations(machine):
    """Every reservation chillybin made (r1 upwards; v1 picks are p<n> and not used here)."""
    found = []
    while True:
        answer = machine.http('chillybin', 'GET', f'/v2/reservations/r{len(found) + 1}',
                              headers=JSON)
        if answer.status == 404:
            return found
        assert answer.status == 200, answer
        found.append(answer.json)


def order_units(order):
    """The units an order took out of the bays, by its own record: all it needed when it
    was made, else what reached the tray (jafflr's count), else what chillybin saw leave
    the bays for it (`left_bays`, noted when its reservation was given back)."""
    stock = order.get('stock') or {}
    if order['state'] == 'done':
        return dict(stock.get('taken') or {})
    dropped = dict(stock.get('dropped') or {})
    for name, units in (stock.get('left_bays') or {}).items():
        dropped[name] = max(dropped.get(name, 0), units)
    return dropped


def add(total, units):
    for name, count in units.items():
        total[name] = total.get(name, 0) + count
    return total


def world_drops(status):
    """Units each ingredient's dispenser has dropped since the simulator started."""
    drops = {}
    for bay in status['bays']:
        if bay['ingredient']:
            drops[bay['ingredient']] = drops.get(bay['ingredient'], 0) + bay['drops']
    return drops


def difference(after, before):
    return {n: after.get(n, 0) - before.get(n, 0) for n in set(after) | set(before)
            if after.get(n, 0) - before.get(n, 0)}


def chillybin_journal(state_dir, kind):
    """Every record of `kind` in chillybin's event journal, oldest first, read from its
    files (the API shows only the newest few hundred)."""
    found = []
    paths = glob.glob(os.path.join(state_dir, 'chillybin-history', 'events.jsonl*'))
    for path in paths:
        with open(path, encoding='utf-8') as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue        # a line torn by a kill
                if record.get('kind') == kind:
                    found.append(record)
    return sorted(found, key=lambda r: r.get('seq', 0))
