"""The machine's GPIO parts as gpiozero devices, composed into one Machine object.

Each service opens the parts it owns (the board says which); the commissioning check
opens them all. Every device shares one pin factory: lgpio on a Pi, SimPinFactory in
simulation. Closing the machine drives every output off before releasing its line,
because a released line on a Pi keeps its last level.
"""
import contextlib

from gpiozero import CompositeDevice, DigitalInputDevice, DigitalOutputDevice, Motor

from .board import BOARD


def _constructed(device):
    """False while (or if) a composite's construction did not finish; gpiozero may still
    call close() on it from __del__."""
    return '_all' in vars(device)


def _build(makers):
    """Construct named children in order; if one fails, close those already made."""
    made = {}
    try:
        for name, make in makers.items():
            made[name] = make()
    except BaseException:
        for device in reversed(list(made.values())):
            device.close()
        raise
    return made


class HeaterRelay(CompositeDevice):
    """The press heater's SSR. The relay input is the heater pin AND a retriggerable
    monostable fed by the heartbeat pin: the relay stays closed only while `beat()` is
    called at least every `hold_s`. A program that stops (killed, hung, stalled) opens
    the relay within `hold_s` even if it left the heater pin high.

    `feedback_pin`, when wired, reads the SSR drive after the gate: `driven` is what the
    relay is actually told, which the software compares with what it commanded."""

    def __init__(self, relay_pin, heartbeat_pin, hold_s, *, feedback_pin=None, pin_factory=None):
        self.hold_s = hold_s
        makers = {
            'relay': lambda: DigitalOutputDevice(relay_pin, initial_value=False,
                                                 pin_factory=pin_factory),
            'heartbeat': lambda: DigitalOutputDevice(heartbeat_pin, initial_value=False,
                                                     pin_factory=pin_factory),
        }
        if feedback_pin is not None:
            makers['feedback'] = lambda: DigitalInputDevice(feedback_pin, pull_up=False,
                                                            pin_factory=pin_factory)
        children = _build(makers)
        super().__init__(_order=tuple(makers), pin_factory=pin_factory, **children)

    def on(self):
        self.relay.on()

    def off(self):
        self.relay.off()

    def beat(self):
        """One heartbeat edge. Call this from the control loop itself, never a helper thread."""
        self.heartbeat.toggle()

    @property
    def is_on(self):
        return self.relay.is_active

    @property
    def driven(self):
        """True while the SSR's input (after the gate) is high; None with no feedback wired."""
        feedback = self._named.get('feedback')
        return None if feedback is None else feedback.is_active

    def close(self):
        if not _constructed(self):
            return
        if not self.closed:
            self.relay.off()
        super().close()


class Press(CompositeDevice):
    """The press motor between its open and closed limit switches."""

    def __init__(self, close_pin, open_pin, open_limit_pin, closed_limit_pin, *, pin_factory=None):
        children = _build({
            'motor': lambda: Motor(forward=close_pin, backward=open_pin, pwm=False,
                                   pin_factory=pin_factory),
            'open_limit': lambda: DigitalInputDevice(open_limit_pin, pull_up=True,
                                                     pin_factory=pin_factory),
            'closed_limit': lambda: DigitalInputDevice(closed_limit_pin, pull_up=True,
                                                       pin_factory=pin_factory),
        })
        super().__init__(_order=('motor', 'open_limit', 'closed_limit'),
                         pin_factory=pin_factory, **children)

    def start_closing(self):
        self.motor.forward()

    def start_opening(self):
        self.motor.backward()

    def stop(self):
        self.motor.stop()

    off = stop

    @property
    def is_open(self):
        return self.open_limit.is_active

    @property
    def is_closed(self):
        return self.closed_limit.is_active

    @property
    def is_moving(self):
        return self.motor.is_active

    def close(self):
        if not _constructed(self):
            return
        if not self.closed:
            self.motor.stop()
        super().close()


class Conveyor(CompositeDevice):
    """The tray conveyor and the photo-eye that sees its index marks.

    `marks_reached` counts the marks the eye has come to, on the line's edge in gpiozero's
    callback thread: a mark passes the eye in 0.3 s, which a loop that looks every 50 ms
    misses only if it stalls that long, but which is 15 ms of real time in a simulation
    twenty times fast."""

    def __init__(self, motor_pin, index_pin, *, pin_factory=None):
        self.marks_reached = 0
        children = _build({
            'motor': lambda: DigitalOutputDevice(motor_pin, pin_factory=pin_factory),
            'index': lambda: DigitalInputDevice(index_pin, pull_up=True, pin_factory=pin_factory),
        })
        super().__init__(_order=('motor', 'index'), pin_factory=pin_factory, **children)
        self.index.when_activated = self._mark_reached

    def _mark_reached(self):
        self.marks_reached += 1

    def run(self):
        self.motor.on()

    def stop(self):
        self.motor.off()

    off = stop

    @property
    def at_index(self):
        return self.index.is_active

    @property
    def is_running(self):
        return self.motor.is_active

    def close(self):
        if not _constructed(self):
            return
        if not self.closed:
            self.motor.off()
        super().close()


