"""Child processes (pool workers, python-calamine helpers) die with the process that started them.

A `kill -9` of the command gives its children no word: a pool worker waits on a queue that its
siblings still hold open, and would wait for ever. So each child, first thing, ties its life to its
parent's: on Linux through the parent-death signal (SIGKILL when the parent goes), elsewhere through a
thread that watches the parent and ends the child when it is gone.

The Linux signal is sent when the *thread* that forked the child ends, not the process. A pool's
workers are forked by the thread that uses the pool and lets it go before it ends. The helper outlives
the read that started it, so `start_lasting` forks it from the main thread, or, where the caller is
another thread (the web page checks files in a pool of threads that end when idle), from one thread
that lasts as long as the process: a helper forked off a passing thread was killed mid-read (F104).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Callable

PR_SET_PDEATHSIG = 1                   # <linux/prctl.h>
WATCH_SECONDS = 0.5                    # how often the watching thread looks, where there is no signal


def die_with_parent(parent: int) -> None:
    """End this process when `parent` (the process that forked it) ends, however it ends."""
    if not _parent_death_signal():
        _watch(parent)
    if os.getppid() != parent:         # the parent went before the signal was set: it will never come
        os._exit(1)


def start_lasting(start: Callable[[], None]) -> None:
    """Run `start` (which forks a child that calls `die_with_parent`) on a thread that lasts as long as
    this process: this one if it is the main thread, else the process's forking thread. Its exceptions
    are raised here."""
    if threading.current_thread() is threading.main_thread():
        start()
    else:
        _Forker.here().run(start)


class _Forker:
    """A daemon thread that runs what it is given, one at a time, until the process ends."""

    _lock = threading.Lock()
    _current: "_Forker | None" = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="xlsx-assess-forker", daemon=True).start()

    @classmethod
    def here(cls) -> "_Forker":
        """This process's forker (one inherited through a fork has no thread here: a new one is started)."""
        with cls._lock:
            if cls._current is None or cls._current.pid != os.getpid():
                cls._current = cls()
            return cls._current

    def run(self, job: Callable[[], None]) -> None:
        done = threading.Event()
        failure: list[BaseException] = []
        self.jobs.put((job, done, failure))
        done.wait()
        if failure:
            raise failure[0]

    def _loop(self) -> None:
        while True:
            job, done, failure = self.jobs.get()
            try:
                job()
            except BaseException as exc:       # handed to the caller
                failure.append(exc)
            done.set()


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    """A daemon thread that ends this process once it has been given to another parent."""
    def watch() -> None:
        sentinel = _parent_sentinel()
        if sentinel is not None:       # Windows: the parent's process handle, ready when it ends
            from multiprocessing.connection import wait

            wait([sentinel])
            os._exit(1)
        while True:
            time.sleep(WATCH_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="xlsx-assess-lifeline", daemon=True).start()


def _parent_sentinel():
    """Where getppid() does not change when the parent ends (Windows), the handle multiprocessing keeps
    of the parent of a process it spawned; None elsewhere."""
    if os.name != "nt":
        return None
    import multiprocessing as mp

    parent = mp.parent_process()
    return parent.sentinel if parent is not None else None
