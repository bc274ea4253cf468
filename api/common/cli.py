"""The command line both services share:

    python -m api.<service> [serve] [--host H] [--port P]
    python -m api.<service> migrate [--to N]

A service that cannot start says why in one sentence and exits 2: a missing part, a
database that needs a newer release, a corrupt file, a bad setting, a port in use.
"""
import argparse
import errno
import logging
import os
import sys

from hardware.errors import HardwareError
from firmware.errors import FirmwareError
from firmware.store import DatabaseTooNew, StorageCorrupt, migrate, open_db, schema_version

from . import journal
from .settings import SettingsError, load_settings, release_name


def main(service, default_port, open_service, db_name, migrations, argv=None):
    """`open_service(host, port)` builds the service; `migrations()` lists its migrations."""
    env_prefix = service.upper()
    parser = argparse.ArgumentParser(prog=f'python -m api.{service}')
    parser.add_argument('command', nargs='?', default='serve', choices=('serve', 'migrate'))
    # Loopback unless asked: chillybin takes reservations without a login, and under
    # systemd the socket unit decides the address anyway.
    parser.add_argument('--host', default=os.environ.get(f'{env_prefix}_HOST', '127.0.0.1'),
                        help=f'address to listen on (default ${env_prefix}_HOST or 127.0.0.1)')
    parser.add_argument('--port', type=int,
                        default=int(os.environ.get(f'{env_prefix}_PORT', default_port)))
    parser.add_argument('--to', type=int, default=None, help='migrate: the schema to go to')
    args = parser.parse_args(argv)
    journal.configure(service, release_name())
    log = logging.getLogger(service)
    try:
        if args.command == 'migrate':
            return migrate_command(service, db_name, migrations(), args.to)
        open_service(args.host, args.port).run()
        return 0
    except (HardwareError, DatabaseTooNew, StorageCorrupt, SettingsError, FirmwareError) as exc:
        log.critical('%s', exc)
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        log.critical('%s:%d is already in use (is another %s running?); choose another with '
                     '--port', args.host, args.port, service)
        return 2


def migrate_command(service, db_name, known, target):
    if target is not None and not 0 <= target <= len(known):
        print(f'--to must be a schema from 0 to {len(known)} (this release knows '
              f'{len(known)}), not {target}', file=sys.stderr)
        return 2
    db = open_db(os.path.join(load_settings(service).state_dir, db_name))
    for number, direction in migrate(db, known, target=target, service=service):
        print(f'migration {number} {direction}')
    version = schema_version(db)
    print(f'{service} storage at schema {version}')
    if version > len(known):
        print(f'this release knows schema {len(known)}; the newer release that wrote schema '
              f'{version} must migrate it down', file=sys.stderr)
        return 0 if target is None else 2
    return 0
