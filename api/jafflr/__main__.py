"""python -m api.jafflr [serve] [--host H] [--port P]
   python -m api.jafflr migrate [--to N]"""
import argparse
import errno
import logging
import os
import sys

from hardware.errors import HardwareError
from firmware.store import DatabaseTooNew, StorageCorrupt
from ..common.settings import SettingsError


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m api.jafflr')
    parser.add_argument('command', nargs='?', default='serve', choices=('serve', 'migrate'))
    parser.add_argument('--host', default=os.environ.get('JAFFLR_HOST', '127.0.0.1'))
    parser.add_argument('--port', type=int, default=int(os.environ.get('JAFFLR_PORT', 7000)))
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
        logging.getLogger('jafflr').critical('%s', exc)
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            logging.getLogger('jafflr').critical('%s:%d is already in use (is another jafflr running?); '
                                             'choose another with --port', args.host, args.port)
            return 2
        raise


def migrate_command(target):
    from firmware.orderstore import DB_NAME, MIGRATIONS
    from firmware.store import migrate, open_db, schema_version
    from ..common.settings import load_settings
    settings = load_settings('jafflr')
    db = open_db(os.path.join(settings.state_dir, DB_NAME))
    for number, direction in migrate(db, MIGRATIONS, target=target, service='jafflr'):
        print(f'migration {number} {direction}')
    print(f'jafflr storage at schema {schema_version(db)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
