import pytest

from hardware.errors import BoardConfigError, PartMissing
from hardware.platform import open_platform, resolve_mode


def test_platform_auto_is_sim_without_a_pi_and_says_so(tmp_path):
    model = tmp_path / 'model'
    model.write_bytes(b'QEMU Virtual Machine\0')
    mode, why = resolve_mode('auto', str(model))
    assert mode == 'sim' and 'no Raspberry Pi detected' in why


def test_platform_auto_is_pi_on_a_pi(tmp_path):
    model = tmp_path / 'model'
    model.write_bytes(b'Raspberry Pi 5 Model B Rev 1.0\0')
    assert resolve_mode('auto', str(model))[0] == 'pi'


def test_platform_mode_from_environment(monkeypatch):
    monkeypatch.setenv('JAFFLR_MACHINE', 'sim')
    assert resolve_mode()[0] == 'sim'
    monkeypatch.setenv('JAFFLR_MACHINE', 'toaster')
    with pytest.raises(BoardConfigError, match='auto, pi, sim'):
        resolve_mode()


def test_platform_pi_mode_without_a_pi_fails_naming_the_part_never_falls_back():
    with pytest.raises(PartMissing, match=r'I2C bus 1 \(/dev/i2c-1\)'):
        open_platform('pi')


def _fake_pi(monkeypatch, factory):
    """A Pi whose I2C bus is broken (opening it fails, as a wedged bus or a missing
    /dev/i2c-1 does) and whose GPIO is gpiozero's mock factory."""
    import sys
    import types

    import smbus2
    bus_opens = []

    def broken_bus(number):
        bus_opens.append(number)
        raise OSError(110, 'Connection timed out')
    monkeypatch.setattr(smbus2, 'SMBus', broken_bus)
    lgpio = types.ModuleType('gpiozero.pins.lgpio')
    lgpio.LGPIOFactory = lambda: factory
    monkeypatch.setitem(sys.modules, 'gpiozero.pins.lgpio', lgpio)
    return bus_opens


def test_safe_off_switches_outputs_off_on_a_pi_whose_i2c_bus_is_broken(monkeypatch, capsys):
    from gpiozero.pins.mock import MockFactory

    from hardware import safe_off
    from hardware.board import BOARD
    factory = MockFactory()
    heater = factory.pin(BOARD.gpio_part('heater_relay').pin)
    conveyor = factory.pin(BOARD.gpio_part('tray_motor').pin)
    for pin in (heater, conveyor):     # what a killed service left: lines driven high
        pin.function = 'output'
        pin.state = True
    bus_opens = _fake_pi(monkeypatch, factory)
    assert safe_off.main(['--machine', 'pi', '--owner', 'jafflr']) == 0, capsys.readouterr()
    assert heater.state is True and conveyor.state is False     # the heater is the plate's
    assert 'every jafflr output driven off' in capsys.readouterr().out
    assert safe_off.main(['--machine', 'pi', '--owner', 'plate']) == 0, capsys.readouterr()
    assert factory.pin(BOARD.gpio_part('heater_relay').pin).state is False
    assert 'every plate output driven off' in capsys.readouterr().out
    assert bus_opens == [], 'safe_off opened the I2C bus'


def test_platform_pi_services_still_fail_on_a_broken_i2c_bus(monkeypatch):
    from gpiozero.pins.mock import MockFactory
    bus_opens = _fake_pi(monkeypatch, MockFactory())
    with pytest.raises(PartMissing, match='Connection timed out'):
        open_platform('pi')
    assert bus_opens == [1]


def test_real_clock_knows_it_is_synchronised_only_where_timesyncd_says(tmp_path):
    from hardware.clock import RealClock
    timesync = tmp_path / 'timesync'
    assert RealClock(str(timesync)).synchronised() is None     # no timesyncd: cannot know
    timesync.mkdir()
    assert RealClock(str(timesync)).synchronised() is False    # running, not yet synchronised
    (timesync / 'synchronized').touch()
    assert RealClock(str(timesync)).synchronised() is True
