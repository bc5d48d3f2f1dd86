"""The round's ledger: every file `check` ever saw in 收回/, kept by content, with its names and verdicts.

A file is kept as `files/<sha[:2]>/<sha256>` (written atomically, through `staging`, and never rewritten)
before any row names it, so a `kill -9` at any moment leaves at worst a kept file no row names yet, never
a row without its file. The rows live in SQLite (the standard library's), in WAL mode, with a busy
timeout, short transactions and idempotent inserts, so two commands may record into it at once:

    files     one row per content: size, when first seen, the name first seen under
    names     every name a content was seen under ("收回/a.xlsx", or "包.zip › 成员.xlsx")
    verdicts  per content and per setup (`context_key`): status, role, township, score as exact text,
              issue codes and the issues themselves, who filled it in, when checked, rubric sha
    reviews   every 核定表 seen in 核定/ (kept by content the same way): name, township, the return it
              was made from, its stage (verified | pending | stale | error)

Deleting or renaming a file in 收回/ loses nothing: `Ledger.kept` still lists it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from .issues import AssessError, Code, Issue, Report, issue

SCHEMA_VERSION = 2                  # 2: the reviews table (核定表s)
BUSY_MS = 60_000                    # how long a command waits for another one's transaction
BATCH = 50                          # rows recorded per transaction: each short, so the other command waits little

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    first_seen  TEXT NOT NULL,
    first_name  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    sha256      TEXT NOT NULL REFERENCES files(sha256),
    name        TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (sha256, name)
);
CREATE TABLE IF NOT EXISTS verdicts (
    sha256         TEXT NOT NULL REFERENCES files(sha256),
    context        TEXT NOT NULL,
    rubric_sha256  TEXT NOT NULL,
    year           INTEGER NOT NULL,
    status         TEXT NOT NULL,
    role           TEXT NOT NULL,
    township_code  TEXT NOT NULL,
    other_version  TEXT NOT NULL,
    scored         INTEGER NOT NULL,
    score          TEXT,
    grade          TEXT NOT NULL,
    reporter       TEXT NOT NULL,
    phone          TEXT NOT NULL,
    saved          TEXT,
    mtime          TEXT,
    issue_codes    TEXT NOT NULL,
    issues         TEXT NOT NULL,
    checked        TEXT NOT NULL,
    PRIMARY KEY (sha256, context)
);
CREATE TABLE IF NOT EXISTS reviews (
    sha256         TEXT NOT NULL,
    name           TEXT NOT NULL,
    first_seen     TEXT NOT NULL,
    last_seen      TEXT NOT NULL,
    township_code  TEXT NOT NULL,
    return_sha256  TEXT NOT NULL,
    status         TEXT NOT NULL,
    PRIMARY KEY (sha256, name)
);
"""


@dataclass(frozen=True)
class Verdict:
    """What a check said of one file under one setup (its role is the batch's: used, superseded, …)."""

    context: str
    rubric_sha256: str
    year: int
    status: str                          # ok | warning | error
    role: str                            # used | superseded | duplicate | other_version
    township_code: str                   # whose it is ("" unknown): by identity, even another year's form
    other_version: str = ""              # "" or "year:2027" / "rubric:<sha>": made for another setup
    scored: bool = False
    score: Decimal | None = None         # final score, exactly as the form shows it
    grade: str = ""
    reporter: str = ""
    phone: str = ""
    saved: dt.datetime | None = None
    mtime: dt.datetime | None = None
    issues: tuple[Issue, ...] = ()       # its own issues (not "superseded"/"identical copy": the board says so)
    checked: dt.datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.scored and self.status != "error" and not self.other_version


@dataclass(frozen=True)
class Sighting:
    """One file seen in 收回/ by a run: its bytes' digest (already kept), the name, and its verdict."""

    sha256: str
    size: int
    name: str
    verdict: Verdict | None
    seen: bool = True                    # False: checked again from its kept copy, not seen in 收回/ now


@dataclass(frozen=True)
class Kept:
    """A file the ledger keeps, with every name it came under and the verdict chosen by `Ledger.kept`."""

    sha256: str
    size: int
    first_seen: dt.datetime
    name: str                            # the name first seen under
    names: tuple[str, ...]
    verdict: Verdict | None
    arrived: dt.datetime | None = None  # when it last came under a name not seen before: a resend's time


