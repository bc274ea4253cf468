"""Drive the heater (and every other output a service owns) off, then exit.

    python -m hardware.safe_off [--owner plate|jafflr|chillybin]

systemd runs this as ExecStopPost= of each service, so however the service ended
(normal stop, crash, SIGKILL, watchdog), its outputs are driven off before the next
start. It opens the machine the same way the service does (JAFFLR_MACHINE), GPIO only:
it never opens or touches the I2C bus, so a hung or broken bus (a common reason for the
service to have died) cannot stop it. It fails loudly (exit 1) if it cannot open the
GPIO lines: a person must then look at the machine.
"""
import argparse
import logging
import sys

from .errors import HardwareError
from .platform import open_platform


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m hardware.safe_off')
    parser.add_argument('--owner', default='jafflr', choices=('plate', 'jafflr', 'chillybin'))
    parser.add_argument('--machine', default=None, choices=('auto', 'pi', 'sim'))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='safe_off: %(message)s')
    try:
        platform = open_platform(args.machine, i2c=False)
    except HardwareError as exc:
        print(f'safe_off: cannot open the machine to switch it off: {exc}', file=sys.stderr)
        return 1
    try:
        machine = platform.machine(args.owner)   # every output starts off when opened
        machine.all_off()
        machine.close()
    except Exception as exc:   # any failure here must be loud: the heater may be on
        print(f'safe_off: FAILED to drive outputs off: {type(exc).__name__}: {exc}', file=sys.stderr)
        return 1
    finally:
        platform.close()
    print(f'safe_off: every {args.owner} output driven off')
    return 0


if __name__ == '__main__':
    sys.exit(main())
