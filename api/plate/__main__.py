"""python -m api.plate [serve]     the heater control in a process of its own
   python -m api.plate status      what it says now (temperature, target, faults, lateness)

A plate that cannot start says why in one sentence and exits 2."""
import argparse
import json
import logging
import sys

from hardware.errors import HardwareError
from firmware.errors import FirmwareError
from firmware.store import StorageCorrupt

from ..common import journal
from ..common.settings import SettingsError, release_name


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m api.plate')
    parser.add_argument('command', nargs='?', default='serve', choices=('serve', 'status'))
    args = parser.parse_args(argv)
    journal.configure('jafflr-plate', release_name())
    log = logging.getLogger('plate')
    try:
        if args.command == 'status':
            return status()
        from .service import open_service
        open_service().run()
        return 0
    except (HardwareError, StorageCorrupt, SettingsError, FirmwareError) as exc:
        log.critical('%s', exc)
        return 2


def status():
    from .link import LinkClient
    from .service import socket_path
    path = socket_path()
    try:
        client = LinkClient(path)
        answer = {**client({'op': 'status'}), **client({'op': 'metrics'})}
    except OSError as exc:
        print(f'the plate process does not answer on {path}: {exc}', file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
