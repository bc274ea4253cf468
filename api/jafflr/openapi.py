"""jafflr's v2 OpenAPI document, from the schemas the handlers validate with."""
from ..common.openapi import CHALLENGE, CHALLENGE_OPERATION_SUMMARY, ERROR, document, \
    operation, path_param, query_param
from . import schemas as s

OID = path_param('oid', 'toastie id, e.g. t12')
ORDER_SECRET = {'name': 'Order-Secret', 'in': 'header', 'required': False,
                'schema': {'type': 'string'},
                'description': "the cancel_secret from the order's answer"}
# What the request checks every request passes answer, whatever the operation: 403 (another
# site's page asked, or a browser-like request without X-Jafflr-Client), 413 (body too
# large), 415 (not JSON), 421 (a Host that is not ours).
REQUEST_REFUSED = {'description': 'refused by the request checks (403, 413, 415, 421) or '
                                  'another error; the body says what was wrong',
                   'content': {'application/json': {'schema': ERROR}}}
ADMIN = {401: ('the admin token is missing or wrong, the nonce spent, or a bearer token sent '
               'from another machine', None)}
UNREACHABLE = {503: ('chillybin cannot be reached (code chillybin-unreachable)', None)}
FORWARDED = {502: ('chillybin refused the admin token jafflr accepted, or answered without '
                   'JSON', None), **UNREACHABLE}


def build_document(version):
    paths = {
        '/v2/toasties': {
            'post': operation(
                'Order a toastie; it joins the queue',
                {202: ('accepted and queued, with its cancel_secret', s.ORDER_CREATED, ['Location']),
                 200: ('the same toastie again (Idempotency-Key replay)', s.ORDER_CREATED),
                 400: ('a bad toastie: no cheese, no ingredients, unknown doneness or ingredient', None),
                 409: ('not enough stock, or the Idempotency-Key was used for another toastie', None),
                 423: ('an ingredient locked by food safety', None),
                 503: ('chillybin unreachable, the machine faulted or restarting, or the queue '
                       'full (with Retry-After)', None, ['Retry-After'])},
                body=s.TOASTIE_REQUEST, idempotent_key=True),
            'get': operation('Toasties queued, in the machine, and recent',
                             {200: ('orders', s.ORDERS)})},
        '/v2/toasties/{oid}': {'get': operation(
            'One toastie: state, step, progress, ready time, failure reason',
            {200: ('the toastie', s.ORDER), 404: ('no such toastie', None)}, params=[OID])},
        '/v2/toasties/{oid}/cancel': {'post': operation(
            'Cancel a toastie that is still queued: whoever ordered it (the Order-Secret '
            'header, the cancel_secret of the order\'s answer) or an admin',
            {200: ('cancelled', s.ORDER), 404: ('no such toastie', None),
             401: ('an Authorization header that is not the admin token', None),
             403: ('no Order-Secret, or the wrong one, and no admin token', None),
             409: ('already being made', None)}, params=[OID, ORDER_SECRET])},
        '/v2/status': {'get': operation('The machine at a glance', {200: ('status', s.STATUS)})},
        '/v2/stop': {'post': operation(
            'Stop the machine now (anyone may press it): every output off, latched until reset',
            {200: ('stopped', s.STATUS), 400: ('bad request', None)}, body=s.STOP_REQUEST,
            body_required=False)},
        '/v2/reset': {'post': operation(
            'Clear the latched fault (admin); the machine clears its tray and press. A fault '
            'that needs a person at the machine (status.reset.cleared_by at-machine) also '
            'needs the reset button on the machine held 2 s within the last 2 minutes',
            {200: ('reset', s.STATUS), 409: ('needs-reset-button: hold the reset button on '
                                            'the machine first', None), **ADMIN})},
        '/v2/queue/pause': {'post': operation(
            'Start no new toastie (the current one finishes)',
            {200: ('paused', s.STATUS), 400: ('bad expires_s', None), **ADMIN},
            params=[query_param('expires_s', 'resume by itself after this many seconds '
                                '(1-86400); a deploy always sets it',
                                {'type': 'integer', 'minimum': 1, 'maximum': 86400})])},
        '/v2/queue/resume': {'post': operation('Start toasties again',
                                               {200: ('resumed', s.STATUS), **ADMIN})},
        '/v2/flags': {'get': operation('Feature flags', {200: ('flags', s.FLAGS)})},
        '/v2/flags/{name}': {'put': operation(
            'Switch a feature flag, or roll it out to customers or a share of them (admin)',
            {200: ('the flag', s.FLAG), 400: ('bad request', None), 404: ('no such flag', None),
             **ADMIN}, body=s.FLAG_REQUEST, params=[path_param('name', 'flag name')])},
        '/v2/events': {'get': operation(
            'Recent events, newest first', {200: ('events', s.EVENTS), 400: ('bad limit', None)},
            params=[query_param('limit', '1-500, default 50',
                                {'type': 'integer', 'minimum': 1, 'maximum': 500}),
                    query_param('kind', 'only this kind', {'type': 'string'})])},
        '/v2/stock': {'get': operation(
            "chillybin's stock, as the panel shows it",
            {200: ('stock', {'type': 'object'}), 503: ('chillybin unreachable', None)})},
        '/v2/ready': {'get': operation('Readiness: each dependency',
                                       {200: ('ready', s.READY), 503: ('not ready', s.READY)})},
        **panel_paths(),
    }
    for ops in paths.values():
        for op in ops.values():
            op['responses'].setdefault('default', REQUEST_REFUSED)
    return document('jafflr', version, 'Orders, the press and the assembler of the toastie '
                    'machine. v2 can also be reached on an unversioned path with the header '
                    '`API-Version: 2`.', paths)


