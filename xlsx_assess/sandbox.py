"""python-calamine in a helper process: some damaged files make it abort (a failed allocation ends the
process, and no `except` can catch that) or hang. Then only the helper dies, the file is reported
damaged, and a new helper starts for the next file. Where no helper can be started, values are read
in this process.
"""

from __future__ import annotations

import io
import os
from collections import deque
from typing import Any, Callable

from .issues import Refused
from .layout import SHEETS, a1

MAX_CELLS = 1_000_000                 # the rectangle a sheet spans: python-calamine allocates all of it


def check_size(sheet: str, rows: int, cols: int) -> None:
    """Refuse a sheet whose used rectangle (rows × cols from A1) is too big to hold in memory."""
    if rows * cols > MAX_CELLS:
        raise Refused("F114", value=sheet, detail=f"{a1(rows - 1, cols - 1)}（{rows} 行 × {cols} 列）")


def _calamine_values(data: bytes) -> tuple[dict[str, str], dict[str, list[list[Any]]]]:
    import python_calamine as pc

    sheets: dict[str, str] = {}
    values: dict[str, list[list[Any]]] = {}
    try:
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        for meta in wb.sheets_metadata:
            sheets[meta.name] = str(meta.visible).rsplit(".", 1)[-1].lower()
        for name in sheets:
            if name in SHEETS:
                values[name] = rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
                check_size(name, len(rows), max(map(len, rows), default=0))   # before it is sent anywhere
    except pc.PasswordError:
        raise Refused("F105") from None
    except Refused:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # calamine raises several types (a Rust panic is a BaseException); all mean the same
        raise Refused("F104", detail=str(exc)[:120] or type(exc).__name__) from None
    return sheets, values


READ_SECONDS = 30                              # one file's values, in the helper
HELPER_EXTRA_MEMORY = 512 * 1024 * 1024        # address space the helper may add to what it inherits


class _Sandbox:
    """A helper process that reads values with python-calamine, one file at a time, restarted after a crash.

    One read is in flight at a time; a read begun meanwhile waits in a queue and is handed over the
    moment the one before it is collected, so the helper reads the next file while this process
    checks the last one. (Sending only to an idle helper also means neither side can block the other
    on a full pipe.)
    """

    def __init__(self) -> None:
        self.proc = None
        self.conn = None
        self.owner = 0
        self.inflight: Pending | None = None
        self.queue: deque[Pending] = deque()

    def read(self, data: bytes) -> tuple[dict[str, str], dict[str, list[list[Any]]]]:
        return self.begin(data).result()

    def begin(self, data: bytes, guard: Callable[[], None] | None = None) -> "Pending":
        """Hand the bytes to the helper (or queue them behind the read in flight) and return at once.

        `guard()` raises Refused for a file python-calamine must not read: it runs before a read in this
        process (no helper), and after the helper died on the file, to tell why."""
        self._forget_if_forked()
        pending = Pending(self, data, guard)
        self.queue.append(pending)
        self._next()
        return pending

    def _next(self) -> None:
        """Send queued reads while the helper is idle (reads that cannot be sent are done here, later)."""
        while self.inflight is None and self.queue:
            pending = self.queue.popleft()
            if not self._ready():
                pending.state = "local"                    # no helper on this system
                continue
            try:
                self.conn.send_bytes(pending.data)
            except OSError:
                self.stop()
                pending.state = "local"
                continue
            pending.state = "sent"
            self.inflight = pending

    def _collect(self) -> None:
        """Wait for the read in flight and keep its outcome with it; then send the next."""
        pending, self.inflight = self.inflight, None
        try:
            if self.conn.poll(READ_SECONDS):
                pending.outcome = self.conn.recv()
            else:
                self.stop()
                pending.outcome = ("refused", "F104", {"detail": f"读取超过 {READ_SECONDS} 秒，文件结构异常"})
        except (EOFError, OSError):
            self.stop()
            pending.outcome = ("died",)
        pending.state = "done"
        self._next()

    def _forget_if_forked(self) -> None:
        """A helper, pipe and reads inherited through a fork belong to the parent: drop them unclosed."""
        if self.owner != os.getpid():
            self.proc = self.conn = self.inflight = None
            self.queue.clear()
            self.owner = os.getpid()

    def _ready(self) -> bool:
        if self.proc is not None and self.owner == os.getpid() and self.proc.is_alive():
            return True
        self._forget_if_forked()
        self.stop()
        try:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            self.conn, theirs = ctx.Pipe()
            self.proc = ctx.Process(target=_serve, args=(theirs, self.conn, os.getpid()), name="xlsx-assess-reader",
                                    daemon=True)
            self.proc.start()
            theirs.close()
            self.owner = os.getpid()
            return True
        except (OSError, ValueError, AssertionError):     # e.g. no processes allowed here
            self.proc = self.conn = None
            return False

    def stop(self) -> None:
        """End the helper; a read in flight is lost (its owner cancelled it, or it is reported)."""
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join()
        self.proc = self.conn = None
        if self.inflight is not None:
            self.inflight.state = "done"
            self.inflight.outcome = ("refused", "F104", {"detail": "读取程序已停止"})
            self.inflight = None


