"""hardware/lazymeta.py: gpiozero imported without importlib.metadata, and a pin factory
named in GPIOZERO_PIN_FACTORY still found through it. In fresh interpreters."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(code):
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={**os.environ, 'PYTHONPATH': ROOT})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_every_service_imports_gpiozero_without_importlib_metadata():
    for module in ('hardware.machine', 'api.plate.service', 'api.jafflr.service',
                   'api.chillybin.service'):
        loaded = run(f'import sys, {module}; print("gpiozero" in sys.modules, '
                     f'"importlib.metadata" in sys.modules)')
        assert loaded == 'True False', f'{module}: gpiozero, importlib.metadata: {loaded}'


def test_a_pin_factory_named_in_the_environment_is_still_found():
    found = run('import os, sys, hardware.machine, gpiozero\n'
                'os.environ["GPIOZERO_PIN_FACTORY"] = "mock"\n'
                'f = gpiozero.Device._default_pin_factory()\n'
                'print(type(f).__name__, "importlib.metadata" in sys.modules)')
    assert found == 'MockFactory True'
