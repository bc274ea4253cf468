"""firmware/remoteplate.py: jafflr's side of the plate in a process of its own, on the
whole machine in process with the plate apart (tests/support/plate.py): the controller's
interface over the link and its errors, the plate's faults mirrored, plate-lost, a reset
plate first, and what a reconnect carries."""
import threading
import time

import pytest

from firmware.errors import HeaterFaulted, OutOfRange, ResetRefused
from firmware.remoteplate import LOST_STATUS
from firmware.safety import (AT_MACHINE, CONTROL_LOOP_STALLED, LID_OPEN, PLATE_LOST,
                             PLATE_OVER_TEMPERATURE, PLATE_SENSOR_OPEN, STOPPED)
from tests.support.kitchen import hot_plate, person_resets
from tests.support.threads import held_by_another_thread

HOLD_S = 1.0        # the heartbeat monostable (board.heartbeat_hold_s)


def now(m):
    return m.clock.monotonic()


def heating(m, doneness='burnt'):
    order, _ = m.submit(['cheese'], doneness)
    m.run_until(lambda: m.world.relay_closed(), 60)
    return order


def stop(m):
    m.kitchen.stop(now(m), m.clock.time(), 'a test')


def reset(m):
    return m.kitchen.reset(now(m), m.clock.time(), 'a test')


# -- the controller's interface over the link ----------------------------------------------------
@pytest.fixture
def quiet_press(split, monkeypatch):
    """The machine with jafflr's press station idle: it would put an idle plate on standby."""
    monkeypatch.setattr(split.jafflr, 'press_tick', lambda now, wall: None)
    return split


def test_remoteplate_target_and_at_target_round_trip(quiet_press):
    m = quiet_press
    m.remote.set_target(180.0, now(m))
    assert m.plate_controller.status()['target_c'] == 180.0
    assert not m.remote.at_target(now(m))
    m.run_until(lambda: m.remote.at_target(now(m)), 30)
    assert m.plate_controller.at_target(now(m))
    status = m.remote.status()
    assert status['target_c'] == 180.0 and status['phase'] == 'holding'
    assert status['temp_c'] == pytest.approx(m.world.plate.probe_c, abs=1.0)
    m.remote.standby(now(m))
    assert m.plate_controller.status()['phase'] == 'standby'
    m.remote.off(now(m))
    assert m.plate_controller.status()['target_c'] is None


def test_remoteplate_an_order_budget_round_trip(quiet_press):
    m = quiet_press
    m.remote.set_target(230.0, now(m))
    m.remote.begin_order(now(m), 600.0)
    m.run_until(lambda: m.world.relay_closed(), 30)
    m.run(5)
    on_s = m.remote.end_order(now(m))
    assert 4.0 <= on_s <= 6.0
    assert m.remote.end_order(now(m)) is None          # no order any more
    m.remote.begin_order(now(m), 0.5)                   # its budget is checked in the plate
    m.run(3)
    assert m.plate_shutdown.fault.reason == 'heater-on-time-limit'
    assert m.shutdown.fault.reason == 'heater-on-time-limit'


def makes_a_toastie(m):
    """A light cheese toastie ordered and run to its end; the order."""
    order, _ = m.submit(['cheese'], 'light')
    m.run_until(lambda: order.finished, 600)
    return order


def test_remoteplate_a_toastie_is_made_through_the_link(split):
    m = split
    assert makes_a_toastie(m).state == 'done'
    assert m.shutdown.fault is None and m.plate_shutdown.fault is None
    assert {'begin_order', 'end_order', 'set_target', 'ping'} <= set(m.link.requests)


@pytest.mark.parametrize('call, error, words', [
    (lambda r, t: r.set_target(999.0, t), OutOfRange,
     'Requested temperature (999.0) out of range (40.0:240.0)'),
    (lambda r, t: r.begin_order(t, 0), OutOfRange, 'budget (0) must be above 0 s'),
])
def test_remoteplate_out_of_range_comes_back_as_out_of_range(split, call, error, words):
    with pytest.raises(error) as caught:
        call(split.remote, now(split))
    assert words in str(caught.value)
    assert split.plate_controller.status()['target_c'] is None


