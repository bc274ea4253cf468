"""Build a release archive from a git ref: the code the Pi runs, plus VERSIONS.json.

    python deploy/build_release.py [--ref HEAD] [--version NAME] [--out dist]

Prints one JSON line: {"release", "chillybin", "jafflr", "content", "drain_s", "archive",
"requirements", "commit"}.
The archive holds the tracked files the services need at that ref (not the work tree, so
uncommitted edits are never shipped) and VERSIONS.json with each service's version from
service_version.py and the release's drain bound (drain_s).
The playbook runs this on the controller; it is also handy by hand.
"""
import argparse
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from service_version import SERVICES, last_commit, service_files  # noqa: E402

SHIPPED = ('api', 'firmware', 'hardware', 'systemd', 'requirements.txt', 'README.md')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _git(repo, *args, binary=False):
    out = subprocess.run(['git', '-C', repo, *args], capture_output=True, check=True)
    return out.stdout if binary else out.stdout.decode().strip()


class UnsafeArchive(ValueError):
    """An archive member would land outside the tree, or is not a file, folder or link."""


def check_member(member, into):
    """Refuse what tarfile's 'data' filter refuses: absolute names, `..`, links that point
    out of the tree, devices and fifos. `into` is the folder being extracted into."""
    root = os.path.realpath(into)
    name = member.name
    if name.startswith('/') or os.path.isabs(name) or '..' in name.split('/'):
        raise UnsafeArchive(f'archive member {name!r}: absolute or `..` names are not allowed')
    target = os.path.realpath(os.path.join(root, name))
    if target != root and not target.startswith(root + os.sep):
        raise UnsafeArchive(f'archive member {name!r} would land outside {root}')
    if member.issym() or member.islnk():
        link = member.linkname
        base = os.path.dirname(target) if member.issym() else root
        pointed = os.path.realpath(os.path.join(base, link))
        if os.path.isabs(link) or (pointed != root and not pointed.startswith(root + os.sep)):
            raise UnsafeArchive(f'archive member {name!r} links to {link!r}, outside the tree')
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchive(f'archive member {name!r} is a device or fifo: only files, '
                            f'folders and links inside the tree are allowed')


def safe_extract(tar, into):
    """Check every member (check_member), then extract with tarfile's 'data' filter where
    it has one (3.11.4+, 3.12); Debian 12's Python 3.11.2 has no `filter=`, so there the
    owners and modes from the archive are reset by hand instead."""
    members = tar.getmembers()
    for member in members:
        check_member(member, into)
    if hasattr(tarfile, 'data_filter'):
        try:
            tar.extractall(into, filter='data')
        except tarfile.FilterError as exc:
            raise UnsafeArchive(str(exc)) from None
        return
    for member in members:
        member.uid = member.gid = 0
        member.uname = member.gname = ''
        if member.isfile():
            member.mode = (member.mode | 0o600) & 0o755
        elif member.isdir():
            member.mode = 0o755
    tar.extractall(into, members=members)


def drain_seconds(tree):
    """How long (clock seconds, rounded up) a paused machine running this release may take
    to empty: firmware.kitchen.drain_bound_s() of the release's own profiles. The deploy
    waits that long before it restarts anything. None for a release too old to say."""
    code = 'from firmware.kitchen import drain_bound_s; print(drain_bound_s())'
    out = subprocess.run([sys.executable, '-I', '-B', '-c', f'import sys; sys.path.insert(0, "."); {code}'],
                         cwd=tree, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        if out.stderr.rstrip().rsplit('\n', 1)[-1].startswith(('ImportError', 'ModuleNotFoundError')):
            return None
        raise SystemExit(f'cannot read the drain bound of the release: {out.stderr[-2000:]}')
    return math.ceil(float(out.stdout))


def content_hash(tree):
    """sha256 of every file's path, kind (file, executable, link) and bytes: two builds
    ship the same code exactly when their hashes match."""
    digest = hashlib.sha256()
    for folder, subs, files in os.walk(tree):
        subs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, tree)
            if rel == 'VERSIONS.json':
                continue
            if os.path.islink(path):
                body, kind = os.readlink(path).encode(), b'L'
            else:
                with open(path, 'rb') as f:
                    body = f.read()
                kind = b'X' if os.access(path, os.X_OK) else b'F'
            digest.update(b'%s\0%s%d\0' % (rel.encode(), kind, len(body)) + body)
    return 'sha256:' + digest.hexdigest()


def refuse_reused_name(archive, versions):
    """A release name names one content: building it again from other code is refused
    (the Pis refuse it too, when they already have the name installed)."""
    try:
        with tarfile.open(archive) as tar:
            before = json.load(tar.extractfile('VERSIONS.json'))
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return
    if before.get('content') not in (None, versions['content']):
        raise SystemExit(f'release name {versions["release"]!r} was already built from other '
                         f'code ({archive}: {before["content"]}, now {versions["content"]}): '
                         f'give this build a new name (--version / -e release_version=)')


def default_version(repo, ref):
    return _git(repo, 'describe', '--tags', '--always', ref)


def build(repo, ref, version, out_dir):
    commit = _git(repo, 'rev-parse', '--verify', f'{ref}^{{commit}}')
    version = version or default_version(repo, commit)
    if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._+-]*', version):
        raise SystemExit(f'release name {version!r} must be letters, digits and . _ + -')
    present = set(_git(repo, 'ls-tree', '--name-only', commit).split('\n'))
    paths = [p for p in SHIPPED if p in present]
    tar_bytes = _git(repo, 'archive', '--format=tar', commit, '--', *paths, binary=True)
    with tempfile.TemporaryDirectory() as tree:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            safe_extract(tar, tree)
        versions = {'release': version}
        for service in SERVICES:
            versions[service] = last_commit(repo, service_files(tree, service), commit)
        versions['content'] = content_hash(tree)
        versions['drain_s'] = drain_seconds(tree)
        os.makedirs(out_dir, exist_ok=True)
        archive = os.path.abspath(os.path.join(out_dir, f'jafflr-{version}.tar.gz'))
        refuse_reused_name(archive, versions)
        with open(os.path.join(tree, 'VERSIONS.json'), 'w') as f:
            json.dump(versions, f, indent=2)
            f.write('\n')
        with tarfile.open(archive + '.part', 'w:gz') as tar:
            for name in sorted(os.listdir(tree)):
                tar.add(os.path.join(tree, name), arcname=name)
        os.replace(archive + '.part', archive)
        # The wheelhouse for each Pi's platform is built from this (build_wheelhouse.py).
        requirements = archive[:-len('.tar.gz')] + '.requirements.txt'
        shutil.copyfile(os.path.join(tree, 'requirements.txt'), requirements)
    return dict(versions, archive=archive, requirements=requirements, commit=commit)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python deploy/build_release.py',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--repo', default=REPO)
    parser.add_argument('--ref', default='HEAD')
    parser.add_argument('--version', default=None, help='release name (default: git describe)')
    parser.add_argument('--out', default=os.path.join(REPO, 'dist'))
    args = parser.parse_args(argv)
    print(json.dumps(build(args.repo, args.ref, args.version, args.out)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