class Machine(CompositeDevice):
    """Every GPIO part a process owns (owner=None: all of them, for commissioning).

    The safety chain's read-backs: `heater.driven` (the SSR drive after the gate) and
    `chain_closed` (the contactor the e-stop's safety relay holds in).

    Parts another service owns are None here. Inputs are wired fail-safe: the lid and
    e-stop contacts are normally closed to ground, so a cut wire reads as open/pressed.
    """

    OUTPUT_NAMES = ('heater', 'chiller', 'dispensers', 'conveyor', 'press', 'buzzer', 'status_led')

    def __init__(self, board=BOARD, *, owner=None, pin_factory=None):
        """`owner`: a process's name ('jafflr', 'plate', 'chillybin'), several in a tuple
        (the whole machine in one process), or None for every part."""
        self.board = board
        pf = pin_factory
        owners = (owner,) if isinstance(owner, str) else owner

        def mine(name):
            return owners is None or board.gpio_part(name).owner in owners

        def pin(name):
            return board.gpio_part(name).pin

        makers = {}
        def optional_pin(name):
            return pin(name) if board.has_part(name) else None

        if mine('heater_relay'):
            makers['heater'] = lambda: HeaterRelay(pin('heater_relay'), pin('heater_heartbeat'),
                                                   board.heartbeat_hold_s,
                                                   feedback_pin=optional_pin('heater_feedback'),
                                                   pin_factory=pf)
        if mine('chiller_relay'):
            makers['chiller'] = lambda: DigitalOutputDevice(pin('chiller_relay'), pin_factory=pf)
        for bay in board.bays:
            if mine(f'dispenser_{bay.index}'):
                makers[f'dispenser_{bay.index}'] = (
                    lambda p=bay.dispenser_pin: DigitalOutputDevice(p, pin_factory=pf))
        if mine('tray_motor'):
            makers['conveyor'] = lambda: Conveyor(pin('tray_motor'), pin('tray_index'), pin_factory=pf)
        if mine('press_close'):
            makers['press'] = lambda: Press(pin('press_close'), pin('press_open'),
                                            pin('press_open_limit'), pin('press_closed_limit'),
                                            pin_factory=pf)
        if mine('lid_closed'):
            makers['lid'] = lambda: DigitalInputDevice(pin('lid_closed'), pull_up=True, pin_factory=pf)
        if mine('estop_ok'):
            makers['estop'] = lambda: DigitalInputDevice(pin('estop_ok'), pull_up=True, pin_factory=pf)
        if mine('reset_button'):
            makers['reset_button'] = lambda: DigitalInputDevice(pin('reset_button'), pull_up=True,
                                                                pin_factory=pf)
        if board.has_part('contactor_closed') and mine('contactor_closed'):
            makers['contactor'] = lambda: DigitalInputDevice(pin('contactor_closed'), pull_up=True,
                                                             pin_factory=pf)
        if mine('buzzer'):
            makers['buzzer'] = lambda: DigitalOutputDevice(pin('buzzer'), pin_factory=pf)
        if mine('status_led'):
            makers['status_led'] = lambda: DigitalOutputDevice(pin('status_led'), pin_factory=pf)
        children = _build(makers)
        self._owned = tuple(children)
        super().__init__(_order=self._owned, pin_factory=pf, **children)

    def part(self, name):
        """A named part, or None when another service owns it."""
        return self._named.get(name)

    def __getattr__(self, name):
        if name in ('heater', 'chiller', 'conveyor', 'press', 'lid', 'estop', 'reset_button',
                    'buzzer', 'status_led', 'contactor'):
            return self._named.get(name)
        return super().__getattr__(name)

    @property
    def dispensers(self):
        """Bay index -> dispenser output, for the bays this service owns."""
        return {b.index: self._named[f'dispenser_{b.index}'] for b in self.board.bays
                if f'dispenser_{b.index}' in self._named}

    @property
    def lid_open(self):
        return not self.lid.is_active

    @property
    def estop_pressed(self):
        return not self.estop.is_active

    @property
    def reset_pressed(self):
        """The reset button is down (active low: a cut wire reads as not pressed)."""
        return self.reset_button.is_active

    @property
    def chain_closed(self):
        """True while K1 is in (its auxiliary contact closed): the heater and the motors
        have power. A dropped contactor and a cut wire both read False."""
        return self.contactor.is_active

    def all_off(self):
        """Every output off, heater first. Safe to call from any state, any number of times.

        The simulator's pin factory sends the writes after the heater's as one request
        (SimPinFactory.batch): on a Pi each is an ioctl that keeps the GIL; a round trip
        each would make a STOP under load wait for the GIL once per line, which a Pi does
        not. The heater's goes first, alone, whatever the factory."""
        names = ('press', 'conveyor', 'chiller', 'buzzer', 'status_led')
        rest = [self._named.get(n) for n in names] + list(self.dispensers.values())
        failed = self._off(self._named.get('heater'))
        batch = getattr(self.pin_factory, 'batch', None)
        try:
            with batch() if batch is not None else contextlib.nullcontext():
                for device in rest:     # one that fails must not leave the others on
                    error = self._off(device)
                    failed = failed or error
        except Exception as exc:        # the batch's writes, sent as it ends
            failed = failed or exc
        if failed is not None:
            raise failed

    @staticmethod
    def _off(device):
        """Switch `device` off; the exception if that failed, else None."""
        try:
            if device is not None and not device.closed:
                device.off()
        except Exception as exc:
            return exc
        return None

    def close(self):
        if not _constructed(self):
            return
        if not self.closed:
            self.all_off()
        super().close()
