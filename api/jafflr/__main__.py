"""python -m api.jafflr [serve] [--host H] [--port P]
   python -m api.jafflr migrate [--to N]"""
import sys

from firmware.jafflrstore import DB_NAME, MIGRATIONS

from ..common import cli


def _open(host, port):
    from .service import open_service
    return open_service(host, port)


def main(argv=None):
    return cli.main('jafflr', 7000, _open, DB_NAME, lambda: MIGRATIONS, argv)


if __name__ == '__main__':
    sys.exit(main())
