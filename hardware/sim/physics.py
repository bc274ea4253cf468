"""The physical parts of the simulated machine, each a small model stepped in time.

Linear thermal models are solved exactly over each step (inputs held constant), so a
step can be long when nothing moves; motors and the heartbeat monostable need short
steps, and World chooses the step size accordingly.
"""
import math
from dataclasses import dataclass


def relax(value, target, dt, tau):
    """First-order approach of `value` towards `target` with time constant `tau`, exactly."""
    if tau <= 0:
        return target
    return target + (value - target) * math.exp(-dt / tau)


@dataclass
class PlateParams:
    heater_w: float = 1800.0        # element power with the relay closed
    capacity_j_per_k: float = 1800.0  # plates, element and frame
    loss_w_per_k: float = 3.0       # to ambient; full power alone tops out near 620 C
    probe_tau_s: float = 1.5        # thermocouple and its well lag the plate
    sandwich_w_per_k: float = 4.0   # contact conductance with the press closed
    open_contact: float = 0.3       # fraction of contact with the press open (lower plate)
    sandwich_j_per_g_k: float = 3.0


class Plate:
    """The press plate: heats with the element, loses heat to the room and to a sandwich."""

    def __init__(self, ambient_c, params=None):
        self.p = params or PlateParams()
        self.temp_c = ambient_c
        self.probe_c = ambient_c

    def step(self, dt, power_w, ambient_c, sandwich, contact):
        p = self.p
        to_sandwich = 0.0
        if sandwich is not None and contact > 0:
            g = p.sandwich_w_per_k * contact
            to_sandwich = g * (self.temp_c - sandwich.temp_c)
            s_cap = max(1.0, sandwich.mass_g * p.sandwich_j_per_g_k)
            sandwich.temp_c = relax(sandwich.temp_c, self.temp_c, dt, s_cap / g)
            if self.temp_c > 120.0:
                sandwich.browning += (self.temp_c - 120.0) * dt * contact
        # dT/dt = (P - k (T - Ta) - q_s) / C, solved for constant P and q_s over dt.
        k = p.loss_w_per_k
        equilibrium = ambient_c + (power_w - to_sandwich) / k
        self.temp_c = relax(self.temp_c, equilibrium, dt, p.capacity_j_per_k / k)
        self.probe_c = relax(self.probe_c, self.temp_c, dt, p.probe_tau_s)


@dataclass
class BinParams:
    capacity_j_per_k: float = 20000.0  # air, walls and the food in the bays
    leak_w_per_k: float = 2.0          # through the walls with the lid shut
    lid_open_factor: float = 6.0       # an open lid lets the kitchen in
    chiller_w: float = 80.0


class ChillyBin:
    """The bin's air: warms towards the kitchen, cools while the chiller runs."""

    def __init__(self, start_c, params=None):
        self.p = params or BinParams()
        self.temp_c = start_c

    def step(self, dt, ambient_c, chiller_on, lid_open):
        p = self.p
        leak = p.leak_w_per_k * (p.lid_open_factor if lid_open else 1.0)
        cooling = p.chiller_w if chiller_on else 0.0
        equilibrium = ambient_c - cooling / leak
        self.temp_c = relax(self.temp_c, equilibrium, dt, p.capacity_j_per_k / leak)


class Sandwich:
    """What is on the tray or in the press: the units dropped on it, and how toasted it is."""

    def __init__(self):
        self.units = []       # (ingredient, grams)
        self.temp_c = 4.0
        self.browning = 0.0   # degree-seconds of contact above 120 C

    @property
    def mass_g(self):
        return sum(g for _, g in self.units)

    def describe(self):
        counts = {}
        for name, _ in self.units:
            counts[name] = counts.get(name, 0) + 1
        return {'units': counts, 'grams': round(self.mass_g, 1),
                'temp_c': round(self.temp_c, 1), 'browning': round(self.browning)}


class Bay:
    """An ingredient hopper on a load cell, with a dispenser that drops one unit a run.

    The dispenser's cam drops one unit once the motor has run `drop_s` in one go; it does
    not drop another until the motor has stopped and started again.
    """
    drop_s = 0.8

    def __init__(self, index, ingredient, rng, hopper_g, counts_per_g):
        self.index = index
        self.ingredient = ingredient       # an Ingredient, or None for an unused bay
        self.rng = rng
        self.hopper_g = hopper_g
        self.counts_per_g = counts_per_g
        self.offset_counts = rng.randint(-150, 150)     # the ADC's zero offset, ~0.7 g
        self.scale_error = 0.0                           # set to mis-calibrate a cell
        self.noise_g = 0.15
        self.spike_probability = 0.01                    # vibration spikes
        self.items = []                                  # grams of each unit held
        self.run_s = 0.0
        self.dropped_this_run = False
        self.drops = 0

    def unit_weight(self):
        ing = self.ingredient
        return max(0.2 * ing.unit_g, self.rng.gauss(ing.unit_g, ing.unit_g * ing.spread))

    def fill(self, units):
        self.items = [self.unit_weight() for _ in range(units)] if self.ingredient else []

    @property
    def contents_g(self):
        return sum(self.items)

    def step(self, dt, motor_on, jammed):
        """Advance the dispenser; returns the unit dropped this step, if any."""
        if not motor_on:
            self.run_s = 0.0
            self.dropped_this_run = False
            return None
        self.run_s += dt
        if self.run_s >= self.drop_s and not self.dropped_this_run and not jammed:
            self.dropped_this_run = True
            if self.items:
                self.drops += 1
                return (self.ingredient.name, self.items.pop())
        return None

    def load_counts(self, motors_running):
        grams = self.hopper_g + self.contents_g + self.rng.gauss(0.0, self.noise_g)
        if motors_running and self.rng.random() < self.spike_probability:
            grams += self.rng.choice((-1, 1)) * self.rng.uniform(20.0, 80.0)
        return self.offset_counts + grams * self.counts_per_g * (1.0 + self.scale_error)


