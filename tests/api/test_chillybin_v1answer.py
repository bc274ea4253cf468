"""The v1 answer to GET / kept ready as bytes (api/chillybin/v1answer.py): re-encoded when
the bin's stock changes, handed to the read replica before the change is acknowledged."""
import pytest

from api.chillybin.v1answer import V1StockAnswer
from hardware.clock import FakeClock
from tests.firmware.binrig import BinRig


@pytest.fixture
def rig(tmp_path):
    made = BinRig(tmp_path, FakeClock())
    try:
        yield made
    finally:
        made.close()


def test_v1answer_is_empty_until_the_bays_are_counted_then_the_flat_map(rig):
    published = []
    answer = V1StockAnswer(rig.bin, published.append)
    assert answer.body == b'{}'
    rig.tick(2)
    assert answer.body == b'{}' and published == []       # no bay counted yet: nothing new
    rig.tick(1)
    assert answer.body == b'{"bread": 10, "cheese": 10, "vegemite": 10}'
    rig.tick(20)
    assert published == [answer.body]                     # once a change, not once a round


def test_v1answer_is_published_before_a_pick_or_cancel_returns(rig):
    published = []
    answer = V1StockAnswer(rig.bin, published.append)
    rig.tick(3)
    rig.bin.desk.pick('cheese', 2, rig.clock.time())
    assert published[-1] == answer.body == b'{"bread": 10, "cheese": 8, "vegemite": 10}'
    r, _ = rig.bin.desk.reserve({'bread': 3}, rig.clock.time())
    assert published[-1] == b'{"bread": 7, "cheese": 8, "vegemite": 10}'
    rig.bin.desk.cancel(r.id, rig.clock.time())
    assert published[-1] == b'{"bread": 10, "cheese": 8, "vegemite": 10}'


def test_v1answer_leaves_out_a_bay_that_cannot_be_read(rig):
    answer = V1StockAnswer(rig.bin)
    rig.tick(3)
    rig.parts.failing.add(1)
    rig.tick(3)
    assert answer.body == b'{"bread": 10, "vegemite": 10}'
