"""Feature flags (firmware/flags.py): env override, customers, stable rollout."""
import pytest

from firmware.errors import InvalidRequest, NotFound
from firmware.flags import KNOWN, Flags, env_name


def test_flags_default_is_the_known_default():
    flags = Flags({}, {})
    assert flags.enabled('pick-v2') is KNOWN['pick-v2'][1] is True
    assert env_name('pick-v2') == 'JAFFLR_FLAG_PICK_V2'


def test_flags_stored_value_is_used():
    flags = Flags({'pick-v2': {'enabled': False}}, {})
    assert flags.enabled('pick-v2') is False and flags.enabled('pick-v2', 'kim') is False


@pytest.mark.parametrize('value, on', [('on', True), ('OFF', False), ('1', True), ('0', False),
                                       ('true', True), ('False', False)])
def test_flags_env_override_wins_over_everything(value, on):
    stored = {'pick-v2': {'enabled': not on, 'customers': ['kim'], 'percent': 100}}
    flags = Flags(stored, {'JAFFLR_FLAG_PICK_V2': value})
    assert flags.enabled('pick-v2') is on and flags.enabled('pick-v2', 'kim') is on
    flags.set('pick-v2', enabled=not on)
    assert flags.enabled('pick-v2') is on
    assert flags.describe('pick-v2')[0]['env_override'] is on


def test_flags_env_override_with_a_bad_value_is_refused_by_name():
    with pytest.raises(InvalidRequest, match="JAFFLR_FLAG_PICK_V2='maybe': use on or off"):
        Flags({}, {'JAFFLR_FLAG_PICK_V2': 'maybe'})


def test_flags_named_customers_get_it_first():
    flags = Flags({'pick-v2': {'enabled': False, 'customers': ['kim', 'lee']}}, {})
    assert flags.enabled('pick-v2', 'kim') and flags.enabled('pick-v2', 'lee')
    assert not flags.enabled('pick-v2', 'max') and not flags.enabled('pick-v2')


def test_flags_percentage_rollout_is_stable_per_customer_and_about_the_share():
    customers = [f'customer-{i}' for i in range(2000)]
    flags = Flags({'pick-v2': {'enabled': False, 'percent': 25}}, {})
    on = {c for c in customers if flags.enabled('pick-v2', c)}
    assert 0.21 < len(on) / len(customers) < 0.29
    again = Flags({'pick-v2': {'enabled': False, 'percent': 25}}, {})     # after a restart
    assert on == {c for c in customers if again.enabled('pick-v2', c)}
    wider = Flags({'pick-v2': {'enabled': False, 'percent': 50}}, {})
    assert on <= {c for c in customers if wider.enabled('pick-v2', c)}, \
        'widening a rollout keeps everyone who had it'
    assert not flags.enabled('pick-v2'), 'no customer named: the flag value'


def test_flags_rollout_edges():
    nobody = Flags({'pick-v2': {'enabled': False, 'percent': 0}}, {})
    everyone = Flags({'pick-v2': {'enabled': False, 'percent': 100}}, {})
    names = [f'c{i}' for i in range(200)]
    assert not any(nobody.enabled('pick-v2', n) for n in names)
    assert all(everyone.enabled('pick-v2', n) for n in names)


def test_flags_set_describe_and_store_round_trip():
    flags = Flags({}, {})
    flags.set('pick-v2', enabled=False, customers=['kim'], percent=10)
    described = flags.describe()[0]
    assert described == {'name': 'pick-v2', 'enabled': False, 'customers': ['kim'], 'percent': 10,
                         'description': KNOWN['pick-v2'][0], 'env_override': None,
                         'env_variable': 'JAFFLR_FLAG_PICK_V2'}
    assert Flags(flags.stored(), {}).describe() == flags.describe()


def test_flags_unknown_flag_is_not_found_with_the_known_ones():
    flags = Flags({}, {})
    with pytest.raises(NotFound, match="there is no feature flag 'pick-v3'") as missing:
        flags.enabled('pick-v3')
    assert missing.value.allowed == 'pick-v2'
    with pytest.raises(NotFound):
        flags.set('pick-v3', enabled=True)
