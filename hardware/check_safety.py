"""Commissioning the safety chain: `python -m hardware.check --safety`.

It proves, on the machine, what the drawings say was built:

1. the heartbeat gate: with the heater pin high and the heartbeat beating the SSR drive
   feedback is high and the element draws current; when the heartbeat stops the
   feedback drops within the monostable's hold (and the current with it); with the
   heartbeat stopped, the feedback does not follow the heater pin at all;
2. the current sense: current only while the heater is on, and a reading that moves;
3. the inputs: a person presses and releases the e-stop (the contactor must drop out
   and come back in with it), opens and closes the lid, presses and releases the reset
   button; each input must change both ways. `--yes` lets the simulator's hands do it.

Each step says what it saw with the numbers and, when it fails, what to look at. The
heater is on for about three seconds in all; it is off whenever the check stops.
"""
from dataclasses import dataclass

from .board import BOARD, ELEMENT_OFF_MAX_A, ELEMENT_ON_MIN_A, chain_part, element_amps
from .errors import HardwareError
from .i2c import ADS1115

BEAT_S = 0.1            # the heartbeat period, as the control loop's
SETTLE_S = 0.5          # feedback and current settle well within this (CT filter: 47 ms)
HOLD_MARGIN_S = 0.25    # how late after the hold the feedback may still drop
PERSON_TIMEOUT_S = 60.0  # how long a person has for each action
POLL_S = 0.02


@dataclass
class Step:
    part: str
    what: str
    seen: str
    result: str          # 'OK', 'SKIP: why' or 'FAIL: what to look at'

    @property
    def failed(self):
        return self.result.startswith('FAIL')


# Input name, whether it reads active at rest, the action that changes it, the one that
# brings it back. Inputs the board does not have (a reset button before it is fitted)
# are skipped by name.
ACTIONS = (
    ('estop_ok', True, 'press the emergency stop', 'release the emergency stop (twist)'),
    ('lid_closed', True, 'open the lid', 'close the lid'),
    ('reset_button', False, 'press and hold the reset button', 'release the reset button'),
)


class Person:
    """A person at the machine: told what to do, watched through the inputs."""

    def __init__(self, out=print):
        self.out = out

    def do(self, text, name, active):
        self.out(f'  -> {text} now (waiting up to {PERSON_TIMEOUT_S:.0f} s)', flush=True)

    def done(self, name):
        pass


class SimHands:
    """The simulator's hands, for --yes: the faults a person would cause, or a hand on
    an input no fault covers."""

    FAULTS = {'estop_ok': 'estop', 'lid_closed': 'lid-open'}

    def __init__(self, link, out=print):
        self.link = link
        self.out = out

    def do(self, text, name, active):
        self.out(f'  -> (simulator) {text}', flush=True)
        fault = self.FAULTS.get(name)
        if fault is not None:
            self.link.set_fault(fault, not active)
        else:
            self.link.hand(name, active)

    def done(self, name):
        if name not in self.FAULTS:
            self.link.hand(name, None)