def test_remoteplate_a_plate_fault_jafflr_has_not_seen_is_heater_faulted(split):
    m = split
    m.plate_shutdown.trip(PLATE_SENSOR_OPEN, 'probe open', now(m), by='a test')
    assert m.shutdown.fault is None                     # not mirrored yet
    with pytest.raises(HeaterFaulted, match='plate-sensor-open: probe open'):
        m.remote.set_target(180.0, now(m))
    with pytest.raises(HeaterFaulted):
        m.remote.standby(now(m))
    m.remote.off(now(m))                                # always allowed, never raises
    m.run(0.1)
    assert m.shutdown.fault.reason == PLATE_SENSOR_OPEN


def test_remoteplate_refuses_locally_while_jafflr_is_latched(split):
    m = split
    stop(m)
    sent = len(m.link.requests)
    with pytest.raises(HeaterFaulted, match='stopped'):
        m.remote.set_target(180.0, now(m))
    assert len(m.link.requests) == sent


# -- the plate's faults, mirrored ----------------------------------------------------------------
@pytest.mark.parametrize('fault, reason', [('plate-sensor-open', PLATE_SENSOR_OPEN),
                                           (None, PLATE_OVER_TEMPERATURE),
                                           ('lid-open', LID_OPEN)])
def test_remoteplate_a_fault_in_the_plate_is_mirrored_and_fails_the_order(split, fault, reason):
    m = split
    order = heating(m)
    if fault is None:
        hot_plate(m, 300.0)
    else:
        m.world.set_fault(fault, True)
    m.run(0.1)
    assert m.plate_shutdown.fault.reason == reason
    assert not m.world.is_active('heater_relay')
    m.run(0.1)
    mirrored = m.shutdown.fault
    assert mirrored.reason == reason and mirrored.by.startswith('the plate process (')
    m.run(1)
    assert order.state == 'failed' and order.failure['reason'] == reason
    assert m.remote.status()['phase'] == 'faulted' and not m.remote.at_target(now(m))


# -- reset, plate first --------------------------------------------------------------------------
def test_remoteplate_reset_clears_both_from_the_panel(split):
    m = split
    heating(m)
    stop(m)
    m.run(0.2)
    assert m.plate_reasons() == m.jafflr_reasons() == {STOPPED}
    assert reset(m).reason == STOPPED
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None
    assert makes_a_toastie(m).state == 'done'


def test_remoteplate_an_at_machine_fault_needs_the_reset_button_as_before(split):
    m = split
    m.world.set_fault('plate-sensor-open', True)
    m.run(0.3)
    m.world.set_fault('plate-sensor-open', False)
    assert m.shutdown.clearance() == AT_MACHINE
    with pytest.raises(ResetRefused, match='hold the reset button'):
        reset(m)
    assert m.plate_reasons() == m.jafflr_reasons() == {PLATE_SENSOR_OPEN}
    m.hold_reset_button()
    assert reset(m).reason == PLATE_SENSOR_OPEN
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None
    m.run(1)
    assert m.shutdown.fault is None


def test_remoteplate_reset_is_refused_when_the_plate_latched_a_new_reason_meanwhile(split):
    m = split
    stop(m)
    m.run(0.2)
    m.plate_shutdown.trip(LID_OPEN, 'lid opened', now(m), by='a test')   # after the last ping
    with pytest.raises(ResetRefused, match='the plate latched lid-open meanwhile: reset again'):
        reset(m)
    assert m.plate_reasons() == {STOPPED, LID_OPEN}
    assert m.shutdown.fault.reason == STOPPED           # nothing cleared in jafflr either
    m.run(0.2)
    assert m.jafflr_reasons() == {STOPPED, LID_OPEN}    # the next ping brings it
    assert reset(m).reason == STOPPED                   # now jafflr holds what the plate does
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None