def now() -> dt.datetime:
    """The time a run records: local, aware."""
    return dt.datetime.now().astimezone()


def kept_path(files: Path, sha256: str) -> Path:
    return files / sha256[:2] / sha256


def keep_bytes(files: Path, data: bytes) -> str:
    """Keep `data` by content under `files` (atomically; left as is if already kept); its sha256."""
    from .staging import stage

    sha = hashlib.sha256(data).hexdigest()
    target = kept_path(files, sha)
    if target.is_file() and target.stat().st_size == len(data):
        return sha
    staged = stage(target.parent)
    try:
        staged.file.write(data)
    except BaseException:
        staged.discard()
        raise
    staged.move_into_place(target)
    return sha


def _guarded(method):
    """A Ledger method whose SQLite errors are reported (C510 busy past BUSY_MS, C507 otherwise: a full
    disk, a damaged file), never a traceback; a transaction it began is rolled back by `_Transaction`."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _failure(self.path, exc) from exc
    return guarded


def _failure(path: Path, exc: sqlite3.Error) -> AssessError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return AssessError(Report([issue(Code.LEDGER_BUSY, file=str(path), value=f"{BUSY_MS / 1000:g}")]))
    return _unreadable(path, text)


class Ledger:
    """The ledger of one round: `Ledger(path, files)`, used as a context manager (or closed). Its SQLite
    errors are AssessErrors (`_guarded`)."""

    def __init__(self, path: Path, files: Path) -> None:
        self.path, self.files = Path(path), Path(files)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.files.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise _failure(self.path, exc) from exc
        try:
            self._open()
        except BaseException:
            self._db.close()
            raise

    @_guarded
    def _open(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        self._wal()
        self._migrate()

    @classmethod
    def of_round(cls, rnd) -> "Ledger":
        return cls(rnd.ledger, rnd.files)

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- schema ---------------------------------------------------------------------------------------

    def _wal(self) -> None:
        for _ in range(50):                  # switching needs a moment alone with the file
            try:
                mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(0.1)
                continue
            if mode.lower() == "wal":
                return
            time.sleep(0.1)

    def _migrate(self) -> None:
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _unreadable(self.path, f"由更新版本的 xlsx-assess 写入（格式 {version}，本程序只认到 {SCHEMA_VERSION}），"
                                             "请升级 xlsx-assess")
            if version < SCHEMA_VERSION:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _write(self):
        return _Transaction(self._db)

    # -- recording ------------------------------------------------------------------------------------

    def keep(self, data: bytes) -> str:
        """Keep a file's bytes by content (before any row names it); its sha256."""
        return keep_bytes(self.files, data)

    @_guarded
    def record(self, sightings: Iterable[Sighting], seen: dt.datetime | None = None) -> None:
        """Record what a run saw, a few rows per transaction; each row's file must be kept already."""
        seen_text = _time_text(seen or now())
        batch: list[Sighting] = []
        for s in sightings:
            batch.append(s)
            if len(batch) >= BATCH:
                self._record(batch, seen_text)
                batch = []
        if batch:
            self._record(batch, seen_text)

    def _record(self, batch: list[Sighting], seen: str) -> None:
        for s in batch:
            if not kept_path(self.files, s.sha256).is_file():
                raise FileNotFoundError(f"not kept before being recorded: {s.sha256}")
        with self._write():
            for s in batch:
                self._db.execute("INSERT OR IGNORE INTO files VALUES (?, ?, ?, ?)", (s.sha256, s.size, seen, s.name))
                if s.seen:
                    self._db.execute("INSERT INTO names VALUES (?, ?, ?, ?) ON CONFLICT (sha256, name) "
                                     "DO UPDATE SET last_seen = excluded.last_seen", (s.sha256, s.name, seen, seen))
                if s.verdict is not None:
                    self._db.execute("INSERT OR REPLACE INTO verdicts VALUES "
                                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                     (s.sha256, *_verdict_row(s.verdict)))

    @_guarded
    def record_review(self, sha256: str, name: str, township_code: str, return_sha256: str, status: str,
                      seen: dt.datetime | None = None) -> None:
        """Record a 核定表 seen in 核定/ (its bytes kept already, by `keep`)."""
        if not kept_path(self.files, sha256).is_file():
            raise FileNotFoundError(f"not kept before being recorded: {sha256}")
        when = _time_text(seen or now())
        with self._write():
            self._db.execute("INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256, name) DO UPDATE "
                             "SET last_seen = excluded.last_seen, status = excluded.status",
                             (sha256, name, when, when, township_code, return_sha256, status))

    @_guarded
    def reviews(self) -> list[tuple[str, str, dt.datetime, str, str, str]]:
        """Every 核定表 recorded, oldest first: (sha256, name, last seen, township code, return sha256, status)."""
        return [(sha, name, _parse_time(last), code, ret, status) for sha, name, last, code, ret, status in self._db.execute(
            "SELECT sha256, name, last_seen, township_code, return_sha256, status FROM reviews ORDER BY last_seen, name")]

    # -- reading --------------------------------------------------------------------------------------

    @_guarded
    def kept(self, context: str | None = None) -> list[Kept]:
        """Every file kept, oldest first, each with its verdict under `context` if there is one, else its
        latest verdict under any setup (None if it was never checked to the end)."""
        db = self._db
        names: dict[str, list[str]] = {}
        arrived: dict[str, str] = {}
        for sha, name, seen in db.execute("SELECT sha256, name, first_seen FROM names ORDER BY first_seen, name"):
            names.setdefault(sha, []).append(name)
            arrived[sha] = seen                             # text in UTC: order is time order
        verdicts: dict[str, Verdict] = {}
        for row in db.execute("SELECT * FROM verdicts ORDER BY checked"):
            v = _verdict_of(row[1:])
            if context is None or row[0] not in verdicts or v.context == context or verdicts[row[0]].context != context:
                verdicts[row[0]] = v
        return [Kept(sha, size, _parse_time(first), name, tuple(names.get(sha, (name,))), verdicts.get(sha),
                     _parse_time(arrived.get(sha, first)))
                for sha, size, first, name in db.execute(
                    "SELECT sha256, size, first_seen, first_name FROM files ORDER BY first_seen, first_name")]

    def bytes_of(self, sha256: str) -> bytes:
        return kept_path(self.files, sha256).read_bytes()

    @_guarded
    def integrity(self) -> list[str]:
        """What is wrong with the ledger: SQLite's own check, then every row whose file is not kept."""
        problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        for (sha,) in self._db.execute("SELECT sha256 FROM files"):
            if not kept_path(self.files, sha).is_file():
                problems.append(f"missing file {sha}")
        return problems


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error): the write lock taken at once, waited for."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *rest) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def context_key(ctx) -> str:
    """Which setup a verdict was made under: rubric, settings and roster (a change to any re-checks)."""
    roster = [(t.code, t.name, t.kind) for t in ctx.townships]
    text = repr((ctx.rubric.fingerprint, ctx.settings, roster))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _unreadable(path: Path, detail: str) -> AssessError:
    return AssessError(Report([issue(Code.LEDGER_UNREADABLE, file=str(path), detail=detail)]))


