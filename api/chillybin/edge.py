"""The checks every chillybin request passes, shared by the service and its read replica
(a module of its own so the replica can be forked before the rest of chillybin loads)."""
from ..common.web import Edge, HostNames

V1_SUCCESSORS = {'/': '/v2/stock', '/pick': '/v2/reservations', '/restock': '/v2/restock',
                 '/health': '/v2/ready'}
STATE_CHANGING_GETS = frozenset({'/pick', '/restock'})


def edge(app, settings, metrics, forwarder_ports=()):
    """`forwarder_ports`: the primary's private port(s) its read replica forwards on, the
    only place X-Forwarded-For is believed (the audit trail and loopback-only admin)."""
    return Edge(app, hostnames=HostNames(settings.hostnames),
                state_changing_gets=STATE_CHANGING_GETS, v1_successors=V1_SUCCESSORS,
                metrics=metrics, trusted_forwarder_ports=forwarder_ports)
