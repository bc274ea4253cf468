"""jafflr's client for chillybin: what the assembler and the order checks need, over
HTTP with timeouts, answers turned back into the firmware's refusals.

It speaks v2 (reservations, weights) and v1 (`/pick`, the flat stock map). Against a
chillybin that only speaks v1, `bays()` falls back to the flat map and the board's bay
slots, `reserve()` refuses clearly (nothing is taken), and `grams()` says it cannot tell.
"""
import http.client
import json
import threading
from urllib.parse import quote, urlsplit

from firmware.errors import (BayLocked, Conflict, InvalidRequest, NotEnoughStock, NotFound,
                             RefusedError, SensorFault, Unavailable, UnknownIngredient,
                             Unsupported)
from firmware.bays import bays_from_stock, grams_of

BY_STATUS = {400: InvalidRequest, 409: NotEnoughStock, 423: BayLocked, 503: SensorFault}


class ChillybinClient:
    def __init__(self, url, default_slots, unit_weights, timeout_s=3.0):
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self.default_slots = default_slots      # ingredient -> slot, for a v1-only chillybin
        self.unit_weights = unit_weights
        self._local = threading.local()

    # -- transport -------------------------------------------------------------------------
    def _connection(self):
        conn = getattr(self._local, 'conn', None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self._local.conn = conn
        return conn

    def request(self, method, path, body=None, headers=None):
        """(status, parsed JSON or text). Retries once on a kept-alive connection that the
        server closed before answering (a restart of chillybin)."""
        headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, payload, headers)
                response = conn.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise Unavailable(f'chillybin at {self.url} dropped the connection: {exc}') from None
            except http.client.HTTPException as exc:
                # An answer cut off (chillybin killed while sending it: IncompleteRead) or not
                # HTTP. Not retried: the request may have been carried out. The callers take
                # Unavailable as "look again", as for a chillybin that cannot be reached.
                conn.close()
                self._local.conn = None
                raise Unavailable(f'chillybin at {self.url} broke off its answer: '
                                  f'{type(exc).__name__}: {exc!r}') from None
            except OSError as exc:
                conn.close()
                self._local.conn = None
                raise Unavailable(f'chillybin at {self.url} cannot be reached: '
                                  f'{exc.strerror or exc}') from None
        if 'json' in (response.getheader('Content-Type') or ''):
            try:
                return response.status, json.loads(raw)
            except ValueError:
                pass
        return response.status, raw.decode(errors='replace').strip()

    def _refuse(self, status, answer, what):
        error = answer.get('error', {}) if isinstance(answer, dict) else {}
        message = error.get('message') or (answer if isinstance(answer, str) else str(answer))
        if status == 404:
            if error.get('code') == 'unknown':
                return UnknownIngredient(message, field='i')
            return NotFound(message)
        if status == 503 and error.get('code') != 'sensor':
            return Unavailable(f'chillybin: {message}')
        if status == 409 and error.get('code') == 'conflict':
            return Conflict(message)
        return BY_STATUS.get(status, RefusedError)(f'chillybin refused {what}: {message}')

    def _call(self, method, path, what, body=None, headers=None, ok=(200, 201)):
        status, answer = self.request(method, path, body, headers)
        if status not in ok:
            raise self._refuse(status, answer, what)
        return answer

    # -- what the machine asks ----------------------------------------------------------------
    def bays(self):
        """ingredient -> {'slot', 'unit_g', 'available', 'locked', 'sensor_ok', 'grams'}"""
        status, answer = self.request('GET', '/v2/stock')
        if status == 200 and isinstance(answer, dict):
            return bays_from_stock(answer)
        if status != 404:
            raise self._refuse(status, answer, 'the stock list')
        flat = self._call('GET', '/', 'the stock list')     # a v1-only chillybin
        if isinstance(flat, str):
            flat = json.loads(flat)
        return {name: {'slot': self.default_slots.get(name), 'unit_g': self.unit_weights.get(name, 1.0),
                       'available': units, 'locked': False, 'sensor_ok': True, 'grams': None}
                for name, units in flat.items() if name in self.default_slots}

    def reserve(self, items, key):
        """One reservation the dispensers take, so chillybin books their drops to it before
        any client's hold. A chillybin from before `dispense` refuses the field (400): it is
        asked again without it, as it was asked before."""
        status, answer = self.request('POST', '/v2/reservations', {'items': items, 'dispense': True},
                                      {'Idempotency-Key': key})
        if status == 400 and _error_field(answer) == 'dispense':
            status, answer = self.request('POST', '/v2/reservations', {'items': items},
                                          {'Idempotency-Key': key})
        if status in (200, 201):
            return answer
        refusal = self._refuse(status, answer, 'the reservation')
        if isinstance(refusal, NotFound):
            raise Unsupported('chillybin does not offer v2 reservations (404 on POST '
                              '/v2/reservations); nothing was taken. Switch the pick-v2 flag '
                              'off to use v1 picks, or upgrade chillybin.')
        raise refusal

    def reservation(self, rid):
        return self._call('GET', f'/v2/reservations/{quote(rid)}', f'reservation {rid}')

    def confirm(self, rid):
        return self._call('POST', f'/v2/reservations/{quote(rid)}/confirm', f'confirming {rid}')

    def cancel(self, rid):
        return self._call('POST', f'/v2/reservations/{quote(rid)}/cancel', f'cancelling {rid}')

    def pick(self, name, quantity):
        self._call('GET', f'/pick?name={quote(name)}&quantity={quantity}', f'the pick of {name}')

    def grams(self, name):
        """The bay's weight; None when chillybin cannot say (v1 only); SensorFault when its
        load cell cannot be read (the weight it still shows is the last one it read)."""
        status, answer = self.request('GET', f'/v2/stock/{quote(name)}')
        if status == 200 and isinstance(answer, dict):
            return grams_of(name, answer)
        return None

    def stock(self):
        """chillybin's v2 stock as it is, for the panel (None when it cannot say)."""
        status, answer = self.request('GET', '/v2/stock')
        return answer if status == 200 else None


def _error_field(answer):
    error = answer.get('error') if isinstance(answer, dict) else None
    return error.get('field') if isinstance(error, dict) else None
