"""The physical model behaves like the machine: plausible rates, in the right direction."""
import pytest

from hardware.machine import Machine


@pytest.fixture
def machine(pin_factory):
    with Machine(pin_factory=pin_factory) as m:
        yield m


def heat(machine, clock, seconds, step=0.1):
    """Hold the heater on with a healthy heartbeat for `seconds`."""
    machine.heater.on()
    for _ in range(round(seconds / step)):
        machine.heater.beat()
        clock.advance(step)


def test_physics_full_power_heats_plate_20_to_200_in_a_plausible_time(machine, world, clock):
    world.plate.temp_c = world.plate.probe_c = 20.0
    machine.heater.on()
    t = 0.0
    while world.plate.temp_c < 200.0:
        machine.heater.beat()
        clock.advance(0.1)
        t += 0.1
        assert t < 600, 'a 1.8 kW press should not take ten minutes to reach 200 C'
    # A real 1.8 kW sandwich press reaches 200 C in three to five minutes.
    assert 150 <= t <= 300


def test_physics_plate_cools_when_the_heater_is_off(machine, world, clock):
    world.plate.temp_c = world.plate.probe_c = 200.0
    clock.advance(60)
    assert 180 < world.plate.temp_c < 195      # ~0.3 C/s at first
    clock.advance(3600)
    assert world.plate.temp_c < 60


def test_physics_probe_lags_the_plate(machine, world, clock):
    heat(machine, clock, 30)
    assert world.plate.probe_c < world.plate.temp_c
    assert world.plate.temp_c - world.plate.probe_c == pytest.approx(1.5, abs=0.5)  # tau x slope


def test_physics_cold_sandwich_pulls_the_plate_down(machine, world, clock):
    from hardware.sim.physics import Sandwich
    world.plate.temp_c = world.plate.probe_c = 200.0
    world.press.position = 1.0
    s = Sandwich()
    s.units = [('bread', 35.0), ('bread', 35.0), ('cheese', 21.0)]
    world.press.sandwich = s
    clock.advance(10)
    with_sandwich = world.plate.temp_c
    world.press.sandwich = None
    world.plate.temp_c = 200.0
    clock.advance(10)
    assert world.plate.temp_c - with_sandwich > 3    # ~760 W into the sandwich for 10 s
    assert s.temp_c > 20           # and warmed by about 27 C (time constant ~70 s)


def test_physics_bin_warms_without_chiller_and_cools_with_it(machine, world, clock):
    start = world.bin.temp_c
    clock.advance(1800)
    warmed = world.bin.temp_c
    assert warmed > start + 2.0          # a bin left unchilled warms ~0.1 C a minute
    machine.chiller.on()
    clock.advance(1800)
    assert world.bin.temp_c < warmed - 2.0


def test_physics_open_lid_warms_bin_faster(machine, world, clock):
    clock.advance(600)
    shut = world.bin.temp_c
    world.bin.temp_c = 3.0
    world.set_fault('lid-open', True)
    clock.advance(600)
    assert world.bin.temp_c - 3.0 > 3 * (shut - 3.0)


def test_physics_dispense_drops_one_unit(machine, world, clock):
    world.heartbeat_generator()   # motors run only while the monostable is up
    cheese = world.bays[1]
    before_units, before_g = len(cheese.items), cheese.contents_g
    machine.dispensers[1].on()
    clock.advance(0.5)
    assert len(cheese.items) == before_units     # not yet: the cam takes 0.8 s
    clock.advance(1.0)
    machine.dispensers[1].off()
    assert len(cheese.items) == before_units - 1
    assert before_g - cheese.contents_g == pytest.approx(21.0, rel=0.25)
    assert world.tray.on_tray.units[0][0] == 'cheese'
    machine.dispensers[1].on()                    # a new run drops the next unit
    clock.advance(1.0)
    assert len(cheese.items) == before_units - 2


def test_physics_jammed_dispenser_drops_nothing(machine, world, clock):
    world.set_fault('dispenser-jam:cheese', True)
    before = len(world.bays[1].items)
    machine.dispensers[1].on()
    clock.advance(3)
    assert len(world.bays[1].items) == before


def test_physics_press_reaches_its_limits_after_its_travel_time(machine, world, clock):
    world.heartbeat_generator()   # motors run only while the monostable is up
    assert machine.press.is_open and not machine.press.is_closed
    machine.press.start_closing()
    clock.advance(2.0)
    assert not machine.press.is_open and not machine.press.is_closed
    clock.advance(2.1)
    assert machine.press.is_closed
    machine.press.start_opening()
    clock.advance(4.1)
    assert machine.press.is_open


def test_physics_jammed_press_never_reaches_a_limit(machine, world, clock):
    world.set_fault('press-jam', True)
    machine.press.start_closing()
    clock.advance(10)
    assert machine.press.is_open and not machine.press.is_closed


def test_physics_tray_carries_the_sandwich_into_the_press_then_out(machine, world, clock):
    world.heartbeat_generator()   # motors run only while the monostable is up
    machine.dispensers[1].on()
    clock.advance(1.0)
    machine.dispensers[1].off()
    assert machine.conveyor.at_index
    machine.conveyor.run()
    clock.advance(0.5)
    assert not machine.conveyor.at_index
    clock.advance(2.6)
    assert machine.conveyor.at_index
    machine.conveyor.stop()
    assert world.press.sandwich is not None and world.tray.on_tray is None
    machine.conveyor.run()
    clock.advance(3.1)
    machine.conveyor.stop()
    assert world.press.sandwich is None and len(world.tray.delivered) == 1


def test_physics_tray_will_not_push_into_a_closed_press(machine, world, clock):
    world.heartbeat_generator()   # motors run only while the monostable is up
    machine.dispensers[1].on()
    clock.advance(1.0)
    machine.dispensers[1].off()
    machine.press.start_closing()
    clock.advance(4.1)
    machine.press.stop()
    machine.conveyor.run()
    clock.advance(4)
    assert world.tray.blocked and world.tray.on_tray is not None


def test_physics_noise_is_seeded_so_runs_repeat(clock):
    from hardware.clock import FakeClock
    from hardware.sim.world import World
    a, b = World(FakeClock(), seed=7), World(FakeClock(), seed=7)
    assert [x.items for x in a.bays] == [x.items for x in b.bays]
    assert [x.load_counts(False) for x in a.bays] == [x.load_counts(False) for x in b.bays]
    assert World(FakeClock(), seed=8).bays[0].items != a.bays[0].items
