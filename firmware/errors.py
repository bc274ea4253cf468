"""Named errors of the control logic. One root (FirmwareError); leaves also subclass the
matching built-in, in the manner of gpiozero and hardware.errors."""


class FirmwareError(Exception):
    """Base class for every error raised by firmware/."""


class ConfigError(FirmwareError, ValueError):
    """A setting is unknown, not a number, or out of its range."""


class UnknownDoneness(FirmwareError, ValueError):
    """A doneness name that is not one of the profiles."""


class OutOfRange(FirmwareError, ValueError):
    """A requested value (a plate temperature, a time budget) outside what is allowed."""


class HeaterFaulted(FirmwareError, RuntimeError):
    """The heater cannot be used: a fault is latched until a person resets it."""
