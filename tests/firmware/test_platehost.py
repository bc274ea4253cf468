"""firmware/platehost.py: the plate process's side of the link to jafflr, on the whole
machine in process with the plate apart (tests/support/plate.py): the heartbeat beaten
only while jafflr is attached, the lease, jafflr's faults taken, the plate's fault kept in
plate.json, the requests' errors. What the relay does is read from the simulated world."""
import json
import os
import re

import pytest

from firmware.platehost import PLATE_FILE, LatenessHistogram, PlateHost
from firmware.safety import (CONTROL_LOOP_STALLED, DISPENSER_JAM, PLATE_SENSOR_OPEN, STOPPED)

HOLD_S = 1.0        # the heartbeat monostable (board.heartbeat_hold_s)


def heating(m, doneness='burnt'):
    """A toastie asked for and the relay conducting (the plate heats for it)."""
    order, _ = m.submit(['cheese'], doneness)
    m.run_until(lambda: m.world.relay_closed(), 60)
    return order


def beating(m):
    status = m.world.status()
    return status['heartbeat_age_s'] is not None and status['heartbeat_age_s'] < 0.5


# -- the heartbeat and the connection ------------------------------------------------------------
def test_platehost_beats_the_heartbeat_only_while_jafflr_is_attached(make_split):
    m = make_split(plate=False)
    m.start_plate()
    m.kill_jafflr()             # a plate with no jafflr: its loop runs, nothing beats
    m.run(3)
    status = m.world.status()
    assert not m.plate_host.attached and status['heartbeat_age_s'] is None
    assert not status['motor_enable']
    assert m.plate_controller.status()['temp_c'] is not None    # its loop still reads
    m.restart_jafflr()
    m.run(0.3)
    assert m.plate_host.attached and beating(m) and m.world.status()['motor_enable']
    assert m.plate_host.attaches == 1


def test_platehost_jafflr_gone_mid_toast_heater_off_heartbeat_stops_no_fault(split):
    m = split
    heating(m)
    target = m.plate_controller.status()['target_c']
    assert target is not None and m.world.is_active('heater_relay')
    m.kill_jafflr()                                 # its socket closes
    assert not m.plate_host.attached
    assert m.plate_controller.status()['target_c'] is None     # dropped at once
    m.run(0.1)                                      # the next plate tick
    assert not m.world.is_active('heater_relay') and not m.world.relay_closed()
    m.run(HOLD_S + 0.2)
    status = m.world.status()
    assert status['heartbeat_age_s'] > HOLD_S and not status['motor_enable']
    assert m.plate_shutdown.fault is None           # a clean or a crashed jafflr: no fault
    m.run(10)
    assert m.plate_shutdown.fault is None and not m.world.relay_closed()


def test_platehost_another_connection_going_does_not_detach_jafflr(split):
    m = split
    host, now = m.plate_host, m.clock.monotonic()
    other = object()                                # `python -m api.plate status`
    assert host.handle({'op': 'status'}, now, other)['attached'] is True
    host.disconnected(other, now)
    assert host.attached
    m.run(2)
    assert beating(m)


# -- the lease -----------------------------------------------------------------------------------
def test_platehost_lease_runs_out_when_jafflr_is_stuck_latches_stalled_and_jafflr_mirrors(
        make_split):
    m = make_split(lease_s=2.0, jafflr_deadman_s=6.0)   # the plate's lease speaks first
    order = heating(m)
    m.stall_control_loop()                              # attached, silent
    stuck_at = m.clock.monotonic()
    m.run_until(lambda: m.plate_shutdown.latched, 4)
    fault = m.plate_shutdown.fault
    assert fault.reason == CONTROL_LOOP_STALLED and fault.by == "the plate's lease"
    assert 1.9 <= fault.at - stuck_at <= 2.2
    assert re.search(r"jafflr did not renew the plate's lease for 2\.[0-2] s \(limit 2 s\)",
                     fault.detail)
    assert not m.plate_host.attached
    m.run(0.1)
    assert not m.world.is_active('heater_relay') and not m.world.relay_closed()
    m.run(HOLD_S + 0.1)
    assert not beating(m) and not m.world.status()['motor_enable']
    assert not m.shutdown.latched                   # jafflr's own dead-man is 6 s
    m.stall_control_loop(False)                     # it comes back: the plate's fault is its
    m.run(0.2)
    assert m.shutdown.fault.reason == CONTROL_LOOP_STALLED
    assert m.shutdown.fault.by == "the plate process (the plate's lease)"
    assert order.state == 'failed'
    assert not m.world.relay_closed()


