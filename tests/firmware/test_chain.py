"""The safety chain's read-backs on the fake clock: ChainMonitor alone, and composed into
the PlateController on the simulated machine (100 ms ticks), as the service composes it.

Detection bounds tested here:
  welded SSR (current while off)      <= 2 s after "off" (measured 0.3-0.4 s)
  no current while commanded on       <= 0.2 s after "on" at full power; <= 1 s while holding
  feedback stuck                      <= 2 s while holding
  contactor welded                    <= 0.6 s after the e-stop is pressed
  chain open without the e-stop       <= 0.4 s
  current sense unreadable            the same tick
"""
import pytest

from firmware.chain import ChainMonitor
from firmware.errors import ConfigError
from firmware.safety import FAULT_HELP


def preheat(rig, target_c=200.0):
    rig.world.plate.temp_c = rig.world.plate.probe_c = target_c
    rig.plate.set_target(target_c, rig.now)
    rig.run(30)
    assert rig.plate.at_target(rig.now) and not rig.shutdown.latched, rig.shutdown.fault


def latched_within(rig, seconds):
    start = rig.now
    rig.run(seconds, until=lambda: rig.shutdown.latched)
    assert rig.shutdown.latched, f'nothing latched in {seconds} s'
    return rig.shutdown.fault.at - start


@pytest.fixture
def rig(make_rig):
    return make_rig(chain=True)


# -- ChainMonitor alone -----------------------------------------------------------------
class Lines:
    def __init__(self):
        self.driven, self.amps, self.closed, self.pressed = False, 0.0, True, False

    def monitor(self, **config):
        return ChainMonitor(lambda: self.driven, self.read, lambda: self.closed,
                            lambda: self.pressed, config)

    def read(self):
        if isinstance(self.amps, Exception):
            raise self.amps
        return self.amps


def test_chain_monitor_quiet_when_everything_agrees():
    lines = Lines()
    mon = lines.monitor()
    for k in range(100):
        on = k % 3 == 0                            # a one-in-three duty, pulse by pulse
        lines.driven, lines.amps = on, 7.8 if on else 0.05
        assert mon.check(k * 0.1, on) == []


@pytest.mark.parametrize('stuck', [False, True])
@pytest.mark.parametrize('period', [1, 2, 3])
def test_chain_monitor_feedback_stuck_high_or_low_is_seen_at_any_duty(stuck, period):
    """On one tick in `period` (duty 1/period), or off one tick in `period`: a feedback
    stuck at either level disagrees often enough to latch within about a second. (Below
    a duty of 0.3, one tick in ten, it waits for the duty to rise: see docs/fmea.md.)"""
    lines = Lines()
    mon = lines.monitor()
    for k in range(20):
        on = (k % period == 0) != stuck            # stuck low meets "on" pulses, and high "off"
        lines.driven, lines.amps = stuck, 7.8 if on else 0.0
        found = [r for r, _ in mon.check(k * 0.1, on) if r == 'heater-feedback-mismatch']
        if found:
            break
    assert found and k * 0.1 <= 1.0, (stuck, period, k)


def test_chain_monitor_a_late_tick_is_not_a_feedback_fault():
    lines = Lines()
    mon = lines.monitor()
    lines.driven, lines.amps = True, 7.8
    mon.check(0.0, True)
    lines.driven, lines.amps = False, 0.0          # the monostable dropped: 1.5 s late tick
    for t in (1.5, 3.0, 4.5):
        assert mon.check(t, True) == []


def test_chain_monitor_a_stop_mid_interval_is_not_a_welded_relay():
    """STOP (another thread) drops the pin just before a late tick: the current is still
    decaying from that edge. Counted from the last tick it looked welded (CI, under load);
    counted from the tick that first sees the pin off (edge_at), it is not."""
    def run(edge_at_drop):
        lines = Lines()
        mon = lines.monitor()
        lines.driven, lines.amps = True, 7.8
        for k in range(5):
            assert mon.check(k * 0.1, True) == []
        lines.driven = False                      # dropped just before the late tick at 0.85
        found = mon.check(0.85, False, 0.85 if edge_at_drop else None)
        lines.amps = 1.4                          # 0.08 s on, still decaying (tau 47 ms)
        found += mon.check(0.93, False)
        lines.amps = 0.3
        return found + mon.check(1.03, False)
    assert [r for r, _ in run(False)] == ['heater-current-while-off']   # the old, false fault
    assert run(True) == []


def test_chain_monitor_a_relay_welded_after_a_stop_is_still_seen():
    lines = Lines()
    mon = lines.monitor()
    lines.driven, lines.amps = True, 7.8
    mon.check(0.0, True)
    lines.driven = False                          # dropped, but the element keeps drawing
    found = mon.check(0.1, False, 0.1)
    t = 0.1
    while not found:
        t += 0.1
        found = mon.check(t, False)
    assert found[0][0] == 'heater-current-while-off' and t - 0.1 <= 0.5, t


def test_chain_monitor_unreadable_current_is_a_fault_not_zero():
    lines = Lines()
    mon = lines.monitor()
    lines.amps = OSError(121, 'Remote I/O error')
    assert mon.check(0.0, False) == [
        ('current-sense-error', 'element current unreadable: OSError: [Errno 121] Remote I/O error')]
    lines.amps = float('nan')
    assert mon.check(0.1, False)[0][0] == 'current-sense-error'


