"""CPU budgets for benchmark processes: cgroup v1 cpu controller groups under
/sys/fs/cgroup/cpu (needs root). Each group is a quota of CPU time per period, so a
process in a group of period 5000 us / quota 1000 us gets a fifth of one core and, when
throttled, waits at most 4 ms (a short period keeps throttling from adding long stalls).

    with CpuGroups('pi4') as groups:
        path = groups.create('jafflr', quota_us=1000, period_us=5000)
        groups.add(path, pid)       # the process and every thread; its later children too

Every group is removed on the way out (its remaining processes moved back to the root
group first), on an exception, Ctrl-C and SIGTERM alike.
"""
import os
import signal

ROOT = '/sys/fs/cgroup/cpu'
MIN_QUOTA_US = 1000          # the kernel refuses less


class CgroupError(RuntimeError):
    pass


def available(root=ROOT):
    """None when groups can be made here, else why not (a sentence)."""
    if not os.path.isfile(os.path.join(root, 'cpu.cfs_quota_us')):
        return f'no cgroup v1 cpu controller at {root} (cpu.cfs_quota_us missing)'
    if not os.access(root, os.W_OK):
        return f'{root} is not writable: run as root'
    return None


def _write(path, value):
    with open(path, 'w') as f:
        f.write(str(value))


def _pids(group):
    try:
        with open(os.path.join(group, 'cgroup.procs')) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


class CpuGroups:
    def __init__(self, prefix, root=ROOT):
        self.prefix, self.root = f'jafflr-bench-{prefix}-{os.getpid()}', root
        self.groups = []
        self._old_term = None

    def create(self, name, quota_us, period_us):
        quota_us, period_us = int(quota_us), int(period_us)
        if quota_us < MIN_QUOTA_US:
            raise CgroupError(f'{name}: quota {quota_us} us is under the kernel minimum '
                              f'{MIN_QUOTA_US} us; lengthen the period instead')
        if not 1000 <= period_us <= 1000000:
            raise CgroupError(f'{name}: period {period_us} us outside 1000-1000000 us')
        path = os.path.join(self.root, f'{self.prefix}-{name}')
        os.mkdir(path)
        self.groups.append(path)
        # Period first: a quota longer than the old period would be checked against it.
        _write(os.path.join(path, 'cpu.cfs_period_us'), period_us)
        _write(os.path.join(path, 'cpu.cfs_quota_us'), quota_us)
        return path

    @staticmethod
    def add(path, pid):
        """Move a process (all its threads) into the group; children it forks later follow."""
        _write(os.path.join(path, 'cgroup.procs'), pid)

    @staticmethod
    def stat(path):
        """cpu.stat as a dict: nr_periods, nr_throttled, throttled_time (ns)."""
        with open(os.path.join(path, 'cpu.stat')) as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}

    def remove_all(self):
        problems = []
        for path in reversed(self.groups):
            for pid in _pids(path):
                try:
                    _write(os.path.join(self.root, 'cgroup.procs'), pid)
                except OSError:
                    pass            # it exited meanwhile
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f'{path}: {e}')
        self.groups = []
        if problems:
            raise CgroupError('could not remove: ' + '; '.join(problems))

    def __enter__(self):
        def on_term(signum, frame):
            raise KeyboardInterrupt(f'signal {signum}')
        try:
            self._old_term = signal.signal(signal.SIGTERM, on_term)
        except ValueError:          # not the main thread
            self._old_term = None
        return self

    def __exit__(self, *exc):
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
        self.remove_all()
