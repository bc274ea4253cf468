"""A wheelhouse for the Pi's platform, with hashes, so a Pi installs with no package index.

    python deploy/build_wheelhouse.py --requirements requirements.txt --arch aarch64 [--out dist]

Runs on the controller (the playbook runs it once per architecture in the fleet). Downloads
binary wheels for CPython 3.11 (Raspberry Pi OS bookworm) on `--arch`, and writes
`requirements.lock`: every wheel pinned with its sha256, for
`pip install --no-index --find-links DIR --require-hashes -r DIR/requirements.lock`.
Prints one JSON line: {"wheelhouse", "arch", "wheels"}.

`pip download --platform` evaluates environment markers against the machine it runs on, so
on an x86 controller `lgpio ...; platform_machine == "aarch64"` would be skipped: the
markers are evaluated here, against the Pi, and the requirements passed without them.
"""
import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

PLATFORMS = {'aarch64': 'manylinux_2_34_aarch64', 'x86_64': 'manylinux_2_34_x86_64'}
PYTHON = '3.11'       # Debian 12 / Raspberry Pi OS bookworm


class WheelhouseError(RuntimeError):
    """The wheelhouse could not be built for that platform."""


def target_environment(arch):
    """Marker environment of a Pi running bookworm's CPython 3.11 on `arch`."""
    env = default_environment()
    env.update(platform_machine=arch, sys_platform='linux', platform_system='Linux',
               os_name='posix', python_version=PYTHON, python_full_version=PYTHON + '.2',
               implementation_name='cpython', platform_python_implementation='CPython')
    return env


def requirements_for(path, arch):
    """The requirements of `path` that apply on `arch`, without their markers."""
    env = target_environment(arch)
    wanted = []
    with open(path) as f:
        for raw in f:
            line = raw.split('#', 1)[0].strip()
            if not line:
                continue
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(env):
                wanted.append(f'{req.name}{req.specifier}')
    return wanted


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def lock_lines(folder):
    lines = []
    for name in sorted(os.listdir(folder)):
        if name.endswith('.whl'):
            project, version, _, _ = parse_wheel_filename(name)
            lines.append(f'{canonicalize_name(project)}=={version} '
                         f'--hash=sha256:{sha256(os.path.join(folder, name))}')
    return lines


def build(requirements, arch, out_dir, pip=(sys.executable, '-m', 'pip')):
    """Path of the wheelhouse for these requirements on `arch`, built when missing."""
    if arch not in PLATFORMS:
        raise WheelhouseError(f'no wheels for {arch!r}: the Pi must run 64-bit Raspberry Pi OS '
                              f'({", ".join(PLATFORMS)})')
    wanted = requirements_for(requirements, arch)
    key = hashlib.sha256(json.dumps([arch, PYTHON, sorted(wanted)]).encode()).hexdigest()[:12]
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.abspath(os.path.join(out_dir, f'wheelhouse-{arch}-{key}'))
    with open(os.path.join(out_dir, '.wheelhouse.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # Pis deployed in parallel share one build
        if not os.path.exists(os.path.join(final, 'requirements.lock')):
            work = tempfile.mkdtemp(prefix='.wheelhouse-', dir=out_dir)
            try:
                out = subprocess.run(
                    [*pip, 'download', '--quiet', '--disable-pip-version-check', '--dest', work,
                     '--only-binary=:all:', '--platform', PLATFORMS[arch], '--python-version',
                     PYTHON, '--implementation', 'cp', *wanted],
                    capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    raise WheelhouseError(f'pip download for {arch} failed:\n{out.stderr[-3000:]}')
                with open(os.path.join(work, 'requirements.lock'), 'w') as f:
                    f.write(f'# {arch}, CPython {PYTHON}: {" ".join(wanted)}\n')
                    f.write('\n'.join(lock_lines(work)) + '\n')
                shutil.rmtree(final, ignore_errors=True)
                os.rename(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    wheels = [n for n in os.listdir(final) if n.endswith('.whl')]
    return {'wheelhouse': final, 'arch': arch, 'wheels': len(wheels)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python deploy/build_wheelhouse.py',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--requirements', required=True)
    parser.add_argument('--arch', required=True, help='the Pi\'s machine: aarch64 (or x86_64)')
    parser.add_argument('--out', default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), 'dist'))
    args = parser.parse_args(argv)
    try:
        print(json.dumps(build(args.requirements, args.arch, args.out)))
    except WheelhouseError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
