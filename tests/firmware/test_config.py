"""Settings are checked once: unknown names, non-numbers and out-of-range values fail
loudly, with the numbers in the message."""
import math

import pytest

from firmware.config import checked, sections
from firmware.errors import ConfigError

SPEC = {'gain': (1.0, 0.0, 5.0), 'limit_c': (200.0, 100.0, 300.0)}


def test_config_defaults_fill_what_is_not_given():
    cfg = checked({'gain': 2}, SPEC, 'Thing')
    assert (cfg.gain, cfg.limit_c) == (2.0, 200.0)
    assert isinstance(cfg.gain, float)


def test_config_rejects_unknown_names_and_lists_the_known():
    with pytest.raises(ConfigError, match=r'Thing: unknown setting\(s\) gian; known: gain, limit_c'):
        checked({'gian': 1}, SPEC, 'Thing')


@pytest.mark.parametrize('value', [-0.5, 5.01, math.nan, math.inf])
def test_config_rejects_values_out_of_range_with_the_numbers(value):
    with pytest.raises(ConfigError, match=r'gain \(.*\) out of range \(0\.000:5\.000\)'):
        checked({'gain': value}, SPEC, 'Thing')


@pytest.mark.parametrize('value', ['2', None, True])
def test_config_rejects_values_that_are_not_numbers(value):
    with pytest.raises(ConfigError, match='must be a number'):
        checked({'gain': value}, SPEC, 'Thing')


def test_config_sections_split_off_named_dicts():
    flat, subs = sections({'a': 1, 'pid': {'kp': 1}}, ('pid', 'verify'), 'X')
    assert flat == {'a': 1} and subs == {'pid': {'kp': 1}, 'verify': None}
    with pytest.raises(ConfigError, match="section 'pid' must be a dict"):
        sections({'pid': 3}, ('pid',), 'X')
