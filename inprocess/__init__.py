"""The whole machine in one process on a fake clock (see machine.py)."""
from .machine import InProcessMachine, LocalStock  # noqa: F401
