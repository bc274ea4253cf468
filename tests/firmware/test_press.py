"""The press station on the whole simulated machine (InProcessMachine, fake clock): loading,
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


def step_times(k, order, limit_s=600):
    """Clock time at which the order entered each step, until it finished."""
    seen = {order.step: k.clock.monotonic()}
    while not order.finished:
        k.step()
        seen.setdefault(order.step, k.clock.monotonic())
        assert k.clock.monotonic() < limit_s, f'{order.id} stuck at {order.step}'
    return seen


@pytest.mark.parametrize('doneness', ['light', 'medium'])
def test_press_toasts_for_the_profile_time_and_every_step_in_order(kitchen, doneness):
    k = kitchen
    order, _ = k.submit(['cheese'], doneness)
    at = step_times(k, order)
    assert order.state == 'done', order.failure
    assert list(at)[list(at).index('loading'):] == ['loading', 'closing', 'toasting', 'opening',
                                                     'ejecting', 'done']
    toasted = at['opening'] - at['toasting']
    assert toasted == pytest.approx(profile(doneness).toast_s, abs=0.1)
    assert at['toasting'] - at['closing'] == pytest.approx(4.0, abs=0.3)   # press travel


def test_press_waits_for_the_plate_before_loading(make_kitchen):
    k = make_kitchen()          # cold: 21 C
    k.run(0.5)
    order, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: order.step == 'waiting for the plate', 60)
    assert k.kitchen.state(k.clock.monotonic()) == 'preheating'
    k.run_until(lambda: order.step == 'loading', 400)
    plate = k.controller.status()
    assert plate['temp_c'] == pytest.approx(180.0, abs=3.0)
    assert k.clock.monotonic() > 150, 'loaded long before a cold plate could be hot'


def test_press_pipelines_the_next_toastie_while_one_toasts(kitchen):
    k = kitchen
    first, _ = k.submit(['cheese'], 'light')
    second, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: first.step == 'toasting', 60)
    k.run_until(lambda: second.state == 'assembled', 30)
    assert first.step == 'toasting', 'the second was made ready while the first toasted'
    at = step_times(k, first)
    # one index delivers the first and loads the second
    k.run_until(lambda: second.step == 'toasting', 30)
    gap = k.clock.monotonic() - at['opening']
    assert gap < 4.0 + 3.5 + 4.5, 'open, one index, close'
    k.run_until(lambda: second.finished, 120)
    out = delivered(k)
    assert [d['units'] for d in out] == [{'bread': 2, 'cheese': 1},
                                         {'bread': 2, 'cheese': 1, 'vegemite': 1}]
    assert min(d['browning'] for d in out) > 1000, f'one went out untoasted: {out}'


def test_press_jam_while_opening_latches_press_jam_and_stops_the_motor(kitchen):
    k = kitchen
    order, _ = k.submit(['cheese'], 'light')
    run_to_step(k, order, 'toasting')
    k.world.set_fault('press-jam', True)
    jammed_at = k.clock.monotonic()
    k.run_until(lambda: order.finished, 200)
    assert order.state == 'failed' and order.failure['reason'] == 'press-jam'
    assert 'did not open within 8 s' in order.failure['detail']
    assert k.shutdown.fault.reason == 'press-jam'
    k.run(1.0)
    assert outputs_safe(k) == {'heater_pin': False, 'relay_closed': False, 'moving': []}
    assert k.clock.monotonic() - jammed_at < 60 + 8 + 2


def test_press_jam_while_closing_latches_before_any_toasting(kitchen):
    k = kitchen
    order, _ = k.submit(['cheese'], 'light')
    run_to_step(k, order, 'closing')
    k.world.set_fault('press-jam', True)
    took = k.run_until(lambda: order.finished, 30)
    assert order.failure['reason'] == 'press-jam' and 'did not close' in order.failure['detail']
    assert 7.9 <= took <= 8.5
    assert outputs_safe(k)['moving'] == [] and not outputs_safe(k)['relay_closed']


class StuckConveyor:
    """The conveyor's motor line is driven but the belt does not move (a broken belt)."""

    def __init__(self, conveyor):
        self.conveyor = conveyor

    def run(self):
        self.conveyor.run()
        self.conveyor.stop()

    def __getattr__(self, name):
        return getattr(self.conveyor, name)


def test_press_conveyor_that_does_not_index_latches_conveyor_jam(kitchen):
    k = kitchen
    k.press.conveyor = StuckConveyor(k.machine.conveyor)
    order, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: order.finished, 100)
    assert order.failure['reason'] == 'conveyor-jam'
    assert 'did not reach its next index mark within 6 s' in order.failure['detail']
    assert k.shutdown.fault.reason == 'conveyor-jam'
    assert outputs_safe(k) == {'heater_pin': False, 'relay_closed': False, 'moving': []}


