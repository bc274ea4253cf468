"""A service's connection to the simulator process.

SimLink offers what a service needs from the machine: a `bus(n)` that answers like
smbus2.SMBus, a wire for gpiozero's pins (drive, release, level, and input changes
pushed back), the simulator's clock, and the hands of a person (faults, refills).
"""
import contextlib
import errno
import os
import socket
import threading

from ..clock import clock_from_description
from ..errors import SimulatorUnavailable
from .protocol import decode, encode, socket_candidates

CONNECT_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 5.0


class SimLink:
    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()
        self._batch = threading.local()     # this thread's writes held for one request
        self._closed = False
        self._sock, self._file = self._connect()
        hello = self.call('hello')
        self.clock = clock_from_description(hello['clock'])
        self.sim_pid = hello['pid']
        self._pins = {}
        # Subscribe before any pin is attached, so no input change falls between a pin's
        # first read of its level and the stream of changes.
        self._event_sock, stream = self._connect()
        self._event_sock.settimeout(None)
        self._event_sock.sendall(encode({'op': 'subscribe'}))
        stream.readline()
        threading.Thread(target=self._listen, args=(stream,), name='sim-inputs',
                         daemon=True).start()

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise SimulatorUnavailable(
                f'the simulated machine is not reachable at {self.path} ({exc.strerror or exc}); '
                f'start it with: python -m hardware.sim serve --socket {self.path}') from exc
        sock.settimeout(CALL_TIMEOUT_S)
        return sock, sock.makefile('rb')

    def call(self, op, **fields):
        fields['op'] = op
        with self._lock:
            if self._sock is None:
                if self._closed:
                    raise SimulatorUnavailable(f'the link to {self.path} is closed')
                self._sock, self._file = self._connect()
            try:
                self._sock.sendall(encode(fields))
                line = self._file.readline()
            except OSError as exc:
                self._drop_connection()
                raise SimulatorUnavailable(f'simulated machine at {self.path}: {exc}') from exc
            if not line:
                self._drop_connection()
                raise SimulatorUnavailable(f'simulated machine at {self.path} hung up')
        answer = decode(line)
        if answer['ok']:
            return answer['result']
        if answer['error'] == 'OSError':
            raise OSError(answer['errno'] or errno.EIO, answer['message'])
        raise ValueError(answer['message'])

    def _drop_connection(self):
        """After a call that timed out or broke: its answer may still arrive, and a socket
        file that timed out refuses every later read. Carrying on would read each call's
        answer to the one before (or fail for good), so the next call connects afresh."""
        try:
            self._sock.close()
        except OSError:
            pass
        self._sock = self._file = None

    # -- I2C --------------------------------------------------------------------------
    def bus(self, number=1):
        return RemoteBus(self, number)

    # -- the wire for SimPinFactory ---------------------------------------------------------
    def attach(self, number, pin):
        self._pins[number] = pin

    def detach(self, number):
        self._pins.pop(number, None)

    def drive(self, number, level):
        pending = getattr(self._batch, 'pending', None)
        if pending is not None:
            pending.append([number, bool(level)])
            return
        self.call('drive', pin=number, level=level)

    @contextlib.contextmanager
    def batch(self):
        """This thread's writes within are sent as one request when it ends (also when
        it ends by an exception), written in order, every one tried; a failure is raised
        then. For Machine.all_off: on a Pi each line write is an ioctl that keeps the GIL
        (lgpio's wrapper does not release it), here it was a round trip to the simulator
        each, and every one a wait for the GIL again behind the HTTP threads (a STOP under
        load on a Pi's CPU budget waited 40-310 ms for them)."""
        if getattr(self._batch, 'pending', None) is not None:
            yield           # within a batch already: the outer one sends
            return
        self._batch.pending = []
        try:
            yield
        finally:
            pending, self._batch.pending = self._batch.pending, None
            if pending:
                self.call('drive_many', pins=pending)

    def release(self, number):
        if not self._closed:
            self.call('release', pin=number)

    def level(self, number):
        if self._closed:
            return False   # a pin being closed after the link: nothing to read
        return self.call('level', pin=number)

    def _listen(self, stream):
        try:
            for line in stream:
                event = decode(line)
                pin = self._pins.get(event['pin'])
                if pin is not None:
                    pin.world_drives(event['level'])
        except (OSError, ValueError):
            pass   # the link is closing, or the simulator went away; calls will say so

    # -- a person's hands -------------------------------------------------------------------
    def status(self):
        return self.call('status')

    def set_fault(self, name, on):
        return self.call('fault', name=name, on=on)

    def set_nack_rate(self, part, rate):
        return self.call('nack', part=part, rate=rate)

    def hold_button(self, name, hold_s):
        return self.call('button', name=name, hold_s=hold_s)

    def hand(self, name, active):
        """Hold an input active (True) or inactive (False) by hand; None lets go."""
        return self.call('hand', name=name, active=active)

    def reset_thermostat(self):
        return self.call('reset-thermostat')

    def fill(self, bay, units, ingredient=None):
        return self.call('fill', bay=bay, units=units, ingredient=ingredient)

    def close(self):
        self._closed = True
        for sock in (self._sock, self._event_sock):
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def connect(path=None, env=os.environ):
    """A SimLink to `path`; with None, to the first simulator that answers where
    socket_candidates() says to look. Nothing answering is SimulatorUnavailable naming
    every place looked at and why each failed."""
    if path:
        return SimLink(path)
    candidates = socket_candidates(env)
    tried = []
    for candidate, why in candidates:
        try:
            return SimLink(candidate)
        except SimulatorUnavailable as exc:
            reason = getattr(exc.__cause__, 'strerror', None) or exc.__cause__ or exc
            tried.append(f'  {candidate} ({why}): {reason}')
    raise SimulatorUnavailable(
        'no simulated machine answers; looked at:\n' + '\n'.join(tried) + '\n'
        'start one with `make run` in this checkout (or python -m hardware.sim serve), or '
        'say where it is with --socket PATH or $JAFFLR_SIM_SOCKET')


class RemoteBus:
    """An smbus2-shaped bus whose transfers happen in the simulator."""

    def __init__(self, link, number):
        self.link = link
        self.number = number

    def _i2c(self, call, *args):
        return self.link.call('i2c', bus=self.number, call=call, args=list(args))

    def read_byte_data(self, address, register, force=None):
        return self._i2c('read_byte_data', address, register)

    def write_byte_data(self, address, register, value, force=None):
        return self._i2c('write_byte_data', address, register, value)

    def read_word_data(self, address, register, force=None):
        return self._i2c('read_word_data', address, register)

    def read_i2c_block_data(self, address, register, length, force=None):
        return self._i2c('read_i2c_block_data', address, register, length)

    def write_i2c_block_data(self, address, register, data, force=None):
        return self._i2c('write_i2c_block_data', address, register, list(data))

    def read_byte(self, address, force=None):
        return self._i2c('read_byte', address)

    def write_byte(self, address, value, force=None):
        return self._i2c('write_byte', address, value)

    def close(self):
        pass
