"""The ADS1115 driver: pure decode against the datasheet's output codes, identity and
configuration checks, and the element current it reads from the simulated machine."""
import pytest

from hardware.board import ELEMENT_A, ELEMENT_OFF_MAX_A, element_amps
from hardware.errors import PartMissing, TransferFailed
from hardware.i2c.ads1115 import (ADS1115, CONFIG_CONTINUOUS_AIN0, decode_volts, encode_volts,
                                  full_scale_v)
from hardware.machine import Machine
from tests.hardware.fakes import DeadBus, FlakyBus


@pytest.mark.parametrize('raw, volts', [
    (0x7FFF, 2.048 * 32767 / 32768),   # datasheet: +FS (2^15 - 1)/2^15
    (0x0001, 2.048 / 32768),           # datasheet: +FS/2^15
    (0x0000, 0.0),
    (0xFFFF, -2.048 / 32768),          # datasheet: -FS/2^15
    (0x8000, -2.048),                  # datasheet: -FS
])
def test_ads1115_decode_datasheet_output_codes(raw, volts):
    assert decode_volts(raw) == pytest.approx(volts, abs=1e-12)


def test_ads1115_decode_follows_the_full_scale():
    assert decode_volts(0x4000, 4.096) == 2.048
    assert full_scale_v(CONFIG_CONTINUOUS_AIN0) == 2.048
    assert full_scale_v(0x8583) == 2.048          # power-on default: +/-2.048 V
    assert full_scale_v(0x0000) == 6.144


@pytest.mark.parametrize('volts', [-2.0, -0.001, 0.0, 0.0625, 0.7, 2.0])
def test_ads1115_encode_round_trips(volts):
    assert decode_volts(encode_volts(volts)) == pytest.approx(volts, abs=2.048 / 32768)


def test_ads1115_encode_saturates_like_the_converter():
    assert encode_volts(5.0) == 0x7FFF and encode_volts(-5.0) == 0x8000


def test_ads1115_configures_continuous_conversion(bus):
    adc = ADS1115(bus, name='element_current')
    chip = bus.direct[0x48]
    assert chip.config == CONFIG_CONTINUOUS_AIN0 == 0x4483
    assert 'config 0x4483' in adc.identity


def test_ads1115_missing_part_is_named(bus):
    with pytest.raises(PartMissing, match=r'element_current \(ADS1115 at 0x49\)'):
        ADS1115(bus, 0x49, name='element_current')


def test_ads1115_wrong_identity_is_refused(bus):
    # The MCP9808 answers at 0x18, but its registers 2 and 3 are not the ADS1115's.
    with pytest.raises(PartMissing, match='not an ADS1115'):
        ADS1115(bus, 0x18, name='element_current')


def test_ads1115_config_that_does_not_stick_is_refused(bus):
    chip = bus.direct[0x48]
    chip.write = lambda register, data: None        # a part that ignores writes
    with pytest.raises(PartMissing, match='read back as 0x8583'):
        ADS1115(bus, name='element_current')


def test_ads1115_retries_then_names_the_part(bus):
    adc = ADS1115(FlakyBus(bus, fail=2), name='element_current')
    assert adc.volts == pytest.approx(0.0, abs=0.01)
    with pytest.raises(PartMissing, match='does not answer'):
        ADS1115(DeadBus(), name='element_current')


def test_ads1115_reads_the_element_current(bus, world, clock, pin_factory):
    adc = ADS1115(bus, name='element_current')
    with Machine(owner=('jafflr', 'plate'), pin_factory=pin_factory) as m:
        m.heater.on()
        for _ in range(3):
            m.heater.beat()
            clock.advance(0.1)
        assert element_amps(adc.volts) == pytest.approx(ELEMENT_A, rel=0.05)
        m.heater.off()
        clock.advance(0.3)
        assert element_amps(adc.volts) < ELEMENT_OFF_MAX_A / 4


def test_ads1115_current_sense_faults(bus, world, clock):
    adc = ADS1115(bus, name='element_current')
    world.set_fault('current-sense-failed', True)
    with pytest.raises(TransferFailed, match='element_current'):
        adc.volts
    world.set_fault('current-sense-failed', False)
    before = adc.volts
    world.set_fault('current-sense-stuck', True)
    world.set_fault('heater-welded', True)          # current flows; the reading stays put
    clock.advance(1.0)
    assert adc.volts == before
