"""Part 3: kill -9 each service at random moments, many times, during orders and writes.

Drivers keep ordering light toasties at jafflr, holding stock at chillybin (both with
idempotency keys, retried with the same key while a service is down) and topping up
the bays (admin restock), and record every acknowledged (2xx) answer. At seeded random
moments chillybin or jafflr is killed with SIGKILL and started again. After each start:
the service started (its storage loaded: a failed start fails the test), every order
jafflr acknowledged is still there with a state, every reservation chillybin
acknowledged too. A killed jafflr comes back held (unclean-start, or the fault it had,
kept). A person resets a latched fault when one is seen (a killed chillybin during a
dispense latches one by design), as they would at the machine: the reset button held
first for a fault that needs them there (the admin reset alone is refused), then the
admin reset.

At the end, once the machine settles: every order is done, or failed or cancelled with a
reason, none left half-done; every unit that left a bay belongs to one order (as in the
concurrency part), and chillybin booked every fall it saw to a reservation (its journal
has no `removal`); nothing acknowledged was lost.

A random kill only sometimes lands in a narrow window, so the one that found a bug is also
made on purpose: `test_kill_9_with_a_reservation_in_flight_...` kills jafflr the moment
chillybin answers its reservation (a proxy between them holds the answer back).
"""
import os
import random
import socket
import threading
import time
import uuid

from api.launcher import free_port

from .ledger import JSON, Answers, StockWatch, add, all_orders, chillybin_journal, difference, \
    order_units, reservation, world_drops
from .procs import Machine, send_and_drop
from .report import report, sizes

# x10 by default, as tests/api: x20 was chosen when the machine looked idle at import, and
# 50 clients then starved the control loop past the heartbeat's 50 real ms (a dispenser
# stopped by its enable, failed as jammed: seen on a quiet machine, 2026-11-30).
SPEED = float(os.environ.get('JAFFLR_TEST_SPEED') or 10)
FINISHED = ('done', 'failed', 'cancelled')


