"""Named errors for everything that can go wrong with the physical machine.

One root (HardwareError); leaves also subclass the matching built-in where one fits,
in the manner of gpiozero's exceptions. A failed read is always one of these, never a
made-up value.
"""


class HardwareError(Exception):
    """Base class for every error raised by the hardware layer."""


class PartMissing(HardwareError, LookupError):
    """A part did not answer, or answered with the wrong identity, when opened."""


class TransferFailed(HardwareError, OSError):
    """An I2C transfer kept failing after its bounded retries."""


class ConversionTimeout(HardwareError, TimeoutError):
    """A converter did not report a fresh reading within its deadline."""


class NoNewConversion(HardwareError):
    """A converter has flagged no new conversion since its result was last read: asked
    too soon, or it stopped converting (its result register keeps the old value)."""


class SensorOpen(HardwareError):
    """A thermocouple reports an open circuit or an input out of range."""


class SimulatorUnavailable(HardwareError, ConnectionError):
    """The simulated machine could not be reached or stopped answering."""


class BoardConfigError(HardwareError, ValueError):
    """The board description or machine mode is invalid."""
