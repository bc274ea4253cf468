"""The shapes of chillybin's v2 requests and answers. Handlers validate request bodies
against these and the OpenAPI document is built from them."""

NAME = {'type': 'string', 'pattern': r'^[a-z][a-z-]{0,30}$',
        'description': 'an ingredient name: lower-case letters and dashes, up to 31'}
QUANTITY = {'type': 'integer', 'minimum': 1, 'maximum': 10}

RESERVATION_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'required': ['items'],
    'properties': {
        'items': {'type': 'object', 'minProperties': 1, 'maxProperties': 10,
                  'propertyNames': NAME, 'additionalProperties': QUANTITY},
        'ttl_s': {'type': 'integer', 'minimum': 10, 'maximum': 600},
        'dispense': {'type': 'boolean', 'description': 'the machine\'s dispensers take these '
                     'units (jafflr\'s orders): a fall on the bay is booked to this reservation '
                     'before any other hold (default false)'},
    },
}
RESTOCK_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'required': ['items'],
    'properties': {
        'items': {'type': 'object', 'minProperties': 1, 'maxProperties': 10,
                  'propertyNames': NAME,
                  'additionalProperties': {'type': 'integer', 'minimum': 0, 'maximum': 50}},
        'replaced': {'type': 'boolean', 'description': 'the old contents were removed (default true)'},
    },
}
CALIBRATE_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'required': ['step'],
    'properties': {
        'step': {'type': 'string', 'enum': ['tare', 'span']},
        'known_g': {'type': 'number', 'minimum': 1, 'maximum': 5000},
    },
}
FOOD_CHECK_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'required': ['confirmed'],
    'properties': {
        'confirmed': {'type': 'string', 'minLength': 10, 'maxLength': 500,
                      'description': 'what the person checked and confirmed, in their words '
                                     '(e.g. "probed the cheese at 3.8 C; bin cold, lid shut")'},
    },
}
BAY_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'required': ['slot', 'unit_g'],
    'properties': {
        'slot': {'type': 'integer', 'minimum': 0, 'maximum': 7},
        'unit_g': {'type': 'number', 'minimum': 1, 'maximum': 500},
    },
}

NULLABLE_NUMBER = {'type': ['number', 'null']}
NULLABLE_STRING = {'type': ['string', 'null']}
FOOD_SAFETY = {
    'type': 'object', 'required': ['state', 'minutes_above_5c', 'locked'],
    'properties': {'state': {'type': 'string', 'enum': ['ok', 'use-soon', 'discard', 'needs-check']},
                   'minutes_above_5c': {'type': 'number'},
                   'locked': {'type': 'boolean', 'description': 'picks are refused'},
                   'needs_check': {**NULLABLE_STRING, 'description': 'why the bay is held until '
                                   'a person checks it (POST /v2/bays/{name}/food-check)'},
                   'warn_at_minutes': {'type': 'number'}, 'lock_at_minutes': {'type': 'number'}},
}
BAY = {
    'type': 'object',
    'required': ['name', 'slot', 'unit_g', 'grams', 'units', 'reserved', 'available',
                 'sensor', 'food_safety'],
    'properties': {
        'name': {'type': 'string'}, 'slot': {'type': 'integer'}, 'unit_g': {'type': 'number'},
        'grams': NULLABLE_NUMBER, 'units': {'type': ['integer', 'null']},
        'estimated': {'type': 'boolean', 'description': 'the count was estimated from the total weight, not declared at a restock'},
        'reserved': {'type': 'integer', 'minimum': 0}, 'available': {'type': 'integer', 'minimum': 0},
        'sensor': {'type': 'object', 'required': ['ok'],
                   'properties': {'ok': {'type': 'boolean'}, 'error': NULLABLE_STRING}},
        'food_safety': FOOD_SAFETY,
    },
}
BIN = {
    'type': 'object', 'required': ['temp_c', 'ok', 'chiller_on', 'limit_c', 'above_5c_minutes'],
    'properties': {
        'temp_c': NULLABLE_NUMBER, 'ok': {'type': 'boolean'}, 'error': NULLABLE_STRING,
        'chiller_on': {'type': 'boolean'}, 'limit_c': {'type': 'number'},
        'above_5c_minutes': {'type': 'number'}, 'alert': NULLABLE_STRING,
        'history': {'type': 'array', 'items': {
            'type': 'object', 'properties': {'wall': {'type': 'number'}, 'c': NULLABLE_NUMBER}}},
    },
}
STOCK = {'type': 'object', 'required': ['bays', 'bin'],
         'properties': {'bays': {'type': 'array', 'items': BAY}, 'bin': BIN}}
COUNTS = {'type': 'object', 'additionalProperties': {'type': 'integer'}}
RESERVATION = {
    'type': 'object',
    'required': ['id', 'kind', 'state', 'items', 'taken', 'created_at', 'expires_at'],
    'properties': {
        'id': {'type': 'string'}, 'kind': {'type': 'string', 'enum': ['reservation', 'pick']},
        'state': {'type': 'string', 'enum': ['held', 'confirmed', 'taken', 'cancelled', 'expired']},
        'items': COUNTS, 'taken': COUNTS,
        'created_at': {'type': 'number'}, 'expires_at': {'type': 'number'},
        'closed_at': NULLABLE_NUMBER, 'note': {'type': 'string'}, 'dispense': {'type': 'boolean'},
    },
}
EVENTS = {'type': 'object', 'required': ['events'],
          'properties': {'events': {'type': 'array', 'items': {
              'type': 'object', 'required': ['kind', 'wall', 'seq'],
              'properties': {'kind': {'type': 'string'}, 'wall': {'type': 'number'},
                             'seq': {'type': 'integer'}}}}}}
FOOD_CHECK = {'type': 'object', 'required': ['bay', 'confirmed', 'was_held_because', 'food_safety'],
              'properties': {'bay': {'type': 'string'}, 'confirmed': {'type': 'string'},
                             'was_held_because': {'type': 'string'}, 'food_safety': FOOD_SAFETY}}
ALERTS = {'type': 'object', 'required': ['alerts'],
          'properties': {'alerts': {'type': 'array', 'items': {
              'type': 'object', 'required': ['alert', 'detail'],
              'properties': {'alert': {'type': 'string'}, 'detail': {'type': 'string'},
                             'bay': {'type': 'string'}}}}}}
READY = {'type': 'object', 'required': ['ready', 'checks'],
         'properties': {'ready': {'type': 'boolean'},
                        'checks': {'type': 'object', 'additionalProperties': {
                            'type': 'object', 'required': ['ok'],
                            'properties': {'ok': {'type': 'boolean'}, 'detail': {'type': 'string'}}}}}}
INDEX = {'type': 'object', 'required': ['service', 'version', 'links'],
         'properties': {'service': {'type': 'string'}, 'version': {'type': 'string'},
                        'links': {'type': 'object', 'additionalProperties': {'type': 'string'}}}}
