"""The Prometheus config and alert rules load, and the alerts fire when they should."""
import os
import shutil
import subprocess

import pytest

MONITORING = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'deploy', 'monitoring')


def _promtool(*args):
    if not shutil.which('promtool'):
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run does)")
    return subprocess.run(['promtool', *args], capture_output=True, text=True, cwd=MONITORING,
                          timeout=120)


def test_monitoring_rules_pass_promtool_check():
    out = _promtool('check', 'rules', 'rules/jafflr.rules.yml')
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitoring_scrape_config_passes_promtool_check():
    out = _promtool('check', 'config', 'prometheus.yml')
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitoring_alerts_pass_their_promtool_tests():
    out = _promtool('test', 'rules', 'tests/jafflr.rules.test.yml')
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitoring_readme_names_every_metric_the_rules_use():
    readme = open(os.path.join(MONITORING, 'README.md')).read()
    rules = open(os.path.join(MONITORING, 'rules', 'jafflr.rules.yml')).read()
    import re
    used = set(re.findall(r'\b((?:jafflr|chillybin)_[a-z0-9_]+)\b', rules))
    assert used and all(f'`{m}`' in readme for m in used), used
