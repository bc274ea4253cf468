"""Part 4b: schemathesis against both services' /v2/openapi.json, over real processes.

Checks: not_a_server_error, status_code_conformance, content_type_conformance,
response_schema_conformance, negative_data_rejection, with the admin bearer token, for a
bounded time per service. The only 5xx answers allowed are the documented ones that are
the point of the operation (EXPECTED_5XX, each with why); everything else must fit its
own document.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from .procs import Machine
from .report import report, sizes

CHECKS = ('not_a_server_error,status_code_conformance,content_type_conformance,'
          'response_schema_conformance,negative_data_rejection')

# (service, method, path) -> (statuses not counted as server errors, why)
EXPECTED_5XX = {
    ('chillybin', 'GET', '/v2/ready'): (
        [503], 'readiness answers 503 by design when a required check fails (the fuzzer '
               'moves bays to empty slots, whose load cells then have nothing to say)'),
    ('jafflr', 'GET', '/v2/ready'): (
        [503], 'readiness answers 503 by design when the machine should not take work '
               '(the fuzzer presses POST /v2/stop, and loads the control loop)'),
    ('jafflr', 'POST', '/v2/toasties'): (
        [503], 'documented: the machine is stopped (the fuzzer presses stop), restarting, '
               'or the queue is full, each named in the error body'),
}


def _config(service, path):
    lines = []
    for (svc, method, op_path), (statuses, _) in EXPECTED_5XX.items():
        if svc != service:
            continue
        allowed = ', '.join(f'"{s}"' for s in ['2xx', '3xx', '4xx', *map(str, statuses)])
        lines += ['[[operations]]', f'include-path = "{op_path}"', f'include-method = "{method}"',
                  f'checks.not_a_server_error.expected-statuses = [{allowed}]', '']
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
    return path


def fuzz(machine, service, budget_s, workdir, seed):
    config = _config(service, os.path.join(workdir, f'{service}-schemathesis.toml'))
    report_path = os.path.join(workdir, f'{service}-junit.xml')
    started = time.monotonic()
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'schemathesis'), '--no-color',
         '--config-file', config, 'run', f'http://127.0.0.1:{machine.ports[service]}/v2/openapi.json',
         '--checks', CHECKS, '-H', f'Authorization: Bearer {machine.token()}',
         '--max-time', str(budget_s), '--seed', str(seed), '--workers', '1',
         '--request-timeout', '20', '--report', 'junit', '--report-junit-path', report_path],
        capture_output=True, text=True, cwd=workdir, timeout=budget_s * 4 + 120,
        env=dict(os.environ, SCHEMATHESIS_HOOKS=''))
    took = time.monotonic() - started
    with open(os.path.join(workdir, f'{service}-schemathesis.txt'), 'w') as f:
        f.write(out.stdout + out.stderr)
    cases = re.search(r'(\d+) generated, (\d+) passed(?:, (\d+) failed)?(?:, (\d+) errored)?',
                      out.stdout)
    figures = {'service': service, 'exit_code': out.returncode, 'seconds': round(took, 1),
               'generated': int(cases.group(1)) if cases else None,
               'passed': int(cases.group(2)) if cases else None,
               'failed': int(cases.group(3) or 0) if cases else None,
               'errored': int(cases.group(4) or 0) if cases else None}
    return figures, out.stdout


@sizes(short={'budget_s': 4}, full={'budget_s': 60})
def test_fuzz_both_openapi_documents(tmp_path, size):
    results = []
    with Machine(str(tmp_path / 'state'), speed=10) as machine:
        for service in ('chillybin', 'jafflr'):
            figures, text = fuzz(machine, service, size['budget_s'], str(tmp_path), seed=7)
            results.append((figures, text))
        log = machine.log_text()
    lines = [f"{f['service']}: {f['generated']} cases in {f['seconds']} s, {f['passed']} passed, "
             f"{f['failed']} failed, {f['errored']} errored (budget {size['budget_s']} s)"
             for f, _ in results]
    lines.append('5xx allowed: ' + '; '.join(f'{s} {m} {p} {st}' for (s, m, p), (st, _)
                                            in EXPECTED_5XX.items()))
    report(f'fuzz-{size["name"]}', {'size': size, 'services': [f for f, _ in results],
                                     'expected_5xx': {f'{s} {m} {p}': {'statuses': st, 'why': why}
                                                      for (s, m, p), (st, why) in EXPECTED_5XX.items()}},
           lines)
    for figures, text in results:
        assert figures['exit_code'] == 0 and figures['generated'], \
            f"{figures['service']}: schemathesis found problems:\n{text[-6000:]}"
    assert 'Traceback' not in log, log[-4000:]
