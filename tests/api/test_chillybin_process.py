"""chillybin as a process: the drain on SIGTERM, the migrate command, refusing a database
from a newer release, and the done-means check of chiller-dead on a x2000 simulator."""
import json
import os
import signal
import socket
import time

import pytest

from api.chillybin.__main__ import main
from firmware.binstore import DB_NAME
from firmware.store import open_db

from .chillyproc import Chillybin, run_chillybin, simulator


@pytest.fixture(scope='module')
def machine(tmp_path_factory):
    made = simulator(str(tmp_path_factory.mktemp('machine')), speed=20)
    yield made
    assert made.close().get('sim') == 0, made.logs()


def _read_response(sock, timeout=10):
    sock.settimeout(timeout)
    data = b''
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_process_sigterm_finishes_the_request_in_flight_and_exits_0(machine, tmp_path):
    chilly = Chillybin(machine, str(tmp_path / 'state'))
    body = json.dumps({'items': {'bread': 1}}).encode()
    with socket.create_connection(('127.0.0.1', chilly.port)) as sock:
        sock.sendall(b'POST /v2/reservations HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                     b'Content-Type: application/json\r\n'
                     b'Content-Length: %d\r\n\r\n' % len(body) + body[:5])
        time.sleep(0.3)                        # the request has arrived, half its body with it
        chilly.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(OSError):           # the drain stopped new connections
            socket.create_connection(('127.0.0.1', chilly.port), timeout=2).close()
        sock.sendall(body[5:])
        answer = _read_response(sock)
    assert answer.startswith(b'HTTP/1.1 201'), answer     # read to EOF: then it was closed
    assert chilly.proc.wait(timeout=15) == 0
    log = chilly.read_log()
    assert 'drained' in log and 'Traceback' not in log


def test_process_sigterm_with_a_keep_alive_connection_idle(machine, tmp_path):
    chilly = Chillybin(machine, str(tmp_path / 'state'))
    conn = chilly.connection()
    conn.request('GET', '/health')
    assert conn.getresponse().read()
    started = time.monotonic()
    assert chilly.close() == 0
    assert time.monotonic() - started < 5      # an idle connection does not hold the drain
    conn.close()


def test_process_starts_with_a_dead_load_cell_and_names_it(machine, tmp_path):
    machine.sim('fault', 'loadcell-nack:cheese', 'on')
    try:
        chilly = Chillybin(machine, str(tmp_path / 'state'))
        status, _, body = chilly.request('GET', '/pick?name=cheese&quantity=1')
        assert status == 503 and b'loadcell_1' in body and b'does not answer' in body
        assert chilly.request('GET', '/pick?name=bread&quantity=1')[2] == b'ok'
        ready = chilly.json('GET', '/v2/ready')[1]
        assert 'cheese: PartMissing: loadcell_1' in ready['checks']['load-cells']['detail']
    finally:
        machine.sim('fault', 'loadcell-nack:cheese', 'off')
    deadline = time.monotonic() + 10
    while 'cheese' not in json.loads(chilly.request('GET', '/')[2]):
        assert time.monotonic() < deadline, 'the cheese load cell never came back'
        time.sleep(0.1)
    assert chilly.close() == 0


def test_process_migrate_command_goes_up_and_down(tmp_path):
    state = str(tmp_path)
    out = run_chillybin(None, state, 'migrate')
    assert out.returncode == 0, out.stderr
    assert 'migration 1 up' in out.stdout and 'chillybin storage at schema 3' in out.stdout
    out = run_chillybin(None, state, 'migrate', '--to', '2')
    assert out.returncode == 0 and 'migration 3 down' in out.stdout and 'schema 2' in out.stdout


