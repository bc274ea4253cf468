"""Named errors of the control logic. One root (FirmwareError); leaves also subclass the
matching built-in, in the manner of gpiozero and hardware.errors.

Requests the logic must refuse raise a RefusedError leaf: its `kind` is what the HTTP
layer maps to a status, and its message says what happened in numbers.
"""


class FirmwareError(Exception):
    """Base class for every error raised by firmware/."""


class ConfigError(FirmwareError, ValueError):
    """A setting is unknown, not a number, or out of its range."""


class OutOfRange(FirmwareError, ValueError):
    """A requested value (a plate temperature, a time budget) outside what is allowed."""


class HeaterFaulted(FirmwareError, RuntimeError):
    """The heater cannot be used: a fault is latched until a person resets it."""


class RefusedError(FirmwareError):
    """A request the logic refuses; `kind` names the reason for the HTTP layer."""
    kind = 'refused'

    def __init__(self, message, *, field=None, allowed=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = allowed


class InvalidRequest(RefusedError, ValueError):
    kind = 'invalid'


class UnknownDoneness(InvalidRequest):
    """A doneness name that is not one of the profiles."""


class UnknownIngredient(RefusedError, LookupError):
    kind = 'unknown'


class NotFound(RefusedError, LookupError):
    kind = 'not-found'


class NotEnoughStock(RefusedError):
    kind = 'insufficient'


class BayLocked(RefusedError):
    kind = 'locked'


class SensorFault(RefusedError):
    kind = 'sensor'


class Conflict(RefusedError):
    kind = 'conflict'


class ResetRefused(Conflict):
    """A reset the latched fault does not allow yet (it needs the reset button held)."""
    kind = 'needs-reset-button'


class Unavailable(RefusedError):
    """A dependency or the machine cannot do it now (chillybin unreachable, faulted)."""
    kind = 'unavailable'


class Unsupported(Unavailable):
    """The dependency answers but cannot do this at all (an old chillybin without v2
    reservations): asking again will not help."""


class QueueFull(RefusedError):
    kind = 'queue-full'

    def __init__(self, message, retry_after_s, **kw):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s
