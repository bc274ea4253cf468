"""Fake jafflr for the systemd tests (see tests/systemd/fake_services/README.md)."""
import os
import sys
import threading
import time
import urllib.request

from ..fake_service import State, notify, serve

TOAST_S = 20.0   # simulated seconds with the heater on
CHILLYBIN = os.environ.get('CHILLYBIN_URL', 'http://127.0.0.1:7001')
orders = State('fake-jafflr-orders.json', [])
queue = {'paused': False, 'busy': False, 'stopping': False}
machine = {}


def fail_orders_left_toasting():
    for order in orders.data:
        if order['state'] not in ('done', 'failed'):
            order.update(state='failed', reason=f"jafflr stopped while {order['state']}")
    orders.save()


def control_loop():
    """Heartbeat every tick, heater as the current order wants, WATCHDOG=1 each second."""
    from hardware.platform import open_platform
    try:
        platform = open_platform()
        m = platform.machine(('jafflr', 'plate'))
    except Exception as exc:
        machine['error'] = exc
        raise
    machine.update(clock=platform.clock, heater=m.heater)
    last_watchdog = 0
    while True:
        m.heater.beat()
        if queue['busy']:
            m.heater.on()
        else:
            m.heater.off()
        if time.monotonic() - last_watchdog > 1:
            notify('WATCHDOG=1')
            last_watchdog = time.monotonic()
        platform.clock.sleep(0.1)


def toastie(query, headers):
    items = query.get('i', [])
    if 'cheese' not in items:
        return 400, 'a toastie needs cheese'
    if queue['paused'] or queue['stopping']:
        return 503, 'paused'
    with orders.lock:
        if queue['busy']:
            return 503, 'busy'
        queue['busy'] = True
    order = {'id': len(orders.data) + 1, 'items': items, 'state': 'assembling'}
    orders.data.append(order)
    orders.save()
    try:
        for item in ['bread', 'bread'] + items:
            with urllib.request.urlopen(f'{CHILLYBIN}/pick?name={item}&quantity=1', timeout=5):
                pass
        order['state'] = 'toasting'
        orders.save()
        clock = machine['clock']
        end = clock.monotonic() + TOAST_S
        while clock.monotonic() < end:
            clock.sleep(0.05)
        order['state'] = 'done'
        orders.save()
        return 200, 'done'
    finally:
        queue['busy'] = False


def admin(action):
    def handler(query, headers):
        with open(os.environ['JAFFLR_ADMIN_TOKEN_FILE']) as f:
            token = f.read().strip()
        if headers.get('Authorization') != f'Bearer {token}':
            return 401, 'admin token required'
        queue['paused'] = action == 'pause'
        return 200, {'paused': queue['paused']}
    return handler


def on_stop():
    queue['stopping'] = True
    while queue['busy']:   # finish the toastie in the press
        time.sleep(0.1)


def start():
    fail_orders_left_toasting()
    threading.Thread(target=control_loop, daemon=True).start()
    while 'heater' not in machine:
        if 'error' in machine:
            sys.exit(f"cannot open the machine: {machine['error']}")
        time.sleep(0.05)


ROUTES = {
    ('GET', '/toastie'): toastie,
    ('GET', '/v2/status'): lambda q, h: (200, {'state': 'toasting' if queue['busy'] else 'idle',
                                               'busy': queue['busy'], 'paused': queue['paused']}),
    ('GET', '/v2/orders'): lambda q, h: (200, orders.data),
    ('GET', '/v2/ready'): lambda q, h: (200, {'ready': True, 'checks': {}}),
    ('POST', '/v2/queue/pause'): admin('pause'),
    ('POST', '/v2/queue/resume'): admin('resume'),
}

sys.exit(serve('jafflr', ROUTES, 7000, on_stop=on_stop, before_ready=start))