def test_chain_monitor_contactor_open_alone_and_welded():
    lines = Lines()
    mon = lines.monitor()
    lines.closed = False
    assert mon.check(0.0, False) == [] and mon.check(0.2, False) == []
    assert mon.check(0.3, False)[0][0] == 'safety-chain-open'
    lines.pressed = True                           # the e-stop explains an open chain
    assert mon.check(0.4, False) == []
    lines.closed = True                            # ... but not a contactor that stays in
    assert mon.check(0.5, False) == [] and mon.check(0.9, False) == []
    reason, detail = mon.check(1.0, False)[0]
    assert reason == 'contactor-welded' and '0.5 s after the e-stop' in detail


def test_chain_monitor_config_is_checked():
    with pytest.raises(ConfigError, match='feedback_window_bad'):
        Lines().monitor(feedback_window=3, feedback_window_bad=4)
    with pytest.raises(ConfigError, match='off_max_a'):
        Lines().monitor(off_max_a=0.0)


def test_chain_reasons_have_help_for_the_person_at_the_machine():
    for reason in ('heater-feedback-mismatch', 'heater-current-while-off', 'heater-no-current',
                   'current-sense-error', 'safety-chain-open', 'contactor-welded'):
        assert 'reset' in FAULT_HELP[reason] or 'replace' in FAULT_HELP[reason]


# -- composed, on the simulated machine --------------------------------------------------
def test_chain_no_false_faults_from_cold_to_hold_and_off(rig):
    rig.plate.set_target(200.0, rig.now)
    rig.run(400, until=lambda: rig.plate.at_target(rig.now))
    assert rig.plate.at_target(rig.now)
    rig.load_sandwich()
    rig.run(120, each=lambda: rig.plate.keep_alive(rig.now))
    rig.unload_sandwich()
    rig.plate.off(rig.now)
    rig.run(60)
    assert not rig.shutdown.latched and rig.shutdown.later == []


def test_chain_a_stop_between_late_ticks_is_not_taken_for_a_welded_relay(rig):
    """The heater at full power, the loop a third of a second late, and STOP from an HTTP
    thread drops the pin just before the late tick (as the service's first shutdown
    listener does): only "stopped" latches, not the current still decaying from the edge."""
    rig.plate.set_target(200.0, rig.now)
    rig.run(1.0)
    assert rig.machine.heater.is_on
    rig.clock.advance(0.33)
    rig.shutdown.trip('stopped', 'stop pressed (the test)', rig.now)
    rig.machine.heater.off()
    rig.clock.advance(0.002)
    rig.plate.tick(rig.now)                       # the late tick sees the pin off ...
    rig.clock.advance(0.05)                       # ... and the loop catches up
    rig.run(0.5)
    assert rig.shutdown.fault.reason == 'stopped' and rig.shutdown.later == []


def test_chain_welded_ssr_seen_within_2_s_of_off(rig, world):
    preheat(rig)
    world.set_fault('heater-welded', True)
    rig.plate.off(rig.now)
    off_at = rig.now
    took = latched_within(rig, 2.0)
    assert rig.shutdown.fault.reason == 'heater-current-while-off'
    assert took <= 2.0 and rig.shutdown.fault.at - off_at <= 0.5
    assert not rig.machine.heater.is_on


def test_chain_welded_ssr_seen_while_holding(rig, world):
    preheat(rig)
    world.set_fault('heater-welded', True)
    assert latched_within(rig, 2.0) <= 2.0
    assert rig.shutdown.fault.reason == 'heater-current-while-off'


def test_chain_no_current_seen_at_once_from_cold(rig, world):
    world.set_fault('thermal-fuse-open', True)
    rig.plate.set_target(200.0, rig.now)
    assert latched_within(rig, 1.0) <= 0.25         # full power: the second tick
    assert rig.shutdown.fault.reason == 'heater-no-current'
    assert 'drew 0.' in rig.shutdown.fault.detail


@pytest.mark.parametrize('fault', ['heater-dead', 'thermal-fuse-open'])
def test_chain_no_current_seen_while_holding(rig, world, fault):
    preheat(rig)
    world.set_fault(fault, True)
    assert latched_within(rig, 1.0) <= 1.0
    assert rig.shutdown.fault.reason == 'heater-no-current'


def test_chain_feedback_stuck_seen_while_holding(rig, world):
    preheat(rig)
    world.set_fault('feedback-stuck', True)
    assert latched_within(rig, 2.0) <= 2.0
    assert rig.shutdown.fault.reason == 'heater-feedback-mismatch'


def test_chain_contactor_welded_seen_behind_the_estop(rig, world):
    preheat(rig)
    world.set_fault('contactor-welded', True)
    world.set_fault('estop', True)
    rig.run(0.7)
    assert rig.shutdown.fault.reason == 'estop'
    welded = [f for f in rig.shutdown.later if f.reason == 'contactor-welded']
    assert welded and welded[0].at - rig.shutdown.fault.at <= 0.6


def test_chain_open_without_the_estop(rig, world):
    preheat(rig)
    world.hand('contactor_closed', False)            # K1 dropped: its safety relay, its 24 V
    assert latched_within(rig, 1.0) <= 0.4
    assert rig.shutdown.fault.reason == 'safety-chain-open'


def test_chain_current_sense_failed_trips_the_same_tick(rig, world):
    preheat(rig)
    world.set_fault('current-sense-failed', True)
    assert latched_within(rig, 0.2) <= 0.1
    assert rig.shutdown.fault.reason == 'current-sense-error'
    assert 'element_current' in rig.shutdown.fault.detail


def test_chain_current_sense_stuck_is_seen_as_no_current(rig, world):
    world.set_fault('current-sense-stuck', True)     # stuck at the idle 0 A
    rig.plate.set_target(200.0, rig.now)
    assert latched_within(rig, 1.0) <= 0.25
    assert rig.shutdown.fault.reason == 'heater-no-current'
