"""python-calamine in a helper process: some damaged files make it abort (a failed allocation ends the
process, and no `except` can catch that) or hang. Then only the helper dies, the file is reported
damaged, and a new helper starts for the next file. Where no helper can be started, values are read
in this process.
"""

from __future__ import annotations

import io
import os
from typing import Any

from .issues import Refused
from .layout import SHEETS

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
                values[name] = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except pc.PasswordError:
        raise Refused("F105") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # calamine raises several types (a Rust panic is a BaseException); all mean the same
        raise Refused("F104", detail=str(exc)[:120] or type(exc).__name__) from None
    return sheets, values


READ_SECONDS = 30                              # one file's values, in the helper
HELPER_EXTRA_MEMORY = 512 * 1024 * 1024        # address space the helper may add to what it inherits


class _Sandbox:
    """A helper process that reads values with python-calamine, one file at a time, restarted after a crash."""

    def __init__(self) -> None:
        self.proc = None
        self.conn = None
        self.owner = 0

    def read(self, data: bytes) -> tuple[dict[str, str], dict[str, list[list[Any]]]]:
        return self.begin(data).result()

    def begin(self, data: bytes) -> "Pending":
        """Hand the bytes to the helper and return at once, so the caller can scan meanwhile."""
        if not self._ready():
            return Pending(self, data, sent=False)         # no helper on this system: read here, later
        try:
            self.conn.send_bytes(data)
        except OSError:
            self.stop()
            return Pending(self, data, sent=False)
        return Pending(self, data, sent=True)

    def _ready(self) -> bool:
        if self.proc is not None and self.owner == os.getpid() and self.proc.is_alive():
            return True
        if self.owner != os.getpid():                      # inherited through a fork: not ours to use
            self.proc = self.conn = None
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
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join()
        self.proc = self.conn = None


class Pending:
    """A read handed to the helper: `result()` waits for it, `cancel()` (the file was refused meanwhile)
    stops the helper so that it does not go on with a file nobody wants."""

    def __init__(self, box: _Sandbox, data: bytes, sent: bool) -> None:
        self.box, self.data, self.sent = box, data, sent

    def result(self) -> tuple[dict[str, str], dict[str, list[list[Any]]]]:
        if not self.sent:
            return _calamine_values(self.data)
        self.sent = False
        box = self.box
        try:
            if not box.conn.poll(READ_SECONDS):
                box.stop()
                raise Refused("F104", detail=f"读取超过 {READ_SECONDS} 秒，文件结构异常")
            outcome = box.conn.recv()
        except (EOFError, OSError):
            box.stop()
            raise Refused("F104", detail="读取程序因文件结构异常而中止") from None
        if outcome[0] == "ok":
            return outcome[1], outcome[2]
        if outcome[0] == "refused":
            raise Refused(outcome[1], **outcome[2])
        raise Refused("F104", detail=outcome[1])

    def cancel(self) -> None:
        if self.sent:
            self.sent = False
            self.box.stop()


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


def begin_read(data: bytes) -> Pending:
    """Start reading the values in the helper; `.result()` gives what `read_values` gives."""
    return _SANDBOX.begin(data)
