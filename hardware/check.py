"""Commissioning: open every part of the machine and print what each one says.

    python -m hardware.check            # the machine JAFFLR_MACHINE chooses (auto)
    python -m hardware.check --machine sim
    python -m hardware.check --safety   # prove the safety chain (heater on ~3 s; a person
                                        # presses the e-stop, opens the lid, presses reset)
    python -m hardware.check --safety --yes --machine sim   # the simulator's hands do it

Each part is opened on its own, so one missing part does not hide the others. Outputs
are opened and left off; nothing moves and nothing heats. Run it with the services
stopped on a Pi (they hold the GPIO lines). Exit status 1 when any part failed.

Opening a GPIO line proves only that the line could be claimed: the plain check marks
those rows "not checked" (inputs show what they read). The SSR feedback is the exception:
with the heater pin low it must read low. `--safety` proves the rest (check_safety.py).
"""
import argparse
import sys
import time

from .board import BOARD, element_amps
from .errors import HardwareError
from .i2c import ADS1115, MCP9600, MCP9808, NAU7802, TCA9548A
from .platform import open_platform


def _i2c_rows(platform, board):
    rows = []
    mux = None
    sleep = platform.clock.sleep
    for part in board.i2c:
        where = f'bus {part.bus} 0x{part.address:02X}' + (
            f' ch {part.mux_channel}' if part.mux_channel is not None else '')
        try:
            if part.chip == 'MCP9600':
                dev = MCP9600(platform.bus, part.address, name=part.name, sleep=sleep)
                reading = f'{dev.wait_for_hot_junction_c():.2f} C (cold junction {dev.cold_junction_c:.2f} C)'
            elif part.chip == 'MCP9808':
                dev = MCP9808(platform.bus, part.address, name=part.name, sleep=sleep)
                reading = f'{dev.temperature_c:.2f} C'
            elif part.chip == 'ADS1115':
                dev = ADS1115(platform.bus, part.address, name=part.name, sleep=sleep)
                volts = dev.volts
                reading = f'{volts:.4f} V = {element_amps(volts):.2f} A in the element'
            elif part.chip == 'TCA9548A':
                dev = mux = TCA9548A(platform.bus, part.address, name=part.name, sleep=sleep)
                reading = 'all channels off'
            elif part.chip == 'NAU7802':
                if mux is None:
                    raise HardwareError('the mux did not open, so the channel cannot be reached')
                dev = NAU7802(mux.channel(part.mux_channel), part.address, name=part.name,
                              sleep=sleep, monotonic=platform.clock.monotonic)
                reading = f'{dev.raw_counts} counts'
            else:
                raise HardwareError(f'no driver for {part.chip}')
            rows.append((part.name, f'{part.chip} {where}', dev.identity, reading, 'OK'))
        except (HardwareError, OSError) as exc:
            rows.append((part.name, f'{part.chip} {where}', '-', '-', f'FAIL: {exc}'))
    return rows


NOT_CHECKED = 'not checked (--safety)'


def _gpio_rows(platform, board):
    from gpiozero import DigitalInputDevice, DigitalOutputDevice
    rows = []
    for part in board.gpio:
        try:
            result = NOT_CHECKED
            if part.direction == 'out':
                dev = DigitalOutputDevice(part.pin, pin_factory=platform.pin_factory)
                reading = 'driven off'
            else:
                dev = DigitalInputDevice(part.pin, pull_up=part.pull == 'up',
                                         pin_factory=platform.pin_factory)
                reading = 'active' if dev.is_active else 'inactive'
                if part.name == 'heater_feedback':
                    # Every output is off, so the SSR drive after the gate must be low.
                    result = 'OK' if not dev.is_active else (
                        'FAIL: the SSR drive reads high with the heater pin off: the gate '
                        'output or the feedback line is stuck high')
            dev.close()
            rows.append((part.name, f'GPIO{part.pin} {part.direction}', 'gpio line', reading,
                         result))
        except Exception as exc:   # gpiozero raises many kinds; every one is a failed part
            rows.append((part.name, f'GPIO{part.pin} {part.direction}', '-', '-',
                         f'FAIL: {type(exc).__name__}: {exc}'))
    return rows


def format_table(rows):
    header = ('part', 'address / pin', 'identity', 'reading', 'result')
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(5)]
    line = lambda r: '  '.join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return '\n'.join([line(header), line(['-' * w for w in widths]), *map(line, rows)])


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m hardware.check', description=__doc__.split('\n')[0])
    parser.add_argument('--machine', choices=('auto', 'pi', 'sim'), default=None)
    parser.add_argument('--sim-socket', default=None)
    parser.add_argument('--safety', action='store_true',
                        help='prove the safety chain: heartbeat gate, feedback, current sense, '
                             'e-stop, lid and reset inputs (a person acts on the machine)')
    parser.add_argument('--yes', action='store_true',
                        help='with --safety on the simulator: let it press the buttons')
    args = parser.parse_args(argv)
    if args.yes and not args.safety:
        parser.error('--yes only goes with --safety')
    started = time.monotonic()
    try:
        platform = open_platform(args.machine, args.sim_socket)
    except HardwareError as exc:
        print(f'cannot open the machine: {exc}', file=sys.stderr)
        return 2
    if args.safety:
        return _safety(platform, args.yes, started)
    try:
        rows = _i2c_rows(platform, BOARD) + _gpio_rows(platform, BOARD)
    finally:
        platform.close()
    print(f'machine: {platform.mode}')
    print(format_table(rows))
    ok = sum(1 for r in rows if r[4] == 'OK')
    unchecked = sum(1 for r in rows if r[4] == NOT_CHECKED)
    failed = len(rows) - ok - unchecked
    print(f'{ok} of {len(rows)} parts OK, {failed} failed, {unchecked} opened but not checked '
          f'(python -m hardware.check --safety proves those) ({time.monotonic() - started:.2f} s)')
    return 1 if failed else 0


def _safety(platform, yes, started):
    from .check_safety import run_safety_check
    print(f'machine: {platform.mode}; safety chain check (the heater comes on for about 3 s)',
          flush=True)
    try:
        steps, passed = run_safety_check(platform, yes=yes)
    except HardwareError as exc:
        print(f'safety check: {exc}', file=sys.stderr)
        return 2
    finally:
        platform.close()
    failed = [s for s in steps if s.failed]
    skipped = [s for s in steps if s.result.startswith('SKIP')]
    print(f'safety chain: {"PASSED" if passed else "FAILED"}: {len(steps) - len(failed) - len(skipped)} '
          f'of {len(steps)} steps OK, {len(failed)} failed, {len(skipped)} skipped '
          f'({time.monotonic() - started:.2f} s)')
    for step in failed:
        print(f'  {step.part}: {step.what}: {step.result[6:]}')
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