class Press:
    """The press: a motor between two limit switches. Position 0 is open, 1 is closed."""
    travel_s = 4.0

    def __init__(self):
        self.position = 0.0
        self.sandwich = None

    def step(self, dt, close_on, open_on, jammed):
        if close_on == open_on or jammed:
            return  # off, or braked, or stalled
        direction = 1.0 if close_on else -1.0
        self.position = min(1.0, max(0.0, self.position + direction * dt / self.travel_s))

    @property
    def is_open(self):
        return self.position <= 0.0

    @property
    def is_closed(self):
        return self.position >= 1.0

    @property
    def contact(self):
        return 1.0 if self.is_closed else PlateParams.open_contact if self.sandwich else 0.0


class Tray:
    """A conveyor through the machine: assembly spot -> press -> out chute.

    Each index of travel moves everything one station on. The photo-eye sees an index
    mark for the first and last `mark` of the travel. The conveyor will not move a
    sandwich into a press that is not fully open.
    """
    index_s = 3.0
    mark = 0.05

    def __init__(self):
        self.position = 0.0        # fraction of one index travelled
        self.on_tray = None        # Sandwich being assembled
        self.delivered = []        # toasted sandwiches in the out chute
        self.blocked = False

    @property
    def at_index(self):
        return self.position < self.mark or self.position > 1.0 - self.mark

    def step(self, dt, motor_on, press):
        if not motor_on:
            return
        if not press.is_open and (self.on_tray is not None or press.sandwich is not None):
            self.blocked = True
            return
        self.blocked = False
        self.position += dt / self.index_s
        if self.position >= 1.0:
            self.position -= 1.0
            if press.sandwich is not None:
                self.delivered.append(press.sandwich)
                del self.delivered[:-20]
            press.sandwich, self.on_tray = self.on_tray, None


class HeaterCircuit:
    """The heater's SSR, fed by the heater pin AND a retriggerable monostable.

    Every edge on the heartbeat pin restarts the monostable for `hold_s`; when it runs
    out the SSR input drops, whatever the heater pin says. A welded relay conducts
    regardless; a dead element closes the relay but makes no heat.
    """

    def __init__(self, hold_s):
        self.hold_s = hold_s
        self.last_beat = -math.inf
        self.heartbeat_level = False
        # A signal generator clipped onto the heartbeat line, as on a bench where a
        # motor is tried without the control program: the monostable never drops.
        self.generator = False

    def heartbeat(self, level, now):
        if level != self.heartbeat_level:
            self.heartbeat_level = level
            self.last_beat = now

    def monostable_on(self, now):
        return self.generator or now - self.last_beat < self.hold_s

    def relay_closed(self, heater_pin, now, welded, bypassed=False):
        return welded or self.ssr_drive(heater_pin, now, bypassed)

    def ssr_drive(self, heater_pin, now, bypassed=False):
        """The SSR's input, after the AND gate: what the feedback line reads. With the
        monostable bypassed (the heater pin wired straight to the SSR) it is the pin."""
        return bool(heater_pin) and (bypassed or self.monostable_on(now))

    def motor_enable(self, now, chain_closed, bypassed=False):
        """The motor drivers' enable: the monostable AND the e-stop chain."""
        return chain_closed and (bypassed or self.monostable_on(now))


class SafetyChain:
    """The rest of the chain between the mains and the element: the contactor the
    e-stop's safety relay holds in, the thermal fuse, the manual-reset thermostat, and
    the current transformer's rectified, filtered output at the ADC."""

    thermostat_trip_c = 280.0

    def __init__(self, element_a, ct_v_per_a, ct_tau_s, rng):
        self.element_a = element_a
        self.ct_v_per_a = ct_v_per_a
        self.ct_tau_s = ct_tau_s
        self.rng = rng
        self.thermostat_open = False
        self.current_a = 0.0
        self.ct_v = 0.0

    @staticmethod
    def contactor_closed(estop_pressed, welded):
        """K1 is held in by the safety relay while the e-stop is released; welded, it
        stays closed whatever the e-stop does."""
        return welded or not estop_pressed

    def step(self, dt, plate_c, relay_closed, contactor_closed, fuse_open, element_open):
        """Advance the thermostat and the current sense; returns the element's current."""
        if plate_c >= self.thermostat_trip_c:
            self.thermostat_open = True
        conducting = (relay_closed and contactor_closed and not fuse_open
                      and not self.thermostat_open and not element_open)
        self.current_a = self.element_a if conducting else 0.0
        self.ct_v = relax(self.ct_v, self.current_a * self.ct_v_per_a, dt, self.ct_tau_s)
        return self.current_a

    def ct_reading_v(self):
        """What the ADC sees: the filtered voltage and a little noise (about 0.02 A)."""
        return max(0.0, self.ct_v + self.rng.gauss(0.0, 0.02 * self.ct_v_per_a))

    def reset_thermostat(self, plate_c):
        """A person presses the thermostat's reset: it recloses only once cool enough."""
        if plate_c < self.thermostat_trip_c - 30.0:
            self.thermostat_open = False
        return not self.thermostat_open
