"""Files uploaded through the page: kept by content, placed in 收回/ under names we make, checked as `check`
checks 收回/ (`workflow.check_round`), and answered file by file.

An uploaded name is never a path: only its last part, stripped to letters, digits and a few marks, is
kept as the shown part of a name this module makes (收回/网页上传/<batch>/<name>); `../../x.xlsx` becomes
`x.xlsx` inside the batch's folder. Pure library code (no web framework): the app and the tests call it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

UPLOAD_DIR = "网页上传"                   # inside 收回/
MAX_NAME_CHARS = 80                      # of a name we make (an ext4 name holds 255 bytes: 80 CJK are 240)
_UNSAFE = re.compile(r"[^\w.\-()（）\[\]【】 ~$&+,，、]")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


@dataclass
class Upload:
    """One uploaded file: the name the browser gave (shown only), its bytes, and where it was placed."""

    given: str
    data: bytes
    stored_as: str = ""                  # relative to the round: 收回/网页上传/<batch>/<name>
    sha256: str = ""


@dataclass
class Answer:
    """The verdict on one uploaded file (a zip: one entry per member in `members`)."""

    given: str
    stored_as: str
    sha256: str
    status: str                          # ok | warning | error | skipped
    township: str = ""
    score: str = ""
    accepted: bool = False
    issues: list[dict] = field(default_factory=list)
    members: list["Answer"] = field(default_factory=list)
    label: str = ""                      # what to show instead of the status's words (a 核定表's stage)

    @property
    def status_zh(self) -> str:
        return self.label or STATUS_ZH[self.status]

    def as_dict(self) -> dict:
        return {"name": self.given, "stored_as": self.stored_as, "sha256": self.sha256, "status": self.status,
                "township": self.township, "score": self.score, "accepted": self.accepted,
                "issues": self.issues, "members": [m.as_dict() for m in self.members]}


STATUS_ZH = {"ok": "合格", "warning": "有警告", "error": "有错误", "skipped": "已跳过"}


WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{k}" for k in range(1, 10)), *(f"LPT{k}" for k in range(1, 10))}


def safe_name(given: str) -> str:
    """The shown part of a name for an uploaded file: its last path part, unsafe characters as "_", never
    empty, "." or "..", at most MAX_NAME_CHARS characters (the suffix kept when it is a plain one)."""
    base = re.split(r"[\\/]", given or "")[-1].strip()
    base = _UNSAFE.sub("_", base).rstrip(". ")      # Windows drops trailing dots and spaces: two names, one file
    if base.strip(".") == "":
        base = "未命名"
    if base.split(".")[0].upper() in WINDOWS_DEVICES:  # CON.xlsx is the console on Windows, not a file
        base = "_" + base
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem or not _SUFFIX.match("." + suffix.lower()):
        stem, suffix = base, ""
    room = MAX_NAME_CHARS - (len(suffix) + 1 if suffix else 0)
    return stem[:room] + ("." + suffix if suffix else "")


def batch_folder(returned: Path, now: dt.datetime | None = None) -> Path:
    """A new folder for one request's files: 收回/网页上传/20261130-203000-1a2b (made; never reused);
    `returned`: the round's folder they go into (收回/, or 核定/ for returned 核定表s)."""
    now = now or dt.datetime.now().astimezone()
    parent = returned / UPLOAD_DIR
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        folder = parent / f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue


def place(rnd, uploads: list[Upload], now: dt.datetime | None = None, into: Path | None = None) -> Path:
    """Keep every upload by content in the round's archive, then write it into a new batch folder of 收回/
    (or of `into`, a folder of the round: 核定/) under a name made by `safe_name` (a clash within the batch
    gets " (2)"). Returns the batch folder."""
    from ..ledger import Ledger

    with Ledger.of_round(rnd) as ledger:
        for up in uploads:
            up.sha256 = ledger.keep(up.data)
    try:
        folder = batch_folder(rnd.returned if into is None else into, now)
        root = folder.resolve()
        taken: set[str] = set()
        for up in uploads:
            name = _unique(safe_name(up.given), taken)
            target = folder / name
            if target.resolve().parent != root:      # cannot happen with safe_name; never write elsewhere
                raise ValueError(f"unsafe upload name: {up.given!r}")
            with open(target, "xb") as fh:
                fh.write(up.data)
            up.stored_as = target.relative_to(rnd.root).as_posix()
    except OSError as exc:                           # a read-only share, a full disk: kept already, said as R302
        from ..writer import unwritable

        raise unwritable(rnd.returned if into is None else into, exc) from None
    return folder


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    k, candidate = 1, name
    while candidate.lower() in taken:
        k += 1
        candidate = f"{stem} ({k})" + (f".{suffix}" if suffix else "")
    taken.add(candidate.lower())
    return candidate


def receive(rnd, ctx, uploads: list[Upload], workers: int | None = None):
    """Place the uploads, check the round's 收回/ as `check` does, and answer each upload.
    Returns (answers, board)."""
    from ..workflow import check_round

    place(rnd, uploads)
    coll, board = check_round(rnd, ctx, workers=workers)
    return answers(uploads, coll, ctx), board


def receive_reviews(rnd, ctx, uploads: list[Upload], workers: int | None = None):
    """Place uploaded 核定表s in 核定/网页上传/…, check the round as `check` does (its 核定表s included), and
    answer each upload from the board's 核定 results. Returns (answers, board)."""
    from ..workflow import check_round

    place(rnd, uploads, into=rnd.reviews)
    _, board = check_round(rnd, ctx, workers=workers)
    return review_answers(uploads, board, ctx), board


