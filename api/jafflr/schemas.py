"""The shapes of jafflr's v2 requests and answers: validated against and documented."""
from firmware.heater.profiles import DONENESS
from firmware.kitchen import MachineState
from firmware.orderbook import OrderState, Step

NAME = {'type': 'string', 'pattern': r'^[a-z][a-z-]{0,30}$',
        'description': 'an ingredient name: lower-case letters and dashes'}
# Spelled out rather than `\w`: JSON Schema patterns are ECMA-262, where `\w` is ASCII only,
# while Python's is every script's; a client validating with the document must agree with us.
# Latin letters with their accents and macrons (José, Zoë, Māori, Nguyễn), not other scripts.
LABEL = {'type': 'string', 'maxLength': 40,
         'pattern': "^[0-9A-Za-z_ .,'&\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF-]*$",
         'description': "Latin letters (accents and macrons too: José, Zoë, Māori), digits, spaces "
                        "and _ . , ' & - (up to 40)"}

TOASTIE_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'required': ['ingredients'],
    'properties': {
        'ingredients': {'type': 'array', 'minItems': 1, 'maxItems': 6, 'items': NAME,
                        'description': 'the fillings; cheese is required, bread is added'},
        'doneness': {'type': 'string', 'enum': list(DONENESS)},
        'name': LABEL,
        'customer': LABEL,
    },
}
FLAG_REQUEST = {
    'type': 'object', 'additionalProperties': False, 'minProperties': 1,
    'properties': {
        'enabled': {'type': 'boolean'},
        'customers': {'type': 'array', 'maxItems': 100, 'items': LABEL},
        'percent': {'type': 'integer', 'minimum': 0, 'maximum': 100},
    },
}
DEBUG_RAISE_REQUEST = {
    'type': 'object', 'additionalProperties': False,
    'properties': {'where': {'type': 'string', 'enum': ['press', 'assembler', 'thread']}},
}
STOP_REQUEST = {
    'type': 'object', 'additionalProperties': False,
    'properties': {'by': LABEL},
}

NULLABLE_NUMBER = {'type': ['number', 'null']}
FAILURE = {'type': ['object', 'null'], 'properties': {
    'reason': {'type': 'string'}, 'detail': {'type': 'string'}, 'kind': {'type': 'string'}}}
ORDER = {
    'type': 'object',
    'required': ['id', 'state', 'step', 'progress', 'ingredients', 'units', 'doneness',
                 'created_at', 'ready_at', 'failure'],
    'properties': {
        'id': {'type': 'string'},
        'state': {'type': 'string', 'enum': [s.value for s in OrderState]},
        'step': {'type': 'string', 'enum': [s.value for s in Step]}, 'progress': {'type': 'number', 'minimum': 0, 'maximum': 1},
        'ingredients': {'type': 'array', 'items': {'type': 'string'}},
        'units': {'type': 'array', 'items': {'type': 'string'}},
        'doneness': {'type': 'string'}, 'name': {'type': 'string'},
        'created_at': {'type': 'number'}, 'started_at': NULLABLE_NUMBER,
        'finished_at': NULLABLE_NUMBER, 'ready_at': NULLABLE_NUMBER,
        'time_left_s': NULLABLE_NUMBER, 'queue_position': {'type': ['integer', 'null']},
        'failure': FAILURE, 'stock': {'type': 'object'},
        'waiting': {'type': ['string', 'null'],
                    'description': 'why a queued toastie is held (a latched fault, a pause)'},
    },
}
ORDER_CREATED = {**ORDER, 'required': ORDER['required'] + ['cancel_secret'], 'properties': {
    **ORDER['properties'],
    'cancel_secret': {'type': 'string', 'description': 'send it as Order-Secret to cancel'}}}
ORDERS = {'type': 'object', 'required': ['orders'],
          'properties': {'orders': {'type': 'array', 'items': ORDER}}}
CLEARED_BY = {'type': ['string', 'null'], 'enum': ['at-machine', 'panel', None],
              'description': 'at-machine: the reset button on the machine held 2 s, then the '
                             'admin reset within 2 minutes; panel: the admin reset alone'}
FAULT = {'type': ['object', 'null'], 'properties': {
    'reason': {'type': 'string'}, 'detail': {'type': 'string'}, 'at': {'type': 'number'},
    'wall': NULLABLE_NUMBER, 'help': {'type': 'string'},
    'by': {'type': ['string', 'null'], 'description': 'what tripped it'},
    'restored': {'type': 'boolean', 'description': 'latched before this start, kept'},
    'cleared_by': CLEARED_BY, 'how_to_clear': {'type': 'string'}}}
