"""The reservations ledger: outstanding units, attribution of drops, confirm, cancel, expiry."""
import pytest

from firmware.errors import Conflict, NotFound
from firmware.reservations import (CANCELLED, CONFIRMED, EXPIRED, HELD, KEEP_CLOSED_S, TAKEN,
                                   Ledger, Reservation)


def held(ledger, items, at=0.0, ttl=120.0, key=None, fingerprint=''):
    r = Reservation(ledger.new_id(), dict(items), at, at + ttl, key=key, fingerprint=fingerprint)
    ledger.add(r)
    return r


def test_reservations_outstanding_counts_open_reservations_only():
    ledger = Ledger()
    a = held(ledger, {'bread': 2, 'cheese': 1})
    held(ledger, {'bread': 1})
    assert ledger.outstanding('bread') == 3 and ledger.outstanding('cheese') == 1
    ledger.cancel(a.id, 1.0)
    assert ledger.outstanding('bread') == 1 and ledger.outstanding('cheese') == 0


def test_reservations_drop_is_attributed_to_the_oldest_expecting_it():
    ledger = Ledger()
    older = held(ledger, {'bread': 1}, at=1.0)
    newer = held(ledger, {'bread': 2}, at=2.0)
    explained, changed = ledger.attribute('bread', 2, 3.0)
    assert explained == 2 and changed == [older, newer]
    assert older.taken == {'bread': 1} and newer.taken == {'bread': 1}
    assert ledger.outstanding('bread') == 1


def test_reservations_drop_nobody_expected_is_unexplained():
    ledger = Ledger()
    held(ledger, {'cheese': 1})
    assert ledger.attribute('bread', 1, 1.0) == (0, [])
    explained, _ = ledger.attribute('cheese', 3, 1.0)
    assert explained == 1


def test_reservations_confirm_before_the_drop_is_refused():
    ledger = Ledger()
    r = held(ledger, {'bread': 2})
    ledger.attribute('bread', 1, 1.0)
    with pytest.raises(Conflict, match=r'not every unit has left its bay yet \(bread 1/2'):
        ledger.confirm(r.id, 2.0)
    ledger.attribute('bread', 1, 3.0)
    assert ledger.confirm(r.id, 4.0).state == TAKEN
    assert ledger.confirm(r.id, 5.0).state == TAKEN        # confirming again is harmless


def test_reservations_cancel_gives_back_what_was_not_taken():
    ledger = Ledger()
    r = held(ledger, {'bread': 2, 'cheese': 1})
    ledger.attribute('bread', 1, 1.0)
    ledger.cancel(r.id, 2.0)
    assert r.state == CANCELLED and ledger.outstanding('bread') == 0
    assert ledger.cancel(r.id, 3.0).state == CANCELLED     # idempotent


def test_reservations_cancel_of_a_taken_one_is_a_conflict():
    ledger = Ledger()
    r = held(ledger, {'bread': 1})
    ledger.attribute('bread', 1, 1.0)
    ledger.confirm(r.id, 2.0)
    with pytest.raises(Conflict, match='already taken'):
        ledger.cancel(r.id, 3.0)


def test_reservations_confirm_of_a_cancelled_one_is_a_conflict():
    ledger = Ledger()
    r = held(ledger, {'bread': 1})
    ledger.cancel(r.id, 1.0)
    with pytest.raises(Conflict, match='is cancelled'):
        ledger.confirm(r.id, 2.0)


def test_reservations_expire_when_never_confirmed():
    ledger = Ledger()
    r = held(ledger, {'bread': 1}, at=0.0, ttl=120.0)
    assert ledger.expire(119.9) == []
    assert ledger.expire(120.0) == [r] and r.state == EXPIRED
    assert ledger.outstanding('bread') == 0 and 'expired' in r.note


def test_reservations_pick_closes_itself_once_its_units_dropped():
    ledger = Ledger()
    pick = Reservation(ledger.new_id('p'), {'cheese': 2}, 0.0, 600.0, 'pick', state=CONFIRMED)
    ledger.add(pick)
    ledger.attribute('cheese', 1, 1.0)
    assert pick.state == CONFIRMED
    ledger.attribute('cheese', 1, 2.0)
    assert pick.state == TAKEN and pick.closed_at == 2.0


def test_reservations_idempotency_key_replays_and_refuses_a_different_body():
    ledger = Ledger()
    r = held(ledger, {'bread': 1}, key='k', fingerprint='f1')
    assert ledger.replay('k', 'f1') is r
    assert ledger.replay('other', 'f1') is None and ledger.replay(None, 'f1') is None
    with pytest.raises(Conflict, match="Idempotency-Key 'k' was already used"):
        ledger.replay('k', 'f2')


def test_reservations_unknown_id_is_not_found():
    with pytest.raises(NotFound, match="no reservation 'r9'"):
        Ledger().get('r9')


def test_reservations_round_trip_through_storage_form():
    ledger = Ledger()
    r = held(ledger, {'bread': 2}, key='k', fingerprint='f')
    ledger.attribute('bread', 1, 1.0)
    again = Reservation.from_dict(r.to_dict())
    assert again == r


def test_reservations_closed_ones_are_forgotten_after_a_day_with_their_keys():
    ledger = Ledger()
    r = held(ledger, {'bread': 1}, key='k')
    still = held(ledger, {'bread': 1})
    ledger.cancel(r.id, 10.0)
    assert ledger.forget_old(10.0 + KEEP_CLOSED_S) == []
    assert ledger.forget_old(11.0 + KEEP_CLOSED_S) == [r]
    assert ledger.replay('k', '') is None and still.state == HELD


def test_reservations_numbers_continue_after_a_restart():
    assert Ledger(next_number=42).new_id() == 'r42'
