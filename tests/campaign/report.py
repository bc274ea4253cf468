"""How the campaign's parts size themselves and report their figures."""
import json
import os
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, 'test-artifacts', 'campaign')
SUMMARIES = []       # (name, lines), printed at the end of the pytest run


def scale():
    """CAMPAIGN_SCALE multiplies the full campaign's iterations (default 1)."""
    return float(os.environ.get('CAMPAIGN_SCALE', '1'))


def sizes(short, full):
    """Parametrize a part: `short` in the default run, `full` (marked slow) in the campaign.
    Each is a dict of the part's knobs; counts in `full` are multiplied by CAMPAIGN_SCALE."""
    scaled = {k: (max(1, round(v * scale())) if isinstance(v, int) and not isinstance(v, bool)
                  else v) for k, v in full.items()}
    return pytest.mark.parametrize('size', [
        pytest.param({'name': 'short', **short}, id='short'),
        pytest.param({'name': 'full', **scaled}, id='full', marks=pytest.mark.slow)])


def report(name, figures, lines):
    """Write the figures to test-artifacts/campaign/<name>.json and keep the summary lines
    for the end of the run (also printed, for `pytest -s`)."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    figures = {'name': name, 'written_at': time.strftime('%Y-%m-%dT%H:%M:%S'), **figures}
    with open(os.path.join(ARTIFACTS, f'{name}.json'), 'w') as f:
        json.dump(figures, f, indent=2, sort_keys=True, default=str)
    SUMMARIES.append((name, list(lines)))
    print(f'\n{name}:\n' + '\n'.join(f'  {line}' for line in lines))