def test_press_reset_clears_the_press_and_the_tray_before_the_next(kitchen):
    k = kitchen
    first, _ = k.submit(['cheese'], 'light')
    second, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: first.step == 'toasting' and second.state == 'assembled', 60)
    k.kitchen.stop(k.clock.monotonic(), k.clock.time(), 'a test')
    k.run(0.5)
    assert first.failure['reason'] == second.failure['reason'] == 'stopped'
    assert 'in the press' in first.failure['detail']
    assert 'waiting on the tray' in second.failure['detail']
    k.kitchen.reset(k.clock.monotonic(), k.clock.time(), 'a test')
    k.run_until(lambda: not k.press.clearing, 30)
    with k.world.lock:
        assert k.world.tray.on_tray is None and k.world.press.sandwich is None
    assert len(delivered(k)) == 2
    third, _ = k.submit(['cheese'], 'light')
    k.run_until(lambda: third.finished, 200)
    assert third.state == 'done' and delivered(k)[-1]['units'] == {'bread': 2, 'cheese': 1}


def test_press_next_toastie_at_another_temperature_is_loaded_then_waits_for_its_plate(kitchen):
    """The index that delivers a light toastie also carries the medium one waiting on the
    tray into the press; the press closes on it once the plate is at 195 C."""
    k = kitchen
    light, _ = k.submit(['cheese'], 'light')
    medium, _ = k.submit(['cheese', 'vegemite'], 'medium')
    k.run_until(lambda: medium.step == 'toasting', 400)
    assert light.state == 'done'
    assert k.controller.status()['temp_c'] == pytest.approx(195.0, abs=3.0)
    with k.world.lock:
        assert k.world.press.sandwich.describe()['units'] == {'bread': 2, 'cheese': 1,
                                                             'vegemite': 1}
    k.run_until(lambda: medium.finished, 300)
    assert [d['units'] for d in delivered(k)] == [{'bread': 2, 'cheese': 1},
                                                  {'bread': 2, 'cheese': 1, 'vegemite': 1}]


def test_press_waits_for_a_toastie_being_built_before_it_indexes(kitchen):
    """The toast ends while the next toastie is half built on the tray: the conveyor must
    not carry the half-built one into the press."""
    k = kitchen
    first, _ = k.submit(['cheese'], 'light')
    run_to_step(k, first, 'opening')               # open in 4 s; building takes about 6 s
    second, _ = k.submit(['cheese', 'vegemite'], 'light')
    k.run_until(lambda: first.finished, 60)
    assert second.stock['dropped'] == {'bread': 2, 'cheese': 1, 'vegemite': 1}, \
        'the first left before the second was complete'
    k.run_until(lambda: second.finished, 200)
    assert second.state == 'done', second.failure
    out = delivered(k)
    assert [d['units'] for d in out] == [{'bread': 2, 'cheese': 1},
                                         {'bread': 2, 'cheese': 1, 'vegemite': 1}]
    assert min(d['browning'] for d in out) > 1000, f'one went out untoasted: {out}'


def test_press_station_that_looks_seldom_still_sees_every_index_mark(kitchen):
    """The press station ticked every 0.4 s (a busy computer, or a simulation run fast)
    looks at the photo-eye less often than a 0.3 s mark takes to pass: the index is
    counted on the eye's edge, so no mark is missed and nothing is taken for a jam."""
    k = kitchen
    order, _ = k.submit(['cheese'], 'light')
    ticks = 0
    while not order.finished:
        k.clock.advance(0.05)
        now, wall = k.clock.monotonic(), k.clock.time()
        if ticks % 2 == 0:
            k.chilly.tick(now, wall)
            k.controller.tick(now)
        if ticks % 8 == 0:
            k.press.tick(now, wall, k.assembler, k.book.queued())
        k.assembler.tick(now, wall)
        ticks += 1
        assert now < 400
    assert order.state == 'done', order.failure
    assert delivered(k)[-1]['units'] == {'bread': 2, 'cheese': 1}


@pytest.mark.parametrize('step, after_s', [('opening', 3.5), ('ejecting', 0.0)])
def test_press_boundary_jam_found_in_this_order_until_the_press_made_its_last_move(
        kitchen, step, after_s):
    """The press jams 0.5 s before it is open (opening takes 4 s): this toastie fails with
    press-jam; once it is open (ejecting) the toastie is out and done, and the next
    toastie's closing finds the jam. Nothing tells a jammed press that is not moving."""
    k = kitchen
    order, _ = k.submit(['cheese'], 'light')
    run_to_step(k, order, step)
    k.run(after_s)
    assert order.step == step
    k.world.set_fault('press-jam', True)
    k.run_until(lambda: order.finished, 60)
    if step == 'opening':
        assert order.failure['reason'] == 'press-jam' and 'did not open' in order.failure['detail']
        assert k.shutdown.fault.reason == 'press-jam' and delivered(k) == []
    else:
        assert order.state == 'done' and not k.shutdown.latched, order.failure
        assert [d['units'] for d in delivered(k)] == [{'bread': 2, 'cheese': 1}]
        following, _ = k.submit(['cheese'], 'light')
        k.run_until(lambda: following.finished, 120)
        assert following.failure['reason'] == 'press-jam', following.failure
        assert 'did not close' in following.failure['detail']
    assert outputs_safe(k) == {'heater_pin': False, 'relay_closed': False, 'moving': []}
