"""Settings that keep a deployed machine closed: the admin token file must be the
owner's alone, and the debug hooks never run on a Raspberry Pi. Both stop the service
at start with a message that says what to do."""
import os
import stat

import pytest

from api.common.settings import (SettingsError, admin_token, load_settings,
                                 refuse_debug_hooks_on_a_pi)
from api.launcher import Launcher


def _token_file(tmp_path, mode):
    path = tmp_path / 'admin-token'
    path.write_text('t' * 32 + '\n')
    os.chmod(path, mode)
    return str(path)


@pytest.mark.parametrize('mode', [0o640, 0o604, 0o644, 0o620, 0o660, 0o601])
def test_settings_token_file_open_to_group_or_others_stops_the_service(tmp_path, mode):
    path = _token_file(tmp_path, mode)
    with pytest.raises(SettingsError) as caught:
        admin_token(path)
    message = str(caught.value)
    assert path in message and f'{mode:o}' in message and f'chmod 600 {path}' in message
    assert 't' * 32 not in message


@pytest.mark.parametrize('mode', [0o600, 0o400])
def test_settings_token_file_for_the_owner_only_is_read(tmp_path, mode):
    assert admin_token(_token_file(tmp_path, mode)) == 't' * 32


def test_settings_token_file_made_by_the_service_is_0600_even_with_a_loose_umask(tmp_path):
    old = os.umask(0)
    try:
        token = admin_token(str(tmp_path / 'admin-token'))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'admin-token').st_mode) == 0o600
    assert admin_token(str(tmp_path / 'admin-token')) == token


def _model(tmp_path, text):
    path = tmp_path / 'model'
    path.write_bytes(text)
    return str(path)


@pytest.mark.parametrize('machine,model', [('pi', b'Nothing\0'),
                                           ('auto', b'Raspberry Pi 4 Model B Rev 1.5\0'),
                                           ('', b'Raspberry Pi Zero 2 W Rev 1.0\0')])
def test_settings_debug_hooks_are_refused_on_a_pi(tmp_path, machine, model):
    env = {'JAFFLR_DEBUG_HOOKS': '1', 'JAFFLR_MACHINE': machine}
    with pytest.raises(SettingsError) as caught:
        refuse_debug_hooks_on_a_pi(env, model_path=_model(tmp_path, model))
    assert 'JAFFLR_DEBUG_HOOKS' in str(caught.value) and 'Raspberry Pi' in str(caught.value)


@pytest.mark.parametrize('env', [{'JAFFLR_DEBUG_HOOKS': '1', 'JAFFLR_MACHINE': 'sim'},
                                 {'JAFFLR_DEBUG_HOOKS': '1', 'JAFFLR_MACHINE': 'auto'},
                                 {'JAFFLR_DEBUG_HOOKS': '0', 'JAFFLR_MACHINE': 'pi'},
                                 {'JAFFLR_MACHINE': 'pi'}])
def test_settings_debug_hooks_allowed_in_simulation_and_absent_hooks_on_a_pi(tmp_path, env):
    refuse_debug_hooks_on_a_pi(env, model_path=_model(tmp_path, b'QEMU Virtual Machine\0'))


def test_settings_load_refuses_debug_hooks_with_a_pi_configured(tmp_path):
    env = {'JAFFLR_DEBUG_HOOKS': '1', 'JAFFLR_MACHINE': 'pi', 'JAFFLR_STATE_DIR': str(tmp_path)}
    with pytest.raises(SettingsError, match='JAFFLR_DEBUG_HOOKS'):
        load_settings('jafflr', env)


def _start(service, tmp_path, **extra):
    """Run the service to completion (it must refuse to start), with no simulator."""
    return Launcher(tmp_path).run(f'api.{service}', '--port', '0', env=extra)


@pytest.mark.parametrize('service', ['jafflr', 'chillybin'])
def test_settings_a_service_with_debug_hooks_on_a_pi_refuses_to_start(tmp_path, service):
    out = _start(service, tmp_path, JAFFLR_MACHINE='pi', JAFFLR_DEBUG_HOOKS='1')
    assert out.returncode == 2, out.stderr
    assert 'JAFFLR_DEBUG_HOOKS' in out.stderr and 'refused on a Raspberry Pi' in out.stderr
    # refused before any hardware was opened: no GPIO or I2C message
    assert 'I2C' not in out.stderr and 'GPIO' not in out.stderr, out.stderr


def test_settings_a_service_with_a_group_readable_token_refuses_to_start(tmp_path):
    token = _token_file(tmp_path, 0o640)
    out = _start('jafflr', tmp_path, JAFFLR_MACHINE='sim', JAFFLR_ADMIN_TOKEN_FILE=token)
    assert out.returncode == 2, out.stderr
    assert f'{token} has mode 640' in out.stderr and 'chmod 600' in out.stderr


@pytest.mark.parametrize('service,port', [('chillybin', 7001), ('jafflr', 7000)])
def test_settings_services_listen_on_loopback_unless_told(monkeypatch, service, port):
    from api.common import cli
    monkeypatch.delenv(f'{service.upper()}_HOST', raising=False)
    monkeypatch.delenv(f'{service.upper()}_PORT', raising=False)
    opened = []

    class Service:
        def run(self):
            pass
    assert cli.main(service, port, lambda host, p: opened.append((host, p)) or Service(),
                    'x.json', list, argv=[]) == 0
    assert opened == [('127.0.0.1', port)]