class Acks:
    """Every acknowledged write, by kind: key -> id (orders, holds), and restocks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.orders = {}
        self.holds = {}
        self.restocks = 0
        self.two_ids = []

    def add(self, kind, key, rid):
        with self.lock:
            table = self.orders if kind == 'order' else self.holds
            if table.setdefault(key, rid) != rid:
                self.two_ids.append((kind, key, table[key], rid))

    def snapshot(self):
        with self.lock:
            return dict(self.orders), dict(self.holds)


class Driver:
    """One driver thread: each write with a key, retried with it until it is answered
    (the service may be down for a second or two)."""

    def __init__(self, machine, answers, acks, rng, stop, size):
        self.m, self.answers, self.acks, self.rng, self.stop = machine, answers, acks, rng, stop
        self.size = size
        self.unanswered = 0

    def send(self, kind, service, path, body, key):
        headers = {**JSON, 'Idempotency-Key': key}
        if self.rng.random() < 0.1:
            try:
                send_and_drop(self.m.ports[service], 'POST', path, body, headers)
            except OSError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                answer = self.m.http(service, 'POST', path, body, headers, timeout=20)
            except OSError:
                self.answers.lost(service, 'POST', path)
                time.sleep(0.3)
                continue
            self.answers.record(service, 'POST', path, answer)
            if answer.status < 300:
                self.acks.add(kind, key, answer.json['id'])
                return answer
            if answer.status != 503:
                return answer
            time.sleep(self.rng.uniform(0.3, 1.0))
        self.unanswered += 1
        return None

    def order(self):
        key = f'o-{uuid.uuid4().hex[:12]}'
        fillings = self.rng.sample(['vegemite'], self.rng.randint(0, 1))
        self.send('order', 'jafflr', '/v2/toasties',
                  {'ingredients': ['cheese', *fillings], 'doneness': 'light', 'name': key}, key)

    def hold(self):
        key = f'h-{uuid.uuid4().hex[:12]}'
        self.send('hold', 'chillybin', '/v2/reservations',
                  {'items': {self.rng.choice(['cheese', 'vegemite']): 1}, 'ttl_s': 20}, key)

    def restock_if_low(self):
        """A person tops the bays up between toasties when they run low."""
        try:
            stock = {b['name']: b for b in self.m.http('chillybin', 'GET', '/v2/stock',
                                                       headers=JSON, timeout=5).json['bays']}
            state = self.m.http('jafflr', 'GET', '/v2/status', headers=JSON, timeout=5).json['state']
        except (OSError, ValueError, KeyError):
            return
        low = {n: self.size['stock'][n] for n, b in stock.items()
               if n in self.size['stock'] and (b['units'] or 0) < 6}
        if not low or state not in ('available', 'preheating', 'paused'):
            return
        try:
            answer = self.m.http('chillybin', 'POST', '/v2/restock',
                                 {'items': low, 'replaced': False}, {**JSON, **self.m.admin()})
        except OSError:
            return
        self.answers.record('chillybin', 'POST', '/v2/restock', answer)
        if answer.status == 200:
            with self.acks.lock:
                self.acks.restocks += 1

    def run(self, role):
        while not self.stop.is_set():
            if role == 'orders':
                most = self.size.get('max_orders')
                if most is None or len(self.acks.snapshot()[0]) < most:
                    self.order()
            else:
                self.hold() if self.rng.random() < 0.7 else self.restock_if_low()
            self.stop.wait(self.rng.uniform(0.2, self.size['pause_s']))


def check_acknowledged(machine, acks):
    """Every acknowledged order and hold is still there, with a state. Returns the lost."""
    orders, holds = acks.snapshot()
    lost = []
    for key, oid in orders.items():
        answer = machine.http('jafflr', 'GET', f'/v2/toasties/{oid}', headers=JSON)
        if answer.status != 200 or not answer.json.get('state') or answer.json.get('name') != key:
            lost.append(('order', key, oid, answer.status))
    for key, rid in holds.items():
        answer = machine.http('chillybin', 'GET', f'/v2/reservations/{rid}', headers=JSON)
        if answer.status != 200 or not answer.json.get('state'):
            lost.append(('hold', key, rid, answer.status))
    return lost


def reset_if_faulted(machine, resets):
    status = machine.http('jafflr', 'GET', '/v2/status', headers=JSON).json
    if status['fault'] is None:
        return
    if status['reset']['cleared_by'] == 'at-machine':
        refused = machine.http('jafflr', 'POST', '/v2/reset', {}, {**JSON, **machine.admin()})
        assert refused.status == 409 and refused.error['code'] == 'needs-reset-button', refused
        machine.sim('button', 'reset', '--hold', '3')
        machine.wait(lambda: machine.http('jafflr', 'GET', '/v2/status', headers=JSON)
                     .json['reset']['allowed'], 30, 'the reset button held')
    answer = machine.http('jafflr', 'POST', '/v2/reset', {}, {**JSON, **machine.admin()})
    assert answer.status == 200, answer
    reason = status['fault']['reason']
    resets[reason] = resets.get(reason, 0) + 1


def settle(machine, resets, timeout):
    def settled():
        reset_if_faulted(machine, resets)
        orders = all_orders(machine)
        status = machine.http('jafflr', 'GET', '/v2/status', headers=JSON).json
        idle = not status['busy'] and status['queue']['length'] == 0 and status['fault'] is None
        return idle and all(o['state'] in FINISHED for o in orders) and orders
    return machine.wait(settled, timeout, 'the machine settled with every order finished',
                        every=1.0)


# The short size stops ordering at 6 acknowledged orders: the kills still meet orders queued
# and in the press, and the machine is not left a queue of toasties to make at the end.
@sizes(short={'kills': 4, 'gap_s': (3.0, 5.0), 'pause_s': 2.5, 'order_drivers': 1,
              'max_orders': 6, 'stock': {'bread': 30, 'cheese': 20, 'vegemite': 20}},
       full={'kills': 40, 'gap_s': (2.0, 5.0), 'pause_s': 1.0, 'order_drivers': 2,
             'max_orders': None, 'stock': {'bread': 40, 'cheese': 25, 'vegemite': 25}})
def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path, size):
    started = time.monotonic()
    rng = random.Random(11)
    env = {'JAFFLR_DEADMAN_S': str(min(10.0, max(2.0, 0.4 * SPEED)))}
    kills = {'chillybin': 0, 'jafflr': 0}
    lost_after_restart = []
    busy_at_kill = []       # jafflr's status just before each of its kills
    restart_s = []
    resets = {}
    with Machine(str(tmp_path / 'state'), speed=SPEED, seed=5, env=env) as machine:
        restocked = machine.http('chillybin', 'POST', '/v2/restock', {'items': size['stock']},
                                 {**JSON, **machine.admin()})
        assert restocked.status == 200, restocked
        before = machine.status()
        answers = Answers(machine)
        acks = Acks()
        stop = threading.Event()
        roles = ['orders'] * size['order_drivers'] + ['holds']
        drivers = [Driver(machine, answers, acks, random.Random(100 + i), stop, size)
                   for i in range(len(roles))]
        threads = [threading.Thread(target=d.run, args=(role,), name=f'driver-{role}-{i}')
                   for i, (d, role) in enumerate(zip(drivers, roles))]
        with StockWatch(machine, every_s=0.2) as watch:
            for t in threads:
                t.start()
            try:
                for _ in range(size['kills']):
                    time.sleep(rng.uniform(*size['gap_s']))
                    victim = rng.choice(('chillybin', 'jafflr'))
                    if victim == 'jafflr':
                        busy_at_kill.append(machine.http('jafflr', 'GET', '/v2/status',
                                                         headers=JSON).json['busy'])
                    machine.kill9(victim)
                    kills[victim] += 1
                    began = time.monotonic()
                    machine.start_service(victim)     # storage loads, or this raises
                    restart_s.append(time.monotonic() - began)
                    if victim == 'jafflr':
                        held = machine.http('jafflr', 'GET', '/v2/status', headers=JSON).json
                        assert held['fault'] is not None and 'unclean-start' in (
                            [held['fault']['reason']] + held['later_faults']), held
                    lost_after_restart += check_acknowledged(machine, acks)
                    reset_if_faulted(machine, resets)
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
            orders = settle(machine, resets, 600)
            machine.wait(lambda: all(reservation(machine, rid)['state'] not in ('held', 'confirmed')
                                     for rid in acks.snapshot()[1].values()), 120,
                         'every hold closed', every=1.0)
        lost_at_end = check_acknowledged(machine, acks)
        after = machine.status()
        removals = chillybin_journal(machine['chillybin'].state_dir, 'removal')
        log = machine.log_text()

    acked_orders, acked_holds = acks.snapshot()
    drops = difference(world_drops(after), world_drops(before))
    booked = {}
    for o in orders:
        add(booked, order_units(o))
    states = {}
    for o in orders:
        label = o['state'] if o['state'] == 'done' else f"{o['state']}: {(o['failure'] or {}).get('reason')}"
        states[label] = states.get(label, 0) + 1
    half_done = [o['id'] for o in orders if o['state'] not in FINISHED]
    unexplained = [o['id'] for o in orders if o['state'] != 'done' and not (
        o['failure'] and o['failure'].get('reason') and o['failure'].get('detail'))]
    lost = lost_after_restart + lost_at_end
    seconds = round(time.monotonic() - started, 1)
    figures = {
        'size': size, 'speed': SPEED, 'seconds': seconds, 'kills': kills,
        'restart_s': {'max': round(max(restart_s), 2), 'mean': round(sum(restart_s) / len(restart_s), 2)},
        'acknowledged': {'orders': len(acked_orders), 'holds': len(acked_holds),
                         'restocks': acks.restocks},
        'lost': lost, 'replayed_with_another_id': acks.two_ids,
        'writes_given_up': sum(d.unanswered for d in drivers),
        'orders': len(orders), 'orders_by_state': states, 'faults_reset': resets,
        'jafflr_kills_while_busy': sum(busy_at_kill),
        'units_dropped': drops, 'units_booked_to_orders': booked,
        'falls_booked_to_no_reservation': removals,
        'negative_stock': watch.negative, 'stock_polls': watch.polls,
        'refusals': answers.refusals(), 'successes': answers.successes(),
        'no_answer': {' '.join(k): n for k, n in answers.no_answer.items()},
        'unexplained_refusals': answers.unexplained[:20],
    }
    lines = [
        f"kills: chillybin {kills['chillybin']}, jafflr {kills['jafflr']} in {seconds} s at "
        f"x{SPEED:g}; restart max {figures['restart_s']['max']} s",
        f"acknowledged: {len(acked_orders)} orders, {len(acked_holds)} holds, {acks.restocks} "
        f"restocks; lost {len(lost)}; given up {figures['writes_given_up']}",
        f"orders {len(orders)}: {states}; faults reset by a person {resets}; jafflr killed "
        f"busy {sum(busy_at_kill)} of {len(busy_at_kill)} times",
        f"units dropped {drops}; booked to orders {booked}; falls chillybin booked to no "
        f"reservation {len(removals)}",
        f"stock polls {watch.polls}, negative {len(watch.negative)}",
        f"refusals: {answers.refusals()}",
        f"requests with no answer (service down): {sum(answers.no_answer.values())}; "
        f"unexplained refusals {len(answers.unexplained)}",
    ]
    report(f'crashes-{size["name"]}', figures, lines)

    assert not lost, f'acknowledged writes lost: {lost[:10]}'
    assert not acks.two_ids, acks.two_ids[:10]
    assert not half_done, half_done
    assert not unexplained, unexplained
    assert not watch.negative, watch.negative[:10]
    assert drops == booked, f'units that left the bays {drops} != units orders booked {booked}'
    assert not removals, f'falls chillybin booked to no reservation: {removals[:10]}'
    assert not answers.unexplained, answers.unexplained[:10]
    assert acked_orders and sum(kills.values()) == size['kills']
    # The kills met work: at least one of jafflr's found it making a toastie.
    assert any(busy_at_kill), f'jafflr was never killed busy: {busy_at_kill}'
    assert 'Traceback' not in log, log[-4000:]


class ReplyCutter:
    """A proxy between jafflr and chillybin. Armed, it lets chillybin answer jafflr's next
    POST /v2/reservations (so chillybin has made the reservation) and, instead of passing
    the answer on, calls `cut()`: jafflr is killed with the request in flight."""

    def __init__(self):
        self.port = free_port()
        self.target = None
        self.cut = None
        self.armed = threading.Event()
        self.done = threading.Event()
        self._listener = socket.create_server(('127.0.0.1', self.port))
        threading.Thread(target=self._accept, name='reply-cutter', daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self._listener.accept()
            upstream = socket.create_connection(('127.0.0.1', self.target))
            asked = threading.Event()
            threading.Thread(target=self._pipe, args=(client, upstream, asked, True),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, asked, False),
                             daemon=True).start()

    def _pipe(self, src, dst, asked, up):
        try:
            while data := src.recv(65536):
                if up and self.armed.is_set() and data.startswith(b'POST /v2/reservations '):
                    asked.set()
                if not up and asked.is_set():
                    self.armed.clear()
                    self.cut()
                    self.done.set()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            src.close()
            dst.close()


def test_kill_9_with_a_reservation_in_flight_books_every_unit(tmp_path):
    """jafflr is killed after chillybin made a toastie's reservation, before the answer
    reached it (the long random campaign hit this twice in 40 kills: 2 of 118 bread booked
    to no order). Without the fix the reservation stayed held and unrecorded, chillybin
    booked the next toastie's first slice to it, and that toastie failed as a dispenser jam
    with the slice on its tray. Now the restart finds it by the order's key and gives it back."""
    cutter = ReplyCutter()
    env = {'JAFFLR_DEADMAN_S': str(min(10.0, max(2.0, 0.4 * SPEED)))}
    machine = Machine(str(tmp_path / 'state'), speed=SPEED, seed=5, env=env)
    resets = {}

    def order(name):
        return machine.http('jafflr', 'POST', '/v2/toasties', {'ingredients': ['cheese'],
                            'doneness': 'light', 'name': name}, {**JSON, 'Idempotency-Key': name})
    try:
        machine.start_sim()
        cutter.target = machine.start('chillybin').port
        # jafflr reaches chillybin through the cutter (kept on restart: same start).
        machine.start('jafflr', env={'CHILLYBIN_URL': f'http://127.0.0.1:{cutter.port}'})
        cutter.cut = lambda: machine.kill9('jafflr')
        restocked = machine.http('chillybin', 'POST', '/v2/restock', {'items': {
            'bread': 10, 'cheese': 10}}, {**JSON, **machine.admin()})
        assert restocked.status == 200, restocked
        before = machine.status()
        cutter.armed.set()
        try:        # killed as it reserves: the answer may or may not have left before
            order('cut-off')
        except OSError:
            pass
        assert cutter.done.wait(60), 'jafflr never asked chillybin for a reservation'
        machine.start_service('jafflr')
        held = machine.http('jafflr', 'GET', '/v2/status', headers=JSON).json
        assert held['fault']['reason'] == 'unclean-start', held
        reset_if_faulted(machine, resets)
        assert order('next').status == 202     # within the old reservation's 120 s
        orders = settle(machine, resets, 300)
        after = machine.status()
        removals = chillybin_journal(machine['chillybin'].state_dir, 'removal')
        cut_off, following = orders
        made = reservation(machine, cut_off['stock']['reservation']) \
            if 'reservation' in cut_off['stock'] else None
    finally:
        machine.close()
    booked = add(add({}, order_units(cut_off)), order_units(following))
    assert following['state'] == 'done', following
    assert difference(world_drops(after), world_drops(before)) == \
        {n: c for n, c in booked.items() if c} == {'bread': 2, 'cheese': 1}
    assert resets == {'unclean-start': 1}, resets
    assert cut_off['state'] == 'failed' and cut_off['failure']['reason'] == 'restarted', cut_off
    assert made and made['state'] == 'cancelled' and not any(made['taken'].values()), made
    assert cut_off['stock']['returned'] == {'bread': 2, 'cheese': 1}, cut_off
    assert not removals, removals