def test_platehost_its_own_deadman_trips_when_its_loop_stalls(split):
    m = split
    heating(m)
    m.stall_plate()
    m.run_until(lambda: m.plate_shutdown.latched, 3)
    fault = m.plate_shutdown.fault
    assert fault.reason == CONTROL_LOOP_STALLED and fault.by == 'the dead-man'
    assert not m.world.is_active('heater_relay')
    m.run(0.2)
    assert m.shutdown.fault.reason == CONTROL_LOOP_STALLED      # mirrored by the ping
    assert m.remote.metrics()['stalls'] == 1


# -- jafflr's faults, taken ----------------------------------------------------------------------
def test_platehost_a_stop_in_jafflr_latches_in_the_plate_heater_off_at_once(split):
    m = split
    heating(m)
    m.kitchen.stop(m.clock.monotonic(), m.clock.time(), 'a test')
    fault = m.plate_shutdown.fault                  # told by the listener, not the next ping
    assert fault.reason == STOPPED and fault.by == 'jafflr (stop (a test))'
    assert not m.world.is_active('heater_relay') and not m.world.relay_closed()
    assert m.link.requests[-1] == 'trip'


def test_platehost_a_jam_in_jafflr_latches_in_the_plate(split):
    m = split
    m.world.set_fault('dispenser-jam:vegemite', True)
    order, _ = m.submit(['cheese', 'vegemite'], 'light')
    m.run_until(lambda: order.finished, 120)
    assert m.shutdown.fault.reason == DISPENSER_JAM
    assert m.plate_shutdown.fault.reason == DISPENSER_JAM
    assert m.plate_controller.status()['phase'] == 'faulted'


def test_platehost_takes_each_reason_once_keeps_its_own_first(split):
    m = split
    m.plate_shutdown.trip(PLATE_SENSOR_OPEN, 'probe', m.clock.monotonic(), by='a test')
    faults = [{'reason': STOPPED, 'detail': 'from jafflr', 'wall': 1.0, 'by': 'x'}]
    for _ in range(3):
        m.plate_host.handle({'op': 'ping', 'faults': faults}, m.clock.monotonic(), m.link.conn)
    record = m.plate_shutdown.record()
    assert record['fault']['reason'] == PLATE_SENSOR_OPEN
    assert [f['reason'] for f in record['later']] == [STOPPED]
    assert record['later'][0]['by'] == 'jafflr (x)' and record['later'][0]['wall'] == 1.0


# -- kept across a restart of the plate ----------------------------------------------------------
def test_platehost_its_fault_survives_a_restart_of_the_plate(split, tmp_path):
    m = split
    m.world.set_fault('plate-sensor-open', True)
    m.run(0.2)
    assert m.plate_shutdown.fault.reason == PLATE_SENSOR_OPEN
    with open(os.path.join(tmp_path, PLATE_FILE)) as f:
        assert json.load(f)['fault']['fault']['reason'] == PLATE_SENSOR_OPEN
    m.world.set_fault('plate-sensor-open', False)
    m.kill_plate()
    m.start_plate()
    fault = m.plate_shutdown.fault
    assert fault.reason == PLATE_SENSOR_OPEN and fault.restored
    with pytest.raises(Exception, match='heater faulted'):
        m.plate_controller.set_target(180.0, m.clock.monotonic())
    m.run(0.5)
    assert not m.world.relay_closed()


def test_platehost_a_reset_is_saved_so_a_restart_does_not_bring_it_back(split, tmp_path):
    m = split
    m.kitchen.stop(m.clock.monotonic(), m.clock.time(), 'a test')
    m.run(0.2)
    m.kitchen.reset(m.clock.monotonic(), m.clock.time(), 'a test')
    m.kill_plate()
    m.start_plate()
    assert m.plate_shutdown.fault is None


# -- requests ------------------------------------------------------------------------------------
def test_platehost_answers_every_request_with_its_status_and_faults(split):
    m = split
    answer = m.plate_host.handle({'op': 'status'}, m.clock.monotonic(), None)
    assert set(answer) == {'plate', 'faults', 'attached'}
    assert answer['plate']['temp_c'] == pytest.approx(m.world.plate.probe_c, abs=1.0)
    assert answer['faults'] == [] and answer['attached'] is True


