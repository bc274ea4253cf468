"""The plate rig for firmware tests: PlateController on the in-process simulated machine
(World + SimBus + wired gpiozero pins + the real MCP9600 driver and HeaterRelay)."""
import pytest

from inprocess.plate import PlateRig


@pytest.fixture
def make_rig(clock, world, bus, pin_factory):
    """make_rig(config=None, controller='pid', chain=False) -> PlateRig; one per test (the
    pins are claimed). chain=True watches the safety chain's read-backs, as the service does."""
    made = []

    def make(config=None, controller='pid', chain=False):
        made.append(PlateRig(clock, world, bus, pin_factory, config=config, controller=controller,
                             chain=chain))
        return made[-1]
    try:
        yield make
    finally:
        for rig in made:
            rig.close()


@pytest.fixture
def rig(make_rig):
    return make_rig()


@pytest.fixture
def make_kitchen(tmp_path):
    """make_kitchen(state_dir=None, kind=InProcessMachine, **its options) -> the machine,
    closed afterwards. The whole machine in process on a fake clock: see
    inprocess/machine.py (kind: a subclass, tests/support/plate.py's SplitMachine)."""
    from inprocess import InProcessMachine
    made = []

    def make(state_dir=None, kind=InProcessMachine, **options):
        made.append(kind(state_dir or tmp_path, **options))
        return made[-1]
    try:
        yield make
    finally:
        for k in made:
            k.close()


@pytest.fixture
def kitchen(make_kitchen):
    """An InProcessMachine whose plate starts hot (see tests.support.kitchen.hot_plate)."""
    from tests.support.kitchen import hot_plate
    k = make_kitchen()
    hot_plate(k)
    k.run(0.5)          # chillybin's load cells have a reading: stock is known
    return k


@pytest.fixture
def make_split(make_kitchen):
    """make_split(state_dir=None, **SplitMachine options) -> SplitMachine, closed afterwards:
    the whole machine in process with the plate in a "process" of its own (see
    tests/support/plate.py). Its plate starts hot, and has ticked half a second."""
    from tests.support.kitchen import hot_plate
    from tests.support.plate import SplitMachine

    def make(state_dir=None, **options):
        m = make_kitchen(state_dir, kind=SplitMachine, **options)
        hot_plate(m)
        m.run(0.5)
        return m
    return make


@pytest.fixture
def split(make_split):
    return make_split()
