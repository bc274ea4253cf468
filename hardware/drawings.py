"""The machine's drawings, from the one source, hardware/board.py.

    python -m hardware.drawings [--out docs/drawings]      # or: make drawings

writes, into the output folder:

- harness.yml / harness.svg: the wiring harness, every GPIO line from the Pi's 40-pin
  header to the connector of the board it goes to (WireViz, through Debian's graphviz);
- safety-chain.txt / safety-chain.svg: the safety chain's schematic: the element's mains
  path, the heartbeat gate and its feedback, the e-stop, safety relay and contactor, the
  motors' enable and the current sense (schemdraw);

and refreshes the generated table in docs/bom.md (the bill of materials).

The .yml and .txt are the drawings' sources, generated first and committed with the
SVGs; tests/hardware/test_drawings.py regenerates them and fails when they and board.py
disagree. WireViz and schemdraw are only needed here (requirements-test.txt pins them).
"""
import argparse
import os
import sys

from .board import BOARD, chain_part

# BCM GPIO number -> pin on the Raspberry Pi's 40-pin header.
HEADER_PIN = {2: 3, 3: 5, 4: 7, 17: 11, 27: 13, 22: 15, 10: 19, 9: 21, 11: 23, 0: 27, 5: 29,
              6: 31, 13: 33, 19: 35, 26: 37, 14: 8, 15: 10, 18: 12, 23: 16, 24: 18, 25: 22,
              8: 24, 7: 26, 1: 28, 12: 32, 16: 36, 20: 38, 21: 40}
HEADER_GND = (6, 9, 14, 20, 25, 30, 34, 39)

# Which connector each GPIO part's wire ends at. A part not named here (one a later
# revision of board.py adds) lands on X9, "other", so it is drawn, not dropped.
CONNECTORS = (
    ('X1', 'safety board (heartbeat gate, SSR drive, K1 aux)',
     ('heater_relay', 'heater_heartbeat', 'heater_feedback', 'contactor_closed')),
    ('X2', 'operator panel (e-stop, lid switch, reset, buzzer, LED)',
     ('estop_ok', 'lid_closed', 'reset_button', 'buzzer', 'status_led')),
    ('X3', 'motor driver board (enable from the safety board)',
     ('dispenser_0', 'dispenser_1', 'dispenser_2', 'dispenser_3', 'dispenser_4',
      'tray_motor', 'press_close', 'press_open')),
    ('X4', 'press and conveyor sensors',
     ('tray_index', 'press_open_limit', 'press_closed_limit')),
    ('X5', 'chilly bin', ('chiller_relay',)),
)
OTHER = ('X9', 'other')
COLOURS = ('RD', 'OG', 'YE', 'GN', 'BU', 'VT', 'GY', 'WH', 'BN', 'PK')


def _groups(board):
    """[(ref, title, [GpioPart, ...])] in connector order, only those with parts."""
    placed, groups = set(), []
    for ref, title, names in CONNECTORS:
        parts = [board.gpio_part(n) for n in names if board.has_part(n)]
        placed.update(p.name for p in parts)
        groups.append((ref, title, parts))
    groups.append((*OTHER, [p for p in board.gpio if p.name not in placed]))
    return [g for g in groups if g[2]]


def harness(board=BOARD):
    """The harness as a WireViz document (a dict, dumped to harness.yml)."""
    connectors = {'J1': {'type': 'Raspberry Pi 40-pin header', 'subtype': 'female',
                         'pins': [], 'pinlabels': []}}
    cables, connections = {}, []
    j1 = connectors['J1']
    for n, (ref, title, parts) in enumerate(_groups(board), start=1):
        header = [HEADER_PIN[p.pin] for p in parts] + [HEADER_GND[(n - 1) % len(HEADER_GND)]]
        labels = [f'GPIO{p.pin} {p.name}' for p in parts] + ['GND']
        for pin, label in zip(header, labels):
            if pin not in j1['pins']:
                j1['pins'].append(pin)
                j1['pinlabels'].append(label)
        connectors[ref] = {'type': title, 'subtype': f'JST XH, {len(header)} way',
                           'pinlabels': [p.name for p in parts] + ['GND'],
                           'notes': '; '.join(f'{p.name}: {_polarity(p)}' for p in parts)}
        cables[f'W{n}'] = {'wirecount': len(header), 'gauge': '0.25 mm2', 'length': 0.4,
                           'colors': [COLOURS[i % len(COLOURS)] for i in range(len(parts))] + ['BK'],
                           'wirelabels': labels}
        connections.append([{'J1': header}, {f'W{n}': list(range(1, len(header) + 1))},
                            {ref: list(range(1, len(header) + 1))}])
    _i2c_cable(board, connectors, cables, connections)
    order = sorted(range(len(j1['pins'])), key=lambda i: j1['pins'][i])
    j1['pins'] = [j1['pins'][i] for i in order]
    j1['pinlabels'] = [j1['pinlabels'][i] for i in order]
    return {'metadata': {'title': 'jafflr GPIO harness (generated from hardware/board.py)'},
            'connectors': connectors, 'cables': cables, 'connections': connections}


