"""The layers, read from the source: who may import whom, and where jafflr is put together.

hardware/ imports nothing else of ours; firmware/ imports neither hardware/ nor api/;
inprocess/ (the whole machine in one process) builds from those two and never from api/;
the firmware tests import nothing of api/; the bench imports nothing of tests/, and
no test but the bench's own imports the bench. And the
machine's parts are constructed in one place, firmware/build.py, whoever runs them.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = ('hardware', 'firmware', 'api', 'inprocess', 'bench', 'tests')
# The parts every composition root gets from firmware/build.py, never builds itself.
PARTS = ('Shutdown', 'PlateController', 'ChainMonitor', 'DeadMan', 'OrderBook', 'Tray',
         'Assembler', 'PressStation', 'Kitchen', 'ResetButton')
NOT_ALLOWED = {
    'hardware': ('firmware', 'api', 'inprocess', 'bench', 'tests'),
    'firmware': ('hardware', 'api', 'inprocess', 'bench', 'tests'),
    # api/ ships (deploy/build_release.py SHIPPED); inprocess/, bench/ and tests/ do not.
    'api': ('inprocess', 'bench', 'tests'),
    'inprocess': ('api', 'bench', 'tests'),
    os.path.join('tests', 'firmware'): ('api', 'bench'),
    'bench': ('tests',),
}


def sources(folder):
    for base, dirs, files in os.walk(os.path.join(ROOT, folder)):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(base, name)
                with open(path, encoding='utf-8') as f:
                    yield os.path.relpath(path, ROOT), ast.parse(f.read(), path)


def our_imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split('.')[0] in OURS:
                yield name.split('.')[0], node.lineno


@pytest.mark.parametrize('folder', sorted(NOT_ALLOWED))
def test_layers_each_folder_imports_only_what_is_below_it(folder):
    wrong = [f'{path}:{line} imports {top}' for path, tree in sources(folder)
             for top, line in our_imports(tree) if top in NOT_ALLOWED[folder]]
    assert wrong == []


def test_layers_only_the_benchmarks_own_tests_import_the_bench():
    """Tests and benchmarks share inprocess/ and api/launcher.py, never each other."""
    wrong = [f'{path}:{line} imports bench' for path, tree in sources('tests')
             if not path.startswith(os.path.join('tests', 'bench') + os.sep)
             for top, line in our_imports(tree) if top == 'bench']
    assert wrong == []


def test_layers_the_machines_parts_are_constructed_only_by_the_builder():
    built = []
    for folder in ('api', 'inprocess', 'bench', 'firmware'):
        for path, tree in sources(folder):
            if path == os.path.join('firmware', 'build.py'):
                continue
            built += [f'{path}:{node.lineno} {node.func.id}()' for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                      and node.func.id in PARTS]
    # The plate rig (inprocess/plate.py) has a bare Shutdown of its own (no store to save it to).
    assert built == [os.path.join('inprocess', 'plate.py') + f':{rig_shutdown_line()} Shutdown()']


def rig_shutdown_line():
    with open(os.path.join(ROOT, 'inprocess', 'plate.py'), encoding='utf-8') as f:
        return next(i for i, line in enumerate(f, 1) if 'Shutdown()' in line)
