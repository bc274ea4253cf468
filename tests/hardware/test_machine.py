import pytest
from gpiozero import GPIOPinInUse

from hardware.board import BOARD
from hardware.machine import Machine


def test_machine_close_leaves_every_output_off(pin_factory, world):
    m = Machine(pin_factory=pin_factory)
    m.heater.on()
    m.heater.beat()
    m.chiller.on()
    m.press.start_closing()
    m.conveyor.run()
    for d in m.dispensers.values():
        d.on()
    m.buzzer.on()
    m.status_led.on()
    m.close()
    for part in BOARD.gpio:
        if part.direction == 'out':
            assert not world.is_active(part.name), part.name


def test_machine_all_off_is_safe_to_repeat(pin_factory, world):
    with Machine(pin_factory=pin_factory) as m:
        m.heater.on()
        m.all_off()
        m.all_off()
        assert not m.heater.is_on


def test_machine_opens_only_the_parts_its_owner_claims(pin_factory):
    with Machine(owner='chillybin', pin_factory=pin_factory) as bin_side:
        assert bin_side.chiller is not None
        assert bin_side.heater is None and bin_side.press is None and not bin_side.dispensers
        with Machine(owner='jafflr', pin_factory=pin_factory) as press_side:
            assert press_side.chiller is None and press_side.heater is None
            assert press_side.lid is None and press_side.estop is None
            assert set(press_side.dispensers) == {b.index for b in BOARD.bays}
            assert press_side.reset_button is not None
            with Machine(owner='plate', pin_factory=pin_factory) as plate:
                assert plate.heater is not None and plate.heater.driven is not None
                assert plate.lid is not None and plate.estop is not None
                assert plate.contactor is not None
                assert plate.press is None and not plate.dispensers


def test_machine_failed_construction_closes_the_parts_already_made(pin_factory):
    from gpiozero import DigitalOutputDevice
    squatter = DigitalOutputDevice(BOARD.gpio_part('tray_motor').pin, pin_factory=pin_factory)
    try:
        with pytest.raises(GPIOPinInUse):
            Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory)
        # Everything made before the conveyor was released again, so it can be made anew.
        heater_pin = BOARD.gpio_part('heater_relay').pin
        DigitalOutputDevice(heater_pin, pin_factory=pin_factory).close()
    finally:
        squatter.close()


def test_machine_interlocks_read_fail_safe(pin_factory, world):
    with Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory) as m:
        assert not m.lid_open and not m.estop_pressed
        world.set_fault('lid-open', True)
        world.set_fault('estop', True)
        assert m.lid_open and m.estop_pressed


def test_machine_input_events_arrive_from_the_world(pin_factory, world, clock):
    world.heartbeat_generator()      # the motors' enable needs the heartbeat
    with Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory) as m:
        seen = []
        m.press.closed_limit.when_activated = lambda: seen.append(clock.monotonic())
        m.press.start_closing()
        for _ in range(500):
            clock.advance(0.01)
        assert len(seen) == 1 and seen[0] == pytest.approx(4.0, abs=0.05)


def test_machine_conveyor_counts_each_index_mark_it_comes_to(pin_factory, world, clock):
    """However briefly the eye sees a mark between two looks, the count has it."""
    world.heartbeat_generator()
    with Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory) as m:
        assert m.conveyor.at_index and m.conveyor.marks_reached == 0
        m.conveyor.run()
        clock.advance(2.8)                 # one index is 3 s; the next mark starts at 2.85
        assert m.conveyor.marks_reached == 0
        clock.advance(0.5)                 # one look 0.5 s later: the mark came and went
        assert m.conveyor.marks_reached == 1
        clock.advance(3.0)
        m.conveyor.stop()
        assert m.conveyor.marks_reached == 2


def test_machine_pin_history_is_bounded(pin_factory):
    with Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory) as m:
        for _ in range(5000):
            m.heater.beat()
        assert len(m.heater.heartbeat.pin.states) <= 1000


def test_hardware_readme_wiring_table_is_the_one_generated_from_the_board():
    import os
    from hardware.board import wiring_table
    readme = os.path.join(os.path.dirname(__file__), '..', '..', 'hardware', 'README.md')
    with open(readme, encoding='utf-8') as f:
        assert wiring_table() in f.read(), 'regenerate the table: python -c "from ' \
            'hardware.board import wiring_table; print(wiring_table())"'


def test_machine_pins_are_each_used_once():
    pins = [p.pin for p in BOARD.gpio]
    assert len(pins) == len(set(pins)), sorted(pins)
    assert not {2, 3} & set(pins), 'GPIO2/3 are the I2C bus'


def test_machine_all_off_switches_the_rest_off_when_one_output_fails(pin_factory, world):
    with Machine(pin_factory=pin_factory) as m:
        m.press.start_closing()
        m.conveyor.run()
        m.chiller.on()

        def fails():
            raise OSError('the heater line cannot be written')
        m.heater.off = fails
        with pytest.raises(OSError, match='heater line'):
            m.all_off()
        assert not m.press.is_moving and not m.conveyor.is_running and not m.chiller.is_active
        del m.heater.off
