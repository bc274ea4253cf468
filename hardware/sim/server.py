"""The simulated machine as its own process: `python -m hardware.sim serve`.

It stands in for the physical machine, so it outlives the services: when a service dies,
the lines it drove keep their last level, exactly as a Raspberry Pi's released GPIO
lines do, and only the heater's heartbeat monostable opens the relay.
"""
import logging
import os

import socketserver
import sys
import threading

from ..clock import ScaledClock
from .bus import SimBus
from .protocol import I2C_CALLS, decode, encode
from .world import World

log = logging.getLogger('hardware.sim')


class SimServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, path, world, buses):
        self.world = world
        self.buses = buses
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        super().__init__(path, SimHandler)
        os.chmod(path, 0o660)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name='sim-ticker', daemon=True)

    def handle_error(self, request, client_address):
        """A service killed mid-conversation resets its connection: that is the service
        dying, which the machine outlives, not a fault of the simulator to print a
        traceback for."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
            log.info('a client went away: %s', exc)
            return
        super().handle_error(request, client_address)

    def start_ticking(self):
        self._ticker.start()

    def _tick(self):
        # Keep the world current between requests so limit switches, the heartbeat
        # monostable and the index sensor change on time and are pushed to subscribers.
        while not self._stop.wait(0.005):
            self.world.sync()

    def server_close(self):
        self._stop.set()
        super().server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def dispatch(self, request):
        op = request.get('op')
        world = self.world
        if op == 'i2c':
            call = request['call']
            if call not in I2C_CALLS:
                raise ValueError(f'unsupported I2C call {call!r}')
            return getattr(self.buses[request.get('bus', 1)], call)(*request['args'])
        if op == 'drive':
            return world.drive(int(request['pin']), bool(request['level']))
        if op == 'drive_many':      # SimLink.batch: every write tried, the first failure said
            failed = None
            for pin, level in request['pins']:
                try:
                    world.drive(int(pin), bool(level))
                except Exception as exc:
                    failed = failed or exc
            if failed is not None:
                raise failed
            return None
        if op == 'release':
            return world.release(int(request['pin']))
        if op == 'level':
            return world.input_level(int(request['pin']))
        if op == 'hello':
            return {'clock': world.clock.describe(), 'seed': world.seed, 'pid': os.getpid()}
        if op == 'status':
            return world.status()
        if op == 'fault':
            return world.set_fault(request['name'], bool(request['on']))
        if op == 'nack':
            return world.set_nack_rate(request['part'], float(request['rate']))
        if op == 'button':
            return world.hold_button(request['name'], float(request['hold_s']))
        if op == 'hand':
            active = request.get('active')
            return world.hand(request['name'], None if active is None else bool(active))
        if op == 'reset-thermostat':
            return world.reset_thermostat()
        if op == 'fill':
            return world.fill(request['bay'], int(request['units']), request.get('ingredient'))
        raise ValueError(f'unknown op {op!r}')


class SimHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            try:
                request = decode(line)
            except ValueError as exc:
                self._send({'ok': False, 'error': 'ValueError', 'errno': None,
                            'message': f'bad request: {exc}'})
                continue
            if request.get('op') == 'subscribe':
                self._stream_inputs()
                return
            try:
                answer = {'ok': True, 'result': self.server.dispatch(request)}
            except OSError as exc:
                answer = {'ok': False, 'error': 'OSError', 'errno': exc.errno,
                          'message': exc.strerror or str(exc)}
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                answer = {'ok': False, 'error': type(exc).__name__, 'errno': None,
                          'message': str(exc)}
            self._send(answer)

    def _send(self, message):
        self.wfile.write(encode(message))
        self.wfile.flush()

    def _stream_inputs(self):
        lock = threading.Lock()
        gone = threading.Event()

        def push(pin, level):
            if gone.is_set():
                return
            try:
                with lock:
                    self.wfile.write(encode({'pin': pin, 'level': level}))
                    self.wfile.flush()
            except OSError:
                gone.set()

        world = self.server.world
        world.add_input_listener(push)
        try:
            self._send({'ok': True, 'result': 'subscribed'})
            # The subscriber never writes again; reading returns when it hangs up.
            while not gone.is_set() and self.rfile.readline():
                pass
        finally:
            gone.set()
            world.remove_input_listener(push)


def serve(path, speed=1.0, seed=1, ready=None, plate_c=None):
    clock = ScaledClock(speed)
    world = World(clock, seed=seed)
    if plate_c is not None:       # a machine that was just used: no preheat from cold
        world.plate.temp_c = world.plate.probe_c = float(plate_c)
    server = SimServer(path, world, {1: SimBus(world, 1)})
    server.start_ticking()
    log.info('simulated machine listening on %s (speed x%g, seed %d)', path, speed, seed)
    if ready:
        ready(server)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return server


def shutdown_on_signals(server):
    import signal

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