def receive_feedback(rnd, ctx, uploads: list[Upload], workers: int | None = None):
    """Place 反馈单s sent back in 反馈/网页上传/…, check the round and collect 反馈/ as `check` does, and
    answer each upload with its `feedback_book.check_feedback`. Returns (answers, board, strays)."""
    from ..board import STATE_ZH
    from ..feedback import WORKBOOK_SUFFIXES, collect_feedback
    from ..feedback_book import check_feedback
    from ..issues import Code, issue
    from ..workflow import check_round

    place(rnd, uploads, into=rnd.feedback)
    _, board = check_round(rnd, ctx, workers=workers)
    board, strays = collect_feedback(rnd, ctx, board)
    out = []
    for up in uploads:
        if Path(up.stored_as).suffix.lower() not in WORKBOOK_SUFFIXES:
            out.append(Answer(up.given, up.stored_as, up.sha256, "skipped",
                              issues=[_issue(issue(Code.SKIPPED, file=up.stored_as, detail="反馈单应为 .xlsx 文件"))]))
            continue
        got = check_feedback(rnd, rnd.root / up.stored_as, up.stored_as, ctx.settings.year)
        town = ctx.roster[got.code].name if got.code and got.code in ctx.roster else ""
        if got.complete:
            status, label = "ok", STATE_ZH["rectified"]
        elif got.untouched:
            status, label = "warning", "未填写（与下发的相同）"
        else:
            status, label = "error", STATE_ZH["rectifying"] if got.code else ""
        out.append(Answer(up.given, up.stored_as, up.sha256, status, town, "", got.complete,
                          [_issue(i) for i in got.issues if i.severity != "info"], label=label))
    return out, board, strays


def review_answers(uploads: list[Upload], board, ctx) -> list[Answer]:
    """Each uploaded 核定表's verdict from the board's 核定 results (`board.reviews`): 已核定 (valid and
    signed: "ok"), 待核定 (valid, not signed yet: "warning"), made from another return ("warning", its
    issue says so), or its errors; a file `check` does not read as a 核定表 (not .xlsx/.xlsm) is skipped."""
    from ..board import STATE_ZH
    from ..issues import Code, issue
    from ..scoring import show

    decimals = ctx.settings.score_decimals
    found = {r.name: r for r in (board.reviews.results if board.reviews else [])}
    out = []
    for up in uploads:
        r = found.get(up.stored_as)
        if r is None:
            out.append(Answer(up.given, up.stored_as, up.sha256, "skipped",
                              issues=[_issue(issue(Code.SKIPPED, file=up.stored_as, detail="核定表应为 .xlsx 文件"))]))
            continue
        stage = "verified" if r.done else "stale" if r.stale else "pending" if r.valid else ""
        status = {"verified": "ok", "stale": "warning", "pending": "warning"}.get(stage, "error")
        out.append(Answer(up.given, r.name, r.sha256 or up.sha256, status,
                          r.township.name if r.township else "",
                          show(r.scores.final, decimals) if r.scores is not None and r.valid else "", r.done,
                          [_issue(i) for i in r.issues if i.severity != "info"],
                          label=STATE_ZH[stage] if stage else ""))
    return out


def answers(uploads: list[Upload], coll, ctx) -> list[Answer]:
    """Each upload's verdict from the batch just checked: its result, its members' (a zip), or its skip."""
    decimals = ctx.settings.score_decimals
    by_name: dict[str, list] = {}
    for r in coll.results:
        by_name.setdefault(_outer(r.name), []).append(r)
    skipped = {}
    for s in coll.skipped:
        skipped.setdefault(_outer(s.name), []).append(s)
    out = []
    for up in uploads:
        found = [_answer(up.given, r, decimals) for r in by_name.get(up.stored_as, [])]
        found += [Answer(up.given, s.name, up.sha256, "skipped", issues=[_issue(s.issue)])
                  for s in skipped.get(up.stored_as, [])]
        whole = [a for a in found if a.stored_as == up.stored_as]
        if len(whole) == 1 and len(found) == 1:
            whole[0].sha256 = whole[0].sha256 or up.sha256
            out.append(whole[0])
        else:                                          # a zip: its members, each with its verdict
            members = [a for a in found if a.stored_as != up.stored_as]
            status = _worst([a.status for a in found]) if found else "skipped"
            issues = [i for a in whole for i in a.issues]
            if not found:
                issues = [{"code": "", "severity": "warning", "where": "", "message": "压缩包中没有可核查的文件"}]
            out.append(Answer(up.given, up.stored_as, up.sha256, status, issues=issues, members=members,
                              accepted=any(m.accepted for m in members)))
    return out


def _outer(name: str) -> str:
    """The file a result's name is in: "收回/网页上传/x/a.zip › 城关镇.xlsx" is in "收回/网页上传/x/a.zip"."""
    return name.split(" › ", 1)[0]


def _answer(given: str, r, decimals: int) -> Answer:
    from ..scoring import show

    sc = r.scores
    return Answer(given, r.name, r.sha256, r.status,
                  r.township.name if r.township else "",
                  show(sc.final, decimals) if sc is not None and r.accepted else "", bool(r.accepted),
                  [_issue(i) for i in r.report])


def _issue(i) -> dict:
    """An issue as the page lists it: located within its file (the file is the verdict's own)."""
    return dict(i.as_dict(), where=replace(i, file="").where)


def _worst(statuses: list[str]) -> str:
    order = ("error", "warning", "skipped", "ok")
    return min(statuses, key=order.index)
