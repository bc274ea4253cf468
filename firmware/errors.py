"""Errors the control logic raises for requests it must refuse. Each has a `kind` that
the HTTP layer maps to a status, and a message that says what happened in numbers."""


class RefusedError(Exception):
    """Root of everything firmware refuses; `kind` names the reason for the HTTP layer."""
    kind = 'refused'

    def __init__(self, message, *, field=None, allowed=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.allowed = allowed


class InvalidRequest(RefusedError, ValueError):
    kind = 'invalid'


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


class Unavailable(RefusedError):
    """A dependency or the machine cannot do it now (chillybin unreachable, faulted)."""
    kind = 'unavailable'


class QueueFull(RefusedError):
    kind = 'queue-full'

    def __init__(self, message, retry_after_s, **kw):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s
