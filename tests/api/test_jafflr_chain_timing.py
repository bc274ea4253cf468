"""The safety chain read-backs' timings as the jafflr service sets them: the monitor's own
defaults on the machine, and real-time slack under a sped-up simulator."""
import pytest

from api.plate.timing import CHAIN_MIN_REAL_S, chain_timing
from firmware.chain import ChainMonitor
from hardware.clock import RealClock, ScaledClock


@pytest.mark.parametrize('clock', [RealClock(), ScaledClock(1.0), ScaledClock(2.0)])
def test_chain_timing_on_the_machine_is_the_monitors_own(clock):
    assert chain_timing(clock) is None


@pytest.mark.parametrize('speed', [5.0, 10.0, 20.0, 50.0])
def test_chain_timing_sped_up_judges_only_commands_held_for_the_slack(speed):
    timing = chain_timing(ScaledClock(speed))
    slack = CHAIN_MIN_REAL_S * speed
    assert timing['min_tick_s'] >= min(1.5, slack)
    assert timing['on_settle_s'] > timing['min_tick_s']
    assert timing['off_settle_s'] > timing['on_settle_s']
    ChainMonitor(lambda: False, lambda: 0.0, lambda: True, lambda: False, timing)   # accepted


def test_chain_timing_slack_stops_a_late_edge_looking_like_a_welded_relay():
    """At speed 20 a tick that switched 0.2 s (10 real ms) after its `now` leaves current
    flowing at the next tick: the sped-up timing does not call that a fault."""
    amps = {'now': 7.8}
    mon = ChainMonitor(lambda: None, lambda: amps['now'], lambda: True, lambda: False,
                       chain_timing(ScaledClock(20.0)))
    assert mon.check(0.0, True) == [] and mon.check(0.1, True) == []
    for t in (0.2, 0.3):                 # commanded off at 0.1; the edge is late
        assert mon.check(t, False) == []
    amps['now'] = 0.0
    assert mon.check(0.4, False) == []
