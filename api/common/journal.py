"""Log records the journal understands: priorities and structured fields.

Under systemd (JOURNAL_STREAM is set) records go to journald over its native protocol,
/run/systemd/journal/socket, one datagram each: PRIORITY (so `journalctl -p err` shows a
latched fault), SYSLOG_IDENTIFIER, the logger and code location, RELEASE, and the fields a
caller attaches with `extra=` (order_id -> ORDER_ID, fault_reason -> FAULT_REASON), visible
with `journalctl -o json`. If the socket cannot take a record, it goes to stderr with a
`<N>` syslog priority prefix, which journald reads from a service's stderr
(SyslogLevelPrefix=yes, the default). Outside systemd, plain lines on stderr as before.
"""
import logging
import os
import socket
import struct
import sys
import traceback

JOURNAL_SOCKET = '/run/systemd/journal/socket'
FIELDS = ('order_id', 'fault_reason')       # `extra=` keys sent as upper-case journal fields


def priority(levelno):
    """syslog priority of a logging level: 2 crit, 3 err, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def encode_field(name, value):
    """One field of the native protocol: NAME=value, or NAME, a 64-bit little-endian length
    and the bytes when the value holds a newline."""
    data = str(value).encode('utf-8', 'replace')
    key = name.encode('ascii')
    if b'\n' in data:
        return key + b'\n' + struct.pack('<Q', len(data)) + data + b'\n'
    return key + b'=' + data + b'\n'


class SyslogPrefixFormatter(logging.Formatter):
    """`<3>jafflr ERROR: ...`: journald takes the priority from the prefix of each line."""

    def format(self, record):
        text = super().format(record)
        prefix = f'<{priority(record.levelno)}>'
        return '\n'.join(prefix + line for line in text.split('\n'))


class JournalHandler(logging.Handler):
    """Sends each record to journald as one datagram with its fields."""

    def __init__(self, identifier, release=None, path=JOURNAL_SOCKET, fallback=None):
        super().__init__()
        self.identifier, self.release_name, self.path = identifier, release, path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.fallback = fallback or _stderr_handler(SyslogPrefixFormatter(_PLAIN))

    def fields(self, record):
        message = record.getMessage()
        if record.exc_info:
            message += '\n' + ''.join(traceback.format_exception(*record.exc_info)).rstrip()
        fields = {'MESSAGE': message, 'PRIORITY': priority(record.levelno),
                  'SYSLOG_IDENTIFIER': self.identifier, 'LOGGER': record.name,
                  'CODE_FILE': record.pathname, 'CODE_LINE': record.lineno,
                  'CODE_FUNC': record.funcName, 'THREAD': record.threadName}
        if self.release_name:
            fields['RELEASE'] = self.release_name
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name.upper()] = value
        return fields

    def emit(self, record):
        try:
            datagram = b''.join(encode_field(k, v) for k, v in self.fields(record).items())
            self.sock.sendto(datagram, self.path)
        except OSError:      # journald away, or a record too big for one datagram
            self.fallback.handle(record)
        except Exception:
            self.handleError(record)

    def close(self):
        self.sock.close()
        super().close()


_PLAIN = '%(name)s %(levelname)s: %(message)s'


def _stderr_handler(formatter):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    return handler


def configure(identifier, release=None, env=os.environ, path=JOURNAL_SOCKET, level=logging.INFO):
    """Set the root logger up for where the process runs; returns the handler."""
    if env.get('JOURNAL_STREAM') and os.path.exists(path):
        handler = JournalHandler(identifier, release, path)
    elif env.get('JOURNAL_STREAM'):     # stderr is the journal, its socket is not here
        handler = _stderr_handler(SyslogPrefixFormatter(_PLAIN))
    else:
        handler = _stderr_handler(logging.Formatter(_PLAIN))
    handler.jafflr_journal = True
    root = logging.getLogger()
    # Replace only what an earlier configure() installed: a handler someone else added
    # (pytest's log capture, an embedding program) stays.
    for old in list(root.handlers):
        if getattr(old, 'jafflr_journal', False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
