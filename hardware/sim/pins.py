"""gpiozero mock pins wired to the simulated machine.

A WiredPin is a gpiozero MockPin whose line is connected to a world: what a program
drives on an output reaches the world, and the world drives the program's inputs. The
world can be in this process (LocalWire) or in the simulator process (see link.py);
both offer the same three calls, so the devices and drivers cannot tell the difference.
"""
import contextlib
from collections import deque

from gpiozero.pins.mock import MockFactory, MockPin


class LocalWire:
    """Connects pins to a World in this process."""

    def __init__(self, world):
        self.world = world
        self._pins = {}
        world.add_input_listener(self._input_changed)

    def attach(self, number, pin):
        self._pins[number] = pin

    def detach(self, number):
        self._pins.pop(number, None)

    def drive(self, number, level):
        self.world.drive(number, level)

    def release(self, number):
        self.world.release(number)

    def level(self, number):
        return self.world.input_level(number)

    def _input_changed(self, number, level):
        pin = self._pins.get(number)
        if pin is not None:
            pin.world_drives(level)

    def close(self):
        self.world.remove_input_listener(self._input_changed)


class WiredPin(MockPin):
    """A mock pin connected to a simulated line. It keeps a bounded history of states
    (a heartbeat toggles ten times a second, forever)."""

    HISTORY = 1000

    def __init__(self, factory, info):
        super().__init__(factory, info)
        self._number = int(info.name[4:])
        factory.wire.attach(self._number, self)

    def clear_states(self):
        super().clear_states()
        self.states = deque(self.states, maxlen=self.HISTORY)

    def close(self):
        super().close()
        self.factory.wire.detach(self._number)
        self.factory.wire.release(self._number)

    def _set_function(self, value):
        was = self._function
        super()._set_function(value)
        if value == 'input' and was == 'output':
            self.factory.wire.release(self._number)
        if value == 'input':
            self.world_drives(self.factory.wire.level(self._number))

    def _set_pull(self, value):
        super()._set_pull(value)
        self.world_drives(self.factory.wire.level(self._number))

    def _set_state(self, value):
        super()._set_state(value)
        self.factory.wire.drive(self._number, bool(value))

    def world_drives(self, level):
        """The other end of the line changed level (only meaningful for inputs)."""
        if self._function == 'input':
            if level:
                self.drive_high()
            else:
                self.drive_low()


class SimPinFactory(MockFactory):
    """A gpiozero MockFactory whose pins are WiredPins on `wire`."""

    def __init__(self, wire, revision='d04170'):   # a Pi 5, 8 GB
        super().__init__(revision=revision, pin_class=WiredPin)
        self.wire = wire

    def batch(self):
        """Writes made within reach the world together when the wire can (SimLink.batch:
        one round trip to the simulator process instead of one each)."""
        batch = getattr(self.wire, 'batch', None)
        return batch() if batch is not None else contextlib.nullcontext()

    # The wire belongs to whoever made it (a platform, a test): it outlives the factory.
