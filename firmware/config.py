"""Settings checked once, at construction: unknown names are rejected, every value is a
number inside its bounds, and the message carries the numbers (Klipper's getfloat).
Nothing keeps the raw dict afterwards."""
import math
from types import SimpleNamespace

from .errors import ConfigError


def checked(given, spec, what):
    """`given` (a dict or None) checked against `spec` {name: (default, min, max)}.

    Returns a namespace with every name in `spec` as a float."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(f'{what}: unknown setting(s) {", ".join(unknown)}; '
                          f'known: {", ".join(sorted(spec))}')
    values = {}
    for name, (default, lo, hi) in spec.items():
        value = given.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{what}: {name} must be a number, not {value!r}')
        value = float(value)
        if math.isnan(value) or not lo <= value <= hi:
            raise ConfigError(f'{what}: {name} ({value:.3f}) out of range ({lo:.3f}:{hi:.3f})')
        values[name] = value
    return SimpleNamespace(**values)


def sections(given, names, what):
    """Split `given` into its flat settings and its named sub-sections (each a dict)."""
    flat = dict(given or {})
    subs = {}
    for name in names:
        sub = flat.pop(name, None)
        if sub is not None and not isinstance(sub, dict):
            raise ConfigError(f'{what}: section {name!r} must be a dict, not {sub!r}')
        subs[name] = sub
    return flat, subs
