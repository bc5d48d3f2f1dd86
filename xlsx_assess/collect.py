"""Gather returned files from paths, folders and zip archives, check them all, apply the collection rules.

Every input is accounted for: each file found is either checked (and then used, superseded or
a duplicate) or skipped with a reason, so received = accepted + excluded + skipped.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .checks import Context, FileResult, check_returned
from .issues import issue
from .reader import MAX_FILE_BYTES, MAX_MEMBERS, MAX_TOTAL_BYTES, human_size, read_returned, zip_reason
from .settings import Township

JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
WORKBOOK_SUFFIXES = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xls", ".xlsb", ".ods", ".et", ".ett"}
ARCHIVE_SUFFIXES = {".zip"}
POOL_THRESHOLD = 48          # below this many files a process pool costs more than it saves


@dataclass(frozen=True)
class Candidate:
    """A file to check: on disk, or the bytes of an archive member."""

    path: Path
    name: str
    data: bytes | None = None
    mtime: dt.datetime | None = None
    problem: tuple[str, dict] | None = None      # found while unpacking: (issue code, fields)


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass
class Collection:
    results: list[FileResult] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    missing: list[Township] = field(default_factory=list)

    @property
    def accepted(self) -> list[FileResult]:
        return [r for r in self.results if r.accepted]

    @property
    def excluded(self) -> list[FileResult]:
        return [r for r in self.results if not r.accepted]

    @property
    def has_errors(self) -> bool:
        return any(r.status == "error" for r in self.results if r.role != "duplicate")

    def summary(self) -> dict[str, int]:
        counted = [r for r in self.results if r.role != "duplicate"]
        return {
            "received": len(self.results) + len(self.skipped),
            "accepted": len(self.accepted),
            "excluded": len(self.excluded),
            "ok": sum(r.status == "ok" for r in counted),
            "warning": sum(r.status == "warning" for r in counted),
            "error": sum(r.status == "error" for r in counted),
            "duplicate": sum(r.role == "duplicate" for r in self.results),
            "superseded": sum(r.role == "superseded" for r in self.results),
            "skipped": len(self.skipped),
            "missing": len(self.missing),
        }


def check_paths(paths: Iterable[str | Path], ctx: Context, progress: Callable[[int, int], None] | None = None,
                workers: int | None = None) -> Collection:
    """Check every file under `paths` and apply the collection rules."""
    candidates, skipped = gather(paths)
    results = _check_all(candidates, ctx, progress, workers)
    coll = Collection(results, skipped)
    apply_rules(coll, ctx)
    return coll


def check_candidate(cand: Candidate, ctx: Context) -> FileResult:
    if cand.problem is not None:
        res = FileResult(cand.name, mtime=cand.mtime)
        res.add(cand.problem[0], **cand.problem[1])
        return res
    return check_returned(read_returned(cand.path, cand.name, cand.data, cand.mtime), ctx)


def _check_all(cands: list[Candidate], ctx: Context, progress, workers: int | None) -> list[FileResult]:
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers > 1 and len(cands) >= POOL_THRESHOLD:
        return _check_pool(cands, ctx, progress, workers)
    out = []
    for k, cand in enumerate(cands, start=1):
        out.append(check_candidate(cand, ctx))
        if progress:
            progress(k, len(cands))
    return out


_POOL_CTX: Context | None = None


def _init_worker(ctx: Context) -> None:
    global _POOL_CTX
    _POOL_CTX = ctx


def _check_in_worker(cand: Candidate) -> FileResult:
    return check_candidate(cand, _POOL_CTX)


def _check_pool(cands: list[Candidate], ctx: Context, progress, workers: int) -> list[FileResult]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    chunk = max(1, min(64, len(cands) // (workers * 8)))
    out = []
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker,
                             initargs=(ctx,)) as pool:
        for k, res in enumerate(pool.map(_check_in_worker, cands, chunksize=chunk), start=1):
            out.append(res)
            if progress:
                progress(k, len(cands))
    return out


# -- gathering ------------------------------------------------------------------------------------

def gather(paths: Iterable[str | Path]) -> tuple[list[Candidate], list[Skipped]]:
    cands: list[Candidate] = []
    skipped: list[Skipped] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    _consider(f, str(f), cands, skipped, explicit=False)
        else:
            _consider(p, str(p), cands, skipped, explicit=True)
    return cands, skipped


def _skip_reason(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    low = base.lower()
    if "__MACOSX/" in name.replace("\\", "/") or low.startswith("._"):
        return "苹果电脑压缩时附带的系统文件"
    if base.startswith("~$") or base.startswith(".~lock."):
        return "Office 打开文件时生成的临时锁定文件"
    if low in JUNK_NAMES:
        return "系统生成的文件"
    return ""


def _consider(path: Path, name: str, cands, skipped, explicit: bool) -> None:
    reason = _skip_reason(name)
    if reason:
        skipped.append(Skipped(name, reason))
        return
    suffix = path.suffix.lower()
    if suffix in ARCHIVE_SUFFIXES:
        _expand(path, name, cands, skipped)
    elif suffix in WORKBOOK_SUFFIXES or explicit:
        cands.append(Candidate(path, name))
    else:
        skipped.append(Skipped(name, "不是表格文件（扩展名 " + (suffix or "无") + "）"))


def _expand(path: Path, name: str, cands: list[Candidate], skipped: list[Skipped], data: bytes | None = None,
            depth: int = 0) -> None:
    """Add an archive's members; one level of archive inside an archive is opened too."""
    try:
        source = io.BytesIO(data) if data is not None else path
        with zipfile.ZipFile(source) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            declared = sum(i.file_size for i in infos)
            if len(infos) > MAX_MEMBERS or declared > MAX_TOTAL_BYTES * 10:
                cands.append(Candidate(path, name, problem=("F107", {"detail": f"{len(infos)} 个文件，共 {declared} 字节"})))
                return
            for info in infos:
                member = f"{name} › {member_name(info)}"
                reason = _skip_reason(member)
                if reason:
                    skipped.append(Skipped(member, reason))
                    continue
                suffix = Path(member_name(info)).suffix.lower()
                if suffix not in WORKBOOK_SUFFIXES | ARCHIVE_SUFFIXES:
                    skipped.append(Skipped(member, "不是表格文件（扩展名 " + (suffix or "无") + "）"))
                    continue
                if info.file_size > MAX_FILE_BYTES:
                    cands.append(Candidate(path, member, problem=("F106", {"value": human_size(info.file_size),
                                                                           "limit": human_size(MAX_FILE_BYTES)})))
                    continue
                with zf.open(info) as fh:
                    blob = fh.read(MAX_FILE_BYTES + 1)
                mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc)
                if suffix in ARCHIVE_SUFFIXES and depth > 0:
                    cands.append(Candidate(path, member, problem=("F113", {})))
                elif suffix in ARCHIVE_SUFFIXES:
                    _expand(path, member, cands, skipped, blob, depth + 1)
                else:
                    cands.append(Candidate(path, member, blob, mtime))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        cands.append(Candidate(path, name, problem=("F104", {"detail": zip_reason(exc)})))


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
    _flag_copies(coll.results, ctx)
    taken = {r.township.code for r in coll.accepted}
    coll.missing = [t for t in ctx.townships if t.code not in taken]


