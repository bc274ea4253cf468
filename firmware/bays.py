"""chillybin's answer about its bays, read the way jafflr's logic reads it: by the HTTP
client (api/jafflr/chillybin_client.py) and by the chillybin answered in process (inprocess/).
"""
from .errors import SensorFault


def bays_from_stock(stock):
    """chillybin's v2 stock -> what the assembler needs of each bay."""
    return {b['name']: {'slot': b['slot'], 'unit_g': b['unit_g'], 'available': b['available'],
                        'locked': b['food_safety']['locked'], 'sensor_ok': b['sensor']['ok'],
                        'grams': b['grams']} for b in stock['bays']}


def grams_of(name, bay):
    """A bay's weight from chillybin's answer for it, refused by name when its cell failed."""
    sensor = bay.get('sensor') or {}
    if sensor.get('ok') is False:
        raise SensorFault(f'the {name} load cell cannot be read ({sensor.get("error")})',
                          field=name)
    return bay.get('grams')