def _i2c_cable(board, connectors, cables, connections):
    """The I2C bus to the sensor chain: 3V3, SDA (GPIO2), SCL (GPIO3), GND."""
    header, labels = [1, 3, 5, 39], ['3V3', 'GPIO2 SDA', 'GPIO3 SCL', 'GND']
    j1 = connectors['J1']
    for pin, label in zip(header, labels):
        if pin not in j1['pins']:
            j1['pins'].append(pin)
            j1['pinlabels'].append(label)
    buses = sorted({p.bus for p in board.i2c})
    connectors['X6'] = {
        'type': f'I2C bus {", ".join(map(str, buses))} to the sensors', 'subtype': 'JST SH (Qwiic), 4 way',
        'pinlabels': ['3V3', 'SDA', 'SCL', 'GND'],
        'notes': '; '.join(f'{p.name} {p.chip} 0x{p.address:02X}'
                           + (f' mux ch {p.mux_channel}' if p.mux_channel is not None else '')
                           for p in board.i2c)}
    cables['W6'] = {'wirecount': 4, 'gauge': '0.14 mm2', 'length': 0.3,
                    'colors': ['RD', 'BU', 'YE', 'BK'], 'wirelabels': labels}
    connections.append([{'J1': header}, {'W6': [1, 2, 3, 4]}, {'X6': [1, 2, 3, 4]}])


def _polarity(part):
    pol = 'active high' if part.active_high else 'active low'
    pull = {'up': ', pull-up', 'down': ', pull-down', 'external-down': ', 10k to GND'}
    return f'{part.direction} {pol}{pull.get(part.pull, "")}'


def harness_yaml(board=BOARD):
    import yaml
    return ('# Generated by `python -m hardware.drawings` from hardware/board.py: do not edit.\n'
            + yaml.safe_dump(harness(board), sort_keys=False, width=100))


def chain_source(board=BOARD):
    """The schematic's source: every label it draws, one per line, in drawing order.
    The SVG is drawn from exactly these lines (see chain_schematic)."""
    gp = lambda name: f'GPIO{board.gpio_part(name).pin}'
    adc = board.i2c_part('element_current')

    def part(name):
        p = chain_part(name)
        return f'{p.ref} {p.kind}: {p.part_number}; {p.rating}'
    lines = [
        'mains: L 230 VAC -> F1 -> K1 pole 1 -> F2 -> F3 -> K2 -> R1 (through T1) -> K1 pole 2 -> N',
        *(part(n) for n in ('mains_fuse', 'contactor', 'thermal_fuse', 'thermostat', 'ssr',
                            'element', 'current_transformer')),
        f'gate: {gp("heater_heartbeat")} heartbeat -> U1 Q; {gp("heater_relay")} heater pin AND U1 Q '
        f'-> U2A -> K2 input; U2A output -> {gp("heater_feedback")} heater_feedback',
        *(part(n) for n in ('monostable', 'and_gate')),
        f'hold: {board.heartbeat_hold_s:.1f} s after the last heartbeat edge',
        f'e-stop: 24 V -> S1 (2 NC) -> K0 inputs; K0 13-14 -> K1 coil; K0 23-24 -> motor 24 V; '
        f'S1 3rd NC -> {gp("estop_ok")} estop_ok; K1 aux NO -> {gp("contactor_closed")} contactor_closed',
        *(part(n) for n in ('estop_button', 'safety_relay')),
        f'motors: U1 Q AND K0 output -> U2B -> EN of A1-A7; {part("motor_drivers")}',
        f'current: T1 -> rectifier -> {adc.chip} {adc.name} bus {adc.bus} 0x{adc.address:02X} AIN0',
        part('current_adc'),
    ]
    return '# Generated by `python -m hardware.drawings` from hardware/board.py: do not edit.\n' + \
        '\n'.join(lines) + '\n'


