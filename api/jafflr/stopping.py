"""How long jafflr may take to stop, in one place: systemd's TimeoutStopSec, `make run`'s
launcher and the deploy all wait at least STOP_BOUND_S, so nobody SIGKILLs a toastie that
jafflr is still finishing (tests/systemd/test_units_verify.py checks the unit agrees)."""

DRAIN_BOUND_S = 120.0       # clock seconds a toastie in the press may take to finish a stop;
                            # past it the toastie is failed with its reason, heater off
REQUEST_DRAIN_S = 30.0      # accepted requests finish within this after SIGTERM
CLOSE_BOUND_S = 15.0        # then the loops stop (5 s at most), outputs off, store closed
STOP_BOUND_S = DRAIN_BOUND_S + REQUEST_DRAIN_S + CLOSE_BOUND_S