# -- rows -------------------------------------------------------------------------------------------

def _time_text(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.timezone.utc).isoformat() if t is not None else None      # UTC: ordered as text


def _parse_time(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _issue_dict(i: Issue) -> dict:
    return {"code": i.code, "severity": i.severity, "message": i.message, "file": i.file, "sheet": i.sheet,
            "cell": i.cell, "line": i.line, "column": i.column}


def _verdict_row(v: Verdict) -> tuple:
    return (v.context, v.rubric_sha256, v.year, v.status, v.role, v.township_code, v.other_version, int(v.scored),
            None if v.score is None else str(v.score), v.grade, v.reporter, v.phone, _time_text(v.saved),
            _time_text(v.mtime), " ".join(i.code for i in v.issues),
            json.dumps([_issue_dict(i) for i in v.issues], ensure_ascii=False), _time_text(v.checked or now()))


def _verdict_of(row: tuple) -> Verdict:
    (context, rubric, year, status, role, code, other, scored, score, grade, reporter, phone, saved, mtime,
     _codes, issues, checked) = row
    return Verdict(context, rubric, year, status, role, code, other, bool(scored),
                   None if score is None else Decimal(score), grade, reporter, phone, _parse_time(saved),
                   _parse_time(mtime), tuple(Issue(**d) for d in json.loads(issues)), _parse_time(checked))


def ledger_exists(rnd) -> bool:
    return os.path.isfile(rnd.ledger)
