"""Helpers for tests that run the whole machine in process (inprocess.InProcessMachine).

They read the simulated world directly, as a person looking at the machine would: what
is in each bay, what is on the tray and in the press, whether the relay conducts.
"""
from firmware.heater.profiles import profile


def hot_plate(k, temp_c=180.0):
    """The plate starts at `temp_c`, as after a toastie a minute ago: saves the 3 minute
    preheat from cold in tests that are not about preheating."""
    with k.world.lock:
        k.world.plate.temp_c = k.world.plate.probe_c = temp_c


def bay_units(k):
    """ingredient -> units physically in its bay (the world's truth, not chillybin's)."""
    return {b.ingredient.name: len(b.items) for b in k.world.bays if b.ingredient}


def available(k):
    """ingredient -> units chillybin offers (measured minus reserved)."""
    return {name: k.chilly.desk.available(name) for name in k.chilly.scales.bays}


def on_tray(k):
    with k.world.lock:
        sandwich = k.world.tray.on_tray
        return sandwich.describe()['units'] if sandwich else {}


def delivered(k):
    with k.world.lock:
        return [s.describe() for s in k.world.tray.delivered]


def outputs_safe(k):
    """Every jafflr output off (the heater pin low; the relay open unless welded)."""
    w = k.world
    with w.lock:
        moving = [n for n in ('tray_motor', 'press_close', 'press_open')
                  if w.is_active(n)] + [f'dispenser_{b.index}' for b in w.bays
                                         if w.is_active(f'dispenser_{b.index}')]
        return {'heater_pin': w.is_active('heater_relay'),
                'relay_closed': w.relay_closed(), 'moving': moving}


def run_to_step(k, order, step, limit_s=900):
    return k.run_until(lambda: order.step == step or order.finished, limit_s)


def toastie_time_s(doneness):
    return profile(doneness).toast_s


def person_resets(k, by='a person at the machine'):
    """What a person does to clear the latched fault: one that needs them at the machine
    gets the reset button held first (and is refused without it); then the admin reset."""
    from firmware.errors import ResetRefused
    from firmware.safety import AT_MACHINE
    now, wall = k.clock.monotonic(), k.clock.time()
    if k.shutdown.clearance() == AT_MACHINE:
        try:
            k.kitchen.reset(now, wall, by)
        except ResetRefused as exc:
            assert 'hold the reset button' in exc.message
        else:
            raise AssertionError(f'{k.shutdown.fault} was reset without the reset button')
        k.hold_reset_button()
        now, wall = k.clock.monotonic(), k.clock.time()
    return k.kitchen.reset(now, wall, by)
