"""A TinyDB storage that survives power cuts, and transactions over it.

Every write goes to a temporary file in the same directory, is fsynced, renamed over the
old file, and the directory is fsynced: after a crash the file is either the old one or
the new one, never a mixture. A write is acknowledged only after that.

TinyDB writes once per operation; `transaction(db)` groups several operations (on any
tables) into one durable write, so an order and its event land together or not at all.
Reads come from memory: the file is only read at open.
"""
import json
import os
import threading
from contextlib import contextmanager

from tinydb import TinyDB
from tinydb.storages import Storage


class StorageCorrupt(Exception):
    """A database file exists but cannot be read as JSON; it is never silently replaced."""


def _fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicJSONStorage(Storage):
    def __init__(self, path, fsync=True):
        self.path = path
        self.fsync = fsync
        self.lock = threading.RLock()
        self._depth = 0
        self._dirty = False
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._text = self._load()
        self.writes = 0

    def _load(self):
        try:
            with open(self.path, encoding='utf-8') as f:
                text = f.read()
        except FileNotFoundError:
            return None
        try:
            json.loads(text)
        except ValueError as exc:
            raise StorageCorrupt(
                f'{self.path} is not valid JSON ({exc}); it was not written by this '
                f'storage or the disk is failing. Restore it from a backup, or move it '
                f'aside to start empty.') from exc
        return text

    def read(self):
        with self.lock:
            return None if self._text is None else json.loads(self._text)

    def write(self, data):
        with self.lock:
            self._text = json.dumps(data, separators=(',', ':'), sort_keys=True)
            if self._depth:
                self._dirty = True
            else:
                self._flush()

    def _flush(self):
        tmp = f'{self.path}.tmp'
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(self._text)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self.fsync:
            _fsync_dir(self.path)
        self.writes += 1

    @contextmanager
    def batch(self):
        """Hold writes until the outermost batch ends, then write once. If the body raises,
        the batch's changes are dropped from memory too (reloaded from the last write)."""
        with self.lock:
            if self._depth == 0:
                self._before = self._text
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._text, self._dirty = self._before, False
                raise
            self._depth -= 1
            if self._depth == 0 and self._dirty:
                self._dirty = False
                try:
                    self._flush()
                except BaseException:
                    self._text = self._before
                    raise

    def close(self):
        pass


def open_db(path, fsync=True):
    """A TinyDB whose every acknowledged write is on disk."""
    return TinyDB(path, storage=AtomicJSONStorage, fsync=fsync)


@contextmanager
def transaction(db):
    """Everything done to `db` inside is written once, atomically, at the end."""
    with db.storage.batch():
        yield db
