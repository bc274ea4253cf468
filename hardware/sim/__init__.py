"""The simulated machine: a physical model, register-level chips, wired gpiozero pins.

In process: World + SimBus + SimPinFactory(LocalWire(world)). As its own process:
`python -m hardware.sim serve`, reached by services through SimLink.
"""
