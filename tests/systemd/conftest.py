"""Figures the systemd proofs measured, printed at the end of the run and kept in a file."""
import json
import os

REPORT = {}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_terminal_summary(terminalreporter):
    if not REPORT:
        return
    terminalreporter.section('systemd proof: measured figures')
    for name, figures in REPORT.items():
        terminalreporter.write_line(f'{name}: {json.dumps(figures)}')
    os.makedirs(os.path.join(ROOT, 'test-artifacts'), exist_ok=True)
    with open(os.path.join(ROOT, 'test-artifacts', 'systemd-report.json'), 'w') as f:
        json.dump(REPORT, f, indent=2)