def _merge_identical(results: list[FileResult]) -> None:
    first: dict[str, FileResult] = {}
    for r in results:
        if not r.sha256:
            continue
        if r.sha256 in first:
            r.role = "duplicate"
            r.add("C502", value=first[r.sha256].name)
        else:
            first[r.sha256] = r


def _keep_latest(results: list[FileResult]) -> None:
    by_code: dict[str, list[FileResult]] = {}
    for r in results:
        if r.role == "used" and r.township is not None:
            by_code.setdefault(r.township.code, []).append(r)
    floor = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    for group in by_code.values():
        if len(group) < 2:
            continue
        latest = max(group, key=lambda r: (r.saved or floor, r.mtime or floor, r.name))
        for r in group:
            if r is not latest:
                r.role = "superseded"
                r.add("C501", value=latest.name)


def _flag_copies(results: list[FileResult], ctx: Context) -> None:
    by_entries: dict[tuple, list[FileResult]] = {}
    for r in results:
        if r.role == "used" and r.entries is not None and r.entries.distinctive(ctx.rubric):
            by_entries.setdefault(r.entries.fingerprint(), []).append(r)
    for group in by_entries.values():
        if len({r.township.code for r in group}) < 2:
            continue
        for r in group:
            others = [o for o in group if o.township.code != r.township.code]
            r.report.add(issue("C504", file=r.name, value=others[0].name, detail=others[0].township.name))
