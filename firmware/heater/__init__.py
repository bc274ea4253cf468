"""The press heater: doneness profiles, control algorithms, the relay's time-proportioning,
and the plate controller that runs them every tick under the safety checks."""
