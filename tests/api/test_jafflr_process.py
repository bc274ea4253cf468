"""jafflr's exit paths and watchdogs, as real processes on the simulated machine (see
conftest.py): SIGTERM and SIGINT drain, SIGKILL opens the relay (the plate process sees
jafflr go) and is recovered on restart, a stalled link to the plate is caught by the
dead-man (test_plate_process.py has the plate's own exit paths), and an
exception in a station trips control-error. Times are measured on the simulator's clock
(simulated seconds) and printed (pytest -s shows them)."""
import concurrent.futures
import json
import signal
import time

import pytest

from firmware.jafflrstore import OrderStore
from tests.api.conftest import restock
from api.jafflr.stopping import DRAIN_BOUND_S as BOUND_S   # simulated seconds
from tests.support.client import request

HEARTBEAT_HOLD_S = 1.0   # hardware/board.py heartbeat_hold_s
DEADMAN_S = 2.0          # api/jafflr/service.py DEADMAN_S, the production value


def admin(service):
    return {'Authorization': f'Bearer {service.admin_token()}'}


def order_toastie(service, ingredients=('cheese',), doneness='light'):
    answer = request(service.port, 'POST', '/v2/toasties',
                     {'ingredients': list(ingredients), 'doneness': doneness})
    assert answer.status == 202, answer
    return answer.json()['id']


def status(service):
    return request(service.port, 'GET', '/v2/status', timeout=10).json()


def toastie(service, oid):
    return request(service.port, 'GET', f'/v2/toasties/{oid}').json()


def wait_state(machine, service, state, timeout_s=120):
    return machine.wait_for(lambda: status(service)['state'] == state, timeout_s,
                            f'jafflr state {state!r}', interval=0.05)


def wait_toasting(machine, service, timeout_s=120):
    """Until a toastie is in the press, toasting; returns its id."""
    def in_press():
        s = status(service)
        newest = request(service.port, 'GET', '/v2/toasties?limit=1').json()['orders']
        assert s['fault'] is None, f'the machine stopped: {s["fault"]}'
        assert not newest or not newest[0]['failure'], f'it failed: {newest[0]["failure"]}'
        return s['state'] == 'toasting' and s['press']
    oid = machine.wait_for(in_press, timeout_s, 'a toastie in the press', interval=0.05)
    machine.wait_for(lambda: toastie(service, oid)['step'] == 'toasting', 30, 'toasting')
    return oid


def stored_order(state_dir, oid):
    """An order as the stopped service left it on disk."""
    store = OrderStore(state_dir, fsync=False)
    try:
        return next(o for o in store.orders() if o.id == oid)
    finally:
        store.close()


def outputs_of(world):
    return {'relay_closed': world['relay_closed'], 'heater_pin': world['heater_pin'],
            'press_motor': world['press_motor'], 'tray_motor_on': world['tray_motor_on'],
            'dispensers': [b['bay'] for b in world['bays'] if b['dispenser_on']]}


OFF = {'relay_closed': False, 'heater_pin': False, 'press_motor': 'off', 'tray_motor_on': False,
       'dispensers': []}


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_jafflr_process_signal_mid_toast_drains_and_exits_0_with_the_heater_off(
        machine, start_jafflr, tmp_path, signum):
    restock(machine)
    j = start_jafflr()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # a v1 customer waiting for their toastie when the stop comes
        waiter = pool.submit(request, j.port, 'GET', '/toastie?i=cheese&doneness=light',
                             None, None, 180)
        oid = wait_toasting(machine, j)
        machine.wait_for(lambda: toastie(j, oid)['progress'] >= 0.7, 60, 'well into the toast')
        sent_sim, sent_real = machine.sim_time(), time.monotonic()
        j.signal(signum)
        assert j.wait(60) == 0, machine.logs()
        drained_sim, drained_real = machine.sim_time() - sent_sim, time.monotonic() - sent_real
        answer = waiter.result(10)
    print(f'\n{signal.Signals(signum).name} mid-toast: exited 0 after {drained_sim:.1f} s '
          f'simulated ({drained_real:.1f} s real)')
    assert outputs_of(machine.world()) == OFF
    order = stored_order(str(tmp_path / 'jafflr'), oid)
    if order.state == 'done':
        assert answer.status == 200 and answer.text == 'done', 'the waiter got its toastie'
        assert drained_sim < BOUND_S + 10
    else:
        assert order.failure['reason'] == 'stopped', order.failure
        assert f'could not finish within' in order.failure['detail']
    assert 'drained in' in j.log(100)
    # A start after a finished drain is a clean one: it carries on as before (a fault the
    # drain had to latch, stopping a toastie half way, is kept: a person looks at it).
    again = start_jafflr(state_dir=tmp_path / 'jafflr')
    s = status(again)
    if order.state == 'done':
        assert s['fault'] is None and s['state'] in ('available', 'preheating'), s
    else:
        assert s['fault']['reason'] == 'stopped' and s['fault']['restored'], s
        assert s['later_faults'] == [] and s['reset']['cleared_by'] == 'panel', s


