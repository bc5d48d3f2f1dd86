"""Gather returned files from paths, folders and zip archives, check them all, apply the collection rules.

Every input is accounted for: each file found is either checked (and then used, superseded or
a duplicate) or skipped with a reason, so received = accepted + excluded + skipped.
"""

from __future__ import annotations

import array
import datetime as dt
import errno
import io
import os
import re
import stat
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .checks import Context, FileResult, Head, check_returned, name_unread
from .container import (MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, MAX_ARCHIVE_SECONDS, MAX_FILE_BYTES, MAX_RATIO, ZIP_MAGIC,
                        human_size, inflates_too_far, zip_reason)
from .issues import Code, Issue, issue
from .reader import Returned, cancel_returned, finish_returned, start_returned
from .settings import Township

JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xls", ".xlsb", ".ods", ".fods", ".et", ".ett"}
ARCHIVE_SUFFIXES = {".zip"}
OTHER_ARCHIVES = (".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz")
ARCHIVE_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error,
                  IndexError)
POOL_THRESHOLD = 150         # below this many files a process pool costs more than it saves (measured)
KEEP_RESULTS = 200           # verdicts kept as objects; the rest wait in a temporary file (memory flat in N)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file to check: on disk, or a member of an archive (read only when it is checked)."""

    path: str | Path
    name: str
    route: tuple[int, ...] = ()                  # member indexes: archive (› archive inside it) › file
    mtime: dt.datetime | None = None
    problem: tuple[str, dict] | None = None      # found while unpacking: (issue code, fields)


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str

    @property
    def issue(self) -> Issue:
        return issue(Code.SKIPPED, file=self.name, detail=self.reason)


def missing_issue(township: Township) -> Issue:
    """What is said of a township on the roster that no usable form came from (催报)."""
    return issue(Code.TOWNSHIP_MISSING, file=f"{township.name}（{township.code}）")


class Results(Sequence[FileResult]):
    """The verdicts of a batch, in the order checked, and every verdict's head (`Head`: its outcome).

    The first KEEP_RESULTS verdicts are kept as objects; the others are pickled into an anonymous
    temporary file as they arrive and read back one at a time when asked for, so a province's batch
    costs this process a head per file, not a whole verdict. A verdict kept holds the very head listed
    in `heads`; one read back is a fresh copy under a copy of its head. The collection rules change a
    verdict only through `set_role` and `add`, which go to its head.
    """

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._keep = KEEP_RESULTS
        self.heads: list[Head] = []
        self._kept: list[FileResult] = []          # the first KEEP_RESULTS verdicts
        self._spans = array.array("q")            # the others: (offset, length) in the file, flat
        self._file: Any = None

    def append(self, res: FileResult) -> None:
        e = res.entries
        res.head.copy_key = e.fingerprint() if e is not None and e.distinctive(self._ctx.rubric) else None
        if len(self.heads) < self._keep:
            self._kept.append(res)
        else:                                     # on disk first: a failed write leaves both lists in step
            import pickle
            import tempfile

            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="xa-results-")
            blob = pickle.dumps(res, pickle.HIGHEST_PROTOCOL)
            where = self._file.seek(0, io.SEEK_END)
            self._file.write(blob)
            self._spans.extend((where, len(blob)))
        self.heads.append(res.head)

    def __len__(self) -> int:
        return len(self.heads)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        if k < len(self._kept):
            return self._kept[k]
        import pickle

        at = 2 * (k - len(self._kept))
        self._file.seek(self._spans[at])
        return pickle.loads(self._file.read(self._spans[at + 1])).with_head(self.heads[k])

    def set_role(self, k: int, role: str) -> None:
        self.heads[k].role = role

    def add(self, k: int, item: Issue) -> None:
        if k < len(self._kept):
            self._kept[k].report.add(item)         # counted in its head
        else:
            head = self.heads[k]
            head.added = (head.added or []) + [item]
            head.count(item)


