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
