"""Checks of an OpenAPI 3.1 document, and of answers against what it documents."""
import json
import re

from jsonschema import Draft202012Validator

METHODS = ('get', 'put', 'post', 'delete', 'patch', 'head', 'options')


def _schemas(node):
    """Every schema object in the document (request bodies, responses, parameters)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'schema':
                yield value
            else:
                yield from _schemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _schemas(item)


def problems_with_document(doc):
    found = []
    if not str(doc.get('openapi', '')).startswith('3.1'):
        found.append(f'openapi is {doc.get("openapi")!r}, not 3.1.x')
    if not doc.get('info', {}).get('title') or not doc.get('info', {}).get('version'):
        found.append('info needs a title and a version')
    for path, ops in doc.get('paths', {}).items():
        if not path.startswith('/'):
            found.append(f'path {path!r} does not start with /')
        operations = {m: op for m, op in ops.items() if m in METHODS}
        if not operations:
            found.append(f'{path} has no operations')
        for method, op in operations.items():
            responses = op.get('responses') or {}
            if not responses:
                found.append(f'{method.upper()} {path} documents no responses')
            for status, response in responses.items():
                if not re.fullmatch(r'[1-5][0-9][0-9]|default', status):
                    found.append(f'{method.upper()} {path}: response key {status!r}')
                if not response.get('description'):
                    found.append(f'{method.upper()} {path} {status} has no description')
            declared = {p['name'] for p in op.get('parameters', []) if p.get('in') == 'path'}
            for name in re.findall(r'\{([^}]+)\}', path):
                if name not in declared:
                    found.append(f'{method.upper()} {path} does not declare path parameter {name}')
    for schema in _schemas(doc):
        try:
            Draft202012Validator.check_schema(schema)
        except Exception as exc:     # report every bad schema, not only the first
            found.append(f'bad schema: {exc}')
    return found


def operation_for(doc, method, path):
    path = path.split('?', 1)[0]
    for template, ops in doc['paths'].items():
        pattern = '^' + re.sub(r'\\\{[^}]+\\\}', '[^/]+', re.escape(template)) + '$'
        if re.match(pattern, path) and method.lower() in ops:
            return template, ops[method.lower()]
    return None, None


def check_answer(doc, method, path, status, content_type, body):
    """Raise AssertionError unless the answer is documented and its body fits its schema.
    Returns the documented path, or None for a path the document does not cover."""
    template, op = operation_for(doc, method, path)
    if op is None:
        return None
    response = op['responses'].get(str(status))
    assert response is not None, f'{method} {template} answered {status}, which it does not document'
    schema = response.get('content', {}).get('application/json', {}).get('schema')
    if schema is not None:
        assert content_type.startswith('application/json'), \
            f'{method} {template} {status} is documented as JSON, came as {content_type}'
        Draft202012Validator(schema).validate(json.loads(body))
    return template