def test_process_migrate_in_process_up_and_out_of_range(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('JAFFLR_STATE_DIR', str(tmp_path))
    assert main(['migrate', '--to', '2']) == 0
    assert main(['migrate']) == 0
    assert 'migration 3 up' in capsys.readouterr().out
    assert main(['migrate', '--to', '9']) == 2
    assert '--to must be a schema from 0 to 3' in capsys.readouterr().err


def test_process_refuses_a_database_from_a_newer_release(machine, tmp_path):
    state = str(tmp_path / 'state')
    assert run_chillybin(machine, state, 'migrate').returncode == 0
    db = open_db(os.path.join(state, DB_NAME))
    db.table('_migrations').insert({'number': 4, 'name': 'from the future', 'applied_at': 0,
                                    'min_reader': 4})
    out = run_chillybin(machine, state, '--port', '0')
    assert out.returncode != 0
    assert 'this release knows schema 3' in out.stderr
    assert 'Deploy a newer release, or have the newer release migrate it down with ' \
           '`python -m api.chillybin migrate --to 3`' in out.stderr
    assert 'Traceback' not in out.stderr


def test_process_refuses_bad_settings_with_a_message(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv('JAFFLR_STATE_DIR', str(tmp_path))
    monkeypatch.setenv('CHILLYBIN_TICK_S', 'fast')
    assert main(['--port', '0']) == 2
    assert "CHILLYBIN_TICK_S='fast' is not a number" in caplog.text
    monkeypatch.setenv('CHILLYBIN_TICK_S', '0')
    assert main(['--port', '0']) == 2
    assert 'CHILLYBIN_TICK_S=0 is out of range (0.01:60 s)' in caplog.text


def test_process_chiller_dead_warns_then_locks_via_http(tmp_path):
    """Done means: with the chiller dead, the bays warn and then lock, seen over HTTP on a
    simulator running 2000 times fast (four hours above 5 C in about eight seconds)."""
    machine = simulator(str(tmp_path), speed=2000)
    try:
        chilly = Chillybin(machine, str(tmp_path / 'state'))
    except BaseException:
        machine.close()
        raise
    try:
        machine.sim('fault', 'chiller-dead', 'on')
        started = time.monotonic()
        seen, latencies = [], []
        while time.monotonic() - started < 25:
            t0 = time.monotonic()
            status, stock = chilly.json('GET', '/v2/stock')
            latencies.append(time.monotonic() - t0)
            assert status == 200
            states = {b['food_safety']['state'] for b in stock['bays']}
            if not seen or seen[-1] != states:
                seen.append(states)
            if states == {'discard'}:
                break
            time.sleep(0.1)
        took = time.monotonic() - started
        assert seen[-1] == {'discard'}, f'not locked after {took:.0f} s: {seen}'
        assert {'use-soon'} in seen, seen
        status, body, data = chilly.request('GET', '/pick?name=cheese&quantity=1')
        assert status == 423 and b'above 5 C for more than 4 hours' in data
        alerts = {a['alert'] for a in chilly.json('GET', '/v2/alerts')[1]['alerts']}
        assert {'bin-warm', 'food-safety-discard'} <= alerts
        metrics = chilly.request('GET', '/metrics')[2].decode()
        assert 'chillybin_bay_food_safety_locked{bay="cheese"} 1.0' in metrics
        assert chilly.json('GET', '/v2/ready')[1]['checks']['bin-loop']['ok']
        latencies.sort()
        print(f'\nchiller-dead to every bay locked: {took:.1f} s wall at x2000; '
              f'/v2/stock p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, '
              f'max {latencies[-1] * 1000:.0f} ms over {len(latencies)} polls')
    finally:
        assert chilly.close() == 0
        machine.close()


def _datagrams(sock, seconds):
    """(real time, text) of each datagram on `sock` for `seconds`."""
    got, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            got.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            pass
    return got


def test_process_watchdog_is_fed_by_the_bin_loop_and_stops_when_it_is_stuck(machine, tmp_path):
    """systemd's side of Type=notify/WatchdogSec=, played by a datagram socket: pings come
    while the bin loop ticks and stop when it is stuck, though HTTP still answers."""
    path = str(tmp_path / 'notify.sock')
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(0.1)
        chilly = Chillybin(machine, str(tmp_path / 'state'), NOTIFY_SOCKET=path,
                           WATCHDOG_USEC='2000000', JAFFLR_DEBUG_HOOKS='1')
        try:
            ticking = [t for t, text in _datagrams(sock, 3.0) if 'WATCHDOG=1' in text]
            assert len(ticking) >= 4, f'{len(ticking)} pings in 3 s with WatchdogSec=2'
            assert max(b - a for a, b in zip(ticking, ticking[1:])) < 1.0
            assert chilly.request('POST', '/v2/debug/stall')[0] == 200
            _datagrams(sock, 0.3)                  # a ping already on its way
            stuck = [t for t, text in _datagrams(sock, 3.0) if 'WATCHDOG=1' in text]
            assert stuck == [], f'{len(stuck)} pings with the bin loop stuck'
            assert chilly.request('GET', '/')[0] == 200, 'HTTP goes on: only the loop is stuck'
        finally:
            chilly.proc.kill()
            chilly.proc.wait()


def test_process_without_debug_hooks_has_no_stall(machine, tmp_path):
    chilly = Chillybin(machine, str(tmp_path / 'state'))
    try:
        assert chilly.request('POST', '/v2/debug/stall')[0] == 404
    finally:
        assert chilly.close() == 0


def test_process_start_with_the_clock_behind_the_last_save_holds_bays_for_a_person(machine, tmp_path):
    """A Pi without a real-time clock after a power cut: the clock at start is earlier than
    chillybin's last save. Every bay is refused until a person checks it over HTTP."""
    state = str(tmp_path / 'state')
    assert run_chillybin(machine, state, 'migrate').returncode == 0
    db = open_db(os.path.join(state, DB_NAME))
    ahead = time.time() + 10 * 86400     # the last save, 10 days (of machine time) from now
    db.table('meta').update({'last_seen_wall': ahead})
    db.close()
    chilly = Chillybin(machine, state)
    try:
        status, _, data = chilly.request('GET', '/pick?name=cheese&quantity=1')
        assert status == 423 and b'held until a person checks it' in data, data
        assert b'earlier than the last save' in data
        stock = chilly.json('GET', '/v2/stock')[1]
        assert {b['food_safety']['state'] for b in stock['bays']} == {'needs-check'}
        body = {'confirmed': 'cheese probed at 3.4 C; bin cold; lid shut'}
        status, _ = chilly.json('POST', '/v2/bays/cheese/food-check', body)
        assert status == 401
        status, answer = chilly.json('POST', '/v2/bays/cheese/food-check', body,
                                     chilly.admin({'Content-Type': 'application/json'}))
        assert status == 200, answer
        assert answer['confirmed'] == body['confirmed'] and answer['food_safety']['state'] == 'ok'
        assert chilly.request('GET', '/pick?name=cheese&quantity=1')[0] == 200
        assert chilly.request('GET', '/pick?name=bread&quantity=1')[0] == 423
        events = chilly.json('GET', '/v2/events?kind=food-check')[1]['events']
        assert 'cheese probed at 3.4 C' in events[0]['detail']
    finally:
        assert chilly.close() == 0