RESET = {'type': 'object', 'required': ['cleared_by', 'allowed', 'button'], 'properties': {
    'cleared_by': CLEARED_BY, 'how_to_clear': {'type': ['string', 'null']},
    'allowed': {'type': 'boolean', 'description': 'an admin reset now would be accepted'},
    'button': {'type': 'object', 'required': ['held', 'armed'], 'properties': {
        'held': {'type': 'boolean'}, 'armed': {'type': 'boolean'},
        'armed_left_s': NULLABLE_NUMBER, 'hold_s': {'type': 'number'},
        'armed_s': {'type': 'number'}}}}}
STATUS = {
    'type': 'object', 'required': ['state', 'busy', 'paused', 'plate', 'fault', 'queue'],
    'properties': {
        'state': {'type': 'string', 'enum': [s.value for s in MachineState]},
        'busy': {'type': 'boolean'}, 'paused': {'type': 'boolean'},
        'pause_expires': NULLABLE_NUMBER,
        'plate': {'type': 'object', 'required': ['temp_c', 'target_c', 'relay_on', 'phase'],
                  'properties': {'temp_c': NULLABLE_NUMBER, 'target_c': NULLABLE_NUMBER,
                                 'duty': NULLABLE_NUMBER, 'relay_on': {'type': 'boolean'},
                                 'phase': {'type': 'string'}, 'at_target': {'type': 'boolean'}}},
        'fault': FAULT,
        'later_faults': {'type': 'array', 'items': {'type': 'string'}},
        'reset': RESET,
        'queue': {'type': 'object', 'required': ['length', 'max', 'orders'],
                  'properties': {'length': {'type': 'integer'}, 'max': {'type': 'integer'},
                                 'orders': {'type': 'array', 'items': {'type': 'string'}}}},
        'press': {'type': ['string', 'null']}, 'tray': {'type': ['string', 'null']},
        'assembling': {'type': ['string', 'null']}, 'version': {'type': 'string'},
        'chillybin': {'type': 'object'}, 'current': {'type': ['object', 'null']},
    },
}
FLAG = {'type': 'object', 'required': ['name', 'enabled', 'customers', 'percent'],
        'properties': {'name': {'type': 'string'}, 'enabled': {'type': 'boolean'},
                       'customers': {'type': 'array', 'items': {'type': 'string'}},
                       'percent': {'type': 'integer'}, 'description': {'type': 'string'},
                       'env_override': {'type': ['boolean', 'null']},
                       'env_variable': {'type': 'string'}}}
FLAGS = {'type': 'object', 'required': ['flags'],
         'properties': {'flags': {'type': 'array', 'items': FLAG}}}
EVENTS = {'type': 'object', 'required': ['events'],
          'properties': {'events': {'type': 'array', 'items': {
              'type': 'object', 'required': ['kind', 'wall', 'seq'],
              'properties': {'kind': {'type': 'string'}, 'wall': {'type': 'number'},
                             'seq': {'type': 'integer'}}}}}}
READY = {'type': 'object', 'required': ['ready', 'checks'],
         'properties': {'ready': {'type': 'boolean'}, 'checks': {'type': 'object'}}}

# -- what the kitchen panel asks besides the above (api/jafflr/panel_routes.py) --------------------
# Forwarded to chillybin as they are: chillybin's own request schemas, so jafflr refuses
# exactly what chillybin would, without a round trip.
from ..chillybin.schemas import CALIBRATE_REQUEST, RESTOCK_REQUEST  # noqa: E402,F401

PLATE_HISTORY = {
    'type': 'object', 'required': ['wall', 'period_s', 'samples'],
    'properties': {
        'wall': {'type': 'number', 'description': "the machine's time now (epoch seconds)"},
        'period_s': {'type': 'number'},
        'samples': {'type': 'array', 'items': {
            'type': 'object', 'required': ['wall', 'temp_c', 'target_c'],
            'properties': {'wall': {'type': 'number'}, 'temp_c': NULLABLE_NUMBER,
                           'target_c': NULLABLE_NUMBER}}},
    },
}
ADMIN_CHECK = {'type': 'object', 'required': ['admin'], 'properties': {'admin': {'type': 'boolean'}}}
ALERTS = {'type': 'object', 'required': ['alerts'],
          'properties': {'alerts': {'type': 'array', 'items': {
              'type': 'object', 'required': ['alert', 'detail'],
              'properties': {'alert': {'type': 'string'}, 'detail': {'type': 'string'},
                             'bay': {'type': 'string'}}}}}}
