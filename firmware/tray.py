"""The tray: the hand-off between the assembly station and the press station.

The assembler builds a toastie on the tray and leaves it there; the press takes it with
the next conveyor index. The two stations run on threads of their own, and both act on
the same belt: a unit dropped while the conveyor starts would land on a moving tray, half
of it in the press. So the tray owns the one lock both take to decide (`lock`), the
assembled toastie waiting on it (`waiting`), and whether the press has claimed the belt
(`moving`: the conveyor runs, or is about to, or the machine is being cleared).

Each side changes only its half through a method: the assembler `put`s and `discard`s,
the press `take`s, `claim`s and `release`s. Nobody sets another station's attributes.
"""
import threading

from .errors import FirmwareError


class TrayOccupied(FirmwareError, RuntimeError):
    """A toastie was put on a tray that already holds one."""


class Tray:
    def __init__(self):
        # Re-entrant: a station holding it while deciding calls methods that take it again.
        self.lock = threading.RLock()
        self._waiting = None       # the assembled toastie, for the press
        self._moving = False       # the press has the belt: drop nothing on the tray

    @property
    def waiting(self):
        """The assembled toastie waiting for the press, or None."""
        return self._waiting

    @property
    def moving(self):
        """True while the press has claimed the belt (indexing, or clearing the machine)."""
        return self._moving

    def free_to_build(self):
        """May the assembler start a toastie now? Ask holding `lock`, and claim it under it."""
        with self.lock:
            return self._waiting is None and not self._moving

    # -- the assembler's side ---------------------------------------------------------------
    def put(self, order):
        """An assembled toastie (or, at start after a clean drain, the one kept on it)."""
        with self.lock:
            if self._waiting is not None:
                raise TrayOccupied(f'{order.id} cannot go on the tray: {self._waiting.id} is '
                                   f'still waiting there for the press')
            self._waiting = order

    def discard(self):
        """The machine stopped: the toastie waiting is not going to the press. Returns it
        (taken off the tray as `take` does; only the reason differs)."""
        return self.take()

    # -- the press's side -----------------------------------------------------------------
    def claim(self):
        """The press is about to run the conveyor (or clear the machine): call holding
        `lock`, so no assembly starts between the decision and the claim."""
        with self.lock:
            self._moving = True

    def take(self):
        """The press indexes the waiting toastie in: returns it (or None), tray empty."""
        with self.lock:
            order, self._waiting = self._waiting, None
            return order

    def release(self):
        """The belt has stopped where it should: the assembler may build again."""
        with self.lock:
            self._moving = False
