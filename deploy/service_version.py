"""Which commit a service is at: the last commit that touched anything the service runs.

    python deploy/service_version.py chillybin            # prints a commit id
    python deploy/service_version.py jafflr --files       # prints the files it depends on
    python deploy/service_version.py --all                # {"chillybin": ..., "jafflr": ...}

A service's files are its module closure: every file under api/<service>/, then every
module of ours (api, firmware, hardware) those files import, followed transitively,
including imports inside functions, found by parsing with `ast` (nothing is imported or
run); plus the packages' __init__.py files, data files beside the imported modules and in
their sub-folders that are not packages (api/jafflr/panel/*), requirements.txt, and the
service's systemd units. A process deployed as part of a service (`PARTS`: jafflr's plate,
api/plate with systemd/jafflr-plate.service) counts as the service: it runs the same
release and is restarted with it, so a change to the plate moves jafflr's version. Its
version is
`git log -1 --format=%H -- <those files>`, so a commit that changes only chillybin's
code changes chillybin's version and not jafflr's.
"""
import argparse
import ast
import json
import os
import subprocess
import sys

SERVICES = ('chillybin', 'jafflr')
OUR_PACKAGES = ('api', 'firmware', 'hardware')
ALWAYS = ('requirements.txt', 'systemd/simulated-machine.conf')
NOT_CODE = ('.md', '.pyc')
# Processes of a service, as (folder under api/, unit name): the deploy restarts them with it.
PARTS = {'jafflr': (('plate', 'jafflr-plate'),)}


def _module_file(tree, module):
    """The file that defines dotted `module` in `tree`, or None if there is none."""
    base = os.path.join(tree, *module.split('.'))
    for candidate in (base + '.py', os.path.join(base, '__init__.py')):
        if os.path.isfile(candidate):
            return candidate
    return None


def _package_of(tree, path):
    """Dotted package that `path` (a .py file in tree) belongs to."""
    return os.path.relpath(path, tree).split(os.sep)[:-1]


def _imported_modules(tree, path):
    """Every dotted module name `path` may import, absolute, relative ones resolved."""
    with open(path, 'rb') as f:
        syntax = ast.parse(f.read(), filename=path)
    package = _package_of(tree, path)
    for node in ast.walk(syntax):   # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                keep = len(package) - (node.level - 1)
                base = package[:keep] if keep >= 0 else []
                stem = '.'.join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            if not stem:
                continue
            yield stem
            for alias in node.names:   # `from pkg import mod` may name a submodule
                yield f'{stem}.{alias.name}'


def _with_parents(module):
    parts = module.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts) + 1)]


def module_closure(tree, service):
    """Sorted paths, relative to tree, of the Python files `service` can run."""
    start = os.path.join(tree, 'api', service)
    if not os.path.isdir(start):
        raise SystemExit(f'no such service: {start} does not exist')
    todo = [os.path.join(d, f) for d, _, fs in os.walk(start) for f in fs if f.endswith('.py')]
    todo += [_module_file(tree, 'api')] if _module_file(tree, 'api') else []
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imported_modules(tree, path):
            if module.split('.')[0] not in OUR_PACKAGES:
                continue
            for name in _with_parents(module):
                found = _module_file(tree, name)
                if found and found not in seen:
                    todo.append(found)
    return sorted(os.path.relpath(p, tree) for p in seen)


def _data_files(tree, folder):
    """Files of `folder` (relative to tree) that are not Python modules, and every file of
    its sub-folders that are not packages of their own (no __init__.py): a module's page,
    templates or schemas, however deep. Packages are code: they count when imported."""
    found = []
    for name in sorted(os.listdir(os.path.join(tree, folder))):
        path = os.path.join(folder, name)
        full = os.path.join(tree, path)
        if os.path.isdir(full):
            if name != '__pycache__' and not os.path.exists(os.path.join(full, '__init__.py')):
                found += [os.path.relpath(os.path.join(d, f), tree)
                          for d, subs, fs in os.walk(full)
                          for f in fs if not f.endswith(NOT_CODE) and '__pycache__' not in d]
        elif not name.endswith(NOT_CODE) and not name.endswith('.py'):
            found.append(path)
    return found


def service_files(tree, service):
    """The module closure, data files beside it and under it (sub-folders too), the
    requirements and the service's units."""
    parts = [(service, service)] + [p for p in PARTS.get(service, ())
                                    if os.path.isdir(os.path.join(tree, 'api', p[0]))]
    code = sorted({f for folder, _ in parts for f in module_closure(tree, folder)})
    files = set(code)
    for folder in {os.path.dirname(p) for p in code}:
        files.update(_data_files(tree, folder))
    units = [f'systemd/{unit}.{kind}' for _, unit in parts for kind in ('service', 'socket')]
    for path in (*ALWAYS, *units):
        if os.path.exists(os.path.join(tree, path)):
            files.add(path)
    return sorted(files)


def last_commit(repo, files, ref='HEAD'):
    out = subprocess.run(['git', '-C', repo, 'log', '-1', '--format=%H', ref, '--', *files],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def service_version(repo, service, ref='HEAD', tree=None):
    """Commit id of `service` at `ref`; `tree` is that ref's files (default: the work tree)."""
    return last_commit(repo, service_files(tree or repo, service), ref)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python deploy/service_version.py',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('service', nargs='?', choices=SERVICES)
    parser.add_argument('--all', action='store_true', help='every service, as JSON')
    parser.add_argument('--files', action='store_true', help="print the service's files")
    parser.add_argument('--repo', default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args = parser.parse_args(argv)
    if args.all:
        print(json.dumps({s: service_version(args.repo, s) for s in SERVICES}))
    elif not args.service:
        parser.error('name a service, or --all')
    elif args.files:
        print('\n'.join(service_files(args.repo, args.service)))
    else:
        print(service_version(args.repo, args.service))
    return 0


if __name__ == '__main__':
    sys.exit(main())