def test_remoteplate_reset_is_refused_when_the_plate_does_not_answer(split):
    m = split
    stop(m)
    m.run(0.2)
    m.kill_plate()
    m.run(0.2)
    m.hold_reset_button()
    assert m.jafflr_reasons() == {STOPPED, PLATE_LOST}
    with pytest.raises(ResetRefused, match='the heater control does not answer, so its fault '
                                           'cannot be cleared'):
        reset(m)
    assert m.jafflr_reasons() == {STOPPED, PLATE_LOST}


def test_remoteplate_a_refused_reset_in_jafflr_latches_the_plate_again(split):
    """The plate cleared, then jafflr refused after all (the reset button's hold ran out
    between the two): the plate takes jafflr's faults back at once."""
    m = split
    stop(m)
    m.run(0.2)

    def refuses(reasons):
        raise ResetRefused('hold the reset button')
    with pytest.raises(ResetRefused):
        m.remote.reset_with(refuses)
    assert m.plate_reasons() == {STOPPED}
    assert m.plate_shutdown.fault.by == 'jafflr (stop (a test))'


def test_remoteplate_a_fault_between_the_plates_reset_and_jafflrs_is_refused_both_latched(split):
    """Kitchen.reset: the plate cleared, then a fault that needs a person latched in jafflr
    before jafflr cleared (the reset button's hold is older than it): jafflr refuses, and
    the plate is latched again with everything jafflr holds."""
    m = split
    m.world.set_fault('plate-sensor-open', True)
    m.run(0.3)
    m.world.set_fault('plate-sensor-open', False)
    m.hold_reset_button()

    def meanwhile(request, answer):
        if request['op'] == 'reset':
            assert answer['cleared'] and m.plate_shutdown.fault is None
            m.link.on_answer = None
            m.shutdown.trip(CONTROL_LOOP_STALLED, 'meanwhile', now(m), by='a test')
    m.link.on_answer = meanwhile
    with pytest.raises(ResetRefused, match='control-loop-stalled latched during the reset'):
        reset(m)
    assert m.jafflr_reasons() == {PLATE_SENSOR_OPEN, CONTROL_LOOP_STALLED}
    assert m.plate_reasons() == {PLATE_SENSOR_OPEN, CONTROL_LOOP_STALLED}
    m.run(1)
    assert not m.world.relay_closed() and m.plate_controller.status()['phase'] == 'faulted'


def test_remoteplate_a_ping_during_a_reset_does_not_carry_the_cleared_faults_back(split):
    """CI, stop 12: a ping whose faults were read while a reset held the link was sent
    after it, and the plate latched again what the person had just cleared (then jafflr
    took it back from the plate). The faults a ping carries are read holding the link."""
    m = split
    stop(m)
    m.run(0.2)
    read_stale = threading.Event()
    records = m.shutdown.records

    def watched():
        got = records()
        if threading.current_thread().name == 'pinger' and got:
            read_stale.set()
        return got
    m.shutdown.records = watched
    pinger = threading.Thread(target=m.remote._sync, args=('ping',), name='pinger')

    def meanwhile(request, answer):
        if request['op'] == 'reset':
            m.link.on_answer = None
            pinger.start()                  # the link loop's ping, while the reset holds it
            read_stale.wait(0.5)            # it reads jafflr's faults now, or after the reset
    m.link.on_answer = meanwhile
    assert reset(m).reason == STOPPED
    pinger.join(5)
    assert not read_stale.is_set(), 'a ping read the faults while a reset held the link'
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None
    m.run(0.5)
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None


def test_remoteplate_an_answer_from_before_a_reset_does_not_latch_its_faults_again(split):
    """The link loop mirrors the plate's faults after its ping returned, outside the link:
    a reset that lands in between must not see them latched again from that older answer
    (which told the plate: both latched after a reset the person saw succeed)."""
    m = split
    stop(m)
    m.run(0.2)
    m.remote._sync('ping')                  # the loop's ping: the plate holds STOPPED
    answer = m.remote._plate_faults
    assert reset(m).reason == STOPPED       # a reset before the loop mirrors its answer
    m.remote._plate_faults = answer         # as the loop read it before the reset
    m.remote._mirror(now(m))
    assert m.shutdown.fault is None, 'an answer from before the reset latched it again'
    m.run(0.5)
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None


