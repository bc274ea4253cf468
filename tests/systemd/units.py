"""Reading systemd unit files for tests: repeated keys kept, in order."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNIT_DIR = os.path.join(ROOT, 'systemd')
UNITS = ('chillybin.socket', 'chillybin.service', 'jafflr.socket', 'jafflr.service',
         'jafflr-plate.service', 'jafflr-sim.service')
DROP_INS = ('simulated-machine.conf',)


def read_unit(path):
    """{section: {key: [values in order]}} of one unit file."""
    sections, current = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith(('#', ';')):
                continue
            if line.startswith('['):
                current = sections.setdefault(line.strip('[]'), {})
                continue
            key, _, value = line.partition('=')
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit(name):
    return read_unit(os.path.join(UNIT_DIR, name))
