"""Independent, CPU-bound campaign work on every core this machine has.

The fault cases and the flaky-I2C sweeps run on fake clocks and share nothing, so their
figures do not depend on how many run at once. Worker processes are spawned, not forked:
pytest's process may hold threads, and a fork copies their locks.
"""
import gc
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor


def cores():
    """The cores this process may use, at most CAMPAIGN_WORKERS (default 4): affinity does
    not see a container's CPU quota, and a shared host may show dozens."""
    return min(len(os.sched_getaffinity(0)), int(os.environ.get('CAMPAIGN_WORKERS') or 4))


def workers(jobs, least=2):
    """How many processes run_all uses for `jobs` jobs."""
    return min(cores(), jobs) if jobs >= least else 1


def _call(job):
    """One job in a worker. What pytest's process fails a test on and a worker would only
    print (an exception in a finaliser, in a thread) fails the job here too."""
    fn, args = job
    seen = []
    hooks = sys.unraisablehook, threading.excepthook
    sys.unraisablehook = lambda u: seen.append(f'{u.exc_type.__name__}: {u.exc_value} '
                                               f'({u.err_msg or "unraisable"} {u.object!r})')
    threading.excepthook = lambda e: seen.append(f'{e.exc_type.__name__}: {e.exc_value} '
                                                 f'(in thread {e.thread and e.thread.name})')
    try:
        result = fn(*args)
        gc.collect()
    finally:
        sys.unraisablehook, threading.excepthook = hooks
    if seen:
        raise AssertionError(f'{fn.__name__}{args!r}: exceptions that were not raised: {seen[:5]}')
    return result


def run_all(jobs, least=2):
    """[fn(*args) for fn, args in jobs], in that order; in worker processes when there are
    two cores or more and at least `least` jobs. The first failure is raised with the
    worker's traceback, and the jobs not started yet are dropped."""
    if workers(len(jobs), least) < 2:
        return [fn(*args) for fn, args in jobs]
    pool = ProcessPoolExecutor(workers(len(jobs), least), mp_context=multiprocessing.get_context('spawn'))
    try:
        return list(pool.map(_call, jobs))
    finally:
        pool.shutdown(cancel_futures=True)
