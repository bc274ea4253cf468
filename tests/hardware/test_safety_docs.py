"""docs/fmea.md and docs/bom.md stay true to the board and the tests: every part of the
safety chain and every sensor has failure-mode rows, every row names tests that exist,
and the bill of materials' table is the one board.py generates."""
import os
import re

from hardware.board import BOARD
from hardware.drawings import bom_markdown

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def fmea_rows():
    text = read('docs/fmea.md')
    table = text.split('| part | failure mode |', 1)[1].split('\n\n', 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        assert len(cells) == 7, line
        rows.append(cells)
    return rows


def test_fmea_every_row_is_filled_and_names_tests_that_exist():
    rows = fmea_rows()
    assert len(rows) >= 30
    for part, mode, effect, detection, reaction, speed, tests in rows:
        assert all((part, mode, effect, detection, reaction, speed)), part
        refs = re.findall(r'`(tests/[\w/]+\.py)::(\w+)(\[[^\]]+\])?`', tests)
        assert refs, f'{part} / {mode}: no test named'
        for path, name, param in refs:
            source = read(path)
            assert re.search(rf'^def {name}\(', source, re.M), f'{path}::{name} does not exist'
            for value in (param or '').strip('[]').split('-') if param else []:
                assert value in source, f'{path}::{name}{param}: no such case'


def test_fmea_covers_every_chain_part_and_every_sensor():
    parts = ' '.join(row[0] for row in fmea_rows())
    for chain in BOARD.chain:
        assert re.search(rf'\b{re.escape(chain.ref)}\b', parts), f'{chain.ref} {chain.name} has no rows'
    sensors = [p for p in BOARD.gpio if p.direction == 'in'] + list(BOARD.i2c)
    for sensor in sensors:
        names = {sensor.name, *(c.ref for c in BOARD.chain if c.read_by == sensor.name)}
        if hasattr(sensor, 'pin'):
            names.add(f'GPIO{sensor.pin}')
        assert any(re.search(rf'\b{re.escape(n)}\b', parts) for n in names), \
            f'{sensor.name} has no rows in docs/fmea.md'


def test_bom_table_is_generated_from_the_board():
    assert bom_markdown() in read('docs/bom.md'), \
        'docs/bom.md is out of date with hardware/board.py: run `make drawings` and commit'
