"""The committed drawings (docs/drawings) agree with hardware/board.py: their sources are
regenerated and compared exactly, and their SVGs by the text they show (coordinates and
graphviz's version comments may differ from machine to machine; the labels may not)."""
import dataclasses
import os
import re

from hardware import drawings
from hardware.board import BOARD, GpioPart

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DRAWINGS = os.path.join(ROOT, 'docs', 'drawings')
STALE = 'docs/drawings is out of date with hardware/board.py: run `make drawings` and commit'


def committed(name):
    with open(os.path.join(DRAWINGS, name), encoding='utf-8') as f:
        return f.read()


def svg_text(svg):
    """The words an SVG shows, in order, without its geometry."""
    svg = re.sub(r'<!--.*?-->', '', svg, flags=re.S)
    return [t.strip() for t in re.findall(r'>([^<>]+)<', svg) if t.strip()]


def test_drawings_harness_source_matches_the_board():
    assert committed('harness.yml') == drawings.harness_yaml(), STALE


def test_drawings_chain_source_matches_the_board():
    assert committed('safety-chain.txt') == drawings.chain_source(), STALE


def test_drawings_harness_svg_shows_what_the_board_says(tmp_path):
    paths = drawings.write(str(tmp_path))
    fresh = {os.path.basename(p): open(p, encoding='utf-8').read() for p in paths}
    for name in ('harness.svg', 'safety-chain.svg'):
        assert svg_text(committed(name)) == svg_text(fresh[name]), f'{name}: {STALE}'


def test_drawings_every_gpio_part_is_on_the_harness_with_its_header_pin():
    doc = drawings.harness()
    j1 = dict(zip(doc['connectors']['J1']['pins'], doc['connectors']['J1']['pinlabels']))
    for part in BOARD.gpio:
        assert j1[drawings.HEADER_PIN[part.pin]] == f'GPIO{part.pin} {part.name}'
    notes = doc['connectors']['X6']['notes']
    for part in BOARD.i2c:
        assert f'{part.name} {part.chip} 0x{part.address:02X}' in notes


def test_drawings_a_part_added_to_the_board_changes_the_drawings():
    """A new input (a door switch, say) lands on its connector; a changed pin shows."""
    board = dataclasses.replace(BOARD, gpio=(*BOARD.gpio, GpioPart('door_switch', 11, 'in',
                                                                  active_high=False, pull='up')))
    assert 'GPIO11 door_switch' in drawings.harness_yaml(board)
    assert 'GPIO10 reset_button' in drawings.harness_yaml()
    assert drawings.harness_yaml(board) != drawings.harness_yaml()
    moved = dataclasses.replace(BOARD, gpio=tuple(
        dataclasses.replace(p, pin=14) if p.name == 'heater_feedback' else p for p in BOARD.gpio))
    assert 'GPIO14 heater_feedback' in drawings.chain_source(moved)
    assert 'GPIO14 heater_feedback' in ' '.join(svg_text(drawings.chain_schematic(moved)))


def test_drawings_an_unknown_part_is_drawn_not_dropped():
    board = dataclasses.replace(BOARD, gpio=(*BOARD.gpio, GpioPart('door_switch', 14, 'in')))
    assert 'X9' in drawings.harness(board)['connectors']
