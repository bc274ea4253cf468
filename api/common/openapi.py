"""Builds OpenAPI 3.1 documents from the schema dicts the handlers validate with."""

ERROR = {
    'type': 'object', 'required': ['error'],
    'properties': {'error': {
        'type': 'object', 'required': ['status', 'code', 'message'],
        'properties': {'status': {'type': 'integer'}, 'code': {'type': 'string'},
                       'message': {'type': 'string'}, 'field': {'type': 'string'},
                       'allowed': {}}}},
}


CHALLENGE = {
    'type': 'object', 'required': ['nonce', 'expires_in_s', 'scheme'],
    'properties': {'nonce': {'type': 'string'}, 'expires_in_s': {'type': 'number'},
                   'scheme': {'type': 'string'}, 'mac': {'type': 'string'}},
}
CHALLENGE_OPERATION_SUMMARY = (
    'A single-use nonce (60 s) to sign one admin request with: send `Authorization: '
    'Jafflr-HMAC nonce="<nonce>", mac="<hex HMAC-SHA256(token, nonce LF METHOD LF path LF '
    'hex SHA-256(body))>"`. The token itself never crosses the network.')
ADMIN_SCHEME = {
    'type': 'http', 'scheme': 'bearer',
    'description': 'Admin actions: `Authorization: Jafflr-HMAC nonce="...", mac="..."` signed '
                   'over a nonce from GET /v2/admin/challenge (any client), or `Authorization: '
                   'Bearer <token>` from the machine itself (loopback) only.'}
BROWSER_REFUSAL = ('a browser asked from another site (Sec-Fetch-Site, Origin or Referer), or '
                   'a request that looks like a browser\'s lacks the X-Jafflr-Client header')


def _response(description, schema=None, headers=None):
    response = {'description': description}
    if schema is not None:
        response['content'] = {'application/json': {'schema': schema}}
    if headers:
        response['headers'] = {h: {'schema': {'type': 'string'}} for h in headers}
    return response


def operation(summary, responses, *, body=None, body_required=True, params=(), admin=False,
              idempotent_key=False):
    """One operation: `responses` maps status -> (description, schema or None[, headers])."""
    op = {'summary': summary, 'responses': {}}
    parameters = [dict(p) for p in params]
    if idempotent_key:
        parameters.append({'name': 'Idempotency-Key', 'in': 'header', 'required': False,
                           'schema': {'type': 'string', 'minLength': 1, 'maxLength': 100},
                           'description': 'a retry with the same key gets the first answer'})
    if parameters:
        op['parameters'] = parameters
    if body is not None:
        op['requestBody'] = {'required': body_required,
                             'content': {'application/json': {'schema': body}}}
    if admin:
        op['security'] = [{'admin': []}]
    for status, spec in responses.items():
        description, schema, *headers = spec
        if schema is None and status >= 400:
            schema = ERROR
        op['responses'][str(status)] = _response(description, schema, headers[0] if headers else None)
    return op


def document(title, version, description, paths):
    return {
        'openapi': '3.1.0',
        'info': {'title': title, 'version': version, 'description': description},
        'servers': [{'url': '/'}],
        'paths': paths,
        'components': {
            'securitySchemes': {'admin': ADMIN_SCHEME},
            'schemas': {'Error': ERROR},
        },
    }


def path_param(name, description, schema=None):
    return {'name': name, 'in': 'path', 'required': True, 'description': description,
            'schema': schema or {'type': 'string'}}


def query_param(name, description, schema, required=False):
    return {'name': name, 'in': 'query', 'required': required, 'description': description,
            'schema': schema}
