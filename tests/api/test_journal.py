"""Log records for the journal: priorities, structured fields, the native protocol and the
`<N>` prefix fallback, checked in process against a socket standing in for journald."""
import logging
import socket
import struct

import pytest

from api.common import journal
from firmware.orderbook import OrderBook
from firmware.safety import Shutdown


def parse(datagram):
    """Decode journald's native protocol (the inverse of journal.encode_field)."""
    fields, rest = {}, datagram
    while rest:
        line, sep, after = rest.partition(b'\n')
        if b'=' in line:
            key, _, value = line.partition(b'=')
            fields[key.decode()] = value.decode()
            rest = after
        else:
            size = struct.unpack('<Q', after[:8])[0]
            fields[line.decode()] = after[8:8 + size].decode()
            assert after[8 + size:9 + size] == b'\n'
            rest = after[9 + size:]
    return fields


@pytest.fixture
def journald(tmp_path):
    path = str(tmp_path / 'journal.sock')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    try:
        yield path, lambda: parse(sock.recv(1 << 20))
    finally:
        sock.close()


@pytest.fixture
def logged(journald):
    """The root logger sending to the stand-in journald, as under systemd."""
    path, receive = journald
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    handler = journal.configure('jafflr', 'R7', env={'JOURNAL_STREAM': '8:1'}, path=path)
    try:
        yield handler, receive
    finally:
        handler.close()
        root.handlers[:], root.level = saved[0], saved[1]


@pytest.mark.parametrize('level, expected', [(logging.CRITICAL, 2), (logging.ERROR, 3),
                                             (logging.WARNING, 4), (logging.INFO, 6),
                                             (logging.DEBUG, 7)])
def test_journal_priorities_follow_syslog(level, expected):
    assert journal.priority(level) == expected


def test_journal_a_latched_fault_is_priority_err_with_its_reason(logged):
    handler, receive = logged
    assert isinstance(handler, journal.JournalHandler)
    Shutdown().trip('plate-over-temperature', 'plate at 262 C (limit 260 C)', 1.0)
    fields = receive()
    assert fields['PRIORITY'] == '3' and fields['FAULT_REASON'] == 'plate-over-temperature'
    assert fields['MESSAGE'].startswith('heater shutdown: plate-over-temperature: plate at '
                                        '262 C (limit 260 C) (')       # then what tripped it
    assert fields['SYSLOG_IDENTIFIER'] == 'jafflr' and fields['RELEASE'] == 'R7'
    assert fields['LOGGER'] == 'firmware.safety' and fields['CODE_FILE'].endswith('safety.py')


def test_journal_a_failed_toastie_carries_its_order_id(logged, tmp_path):
    _, receive = logged

    class Store:
        def save_order(self, *a, **k):
            pass

        def archive_order(self, *a, **k):
            pass

    book = OrderBook(Store(), [], 1)
    order, _ = book.submit(['cheese'], 'light', 100.0)
    book.fail(order, 'restarted', 'jafflr restarted while the toastie was in the press', 101.0)
    fields = receive()
    assert fields['PRIORITY'] == '4' and fields['ORDER_ID'] == order.id
    assert fields['FAULT_REASON'] == 'restarted' and order.id in fields['MESSAGE']


def test_journal_a_traceback_is_one_multi_line_field(logged):
    _, receive = logged
    try:
        raise ValueError('bad\nthing')
    except ValueError:
        logging.getLogger('jafflr').exception('a station failed')
    fields = receive()
    assert fields['PRIORITY'] == '3'
    assert fields['MESSAGE'].startswith('a station failed\nTraceback')
    assert fields['MESSAGE'].rstrip().endswith('ValueError: bad\nthing')


def test_journal_falls_back_to_prefixed_stderr_when_journald_is_away(tmp_path, capsys):
    handler = journal.JournalHandler('jafflr', 'R7', path=str(tmp_path / 'gone.sock'),
                                     fallback=None)
    handler.fallback.stream = __import__('sys').stderr
    record = logging.LogRecord('jafflr', logging.ERROR, __file__, 1, 'two\nlines', None, None)
    handler.emit(record)
    assert capsys.readouterr().err == '<3>jafflr ERROR: two\n<3>lines\n'
    handler.close()


def test_journal_configure_picks_the_output_for_where_it_runs(tmp_path):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        plain = journal.configure('jafflr', env={}, path=str(tmp_path / 'none'))
        assert type(plain.formatter) is logging.Formatter
        assert type(journal.configure('jafflr', env={'INVOCATION_ID': 'x'}, path=str(
            tmp_path / 'none')).formatter) is logging.Formatter   # a unit, stderr not the journal
        prefixed = journal.configure('jafflr', env={'JOURNAL_STREAM': '8:1'},
                                     path=str(tmp_path / 'none'))
        assert isinstance(prefixed.formatter, journal.SyslogPrefixFormatter)
        ours = [h for h in root.handlers if getattr(h, 'jafflr_journal', False)]
        assert ours == [prefixed], 'each configure replaces the one before'
        others = [h for h in saved[0] if not getattr(h, 'jafflr_journal', False)]
        assert all(h in root.handlers for h in others), "others' handlers stay"
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
