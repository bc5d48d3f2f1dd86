"""python-calamine in a helper process: some damaged files make it abort (a failed allocation ends the
process, and no `except` can catch that) or hang. Then only the helper dies, the file is reported
damaged, and a new helper starts for the next file. Where no helper can be started, values are read
in this process.

One interface: `begin_read(bytes)` (`Helper.submit`) returns a future-like `Pending` at once; its
`outcome()` is one of the `ReadOutcome` types (`Values`, `Refusal`, `Died`, `TimedOut`, `Failed`,
`Cancelled`), and its `result()` the values or the `Refused` the reader reports. The size rule (F114)
is `check_size`, here and nowhere else.
"""

from __future__ import annotations

import io
import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping, NoReturn

from .issues import Code, Refused
from .layout import READ_SHEETS, a1
from .lifeline import start_lasting

Sheets = dict[str, str]                        # sheet -> visible | hidden | veryhidden
Rows = dict[str, list[list[Any]]]              # sheet -> rows of values

MAX_CELLS = 1_000_000                 # the rectangle a sheet spans: python-calamine allocates all of it


def check_size(sheet: str, rows: int, cols: int) -> None:
    """The size rule (F114), decided here and nowhere else: refuse a sheet whose used rectangle
    (rows × cols from A1) is too big to hold in memory.

    Each reader measures the rectangle its own way and asks here: the helper measures what
    python-calamine read, before sending it; the reader measures the XML of every worksheet of an
    .xlsx where python-calamine would run in this process or the helper died on the file, and every
    sheet of an .xls or .ods before reading it (python-calamine reads all of them at once)."""
    if rows * cols > MAX_CELLS:
        raise Refused(Code.SHEET_TOO_LARGE, value=sheet, detail=f"{a1(rows - 1, cols - 1)}（{rows} 行 × {cols} 列）")


def check_sizes(extents: Mapping[str, tuple[int, int]]) -> None:
    """`check_size` for every sheet of a file (sheet -> (rows, cols)), in order."""
    for sheet, (rows, cols) in extents.items():
        check_size(sheet, rows, cols)


def rows_extent(rows: list[list[Any]]) -> tuple[int, int]:
    """(rows, cols) a sheet's values span from A1, as python-calamine gives them."""
    return len(rows), max(map(len, rows), default=0)


def _calamine_values(data: bytes) -> tuple[Sheets, Rows]:
    import python_calamine as pc

    sheets: Sheets = {}
    values: Rows = {}
    try:
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        for meta in wb.sheets_metadata:
            sheets[meta.name] = str(meta.visible).rsplit(".", 1)[-1].lower()
        for name in sheets:
            if name in READ_SHEETS:
                values[name] = rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
                check_size(name, *rows_extent(rows))      # before it is sent anywhere
    except pc.PasswordError:
        raise Refused(Code.PASSWORD_PROTECTED) from None
    except Refused:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # calamine raises several types (a Rust panic is a BaseException); all mean the same
        raise Refused(Code.DAMAGED, detail=str(exc)[:120] or type(exc).__name__) from None
    return sheets, values


READ_SECONDS = 30                              # one file's values, in the helper
HELPER_EXTRA_MEMORY = 512 * 1024 * 1024        # address space the helper may add to what it inherits


# -- what became of a read: one small type per outcome ---------------------------------------------
# Each says what it means for the file through `unwrap()`: the values, or the Refused the reader reports.

@dataclass(frozen=True, slots=True)
class Values:
    """The values were read: every sheet's visibility, and the rows of the form's sheets."""

    sheets: Sheets
    values: Rows

    def unwrap(self) -> tuple[Sheets, Rows]:
        return self.sheets, self.values


@dataclass(frozen=True, slots=True)
class Refusal:
    """python-calamine or the size rule refused the file: report `code` with `fields`."""

    code: str
    fields: dict[str, Any]

    @classmethod
    def of(cls, stop: Refused) -> "Refusal":
        return cls(stop.code, dict(stop.fields))

    def unwrap(self) -> NoReturn:
        raise Refused(self.code, **self.fields)


@dataclass(frozen=True, slots=True)
class Died:
    """The helper ended while reading (python-calamine aborted it, or it was killed). `reason`: what the
    read's guard found in the file to explain it (a sheet too big to hold, F114), if anything."""

    reason: Refusal | None = None

    def unwrap(self) -> NoReturn:
        if self.reason is not None:
            self.reason.unwrap()
        raise Refused(Code.DAMAGED, detail="读取程序因文件结构异常而中止")


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The helper took longer than `seconds` on the file and was ended."""

    seconds: float

    def unwrap(self) -> NoReturn:
        raise Refused(Code.DAMAGED, detail=f"读取超过 {self.seconds} 秒，文件结构异常")


@dataclass(frozen=True, slots=True)
class Failed:
    """Something nobody foresaw went wrong in the helper, or the helper was stopped under the read."""

    detail: str

    def unwrap(self) -> NoReturn:
        raise Refused(Code.DAMAGED, detail=self.detail)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The read was cancelled: nobody wants the file's values."""

    def unwrap(self) -> NoReturn:
        raise Refused(Code.DAMAGED, detail="读取已取消")


