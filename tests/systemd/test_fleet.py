"""The fleet deploys on real systemd (`make test-fleet`; .ci/run runs it after `make test`):
a fresh Debian 12 host booted as in test_real_systemd.py, release B deployed, then, in
order (they share the host): 9 a limited (-l), panel-only deploy restarts jafflr only;
10 an interrupted deploy leaves the Pi unpaused; 11 a deploy during the same well-done
toastie waits and finishes it; 12 a rollback across migrations of both stores that the
old release cannot read restores both services' snapshots; 13 a canary that fails its
smoke test stops the rollout. Kept out of `make test` to keep it short (about 9 minutes
of toasties and deploys); `JAFFLR_FLEET=1` asks for it. Figures go to the report.
"""
import json
import os
import signal
import time

import pytest

from .conftest import REPORT
from .test_real_systemd import (CHILLYBIN, JAFFLR, PANEL_MARK, SIM_SPEED, _clear_fault, _http,
                                _orders, _owner, _status, _toastie_in_thread, _wait, booted_host)

pytestmark = pytest.mark.systemd


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    if os.environ.get('JAFFLR_FLEET') != '1':
        pytest.skip('the fleet steps run with `make test-fleet` (JAFFLR_FLEET=1; .ci/run runs it)')
    for h in booted_host(tmp_path_factory, 'fleet', 'fleet-journal.txt'):
        # The release the fleet steps start from (P is B plus a panel change).
        out, took = h.deploy('B')
        assert out.returncode == 0, out.stdout[-4000:]
        REPORT['fleet: deploy B on a fresh host'] = {'deploy_s': round(took, 1)}
        yield h


def test_9_a_limited_panel_only_deploy_restarts_jafflr_only(host):
    _clear_fault(host)
    chillybin_pid, jafflr_pid = host.main_pid('chillybin'), host.main_pid('jafflr')
    out, took = host.deploy('P', '-l', 'shop_test')
    assert out.returncode == 0, out.stdout[-4000:]
    p, b = host.versions('P'), host.versions('B')   # B: the fixture's
    assert p['chillybin'] == b['chillybin'] and p['jafflr'] != b['jafflr']
    assert 'restart: jafflr;' in out.stdout and 'chillybin' not in out.stdout.split('restart:')[1].split(';')[0]
    assert host.main_pid('chillybin') == chillybin_pid and host.main_pid('jafflr') != jafflr_pid
    assert PANEL_MARK in _http(JAFFLR, '/panel/panel.css')[1]
    REPORT['9 -l shop_test, panel only'] = {'deploy_s': round(took, 1), 'restarted': 'jafflr'}


# Steps 10 and 11 share one well-done toastie (300 simulated s in the press): step 10's
# deploy is killed while it waits for it, its lease runs out, and step 11's deploy, started
# while the same toastie is still in the press, waits for it and finishes it.
SHARED_TOASTIE = {}
KILLED_LEASE_S = 40    # simulated seconds: the killed deploy's lease (20 s real at x2)
MAKING = ('assembling', 'preheating', 'toasting')   # /v2/status states with a toastie in hand


def _toasting_well_done():
    """A well-done toastie ordered now; (thread, answer) once it is in the machine."""
    assert _http(CHILLYBIN, '/restock')[0] == 200
    thread, answer = _toastie_in_thread('well-done')
    assert _wait(lambda: _status()['state'] in MAKING or 'result' in answer, 60, 0.2), \
        f'the toastie never started: {answer}'
    return thread, answer


def test_10_an_interrupted_deploy_leaves_the_pi_unpaused(host):
    # The deploy starts with the order: it stages Q (its venv) while the toastie is
    # assembled, then pauses and waits for the press to empty; it is killed there.
    thread, answer = _toasting_well_done()
    deploy = host.start_deploy('Q', '-e', f'jafflr_pause_lease_s={KILLED_LEASE_S}')
    paused = _wait(lambda: (lambda s: s if s['paused'] else None)(_status()), 300, 0.5)
    assert paused and paused['pause_expires'], f'the deploy did not pause the queue: {paused}'
    busy = paused['state']
    os.killpg(deploy.pid, signal.SIGKILL)      # the controller is gone: no always:, no rescue
    deploy.wait()
    killed = time.monotonic()
    assert busy in MAKING and 'result' not in answer, (busy, answer)
    assert host.current() == 'P', 'the deploy switched before the press was empty'
    lease_real_s = KILLED_LEASE_S / SIM_SPEED
    # jafflr looks at the lease on its assembler's tick; seen here (2026-11-30): unpaused
    # 45 s after the kill with a 20 s lease, the toastie preheating; a minute's margin.
    resumed = _wait(lambda: not _status()['paused'], lease_real_s + 60, 0.5)
    took = time.monotonic() - killed
    assert resumed, f'still paused {took:.0f} s after the deploy died (lease {lease_real_s:.0f} s)'
    events = json.loads(_http(JAFFLR, '/v2/events?kind=queue&limit=5')[1])['events']
    expired = [e['detail'] for e in events if 'the pause expired' in e.get('detail', '')]
    assert expired, events
    SHARED_TOASTIE.update(thread=thread, answer=answer)
    REPORT['10 deploy killed mid-drain'] = {'unpaused_after_s': round(took, 1),
                                           'event': expired[0],
                                           'lease_sim_s': KILLED_LEASE_S, 'sim_speed': SIM_SPEED,
                                           'state_when_killed': busy}


