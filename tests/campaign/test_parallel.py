"""tests/campaign/parallel.py: answers in order, and no failure a worker would only print."""
import threading

import pytest

from .parallel import run_all


class _Loud:
    def __del__(self):
        raise RuntimeError('a finaliser failed')


def square(n):
    return n * n


def leaves_a_failing_finaliser(n):
    _Loud()
    return n


def fails_in_a_thread(n):
    t = threading.Thread(target=lambda: 1 / 0, name='helper')
    t.start()
    t.join()
    return n


def test_parallel_answers_in_order_and_raises_what_a_worker_only_printed(monkeypatch):
    monkeypatch.setenv('CAMPAIGN_WORKERS', '2')
    assert run_all([(square, (n,)) for n in range(6)]) == [0, 1, 4, 9, 16, 25]
    with pytest.raises(ZeroDivisionError):
        run_all([(square, (1,)), (divmod, (1, 0)), (square, (2,))])
    for job in (leaves_a_failing_finaliser, fails_in_a_thread):
        with pytest.raises(AssertionError, match='exceptions that were not raised'):
            run_all([(square, (1,)), (job, (2,))])
