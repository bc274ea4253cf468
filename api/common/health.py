"""Readiness: each dependency checked by name. `/health` stays cheap (liveness and
version); `/v2/ready` runs these and answers 503 when the service should not take work."""


class Readiness:
    def __init__(self):
        self._checks = []

    def add(self, name, check, required=True):
        """`check()` returns (ok, detail). A failing optional check is reported, not fatal."""
        self._checks.append((name, check, required))

    def report(self):
        checks, ready = {}, True
        for name, check, required in self._checks:
            try:
                ok, detail = check()
            except Exception as exc:   # a check that breaks is a failed check, with its reason
                ok, detail = False, f'{type(exc).__name__}: {exc}'
            checks[name] = {'ok': bool(ok), 'detail': detail, 'required': required}
            ready = ready and (ok or not required)
        return ready, checks


def storage_writable(path_of_db):
    import os

    def check():
        directory = os.path.dirname(os.path.abspath(path_of_db))
        ok = os.access(directory, os.W_OK)
        return ok, f'{directory} is {"writable" if ok else "NOT writable"}'
    return check
