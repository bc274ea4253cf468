"""The one latched shutdown, and the heater checks (after Klipper's verify_heater), on
plain numbers: each check trips when it should and not before."""
import math
import threading

import pytest

from firmware import safety
from firmware.errors import ConfigError
from firmware.safety import FAULT_HELP, Fault, HeaterVerifier, Shutdown
from tests.support.threads import held_by_another_thread

TICK = 0.1


# -- Shutdown ---------------------------------------------------------------------------
def test_shutdown_first_trip_latches_with_reason_detail_and_time():
    sd = Shutdown()
    assert not sd.latched and sd.fault is None
    fault = sd.trip('lid-open', 'lid switch reads open', 12.5, wall=1_700_000_012.5)
    assert sd.latched
    assert sd.fault == fault == Fault('lid-open', 'lid switch reads open', 12.5, 1_700_000_012.5)
    assert fault.help == FAULT_HELP['lid-open']
    assert fault.as_dict()['reason'] == 'lid-open'


def test_shutdown_stamps_wall_time_from_the_clock_it_was_handed():
    sd = Shutdown(wall_clock=lambda: 1_700_000_100.0)
    assert sd.trip('estop', 'pressed', 3.0).wall == 1_700_000_100.0
    assert Shutdown().trip('estop', 'pressed', 3.0).wall is None


def test_shutdown_later_trips_are_recorded_but_do_not_replace_the_first():
    sd, heard = Shutdown(), []
    sd.add_listener(heard.append)
    first = sd.trip('heater-not-heating', 'no gain', 1.0)
    assert sd.trip('heater-runaway', 'rising while off', 2.0) is first
    sd.trip('heater-runaway', 'still rising', 3.0)
    sd.trip('heater-not-heating', 'the same again', 4.0)
    assert sd.fault is first
    assert [(f.reason, f.at) for f in sd.later] == [('heater-runaway', 2.0)]
    assert sd.at_machine_reasons() == ['heater-not-heating', 'heater-runaway']
    assert heard == [first]


def test_shutdown_a_failing_listener_does_not_stop_the_others():
    sd, heard = Shutdown(), []

    def broken(fault):
        raise RuntimeError('panel gone')
    sd.add_listener(broken)
    sd.add_listener(heard.append)
    sd.trip('estop', 'pressed', 1.0)
    assert [f.reason for f in heard] == ['estop']


def test_shutdown_reset_clears_and_returns_the_fault():
    sd = Shutdown()
    assert sd.reset(0.0, 'nobody') is None
    fault = sd.trip('stopped', 'stop pressed on the panel', 5.0)
    sd.trip('lid-open', 'later', 6.0)
    assert sd.reset(9.0, 'panel') is fault
    assert not sd.latched and sd.later == []
    assert sd.trip('estop', 'pressed', 10.0).reason == 'estop'


def test_shutdown_unknown_reason_still_shuts_down():
    sd = Shutdown()
    assert sd.trip('cosmic-ray', 'bit flip', 1.0).help.startswith('Unknown fault')
    assert sd.latched


def test_shutdown_run_unless_latched_refuses_once_latched():
    sd, ran = Shutdown(), []
    assert sd.run_unless_latched(lambda: ran.append(1))
    sd.trip('stopped', 'stop', 1.0)
    assert not sd.run_unless_latched(lambda: ran.append(2))
    assert ran == [1]


