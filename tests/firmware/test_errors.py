"""Every firmware error has the one root and the built-in a caller would catch."""
import pytest

from firmware import errors


@pytest.mark.parametrize('cls, builtin', [
    (errors.ConfigError, ValueError),
    (errors.OutOfRange, ValueError),
    (errors.UnknownDoneness, ValueError),
    (errors.HeaterFaulted, RuntimeError),
])
def test_errors_leaves_subclass_the_root_and_a_builtin(cls, builtin):
    assert issubclass(cls, errors.FirmwareError) and issubclass(cls, builtin)
