"""An append-only history (events, temperature samples) that costs the same to write on
day one as after a year: JSON lines in a file rotated at a size limit, a fixed number of
old files kept, and the most recent records held in memory for reading."""
import json
import os
import threading
from collections import deque


class Journal:
    def __init__(self, directory, name, max_bytes=1_000_000, keep=10, recent=500, fsync=True):
        self.directory = directory
        self.name = name
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync = fsync
        self.lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)
        self._recent = deque(self._tail(recent), maxlen=recent)
        self._file = open(self._path(0), 'a', encoding='utf-8')
        if self._file.tell() and not self._ends_with_newline():
            self._file.write('\n')   # seal a line torn by a power cut before appending
        self.sequence = self._recent[-1].get('seq', 0) if self._recent else 0

    def _path(self, generation):
        suffix = '' if generation == 0 else f'.{generation}'
        return os.path.join(self.directory, f'{self.name}.jsonl{suffix}')

    def _ends_with_newline(self):
        with open(self._path(0), 'rb') as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b'\n'

    def _tail(self, count):
        records = []
        for generation in range(self.keep, -1, -1):
            try:
                with open(self._path(generation), encoding='utf-8') as f:
                    for line in f:
                        try:
                            records.append(json.loads(line))
                        except ValueError:
                            pass   # a line torn by a power cut; the rest are whole
            except FileNotFoundError:
                continue
            del records[:-count]
        return records

    def append(self, record):
        """Write one record durably; returns it with its sequence number."""
        with self.lock:
            self.sequence += 1
            record = dict(record, seq=self.sequence)
            self._file.write(json.dumps(record, separators=(',', ':')) + '\n')
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self._recent.append(record)
            if self._file.tell() >= self.max_bytes:
                self._rotate()
            return record

    def _rotate(self):
        self._file.close()
        for generation in range(self.keep, 0, -1):
            older = self._path(generation - 1)
            if os.path.exists(older):
                if generation == self.keep:
                    os.unlink(older)
                else:
                    os.replace(older, self._path(generation))
        self._file = open(self._path(0), 'a', encoding='utf-8')

    def recent(self, limit=100, kind=None):
        """The newest records first, at most `limit`, optionally only of one `kind`."""
        with self.lock:
            items = [r for r in reversed(self._recent) if kind is None or r.get('kind') == kind]
        return items[:limit]

    def close(self):
        with self.lock:
            self._file.close()
