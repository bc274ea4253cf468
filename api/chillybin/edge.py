"""The checks every chillybin request passes, shared by the service and its read replica
(a module of its own so the replica can be forked before the rest of chillybin loads)."""
from ..common.web import Edge, HostNames

V1_SUCCESSORS = {'/': '/v2/stock', '/pick': '/v2/reservations', '/restock': '/v2/restock',
                 '/health': '/v2/ready'}
STATE_CHANGING_GETS = frozenset({'/pick', '/restock'})


def edge(app, settings, metrics):
    return Edge(app, hostnames=HostNames(settings.hostnames),
                state_changing_gets=STATE_CHANGING_GETS, v1_successors=V1_SUCCESSORS,
                metrics=metrics)