@pytest.mark.parametrize('request_, error, words', [
    ({'op': 'boil'}, 'unknown-op', "unknown op 'boil': one of hello, ping"),
    ('not a dict', 'unknown-op', 'unknown op None'),
    ({'op': 'set_target'}, 'invalid', "set_target: KeyError: 'target_c'"),
    ({'op': 'set_target', 'target_c': 'hot'}, 'invalid', 'set_target: ValueError'),
    ({'op': 'set_target', 'target_c': 999}, 'out-of-range',
     'Requested temperature (999.0) out of range (40.0:240.0)'),
    ({'op': 'begin_order', 'max_heater_on_s': 0}, 'out-of-range', 'budget (0.0) must be above 0'),
    ({'op': 'reset'}, 'invalid', "reset: KeyError: 'reasons'"),
])
def test_platehost_a_bad_request_is_answered_with_what_was_wrong(split, request_, error, words):
    answer = split.plate_host.handle(request_, split.clock.monotonic(), split.link.conn)
    assert answer['error'] == error and words in answer['message']


def test_platehost_set_target_while_latched_is_heater_faulted(split):
    m = split
    m.plate_shutdown.trip(PLATE_SENSOR_OPEN, 'probe', m.clock.monotonic(), by='a test')
    answer = m.plate_host.handle({'op': 'set_target', 'target_c': 180}, m.clock.monotonic(),
                                 m.link.conn)
    assert answer['error'] == 'heater-faulted' and 'plate-sensor-open' in answer['message']
    assert [f['reason'] for f in answer['faults']] == [PLATE_SENSOR_OPEN]


def test_platehost_lease_must_be_positive(split):
    with pytest.raises(ValueError, match=r'lease \(0\) must be above 0 s'):
        PlateHost(split.plate_parts.plate, split.plate_shutdown, lease_s=0)


def test_platehost_lateness_histogram_counts_cumulatively():
    late = LatenessHistogram(buckets=(0.001, 0.01))
    for s in (0.0005, 0.002, 0.002, 0.5):
        late.observe(s)
    snap = late.snapshot()
    assert snap['buckets'] == [[0.001, 1], [0.01, 3], [None, 4]]
    assert snap['count'] == 4 and snap['sum'] == pytest.approx(0.5045)


def test_platehost_obeys_commands_only_from_the_attached_jafflr(split):
    """An old jafflr's connection, a status tool, or a plate that is stopping: refused.
    Off, trip and status stay anyone's."""
    m = split
    now = m.clock.monotonic()
    stranger = object()
    answer = m.plate_host.handle({'op': 'set_target', 'target_c': 180}, now, stranger)
    assert answer['error'] == 'heater-faulted' and 'not attached' in answer['message']
    assert m.plate_controller.status()['target_c'] is None
    assert 'error' not in m.plate_host.handle({'op': 'off'}, now, stranger)
    assert 'error' not in m.plate_host.handle({'op': 'set_target', 'target_c': 180}, now,
                                              m.link.conn)
    m.plate_host.close(now)
    answer = m.plate_host.handle({'op': 'set_target', 'target_c': 170}, now, m.link.conn)
    assert answer['error'] == 'heater-faulted' and 'stopping' in answer['message']
    assert m.plate_controller.status()['target_c'] is None      # close switched it off
    assert not m.plate_host.beat_allowed()


def test_platehost_heartbeat_stops_while_anything_is_latched(split):
    """A lid opened (or any fault) drops the motors' enable in hardware within the
    monostable's hold, whatever jafflr does next."""
    m = split
    m.run(1.0)
    assert m.plate_host.beat_allowed() and m.world.status()['motor_enable']
    m.world.set_fault('lid-open', True)
    assert m.plate_shutdown.fault.reason == 'lid-open'      # the switch's edge, at once
    assert not m.plate_host.beat_allowed()
    m.run(1.2)
    assert not m.world.status()['motor_enable']


def test_platehost_a_reset_is_refused_while_the_lid_is_open(split):
    from firmware.errors import ResetRefused
    m = split
    m.run(0.5)
    m.world.set_fault('lid-open', True)
    m.run(0.3)
    assert m.shutdown.fault.reason == 'lid-open'
    with pytest.raises(ResetRefused, match='the lid is open: fix that first'):
        m.kitchen.reset(m.clock.monotonic(), m.clock.time(), 'a test')
    assert m.shutdown.latched and m.plate_shutdown.latched
    m.world.set_fault('lid-open', False)
    m.kitchen.reset(m.clock.monotonic(), m.clock.time(), 'a test')
    assert not m.shutdown.latched and not m.plate_shutdown.latched
