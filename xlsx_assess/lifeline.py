"""Child processes (pool workers, python-calamine helpers) die with the process that started them.

A `kill -9` of the command gives its children no word: a pool worker waits on a queue that its
siblings still hold open, and would wait for ever. So each child, first thing, ties its life to its
parent's: on Linux through the parent-death signal (SIGKILL when the parent goes), elsewhere through a
thread that watches the parent and ends the child when it is gone.

The Linux signal is sent when the *thread* that forked the child ends: children are forked from the
main thread here (the pool starts its workers on `submit`, the helper on a read), never from a thread
that ends before the command does.
"""

from __future__ import annotations

import os
import sys
import threading
import time

PR_SET_PDEATHSIG = 1                   # <linux/prctl.h>
WATCH_SECONDS = 0.5                    # how often the watching thread looks, where there is no signal


def die_with_parent(parent: int) -> None:
    """End this process when `parent` (the process that forked it) ends, however it ends."""
    if not _parent_death_signal():
        _watch(parent)
    if os.getppid() != parent:         # the parent went before the signal was set: it will never come
        os._exit(1)


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
