"""chillybin's parts on their own (firmware/binreads.py, bayscales.py, foodwatch.py), as
build_chillybin wires them: what each one decides, without the others."""
import threading

import pytest

from firmware.bayscales import BayScales
from firmware.binhistory import BinHistory
from firmware.binreads import FAILED_AFTER_READS, PartReads
from firmware.binstore import BinStore
from firmware.errors import BayLocked, UnknownIngredient
from firmware.foodwatch import FoodSafetyWatch

from .binrig import BAYS, PER_G, TARE, FakeBinParts


def test_partreads_reports_a_part_only_after_failed_reads_in_a_row():
    reads = PartReads()

    def broken():
        raise OSError('bus timeout')
    value, error = reads.read(broken)
    assert value is None and error == 'OSError: bus timeout'
    assert [reads.reported('bin_air', error) for _ in range(FAILED_AFTER_READS)] == \
        [False] * (FAILED_AFTER_READS - 1) + [True]
    assert reads.reported('bin_air', None) is True         # a good read ends the run ...
    assert reads.reported('bin_air', error) is False        # ... so the next failure starts again
    assert reads.errors == {'bin_air': FAILED_AFTER_READS + 1}
    assert reads.read(lambda slot: slot * 2, 21) == (42, None)


@pytest.fixture
def store(tmp_path):
    made = BinStore(str(tmp_path), BAYS, fsync=False)
    try:
        yield made
    finally:
        made.close()


def test_bayscales_tells_rises_falls_and_empty_bays(store):
    parts, told = FakeBinParts(), []
    scales = BayScales(store, parts.read_counts, PartReads(), BinHistory(store.events),
                       threading.RLock(), nominal_calibration=lambda slot: (TARE, PER_G))
    scales.when_risen = lambda wall, bay, units: told.append(('risen', bay.name, units))
    scales.when_fallen = lambda wall, bay, units: told.append(('fallen', bay.name, units))
    scales.when_empty = lambda bay: told.append(('empty', bay.name))
    for _ in range(3):
        scales.take(0.0, scales.read())
    assert told == [] and scales.all_counted and scales.bays['cheese'].units == 10
    parts.grams[1] = 21.0 * 7
    for _ in range(3):
        scales.take(1.0, scales.read())
    parts.grams[2] = 0.0
    for _ in range(3):
        scales.take(2.0, scales.read())
    parts.grams[1] = 21.0 * 9
    for _ in range(3):
        scales.take(3.0, scales.read())
    assert [t for t in told if t[0] != 'empty'] == [('fallen', 'cheese', 3),
                                                    ('fallen', 'vegemite', 10), ('risen', 'cheese', 2)]
    assert {t for t in told if t[0] == 'empty'} == {('empty', 'vegemite')}   # every round it reads 0
    with pytest.raises(UnknownIngredient, match="no 'caviar'"):
        scales.bay('caviar')


def test_foodwatch_holds_every_bay_when_the_downtime_cannot_be_measured(store):
    scales = BayScales(store, None, PartReads(), BinHistory(store.events), threading.RLock(),
                       nominal_calibration=None)
    watch = FoodSafetyWatch(store, scales, BinHistory(store.events), threading.RLock())
    watch.count_downtime(last_seen=1_000.0, wall=400.0, synchronised=None)   # clock went back
    with pytest.raises(BayLocked, match='held until a person checks it'):
        watch.check_can_take('bread')
    assert watch.alert('cheese')['alert'] == 'food-safety-needs-check'
    answer = watch.food_check('bread', 'probed at 3.1 C, lid shut', 500.0)
    assert answer['was_held_because'].startswith('the time the service was down cannot be measured')
    watch.check_can_take('bread')                                          # no longer held
    assert watch.alert('bread') is None
    assert FoodSafetyWatch(store, scales, BinHistory(store.events), threading.RLock()) \
        .clocks['cheese'].check is not None                               # saved as held
