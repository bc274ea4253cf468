"""A small validator for the JSON Schema subset our request bodies use, with errors a
person can act on: which field, what was wrong, what is allowed. The same schema dicts
go into the OpenAPI documents, so what is checked and what is documented cannot drift.

Supported: type, properties, required, additionalProperties (bool or schema),
enum, minimum, maximum, minLength, maxLength, pattern, items, minItems, maxItems,
minProperties, maxProperties, propertyNames, nullable types as ["string", "null"].
"""
import re

_TYPES = {
    'object': dict, 'array': list, 'string': str, 'boolean': bool,
    'integer': int, 'number': (int, float), 'null': type(None),
}


class SchemaError(ValueError):
    def __init__(self, field, problem, allowed=None):
        self.field = field or '(body)'
        self.problem = problem
        self.allowed = allowed
        super().__init__(f'{self.field}: {problem}' + (f' (allowed: {allowed})' if allowed else ''))


def _type_ok(value, name):
    if name in ('integer', 'number') and isinstance(value, bool):
        return False       # JSON true is not 1
    return isinstance(value, _TYPES[name])


def _describe(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'a boolean'
    return {dict: 'an object', list: 'an array', str: 'a string', int: 'an integer',
            float: 'a number'}.get(type(value), type(value).__name__)


def _join(path, key):
    return f'{path}.{key}' if path else str(key)


def validate(schema, value, path=''):
    """Raise SchemaError for the first problem found; return value when it conforms."""
    types = schema.get('type')
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_type_ok(value, n) for n in names):
            raise SchemaError(path, f'must be {" or ".join(names)}, not {_describe(value)}')
    if 'enum' in schema and value not in schema['enum']:
        raise SchemaError(path, f'{value!r} is not one of the allowed values',
                          ', '.join(map(str, schema['enum'])))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_range(schema, value, path)
    if isinstance(value, str):
        _check_string(schema, value, path)
    if isinstance(value, list):
        _check_array(schema, value, path)
    if isinstance(value, dict):
        _check_object(schema, value, path)
    return value


def _check_range(schema, value, path):
    lo, hi = schema.get('minimum'), schema.get('maximum')
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SchemaError(path, f'{value} is out of range', f'{lo} to {hi}')


def _check_string(schema, value, path):
    lo, hi = schema.get('minLength', 0), schema.get('maxLength')
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise SchemaError(path, f'length {len(value)} is out of range', f'{lo} to {hi} characters')
    pattern = schema.get('pattern')
    if pattern and not re.fullmatch(pattern, value):
        raise SchemaError(path, f'{value!r} has characters or a form that is not allowed',
                          schema.get('description') or f'matching {pattern}')


def _check_array(schema, value, path):
    lo, hi = schema.get('minItems', 0), schema.get('maxItems')
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise SchemaError(path, f'has {len(value)} items', f'{lo} to {hi} items')
    items = schema.get('items')
    if items:
        for i, item in enumerate(value):
            validate(items, item, f'{path}[{i}]')


def _check_object(schema, value, path):
    lo, hi = schema.get('minProperties', 0), schema.get('maxProperties')
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise SchemaError(path, f'has {len(value)} entries', f'{lo} to {hi} entries')
    props = schema.get('properties', {})
    for name in schema.get('required', ()):
        if name not in value:
            raise SchemaError(_join(path, name), 'is required')
    extra = schema.get('additionalProperties', True)
    names = schema.get('propertyNames')
    for key, item in value.items():
        if names:
            validate(names, key, _join(path, key))
        if key in props:
            validate(props[key], item, _join(path, key))
        elif extra is False:
            raise SchemaError(_join(path, key), 'is not a known field', ', '.join(props) or 'none')
        elif isinstance(extra, dict):
            validate(extra, item, _join(path, key))
