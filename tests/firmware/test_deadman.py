"""The dead-man on a real thread and a sped-up clock (ten times real time): the 2 s
production timeout takes 0.2 s of real time."""
import threading
import time

import pytest

from inprocess.plate import PlateRig
from firmware.deadman import DeadMan
from firmware.errors import ConfigError
from firmware.safety import CONTROL_LOOP_STALLED
from hardware.clock import ScaledClock
from hardware.platform import open_in_process

SPEED = 10.0
TIMEOUT_S = 2.0          # clock seconds, as in production
POLL_S = TIMEOUT_S / 10


@pytest.fixture
def fast_clock():
    return ScaledClock(SPEED)


class Stalls:
    def __init__(self, clock):
        self.clock, self.at, self.event = clock, [], threading.Event()

    def __call__(self):
        self.at.append(self.clock.monotonic())
        self.event.set()


@pytest.fixture
def watched(fast_clock):
    stalls = Stalls(fast_clock)
    deadman = DeadMan(fast_clock, TIMEOUT_S, stalls)
    try:
        yield deadman, stalls
    finally:
        deadman.stop()


def keep_refreshing(deadman, clock, seconds):
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        deadman.refresh(clock.monotonic())
        clock.sleep(0.1)


def test_deadman_refreshed_every_tick_never_stalls(watched, fast_clock):
    deadman, stalls = watched
    deadman.start()
    keep_refreshing(deadman, fast_clock, 2.5 * TIMEOUT_S)
    assert stalls.at == [] and deadman.running


def test_deadman_stalled_loop_calls_on_stall_once_within_the_timeout(watched, fast_clock):
    deadman, stalls = watched
    deadman.start()
    keep_refreshing(deadman, fast_clock, 0.5)
    last = fast_clock.monotonic()
    deadman.refresh(last)
    assert stalls.event.wait(5 * TIMEOUT_S / SPEED)
    assert TIMEOUT_S <= stalls.at[0] - last <= TIMEOUT_S + POLL_S + 0.5   # 0.5: scheduling
    fast_clock.sleep(1.5 * TIMEOUT_S)
    assert len(stalls.at) == 1 and deadman.stalls == 1


def test_deadman_never_refreshed_after_start_is_a_stall(watched, fast_clock):
    deadman, stalls = watched
    started = fast_clock.monotonic()
    deadman.start()
    assert stalls.event.wait(5 * TIMEOUT_S / SPEED)
    assert stalls.at[0] - started >= TIMEOUT_S


def test_deadman_a_refresh_rearms_it_for_the_next_stall(watched, fast_clock):
    deadman, stalls = watched
    deadman.start()
    assert stalls.event.wait(5 * TIMEOUT_S / SPEED)
    stalls.event.clear()
    keep_refreshing(deadman, fast_clock, 1.0)
    assert len(stalls.at) == 1
    assert stalls.event.wait(5 * TIMEOUT_S / SPEED)
    assert deadman.stalls == 2


def test_deadman_survives_a_broken_on_stall(fast_clock):
    calls = []

    def broken():
        calls.append(1)
        raise RuntimeError('gpio gone')
    deadman = DeadMan(fast_clock, TIMEOUT_S, broken)
    deadman.start()
    try:
        fast_clock.sleep(1.25 * TIMEOUT_S)
        deadman.refresh(fast_clock.monotonic())
        fast_clock.sleep(1.25 * TIMEOUT_S)
        assert len(calls) == 2 and deadman.running
    finally:
        deadman.stop()
    assert not deadman.running


def test_deadman_stop_is_prompt_and_start_twice_is_refused(watched):
    deadman, _ = watched
    deadman.start()
    with pytest.raises(RuntimeError):
        deadman.start()
    began = time.monotonic()
    deadman.stop()
    assert time.monotonic() - began < 0.5 and not deadman.running


def test_deadman_rejects_a_timeout_that_is_not_positive(fast_clock):
    with pytest.raises(ConfigError):
        DeadMan(fast_clock, 0, lambda: None)


def test_deadman_wired_by_the_builder_forces_a_hung_loop_off(fast_clock):
    """The wiring every composition root gets from firmware.build.Plate: each control tick
    refreshes the dead-man; a stall forces the heater pin off and latches
    control-loop-stalled. The loop hangs with the pin on."""
    platform = open_in_process(fast_clock)
    world = platform.world
    rig = PlateRig(fast_clock, world, platform.bus, platform.pin_factory)
    hang, hung = threading.Event(), threading.Event()
    try:
        assert rig.deadman.timeout_s == TIMEOUT_S

        def control_loop():
            while not rig.shutdown.latched:
                rig.plate.tick(fast_clock.monotonic())
                if hang.is_set() and rig.machine.heater.is_on:
                    hung.set()
                    return                                   # stuck, pin left high
                fast_clock.sleep(0.1)
        world.plate.temp_c = world.plate.probe_c = 190.0
        rig.plate.set_target(200.0, fast_clock.monotonic())
        rig.deadman.start()
        loop = threading.Thread(target=control_loop, daemon=True)
        loop.start()
        fast_clock.sleep(TIMEOUT_S)
        assert not rig.shutdown.latched
        hang.set()
        assert hung.wait(1.0)
        hung_at = fast_clock.monotonic()
        assert rig.machine.heater.is_on
        deadline = time.monotonic() + 5 * TIMEOUT_S / SPEED
        while not rig.shutdown.latched and time.monotonic() < deadline:
            time.sleep(0.005)
        assert rig.shutdown.fault.reason == CONTROL_LOOP_STALLED
        assert rig.shutdown.fault.by == 'the dead-man'
        assert rig.shutdown.fault.at - hung_at <= TIMEOUT_S + POLL_S + 0.5
        assert not rig.machine.heater.is_on and not world.relay_closed()
        loop.join(1.0)
    finally:
        rig.deadman.stop()
        rig.close()
        platform.close()