ReadOutcome = Values | Refusal | Died | TimedOut | Failed | Cancelled


class Pending:
    """A read handed to the helper, future-like: `outcome()` waits for it and gives its `ReadOutcome`,
    `result()` gives the values or raises Refused, `cancel()` drops it (the file was refused meanwhile),
    stopping the helper if it has started on it, so that it does not go on with a file nobody wants.

    Only its `Helper` settles it; it keeps nothing of the helper's bookkeeping."""

    __slots__ = ("_helper", "data", "guard", "_outcome")

    def __init__(self, helper: "Helper", data: bytes, guard: Callable[[], None] | None = None) -> None:
        self._helper, self.data, self.guard = helper, data, guard
        self._outcome: ReadOutcome | None = None

    def done(self) -> bool:
        return self._outcome is not None

    def outcome(self) -> ReadOutcome:
        if self._outcome is None:
            self._helper.wait(self)
        return self._outcome

    def result(self) -> tuple[Sheets, Rows]:
        """(sheet -> visibility, sheet -> rows of values); raises Refused."""
        return self.outcome().unwrap()

    def cancel(self) -> None:
        self._helper.cancel(self)

    def _settle(self, outcome: ReadOutcome) -> None:
        self._outcome, self.data = outcome, b""


class Helper:
    """A helper process that reads values with python-calamine, one file at a time, restarted after a crash.

    `submit(bytes)` returns a `Pending` at once. One read is in flight at a time; a read submitted
    meanwhile waits in a queue and is sent the moment the one before it is collected, so the helper
    reads the next file while this process checks the last one. (Sending only to an idle helper also
    means neither side can block the other on a full pipe.) A read that cannot be sent (no helper can
    start here, or it was submitted before this process forked) is read in this process when waited for.
    With `processes=False` every read is.
    """

    def __init__(self, processes: bool = True) -> None:
        self._processes = processes
        self._proc: Any = None
        self._conn: Any = None
        self._owner = 0
        self._inflight: Pending | None = None
        self._queue: deque[Pending] = deque()
        self._lock, self._lock_owner = threading.RLock(), os.getpid()

    def _locked(self) -> "threading.RLock":
        """The lock every public method holds: the page reads through one helper from several threads (a
        read answered to another thread's file was another file's values). A lock inherited through a fork
        may be held by a thread the child does not have: the child makes its own."""
        if self._lock_owner != os.getpid():
            self._lock, self._lock_owner = threading.RLock(), os.getpid()
        return self._lock

    @property
    def pid(self) -> int | None:
        """The helper process's id, if one is running for this process."""
        with self._locked():
            return self._proc.pid if self._proc is not None and self._owner == os.getpid() else None

    def read(self, data: bytes) -> tuple[Sheets, Rows]:
        return self.submit(data).result()

    def submit(self, data: bytes, guard: Callable[[], None] | None = None) -> Pending:
        """Hand the bytes to the helper (or queue them behind the read in flight) and return at once.

        `guard()` raises Refused for a file python-calamine must not read: it runs before a read in this
        process, and after the helper died on the file, to tell why."""
        with self._locked():
            self._forget_if_forked()
            pending = Pending(self, data, guard)
            self._queue.append(pending)
            self._send_next()
            return pending

    def wait(self, pending: Pending) -> None:
        """Settle `pending` (and, on the way, the read sent before it, kept for its owner)."""
        with self._locked():
            self._forget_if_forked()
            while not pending.done():
                if self._inflight is not None:
                    self._collect()
                elif pending in self._queue:
                    self._send_next()
                else:                                    # never sent: read here
                    pending._settle(_read_here(pending.data, pending.guard))

    def cancel(self, pending: Pending) -> None:
        with self._locked():
            self._forget_if_forked()
            if pending is self._inflight:
                self._inflight = None
                self.stop()
                self._send_next()
            elif pending in self._queue:
                self._queue.remove(pending)
            pending._settle(Cancelled())                 # whatever it held is let go of

    def stop(self) -> None:
        """End the helper; a read in flight is settled as failed (its owner cancelled it, or it is reported)."""
        with self._locked():
            self._forget_if_forked()
            if self._conn is not None:
                self._conn.close()
            if self._proc is not None:
                if self._proc.is_alive():
                    self._proc.kill()
                self._proc.join()                        # no timeout: the helper closed its sentinel
            self._proc = self._conn = None
            if self._inflight is not None:
                pending, self._inflight = self._inflight, None
                pending._settle(Failed("读取程序已停止"))

    def _send_next(self) -> None:
        """Send queued reads while the helper is idle (a read that cannot be sent is read here, later)."""
        while self._inflight is None and self._queue:
            pending = self._queue.popleft()
            if not self._ready():
                continue
            try:
                self._conn.send_bytes(pending.data)
            except OSError:
                self.stop()
                continue
            self._inflight = pending

    def _collect(self) -> None:
        """Wait for the read in flight and settle it; then send the next."""
        pending, self._inflight = self._inflight, None
        try:
            if self._conn.poll(READ_SECONDS):
                outcome = self._conn.recv()
            else:
                self.stop()
                outcome = TimedOut(READ_SECONDS)
        except (EOFError, OSError):
            self.stop()
            outcome = Died(_explain(pending.guard))
        except BaseException:                # interrupted (Ctrl+C caught by a script): its answer would be
            self._inflight = pending         # the next read's, so the helper goes with the read
            self.stop()
            raise
        pending._settle(outcome)
        self._send_next()

    def _forget_if_forked(self) -> None:
        """A helper, pipe and reads inherited through a fork belong to the parent: drop them unclosed."""
        if self._owner != os.getpid():
            self._proc = self._conn = self._inflight = None
            self._queue.clear()
            self._owner = os.getpid()

    def _ready(self) -> bool:
        if self._proc is not None and self._owner == os.getpid() and self._proc.is_alive():
            return True
        self._forget_if_forked()
        self.stop()
        if not self._processes:
            return False
        try:
            import multiprocessing as mp

            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            self._conn, theirs = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(theirs, self._conn, os.getpid()), name="xlsx-assess-reader",
                                     daemon=True)
            start_lasting(self._proc.start)              # not from a thread that may end before the helper
            theirs.close()
            self._owner = os.getpid()
            return True
        except (OSError, ValueError, AssertionError):     # e.g. no processes allowed here
            self._proc = self._conn = None
            return False


