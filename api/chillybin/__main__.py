"""python -m api.chillybin [serve] [--host H] [--port P]
   python -m api.chillybin migrate [--to N]"""
import sys

from firmware.binstore import DB_NAME, migrations

from ..common import cli


def _open(host, port):
    # The read replica is forked first, before the rest of chillybin is imported: see
    # api/common/replica.py.
    from ..common.replica import fork_replica
    from ..common.serve import bind_socket, inherited_sockets
    from ..common.settings import load_settings
    from .edge import edge
    from .tick import tick_period
    settings = load_settings('chillybin')
    tick_period()                 # every setting is checked before anything is forked
    sockets = inherited_sockets() or [bind_socket(host, port)]
    replica = fork_replica('chillybin', sockets,
                           lambda app, metrics: edge(app, settings, metrics))
    from .service import open_service
    return open_service(host, port, settings=settings, sockets=sockets, replica=replica)


def _migrations():
    from hardware.board import default_bays
    return migrations(default_bays())


def main(argv=None):
    return cli.main('chillybin', 7001, _open, DB_NAME, _migrations, argv)


if __name__ == '__main__':
    sys.exit(main())
