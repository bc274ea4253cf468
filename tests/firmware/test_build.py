"""firmware/build.py on the whole machine in process: the safety wiring every composition
root gets from it (the dead-man, the station error hook, the excepthook, the saved fault
latched before anything is wired), here where the service's loops are ticked in turn."""
import threading

import pytest

from firmware.build import DEADMAN_S, Jafflr
from firmware.jafflrstore import OrderStore
from firmware.safety import CONTROL_ERROR, CONTROL_LOOP_STALLED
from inprocess import InProcessMachine
from tests.support.kitchen import outputs_safe

SAFE = {'heater_pin': False, 'relay_closed': False, 'moving': []}


def heating(k):
    """The plate asked for a toastie's temperature, the heater pin switching."""
    order, _ = k.submit(['cheese'], 'burnt')
    k.run_until(lambda: k.machine.heater.is_on, 60)
    return order


def test_build_in_process_machine_is_built_by_the_services_builder(kitchen):
    assert isinstance(kitchen.jafflr, Jafflr)
    assert kitchen.deadman.timeout_s == DEADMAN_S
    assert kitchen.assembler.tray is kitchen.press.tray is kitchen.kitchen.tray is kitchen.tray


def test_build_deadman_forces_the_heater_off_when_the_control_loop_stops(kitchen):
    k = kitchen
    order = heating(k)
    k.stall_control_loop()
    stalled_at = k.clock.monotonic()
    k.run_until(lambda: k.shutdown.latched, 2 * DEADMAN_S)
    fault = k.shutdown.fault
    assert fault.reason == CONTROL_LOOP_STALLED and fault.by == 'the dead-man'
    assert DEADMAN_S - 0.2 <= fault.at - stalled_at <= DEADMAN_S + 0.2
    assert f'did not tick for {DEADMAN_S:g} s' in fault.detail
    k.run(0.2)
    assert outputs_safe(k) == SAFE and order.state == 'failed'


@pytest.mark.parametrize('station', ['press', 'assembler'])
def test_build_a_station_that_raises_stops_the_machine(kitchen, monkeypatch, station):
    k = kitchen
    heating(k)

    def broken(*args):
        raise RuntimeError('a bug')
    monkeypatch.setattr(getattr(k, station), 'tick', broken)
    k.step()
    fault = k.shutdown.fault
    assert fault.reason == CONTROL_ERROR
    assert fault.detail == f'RuntimeError in the {station} station: a bug'
    assert outputs_safe(k)['heater_pin'] is False and not k.world.relay_closed()


@pytest.mark.filterwarnings('ignore::pytest.PytestUnhandledThreadExceptionWarning')
def test_build_an_exception_that_ends_a_thread_stops_the_machine(make_kitchen):
    before = threading.excepthook
    k = make_kitchen()
    k.run(0.5)          # chillybin's load cells have a reading: stock is known
    heating(k)

    def dies():
        raise ValueError('nobody caught this')
    thread = threading.Thread(target=dies, name='a-helper')
    thread.start()
    thread.join(5)
    fault = k.shutdown.fault
    assert fault.reason == CONTROL_ERROR
    assert fault.detail == 'ValueError in thread a-helper: nobody caught this'
    assert not k.machine.heater.is_on and not k.world.relay_closed()
    k.close()
    assert threading.excepthook is before


def test_build_a_saved_fault_latches_before_anything_is_wired(tmp_path):
    """Built on a state dir whose fault was saved by the last run: latched from the first
    moment, before the kitchen's recovery runs and before any tick."""
    first = InProcessMachine(tmp_path)
    try:
        first.shutdown.trip('heater-runaway', 'a test', first.clock.monotonic())
    finally:
        first.close()
    assert OrderStore(str(tmp_path), fsync=False).saved_fault() is not None
    again = InProcessMachine(tmp_path)
    try:
        assert again.shutdown.latched and again.shutdown.fault.reason == 'heater-runaway'
        assert again.shutdown.fault.restored
    finally:
        again.close()


def test_build_a_control_loop_stalled_from_the_first_step_and_after_a_restart_still_trips(tmp_path):
    """The dead-man is armed by its first check when the loop never refreshed it: a loop
    stalled before its first tick (or in the jafflr "process" started again) latches
    control-loop-stalled, it does not crash the checker."""
    k = InProcessMachine(tmp_path)
    try:
        k.stall_control_loop()
        k.run(DEADMAN_S + 0.5)
        assert k.shutdown.fault.reason == CONTROL_LOOP_STALLED
        k.restart_jafflr()
        k.run(DEADMAN_S + 0.5)
        assert k.shutdown.latched and outputs_safe(k) == SAFE
    finally:
        k.close()
