"""Independent, CPU-bound campaign work on every core this machine has.

The fault cases and the flaky-I2C sweeps run on fake clocks and share nothing, so their
figures do not depend on how many run at once. Worker processes are spawned, not forked:
pytest's process may hold threads, and a fork copies their locks.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


def cores():
    return len(os.sched_getaffinity(0))


def _call(job):
    fn, args = job
    return fn(*args)


def run_all(jobs, least=2):
    """[fn(*args) for fn, args in jobs], in that order; in worker processes when there are
    two cores or more and at least `least` jobs. The first failure is raised with the
    worker's traceback, and the jobs not started yet are dropped."""
    workers = min(cores(), len(jobs))
    if workers < 2 or len(jobs) < least:
        return [fn(*args) for fn, args in jobs]
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn'))
    try:
        return list(pool.map(_call, jobs))
    finally:
        pool.shutdown(cancel_futures=True)