def chain_schematic(board=BOARD):
    """The safety chain drawn with schemdraw; returns the SVG text."""
    import schemdraw
    import schemdraw.elements as elm
    import schemdraw.logic as logic
    schemdraw.use('svg')
    gp = lambda name: f'GPIO{board.gpio_part(name).pin}'
    ref = lambda name: chain_part(name).ref
    small = {'fontsize': 9}
    adc = board.i2c_part('element_current')
    with schemdraw.Drawing(show=False) as d:
        d.config(fontsize=10, unit=2.2)
        # The element's mains path, left to right, and back to neutral.
        d += elm.Dot(open=True).label('L 230 VAC', 'left')
        d += elm.Fuse().right().label(f'{ref("mains_fuse")}\n10 A T')
        d += (k1a := elm.Switch().right().label(f'{ref("contactor")}\npole 1'))
        d += elm.Fuse().right().label(f'{ref("thermal_fuse")}\n240 C')
        d += elm.Switch().right().label(f'{ref("thermostat")}\n280 C man.')
        d += (ssr := elm.RBox(w=1.6, h=1).right().label(f'{ref("ssr")} SSR\nD2425'))
        d += (r1 := elm.Resistor().right().label(f'{ref("element")} 1.8 kW'))
        # The return to neutral runs above, so the drive and the CT come in from below.
        d += elm.Line().up().length(2)
        d += elm.Switch().left().label(f'{ref("contactor")} pole 2')
        d += elm.Line().left().tox(k1a.start)
        d += elm.Dot(open=True).label('N', 'left')
        d += elm.Line().at(r1.center).down().length(1.0).linestyle('--')
        d += elm.Label().at((r1.center[0] + 0.2, r1.center[1] - 1.3)).label(
            f'{ref("current_transformer")} CT 10 A:1 V on this lead', 'right', **small)
        # The heartbeat gate under the SSR.
        d += (gate := logic.And(inputs=2).at((ssr.start[0] - 2.5, ssr.start[1] - 4.5)).right()
              .label(f'{ref("and_gate")}A', 'bottom'))
        ssr_x = (ssr.start[0] + ssr.end[0]) / 2
        d += elm.Line().at(gate.out).up().toy(ssr.start[1] - 2.0)
        d += elm.Line().right().tox(ssr_x)
        d += elm.Arrow().up().toy(ssr.start[1] - 0.5).label('SSR drive', 'left', **small)
        d += elm.Dot().at(gate.out)
        d += elm.Line().at(gate.out).right().length(1.5)
        d += elm.Dot(open=True).label(f'{gp("heater_feedback")} heater_feedback\n(10k/20k)',
                                      'right', **small)
        d += elm.Line().at(gate.in1).left().length(2.5)
        d += elm.Dot(open=True).label(f'{gp("heater_relay")} heater pin', 'left', **small)
        d += (mono := elm.RBox(w=2.2, h=1).at((gate.in2[0] - 2.9, gate.in2[1] - 0.9)).right()
              .label(f'{ref("monostable")} 74HC123\n{board.heartbeat_hold_s:.1f} s hold', 'bottom'))
        d += elm.Line().at(mono.end).right().tox(gate.in2[0] - 0.4)
        d += elm.Line().up().toy(gate.in2[1])
        d += elm.Line().right().tox(gate.in2[0])
        d += elm.Line().at(mono.start).left().length(0.8)
        d += elm.Dot(open=True).label(f'{gp("heater_heartbeat")} heartbeat', 'left', **small)
        # The motors' enable: U1 Q AND the safety relay's output.
        d += (gate_b := logic.And(inputs=2).at((gate.in1[0] + 0.2, gate.in1[1] - 4.2)).right()
              .label(f'{ref("and_gate")}B', 'bottom'))
        d += elm.Line().at(mono.end).down().toy(gate_b.in1[1]).linestyle(':')
        d += elm.Line().right().tox(gate_b.in1[0])
        d += elm.Line().at(gate_b.out).right().length(1.2)
        d += elm.Dot(open=True).label(f'EN {ref("motor_drivers")}\nmotor drivers', 'right', **small)
        d += elm.Line().at(gate_b.in2).left().length(1.2)
        d += elm.Dot(open=True).label(f'{ref("safety_relay")} output\n(opto)', 'left', **small)
        # The e-stop, safety relay and contactor.
        x0, y0 = 0.0, gate_b.in2[1] - 3.5
        d += elm.Dot(open=True).at((x0, y0)).label('24 VDC', 'left')
        d += elm.Switch(nc=True).right().label(f'{ref("estop_button")} E-STOP\n2 NC to K0', **small)
        d += (k0 := elm.RBox(w=2.4, h=1.2).right().label(f'{ref("safety_relay")} PNOZ s3', **small))
        d += elm.Line().right().length(1)
        d += elm.Inductor().right().label(f'{ref("contactor")} coil', **small)
        d += elm.Line().right().length(1)
        d += elm.Dot(open=True).label('0 V', 'right')
        d += elm.Line().at(k0.center).down().length(1.5).linestyle(':')
        d += elm.Line().right().length(2.0).label('K0 23-24: motor 24 V', 'bottom', **small)
        d += elm.Dot(open=True)
        d += (aux := elm.Switch().at((k0.end[0] + 3.4, y0 - 2.6)).right().label(
            f'{ref("contactor")} aux NO', 'bottom', **small))
        d += elm.Ground().at(aux.start)
        d += elm.Dot(open=True).label(f'{gp("contactor_closed")} contactor_closed', 'right', **small)
        d += (nc3 := elm.Switch(nc=True).at((x0 + 1.0, y0 - 2.6)).right().label(
            f'{ref("estop_button")} 3rd NC', 'bottom', **small))
        d += elm.Ground().at(nc3.start)
        d += elm.Dot(open=True).label(f'{gp("estop_ok")} estop_ok', 'right', **small)
        d += elm.Label().at((x0, y0 - 4.6)).label(
            f'current sense: {ref("current_transformer")} -> rectifier -> {ref("current_adc")} '
            f'{adc.chip} bus {adc.bus} 0x{adc.address:02X} AIN0', 'right', **small)
        return d.get_imagedata('svg').decode()