@dataclass
class Collection:
    results: Results
    skipped: list[Skipped] = field(default_factory=list)
    missing: list[Township] = field(default_factory=list)

    @property
    def heads(self) -> list[Head]:
        """A head per verdict: what counts and rules need, without reading verdicts back."""
        return self.results.heads

    @property
    def accepted(self) -> list[FileResult]:
        """The accepted verdicts, all at once (a province's are read back from disk: iterate the heads)."""
        return [self.results[k] for k, h in enumerate(self.heads) if h.accepted]

    @property
    def excluded(self) -> list[FileResult]:
        return [self.results[k] for k, h in enumerate(self.heads) if not h.accepted]

    @property
    def has_errors(self) -> bool:
        return any(h.status == "error" for h in self.heads if h.role != "duplicate")

    def summary(self) -> dict[str, int]:
        heads = self.heads
        counted = [h for h in heads if h.role != "duplicate"]
        accepted = sum(h.accepted for h in heads)
        return {
            "received": len(heads) + len(self.skipped),
            "accepted": accepted,
            "excluded": len(heads) - accepted,
            "ok": sum(h.status == "ok" for h in counted),
            "warning": sum(h.status == "warning" for h in counted),
            "error": sum(h.status == "error" for h in counted),
            "duplicate": sum(h.role == "duplicate" for h in heads),
            "superseded": sum(h.role == "superseded" for h in heads),
            "skipped": len(self.skipped),
            "missing": len(self.missing),
        }


def check_paths(paths: Iterable[str | Path], ctx: Context, progress: Callable[[int, int], None] | None = None,
                workers: int | None = None, output: str | Path | None = None) -> Collection:
    """Check every file under `paths` and apply the collection rules (`output`: our own ranking file,
    listed as skipped if it lies among the inputs)."""
    candidates, skipped = gather(paths, output)
    return check_gathered(candidates, skipped, ctx, progress, workers)


def check_gathered(candidates: list[Candidate], skipped: list[Skipped], ctx: Context,
                   progress: Callable[[int, int], None] | None = None, workers: int | None = None) -> Collection:
    """Check what `gather` found (a verdict per candidate, in order; the list is emptied as it is
    checked) and apply the collection rules."""
    results = Results(ctx)
    _check_all(candidates, ctx, progress, workers, results)
    coll = Collection(results, skipped)
    apply_rules(coll, ctx)
    return coll


def check_candidate(cand: Candidate, ctx: Context) -> FileResult:
    """The verdict on one candidate; whatever happens, a result with a reason, never an exception."""
    return _finish(cand, _start(cand), ctx)


def check_candidates(cands: Iterable[Candidate], ctx: Context) -> Iterator[FileResult]:
    """The verdicts on candidates in order, each file started before the one before it is checked, so
    that the helper reads the next file's values while this process checks the last one."""
    started = None
    try:
        for cand in cands:
            begun = (cand, _start(cand))
            if started is not None:
                yield _finish(*started, ctx)
            started = begun
        if started is not None:
            last, started = started, None
            yield _finish(*last, ctx)
    finally:                                  # stopped early: the helper need not read what nobody checks
        if started is not None and isinstance(started[1], Returned):
            cancel_returned(started[1])


def _start(cand: Candidate) -> Returned | FileResult:
    if cand.problem is not None:
        return _failed(cand, cand.problem)

    def start() -> Returned:
        data = member_bytes(cand.path, cand.route) if cand.route else None
        return start_returned(cand.path, cand.name, data, cand.mtime)

    return _attempt(cand, start)


def _finish(cand: Candidate, started: Returned | FileResult, ctx: Context) -> FileResult:
    if isinstance(started, FileResult):
        return name_unread(started, ctx)
    res = _attempt(cand, lambda: check_returned(finish_returned(started), ctx))
    cancel_returned(started)                  # a no-op unless the check failed before taking the values
    return name_unread(res, ctx)


