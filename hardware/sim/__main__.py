"""The simulated machine's command line.

    python -m hardware.sim serve [--socket PATH] [--speed X] [--seed N] [--plate-c C]
    python -m hardware.sim status
    python -m hardware.sim faults
    python -m hardware.sim fault NAME on|off
    python -m hardware.sim nack PART RATE
    python -m hardware.sim fill BAY UNITS [INGREDIENT]
    python -m hardware.sim button reset [--hold S]
    python -m hardware.sim hand INPUT active|inactive|release
    python -m hardware.sim reset-thermostat
"""
import argparse
import json
import logging
import sys

from ..errors import SimulatorUnavailable
from .protocol import default_socket_path
from .world import BUTTONS, FAULTS


def _format_status(s):
    lines = [
        f"time {s['time_s']:.1f} s   plate {s['plate_c']:.1f} C (probe {s['plate_probe_c']:.1f})   "
        f"bin {s['bin_c']:.2f} C",
        f"relay {'CLOSED' if s['relay_closed'] else 'open'}   heater pin "
        f"{'high' if s['heater_pin'] else 'low'}   heartbeat age {s['heartbeat_age_s']} s   "
        f"chiller {'on' if s['chiller_on'] else 'off'}",
        f"SSR drive feedback {'high' if s['feedback'] else 'low'}   contactor "
        f"{'closed' if s['contactor_closed'] else 'OPEN'}   motor enable "
        f"{'on' if s['motor_enable'] else 'off'}   element {s['element_a']:.2f} A"
        f"{'   THERMOSTAT OPEN' if s['thermostat_open'] else ''}",
        f"press position {s['press_position']:.2f} (0 open, 1 closed), holds {s['press_sandwich']}",
        f"tray {s['tray']}{'  BLOCKED' if s['tray_blocked'] else ''}   delivered {s['delivered']}",
    ]
    for b in s['bays']:
        lines.append(f"  bay {b['bay']} {str(b['ingredient']):9} {b['units']:3d} units "
                     f"{b['grams']:7.1f} g  dispenser {'on' if b['dispenser_on'] else 'off'}")
    lines.append(f"faults: {', '.join(s['faults']) or 'none'}   buttons held: "
                 f"{', '.join(s['buttons_held']) or 'none'}")
    if s['nack_rates']:
        lines.append(f"NACK rates: {s['nack_rates']}")
    lines += [f'  {e}' for e in s['events']]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m hardware.sim')
    parser.add_argument('--socket', default=None, help='serve: $JAFFLR_SIM_SOCKET, else '
                        '$XDG_RUNTIME_DIR/jafflr-sim.sock, else /tmp/jafflr-sim.sock; the '
                        'other commands: $JAFFLR_SIM_SOCKET, else the first that answers of '
                        "this checkout's .run/sim.sock (make run's) and serve's default")
    sub = parser.add_subparsers(dest='command', required=True)
    serve = sub.add_parser('serve', help='run the simulated machine')
    serve.add_argument('--speed', type=float, default=1.0, help='time runs this many times fast')
    serve.add_argument('--seed', type=int, default=1)
    serve.add_argument('--plate-c', type=float, default=None,
                       help='start with the plate at this temperature (default: the kitchen\'s)')
    sub.add_parser('status', help="print the world's state")
    status_json = sub.add_parser('status-json', help='the same, as JSON')
    sub.add_parser('faults', help='list the faults that can be switched')
    fault = sub.add_parser('fault', help='switch a fault on or off')
    fault.add_argument('name')
    fault.add_argument('state', choices=('on', 'off'))
    nack = sub.add_parser('nack', help='make an I2C part drop transfers at a rate (0-1)')
    nack.add_argument('part')
    nack.add_argument('rate', type=float)
    fill = sub.add_parser('fill', help='fill a bay (number or ingredient) with units')
    fill.add_argument('bay')
    fill.add_argument('units', type=int)
    fill.add_argument('ingredient', nargs='?', default=None, help='put this ingredient in the bay')
    button = sub.add_parser('button', help='a person holds a button on the machine')
    button.add_argument('name', choices=sorted(BUTTONS))
    button.add_argument('--hold', type=float, default=3.0,
                        help='seconds (simulated) before letting go; jafflr counts a reset '
                             'hold from 2 s (default 3)')
    hand = sub.add_parser('hand', help='hold an input (button, switch) by hand, or let go')
    hand.add_argument('input')
    hand.add_argument('state', choices=('active', 'inactive', 'release'))
    sub.add_parser('reset-thermostat', help="press the manual-reset thermostat's button")
    args = parser.parse_args(argv)

    if args.command == 'faults':
        for name, what in FAULTS.items():
            print(f'{name:22} {what}')
        return 0
    if args.command == 'serve':
        from .server import serve, shutdown_on_signals
        logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
        serve(args.socket or default_socket_path(), speed=args.speed, seed=args.seed,
              ready=shutdown_on_signals, plate_c=args.plate_c)
        return 0

    from .link import connect
    try:
        link = connect(args.socket)
    except SimulatorUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.command == 'status':
            print(_format_status(link.status()))
        elif args.command == 'status-json':
            print(json.dumps(link.status(), indent=2))
        elif args.command == 'fault':
            print(f'{link.set_fault(args.name, args.state == "on")} {args.state}')
        elif args.command == 'nack':
            link.set_nack_rate(args.part, args.rate)
            print(f'{args.part} drops {args.rate:.1%} of transfers')
        elif args.command == 'button':
            link.hold_button(args.name, args.hold)
            print(f'{args.name} button held for {args.hold:g} s (simulated)')
        elif args.command == 'hand':
            link.hand(args.input, {'active': True, 'inactive': False}.get(args.state))
            print(f'{args.input} {args.state}')
        elif args.command == 'reset-thermostat':
            print('thermostat closed' if link.reset_thermostat() else
                  'thermostat still open: the plate is too hot to reset it')
        elif args.command == 'fill':
            link.fill(args.bay, args.units, args.ingredient)
            print(f'bay {args.bay} filled with {args.units} {args.ingredient or ""}'.rstrip())
    except ValueError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    finally:
        link.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
