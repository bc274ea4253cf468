"""The simulator's wire protocol: one JSON object per line over a Unix stream socket.

A request is {"op": ..., ...}; the answer is {"ok": true, "result": ...} or
{"ok": false, "error": <kind>, "errno": <n or null>, "message": ...}. A connection that
sends {"op": "subscribe"} becomes a stream of {"pin": n, "level": bool} lines instead.
"""
import json
import os

I2C_CALLS = frozenset({'read_byte_data', 'write_byte_data', 'read_word_data',
                       'read_i2c_block_data', 'write_i2c_block_data', 'read_byte', 'write_byte'})


def default_socket_path():
    """Where the simulator listens unless told otherwise (JAFFLR_SIM_SOCKET)."""
    explicit = os.environ.get('JAFFLR_SIM_SOCKET')
    if explicit:
        return explicit
    runtime = os.environ.get('XDG_RUNTIME_DIR') or '/tmp'
    return os.path.join(runtime, 'jafflr-sim.sock')


def encode(message):
    return (json.dumps(message, separators=(',', ':')) + '\n').encode()


def decode(line):
    return json.loads(line)
