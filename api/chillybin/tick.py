"""The bin loop's period setting, CHILLYBIN_TICK_S. Its own small module, so that
`python -m api.chillybin` checks it before forking the read replica (a bad setting ends
the start with its message, not a forked child) without importing the rest of chillybin."""
import os

from ..common.settings import SettingsError

TICK_S = 0.1                 # clock seconds between rounds of the bin loop
TICK_RANGE_S = (0.01, 60.0)


def tick_period(env=os.environ):
    """The bin loop's period in clock seconds: CHILLYBIN_TICK_S, default 0.1. On a sped-up
    simulator the loop runs on the scaled clock, so at --speed 2000 a 0.1 s tick would be
    asked for every 50 real microseconds; a longer tick keeps such a run light."""
    raw = env.get('CHILLYBIN_TICK_S')
    if not raw:
        return TICK_S
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f'CHILLYBIN_TICK_S={raw!r} is not a number of seconds') from None
    lo, hi = TICK_RANGE_S
    if not lo <= value <= hi:
        raise SettingsError(f'CHILLYBIN_TICK_S={value:g} is out of range ({lo:g}:{hi:g} s)')
    return value
