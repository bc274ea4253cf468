"""Every named fault of the simulated machine, and what it does to the readings."""
import pytest

from hardware.errors import NoNewConversion, SensorOpen, TransferFailed
from hardware.i2c import MCP9600, MCP9808, NAU7802, TCA9548A
from hardware.machine import Machine
from hardware.sim.world import FAULTS, UnknownFault


@pytest.fixture
def parts(bus, clock, pin_factory):
    mux = TCA9548A(bus)
    cells = {i: NAU7802(mux.channel(i), name=f'loadcell_{i}', sleep=clock.sleep,
                        monotonic=clock.monotonic) for i in (0, 1, 2)}
    with Machine(pin_factory=pin_factory) as m:
        yield {'plate': MCP9600(bus, name='plate_thermocouple'), 'bin': MCP9808(bus, name='bin_air'),
               'cells': cells, 'machine': m}


def run_heater(machine, clock, seconds):
    machine.heater.on()
    for _ in range(round(seconds * 10)):
        machine.heater.beat()
        clock.advance(0.1)
    machine.heater.off()


def test_fault_list_is_complete():
    assert set(FAULTS) == {
        'plate-sensor-open', 'plate-sensor-nack', 'plate-sensor-frozen', 'bin-sensor-nack',
        'loadcell-nack:<bay>',
        'heater-dead', 'heater-welded', 'dispenser-jam:<bay>', 'press-jam', 'chiller-dead',
        'lid-open', 'estop', 'feedback-stuck', 'deadman-bypassed', 'current-sense-stuck',
        'current-sense-failed', 'contactor-welded', 'thermal-fuse-open'}


def test_fault_plate_sensor_open(parts, world):
    world.set_fault('plate-sensor-open', True)
    with pytest.raises(SensorOpen):
        parts['plate'].hot_junction_c
    world.set_fault('plate-sensor-open', False)
    world.clock.advance(0.1)
    assert parts['plate'].hot_junction_c == pytest.approx(21.0, abs=0.2)


def test_fault_plate_sensor_frozen_keeps_a_plausible_value_and_flags_nothing_new(parts, world,
                                                                               bus):
    world.clock.advance(0.1)
    before = parts['plate'].hot_junction_c
    world.set_fault('plate-sensor-frozen', True)
    world.clock.advance(0.1)
    parts['plate'].hot_junction_c          # the conversion it had reached, once
    world.plate.temp_c = world.plate.probe_c = before + 50.0   # the plate moves on; the
    # converter does not
    for _ in range(30):
        world.clock.advance(0.1)
        with pytest.raises(NoNewConversion, match=r'plate_thermocouple.*status 0x80'):
            parts['plate'].hot_junction_c
    frozen = bus.direct[0x60].read(0x00, 2)
    assert abs(((frozen[0] << 8 | frozen[1]) / 16.0) - before) < 1.0, 'still the old reading'
    world.set_fault('plate-sensor-frozen', False)
    world.clock.advance(0.1)
    assert parts['plate'].hot_junction_c == pytest.approx(before + 50.0, abs=2.0)


def test_fault_plate_sensor_nack(parts, world):
    world.set_fault('plate-sensor-nack', True)
    with pytest.raises(TransferFailed, match='plate_thermocouple'):
        parts['plate'].hot_junction_c
    parts['bin'].temperature_c       # the rest of the bus is fine


def test_fault_bin_sensor_nack(parts, world):
    world.set_fault('bin-sensor-nack', True)
    with pytest.raises(TransferFailed, match='bin_air'):
        parts['bin'].temperature_c
    parts['plate'].hot_junction_c


def test_fault_loadcell_nack_by_ingredient_name(parts, world):
    assert world.set_fault('loadcell-nack:vegemite', True) == 'loadcell-nack:2'
    with pytest.raises(TransferFailed, match='loadcell_2'):
        parts['cells'][2].raw_counts
    parts['cells'][1].raw_counts


def test_fault_heater_dead(parts, world, clock):
    world.set_fault('heater-dead', True)
    run_heater(parts['machine'], clock, 20)
    assert world.plate.temp_c == pytest.approx(21.0, abs=0.1)


def test_fault_heater_welded(parts, world, clock):
    world.set_fault('heater-welded', True)
    clock.advance(20)      # heater pin never set
    assert world.plate.temp_c > 35.0


def test_fault_dispenser_jam(parts, world, clock):
    world.set_fault('dispenser-jam:0', True)
    m = parts['machine']
    m.dispensers[0].on()
    clock.advance(2)
    m.dispensers[0].off()
    assert len(world.bays[0].items) == 10 and world.tray.on_tray is None


def test_fault_press_jam(parts, world, clock):
    world.set_fault('press-jam', True)
    m = parts['machine']
    m.press.start_closing()
    clock.advance(6)
    assert not m.press.is_closed


def test_fault_chiller_dead(parts, world, clock):
    world.set_fault('chiller-dead', True)
    parts['machine'].chiller.on()
    clock.advance(3600)
    assert world.bin.temp_c > 5.0


def test_fault_lid_open_and_estop_read_on_their_inputs(parts, world):
    m = parts['machine']
    world.set_fault('lid-open', True)
    assert m.lid_open
    world.set_fault('estop', True)
    assert m.estop_pressed
    world.set_fault('lid-open', False)
    world.set_fault('estop', False)
    assert not m.lid_open and not m.estop_pressed


def test_reset_button_is_held_for_the_time_asked_then_let_go(parts, world, clock):
    m, edges = parts['machine'], []
    m.reset_button.when_activated = lambda: edges.append(('down', clock.monotonic()))
    m.reset_button.when_deactivated = lambda: edges.append(('up', clock.monotonic()))
    assert not m.reset_pressed
    start = clock.monotonic()
    world.hold_button('reset', 2.5)
    assert m.reset_pressed and world.status()['buttons_held'] == ['reset']
    for _ in range(24):
        clock.advance(0.1)
        assert m.reset_pressed
    clock.advance(0.2)
    assert not m.reset_pressed and world.status()['buttons_held'] == []
    (down, t0), (up, t1) = edges
    assert (down, up) == ('down', 'up') and t0 == start and 2.5 <= t1 - start <= 2.6 + 1e-9
    with pytest.raises(ValueError, match='no button'):
        world.hold_button('self-destruct', 2.0)
    with pytest.raises(ValueError, match='0-600 s'):
        world.hold_button('reset', 0.0)


def test_fault_unknown_names_are_refused_with_the_list(world):
    with pytest.raises(UnknownFault, match='known:.*heater-dead'):
        world.set_fault('heater-on-fire', True)
    with pytest.raises(UnknownFault, match='no bay'):
        world.set_fault('dispenser-jam:caviar', True)
    with pytest.raises(UnknownFault, match='takes no argument'):
        world.set_fault('estop:1', True)


def test_flaky_bus_drops_about_the_rate_asked(parts, world):
    world.set_nack_rate('bin_air', 0.3)
    failures = 0
    bus = parts['bin'].bus
    for _ in range(1000):
        try:
            bus.read_i2c_block_data(0x18, 0x05, 2)
        except OSError:
            failures += 1
    assert 250 < failures < 350


def test_fault_list_is_what_the_command_line_offers(capsys):
    from hardware.sim.__main__ import main
    assert main(['faults']) == 0
    listed = capsys.readouterr().out
    assert 'plate-sensor-frozen' in listed and 'stops converting' in listed
    assert all(name in listed for name in FAULTS)
