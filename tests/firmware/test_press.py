"""The press station on the whole simulated machine (SimKitchen, fake clock): loading,
toasting for the profile's time, delivering, its deadlines, and what it does on a fault."""
import pytest

from firmware.heater.profiles import profile
from tests.support.kitchen import delivered, on_tray, outputs_safe, run_to_step


def test_press_toasts_the_sandwich_in_the_press_and_delivers_it(kitchen):
    k = kitchen
    order, _ = k.submit(['cheese', 'vegemite'], 'light')
    run_to_step(k, order, 'toasting')
    with k.world.lock:
        in_press = k.world.press.sandwich
        assert in_press is not None, 'the press closed on nothing: the sandwich is still on the tray'
        assert in_press.describe()['units'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    assert on_tray(k) == {}
    k.run_until(lambda: order.finished, 300)
    assert order.state == 'done', order.failure
    out = delivered(k)
    assert len(out) == 1, 'the toastie said done is not in the chute'
    assert out[0]['units'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}
    assert out[0]['browning'] > 1000      # pressed on a 180 C plate for a minute
