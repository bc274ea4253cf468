"""Helpers for tests about who waits on whom."""
import contextlib
import threading


@contextlib.contextmanager
def held_by_another_thread(lock):
    """`lock` held by a thread of its own for the duration of the block (at most 5 s):
    what a busy request or a station does to it under load."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait(5)
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        yield
    finally:
        release.set()
        holder.join(5)
