"""The reliability campaign (issue 7): each part runs short in the default run and long
under `make campaign` (`pytest -m slow tests/campaign`). Parts report their figures: a
summary at the end of the pytest run, and test-artifacts/campaign/<name>.json."""
import pytest

from .report import SUMMARIES


def pytest_collection_modifyitems(config, items):
    """Slow parts run only when asked for by marker (`-m slow`), never by default."""
    if 'slow' in (config.option.markexpr or ''):
        return
    skip = pytest.mark.skip(reason='a long part of the reliability campaign: make campaign')
    for item in items:
        if item.get_closest_marker('slow') is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not SUMMARIES:
        return
    terminalreporter.section('reliability campaign figures')
    for name, lines in SUMMARIES:
        terminalreporter.write_line(f'{name}:')
        for line in lines:
            terminalreporter.write_line(f'  {line}')
