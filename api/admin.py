"""Admin chores from a shell.

    python -m api.admin rotate-token [--file PATH]
        A new admin token in the token file (atomically, mode 0600, the old file's owner).
        Both services read the file again at their next admin request: no restart.
        Prints where it wrote, never the token.

    python -m api.admin call METHOD URL [--json BODY] [--file PATH]
        One admin request, signed (challenge-response): the token never crosses the
        network, so this is how to do admin from a laptop or phone on the kitchen LAN.
        e.g. python -m api.admin call POST http://jafflr-kitchen.local/v2/reset

The token file is the services' own: --file, else JAFFLR_ADMIN_TOKEN_FILE, else
$JAFFLR_STATE_DIR/admin-token (default /var/lib/jafflr/admin-token).
"""
import argparse
import http.client
import json
import os
import secrets
import sys
import tempfile
from urllib.parse import urlsplit

from .common.adminauth import authorization


def token_file(args_file, env=os.environ):
    if args_file:
        return args_file
    if env.get('JAFFLR_ADMIN_TOKEN_FILE'):
        return env['JAFFLR_ADMIN_TOKEN_FILE']
    state = (env.get('JAFFLR_STATE_DIR') or '/var/lib/jafflr').split(':')[0]
    return os.path.join(state, 'admin-token')


def rotate_token(path):
    """Write a new token over `path` (rename, so a reader never sees half a token)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix='.admin-token.', dir=folder)
    try:
        os.fchmod(fd, 0o600)
        if old is not None and os.geteuid() == 0:
            os.fchown(fd, old.st_uid, old.st_gid)
        with os.fdopen(fd, 'w') as f:
            f.write(secrets.token_urlsafe(32) + '\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_token(path):
    with open(path, encoding='utf-8') as f:
        return f.read().strip()


def call(method, url, token, body=None, timeout=10):
    """(status, answer text) of one signed admin request."""
    parts = urlsplit(url)
    target = parts.path or '/'
    if parts.query:
        target += '?' + parts.query
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request('GET', '/v2/admin/challenge', headers={'Accept': 'application/json'})
        answer = conn.getresponse()
        raw = answer.read()
        if answer.status != 200:
            return answer.status, raw.decode('utf-8', 'replace')
        nonce = json.loads(raw)['nonce']
        payload = json.dumps(body).encode() if body is not None else b''
        headers = {'Accept': 'application/json',
                   'Authorization': authorization(token, nonce, method, target, payload)}
        if body is not None:
            headers['Content-Type'] = 'application/json'
        conn.request(method.upper(), target, payload or None, headers)
        answer = conn.getresponse()
        return answer.status, answer.read().decode('utf-8', 'replace')
    finally:
        conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m api.admin')
    sub = parser.add_subparsers(dest='command', required=True)
    rotate = sub.add_parser('rotate-token', help='a new admin token in the token file')
    rotate.add_argument('--file')
    one = sub.add_parser('call', help='one signed admin request')
    one.add_argument('method')
    one.add_argument('url')
    one.add_argument('--json', help='the request body, as JSON')
    one.add_argument('--file')
    args = parser.parse_args(argv)
    path = token_file(args.file)
    if args.command == 'rotate-token':
        try:
            rotate_token(path)
        except OSError as exc:
            print(f'could not write a new token to {path}: {exc}', file=sys.stderr)
            return 1
        print(f'a new admin token is in {path} (mode 600). A service that reads this file '
              f'uses it from its next admin request; under systemd (a credential copied at '
              f'start) restart them: sudo systemctl restart chillybin jafflr. Unlock the panel '
              f'again with it.')
        return 0
    try:
        token = read_token(path)
    except OSError as exc:
        print(f'cannot read the admin token from {path}: {exc} (give --file)', file=sys.stderr)
        return 1
    body = json.loads(args.json) if args.json else None
    status, text = call(args.method, args.url, token, body)
    print(text)
    return 0 if 200 <= status < 300 else 1


if __name__ == '__main__':
    sys.exit(main())
