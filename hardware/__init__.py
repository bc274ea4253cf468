"""The physical world: board description, drivers, the machine object, the simulator.

Imports nothing else of this project.
"""