def _attempt(cand: Candidate, work: Callable[[], Any]) -> Any:
    """`work()`, or a result for `cand` saying why it could not be done."""
    try:
        return work()
    except ARCHIVE_ERRORS as exc:
        problem = (Code.DAMAGED, {"detail": zip_reason(exc)})
    except MemoryError:
        problem = (Code.DECOMPRESSION_BOMB, {"detail": "读取时内存不足"})
    except Exception as exc:      # a fault of ours on an input nobody foresaw: still only this file's verdict
        problem = (Code.FILE_UNREADABLE, {"detail": f"核查时出错（{type(exc).__name__}: {exc}）"[:160]})
    return _failed(cand, problem)


def _failed(cand: Candidate, problem: tuple[str, dict]) -> FileResult:
    res = FileResult(cand.name, mtime=cand.mtime)
    res.add(problem[0], **problem[1])
    return res


def member_bytes(path: Path, route: tuple[int, ...]) -> bytes:
    """The bytes of an archive member (through one archive inside it, if so routed), read bounded."""
    data: bytes | None = None
    for index in route:
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as zf:
            info = zf.infolist()[index]
            with zf.open(info) as fh:       # stops at the declared size and checks the CRC
                data = fh.read(MAX_FILE_BYTES + 1)
    return data or b""


def _check_all(cands: list[Candidate], ctx: Context, progress, workers: int | None, out: Results) -> None:
    """Check the candidates in order into `out`, letting go of each candidate once it is checked."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    total = len(cands)
    if workers > 1 and total >= POOL_THRESHOLD:
        return _check_pool(cands, ctx, progress, workers, out)
    for res in check_candidates(_drain(cands), ctx):
        out.append(res)
        if progress:
            progress(len(out), total)


def _drain(items: list) -> Iterator:
    """The items in order, each dropped from the caller's list as it is taken (the list ends empty)."""
    items.reverse()
    while items:
        yield items.pop()


_POOL_CTX: Context | None = None


def _init_worker(ctx: Context, parent: int) -> None:
    global _POOL_CTX
    from .lifeline import die_with_parent

    die_with_parent(parent)                   # a killed command leaves no worker waiting on the queue
    _POOL_CTX = ctx


def _check_in_worker(cands: list[Candidate]) -> list[FileResult]:
    return list(check_candidates(cands, _POOL_CTX))


