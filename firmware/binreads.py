"""Reading the bin's parts: a failed read is an error with a name, never a made-up value,
and a part is reported failed only after several failed reads in a row."""

# A part is reported failed once this many reads in a row have failed. The drivers retry
# each transfer 3 times, so one failed read on a bus that drops 2 % of transfers comes
# every few hours per part; three in a row, never (see tests/campaign/test_flaky_i2c.py).
# Until then the last good reading stands (never 0, never an invented value) and the
# failure is counted in `errors`. At the default 0.1 s tick a dead part is named
# within 0.3 s.
FAILED_AFTER_READS = 3


class PartReads:
    """Counts failed reads per part (`errors`, for metrics) and decides when a run of
    failures is long enough to report."""

    def __init__(self, failed_after=FAILED_AFTER_READS):
        self.failed_after = failed_after
        self.errors = {}            # part -> failed reads, for metrics
        self._failing = {}          # part -> failed reads in a row, not yet reported

    @staticmethod
    def read(reader, *args):
        """(value, None), or (None, 'ExceptionName: message') when the read failed."""
        try:
            return reader(*args), None
        except Exception as exc:   # a failed read is reported by name, never a made-up value
            return None, f'{type(exc).__name__}: {exc}'

    def reported(self, part, error):
        """Count a failed read; False while a failure is too short to report (fewer than
        `failed_after` in a row): the caller keeps the last good reading."""
        if error is None:
            self._failing.pop(part, None)
            return True
        self.errors[part] = self.errors.get(part, 0) + 1
        self._failing[part] = self._failing.get(part, 0) + 1
        return self._failing[part] >= self.failed_after
