"""The simulated machine: every physical part, the lines between them and the program,
and the faults that can be switched on while it runs.

The world keeps its own time (`now`, seconds on the clock it is given) and is advanced
to the clock's time before anything reads or drives it, so the same model runs under a
real, a sped-up or a fake clock. Noise comes from seeded generators: a run repeats.
"""
import random
import threading
from collections import deque

from ..board import (BOARD, BAY_HOPPER_G, CT_FILTER_TAU_S, CT_V_PER_A, ELEMENT_A,
                     LOADCELL_COUNTS_PER_G)
from .physics import Bay, ChillyBin, HeaterCircuit, Plate, Press, SafetyChain, Sandwich, Tray

# Every fault the simulated machine knows, with what it does. `<bay>` is a bay number or
# the ingredient in it.
FAULTS = {
    'plate-sensor-open': 'the plate thermocouple is open (status says out of range)',
    'plate-sensor-nack': 'the plate thermocouple amplifier stops answering on I2C',
    'plate-sensor-frozen': 'the plate amplifier stops converting; its register keeps the last '
                           'value and no new conversion is flagged',
    'bin-sensor-nack': 'the bin air sensor stops answering on I2C',
    'loadcell-nack:<bay>': "a bay's load-cell ADC stops answering on I2C",
    'heater-dead': 'the relay closes but the element is open: no current, no heat',
    'heater-welded': 'the relay conducts whatever the pin and the heartbeat say',
    'dispenser-jam:<bay>': "a bay's dispenser runs but drops nothing",
    'press-jam': 'the press motor runs but the press does not move',
    'chiller-dead': 'the chiller relay closes but nothing cools',
    'lid-open': 'the lid is open (interlock opens; the bin warms six times faster)',
    'estop': 'the emergency stop is pressed',
    # The safety chain's own faults (see board.SAFETY_CHAIN).
    'feedback-stuck': 'the SSR drive feedback line stays at the level it had',
    'deadman-bypassed': 'the heater pin drives the SSR and the motor enable without the '
                        'heartbeat monostable (a wiring mistake)',
    'current-sense-stuck': "the element current ADC's reading stops changing",
    'current-sense-failed': 'the element current ADC stops answering on I2C',
    'contactor-welded': 'the contactor stays closed when the e-stop opens the safety relay',
    'thermal-fuse-open': 'the thermal fuse in series with the element has opened',
}

# Buttons a person can hold on the machine: name -> the board's GPIO part.
BUTTONS = {'reset': 'reset_button'}

# Fault -> the I2C part it silences.
_NACK_FAULTS = {'plate-sensor-nack': 'plate_thermocouple', 'bin-sensor-nack': 'bin_air',
                'current-sense-failed': 'element_current'}


class UnknownFault(ValueError):
    """A fault name the simulated machine does not know."""


