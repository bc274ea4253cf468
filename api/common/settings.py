"""Settings every service reads from its environment at start, checked then and there.

Nothing keeps the raw environment afterwards; a bad value stops the service with a
message naming the variable, what was wrong, and what is allowed.
"""
import json
import logging
import os
import secrets
from dataclasses import dataclass

log = logging.getLogger('api.settings')
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SettingsError(ValueError):
    """An environment variable has a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    service: str
    state_dir: str
    token_file: str
    hostnames: tuple
    version: str


def release_version(service, env=os.environ, root=ROOT):
    """This service's version: JAFFLR_RELEASE, else VERSIONS.json beside the code (written
    by the deploy), else 'dev'."""
    if env.get('JAFFLR_RELEASE'):
        return env['JAFFLR_RELEASE']
    try:
        with open(os.path.join(root, 'VERSIONS.json'), encoding='utf-8') as f:
            versions = json.load(f)
        return str(versions.get(service) or versions.get('release') or 'dev')
    except (OSError, ValueError):
        return 'dev'


def refuse_debug_hooks_on_a_pi(env=os.environ, model_path='/proc/device-tree/model'):
    """JAFFLR_DEBUG_HOOKS opens routes that hang or crash the service on purpose (for the
    exit-path tests); on a real machine they would be a way to stall the heater's loop."""
    hooks = (env.get('JAFFLR_DEBUG_HOOKS') or '').strip()
    if hooks in ('', '0'):
        return
    from hardware.errors import BoardConfigError
    from hardware.platform import resolve_mode
    try:
        mode, why = resolve_mode(env.get('JAFFLR_MACHINE') or 'auto', model_path)
    except BoardConfigError as exc:
        raise SettingsError(str(exc)) from exc
    if mode == 'pi':
        raise SettingsError(f'JAFFLR_DEBUG_HOOKS={hooks!r} is refused on a Raspberry Pi (machine: '
                            f'{why}): the debug routes /v2/debug/* are for the simulated machine '
                            f'only; remove JAFFLR_DEBUG_HOOKS from the environment '
                            f'(/etc/jafflr/jafflr.env on a deployed Pi)')


def release_name(env=os.environ, root=ROOT):
    """The release this code came in (VERSIONS.json 'release'), for the logs; 'dev' from
    a checkout."""
    try:
        with open(os.path.join(root, 'VERSIONS.json'), encoding='utf-8') as f:
            return str(json.load(f).get('release') or 'dev')
    except (OSError, ValueError, AttributeError):
        return env.get('JAFFLR_RELEASE') or 'dev'


def load_settings(service, env=os.environ):
    refuse_debug_hooks_on_a_pi(env)
    state_dir = env.get('JAFFLR_STATE_DIR') or env.get('STATE_DIRECTORY') or '/var/lib/jafflr'
    state_dir = state_dir.split(':')[0]
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f'JAFFLR_STATE_DIR={state_dir!r} cannot be created: {exc}') from exc
    token_file = env.get('JAFFLR_ADMIN_TOKEN_FILE')
    if not token_file and env.get('CREDENTIALS_DIRECTORY'):
        token_file = os.path.join(env['CREDENTIALS_DIRECTORY'], 'admin-token')
    token_file = token_file or os.path.join(state_dir, 'admin-token')
    if os.path.exists(token_file):     # checked before any hardware is opened
        _refuse_a_shared_token_file(token_file)
    names = tuple(n.strip() for n in env.get('JAFFLR_HOSTNAMES', '').split(',') if n.strip())
    return Settings(service, state_dir, token_file, names + (service, f'{service}.local'),
                    release_version(service, env))


def _refuse_a_shared_token_file(path):
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise SettingsError(f'the admin token file {path} has mode {mode:o}: other users '
                            f'(group or others) could read or change it; run chmod 600 {path} '
                            f'(owner only) and start again')


def admin_token(path):
    """Read the admin token, creating it (mode 0600) when it does not exist yet. A token
    file with any group or other permission bits stops the service."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _refuse_a_shared_token_file(path)
        with open(path, encoding='utf-8') as f:
            token = f.read().strip()
        if len(token) < 16:
            raise SettingsError(f'the admin token in {path} is shorter than 16 characters')
        log.info('admin token read from %s', path)
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, 'w') as f:
        f.write(token + '\n')
    log.info('admin token created in %s (mode 600)', path)
    return token


def secret_key(path):
    """A random key kept in `path` (created 0600 when missing): for secrets the service
    derives and must recognise after a restart (e.g. jafflr's per-order cancel secret)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, 'rb') as f:
            key = f.read().strip()
        if len(key) < 32:
            raise SettingsError(f'the key in {path} is shorter than 32 bytes: delete it and '
                                f'a new one is made at start') from None
        return key
    key = secrets.token_hex(32).encode()
    with os.fdopen(fd, 'wb') as f:
        f.write(key + b'\n')
    return key
