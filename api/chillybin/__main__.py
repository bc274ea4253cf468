"""python -m api.chillybin [serve] [--host H] [--port P]
   python -m api.chillybin migrate [--to N]"""
import sys

from firmware.binstore import DB_NAME, migrations

from ..common import cli


def _open(host, port):
    from .service import open_service
    return open_service(host, port)


def _migrations():
    from .service import default_bays
    return migrations(default_bays())


def main(argv=None):
    return cli.main('chillybin', 7001, _open, DB_NAME, _migrations, argv)


if __name__ == '__main__':
    sys.exit(main())
