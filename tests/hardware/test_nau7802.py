import pytest

from hardware.board import LOADCELL_COUNTS_PER_G
from hardware.errors import ConversionTimeout, PartMissing, TransferFailed
from hardware.i2c.nau7802 import NAU7802, decode_counts, encode_counts
from hardware.i2c.tca9548a import TCA9548A


@pytest.mark.parametrize('data, counts', [
    ((0x7F, 0xFF, 0xFF), 8388607),
    ((0x80, 0x00, 0x00), -8388608),
    ((0xFF, 0xFF, 0xFF), -1),
    ((0x00, 0x00, 0x01), 1),
    ((0x01, 0x00, 0x00), 65536),
])
def test_nau7802_decode_counts(data, counts):
    assert decode_counts(*data) == counts
    assert encode_counts(counts) == bytes(data)


def _cell(bus, clock, channel=1):
    mux = TCA9548A(bus)
    return NAU7802(mux.channel(channel), sleep=clock.sleep, monotonic=clock.monotonic)


def test_nau7802_start_up_sequence_powers_calibrates_and_converts(bus, clock):
    cell = _cell(bus, clock)
    chip = bus.behind[(1, 0x2A)]
    assert chip.regs[0x00] & 0x10          # cycle start
    assert chip.regs[0x01] == 0b00100111   # LDO 3.3 V, gain 128
    assert (chip.regs[0x02] >> 4) == 0b011  # 80 SPS, calibration finished
    assert chip.regs[0x1C] & 0x80
    grams = (cell.raw_counts - chip.bay.offset_counts) / LOADCELL_COUNTS_PER_G
    assert grams == pytest.approx(240.0 + chip.bay.contents_g, abs=1.0)


def test_nau7802_waits_for_conversion_ready(bus, clock):
    cell = _cell(bus, clock)
    cell.raw_counts
    first = clock.monotonic() // (1 / 80)
    cell.raw_counts
    # The second read waited for the next of the 80-a-second conversions.
    assert clock.monotonic() // (1 / 80) == first + 1


def test_nau7802_never_ready_times_out(bus, clock):
    cell = _cell(bus, clock)
    bus.behind[(1, 0x2A)].regs[0x00] &= ~0x10   # conversions stopped behind its back
    with pytest.raises(ConversionTimeout, match='conversion ready'):
        cell.raw_counts


def test_nau7802_behind_an_unselected_mux_is_missing(bus, clock):
    with pytest.raises(PartMissing, match='NAU7802'):
        NAU7802(bus, sleep=clock.sleep, monotonic=clock.monotonic)   # no channel selected


def test_nau7802_failed_transfer_is_named(bus, clock, world):
    cell = _cell(bus, clock, channel=2)
    world.set_fault('loadcell-nack:2', True)
    with pytest.raises(TransferFailed, match='failed 3 times'):
        cell.raw_counts


def test_mux_channels_isolate_cells(bus, clock, world):
    mux = TCA9548A(bus)
    cells = {ch: NAU7802(mux.channel(ch), name=f'loadcell_{ch}', sleep=clock.sleep,
                         monotonic=clock.monotonic) for ch in (0, 1, 2)}
    world.fill('bread', 0)
    world.fill('cheese', 20)
    readings = {ch: (cell.raw_counts - world.bays[ch].offset_counts) / LOADCELL_COUNTS_PER_G
                for ch, cell in cells.items()}
    assert readings[0] == pytest.approx(240.0, abs=1.0)
    assert readings[1] == pytest.approx(240.0 + world.bays[1].contents_g, abs=1.0)


def test_mux_rejects_a_channel_it_does_not_have(bus):
    with pytest.raises(ValueError, match='0-7'):
        TCA9548A(bus).select(8)
