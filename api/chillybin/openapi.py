"""chillybin's v2 OpenAPI document, from the same schemas the handlers validate with."""
from ..common.openapi import BROWSER_REFUSAL, CHALLENGE, CHALLENGE_OPERATION_SUMMARY, ERROR, \
    document, operation, path_param, query_param
from . import schemas as s

NAME_PARAM = path_param('name', 'ingredient name', s.NAME)
RID = path_param('rid', 'reservation id')


EDGE_REFUSALS = {
    400: 'a bad request, or an API-Version header other than 1 or 2',
    421: "the Host header is not one of this service's names or addresses (DNS rebinding)",
}
CHANGE_REFUSALS = {403: BROWSER_REFUSAL}
BODY_REFUSALS = {413: 'the body is larger than 16 KiB',
                 415: 'the body is not sent as application/json'}


def _add_edge_refusals(paths):
    """What the shared edge answers before a handler runs, documented on every operation
    it can happen to (all the same error body)."""
    for ops in paths.values():
        for method, op in ops.items():
            refusals = dict(EDGE_REFUSALS)
            if method != 'get':
                refusals.update(CHANGE_REFUSALS)
            if 'requestBody' in op:
                refusals.update(BODY_REFUSALS)
            for status, description in refusals.items():
                op['responses'].setdefault(str(status), {
                    'description': description,
                    'content': {'application/json': {'schema': ERROR}}})


RESERVATION_ERRORS = {
    400: ('bad request: the field, what was wrong and what is allowed', None),
    404: ('unknown ingredient or reservation', None),
    409: ('not enough stock, or an Idempotency-Key reused for a different request', None),
    423: ('a bay locked by food safety (above 5 C for 4 hours, or held until a person '
          'checks it)', None),
    503: ('a load cell cannot be read: stock unknown', None),
}
ADMIN_ERRORS = {401: ('the admin token is missing or wrong, the nonce spent, or a bearer '
                      'token sent from another machine', None)}


def build_document(version):
    paths = {
        **stock_paths(),
        **reservation_paths(),
        **admin_paths(),
        '/v2/events': {'get': operation(
            'Recent events, newest first', {200: ('events', s.EVENTS), 400: ('bad limit', None)},
            params=[query_param('limit', 'at most this many (1-500, default 50)',
                                {'type': 'integer', 'minimum': 1, 'maximum': 500}),
                    query_param('kind', 'only events of this kind', {'type': 'string'})])},
        '/v2/alerts': {'get': operation('Alerts active now', {200: ('alerts', s.ALERTS)})},
        '/v2/admin/challenge': {'get': operation(CHALLENGE_OPERATION_SUMMARY,
                                                 {200: ('a nonce', CHALLENGE)})},
        '/v2/ready': {'get': operation(
            'Readiness: each dependency', {200: ('ready', s.READY), 503: ('not ready', s.READY)})},
    }
    _add_edge_refusals(paths)
    return document('chillybin', version, 'Stock measured by load cells, reservations, the '
                    'chiller and food safety of the chilly bin. v2 can also be reached on an '
                    'unversioned path with the header `API-Version: 2`.', paths)


def stock_paths():
    """The stock per bay and the bin, the index and this document."""
    return {
        '/v2/stock': {'get': operation('Stock per bay, and the bin', {200: ('stock', s.STOCK)})},
        '/v2/stock/{name}': {'get': operation(
            'One bay', {200: ('the bay', s.BAY), 404: ('no such ingredient', None)},
            params=[NAME_PARAM])},
        '/v2/': {'get': operation('Where everything is', {200: ('links', s.INDEX)})},
        '/v2/openapi.json': {'get': operation('This document', {200: ('OpenAPI 3.1', {'type': 'object'})})},
        '/v2/bin': {'get': operation('The bin air temperature and chiller', {200: ('bin', s.BIN)})},
    }


def reservation_paths():
    """Reservations: reserve, read, confirm, cancel."""
    return {
        '/v2/reservations': {'post': operation(
            'Reserve several items, all or none',
            {201: ('reserved', s.RESERVATION, ['Location']),
             200: ('the same reservation again (Idempotency-Key replay)', s.RESERVATION),
             **RESERVATION_ERRORS},
            body=s.RESERVATION_REQUEST, idempotent_key=True)},
        '/v2/reservations/{rid}': {'get': operation(
            'A reservation, with how many units have left each bay',
            {200: ('reservation', s.RESERVATION), 404: ('no such reservation', None)},
            params=[RID])},
        '/v2/reservations/{rid}/confirm': {'post': operation(
            'Confirm once every unit has dropped',
            {200: ('confirmed', s.RESERVATION), 404: ('no such reservation', None),
             409: ('not every unit has left its bay yet, or the reservation is closed', None)},
            params=[RID])},
        '/v2/reservations/{rid}/cancel': {'post': operation(
            'Cancel: what was not taken goes back',
            {200: ('cancelled', s.RESERVATION), 404: ('no such reservation', None),
             409: ('already taken in full', None)}, params=[RID])},
    }


def admin_paths():
    """Signed admin operations: restock, bay setup, calibration, food check."""
    return {
        '/v2/restock': {'post': operation(
            'A person refilled bays (in simulation, the simulator refills them)',
            {200: ('stock after the restock', s.STOCK), 400: ('bad request', None),
             404: ('unknown ingredient', None), **ADMIN_ERRORS, 503: ('sensor fault', None)},
            body=s.RESTOCK_REQUEST, admin=True)},
        '/v2/bays/{name}': {'put': operation(
            'Put an ingredient in a bay slot', {200: ('the bay', s.BAY),
                                                400: ('bad request', None), **ADMIN_ERRORS},
            body=s.BAY_REQUEST, params=[NAME_PARAM], admin=True)},
        '/v2/bays/{name}/calibrate': {'post': operation(
            'Calibrate a bay: tare it empty, then span with a known weight',
            {200: ('the bay after calibration', {'type': 'object'}), 400: ('bad request', None),
             404: ('unknown ingredient', None), **ADMIN_ERRORS, 503: ('sensor fault', None)},
            body=s.CALIBRATE_REQUEST, params=[NAME_PARAM], admin=True)},
        '/v2/bays/{name}/food-check': {'post': operation(
            'A person checked a bay held because downtime could not be measured, and says '
            'what they confirmed: the hold is cleared, the words kept in the journal',
            {200: ('the check, and the bay\'s food safety after it', s.FOOD_CHECK),
             400: ('bad request', None), 404: ('unknown ingredient', None),
             409: ('the bay is not held for a check', None), **ADMIN_ERRORS},
            body=s.FOOD_CHECK_REQUEST, params=[NAME_PARAM], admin=True)},
    }
