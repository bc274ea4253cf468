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


def _amtool(*args):
    if not shutil.which('amtool'):
        pytest.skip("amtool is missing: apt-get install prometheus-alertmanager (.ci/run does)")
    return subprocess.run(['amtool', *args], capture_output=True, text=True, cwd=MONITORING,
                          timeout=60)


def test_monitoring_alertmanager_config_passes_amtool_check():
    out = _amtool('check-config', 'alertmanager.yml')
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize('labels, receivers', [
    (['severity=critical', 'site=shop_north'], 'on-call,shop-north'),   # paged, and the site
    (['severity=critical', 'site=kitchen'], 'on-call,kitchen'),
    (['severity=warning', 'site=shop_south'], 'shop-south'),
    (['severity=warning', 'site=shop_north'], 'shop-north'),
    (['severity=info', 'site=shop_north'], 'fleet-log'),                # restarts: log only
    (['severity=warning', 'site=a_new_site'], 'fleet-ops'),             # nobody forgotten
    (['severity=critical', 'site=a_new_site'], 'on-call'),
])
def test_monitoring_alerts_route_by_severity_and_site(labels, receivers):
    out = _amtool('config', 'routes', 'test', '--config.file=alertmanager.yml',
                  f'--verify.receivers={receivers}', *labels)
    assert out.returncode == 0, out.stdout + out.stderr


def test_monitoring_prometheus_sends_alerts_and_scrapes_the_pis_node_exporter():
    import yaml
    config = yaml.safe_load(open(os.path.join(MONITORING, 'prometheus.yml')))
    assert config['alerting']['alertmanagers'][0]['static_configs'][0]['targets']
    jobs = {job['job_name']: job for job in config['scrape_configs']}
    assert {'jafflr', 'chillybin', 'node'} <= set(jobs)
    sites = lambda job: {g['labels']['site'] for g in jobs[job]['static_configs']}
    assert sites('node') == sites('jafflr') == sites('chillybin')
    routes = yaml.safe_load(open(os.path.join(MONITORING, 'alertmanager.yml')))['route']['routes']
    routed = {m.split('=')[1].strip('"') for r in routes for m in r['matchers'] if 'site=' in m}
    assert sites('jafflr') <= routed, 'a site in prometheus.yml has no route of its own'


def test_monitoring_readme_names_every_metric_the_rules_use():
    readme = open(os.path.join(MONITORING, 'README.md')).read()
    rules = open(os.path.join(MONITORING, 'rules', 'jafflr.rules.yml')).read()
    import re
    used = set(re.findall(r'\b((?:jafflr|chillybin)_[a-z0-9_]+)\b', rules))
    assert used and all(f'`{m}`' in readme for m in used), used
