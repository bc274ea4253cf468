"""`python -m hardware.check --safety` against the simulated machine: it passes a healthy
machine and fails each wiring fault with a message that says what to look at. In process
(fake clock) for a person who does not act; as processes, as a builder would run it."""
import os
import subprocess
import sys

import pytest

from hardware.board import BOARD
from hardware.check_safety import SafetyCheck, run_safety_check
from hardware.errors import HardwareError
from hardware.platform import Platform

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# -- in process, on the fake clock --------------------------------------------------------
class Hands:
    """Presses only the inputs it is told to (None: all); records what it was asked."""

    FAULTS = {'estop_ok': 'estop', 'lid_closed': 'lid-open'}

    def __init__(self, world, acts_on=None):
        self.world, self.acts_on, self.asked = world, acts_on, []

    def do(self, text, name, active):
        self.asked.append(text)
        if self.acts_on is None or name in self.acts_on:
            if name in self.FAULTS:
                self.world.set_fault(self.FAULTS[name], not active)
            else:
                self.world.hand(name, active)

    def done(self, name):
        pass


@pytest.fixture
def platform(clock, world, bus, pin_factory):
    return Platform('sim', clock, pin_factory, bus)


def results(steps):
    return {(s.part, s.what): s.result for s in steps}


def test_check_safety_passes_a_healthy_machine_in_process(platform, world):
    hands = Hands(world)
    steps = SafetyCheck(platform, hands, out=lambda *a, **k: None).run()
    assert not [s for s in steps if s.failed], steps
    assert 'press the emergency stop' in hands.asked and 'close the lid' in hands.asked
    skipped = [s for s in steps if s.result.startswith('SKIP')]
    assert [s.part for s in skipped] == ([] if BOARD.has_part('reset_button') else ['reset_button'])
    assert not world.relay_closed() and not world.status()['heater_pin']


def test_check_safety_refuses_an_input_that_never_changes(platform, world):
    steps = SafetyCheck(platform, Hands(world, acts_on={'estop_ok', 'reset_button'}),
                        out=lambda *a, **k: None).run()
    failed = {s.part: s.result for s in steps if s.failed}
    assert set(failed) == {'lid_closed'}
    assert 'never changed' in [s.seen for s in steps if s.part == 'lid_closed'][0]
    assert 'GPIO7' in failed['lid_closed']


def test_check_safety_presses_and_releases_the_reset_button(platform, world):
    steps = SafetyCheck(platform, Hands(world), out=lambda *a, **k: None).run()
    row = [s for s in steps if s.part == 'reset_button']
    assert row and row[0].result == 'OK', steps


def test_check_safety_yes_is_refused_on_a_machine():
    class Pi:
        simulated = False
    with pytest.raises(HardwareError, match='a person must press them'):
        run_safety_check(Pi(), yes=True)


# -- as processes, against a simulator process ---------------------------------------------
def check_safety(sock, fault=None):
    if fault is not None:
        subprocess.run([sys.executable, '-m', 'hardware.sim', '--socket', sock, 'fault', fault,
                        'on'], cwd=ROOT, check=True, capture_output=True, timeout=20)
    return subprocess.run([sys.executable, '-m', 'hardware.check', '--machine', 'sim',
                           '--sim-socket', sock, '--safety', '--yes'],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_check_safety_process_healthy_passes(sim):
    out = check_safety(sim)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'safety chain: PASSED' in out.stdout
    assert 'heartbeat stopped with the heater pin high: dropped after' in out.stdout
    assert 'current only while the heater is on: 7.8' in out.stdout


# fault -> what the failure message must point at
WIRING_FAULTS = {
    'deadman-bypassed': ['monostable U1 (74HC123) or the AND gate U2A is bypassed',
                         'the heartbeat gate is bypassed'],
    'current-sense-stuck': ['the current sense reading is stuck: look at the ADS1115 U3'],
    'current-sense-failed': ['look at U3 (ADS1115)'],
    'feedback-stuck': ['the feedback never rose: look at the feedback wire to GPIO12'],
    'contactor-welded': ['the contactor K1 did not drop: it may be welded'],
    'thermal-fuse-open': ['no current with the SSR driven', 'the thermal fuse F2'],
}


@pytest.mark.parametrize('fault', sorted(WIRING_FAULTS))
def test_check_safety_process_fails_each_wiring_fault_saying_what_to_look_at(sim, fault):
    out = check_safety(sim, fault)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'safety chain: FAILED' in out.stdout
    summary = out.stdout.split('safety chain: FAILED', 1)[1]
    for text in WIRING_FAULTS[fault]:
        assert text in summary, out.stdout


def test_plain_check_marks_gpio_lines_it_did_not_check(sim):
    out = subprocess.run([sys.executable, '-m', 'hardware.check', '--machine', 'sim',
                          '--sim-socket', sim], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert lines['estop_ok'].endswith('not checked (--safety)')
    assert lines['heater_relay'].endswith('not checked (--safety)')
    assert lines['heater_feedback'].endswith('OK')      # checked: low with the heater off
    assert lines['element_current'].endswith('OK')
    n_gpio, n_i2c = len(BOARD.gpio), len(BOARD.i2c)
    assert (f'{n_i2c + 1} of {n_i2c + n_gpio} parts OK, 0 failed, {n_gpio - 1} opened but not '
            f'checked') in out.stdout
