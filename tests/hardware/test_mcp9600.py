import pytest

from hardware.errors import NoNewConversion, PartMissing, SensorOpen, TransferFailed
from hardware.i2c.mcp9600 import MCP9600, decode_junction, encode_junction
from tests.hardware.fakes import FlakyBus


@pytest.mark.parametrize('msb, lsb, celsius', [
    (0x01, 0x90, 25.0),
    (0x0C, 0x80, 200.0),
    (0xFE, 0xC0, -20.0),      # negative, two's complement
    (0xFF, 0xFF, -0.0625),
    (0x00, 0x01, 0.0625),
    (0x7F, 0xFF, 2047.9375),
])
def test_mcp9600_decode_junction(msb, lsb, celsius):
    assert decode_junction(msb, lsb) == celsius


def test_mcp9600_encode_round_trips():
    for celsius in (-40.0, -0.5, 0.0, 21.0, 230.0):
        assert decode_junction(*encode_junction(celsius)) == celsius


def test_mcp9600_reads_the_plate_and_configures_k_and_16_bits(bus, world):
    world.plate.temp_c = world.plate.probe_c = 187.25
    tc = MCP9600(bus)
    world.clock.advance(0.1)
    assert tc.hot_junction_c == pytest.approx(187.25, abs=0.1)
    assert bus.direct[0x60].sensor_config == 0x00      # type K, no filter
    assert bus.direct[0x60].device_config == 0x20      # 16-bit ADC


def test_mcp9600_data_ready_bit_clears_once_read(bus, world):
    tc = MCP9600(bus)
    world.clock.advance(0.1)
    assert tc.status & 0x40
    tc.hot_junction_c
    assert not tc.status & 0x40
    world.clock.advance(0.08)
    assert tc.status & 0x40


def test_mcp9600_reads_only_a_new_conversion_never_the_stale_register(bus, world):
    world.plate.temp_c = world.plate.probe_c = 100.0
    tc = MCP9600(bus, name='plate_thermocouple')
    world.clock.advance(0.1)
    assert tc.hot_junction_c == pytest.approx(100.0, abs=0.1)
    world.plate.temp_c = world.plate.probe_c = 120.0
    # Within the same conversion (80 ms at 16 bits) nothing new is flagged: no value at all,
    # not the old register again.
    with pytest.raises(NoNewConversion, match=r'plate_thermocouple.*no new hot-junction'):
        tc.hot_junction_c
    world.clock.advance(0.08)
    assert tc.hot_junction_c == pytest.approx(120.0, abs=0.5)


def test_mcp9600_wait_for_a_conversion_polls_then_says_it_is_not_converting(bus, world, clock):
    tc = MCP9600(bus, name='plate_thermocouple', sleep=clock.advance)
    clock.advance(0.1)
    tc.hot_junction_c
    assert tc.wait_for_hot_junction_c() == pytest.approx(21.0, abs=0.2)   # the next one
    world.set_fault('plate-sensor-frozen', True)
    with pytest.raises(NoNewConversion, match='for 1.00 s: the converter is not converting'):
        tc.wait_for_hot_junction_c(timeout_s=1.0)


def test_mcp9600_open_thermocouple_raises_never_a_value(bus, world):
    tc = MCP9600(bus, name='plate_thermocouple')
    world.set_fault('plate-sensor-open', True)
    with pytest.raises(SensorOpen, match='plate_thermocouple.*open'):
        tc.hot_junction_c


def test_mcp9600_probe_opening_between_the_status_and_the_reading_is_open_not_a_value(
        bus, world):
    """The status said a good conversion; the probe opened before the data was read (seen
    under load: the plate latched `plate-sensor-fault` at 1800 C, not `plate-sensor-open`)."""
    tc = MCP9600(bus, name='plate_thermocouple')
    world.clock.advance(0.1)
    chip = bus.direct[0x60]
    real_read = chip.read

    def read(register, length):
        if register == 0x00:        # the hot junction, after the status was read
            world.set_fault('plate-sensor-open', True)
        return real_read(register, length)
    chip.read = read
    with pytest.raises(SensorOpen, match=r'plate_thermocouple.*open.*read 1800.0 C'):
        tc.hot_junction_c


def test_mcp9600_an_impossible_value_the_chip_vouches_for_goes_to_the_caller(bus, world):
    world.plate.temp_c = world.plate.probe_c = 1500.0      # no type K reads this: a short?
    tc = MCP9600(bus, name='plate_thermocouple')
    world.clock.advance(0.1)
    assert tc.hot_junction_c == pytest.approx(1500.0, abs=0.1)     # the range check trips


def test_mcp9600_clock_stretch_erratum_is_retried(bus):
    flaky = FlakyBus(bus)
    tc = MCP9600(flaky)
    flaky.fail = 2
    assert tc.hot_junction_c == pytest.approx(21.0)


def test_mcp9600_gives_up_after_bounded_retries(bus, world):
    tc = MCP9600(bus, name='plate_thermocouple')
    world.set_fault('plate-sensor-nack', True)
    with pytest.raises(TransferFailed, match='failed 3 times'):
        tc.hot_junction_c


def test_mcp9600_absent_is_named(bus):
    with pytest.raises(PartMissing, match=r'MCP9600 at 0x67'):
        MCP9600(bus, 0x67)


def test_mcp9600_wrong_identity_is_refused(bus):
    with pytest.raises(PartMissing, match='not an MCP9600'):
        MCP9600(bus, 0x18)
