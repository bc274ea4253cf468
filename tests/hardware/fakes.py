"""Small stand-ins for a bus, to test drivers' error handling without any simulation."""
import errno


class FlakyBus:
    """Wraps a bus; the next `fail` transfers raise OSError(EREMOTEIO), then it behaves."""

    def __init__(self, inner, fail=0):
        self.inner = inner
        self.fail = fail
        self.calls = 0

    def __getattr__(self, name):
        target = getattr(self.inner, name)

        def call(*args, **kw):
            self.calls += 1
            if self.fail > 0:
                self.fail -= 1
                raise OSError(errno.EREMOTEIO, 'Remote I/O error')
            return target(*args, **kw)
        return call


class DeadBus:
    """Nothing answers."""

    def __init__(self):
        self.calls = 0

    def __getattr__(self, name):
        def call(*args, **kw):
            self.calls += 1
            raise OSError(errno.EREMOTEIO, 'Remote I/O error')
        return call