def test_11_a_deploy_during_a_well_done_toastie_waits_and_finishes_it(host):
    thread, answer = SHARED_TOASTIE.pop('thread', None), SHARED_TOASTIE.pop('answer', None)
    if thread is None or 'result' in answer:   # step 10 did not leave one in the machine
        thread, answer = _toasting_well_done()
    state = _status()['state']
    assert state in MAKING and 'result' not in answer, (state, answer)
    pid = host.main_pid('jafflr')
    out, took = host.deploy('Q')
    assert out.returncode == 0, out.stdout[-4000:]
    thread.join(60)
    assert answer.get('result', (0, ''))[1].strip() == 'done', answer
    # It waited: the press was not empty at its first poll.
    polls = int(out.stdout.split('the press is empty after ')[1].split()[0])
    assert polls > 1, f'the deploy found the press empty at once ({polls} poll)'
    assert host.main_pid('jafflr') != pid and host.current() == 'Q'
    assert not _status()['paused']
    drain = host.versions('Q')['drain_s']
    assert drain >= 2 * 300, drain
    REPORT['11 deploy during a well-done toastie'] = {
        'deploy_s': round(took, 1), 'well_done_sim_s': 300, 'sim_speed': SIM_SPEED,
        'drain_bound_sim_s': drain, 'drain_polls': polls, 'state_at_start': state}


def test_12_a_rollback_across_an_unreadable_migration_restores_the_snapshot(host):
    """Release M migrates both stores (jafflr's in /var/lib/jafflr, chillybin's in its own
    /var/lib/chillybin) to layouts Q cannot read, then jafflr cannot start: the rollback
    restores both directories from the snapshot, owners and modes as they were."""
    orders_before = _orders()
    assert orders_before, 'steps 10 and 11 made a toastie'
    stock_before = json.loads(_http(CHILLYBIN, '/')[1])
    c = host.container
    owners = {d: _owner(c, d) for d in ('/var/lib/jafflr', '/var/lib/chillybin',
                                        '/var/lib/chillybin/chillybin.json')}
    out, took = host.deploy('M')
    assert out.returncode != 0
    assert 'rolled back to Q' in out.stdout and 'restored the snapshot taken before M' in \
        out.stdout, out.stdout[-4000:]
    assert host.current() == 'Q'
    assert _wait(lambda: _http(JAFFLR, '/health')[0] == 200, 60, 0.5)
    assert _http(JAFFLR, '/health')[1] == host.versions('Q')['jafflr']
    assert _wait(lambda: _http(CHILLYBIN, '/v2/ready')[0] == 200, 60, 0.5)
    assert _http(CHILLYBIN, '/health')[1] == host.versions('Q')['chillybin']
    assert [o['id'] for o in _orders()] == [o['id'] for o in orders_before]
    assert json.loads(_http(CHILLYBIN, '/')[1]) == stock_before
    # The restored data was taken while jafflr ran; the stop before it was a drain, so
    # jafflr is not held as after a crash (jafflr-release carries the clean-stop marker).
    assert _status()['fault'] is None, _status()['fault']
    for name, last in (('jafflr', 2), ('chillybin', 3)):
        store = json.load(open(c.path(f'/var/lib/{name}/{name}.json')))
        assert sorted(int(n) for n in store['_migrations']) == list(range(1, last + 1)), \
            (name, store['_migrations'])
    assert {d: _owner(c, d) for d in owners} == owners
    aside = sorted(n for n in os.listdir(c.path('/var/lib')) if 'unreadable' in n)
    assert [n.split('.')[0] for n in aside] == ['chillybin', 'jafflr'], \
        f'the data the new release migrated was not kept aside: {aside}'
    moved = json.load(open(c.path(f'/var/lib/{aside[0]}/chillybin.json')))
    assert sorted(int(n) for n in moved['_migrations']) == [1, 2, 3, 4]
    REPORT['12 rollback across an unreadable migration'] = {
        'deploy_and_rollback_s': round(took, 1), 'kept_aside': aside,
        'restored': {d: list(o) for d, o in owners.items()}}


def test_13_a_canary_that_fails_its_smoke_test_stops_the_rollout(host):
    # A second Pi that is switched off is reported and skipped; the canary's smoke test
    # orders a real toastie and gives it 3 s, which fails: the canary goes back to Q.
    pid = host.main_pid('jafflr')
    out, took = host.deploy('R', '-e', 'jafflr_smoke_toastie=true', '-e',
                            'jafflr_smoke_toastie_timeout=3', str(host.fleet_inventory()))
    assert out.returncode != 0, out.stdout[-4000:]
    assert 'left out: jafflr-off' in out.stdout, out.stdout[-4000:]
    assert 'Order a light cheese toastie for the smoke test' in out.stdout
    assert 'rolled back to Q' in out.stdout and 'the rollout stops here' in out.stdout, \
        out.stdout[-4000:]
    assert host.current() == 'Q' and host.main_pid('jafflr') != pid
    assert _http(JAFFLR, '/health')[1] == host.versions('Q')['jafflr']
    assert not _status()['paused']
    smoke = [o for o in _orders() if o.get('name') == 'deploy smoke test']
    assert smoke and smoke[0]['state'] == 'done', smoke   # drained before the rollback
    REPORT['13 canary fails its smoke test'] = {'deploy_and_rollback_s': round(took, 1),
                                                'unreachable': 'jafflr-off'}

