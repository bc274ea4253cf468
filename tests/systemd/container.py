"""A Debian 12 host with real systemd as PID 1, booted with systemd-nspawn, for tests.

The tree is built once with debootstrap and cached (JAFFLR_TEST_CACHE, default
/var/cache/jafflr-test); each boot runs on an overlay of it, so every test run starts from
a fresh host and leaves the cache untouched. The container shares the host's network:
its sshd listens on 127.0.0.1:2222 only, and the services' sockets are on loopback ports.
"""
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time

PACKAGES = ('systemd', 'systemd-sysv', 'dbus', 'python3', 'python3-venv', 'openssh-server',
            'ca-certificates')
SUITE = 'bookworm'
CACHE = os.environ.get('JAFFLR_TEST_CACHE', '/var/cache/jafflr-test')
SSH_PORT = 2222
SSHD_CONFIG = f"""# jafflr tests: key-only root login on loopback
Port {SSH_PORT}
ListenAddress 127.0.0.1
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
"""


class ContainerError(RuntimeError):
    """The test host could not be built, booted or reached."""


def debian_mirror(sources='/etc/apt/sources.list.d/debian.sources'):
    """The first Debian mirror in this machine's apt sources."""
    candidates = [sources, '/etc/apt/sources.list']
    for path in candidates:
        try:
            text = open(path).read()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if line.startswith('URIs:') and 'security' not in line:
                return words[1]
            if words[:1] == ['deb'] and 'security' not in line:
                return next(w for w in words[1:] if '://' in w)
    return 'http://deb.debian.org/debian'


def rootfs(log, arch=None):
    """Path of the cached tree, building it first when it is missing (about a minute; an
    `arch` such as arm64 is built and later run under qemu-user emulation: a few minutes)."""
    key = hashlib.sha256(repr((PACKAGES, SUITE, SSHD_CONFIG) + ((arch,) if arch else ()))
                         .encode()).hexdigest()[:12]
    root = os.path.join(CACHE, f'{SUITE}-{arch + "-" if arch else ""}{key}')
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, '.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(root, '.complete')):
            return root
        work = root + '.building'
        shutil.rmtree(work, ignore_errors=True)
        started = time.monotonic()
        out = subprocess.run(['debootstrap', '--variant=minbase', f'--include={",".join(PACKAGES)}',
                              *([f'--arch={arch}'] if arch else []), SUITE, work, debian_mirror()],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise ContainerError(f'debootstrap failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}')
        _prepare(work)
        open(os.path.join(work, '.complete'), 'w').close()
        os.rename(work, root)
        log(f'built the Debian {SUITE} tree in {time.monotonic() - started:.0f} s: {root}')
        return root


def _prepare(root):
    with open(os.path.join(root, 'etc/ssh/sshd_config.d/jafflr-test.conf'), 'w') as f:
        f.write(SSHD_CONFIG)
    with open(os.path.join(root, 'etc/hostname'), 'w') as f:
        f.write('jafflr-test\n')
    os.makedirs(os.path.join(root, 'root/.ssh'), mode=0o700, exist_ok=True)
    # Boot faster: nothing here needs these.
    for unit in ('systemd-timesyncd.service', 'apt-daily.timer', 'apt-daily-upgrade.timer',
                 'e2scrub_all.timer', 'fstrim.timer', 'man-db.timer'):
        link = os.path.join(root, 'etc/systemd/system', unit)
        if not os.path.lexists(link):
            os.symlink('/dev/null', link)


def _port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(('127.0.0.1', port))
            return True
        except OSError:
            return False


class Container:
    """One booted host. `run()` executes a command inside it (nsenter); `stop()` powers off."""

    def __init__(self, base, workdir, log=print):
        self.base, self.workdir, self.log = base, workdir, log
        self.merged = os.path.join(workdir, 'root')
        self.proc = self.pid1 = None

    def boot(self, public_key, ports=(SSH_PORT, 80, 7001), timeout=60):
        busy = [p for p in ports if not _port_free(p)]
        if busy:
            raise ContainerError(f'loopback ports {busy} are in use on this machine')
        upper, work = os.path.join(self.workdir, 'upper'), os.path.join(self.workdir, 'work')
        for d in (upper, work, self.merged):
            os.makedirs(d, exist_ok=True)
        subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o',
                        f'lowerdir={self.base},upperdir={upper},workdir={work}', self.merged],
                       check=True)
        self._host_setup(public_key)
        started = time.monotonic()
        self.console = open(os.path.join(self.workdir, 'console.log'), 'w')
        self.proc = subprocess.Popen(
            ['systemd-nspawn', '-D', self.merged, '--boot', '--register=no', '--keep-unit',
             '-q', '--console=passive', '--machine=jafflr-test'],
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self.pid1 = self._find_pid1(timeout)
        while time.monotonic() - started < timeout:
            state = self.run(['systemctl', 'is-system-running'], check=False).stdout.strip()
            if state in ('running', 'degraded'):
                self.boot_seconds = time.monotonic() - started
                return self
            time.sleep(0.3)
        raise ContainerError(f'systemd did not finish booting: {state}; see {self.console.name}')

    def _host_setup(self, public_key):
        keys = os.path.join(self.merged, 'root/.ssh/authorized_keys')
        with open(keys, 'w') as f:
            f.write(public_key)
        os.chmod(keys, 0o600)
        # This machine reaches the package registries through a TLS proxy whose CA is in
        # its own trust store; the test host uses the same store, as a Pi would use its own.
        shutil.copy('/etc/ssl/certs/ca-certificates.crt',
                    os.path.join(self.merged, 'etc/ssl/certs/ca-certificates.crt'))
        with open(os.path.join(self.merged, 'etc/pip.conf'), 'w') as f:
            f.write('[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndisable-pip-version-check = true\n')

    def _find_pid1(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ContainerError(f'systemd-nspawn exited {self.proc.returncode}; '
                                     f'see {self.console.name}')
            for pid in _descendants(self.proc.pid):
                try:
                    if open(f'/proc/{pid}/comm').read().strip() == 'systemd':
                        return pid
                except OSError:
                    pass
            time.sleep(0.1)
        raise ContainerError('no systemd process appeared in the container')

    def run(self, argv, check=True, timeout=120, input=None):
        out = subprocess.run(['nsenter', '-t', str(self.pid1), '-a', '--', *argv],
                             capture_output=True, text=True, timeout=timeout, input=input,
                             env={'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
                                  'LANG': 'C.UTF-8'})
        if check and out.returncode != 0:
            raise ContainerError(f'{argv} exited {out.returncode}:\n{out.stdout}{out.stderr}')
        return out

    def path(self, inside):
        """A path inside the running container, as the host sees it (its mounts included)."""
        return f'/proc/{self.pid1}/root{inside}'

    def host_pid(self, pid):
        """The host's id of process `pid` of the container, to signal it with no delay."""
        for candidate in _descendants(self.proc.pid):
            try:
                status = open(f'/proc/{candidate}/status').read()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith('NSpid:') and line.split()[-1] == str(pid):
                    return candidate
        raise ContainerError(f'no host process for container pid {pid}')

    def show(self, unit, prop):
        return self.run(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.run(['systemctl', 'poweroff'], check=False, timeout=30)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        if os.path.ismount(self.merged):
            subprocess.run(['umount', self.merged], check=False)
        if getattr(self, 'console', None):
            self.console.close()


def _descendants(pid):
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                ppid = int(open(f'/proc/{entry}/stat').read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