class World:
    ACTIVE_STEP_S = 0.02   # while anything moves or the heater may be on
    IDLE_STEP_S = 1.0      # thermal models alone are solved exactly over longer steps

    def __init__(self, clock, board=BOARD, seed=1, ambient_c=21.0, bin_start_c=3.0,
                 units=10, plate_params=None, bin_params=None):
        self.clock = clock
        self.board = board
        self.seed = seed
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.now = clock.monotonic()
        self.ambient_c = ambient_c
        self.plate = Plate(ambient_c, plate_params)
        self.bin = ChillyBin(bin_start_c, bin_params)
        self.heater = HeaterCircuit(board.heartbeat_hold_s)
        self.chain = SafetyChain(ELEMENT_A, CT_V_PER_A, CT_FILTER_TAU_S,
                                 random.Random(seed * 13 + 5))
        self._feedback_stuck = False  # the level a stuck feedback line holds
        self._hands = {}              # input name -> active, held there by a person
        self.press = Press()
        self.tray = Tray()
        self.bays = []
        for slot in board.bays:
            ingredient = board.ingredients.get(slot.default_ingredient)
            bay = Bay(slot.index, ingredient, random.Random(seed * 1000 + slot.index),
                      BAY_HOPPER_G, LOADCELL_COUNTS_PER_G)
            bay.fill(units)
            self.bays.append(bay)
        self.faults = set()
        self.buttons = {}             # button -> the time a person lets go of it
        self.nack_rates = {}
        self.events = deque(maxlen=200)
        self._driven = {}             # pin -> level, for lines a program drives
        self._by_name = {p.name: p for p in board.gpio}
        self._input_levels = {}
        self._listeners = []
        self._update_inputs(notify=False)
        if hasattr(clock, 'add_listener'):
            clock.add_listener(self.advance_to)

    # -- lines -------------------------------------------------------------------------
    def add_input_listener(self, listener):
        """listener(pin, level) is called whenever the world changes an input line."""
        self._listeners.append(listener)

    def remove_input_listener(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)

    def drive(self, pin, level):
        """A program drives an output line high or low."""
        with self.lock:
            self.sync()
            self._driven[pin] = bool(level)
            if pin == self._by_name['heater_heartbeat'].pin:
                self.heater.heartbeat(bool(level), self.now)
            if not level:
                for bay in self.bays:
                    if pin == self._by_name[f'dispenser_{bay.index}'].pin:
                        bay.step(0.0, False, False)   # the cam re-arms when the motor stops

    def release(self, pin):
        """A program stops driving a line (it became an input, or was closed)."""
        with self.lock:
            self.sync()
            self._driven.pop(pin, None)

    def input_level(self, pin):
        with self.lock:
            self.sync()
            return self._input_levels.get(pin, False)

    def level(self, pin):
        """The electrical level of any line: driven, or where its pull leaves it."""
        if pin in self._input_levels:
            return self._input_levels[pin]
        return self._driven.get(pin, False)   # undriven outputs are pulled down

    def is_active(self, name):
        part = self._by_name[name]
        return self.level(part.pin) == part.active_high

    def _update_inputs(self, notify=True):
        active = {
            'tray_index': self.tray.at_index,
            'press_open_limit': self.press.is_open,
            'press_closed_limit': self.press.is_closed,
            'lid_closed': 'lid-open' not in self.faults,
            'estop_ok': 'estop' not in self.faults,
            **{part: name in self.buttons for name, part in BUTTONS.items()},
            'heater_feedback': self.feedback(),
            'contactor_closed': self.contactor_closed(),
        }
        active.update(self._hands)
        changed = []
        for name, is_active in active.items():
            part = self._by_name.get(name)
            if part is None:
                continue      # a board without this part
            level = is_active == part.active_high
            if self._input_levels.get(part.pin) != level:
                self._input_levels[part.pin] = level
                changed.append((part.pin, level))
        if notify:
            for pin, level in changed:
                for listener in list(self._listeners):
                    listener(pin, level)

    # -- time --------------------------------------------------------------------------
    def sync(self):
        self.advance_to(self.clock.monotonic())

    def _busy(self):
        names = ('heater_relay', 'tray_motor', 'press_close', 'press_open')
        return (any(self.is_active(n) for n in names)
                or any(self.is_active(f'dispenser_{b.index}') for b in self.bays)
                or 'heater-welded' in self.faults or bool(self.buttons))

    def advance_to(self, t):
        with self.lock:
            while self.now < t:
                limit = self.ACTIVE_STEP_S if self._busy() else self.IDLE_STEP_S
                dt = min(t - self.now, limit)
                self.now += dt
                self._step(dt)

    def relay_closed(self):
        return self.heater.relay_closed(self.is_active('heater_relay'), self.now,
                                        'heater-welded' in self.faults,
                                        'deadman-bypassed' in self.faults)

    def feedback(self):
        """The SSR drive after the AND gate, as the feedback line reports it."""
        if 'feedback-stuck' in self.faults:
            return self._feedback_stuck
        return self.heater.ssr_drive(self.is_active('heater_relay'), self.now,
                                     'deadman-bypassed' in self.faults)

    def contactor_closed(self):
        return self.chain.contactor_closed('estop' in self.faults,
                                           'contactor-welded' in self.faults)

    def motor_enable(self):
        """The motor drivers' enable: the heartbeat monostable AND the e-stop chain."""
        return self.heater.motor_enable(self.now, self.contactor_closed(),
                                        'deadman-bypassed' in self.faults)

    def _motor_on(self, name):
        return self.is_active(name) and self.motor_enable()

    def _step(self, dt):
        amps = self.chain.step(dt, self.plate.temp_c, self.relay_closed(), self.contactor_closed(),
                               'thermal-fuse-open' in self.faults, 'heater-dead' in self.faults)
        power = self.plate.p.heater_w if amps > 0 else 0.0
        self.plate.step(dt, power, self.ambient_c, self.press.sandwich, self.press.contact)
        chiller = self.is_active('chiller_relay') and 'chiller-dead' not in self.faults
        self.bin.step(dt, self.ambient_c, chiller, 'lid-open' in self.faults)
        enabled = self.motor_enable()
        for bay in self.bays:
            jammed = f'dispenser-jam:{bay.index}' in self.faults
            running = self.is_active(f'dispenser_{bay.index}')
            if running and not enabled:
                continue   # the driver is disabled: the cam stops where it is, mid-run
            unit = bay.step(dt, running, jammed)
            if unit is not None:
                if self.tray.on_tray is None:
                    self.tray.on_tray = Sandwich()
                self.tray.on_tray.units.append(unit)
                self._event(f'bay {bay.index} dropped {unit[0]} ({unit[1]:.1f} g)')
        was_open, was_closed = self.press.is_open, self.press.is_closed
        self.press.step(dt, self._motor_on('press_close'), self._motor_on('press_open'),
                        'press-jam' in self.faults)
        if self.press.is_closed and not was_closed:
            self._event('press closed')
        if self.press.is_open and not was_open:
            self._event('press open')
        delivered = len(self.tray.delivered)
        self.tray.step(dt, self._motor_on('tray_motor'), self.press)
        if len(self.tray.delivered) != delivered:
            self._event(f'sandwich delivered: {self.tray.delivered[-1].describe()}')
        for name, until in list(self.buttons.items()):
            if self.now >= until:
                del self.buttons[name]
                self._event(f'{name} button released')
        self._update_inputs()

    def _event(self, text):
        self.events.append((round(self.now, 3), text))

    # -- I2C trouble --------------------------------------------------------------------
    def nack_rate(self, part_name):
        rate = self.nack_rates.get(part_name, 0.0)
        for fault, part in _NACK_FAULTS.items():
            if fault in self.faults and part == part_name:
                return 1.0
        if part_name.startswith('loadcell_') and f'loadcell-nack:{part_name[9:]}' in self.faults:
            return 1.0
        return rate

    def set_nack_rate(self, part_name, rate):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f'NACK rate must be 0-1, not {rate}')
        with self.lock:
            self.nack_rates[part_name] = rate

    # -- faults and hands -----------------------------------------------------------------
    def bay_index(self, ref):
        """A bay by number or by the ingredient it holds."""
        ref = str(ref)
        if ref.isdigit() and int(ref) < len(self.bays):
            return int(ref)
        for bay in self.bays:
            if bay.ingredient is not None and bay.ingredient.name == ref:
                return bay.index
        raise UnknownFault(f'no bay {ref!r}: use a bay number 0-{len(self.bays) - 1} '
                           f'or an ingredient in a bay')

    def canonical_fault(self, name):
        base, _, arg = name.partition(':')
        if base in FAULTS:
            if arg:
                raise UnknownFault(f'fault {base!r} takes no argument')
            return base
        if f'{base}:<bay>' in FAULTS:
            return f'{base}:{self.bay_index(arg)}'
        raise UnknownFault(f'unknown fault {name!r}; known: {", ".join(sorted(FAULTS))}')

    def set_fault(self, name, on):
        with self.lock:
            self.sync()
            fault = self.canonical_fault(name)
            if fault == 'feedback-stuck' and on and fault not in self.faults:
                self._feedback_stuck = self.feedback()
            if on:
                self.faults.add(fault)
            else:
                self.faults.discard(fault)
            self._event(f'fault {fault} {"on" if on else "off"}')
            self._update_inputs()
            return fault

    def hold_button(self, name, hold_s):
        """A person presses a button on the machine and lets go hold_s seconds later."""
        if name not in BUTTONS:
            raise ValueError(f'no button {name!r} on the machine; buttons: {", ".join(BUTTONS)}')
        if not 0.0 < hold_s <= 600.0:
            raise ValueError(f'hold the button for 0-600 s, not {hold_s}')
        with self.lock:
            self.sync()
            self.buttons[name] = self.now + hold_s
            self._event(f'{name} button pressed for {hold_s:g} s')
            self._update_inputs()

    def hand(self, name, active):
        """A person holds an input (a button, a switch) active or inactive; None lets go.
        For the commissioning check's `--yes`, and for inputs no fault covers."""
        with self.lock:
            self.sync()
            part = self._by_name.get(name)
            if part is None or part.direction != 'in':
                inputs = sorted(p.name for p in self.board.gpio if p.direction == 'in')
                raise ValueError(f'no input named {name!r}; inputs: {", ".join(inputs)}')
            if active is None:
                self._hands.pop(name, None)   # back to what the world says
            else:
                self._hands[name] = bool(active)
            self._event(f'hand on {name}: {"released" if active is None else active}')
            self._update_inputs()

    def heartbeat_generator(self, on=True):
        """Clip a signal generator onto the heartbeat line (a bench, not a machine): the
        monostable stays up, so motors run and the heater follows its pin without a
        control loop beating. For tests of the mechanics alone."""
        with self.lock:
            self.sync()
            self.heater.generator = bool(on)
            self._event(f'heartbeat generator {"on" if on else "off"}')

    def reset_thermostat(self):
        """A person presses the manual-reset thermostat's button. True if it reclosed."""
        with self.lock:
            self.sync()
            closed = self.chain.reset_thermostat(self.plate.temp_c)
            self._event(f'thermostat reset: {"closed" if closed else "still open (too hot)"}')
            return closed

    def fill(self, bay_ref, units, ingredient=None):
        """A person fills a bay with `units` fresh units (0 empties it), putting
        `ingredient` in it if given."""
        with self.lock:
            self.sync()
            bay = self.bays[self.bay_index(bay_ref)]
            if ingredient is not None:
                if ingredient not in self.board.ingredients:
                    raise ValueError(f'the simulator knows no ingredient {ingredient!r}; known: '
                                     f'{", ".join(sorted(self.board.ingredients))}')
                bay.ingredient = self.board.ingredients[ingredient]
            if bay.ingredient is None:
                raise ValueError(f'bay {bay.index} has no ingredient: say which to fill it with')
            bay.fill(units)
            self._event(f'bay {bay.index} filled with {units} {bay.ingredient.name}')

    def status(self):
        with self.lock:
            self.sync()
            return {
                'time_s': round(self.now, 3),
                'plate_c': round(self.plate.temp_c, 2),
                'plate_probe_c': round(self.plate.probe_c, 2),
                'bin_c': round(self.bin.temp_c, 2),
                'relay_closed': self.relay_closed(),
                'feedback': self.feedback(),
                'contactor_closed': self.contactor_closed(),
                'motor_enable': self.motor_enable(),
                'element_a': round(self.chain.current_a, 2),
                'thermostat_open': self.chain.thermostat_open,
                'heater_pin': self.is_active('heater_relay'),
                'heartbeat_age_s': round(self.now - self.heater.last_beat, 3)
                if self.heater.last_beat > -1e300 else None,
                'chiller_on': self.is_active('chiller_relay'),
                'press_position': round(self.press.position, 3),
                'press_motor': ('closing' if self.is_active('press_close') else
                                'opening' if self.is_active('press_open') else 'off'),
                'tray_motor_on': self.is_active('tray_motor'),
                'press_sandwich': self.press.sandwich.describe() if self.press.sandwich else None,
                'tray': self.tray.on_tray.describe() if self.tray.on_tray else None,
                'tray_blocked': self.tray.blocked,
                'delivered': len(self.tray.delivered),
                'last_delivered': (self.tray.delivered[-1].describe()
                                   if self.tray.delivered else None),
                'bays': [{'bay': b.index,
                          'ingredient': b.ingredient.name if b.ingredient else None,
                          'units': len(b.items), 'grams': round(b.contents_g, 1),
                          'dispenser_on': self.is_active(f'dispenser_{b.index}'),
                          'drops': b.drops} for b in self.bays],
                'faults': sorted(self.faults),
                'buttons_held': sorted(self.buttons),
                'nack_rates': dict(self.nack_rates),
                'events': [f'{t:.1f} {e}' for t, e in list(self.events)[-10:]],
            }