def test_jafflr_process_sigkill_relay_opens_and_restart_recovers(
        machine, start_jafflr, tmp_path):
    restock(machine)
    state_dir = tmp_path / 'jafflr'
    j = start_jafflr(state_dir=state_dir)
    first = order_toastie(j)
    second = order_toastie(j, ('cheese', 'vegemite'))
    machine.wait_for(lambda: toastie(j, first)['state'] != 'queued', 30, 'the first started')
    assert request(j.port, 'POST', '/v2/queue/pause', headers=admin(j)).status == 200
    wait_toasting(machine, j)
    machine.wait_for(lambda: machine.world()['relay_closed'], 30, 'the heater on', interval=0.002)
    j.signal(signal.SIGKILL)
    killed_at = machine.sim_time()
    while machine.world()['relay_closed']:
        assert machine.sim_time() - killed_at < 3 * HEARTBEAT_HOLD_S, 'relay still closed'
    opened_after = machine.sim_time() - killed_at
    world = machine.world()
    print(f'\nSIGKILL with the heater on: relay open {opened_after:.2f} s simulated after the '
          f'kill (heartbeat age {world["heartbeat_age_s"]} s, hold {HEARTBEAT_HOLD_S} s)')
    j.wait(10)
    # The heater is the plate process's (api/plate): it saw jafflr's connection drop and
    # switched the pin off itself; the monostable is the backstop for the plate dying.
    assert not world['heater_pin'], 'the plate process left the heater pin high'
    assert opened_after <= HEARTBEAT_HOLD_S + 0.05 * machine.speed

    again = start_jafflr(state_dir=state_dir)
    crashed = toastie(again, first)
    assert crashed['state'] == 'failed' and crashed['failure']['reason'] == 'restarted'
    assert 'in the press' in crashed['failure']['detail']
    assert crashed['stock']['taken'] == {'bread': 2, 'cheese': 1}, 'its stock is noted'
    assert request(again.port, 'POST', '/v2/queue/resume', headers=admin(again)).status == 200
    fault = assert_held_after_a_crash(machine, again, [second])
    assert fault['reason'] == 'unclean-start'
    assert f'restarted while a toastie was in the press ({first})' in fault['detail']
    person_resets(machine, again)
    resumed = machine.wait_for(lambda: (lambda o: o['state'] in ('done', 'failed') and o)(
        toastie(again, second)), 120, 'the queued toastie made after the reset', interval=0.1)
    assert resumed['state'] == 'done' and resumed['failure'] is None
    assert resumed['stock']['taken'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    stock = request(machine['chillybin'].port, 'GET', '/').json()
    assert stock == {'bread': 6, 'cheese': 8, 'vegemite': 9}, 'each took its own, once'


HELD_S = 60.0      # simulated seconds a restarted machine is watched doing nothing by itself


def assert_held_after_a_crash(machine, service, queued=()):
    """A start after a crash: the fault is latched (kept, or unclean-start) and shown in
    /v2/status, the v1 text and /metrics; for HELD_S simulated seconds the relay stays
    open and nothing moves, and queued toasties stay queued saying why. Returns the fault."""
    s = status(service)
    fault = s['fault']
    assert fault is not None and s['state'] == 'faulted', s
    assert s['reset']['cleared_by'] == 'at-machine' and not s['reset']['allowed']
    assert 'reset button' in s['reset']['how_to_clear']
    v1 = request(service.port, 'GET', '/').text
    assert v1.startswith('toasting: false\nfault: ') and fault['reason'] in v1, v1
    metrics = request(service.port, 'GET', '/metrics').text
    assert f'jafflr_fault_latched{{reason="{fault["reason"]}"}} 1.0' in metrics
    assert 'jafflr_fault_needs_person 1.0' in metrics
    start = machine.sim_time()
    while machine.sim_time() - start < HELD_S:
        assert outputs_of(machine.world()) == OFF, f'{machine.sim_time() - start:.1f} s after'
        for oid in queued:
            o = toastie(service, oid)
            assert o['state'] == 'queued' and o['waiting'].startswith('held: the machine is '
                                                                      'stopped'), o
        time.sleep(0.05)
    print(f'\nheld after the restart: {fault["reason"]}: {fault["detail"]}; relay open and '
          f'nothing moved for {HELD_S:g} s simulated')
    return fault


def person_resets(machine, service, hold_s=3.0):
    """What a person does: the admin reset alone is refused with what to do (409); they
    hold the reset button on the machine, then the admin reset clears the fault."""
    refused = request(service.port, 'POST', '/v2/reset', {}, admin(service))
    assert refused.status == 409, refused
    assert refused.json()['error']['code'] == 'needs-reset-button'
    assert 'hold the reset button on the machine for 2 s' in refused.json()['error']['message']
    machine.link.hold_button('reset', hold_s)
    machine.wait_for(lambda: status(service)['reset']['allowed'], 30, 'the reset button held')
    answer = request(service.port, 'POST', '/v2/reset', {}, admin(service))
    assert answer.status == 200 and answer.json()['fault'] is None, answer
    return answer.json()


def test_jafflr_process_stalled_control_loop_is_caught_by_the_dead_man(machine, start_jafflr):
    restock(machine)
    j = start_jafflr(env={'JAFFLR_DEBUG_HOOKS': '1', 'JAFFLR_DEADMAN_S': str(DEADMAN_S)})
    oid = order_toastie(j)
    wait_toasting(machine, j)
    machine.wait_for(lambda: machine.world()['relay_closed'], 30, 'the heater on', interval=0.002)
    stalled_at = machine.sim_time()
    assert request(j.port, 'POST', '/v2/debug/stall').status == 200
    last_closed = 0.0       # watch the relay from the stall until the dead-man has tripped
    while machine.sim_time() - stalled_at < DEADMAN_S + 1.0:
        if machine.world()['relay_closed']:
            last_closed = machine.sim_time() - stalled_at
    fault = machine.wait_for(lambda: status(j)['fault'], 30, 'a latched fault', interval=0.01)
    detected = fault['at'] - stalled_at
    print(f'\ncontrol loop stalled: {fault["reason"]} latched {detected:.2f} s simulated after '
          f'the stall (dead-man {DEADMAN_S} s); relay last closed {last_closed:.2f} s after it')
    # The stall is jafflr's link to the plate: the heater control runs on in the plate
    # process (api/plate) until jafflr's dead-man tells it, or its lease (the same 2 s)
    # runs out; either way the relay opens then, not a heartbeat hold after the stall.
    assert last_closed <= DEADMAN_S + 0.05 * machine.speed
    assert fault['reason'] == 'control-loop-stalled'
    plate = json.loads(machine.run('api.plate', 'status', env={
        'JAFFLR_PLATE_SOCKET': machine['plate'].socket}).stdout)
    assert plate['faults'][0]['reason'] == 'control-loop-stalled', plate['faults']
    # from the last tick before the stall (up to a tick or two before the request) plus
    # the dead-man's own check every 0.2 s
    assert DEADMAN_S - 0.5 <= detected <= DEADMAN_S + 0.5
    assert status(j)['plate']['phase'] in ('faulted', 'stalled'), 'status answers during a stall'
    assert outputs_of(machine.world()) == OFF
    # The press station learns of the fault when its own wait on the stuck controller
    # runs out (LOCK_WAIT_S), so the order fails a moment after the fault is latched.
    failed = machine.wait_for(lambda: toastie(j, oid)['failure'], 10, 'the order failed',
                              interval=0.05)
    assert failed['reason'] == 'control-loop-stalled'
    started = time.monotonic()
    j.signal(signal.SIGTERM)
    assert j.wait(30) == 0, 'the drain does not hang behind the stuck loop'
    print(f'SIGTERM with the control loop stuck: exited 0 in {time.monotonic() - started:.1f} s')


@pytest.mark.parametrize('where', ['press', 'assembler', 'thread'])
def test_jafflr_process_exception_in_a_worker_trips_control_error(machine, start_jafflr, where):
    restock(machine)
    j = start_jafflr(env={'JAFFLR_DEBUG_HOOKS': '1'})
    oid = None
    if where == 'press':            # the full case: a toastie in the press, heater holding
        oid = order_toastie(j)
        wait_toasting(machine, j)
    answer = request(j.port, 'POST', '/v2/debug/raise', {'where': where})
    assert answer.status == 200, answer
    fault = machine.wait_for(lambda: status(j)['fault'], 30, 'a latched fault')
    assert fault['reason'] == 'control-error'
    assert 'RuntimeError' in fault['detail'] and 'debug hook' in fault['detail']
    assert where in fault['detail']
    machine.wait_for(lambda: outputs_of(machine.world()) == OFF, 5, 'every output off')
    if oid:
        # The press station fails its order on its own next tick, a moment after the
        # latch (on a loaded computer, after the outputs are seen off).
        failed = machine.wait_for(lambda: toastie(j, oid)['failure'], 10, 'the order failed',
                                  interval=0.05)
        assert failed['reason'] == 'control-error'
    assert j.alive(), 'the service stays up to say what happened'
