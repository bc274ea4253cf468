"""chillybin's bin parts: one that is missing at start fails by name and comes back."""
import pytest

from api.chillybin.parts import BinParts
from hardware.errors import PartMissing, TransferFailed


def test_parts_all_open_on_a_healthy_bin(bus, clock, world):
    parts = BinParts(bus, clock)
    assert parts.problems() == {}
    assert parts.bin_c() == pytest.approx(world.bin.temp_c, abs=0.1)
    assert parts.counts(1) > 0


def test_parts_dead_load_cell_at_start_fails_only_its_bay_then_recovers(bus, clock, world):
    world.set_fault('loadcell-nack:cheese', True)
    parts = BinParts(bus, clock)
    assert list(parts.problems()) == ['loadcell_1']
    with pytest.raises(PartMissing, match=r'loadcell_1 \(NAU7802 at 0x2A\): does not answer'):
        parts.counts(1)
    parts.counts(0)
    parts.bin_c()
    world.set_fault('loadcell-nack:cheese', False)
    with pytest.raises(PartMissing):              # not tried again at once
        parts.counts(1)
    clock.advance(BinParts.retry_s)
    assert parts.counts(1) > 0 and parts.problems() == {}


def test_parts_dead_bin_sensor_at_start_is_named(bus, clock, world):
    world.set_fault('bin-sensor-nack', True)
    parts = BinParts(bus, clock)
    with pytest.raises(PartMissing, match='bin_air'):
        parts.bin_c()
    assert parts.counts(2) > 0


def test_parts_failure_after_opening_is_the_driver_error(bus, clock, world):
    parts = BinParts(bus, clock)
    world.set_fault('loadcell-nack:bread', True)
    with pytest.raises(TransferFailed, match='loadcell_0'):
        parts.counts(0)


def test_parts_unknown_slot_is_named(bus, clock):
    with pytest.raises(PartMissing, match='loadcell_9: not a part of the chilly bin'):
        BinParts(bus, clock).counts(9)
