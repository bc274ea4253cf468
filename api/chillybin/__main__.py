"""python -m api.chillybin [serve] [--host H] [--port P]
   python -m api.chillybin migrate [--to N]"""
import argparse
import errno
import logging
import os
import sys

from hardware.errors import HardwareError
from firmware.store import DatabaseTooNew, StorageCorrupt
from ..common.settings import SettingsError


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m api.chillybin')
    parser.add_argument('command', nargs='?', default='serve', choices=('serve', 'migrate'))
    parser.add_argument('--host', default=os.environ.get('CHILLYBIN_HOST', '127.0.0.1'))
    parser.add_argument('--port', type=int, default=int(os.environ.get('CHILLYBIN_PORT', 7001)))
    parser.add_argument('--to', type=int, default=None, help='migrate: the schema to go to')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(name)s %(levelname)s: %(message)s')
    try:
        if args.command == 'migrate':
            return migrate_command(args.to)
        from .service import open_service
        open_service(args.host, args.port).run()
        return 0
    except (HardwareError, DatabaseTooNew, StorageCorrupt, SettingsError) as exc:
        logging.getLogger('chillybin').critical('%s', exc)
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            logging.getLogger('chillybin').critical('%s:%d is already in use (is another chillybin running?); '
                                             'choose another with --port', args.host, args.port)
            return 2
        raise


def migrate_command(target):
    from firmware.binstore import DB_NAME, migrations
    from firmware.store import migrate, open_db, schema_version
    from ..common.settings import load_settings
    from .service import default_bays
    settings = load_settings('chillybin')
    known = migrations(default_bays())
    if target is not None and not 0 <= target <= len(known):
        print(f'--to must be a schema from 0 to {len(known)} (this release knows '
              f'{len(known)}), not {target}', file=sys.stderr)
        return 2
    db = open_db(os.path.join(settings.state_dir, DB_NAME))
    steps = migrate(db, known, target=target, service='chillybin')
    for number, direction in steps:
        print(f'migration {number} {direction}')
    version = schema_version(db)
    print(f'chillybin storage at schema {version}')
    if version > len(known):
        print(f'this release knows schema {len(known)}; the newer release that wrote schema '
              f'{version} must migrate it down', file=sys.stderr)
        return 0 if target is None else 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
