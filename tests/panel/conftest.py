"""The kitchen panel in a real browser: the simulated machine, chillybin and jafflr as
processes on free ports, sped up, and Debian's chromium driven by Playwright.

Chromium missing: the browser tests skip with the reason on a developer's machine, and
fail under CI (CI set), where .ci/run installs it. Never `playwright install`: it
downloads a browser build, which these machines cannot do.
"""
import http.client
import json
import os
import shutil
import time
import warnings

import pytest

from api.launcher import Launcher

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, 'test-artifacts', 'panel')
CHROMIUM = os.environ.get('JAFFLR_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
# Simulated time runs this many times fast. The control loop's dead-man allows 2 clock
# seconds, which is 200 ms of real time at x10: faster than that trips it on a busy machine.
SPEED = float(os.environ.get('JAFFLR_PANEL_SPEED', '10'))


STALLED = 'control-loop-stalled'


def in_ci():
    return os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no')


class PanelMachine(Launcher):
    """The machine as the panel tests drive it: started by the launcher (api/launcher.py),
    with the panel's API, its reset and its view of the dead-man."""

    def __init__(self, folder, speed=SPEED):
        super().__init__(folder, speed=speed, stop_timeout_s=30)
        self.faults = set()          # simulated faults switched on, for ready() to undo

    @property
    def jafflr_port(self):
        return self['jafflr'].port

    @property
    def chillybin_port(self):
        return self['chillybin'].port

    def sim(self, *args):
        """python -m hardware.sim ARGS, as a person at a shell would switch a fault."""
        if args[0] == 'fault':
            (self.faults.add if args[2] == 'on' else self.faults.discard)(args[1])
        return super().sim(*args)

    def api(self, method, path, body=None, admin=False):
        headers = {'Accept': 'application/json'}
        if admin:
            headers['Authorization'] = f'Bearer {self.token()}'
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers['Content-Type'] = 'application/json'
        conn = http.client.HTTPConnection('127.0.0.1', self.jafflr_port, timeout=10)
        try:
            conn.request(method, path, payload, headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b'null')
        finally:
            conn.close()

    def ready(self):
        """No simulated fault, nothing latched, the queue running. Notes the last event
        first, so stalled_after(self.ready_seq) also sees a stall during the reset."""
        self.ready_seq = self.last_event()
        for fault in sorted(self.faults):
            self.sim('fault', fault, 'off')
        _, status = self.api('GET', '/v2/status')
        if status['fault'] and status['reset']['cleared_by'] == 'at-machine':
            self.hold_reset_button()        # a person at the machine (a stall, after all)
        if status['fault']:
            code, answer = self.api('POST', '/v2/reset', admin=True)
            assert code == 200, answer
        if status['paused']:
            self.api('POST', '/v2/queue/resume', admin=True)

    def hold_reset_button(self, hold_s=3):
        """A person holds the reset button on the machine; returns once jafflr counts it."""
        self.sim('button', 'reset', '--hold', str(hold_s))
        deadline = time.monotonic() + 30
        while not self.api('GET', '/v2/status')[1]['reset']['allowed']:
            assert time.monotonic() < deadline, 'jafflr did not see the reset button held'
            time.sleep(0.05)

    def last_event(self):
        _, answer = self.api('GET', '/v2/events?limit=1')
        return answer['events'][0]['seq'] if answer['events'] else 0

    def stalled_after(self, seq):
        """Whether jafflr's dead-man latched control-loop-stalled after event `seq`."""
        _, answer = self.api('GET', '/v2/events?kind=fault&limit=20')
        return any(e['seq'] > seq and e.get('reason') == STALLED for e in answer['events'])


@pytest.fixture(scope='module')
def launched(tmp_path_factory):
    s = PanelMachine(tmp_path_factory.mktemp('panel'))
    try:
        s.start_all()
        yield s
    finally:
        s.close()


@pytest.fixture(scope='session')
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        message = (f'{CHROMIUM} is not installed: the panel browser tests need Debian\'s chromium '
                   f'(apt-get install chromium)')
        if in_ci():
            pytest.fail(f'{message}; under CI this is an error: .ci/run must install it')
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if in_ci():
            pytest.fail(f'playwright is not installed ({exc}); make test installs requirements-test.txt')
        pytest.skip(f'playwright is not installed ({exc}): run make test')
    # The browser only watches: it runs niced, so that on a busy host the machine it
    # watches keeps its timing (see unless_starved). Run as root, chromium raises its own
    # browser and GPU processes to nice -8, above jafflr's control loop, unless it is
    # denied CAP_SYS_NICE, which setpriv does (a user who is not root has no such power).
    can_drop = os.geteuid() == 0 and shutil.which('setpriv')
    drop = 'setpriv --bounding-set=-sys_nice ' if can_drop else ''
    niced = tmp_path_factory.mktemp('chromium') / 'chromium'
    niced.write_text(f'#!/bin/sh\nexec {drop}nice -n 10 {CHROMIUM} "$@"\n')
    niced.chmod(0o755)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(niced), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def machine(launched):
    """The machine as each browser test expects to find it (PanelMachine.ready). Prints the
    services' logs, which pytest shows when the test fails."""
    launched.ready()
    yield launched
    print(launched.logs())


@pytest.fixture
def unless_starved(machine):
    """unless_starved(scenario) runs scenario() and, if it failed while jafflr's dead-man
    latched control-loop-stalled, once more after a reset, with a warning.

    The simulated machine runs SPEED times fast, so the dead-man's 2 clock seconds are
    2/SPEED real seconds: a host so busy that jafflr's control loop gets no CPU for that
    long trips it, as it should. That is the host, not the panel; anything else fails."""
    def run(scenario):
        try:
            return scenario()
        except AssertionError as exc:
            if not machine.stalled_after(machine.ready_seq):
                raise
            first = str(exc).strip().splitlines()[0][:300]
        warnings.warn(f'jafflr latched {STALLED} during a panel test (the host starved its '
                      f'control loop at speed x{machine.speed:g}); reset and ran it again. '
                      f'It had failed with: {first}')
        machine.ready()
        return scenario()
    return run


@pytest.fixture
def page(browser, machine, request):
    """A fresh browser tab at desktop size on the panel; a JavaScript error fails the test."""
    context = browser.new_context(viewport={'width': 1366, 'height': 900})
    tab = context.new_page()
    errors = []
    tab.on('pageerror', lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(15_000)
    tab.goto(machine.url('jafflr'))
    tab.wait_for_selector('#link-jafflr[data-up="online"]')
    machine.ready()       # again: a new tab's first seconds are the busiest for the host
    try:
        yield tab
        assert not errors, f'JavaScript errors on the panel: {errors}'
    finally:
        os.makedirs(ARTIFACTS, exist_ok=True)
        failed = os.path.join(ARTIFACTS, f'failed-{request.node.name}.png')
        if getattr(request.node, 'rep_call_failed', False):
            tab.screenshot(path=failed, full_page=True)
        elif os.path.exists(failed):
            os.remove(failed)          # from an earlier run: it would mislead
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == 'call':
        item.rep_call_failed = report.failed
    return report
