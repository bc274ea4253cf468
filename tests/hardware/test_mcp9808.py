import pytest

from hardware.errors import PartMissing, TransferFailed
from hardware.i2c.mcp9808 import MCP9808, decode_temperature, encode_temperature
from tests.hardware.fakes import DeadBus, FlakyBus


@pytest.mark.parametrize('raw, celsius', [
    (0x0040, 4.0),       # datasheet: +4 C
    (0x1FF0, -1.0),      # datasheet: -1 C
    (0x0190, 25.0),
    (0x0001, 0.0625),    # one LSB
    (0x1FFF, -0.0625),
    (0x1000, -256.0),    # most negative
    (0xE190, 25.0),      # alert flags in bits 15..13 are not temperature
])
def test_mcp9808_decode_datasheet_examples(raw, celsius):
    assert decode_temperature(raw) == celsius


@pytest.mark.parametrize('celsius', [-40.0, -1.0, -0.0625, 0.0, 3.0, 5.5, 125.0])
def test_mcp9808_encode_round_trips(celsius):
    assert decode_temperature(encode_temperature(celsius)) == celsius


def test_mcp9808_reads_the_bin_air(bus, world):
    world.bin.temp_c = -2.5
    sensor = MCP9808(bus, name='bin_air')
    world.clock.advance(0.3)   # one conversion later
    assert sensor.temperature_c == -2.5


def test_mcp9808_missing_part_is_named(bus):
    with pytest.raises(PartMissing, match=r'bin_air \(MCP9808 at 0x19\)'):
        MCP9808(bus, 0x19, name='bin_air')


def test_mcp9808_wrong_identity_is_refused(bus):
    # The MCP9600 answers at 0x60 but is not an MCP9808.
    with pytest.raises(PartMissing, match='not an MCP9808'):
        MCP9808(bus, 0x60)


def test_mcp9808_retries_a_transient_failure(bus):
    flaky = FlakyBus(bus)
    sensor = MCP9808(flaky)
    flaky.fail = 2
    assert sensor.temperature_c == pytest.approx(3.0, abs=0.1)


def test_mcp9808_failed_read_raises_after_three_attempts_never_a_value(bus, world):
    sensor = MCP9808(bus, name='bin_air')
    world.set_fault('bin-sensor-nack', True)
    with pytest.raises(TransferFailed, match='bin_air.*failed 3 times'):
        sensor.temperature_c


def test_mcp9808_dead_bus_is_a_missing_part():
    dead = DeadBus()
    with pytest.raises(PartMissing):
        MCP9808(dead)
    assert dead.calls == 3