def test_remoteplate_a_stop_pressed_during_a_reset_is_not_cleared_unseen(split):
    """The plate was reset for what jafflr held (lid-open); a STOP pressed before jafflr
    cleared must not be cleared with it: jafflr refuses, and both hold the STOP."""
    m = split
    m.shutdown.trip(LID_OPEN, 'lid opened', now(m), by='a test')
    m.run(0.2)
    assert m.plate_reasons() == {LID_OPEN}

    def meanwhile(request, answer):
        if request['op'] == 'reset':
            m.link.on_answer = None
            assert answer['cleared']
            stop(m)                     # the courier tells the plate: the link is busy
    m.link.on_answer = meanwhile
    with pytest.raises(ResetRefused, match='stopped latched during the reset: reset again'):
        reset(m)
    assert STOPPED in m.jafflr_reasons()
    m.run(0.3)
    assert STOPPED in m.plate_reasons()
    assert reset(m).reason == LID_OPEN            # seen now: a second reset clears both
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None


def test_remoteplate_reset_with_nothing_latched_asks_the_plate_nothing(split):
    m = split
    sent = len(m.link.requests)
    assert m.remote.reset_with(lambda reasons: 'cleared') == 'cleared'
    assert len(m.link.requests) == sent


# -- plate-lost ----------------------------------------------------------------------------------
def test_remoteplate_the_plate_dying_mid_toast_is_plate_lost_and_the_relay_opens(split):
    m = split
    order = heating(m)
    m.kill_plate()                      # its heater pin stays high: only the monostable is left
    killed_at = now(m)
    m.run(0.1)
    fault = m.shutdown.fault
    assert fault.reason == PLATE_LOST and fault.by == "jafflr's plate link"
    assert 'ConnectionRefusedError' in fault.detail
    assert fault.cleared_by == AT_MACHINE
    assert m.world.is_active('heater_relay')
    m.run_until(lambda: not m.world.relay_closed(), 2)
    assert now(m) - killed_at <= HOLD_S + 0.1
    assert not m.world.status()['motor_enable']
    m.run(1)
    assert order.state == 'failed' and order.failure['reason'] == PLATE_LOST
    assert m.remote.status() == LOST_STATUS and not m.remote.attached
    assert m.remote.metrics() is None


def test_remoteplate_plate_lost_after_the_grace_at_start(make_split):
    m = make_split(plate=False)
    grace = m.remote.grace_s
    assert grace == 10.0
    m.run(grace - 1.0)
    assert m.shutdown.fault is None and not m.remote.attached
    m.run(1.2)
    fault = m.shutdown.fault
    assert fault.reason == PLATE_LOST
    assert "did not answer jafflr's hello for 10." in fault.detail


def test_remoteplate_a_plate_that_starts_within_the_grace_is_attached_without_a_fault(
        make_split):
    m = make_split(plate=False)
    m.run(5)
    m.start_plate()
    m.run(10)
    assert m.remote.attached and m.shutdown.fault is None and m.plate_shutdown.fault is None


def test_remoteplate_after_a_reconnect_the_plate_takes_jafflrs_faults(split):
    m = split
    order = heating(m)
    m.kill_plate()
    m.run(0.2)
    stop(m)                                     # while the plate is gone
    assert m.jafflr_reasons() == {PLATE_LOST, STOPPED}
    m.start_plate()
    assert m.plate_shutdown.fault is None       # nothing saved: it was not told
    m.run(0.1)
    assert m.remote.attached and m.link.requests[-1] in ('ping', 'hello')
    assert m.plate_reasons() == {PLATE_LOST, STOPPED}
    m.run(3)
    assert not m.world.relay_closed() and m.plate_controller.status()['target_c'] is None
    assert order.state == 'failed'
    m.hold_reset_button()
    assert reset(m).reason == PLATE_LOST
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None
    assert makes_a_toastie(m).state == 'done'