class SafetyCheck:
    """The steps, on an opened platform. `hands`: Person or SimHands."""

    def __init__(self, platform, hands, board=BOARD, out=print):
        self.platform = platform
        self.clock = platform.clock
        self.board = board
        self.hands = hands
        self.out = out
        self.steps = []
        self.hold_s = board.heartbeat_hold_s

    # -- plumbing -----------------------------------------------------------------------
    def _record(self, part, what, seen, result):
        step = Step(part, what, seen, result)
        self.steps.append(step)
        self.out(f'{"FAIL" if step.failed else step.result.split(":")[0]:4}  {part}: {what}: '
                 f'{seen}' + (f'\n      {step.result[6:]}' if step.failed else ''), flush=True)
        return step

    def _beat_for(self, seconds, heater):
        """Beat for `seconds`; returns the time of the last heartbeat edge."""
        end = self.clock.monotonic() + seconds
        while True:
            heater.beat()
            last = self.clock.monotonic()
            if last >= end:
                return last
            self.clock.sleep(BEAT_S)

    def _is_active(self, name, device):
        """An input's state now. On the simulator, asked of the line itself: the pin's
        own copy arrives a moment later (pushed from the simulator's process), and under a
        loaded test machine that moment can be longer than the timings proven here."""
        link = getattr(self.platform, 'link', None)
        if link is None:
            return device.is_active
        part = self.board.gpio_part(name)
        return bool(link.level(part.pin)) == part.active_high

    def _amps(self):
        return element_amps(self.adc.volts)

    def _sample(self, heater, count=6):
        """Mean amperes over `count` readings 50 ms apart (beating), and the set of raw
        readings: a working converter's last bits never repeat exactly that often."""
        volts = []
        for _ in range(count):
            heater.beat()
            volts.append(self.adc.volts)
            self.clock.sleep(0.05)
        return element_amps(sum(volts) / count), set(volts)

    def _wait_for(self, condition, timeout_s, tick=None):
        """Seconds until condition() held, or None after timeout_s."""
        start = self.clock.monotonic()
        while True:
            if condition():
                return self.clock.monotonic() - start
            if self.clock.monotonic() - start >= timeout_s:
                return None
            if tick is not None:
                tick()
            self.clock.sleep(POLL_S)

    # -- the check ------------------------------------------------------------------------
    def run(self):
        from .machine import HeaterRelay
        if not self.board.has_part('heater_feedback') or not self.board.has_part('element_current'):
            self._record('board', 'safety chain read-backs', 'heater_feedback or element_current '
                         'missing', 'FAIL: board.py has no feedback or current sense: the chain '
                                    'cannot be proven')
            return self.steps
        pf = self.platform.pin_factory
        pin = lambda name: self.board.gpio_part(name).pin
        try:
            part = self.board.i2c_part('element_current')
            self.adc = ADS1115(self.platform.bus, part.address, name=part.name,
                               sleep=self.clock.sleep)
        except HardwareError as exc:
            self._record('element_current', 'open the ADS1115', str(exc),
                         'FAIL: look at U3 (ADS1115), its 3.3 V supply and SDA/SCL')
            return self.steps
        heater = HeaterRelay(pin('heater_relay'), pin('heater_heartbeat'), self.hold_s,
                             feedback_pin=pin('heater_feedback'), pin_factory=pf)
        inputs = self._open_inputs()
        try:
            if self._chain_ready(inputs):
                self._check_gate(heater)
            heater.off()
            self._check_inputs(inputs, heater)
        finally:
            heater.off()
            heater.close()
            for device in inputs.values():
                device.close()
        return self.steps

    def _open_inputs(self):
        """The inputs the check watches, as the board wires them (pull and polarity)."""
        from gpiozero import DigitalInputDevice
        inputs = {}
        for name in ('contactor_closed', *(a[0] for a in ACTIONS)):
            if not self.board.has_part(name):
                continue
            part = self.board.gpio_part(name)
            if part.pull in ('up', 'down'):
                kw = {'pull_up': part.pull == 'up'}          # polarity follows the pull
            else:
                kw = {'pull_up': None, 'active_state': part.active_high}
            inputs[name] = DigitalInputDevice(part.pin, pin_factory=self.platform.pin_factory, **kw)
        return inputs

    def _chain_ready(self, inputs):
        """The gate can only be tried with the e-stop released, the lid shut, K1 in."""
        problems = [f'{name} reads {"active" if inputs[name].is_active else "inactive"}'
                    for name in ('estop_ok', 'lid_closed', 'contactor_closed')
                    if name in inputs and not inputs[name].is_active]
        if problems:
            self._record('safety chain', 'ready to try the heater', ', '.join(problems),
                         'FAIL: release the e-stop, close the lid and check that K1 pulls in '
                         '(K0 safety relay powered, its reset done), then run again')
            return False
        self._record('safety chain', 'ready to try the heater', 'e-stop released, lid shut, '
                     'contactor in', 'OK')
        return True

    def _check_gate(self, heater):
        feedback = lambda: self._is_active('heater_feedback', heater.feedback)
        # Off, beating: nothing driven, nothing drawn.
        heater.off()
        self._beat_for(SETTLE_S, heater)
        off_a, off_raw = self._sample(heater)
        self._expect('heater_feedback', 'heater pin low, heartbeat beating', not feedback(),
                     'feedback low', 'feedback HIGH: the feedback line or the gate output is stuck '
                     'high; look at U2A pin 3 and the 10k/20k divider to GPIO12')
        self._expect('element_current', 'no current with the heater off', off_a <= ELEMENT_OFF_MAX_A,
                     f'{off_a:.2f} A (at most {ELEMENT_OFF_MAX_A:.2f} A)',
                     'current with the heater off: the SSR K2 may be welded; switch off at the wall '
                     'and check it, or the current sense reads a stuck value (T1, U3 AIN0)')
        # On, beating: driven and drawing.
        heater.on()
        self._beat_for(SETTLE_S, heater)
        on_a, on_raw = self._sample(heater)
        last_beat = self._beat_for(0.0, heater)
        rose = feedback()
        self._expect('heater_feedback', 'heater pin high, heartbeat beating', rose,
                     'feedback high' if rose else 'feedback LOW',
                     'the feedback never rose: look at the feedback wire to GPIO12 and its divider, '
                     'the 74HCT08 U2A and the 74HC123 U1 (is the heartbeat GPIO27 reaching it?)')
        stuck = len(on_raw | off_raw) == 1
        if stuck:
            self._record('element_current', 'reading moves with the heater', f'{min(on_raw):.5f} V '
                         f'in all {2 * len(on_raw)} readings, heater off and on',
                         'FAIL: the current sense reading is stuck: '
                         'look at the ADS1115 U3 (supply, ADDR to GND, AIN0) and the current '
                         'transformer T1 plug; a frozen reading hides a welded SSR')
        else:
            self._expect('element_current', 'current only while the heater is on',
                         on_a >= ELEMENT_ON_MIN_A, f'{on_a:.2f} A (at least {ELEMENT_ON_MIN_A:.2f} A)',
                         'no current with the SSR driven: look at the current transformer T1 (clipped '
                         'round the live lead after the SSR?), then the thermal fuse F2, the '
                         'thermostat F3 (press its reset), the element and the SSR K2')
        # The heartbeat stops with the pin still high: the gate must drop within the hold.
        dropped = self._wait_for(lambda: not feedback(),
                                 last_beat + self.hold_s + HOLD_MARGIN_S - self.clock.monotonic())
        held = None if dropped is None else self.clock.monotonic() - last_beat
        self._expect('heater_feedback', 'heartbeat stopped with the heater pin high',
                     held is not None and held <= self.hold_s + HOLD_MARGIN_S,
                     f'dropped after {held:.2f} s (hold {self.hold_s:.1f} s)' if held is not None
                     else f'still HIGH {self.hold_s + HOLD_MARGIN_S:.2f} s after the last heartbeat',
                     'the feedback follows the heater pin without the heartbeat: the monostable '
                     'U1 (74HC123) or the AND gate U2A is bypassed; GPIO17 must reach the SSR only '
                     'through U2A, and U2A\'s other input must be U1\'s Q')
        self.clock.sleep(max(0.0, last_beat + self.hold_s + HOLD_MARGIN_S + SETTLE_S
                             - self.clock.monotonic()))
        late_a = self._amps()
        if stuck:
            self._record('element_current', 'current after the gate dropped', f'{late_a:.2f} A',
                         'SKIP: the reading is stuck (above), so it proves nothing')
        else:
            self._expect('element_current', 'current after the gate dropped',
                         late_a <= ELEMENT_OFF_MAX_A, f'{late_a:.2f} A',
                         'current flows with the SSR drive low: the SSR K2 is welded, or the gate '
                         'is bypassed (see above); switch off at the wall and check both')
        # Heartbeat stopped for good: the feedback must not follow the pin at all.
        followed = False
        for level in (False, True, False, True):
            heater.relay.value = level
            self.clock.sleep(0.2)
            followed |= bool(feedback())
        heater.off()
        self._expect('heater_feedback', 'heater pin toggled with no heartbeat', not followed,
                     'followed the pin' if followed else 'stayed low',
                     'the SSR is driven by the heater pin alone: the heartbeat gate is bypassed '
                     '(look at U2A and U1: GPIO17 wired straight to the SSR?)')

    def _expect(self, part, what, ok, seen, fix):
        return self._record(part, what, seen, 'OK' if ok else f'FAIL: {fix}')

    def _check_inputs(self, inputs, heater):
        for name, rest, away, back in ACTIONS:
            if name not in inputs:
                self._record(name, 'changes both ways', 'not on this board',
                             'SKIP: board.py has no such input yet')
                continue
            device = inputs[name]
            if device.is_active != rest:
                self._record(name, 'changes both ways', f'{"in" if rest else ""}active before '
                             'the person acted', f'FAIL: it should read {"" if rest else "in"}active '
                             f'at rest; look at its wiring to GPIO{self.board.gpio_part(name).pin}')
                continue
            self._watch_change(name, device, rest, away, back, inputs, heater)

    def _watch_change(self, name, device, rest, away, back, inputs, heater):
        pin = self.board.gpio_part(name).pin
        beat = heater.beat   # the motors' enable stays up while a person works
        timeout = PERSON_TIMEOUT_S
        self.hands.do(away, name, not rest)
        went = self._wait_for(lambda: device.is_active != rest, timeout, beat)
        contactor = inputs.get('contactor_closed')
        dropped = None
        if went is not None and name == 'estop_ok' and contactor is not None:
            dropped = self._wait_for(lambda: not self._is_active('contactor_closed', contactor),
                                     0.5, beat)
        self.hands.do(back, name, rest)
        came = None if went is None else self._wait_for(lambda: device.is_active == rest,
                                                        timeout, beat)
        self.hands.done(name)
        if went is None or came is None:
            self._record(name, f'{away}, then {back}', 'never changed' if went is None
                         else 'changed and never came back',
                         f'FAIL: the input never changed: look at its contact and the wire to '
                         f'GPIO{pin} (a short to ground reads as a closed contact)')
            return
        self._record(name, f'{away}, then {back}', 'changed and came back', 'OK')
        if name == 'estop_ok' and contactor is not None:
            estop = chain_part('contactor')
            self._expect('contactor_closed', 'contactor drops out with the e-stop',
                         dropped is not None, 'dropped out' if dropped is not None
                         else 'stayed IN 0.5 s after the e-stop was pressed',
                         f'the contactor {estop.ref} did not drop: it may be welded (replace it), '
                         f'or its auxiliary contact to GPIO{self.board.gpio_part("contactor_closed").pin} '
                         f'is shorted to ground; check the safety relay K0 sees the e-stop')
            back_in = self._wait_for(lambda: self._is_active('contactor_closed', contactor),
                                     5.0, beat)
            self._expect('contactor_closed', 'contactor back in after the release',
                         back_in is not None, 'back in' if back_in is not None else 'still OUT',
                         'K1 did not pull in again: check the safety relay K0 (reset, feedback '
                         'loop Y1-Y2 through K1\'s mirror contact) and its 24 V supply')


def run_safety_check(platform, yes=False, out=print):
    """The steps and whether the chain passed. `yes` only on the simulator."""
    if yes and not platform.simulated:
        raise HardwareError('--yes lets the simulator press the buttons; on a machine a person '
                            'must press them (leave out --yes)')
    hands = SimHands(platform.link, out) if yes else Person(out)
    steps = SafetyCheck(platform, hands, out=out).run()
    return steps, not any(s.failed for s in steps)