def test_shutdown_concurrent_trips_latch_one_fault_and_notify_once():
    sd, heard = Shutdown(), []
    sd.add_listener(heard.append)
    start = threading.Barrier(8)

    def trip(i):
        start.wait()
        sd.trip(f'reason-{i}', 'race', float(i))
    threads = [threading.Thread(target=trip, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert heard == [sd.fault]
    assert len(sd.later) == 7


def test_shutdown_output_switched_on_by_one_thread_stays_off_after_a_trip_from_another():
    sd, relay, stop = Shutdown(), {'on': False, 'switched': 0}, threading.Event()
    sd.add_listener(lambda fault: relay.update(on=False))

    def control_loop():            # what PlateController._switch does, as fast as it can
        while not stop.is_set():
            if sd.run_unless_latched(lambda: relay.update(on=True)):
                relay['switched'] += 1
    loop = threading.Thread(target=control_loop)
    loop.start()
    try:
        while relay['switched'] < 100:
            pass
        sd.trip('estop', 'pressed', 1.0)
        switched = relay['switched']
        for _ in range(20000):                   # the loop keeps trying meanwhile
            assert relay['on'] is False
    finally:
        stop.set()
        loop.join()
    assert relay['switched'] <= switched + 1     # at most one that began before the trip


def test_shutdown_adopt_ignores_records_read_before_a_reset_here():
    """Another process's faults, read before a reset here (epoch = resets then), are what
    the reset cleared: adopting them later latches nothing. Read after, they latch."""
    s = Shutdown()
    s.trip('stopped', 'stop pressed', 1.0, by='a test')
    theirs = [{'reason': 'stopped', 'detail': 'stop pressed', 'wall': None, 'by': 'x'}]
    epoch = s.resets
    s.reset(2.0, 'a test')
    assert s.resets == epoch + 1
    s.adopt(theirs, 3.0, 'the plate process', epoch=epoch)
    assert not s.latched
    s.adopt(theirs, 4.0, 'the plate process', epoch=s.resets)
    assert s.fault.reason == 'stopped' and s.fault.by == 'the plate process (x)'


def test_shutdown_readers_do_not_wait_for_its_lock():
    """A thread holding the shutdown's lock (a station switching an output on, in
    run_unless_latched) must not hold up the status readers: under load the GIL leaves
    such a holder waiting, and every reader queued behind it (a STOP's answer too)."""
    s = Shutdown()
    s.trip('stopped', 'stop pressed', 1.0, by='a test')
    s.trip('lid-open', 'lid opened', 2.0, by='a test')
    answers = {}
    with held_by_another_thread(s._lock):
        reader = threading.Thread(target=lambda: answers.update(
            later=[f.reason for f in s.later], clearance=s.clearance(), record=s.record(),
            records=s.records(), since=s.at_machine_since(), reasons=s.at_machine_reasons()))
        reader.start()
        reader.join(2)
        alive = reader.is_alive()
    reader.join(5)
    assert not alive, 'a reader waited for the lock'
    assert answers['later'] == ['lid-open'] and answers['clearance'] == safety.PANEL
    assert [r['reason'] for r in answers['records']] == ['stopped', 'lid-open']
    assert answers['since'] is None and answers['reasons'] == []


def test_fault_help_covers_every_public_reason_with_one_sentence():
    reasons = {'plate-sensor-open', 'plate-sensor-error', 'plate-sensor-fault',
               'plate-over-temperature', 'heater-not-heating', 'heater-runaway',
               'control-loop-stalled', 'lid-open', 'estop', 'heater-on-time-limit', 'stopped',
               'unclean-start'}
    assert reasons <= set(FAULT_HELP)
    public = {v for k, v in vars(safety).items() if k.isupper() and isinstance(v, str)}
    assert public - {safety.AT_MACHINE, safety.PANEL} == set(FAULT_HELP)
    for text in FAULT_HELP.values():
        assert text.endswith('.') and len(text) < 160


# -- who may clear what ----------------------------------------------------------------
def test_cleared_by_sorts_every_reason_into_one_of_two_kinds():
    assert set(safety.CLEARED_BY) == set(FAULT_HELP), 'a new reason must say who may clear it'
    assert set(safety.CLEARED_BY.values()) == {safety.AT_MACHINE, safety.PANEL}
    for reason in ('plate-over-temperature', 'heater-runaway', 'heater-not-heating',
                   'heater-on-time-limit', 'plate-sensor-open', 'plate-sensor-error',
                   'plate-sensor-fault', 'control-loop-stalled', 'control-error',
                   'unclean-start'):
        assert safety.cleared_by(reason) == safety.AT_MACHINE, reason
    for reason in ('lid-open', 'estop', 'stopped', 'dispenser-jam', 'press-jam',
                   'conveyor-jam'):
        assert safety.cleared_by(reason) == safety.PANEL, reason
    assert safety.cleared_by('cosmic-ray') == safety.AT_MACHINE, 'unknown: the strict kind'
    d = Fault('estop', 'pressed', 1.0).as_dict()
    assert d['cleared_by'] == 'panel' and 'admin token' in d['how_to_clear']
    assert 'reset button' in Fault('heater-runaway', 'x', 1.0).as_dict()['how_to_clear']


def test_shutdown_clearance_is_the_strictest_of_the_fault_and_the_later_ones():
    sd = Shutdown()
    assert sd.clearance() is None and sd.at_machine_since() is None
    sd.trip('stopped', 'stop pressed', 1.0)
    assert sd.clearance() == safety.PANEL and sd.at_machine_since() is None
    sd.trip('plate-over-temperature', 'plate at 270 C', 4.0)
    assert sd.clearance() == safety.AT_MACHINE and sd.at_machine_since() == 4.0


def test_shutdown_reset_check_refuses_under_the_lock_and_keeps_the_fault():
    sd = Shutdown()
    sd.trip('heater-runaway', 'rising', 1.0)

    def refuse(shutdown):
        assert shutdown.at_machine_reasons() == ['heater-runaway']
        raise PermissionError('hold the reset button')
    with pytest.raises(PermissionError):
        sd.reset(2.0, 'the panel', check=refuse)
    assert sd.fault.reason == 'heater-runaway'
    assert sd.reset(3.0, 'the panel', check=lambda shutdown: None).reason == 'heater-runaway'


# -- a latched fault is saved, after the outputs are off, and restored at start -----------
def test_shutdown_saves_the_fault_after_the_first_listeners_and_before_the_others():
    order, saved = [], []

    def save(record):
        order.append('save')
        saved.append(record)
    sd = Shutdown(wall_clock=lambda: 1_700_000_000.0, save=save)
    sd.add_listener(lambda f: order.append('events'))
    sd.add_listener(lambda f: order.append('outputs off'), first=True)
    sd.trip('heater-runaway', 'rose 3 C with the heater off', 7.0, by='control loop')
    assert order == ['outputs off', 'save', 'events']
    assert saved[-1] == {'fault': {'reason': 'heater-runaway', 'detail': 'rose 3 C with the '
                                   'heater off', 'wall': 1_700_000_000.0, 'by': 'control loop'},
                         'later': []}
    sd.trip('lid-open', 'opened', 8.0)
    sd.trip('lid-open', 'opened again', 9.0)     # not new: not written again
    assert len(saved) == 2 and [r['reason'] for r in saved[-1]['later']] == ['lid-open']
    sd.reset(10.0, 'a person')
    assert saved[-1] is None and len(saved) == 3


def test_shutdown_a_save_that_fails_leaves_the_fault_latched_and_the_listeners_called():
    heard = []

    def full_disk(record):
        raise OSError(28, 'No space left on device')
    sd = Shutdown(save=full_disk)
    sd.add_listener(heard.append)
    fault = sd.trip('plate-sensor-open', 'open', 1.0)
    assert sd.fault is fault and heard == [fault]


def test_shutdown_trip_names_what_tripped_it():
    sd = Shutdown()
    assert sd.trip('estop', 'pressed', 1.0, by='e-stop switch').by == 'e-stop switch'
    sd.reset(2.0, 't')
    assert sd.trip('estop', 'pressed', 3.0).by == f'thread {threading.current_thread().name}'


def test_shutdown_restore_latches_the_saved_fault_with_outputs_off_and_does_not_save_it():
    saved, off = [], []
    first = Shutdown(wall_clock=lambda: 1_700_000_000.0, save=saved.append)
    first.trip('plate-over-temperature', 'plate at 262.0 C', 50.0, by='control loop')
    first.trip('estop', 'pressed', 51.0)
    again = Shutdown(save=lambda r: pytest.fail('a restored fault is not written again'))
    again.add_listener(off.append, first=True)
    fault = again.restore(saved[-1], 3.0)
    assert again.latched and fault.restored and fault.at == 3.0
    assert (fault.reason, fault.detail, fault.wall, fault.by) == (
        'plate-over-temperature', 'plate at 262.0 C', 1_700_000_000.0, 'control loop')
    assert [f.reason for f in again.later] == ['estop'] and off == [fault]
    assert not again.run_unless_latched(lambda: pytest.fail('an output switched on'))
    assert Shutdown().restore(None, 1.0) is None


# -- the reset button -------------------------------------------------------------------
def test_reset_button_arms_after_a_two_second_hold_for_two_minutes():
    b = safety.ResetButton()
    b.pressed(10.0)
    assert b.held() and b.armed_at(11.9) is None
    assert b.armed_at(12.0) == 12.0, 'armed as the hold completes, still held'
    b.released(12.5)
    assert b.armed_at(12.5) == 12.0 and b.armed_at(132.0) == 12.0
    assert b.armed_at(132.1) is None, 'two minutes after the hold it has lapsed'
    assert b.describe(20.0) == {'held': False, 'armed': True, 'armed_left_s': 112.0,
                                'hold_s': 2.0, 'armed_s': 120.0}


def test_reset_button_short_press_stuck_button_and_disarm():
    b = safety.ResetButton()
    b.pressed(0.0)
    b.released(1.9)
    assert b.armed_at(2.0) is None, 'a tap is not a hold'
    b.pressed(5.0)                  # and then it sticks down
    assert b.armed_at(7.0) == 7.0 and b.armed_at(200.0) is None, 'stuck arms once, briefly'
    b.released(300.0)
    assert b.armed_at(300.0) is None
    b.pressed(400.0)
    b.released(403.0)
    b.disarm()
    assert b.armed_at(403.0) is None


# -- HeaterVerifier ---------------------------------------------------------------------
def run(verifier, temps, target, heater_on=True, start=0.0):
    """Feed one reading per tick; returns (time, fault) of the first fault, else None."""
    for i, temp in enumerate(temps):
        now = start + i * TICK
        fault = verifier.check(now, temp, target, heater_on)
        if fault is not None:
            return now, fault
    return None


def ramp(start_c, rate_c_per_s, seconds):
    return [start_c + rate_c_per_s * i * TICK for i in range(round(seconds / TICK))]


@pytest.mark.parametrize('temp', [-25.0, 501.0, math.nan, math.inf])
def test_verifier_reading_out_of_range_is_a_sensor_fault(temp):
    assert HeaterVerifier().check(0.0, temp, None, False)[0] == 'plate-sensor-fault'


def test_verifier_over_temperature_trips_whatever_the_target():
    v = HeaterVerifier({'max_temp_c': 260.0})
    assert v.check(0.0, 259.9, None, False) is None
    reason, detail = v.check(0.1, 260.1, 200.0, True)
    assert reason == 'plate-over-temperature' and '260.1' in detail


def test_verifier_healthy_heat_up_never_trips():
    assert run(HeaterVerifier(), ramp(21.0, 0.8, 240), 200.0) is None


def test_verifier_slow_but_steady_heating_renews_its_goal():
    # 2 C every 16 s meets each 20 s goal: slow is not broken.
    assert run(HeaterVerifier(), ramp(21.0, 0.125, 1200), 200.0) is None


def test_verifier_no_gain_trips_not_heating_just_after_check_gain_time():
    when, (reason, detail) = run(HeaterVerifier(), [21.0] * 400, 200.0)
    assert reason == 'heater-not-heating'
    assert 20.0 <= when <= 20.2
    assert 'gained less than 2.0 C in 20 s' in detail


def test_verifier_holding_below_band_trips_after_max_error_degree_seconds():
    v = HeaterVerifier()
    assert run(v, [200.0] * 50, 200.0) is None               # at target: in band
    when, (reason, detail) = run(v, [193.0] * 1000, 200.0, start=5.0)
    assert reason == 'heater-not-heating'
    assert 5.0 + 59.9 <= when <= 5.0 + 60.2                  # 2 C below the band: 120 / 2 s
    assert 'limit 120' in detail


def test_verifier_brief_dips_below_the_band_are_forgiven_when_back_in_band():
    v = HeaterVerifier()
    for cycle in range(20):
        start = cycle * 60.0
        assert run(v, [190.0] * 100, 200.0, start=start) is None     # 10 s, 50 C.s
        assert run(v, [199.0] * 500, 200.0, start=start + 10) is None


def test_verifier_no_target_means_no_heating_checks():
    assert run(HeaterVerifier(), [21.0] * 1000, None, heater_on=False) is None


def test_verifier_plate_rising_with_heater_off_is_a_runaway():
    when, (reason, detail) = run(HeaterVerifier(), ramp(200.0, 0.7, 30), 200.0, heater_on=False)
    assert reason == 'heater-runaway'
    assert when == pytest.approx(2.5 + 2.0 / 0.7, abs=0.3)
    assert 'heater off' in detail


def probe_after_switch_off(rate_before, rate_after, tau=1.5, seconds=20):
    """The probe's first-order lag behind a plate ramping at rate_before, which turns to
    rate_after when the heater goes off at t=0."""
    probe = 100.0 - rate_before * tau                         # settled lag on the ramp
    plate, temps = 100.0, []
    for _ in range(round(seconds / TICK)):
        plate += rate_after * TICK
        probe += (plate - probe) * (1 - math.exp(-TICK / tau))
        temps.append(probe)
    return temps


def test_verifier_probe_lag_after_a_full_power_switch_off_is_not_a_runaway():
    temps = probe_after_switch_off(rate_before=1.0, rate_after=0.0)
    assert max(temps) - temps[0] > 1.0                        # the probe does keep rising
    assert run(HeaterVerifier(), temps, 100.0, heater_on=False) is None


def test_verifier_heater_on_restarts_the_runaway_watch():
    v = HeaterVerifier()
    for cycle in range(10):                                   # bang-bang-like: 2 s off, then on
        assert run(v, ramp(200.0, 0.7, 2.0), 200.0, heater_on=False, start=cycle * 4) is None
        assert run(v, [201.0] * 20, 200.0, heater_on=True, start=cycle * 4 + 2) is None


def test_verifier_reset_forgets_accumulated_error():
    v = HeaterVerifier()
    run(v, [200.0] * 10, 200.0)
    run(v, [193.0] * 500, 200.0, start=1.0)                  # 100 C.s of 120
    v.reset()
    assert run(v, [200.0] * 10, 200.0, start=60.0) is None
    assert run(v, [193.0] * 500, 200.0, start=61.0) is None


def test_verifier_rejects_bad_settings():
    with pytest.raises(ConfigError, match='HeaterVerifier: unknown setting'):
        HeaterVerifier({'max_temp': 300})
    with pytest.raises(ConfigError, match=r'check_gain_time_s \(1.000\) out of range'):
        HeaterVerifier({'check_gain_time_s': 1})


def test_readme_publishes_who_may_clear_each_fault_as_the_table_says():
    import os
    import re
    readme = os.path.join(os.path.dirname(__file__), '..', '..', 'README.md')
    with open(readme, encoding='utf-8') as f:
        text = f.read()
    kinds = {'a person at the machine': safety.AT_MACHINE, 'the panel': safety.PANEL}
    published = {}
    for cells, who in re.findall(r'^\| ((?:`[a-z-]+`(?:, )?)+) \| (a person at the machine|the '
                                 r'panel) \|', text, re.M):
        for reason in re.findall(r'`([a-z-]+)`', cells):
            published[reason] = kinds[who]
    assert published == safety.CLEARED_BY


def test_shutdown_restored_early_keeps_the_saved_fault_when_the_lid_trips_before_recover():
    """The service restores the saved fault as soon as the shutdown exists, before the lid
    and e-stop callbacks are wired; a lid opened during start-up then only adds a later
    fault, and what is saved again still names the fault a person must look at."""
    saved = []
    record = {'fault': {'reason': 'heater-runaway', 'detail': 'rose 9 C', 'wall': 1.0e9,
                        'by': 'control loop'}, 'later': []}
    s = Shutdown(save=saved.append)
    s.restore(record, 1.0)
    s.trip('lid-open', 'the lid was opened', 1.5)
    again = s.restore(record, 2.0)           # kitchen.recover, later: no second latch
    assert s.fault.reason == 'heater-runaway' and again.reason == 'heater-runaway'
    assert [f.reason for f in s.later] == ['lid-open']
    assert saved[-1]['fault']['reason'] == 'heater-runaway'
    assert [f['reason'] for f in saved[-1]['later']] == ['lid-open']
    assert s.clearance() == safety.AT_MACHINE


def test_reset_button_already_down_when_watched_arms_nothing():
    """A stuck button or a short to ground at start must not arm a reset by itself on
    every restart: it has to be let go and held again."""
    class Input:
        is_active = True
        when_activated = when_deactivated = None
    b, device = safety.ResetButton(), Input()
    b.watch(device, lambda: 10.0)
    assert not b.held() and b.armed_hold(20.0) is None
    device.when_deactivated()
    assert b.armed_hold(20.0) is None
    b.pressed(30.0)
    b.released(32.5)
    assert b.armed_hold(33.0) == (30.0, 32.0)


def test_reset_button_hold_reports_when_it_began_as_well_as_when_it_armed():
    b = safety.ResetButton()
    b.pressed(10.0)
    assert b.armed_hold(12.5) == (10.0, 12.0), 'still held'
    b.released(13.0)
    assert b.armed_hold(20.0) == (10.0, 12.0)
    assert b.armed_hold(140.0) is None


def test_shutdown_record_later_answers_once_outputs_are_off_and_saves_just_after():
    """STOP from HTTP: the trip returns when the first listeners (outputs) ran; the save
    and the other listeners follow on the recorder thread; a reset waits for them."""
    import threading
    disk_free = threading.Event()
    saved, told, order = [], [], []

    def save(record):
        disk_free.wait(5)
        saved.append(record)
        order.append('saved')
    s = Shutdown(save=save)
    s.add_listener(lambda f: order.append('outputs off'), first=True)
    s.add_listener(lambda f: (told.append(f.reason), order.append('told')))
    fault = s.trip('stopped', 'stop pressed', 1.0, record_later=True)
    assert s.latched and fault.reason == 'stopped'
    assert order == ['outputs off'] and saved == [] and told == []   # the disk is held
    resetting = threading.Thread(target=s.reset, args=(2.0, 'test'))
    resetting.start()
    resetting.join(0.2)
    assert resetting.is_alive() and s.latched, 'the reset went ahead of the recording'
    disk_free.set()
    resetting.join(5)
    s.recorded()
    assert order == ['outputs off', 'saved', 'told', 'saved']
    assert saved[0]['fault']['reason'] == 'stopped' and saved[-1] is None
    assert not s.latched


def test_shutdown_recorded_counts_a_trip_still_switching_outputs_off():
    """recorded() (the drain's marker, a reset, the close) must wait for a fault whose
    first listeners are still running, not only for one already queued to be recorded."""
    import threading
    outputs_off, saved = threading.Event(), []
    s = Shutdown(save=lambda record: saved.append(record))
    s.add_listener(lambda f: outputs_off.wait(5), first=True)
    tripping = threading.Thread(target=s.trip, args=('stopped', 'stop pressed', 1.0),
                                kwargs={'record_later': True})
    tripping.start()
    while not s.latched:
        pass
    waiting = threading.Thread(target=s.recorded)
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and saved == [], 'recorded() returned before the fault was saved'
    outputs_off.set()
    waiting.join(5)
    tripping.join(5)
    assert not waiting.is_alive() and saved and saved[-1]['fault']['reason'] == 'stopped'


def test_shutdown_record_later_a_stop_on_a_latched_machine_does_not_wait_for_the_disk():
    """STOP is answered on the HTTP loop (api/jafflr/service.py): pressed while another
    fault is latched, it is saved as a later fault on the recorder thread, not in the
    request."""
    import threading
    disk_free, saved = threading.Event(), []
    s = Shutdown(save=lambda record: (disk_free.wait(5), saved.append(record)))
    disk_free.set()
    s.trip('plate-lost', 'the plate process stopped answering', 1.0)
    disk_free.clear()                   # the disk is busy from now on
    saved.clear()
    done = []
    stopping = threading.Thread(target=lambda: done.append(
        s.trip('stopped', 'stop pressed', 2.0, record_later=True)))
    stopping.start()
    stopping.join(1)
    assert done and done[0].reason == 'plate-lost', 'the STOP waited for the disk'
    assert [f.reason for f in s.later] == ['stopped'] and saved == []
    disk_free.set()
    s.recorded()
    assert saved and [f['reason'] for f in saved[-1]['later']] == ['stopped']