def _read_here(data: bytes, guard: Callable[[], None] | None) -> ReadOutcome:
    """The values read in this process, the guard first (python-calamine may abort the process)."""
    try:
        if guard is not None:
            guard()
        return Values(*_calamine_values(data))
    except Refused as stop:
        return Refusal.of(stop)


def _explain(guard: Callable[[], None] | None) -> Refusal | None:
    """Why the helper died on a file, if its guard can tell."""
    if guard is not None:
        try:
            guard()
        except Refused as stop:
            return Refusal.of(stop)
        except Exception:            # the file is reported damaged (F104) either way
            pass
    return None


_SANDBOX = Helper()


def _serve(conn, ours, parent: int) -> None:
    """The helper's loop: bytes in, a `ReadOutcome` out, until the pipe closes or the process that
    started it is gone (killed: then other processes may still hold the pipe open)."""
    from .lifeline import die_with_parent

    die_with_parent(parent)                     # killed with it, even while python-calamine reads
    ours.close()                                # the parent's end, inherited through fork
    _close_inherited(conn.fileno())
    _plain_signals()
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
            outcome = _read_here(data, None)
        except BaseException as exc:
            outcome = Failed(f"{type(exc).__name__}: {exc}"[:120])
        conn.send(outcome)


def _close_inherited(keep: int) -> None:
    """Close every descriptor a fork copied into the helper but its pipe and the standard streams. The
    helper lives as long as the process: a copy it held of another pipe or socket kept that open after
    its owner closed it (a program waiting for end-of-file on it waited for ever, a closed connection
    never ended). Where the helper was spawned, not forked, there is nothing to close.

    The open ones are listed and closed, not every number up to the limit: without Linux's close_range
    (kernels before 5.9) that would be a call per possible descriptor, minutes where the limit is 2**30.
    This closes multiprocessing's sentinel too, so `Process.sentinel` and `join(timeout)` cannot tell
    when the helper ends: `Helper.stop` kills it and joins without a timeout, `is_alive` asks waitpid."""
    if os.name != "posix":
        return
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            open_fds = [int(name) for name in os.listdir(folder)]
        except (OSError, ValueError):
            continue
        for fd in open_fds:
            if fd > 2 and fd != keep:
                try:
                    os.close(fd)
                except OSError:                 # the listing's own, already closed
                    pass
        return
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)


def _plain_signals() -> None:
    """The helper's signals as a new program has them. A handler copied through the fork (uvicorn's, which
    only asks its server to stop) made SIGTERM, multiprocessing's way of ending a daemon child at exit, do
    nothing: after one Ctrl+C the page's process waited for ever on its helper. Ctrl+C itself is for the
    process that started the helper, which ends it."""
    import signal

    try:
        signal.set_wakeup_fd(-1)                # the copied one was closed with the rest
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError, AttributeError):
        pass


def _limit_memory() -> None:
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as fh:
            size = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + HELPER_EXTRA_MEMORY, resource.RLIM_INFINITY))
    except (ImportError, OSError, StopIteration, ValueError):
        pass                                    # not Linux: the time limit still holds


def read_values(data: bytes) -> tuple[Sheets, Rows]:
    """(sheet -> visibility, sheet -> rows of values) of the form's sheets; raises Refused."""
    return _SANDBOX.read(data)


def begin_read(data: bytes, guard: Callable[[], None] | None = None) -> Pending:
    """Start reading the values in the helper; `.result()` gives what `read_values` gives."""
    return _SANDBOX.submit(data, guard)


def helper_pid() -> int | None:
    """The id of this process's helper, if one is running."""
    return _SANDBOX.pid


def stop_helper() -> None:
    """End this process's helper (the next read starts a new one)."""
    _SANDBOX.stop()
