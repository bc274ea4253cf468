"""The simulator's wire protocol: one JSON object per line over a Unix stream socket.

A request is {"op": ..., ...}; the answer is {"ok": true, "result": ...} or
{"ok": false, "error": <kind>, "errno": <n or null>, "message": ...}. A connection that
sends {"op": "subscribe"} becomes a stream of {"pin": n, "level": bool} lines instead.
"""
import json
import os

I2C_CALLS = frozenset({'read_byte_data', 'write_byte_data', 'read_word_data',
                       'read_i2c_block_data', 'write_i2c_block_data', 'read_byte', 'write_byte'})


# Where `make run` puts the simulator's socket: .run/ in the checkout this code is in, so
# `python -m hardware.sim status` in a second terminal of that checkout finds it.
CHECKOUT_SOCKET = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), '.run',
    'sim.sock')


def default_socket_path(env=os.environ):
    """Where `serve` listens unless told otherwise: $JAFFLR_SIM_SOCKET, else
    $XDG_RUNTIME_DIR/jafflr-sim.sock, else /tmp/jafflr-sim.sock."""
    explicit = env.get('JAFFLR_SIM_SOCKET')
    if explicit:
        return explicit
    runtime = env.get('XDG_RUNTIME_DIR') or '/tmp'
    return os.path.join(runtime, 'jafflr-sim.sock')


def socket_candidates(env=os.environ):
    """Where a client looks for the simulator, in order, each with why: only
    $JAFFLR_SIM_SOCKET when it is set (a choice made is never second-guessed); else the
    checkout's .run/sim.sock (`make run`'s), then where `serve` listens by default."""
    explicit = env.get('JAFFLR_SIM_SOCKET')
    if explicit:
        return [(explicit, '$JAFFLR_SIM_SOCKET')]
    return [(CHECKOUT_SOCKET, "make run's, in this checkout"),
            (default_socket_path(env), 'where `python -m hardware.sim serve` listens by default')]


def encode(message):
    return (json.dumps(message, separators=(',', ':')) + '\n').encode()


def decode(line):
    return json.loads(line)