BOM_START, BOM_END = '<!-- bom: generated by python -m hardware.drawings -->', '<!-- bom: end -->'
# The chips on the I2C bus, for the bill of materials (what the board names as `chip`).
CHIPS = {
    'MCP9600': ('Microchip MCP9600 breakout (e.g. Adafruit 4101)', 'type K, -200..1372 C, I2C 0x60-0x67'),
    'MCP9808': ('Microchip MCP9808 breakout (e.g. Adafruit 1782)', '+/-0.25 C typ., I2C 0x18-0x1F'),
    'TCA9548A': ('TI TCA9548A breakout (e.g. Adafruit 2717)', '8 channels, I2C 0x70-0x77'),
    'NAU7802': ('Nuvoton NAU7802 breakout (e.g. SparkFun Qwiic Scale)', '24 bit, gain 128, I2C 0x2A'),
    'ADS1115': ('TI ADS1115 breakout (e.g. Adafruit 1085)', '16 bit, +/-2.048 V, I2C 0x48-0x4B'),
}


def bom_markdown(board=BOARD):
    """The bill of materials' generated part: the safety chain and the I2C chips."""
    rows = ['| ref | part | example part number | rating | what it does |', '|---|---|---|---|---|']
    for p in board.chain:
        does = p.opens or p.note or 'measures'
        if p.read_by:
            does += f'; read by `{p.read_by}`'
        rows.append(f'| {p.ref} | {p.kind} | {p.part_number} | {p.rating} | {does} |')
    counts = {}
    for p in board.i2c:
        counts.setdefault(p.chip, []).append(p)
    for chip, parts in counts.items():
        number, rating = CHIPS.get(chip, (chip, ''))
        where = ', '.join(f'`{p.name}` 0x{p.address:02X}' + (f' ch {p.mux_channel}'
                          if p.mux_channel is not None else '') for p in parts)
        rows.append(f'| {len(parts)} x | {chip} | {number} | {rating} | {where} |')
    return '\n'.join([BOM_START, *rows, BOM_END])


def update_bom(path, board=BOARD):
    """Replace the generated block of the bill of materials at `path`."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    start, end = text.index(BOM_START), text.index(BOM_END) + len(BOM_END)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text[:start] + bom_markdown(board) + text[end:])
    return path


def write(out_dir, board=BOARD):
    """Write the four files; returns their paths."""
    from wireviz.wireviz import parse
    os.makedirs(out_dir, exist_ok=True)
    paths = []

    def put(name, text):
        path = os.path.join(out_dir, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        paths.append(path)
    source = harness_yaml(board)
    put('harness.yml', source)
    svg = parse(source, return_types='svg')
    put('harness.svg', svg if isinstance(svg, str) else svg.decode())
    put('safety-chain.txt', chain_source(board))
    put('safety-chain.svg', chain_schematic(board))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m hardware.drawings',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='docs/drawings')
    parser.add_argument('--bom', default='docs/bom.md',
                        help='the bill of materials whose generated block to refresh')
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f'wrote {path}')
    if os.path.exists(args.bom):
        print(f'refreshed {update_bom(args.bom)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
