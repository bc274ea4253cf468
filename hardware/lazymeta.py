"""gpiozero without importlib.metadata until a pin factory is looked up by name.

gpiozero imports `entry_points` at import time, from the `importlib_metadata` backport if
there is one, else from the standard library's `importlib.metadata`, which brings zipfile,
csv, email and more: 1.1 MB of the plate process's 26 MB and 0.6 MB of each service's, on
a board whose budget is 40 MB a service (bench/README.md). Every service hands its pin
factory in (hardware/platform.py), so gpiozero calls `entry_points` only for a factory
named in GPIOZERO_PIN_FACTORY. `install()` puts a stand-in for the backport in
sys.modules, before gpiozero is imported, whose `entry_points` (and any other name) loads
the real one on first use.
"""
import sys
import types


def _entry_points(**params):
    import importlib.metadata
    return importlib.metadata.entry_points(**params)


def _getattr(name):
    if name.startswith('__'):       # the import system's questions (__path__, ...)
        raise AttributeError(name)
    import importlib.metadata
    return getattr(importlib.metadata, name)


def install():
    """Once, before the first `import gpiozero`; a real backport, if installed, is kept."""
    if 'importlib_metadata' in sys.modules or 'gpiozero' in sys.modules:
        return
    try:
        import importlib.util
        if importlib.util.find_spec('importlib_metadata') is not None:
            return
    except (ImportError, ValueError):
        pass
    stand_in = types.ModuleType('importlib_metadata', 'importlib.metadata, loaded when used')
    stand_in.entry_points = _entry_points
    stand_in.__getattr__ = _getattr
    sys.modules['importlib_metadata'] = stand_in