def test_remoteplate_a_person_resets_after_the_plate_restarts(split):
    """plate-lost needs a person at the machine (person_resets: refused without the
    button, accepted with it)."""
    m = split
    m.kill_plate()
    m.run(0.2)
    m.start_plate()
    m.run(0.2)
    assert person_resets(m).reason == PLATE_LOST
    assert m.plate_shutdown.fault is None and m.shutdown.fault is None


# -- jafflr's own dead-man -----------------------------------------------------------------------
def test_remoteplate_jafflrs_deadman_trips_when_the_link_loop_stalls_and_tells_the_plate(
        make_split):
    m = make_split(lease_s=6.0)                 # jafflr's dead-man (2 s) speaks first
    heating(m)
    m.stall_control_loop()
    m.run_until(lambda: m.shutdown.latched, 3)
    fault = m.shutdown.fault
    assert fault.reason == CONTROL_LOOP_STALLED and fault.by == 'the dead-man'
    assert "jafflr's plate link did not tick for 2 s" in fault.detail
    assert m.plate_shutdown.fault.reason == CONTROL_LOOP_STALLED
    assert m.plate_shutdown.fault.by == 'jafflr (the dead-man)'
    m.run(0.1)
    assert not m.world.is_active('heater_relay')



# -- never waiting on the link where nobody should -----------------------------------------------
def test_remoteplate_status_does_not_wait_on_a_request_in_flight(split):
    """A request waiting on a hung plate (up to the link's timeout) holds the link; the
    panel, /v2/status and the press read the last status meanwhile."""
    m = split
    inside, release = threading.Event(), threading.Event()

    def hangs(request, answer):
        inside.set()
        release.wait(5)
    m.link.on_answer = hangs
    asking = threading.Thread(target=m.remote.keep_alive, args=(now(m),))
    asking.start()
    try:
        assert inside.wait(5)
        started = time.monotonic()
        shown = m.remote.status()
        assert time.monotonic() - started < 0.5
        assert shown['temp_c'] is not None
    finally:
        release.set()
        asking.join(5)


def test_remoteplate_a_stop_does_not_ask_a_lost_plate(split):
    m = split
    m.kill_plate()
    m.run(0.2)
    assert m.shutdown.fault.reason == PLATE_LOST
    tried = m.link.attempts
    stop(m)
    assert m.link.attempts == tried, 'the hello that attaches again carries it'
    assert m.jafflr_reasons() == {PLATE_LOST, STOPPED}


# -- what the review of the split found ------------------------------------------------------
def test_remoteplate_a_stop_does_not_wait_for_a_busy_link_the_courier_tells_the_plate(split):
    """A request holding the link (a slow scrape, the press) must not hold up STOP: jafflr's
    outputs go off at once and the courier tells the plate as soon as the link is free."""
    m = split
    heating(m)
    with held_by_another_thread(m.jafflr.plate._lock):
        started = time.monotonic()
        stop(m)
        assert time.monotonic() - started < 0.5, 'STOP waited for the link'
        assert m.shutdown.fault.reason == STOPPED and m.plate_shutdown.fault is None
    deadline = time.monotonic() + 5
    while m.plate_shutdown.fault is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert m.plate_shutdown.fault.reason == STOPPED, 'the courier did not tell the plate'
    assert not m.world.is_active('heater_relay')


def test_remoteplate_keep_alive_goes_over_the_link_once_every_ten_seconds(split):
    m = split
    order = heating(m, 'light')
    m.link.requests.clear()
    m.run(30.0)
    assert 1 <= m.link.requests.count('keep_alive') <= 4, m.link.requests.count('keep_alive')


def test_remoteplate_a_command_after_the_lease_ran_out_says_hello_first(split):
    m = split
    m.run(0.5)
    m.link.close()                              # the connection went: the plate detached,
    m.jafflr.plate._attached = False            # as jafflr learns from a failed request
    m.jafflr.plate.set_target(180.0, now(m))
    assert m.link.requests[-2:] == ['hello', 'set_target']
    assert m.plate_controller.status()['target_c'] == 180.0
