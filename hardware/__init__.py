"""The physical world: board description, drivers, the machine object, the simulator.

Imports nothing else of this project.
"""

from . import lazymeta

lazymeta.install()      # before any module here imports gpiozero: see lazymeta.py
