"""Fixtures for the tests that run jafflr as a real process (test_jafflr_process.py,
test_jafflr_http.py): one simulated machine and one chillybin for the whole session,
and jafflr processes started by each test.

The plate starts at 175 C (a machine just used; `hardware.sim serve --plate-c`) and
sharing the machine keeps it warm between tests, so no test waits the 3.5 simulated
minutes of a preheat from cold.

Speed: simulated time runs JAFFLR_TEST_SPEED times fast, by default 10. (It was 20 on a
computer that looked idle when the tests started; load that came later, another test run
beside it, made the press and conveyor deadlines below run out mid-module.) Every
real-time margin shrinks with the speed: at 20 the simulator answers some 5000 I2C and
GPIO calls a second, a conveyor index mark passes the photo-eye in 15 ms, and on a busy
two-core machine the control loop's ticks came 200 ms apart, so the production dead-man
(2 s simulated, 100 ms real) tripped for real. So the jafflr processes get a dead-man of
0.4 real seconds (JAFFLR_DEADMAN_S), except where a test measures the production 2 s.
Measured on a two-core machine with two CPU hogs: at 20 the press's 8 s and the
conveyor's 6 s deadlines (0.4 and 0.3 s of real time) ran out and the firmware latched
press-jam or conveyor-jam, as it should for a press that does not move in time; at 10
the same load passed. Busier still, use JAFFLR_TEST_SPEED=5.
"""
import os
import signal

import pytest

from api.launcher import Launcher
from tests.support.client import request

SPEED = float(os.environ.get('JAFFLR_TEST_SPEED') or 10)
DEADMAN_S = max(2.0, 0.4 * SPEED)
JAFFLR_ENV = {'JAFFLR_DEADMAN_S': f'{DEADMAN_S:g}'}       # every jafflr these tests start


@pytest.fixture(scope='session')
def machine(tmp_path_factory):
    """The simulator and chillybin, started once (api/launcher.py)."""
    launcher = Launcher(tmp_path_factory.mktemp('machine'), speed=SPEED)
    try:
        launcher.start_sim(plate_c=175.0)
        launcher.start('chillybin', state_dir=os.path.join(launcher.folder, 'chillybin'))
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def start_jafflr(machine, tmp_path):
    """start_jafflr(env=None, state_dir=None, chillybin=None) -> Process. Every jafflr a
    test started is stopped afterwards (SIGTERM, then SIGKILL), and the simulator's
    faults are switched off again, so the next test finds the machine as it was."""
    started = []

    def start(env=None, state_dir=None, chillybin=None):
        service = machine.start('jafflr', state_dir=str(state_dir or tmp_path / 'jafflr'),
                                env={**JAFFLR_ENV, **(env or {})}, chillybin=chillybin)
        started.append(service)
        return service
    try:
        yield start
    finally:
        for service in started:
            if service.alive():
                stop_machine(service)       # so the drain does not wait for a toastie
                service.signal(signal.SIGTERM)
                try:
                    service.wait(30)
                except Exception:
                    service.signal(signal.SIGKILL)
                    service.wait(5)
        for fault in machine.world()['faults']:
            machine.link.set_fault(fault, False)


def stop_machine(service):
    """Press stop (anyone may), if the service still answers."""
    try:
        request(service.port, 'POST', '/v2/stop', {'by': 'the test teardown'}, timeout=5)
    except OSError:
        pass


def restock(machine, **units):
    """Fill chillybin's bays: the original /restock (10 each), or the admin v2 restock."""
    chilly = machine['chillybin']
    if not units:
        answer = request(chilly.port, 'GET', '/restock')
    else:
        answer = request(chilly.port, 'POST', '/v2/restock', {'items': units},
                         {'Authorization': f'Bearer {chilly.admin_token()}'})
    assert answer.status == 200, answer
    return answer