class Pending:
    """A read handed to the helper: `result()` waits for it, `cancel()` (the file was refused meanwhile)
    drops it, stopping the helper if it has started on it, so that it does not go on with a file
    nobody wants."""

    def __init__(self, box: _Sandbox, data: bytes, guard: Callable[[], None] | None = None) -> None:
        self.box, self.data, self.guard = box, data, guard
        self.state = "queued"                     # queued | sent | local | done | cancelled
        self.outcome: tuple | None = None

    def result(self) -> tuple[dict[str, str], dict[str, list[list[Any]]]]:
        box = self.box
        while self.state in ("queued", "sent"):
            if box.inflight is not None:
                box._collect()                    # this read, or one begun before it (kept for its owner)
            elif self.state == "queued" and self not in box.queue:
                self.state = "local"              # begun in a process that forked since: read it here
            else:
                box._next()
        if self.state == "local":
            self.state = "done"
            if self.guard is not None:
                self.guard()
            return _calamine_values(self.data)
        if self.state != "done" or self.outcome is None:
            raise Refused("F104", detail="读取已取消")
        outcome, self.outcome = self.outcome, None
        if outcome[0] == "died" and self.guard is not None:
            self.guard()                          # a sheet too big to hold explains it best (F114)
        self.data = b""
        if outcome[0] == "ok":
            return outcome[1], outcome[2]
        if outcome[0] == "refused":
            raise Refused(outcome[1], **outcome[2])
        if outcome[0] == "died":
            raise Refused("F104", detail="读取程序因文件结构异常而中止")
        raise Refused("F104", detail=outcome[1])

    def cancel(self) -> None:
        box = self.box
        if self.state == "queued":
            box.queue.remove(self)
        elif self.state == "sent":
            box.stop()
            box._next()
        self.state, self.outcome, self.data = "cancelled", None, b""


_SANDBOX = _Sandbox()


def _serve(conn, ours, parent: int) -> None:
    """The helper's loop: bytes in, (sheets, values) or the reason out, until the pipe closes or the
    process that started it is gone (killed: then other processes may still hold the pipe open)."""
    ours.close()                                # the parent's end, inherited through fork
    _limit_memory()
    try:                                        # a crash here is reported as an issue: no backtrace on the console
        import faulthandler

        faulthandler.disable()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    except OSError:
        pass
    while True:
        try:
            while not conn.poll(1.0):
                if os.getppid() != parent:
                    return
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            outcome = ("ok", *_calamine_values(data))
        except Refused as stop:
            outcome = ("refused", stop.code, stop.fields)
        except BaseException as exc:
            outcome = ("error", f"{type(exc).__name__}: {exc}"[:120])
        conn.send(outcome)


def _limit_memory() -> None:
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as fh:
            size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + HELPER_EXTRA_MEMORY, resource.RLIM_INFINITY))
    except (ImportError, OSError, StopIteration, ValueError):
        pass                                    # not Linux: the time limit still holds


def read_values(data: bytes) -> tuple[dict[str, str], dict[str, list[list[Any]]]]:
    """(sheet -> visibility, sheet -> rows of values) of the form's sheets; raises Refused."""
    return _SANDBOX.read(data)


def begin_read(data: bytes, guard: Callable[[], None] | None = None) -> Pending:
    """Start reading the values in the helper; `.result()` gives what `read_values` gives."""
    return _SANDBOX.begin(data, guard)