def _check_pool(cands: list[Candidate], ctx: Context, progress, workers: int, out: Results) -> None:
    """Chunks of candidates checked by a process pool, in order, a few chunks ahead of the results
    taken (so neither the candidates nor the results of a province wait in memory all at once)."""
    import itertools
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    total = len(cands)
    size = max(1, min(64, total // (workers * 8)))
    drained = _drain(cands)
    chunks = iter(lambda: list(itertools.islice(drained, size)), [])   # each checked in order, pipelined
    sent: deque[list] = deque()                 # [chunk, its future]: not yet in `out`
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker,
                                 initargs=(ctx, os.getpid())) as pool:

            def send(chunk: list[Candidate]) -> None:
                sent.append([chunk, None])          # listed first: if the pool is broken, it is checked here
                sent[-1][1] = pool.submit(_check_in_worker, chunk)

            for chunk in itertools.islice(chunks, workers * 4):
                send(chunk)
            while sent:
                results = sent[0][1].result()
                sent.popleft()
                for res in results:
                    out.append(res)
                if progress:
                    progress(len(out), total)
                chunk = next(chunks, None)
                if chunk is not None:
                    send(chunk)
    except BrokenProcessPool:              # a worker died (killed, out of memory): finish the rest here,
        for chunk, future in sent:         # keeping what the workers finished before it, in order
            done = future is not None and future.done() and not future.cancelled() and future.exception() is None
            for res in future.result() if done else check_candidates(chunk, ctx):
                out.append(res)
                if progress:
                    progress(len(out), total)
        for res in check_candidates(drained, ctx):
            out.append(res)
            if progress:
                progress(len(out), total)


# -- gathering ------------------------------------------------------------------------------------

def gather(paths: Iterable[str | Path], output: str | Path | None = None) -> tuple[list[Candidate], list[Skipped]]:
    """Every file under `paths` becomes a candidate or a skipped entry with its reason, whatever the file
    system holds: folders are walked and links followed once (a link back into what is walked, a dangling
    link, a FIFO or a device is skipped, and never opened); a file or folder that cannot be read (no
    permission, a path too long) is a candidate that fails with its reason (F101). Names are text that can
    be shown: bytes that are not UTF-8 appear as \\xNN."""
    walk = _Walk(_identity(output))
    for p in paths:
        walk.take(Path(p))
    return walk.cands, walk.skipped


class _Walk:
    """One gathering: what was found, and each folder and file already taken (by device and inode)."""

    def __init__(self, own: tuple[int, int] | None):
        self.cands: list[Candidate] = []
        self.skipped: list[Skipped] = []
        self.own = own                               # our own ranking file, if it exists
        self.seen: dict[tuple[int, int], str] = {}   # folders and files taken, to the name first taken under
        self.above: set[tuple[int, int]] = set()     # folders holding a starting folder: a link to one loops

    def take(self, path: Path) -> None:
        """`path` and, if it is a folder, everything under it, depth first in name order (no recursion)."""
        if os.path.isdir(path):
            self.above |= _ancestors(path)
        pending = [(path, True)]
        while pending:
            path, explicit = pending.pop()
            pending.extend((child, False) for child in reversed(self._one(path, explicit)))

    def _one(self, path: Path, explicit: bool) -> list[Path]:
        """Account for one entry; a folder's entries (in name order) to take next."""
        name = shown_name(str(path))
        try:
            st = os.stat(path)
        except OSError as exc:
            self._broken(path, name, exc)
            return []
        key = _key(st)
        if stat.S_ISDIR(st.st_mode):
            return self._folder(path, name, key)
        if not stat.S_ISREG(st.st_mode):
            self.skipped.append(Skipped(name, f"不是普通文件（{_special_kind(st.st_mode)}），未打开"))
        elif key is not None and key == self.own:
            self.skipped.append(Skipped(name, "本次生成的排名工作簿"))
        elif key in self.seen:
            self.skipped.append(Skipped(name, f"与 {self.seen[key]} 是同一个文件，未重复检查"))
        else:
            if key is not None:
                self.seen[key] = name
            if os.access(path, os.R_OK):
                _consider(path, name, self.cands, self.skipped, explicit)
            else:
                self._unreadable(name, "没有读取权限")
        return []

    def _folder(self, path: Path, name: str, key: tuple[int, int] | None) -> list[Path]:
        if key in self.above and os.path.islink(path):
            self.skipped.append(Skipped(name, "链接指回上级文件夹（链接循环），未跟随"))
            return []
        if key in self.seen:
            self.skipped.append(Skipped(name, f"与 {self.seen[key]} 是同一个文件夹，未重复检查"))
            return []
        if key is not None:
            self.seen[key] = name
        try:
            with os.scandir(path) as entries:
                names = sorted(e.name for e in entries)
        except OSError as exc:
            self._unreadable(name, f"文件夹无法打开（{_os_reason(exc)}），其中的文件都未检查")
            return []
        return [path / n for n in names]

    def _broken(self, path: Path, name: str, exc: OSError) -> None:
        """An entry that cannot be followed: a dangling or looping link is skipped, anything else unreadable."""
        try:
            link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            link = False
        if link and exc.errno == errno.ELOOP:
            self.skipped.append(Skipped(name, "链接循环（链接最终指回自己），未跟随"))
        elif link and exc.errno in (errno.ENOENT, errno.ENOTDIR):
            self.skipped.append(Skipped(name, "链接失效（指向的文件不存在）"))
        else:
            self._unreadable(name, _os_reason(exc))

    def _unreadable(self, name: str, detail: str) -> None:
        self.cands.append(Candidate(name, name, problem=(Code.FILE_UNREADABLE, {"detail": detail})))


_NOT_TEXT = re.compile("[\ud800-\udfff]")


def shown_name(text: str) -> str:
    """A path as text that can be printed and stored: each byte of a name that is not UTF-8 (which Python
    keeps as a lone surrogate) appears as \\xNN, so `bad\\xff.xlsx` names the file it came from."""
    if not _NOT_TEXT.search(text):
        return text
    return _NOT_TEXT.sub(_shown_char, text)


def _shown_char(m: re.Match) -> str:
    c = ord(m[0])
    return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\u{c:04x}"


def _key(st: os.stat_result) -> tuple[int, int] | None:
    """A file's identity (device, inode); None where the file system gives no inode (then nothing is merged)."""
    return (st.st_dev, st.st_ino) if st.st_ino else None


def _identity(path: str | Path | None) -> tuple[int, int] | None:
    try:
        return _key(os.stat(path)) if path else None
    except (OSError, ValueError):
        return None


def _ancestors(path: Path) -> set[tuple[int, int]]:
    """The identities of the folders above `path` (a link to one of them would walk `path` again)."""
    keys = set()
    here = os.path.dirname(os.path.realpath(path))
    while True:
        key = _identity(here)
        if key is not None:
            keys.add(key)
        up = os.path.dirname(here)
        if up == here:
            return keys
        here = up


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "命名管道 FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "设备文件"
    if stat.S_ISSOCK(mode):
        return "套接字"
    return "特殊文件"


def _os_reason(exc: OSError) -> str:
    """Why the file system refused, in Chinese."""
    return {
        errno.EACCES: "没有读取权限",
        errno.EPERM: "没有读取权限",
        errno.ENAMETOOLONG: "路径太长，超过系统允许的长度，请把文件移到较短的文件夹中再检查",
        errno.ELOOP: "链接循环",
        errno.ENOENT: "文件不存在（可能已被移走）",
        errno.ENOTDIR: "文件不存在（路径中有一段不是文件夹）",
        errno.EIO: "磁盘读取出错",
    }.get(exc.errno, exc.strerror or type(exc).__name__)


def skip_reason(name: str) -> str:
    """Why a file of this name is not a return to check ("" if it is one): lock files, hidden and system files."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    low = base.lower()
    if "__MACOSX/" in name.replace("\\", "/") or low.startswith("._"):
        return "苹果电脑压缩时附带的系统文件"
    if base.startswith("~$") or base.startswith(".~lock."):
        return "Office 打开文件时生成的临时锁定文件"
    if low in JUNK_NAMES:
        return "系统生成的文件"
    if base.startswith("."):
        return "隐藏文件或程序的临时文件"
    if low.endswith(OTHER_ARCHIVES):
        return "无法打开的压缩包（" + low.rsplit(".", 1)[-1] + "），请解压后再检查"
    return ""


def _consider(path: Path, name: str, cands, skipped, explicit: bool) -> None:
    reason = skip_reason(name)
    if reason:
        skipped.append(Skipped(name, reason))
        return
    suffix = path.suffix.lower()
    if suffix in ARCHIVE_SUFFIXES:
        _expand(path, name, cands, skipped)
    elif suffix in WORKBOOK_SUFFIXES or explicit:
        cands.append(Candidate(str(path), name))
    else:
        skipped.append(Skipped(name, "不是表格文件（扩展名 " + (suffix or "无") + "）"))


class _OverBudget(Exception):
    """An archive costs more than its `_Budget`: it is refused as a whole (the message gives the figures)."""


@dataclass
class _Budget:
    """What one archive, the archives inside it included, may cost: files, declared bytes, wall time.

    Declared bytes are what reading it all would inflate: each member's size, and for a member that is
    itself a zip (an .xlsx) the sizes its own directory declares, so a few hundred workbooks each just
    under the one-file limits cannot add up to minutes of work."""

    members: int = 0
    declared: int = 0
    started: float = field(default_factory=time.monotonic)

    def take(self, files: list[zipfile.ZipInfo]) -> None:
        """Count an archive's files in, from its directory alone (nothing inflated yet). The ratio is
        judged member by member (`_consider_member`): one bomb among good returns costs only itself."""
        self.members += len(files)
        if self.members > MAX_ARCHIVE_MEMBERS:
            raise _OverBudget(f"压缩包内有 {self.members} 个文件，上限 {MAX_ARCHIVE_MEMBERS} 个")
        self.add(sum(i.file_size for i in files))

    def peek(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        """Count in what a member that is a zip declares (read once here; a bad one is its own verdict later)."""
        try:
            with zf.open(info) as fh:
                blob = fh.read(MAX_FILE_BYTES + 1)
            if blob[:4] in ZIP_MAGIC:
                with zipfile.ZipFile(io.BytesIO(blob)) as inner:
                    self.add(sum(i.file_size for i in inner.infolist()))
        except ARCHIVE_ERRORS:
            return

    def add(self, declared: int) -> None:
        self.declared += declared
        if self.declared > MAX_ARCHIVE_BYTES:
            raise _OverBudget(f"压缩包内 {self.members} 个文件（含工作簿内的部件）声明解压后至少 {human_size(self.declared)}，"
                              f"上限 {human_size(MAX_ARCHIVE_BYTES)}")

    def tick(self) -> None:
        spent = time.monotonic() - self.started
        if spent > MAX_ARCHIVE_SECONDS:
            raise _OverBudget(f"展开压缩包已用 {spent:.0f} 秒，上限 {MAX_ARCHIVE_SECONDS:.0f} 秒")


def _expand(path: Path, name: str, cands: list[Candidate], skipped: list[Skipped], data: bytes | None = None,
            route: tuple[int, ...] = (), budget: _Budget | None = None) -> None:
    """Add an archive's members; one level of archive inside an archive is opened too.

    One bad member never costs the others: each is judged (and later read) on its own. An archive that
    costs more than its budget (with the archives inside it) is one F107 verdict, none of its members.
    """
    if budget is None:
        marks = len(cands), len(skipped)
        try:
            return _expand(path, name, cands, skipped, data, route, _Budget())
        except _OverBudget as over:
            del cands[marks[0]:], skipped[marks[1]:]
            cands.append(Candidate(str(path), name, route, problem=(Code.DECOMPRESSION_BOMB, {"detail": str(over)})))
            return
    try:
        if data is None:
            with open(path, "rb") as fh:
                head = fh.read(4)
        else:
            head = data[:4]
        if head not in ZIP_MAGIC:             # not a zip whatever its name says: let the reader say what it is
            cands.append(Candidate(str(path), name, route))
            return
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as zf:
            infos = zf.infolist()
            files = [i for i in infos if not i.is_dir()]
            budget.take(files)
            if not files:
                skipped.append(Skipped(name, "压缩包里没有文件"))
                return
            for index, info in enumerate(infos):
                if not info.is_dir():
                    budget.tick()
                    _consider_member(path, name, zf, index, info, route, cands, skipped, budget)
    except ARCHIVE_ERRORS as exc:
        cands.append(Candidate(str(path), name, route, problem=(Code.DAMAGED, {"detail": zip_reason(exc)})))


def _consider_member(path: Path, name: str, zf: zipfile.ZipFile, index: int, info: zipfile.ZipInfo,
                     route: tuple[int, ...], cands: list[Candidate], skipped: list[Skipped], budget: _Budget) -> None:
    inner = member_name(info)
    member = f"{name} › {inner}"
    reason = skip_reason(member)
    suffix = Path(inner).suffix.lower()
    if not reason and suffix not in WORKBOOK_SUFFIXES | ARCHIVE_SUFFIXES:
        reason = "不是表格文件（扩展名 " + (suffix or "无") + "）"
    if reason:
        skipped.append(Skipped(member, reason))
        return
    here = route + (index,)
    try:
        mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        mtime = None
    if info.flag_bits & 0x1:                  # ZipCrypto or AES: the names show, the contents need the password
        cands.append(Candidate(str(path), member, here, mtime, problem=(Code.PASSWORD_PROTECTED, {})))
    elif info.file_size > MAX_FILE_BYTES:
        cands.append(Candidate(str(path), member, here, mtime, problem=(
            Code.FILE_TOO_LARGE, {"value": human_size(info.file_size), "limit": human_size(MAX_FILE_BYTES)})))
    elif inflates_too_far(info.file_size, info.compress_size):
        cands.append(Candidate(str(path), member, here, mtime, problem=(Code.DECOMPRESSION_BOMB, {
            "detail": f"压缩后 {human_size(info.compress_size)}，声明解压后 {human_size(info.file_size)}，"
                      f"超过 {MAX_RATIO} 倍"})))
    elif suffix in ARCHIVE_SUFFIXES and route:
        cands.append(Candidate(str(path), member, here, mtime, problem=(Code.ARCHIVE_TOO_DEEP, {})))
    elif suffix in ARCHIVE_SUFFIXES:
        try:
            with zf.open(info) as fh:
                blob = fh.read(MAX_FILE_BYTES + 1)
        except ARCHIVE_ERRORS as exc:
            cands.append(Candidate(str(path), member, here, mtime, problem=(Code.DAMAGED, {"detail": zip_reason(exc)})))
            return
        _expand(path, member, cands, skipped, blob, here, budget)
    else:
        budget.peek(zf, info)
        cands.append(Candidate(str(path), member, here, mtime))


def member_name(info: zipfile.ZipInfo) -> str:
    """Archive member names: UTF-8 when flagged, else UTF-8 if it decodes, else GBK (Chinese Windows)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.orig_filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    for enc in ("utf-8", "gb18030"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return info.filename


# -- collection rules -----------------------------------------------------------------------------

def apply_rules(coll: Collection, ctx: Context) -> None:
    _merge_identical(coll.results)
    _keep_latest(coll.results)
    _flag_copies(coll.results)
    taken = {h.township.code for h in coll.heads if h.accepted}
    coll.missing = [t for t in ctx.townships if t.code not in taken]


def _merge_identical(results: Results) -> None:
    first: dict[str, Head] = {}
    for k, h in enumerate(results.heads):
        if not h.sha256:
            continue
        if h.sha256 in first:
            results.set_role(k, "duplicate")
            results.add(k, issue(Code.IDENTICAL_COPY, file=h.name, value=first[h.sha256].name))
        else:
            first[h.sha256] = h


def _keep_latest(results: Results) -> None:
    by_code: dict[str, list[int]] = {}
    for k, h in enumerate(results.heads):
        if h.role == "used" and h.township is not None:
            by_code.setdefault(h.township.code, []).append(k)
    floor = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    heads = results.heads
    for group in by_code.values():
        if len(group) < 2:
            continue
        latest = heads[max(group, key=lambda k: (heads[k].saved or floor, heads[k].mtime or floor, heads[k].name))]
        for k in group:
            if heads[k] is not latest:
                results.set_role(k, "superseded")
                results.add(k, issue(Code.SUPERSEDED, file=heads[k].name, value=latest.name))


def _flag_copies(results: Results) -> None:
    by_entries: dict[bytes, list[int]] = {}
    heads = results.heads
    for k, h in enumerate(heads):
        if h.role == "used" and h.copy_key is not None:
            by_entries.setdefault(h.copy_key, []).append(k)
    for group in by_entries.values():
        if len({heads[k].township.code for k in group}) < 2:
            continue
        for k in group:
            other = next(heads[o] for o in group if heads[o].township.code != heads[k].township.code)
            results.add(k, issue(Code.SAME_ENTRIES, file=heads[k].name, value=other.name, detail=other.township.name))