def panel_paths():
    """What the kitchen panel needs besides the core (api/jafflr/panel_routes.py). The chillybin
    routes forward to chillybin and answer with its status and body."""
    return {
        '/v2/plate/history': {'get': operation(
            "The plate's temperature and target once a second, the last ten minutes",
            {200: ('samples, oldest first', s.PLATE_HISTORY), 400: ('bad since', None)},
            params=[query_param('since', 'only samples newer than this wall time (epoch s)',
                                {'type': 'number'})])},
        '/v2/admin/challenge': {'get': operation(CHALLENGE_OPERATION_SUMMARY,
                                                 {200: ('a nonce', CHALLENGE)})},
        '/v2/admin/check': {'get': operation(
            'Whether the request carries the admin token (signed, or bearer on the machine)',
            {200: ('it is', s.ADMIN_CHECK), **ADMIN},
            admin=True)},
        '/v2/chillybin/restock': {'post': operation(
            "A person refilled bays: forwarded to chillybin's POST /v2/restock, signed with "
            "jafflr's token (admin)",
            {200: ("chillybin's stock after the restock", {'type': 'object'}),
             400: ('bad request', None), 404: ('unknown ingredient', None), **ADMIN, **FORWARDED},
            body=s.RESTOCK_REQUEST, admin=True)},
        '/v2/chillybin/bays/{name}/calibrate': {'post': operation(
            "Calibrate a bay's load cell (tare empty, then span with a known weight): forwarded "
            "to chillybin, signed with jafflr's token (admin)",
            {200: ('the bay after calibration', {'type': 'object'}), 400: ('bad request', None),
             404: ('unknown ingredient', None), **ADMIN, **FORWARDED},
            body=s.CALIBRATE_REQUEST, params=[path_param('name', 'ingredient name', s.NAME)],
            admin=True)},
        '/v2/chillybin/events': {'get': operation(
            "chillybin's recent events, newest first",
            {200: ('events', s.EVENTS), 400: ('bad limit', None), **UNREACHABLE},
            params=[query_param('limit', '1-500, default 50',
                                {'type': 'integer', 'minimum': 1, 'maximum': 500}),
                    query_param('kind', 'only this kind', {'type': 'string'})])},
        '/v2/chillybin/alerts': {'get': operation(
            "chillybin's alerts now (bin warm, sensors, food safety)",
            {200: ('alerts', s.ALERTS), **UNREACHABLE})},
    }
