"""Doneness profiles: how hot the plate is held and how long a sandwich is pressed.

Times keep the original toasties-galore ratio 1 : 2 : 5 : 10. Plates get hotter with
doneness so that the longer toasts also brown more, all inside 180-230 C, below the
controller's 240 C ceiling and well below the 260 C over-temperature trip.
"""
from dataclasses import dataclass

from ..errors import UnknownDoneness


@dataclass(frozen=True)
class Profile:
    name: str
    plate_c: float
    toast_s: float


# Ordered light -> burnt; `name in DONENESS` checks a doneness.
DONENESS = {p.name: p for p in (
    Profile('light', 180.0, 60.0),
    Profile('medium', 195.0, 120.0),
    Profile('well-done', 210.0, 300.0),
    Profile('burnt', 230.0, 600.0),
)}

# Held between orders so the next one waits less: 20-50 C below any profile, so the
# plate reaches a profile in well under a minute but does not scorch what is left on it.
STANDBY_C = 160.0


def profile(name):
    """The profile called `name`; UnknownDoneness (a ValueError) names the allowed values."""
    try:
        return DONENESS[name]
    except (KeyError, TypeError):
        raise UnknownDoneness(f'unknown doneness {name!r}: use one of '
                              f'{", ".join(DONENESS)}') from None
