"""The control loop's timings, for the plate process and for jafflr's link to it: the
period, the dead-man's limit (and the plate's lease, the same), the chain read-backs'
slack under a sped-up simulator."""
from firmware.build import DEADMAN_S

from ..common.settings import SettingsError

CONTROL_PERIOD_S = 0.1
DEADMAN_RANGE_S = (0.5, 10.0)
DEADMAN_MIN_REAL_S = 1.0    # by default never less than this in real seconds: at speed 10 two
                            # simulated seconds are 200 ms, within a loaded laptop's hiccup.
                            # The heartbeat monostable still opens the relay after 1
                            # simulated second, so the heater stays bounded either way.
LINK_TIMEOUT_MAX_S = 1.0   # real seconds jafflr waits for one answer from the plate, at most
CHAIN_MIN_REAL_S = 0.02    # real seconds of slack in the chain read-backs' timings (see chain_timing)


def deadman_seconds(env, clock):
    """JAFFLR_DEADMAN_S, checked: the dead-man's limit in clock seconds (default 2, and
    under a sped-up simulator never less than one real second). On the machine leave it."""
    raw = env.get('JAFFLR_DEADMAN_S')
    if raw is None:
        return max(DEADMAN_S, DEADMAN_MIN_REAL_S * clock.speed)
    lo, hi = DEADMAN_RANGE_S
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise SettingsError(f'JAFFLR_DEADMAN_S={raw!r}: use a number of seconds from {lo:g} '
                            f'to {hi:g} (default {DEADMAN_S:g})')
    return value


def link_timeout_s(deadman_s, clock):
    """Real seconds jafflr waits for the plate's answer before it counts as lost: at most
    LINK_TIMEOUT_MAX_S, and under half of jafflr's dead-man in real seconds. A link loop
    waiting on a hung plate must latch plate-lost (what happened) before its own dead-man
    takes the wait for a stalled jafflr (control-loop-stalled, the wrong reason); on the
    machine that is 1 s against the dead-man's 2 s, under a sped-up simulator less."""
    return min(LINK_TIMEOUT_MAX_S, deadman_s / clock.speed / 2)


def chain_timing(clock):
    """ChainMonitor's timings. On the machine (speed 1) its defaults: a pulse of one
    100 ms tick is evidence. Under a sped-up simulator a tick's own real milliseconds
    (reading the plate, switching) are tenths of a simulated second on a loaded computer,
    and a switching edge lands that much later than the tick's `now`: every timing gets
    CHAIN_MIN_REAL_S real seconds of slack, so it judges only commands held that long."""
    slack = CHAIN_MIN_REAL_S * clock.speed
    if slack <= 0.05:
        return None
    return {'min_tick_s': min(1.5, 0.075 + slack), 'on_settle_s': min(1.5, 0.2 + slack),
            'off_settle_s': min(1.5, 0.3 + slack)}
