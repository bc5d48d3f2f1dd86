"""The board of a round: one line per township, in one state (已合格 / 需改正 / 未收到).

These types are the interface between the ledger (what was received, `ledger.py`), the checks of a
batch (`collect.Collection`) and what is shown or sent (the console, `check --json`'s `townships`,
核查结果.xlsx and its 通知 sheet). `build_board` fills them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from typing import TYPE_CHECKING, Iterable

from .issues import Code, Issue, status_of
from .ledger import Kept, Verdict, context_key, now

if TYPE_CHECKING:
    from .checks import Context, FileResult
    from .collect import Collection
    from .ledger import Ledger

STATE_ZH = {"ok": "已合格", "fix": "需改正", "missing": "未收到", "pending": "待核定", "verified": "已核定",
            "stale": "核定表已过期"}
# Once the round has 核定表s (核定/), an 已合格 line is also 待核定 (no valid, signed 核定表 for its
# accepted return yet), 已核定, or 核定表已过期 (its 核定表 was made from an earlier return): `review`.
REVIEW_STAGES = ("pending", "verified", "stale")
# After the results: a ranked township's 反馈单 (TownshipLine.feedback), beside its state.
FEEDBACK_STATES = ("sent", "rectifying", "rectified")
STATE_ZH.update({"sent": "待整改", "rectifying": "整改未完成", "rectified": "已整改"})


@dataclass(frozen=True)
class FileEntry:
    """One file the round received, as the ledger keeps it (by content)."""

    sha256: str
    name: str                          # the name it was first seen under (shown, not a path)
    first_seen: dt.datetime            # aware, local
    status: str                        # "ok" | "warning" | "error" (its verdict when last checked)
    role: str = "used"                 # "used" | "superseded" | "duplicate" | "other_version"
    township_code: str = ""            # whose it is, by its identity ("" if unknown)
    score: Decimal | None = None       # its final score, if it was scored
    names: tuple[str, ...] = ()        # every name it was seen under (the first one first)
    issue_codes: tuple[str, ...] = ()  # the codes of its own issues
    other_version: str = ""            # made for another setup: "year:2027" / "rubric:<sha256>"

    def as_dict(self) -> dict:
        """The file as `status --json` gives it in a township's "history"."""
        return {"sha256": self.sha256, "name": self.name, "names": list(self.names or (self.name,)),
                "first_seen": self.first_seen.isoformat() if self.first_seen else None, "status": self.status,
                "role": self.role, "township_code": self.township_code,
                "score": None if self.score is None else str(self.score), "issues": list(self.issue_codes)}


@dataclass(frozen=True)
class TownshipLine:
    """One township's line: its state and what it rests on."""

    code: str
    township: str
    state: str                         # one of STATES
    file: str = ""                     # the name of the file the state rests on ("" when missing)
    sha256: str = ""
    received: dt.datetime | None = None
    score: Decimal | None = None       # final score of the file used (state "ok")
    grade: str = ""
    reporter: str = ""                 # 填报人 and 联系电话 from its latest file
    phone: str = ""
    issues: tuple[Issue, ...] = ()     # what is wrong in its latest file (state "fix"), located
    history: tuple[FileEntry, ...] = ()  # every file of this township, oldest first
    review: str = ""                   # "" (no 核定 yet) or one of REVIEW_STAGES (state "ok" only)
    review_file: str = ""              # the 核定表 it rests on
    reviewed_score: Decimal | None = None   # final score on 核定分 (review "verified")
    reviewer: str = ""                 # 核查人
    review_issues: tuple[Issue, ...] = ()   # what is wrong in its 核定表, located
    feedback: str = ""                 # "" (no 反馈单 sent) or one of FEEDBACK_STATES
    feedback_file: str = ""            # the 反馈单 that state rests on
    feedback_issues: tuple[Issue, ...] = ()   # what is still missing in it (state "rectifying"), located

    @property
    def state_zh(self) -> str:
        return STATE_ZH[self.state]

    @property
    def review_zh(self) -> str:
        return STATE_ZH[self.review] if self.review else ""

    @property
    def feedback_zh(self) -> str:
        return STATE_ZH[self.feedback] if self.feedback else ""

    def as_dict(self) -> dict:
        """The line as `check --json` gives it under "townships"."""
        out = {"code": self.code, "township": self.township, "state": self.state, "file": self.file,
               "reporter": self.reporter, "phone": self.phone,
               "issues": [dict(i.as_dict(), file=i.file) for i in self.issues]}
        if self.review:                  # once the round has 核定表s: the 核定 stage and what it rests on
            out.update(review=self.review, review_file=self.review_file,
                       reviewed_score=None if self.reviewed_score is None else str(self.reviewed_score),
                       reviewer=self.reviewer, review_issues=[dict(i.as_dict(), file=i.file) for i in self.review_issues])
        if self.feedback:                # once 反馈单s were sent: the 整改 stage and what it rests on
            out.update(feedback=self.feedback, feedback_file=self.feedback_file,
                       feedback_issues=[dict(i.as_dict(), file=i.file) for i in self.feedback_issues])
        return out


@dataclass
class Board:
    lines: list[TownshipLine]
    setup_suspect: Issue | None = None           # every file disagrees with the setup the same way
    unassigned: list[FileEntry] = field(default_factory=list)   # files tied to no township
    reviews: "Reviews | None" = None             # the round's 核定表s, once `review` has made some

    def count(self, state: str) -> int:
        """Lines in `state`; a 核定 stage ("pending", "verified", "stale") counts the 已合格 lines at it, a
        反馈单 state ("sent", "rectifying", "rectified") the lines at it."""
        if state in REVIEW_STAGES:
            return sum(line.state == "ok" and line.review == state for line in self.lines)
        if state in FEEDBACK_STATES:
            return sum(line.feedback == state for line in self.lines)
        return sum(line.state == state for line in self.lines)

    def stage_counts(self) -> list[str]:
        """The 核定 and 整改 counts, a sentence each once that stage began (as the console and
        核查结果.xlsx give them): 核定：已核定 3，待核定 5，核定表已过期 1。"""
        out = []
        if any(line.review for line in self.lines):
            out.append("核定：" + "，".join(f"{STATE_ZH[k]} {self.count(k)}" for k in ("verified", "pending", "stale")) + "。")
        if any(line.feedback for line in self.lines):
            out.append("反馈单：" + "，".join(f"{STATE_ZH[k]} {self.count(k)}" for k in FEEDBACK_STATES) + "。")
        return out

    @property
    def complete(self) -> bool:
        return bool(self.lines) and all(line.state == "ok" for line in self.lines)

    @property
    def unranked(self) -> list[TownshipLine]:
        """The townships a ranking leaves out: every one not 已合格."""
        return [line for line in self.lines if line.state != "ok"]

    def unranked_text(self) -> str:
        """What a ranking says of them: 共 10 个乡镇，4 个未纳入排名：甲镇（需改正）、乙乡（未收到）…"""
        left = self.unranked
        if not left:
            return f"共 {len(self.lines)} 个乡镇，全部纳入排名。"
        names = "、".join(f"{line.township}（{line.state_zh}）" for line in left)
        return f"共 {len(self.lines)} 个乡镇，{len(left)} 个未纳入排名：{names}。"


# -- 核定 ------------------------------------------------------------------------------------------------

@dataclass
class Reviews:
    """The 核定表s of a round as `check` found them in 核定/: every one checked, the one that counts per
    township (`review.chosen_reviews`), and what each accepted return holds (`review.SelfAssessed`)."""

    accepted: dict = field(default_factory=dict)     # township code -> SelfAssessed of its accepted return
    results: list = field(default_factory=list)      # every review.ReviewResult
    chosen: dict = field(default_factory=dict)       # township code -> the ReviewResult that counts

    @property
    def done(self) -> dict:
        """Township code -> its valid, signed 核定表 (what the ranking scores on)."""
        return {code: r for code, r in self.chosen.items() if r.done}

    @property
    def stray(self) -> list:
        """核定表s tied to no township (not ours, unknown township, unreadable)."""
        return [r for r in self.results if r.township is None]


def with_reviews(board: Board, reviews: Reviews, decimals: int) -> Board:
    """The board with each 已合格 line's 核定 stage: 已核定, 核定表已过期 or 待核定."""
    from dataclasses import replace

    from .scoring import show

    lines = []
    for line in board.lines:
        r = reviews.chosen.get(line.code)
        if line.state != "ok":
            lines.append(line)
        elif r is None:
            lines.append(replace(line, review="pending"))
        else:
            stage = "verified" if r.done else "stale" if r.stale else "pending"
            score = Decimal(show(r.scores.final, decimals)) if r.done else None
            lines.append(replace(line, review=stage, review_file=r.name, reviewed_score=score,
                                 reviewer=r.decided.reviewer if r.decided else "",
                                 review_issues=tuple(i for i in r.issues if i.severity != "info")))
    return replace(board, lines=lines, reviews=reviews)


# -- the rules ---------------------------------------------------------------------------------------

BATCH_ONLY = (Code.SUPERSEDED, Code.IDENTICAL_COPY)     # what a batch says of a file: the board's history says it
FLOOR = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def build_board(coll: "Collection", ctx: "Context", ledger: "Ledger | None" = None) -> Board:
    """The board of a batch just checked: every file in it, and with a ledger every file the round kept
    before (verdicts from this batch win, names and first-seen times from the ledger)."""
    key = context_key(ctx)
    checked = now()
    facts: dict[str, Kept] = {}
    if ledger is not None:
        facts = {k.sha256: k for k in ledger.kept(key)}
    in_batch: dict[str, Kept] = {}
    for k, head in enumerate(coll.heads):
        ident = head.sha256 or f"name:{head.name}"
        if ident in in_batch:                        # the same content again: one file, one more name
            known = in_batch[ident]
            if head.name not in known.names:
                in_batch[ident] = _with(known, names=known.names + (head.name,))
            continue
        v = verdict_of(coll.results[k], ctx, key, checked)
        known = facts.get(ident)
        in_batch[ident] = (_with(known, verdict=v) if known is not None
                           else Kept(head.sha256, 0, None, head.name, (head.name,), v))
    facts.update(in_batch)
    return board_of(facts.values(), ctx)


def board_from_ledger(ledger: "Ledger", ctx: "Context") -> Board:
    """The board from the ledger alone (what `status` shows, 收回/ deleted or not): every file received."""
    return board_of(ledger.kept(context_key(ctx)), ctx)


def board_of(facts: Iterable[Kept], ctx: "Context") -> Board:
    """One line per roster township from every file the round holds: the latest file of a township
    decides (已合格 if it is accepted, else 需改正), the others are its history; no file: 未收到."""
    by_code: dict[str, list[Kept]] = {}
    unassigned: list[FileEntry] = []
    facts = list(facts)
    for f in facts:
        code = f.verdict.township_code if f.verdict is not None else ""
        if code in ctx.roster:
            by_code.setdefault(code, []).append(f)
        else:
            unassigned.append(_entry(f, "used"))
    lines = [_line(t, sorted(by_code.get(t.code, []), key=_when), ctx) for t in ctx.townships]
    return Board(lines, setup_suspect(facts, ctx), unassigned)


def _line(t, files: list[Kept], ctx: "Context") -> TownshipLine:
    if not files:
        return TownshipLine(t.code, t.name, "missing")
    latest = files[-1]
    v = latest.verdict
    history = tuple(_entry(f, "used" if f is latest else "superseded") for f in files)
    contact = next((f.verdict for f in reversed(files) if f.verdict.reporter or f.verdict.phone), v)
    ok = v.accepted
    return TownshipLine(t.code, t.name, "ok" if ok else "fix", latest.name, latest.sha256,
                        latest.first_seen, v.score if ok else None, v.grade if ok else "", contact.reporter,
                        contact.phone, () if ok else v.issues, history)


def _when(f: Kept) -> tuple:
    """The order files of a township arrived in: when the round last received each under a new name (a
    good file resent after a wrong one is the latest again), then as the collection rules order them
    (saved time, file time, name)."""
    v = f.verdict
    return (f.arrived or f.first_seen or FLOOR, v.saved or FLOOR, v.mtime or FLOOR, f.name)


def _entry(f: Kept, role: str) -> FileEntry:
    v = f.verdict
    if v is None:
        return FileEntry(f.sha256, f.name, f.first_seen, "error", role, names=f.names)
    return FileEntry(f.sha256, f.name, f.first_seen, v.status, "other_version" if v.other_version else role,
                     v.township_code, v.score, f.names, tuple(i.code for i in v.issues), v.other_version)


def setup_suspect(facts: list[Kept], ctx: "Context") -> Issue | None:
    """An issue when every form received (two at least) was made for the same other year, or the same
    other rubric: then the setup is wrong, not the townships."""
    from .issues import issue

    forms = [f.verdict for f in facts if f.verdict is not None and f.verdict.township_code in ctx.roster
             and (f.verdict.scored or f.verdict.other_version)]
    versions = {v.other_version for v in forms}
    if len(forms) < 2 or len(versions) != 1 or "" in versions:
        return None
    kind, _, value = versions.pop().partition(":")
    if kind == "year":
        return issue(Code.SETUP_YEAR_SUSPECT, value=len(forms), detail=value, expected=ctx.settings.year)
    return issue(Code.SETUP_RUBRIC_SUSPECT, value=len(forms), detail=value[:12], expected=ctx.rubric.fingerprint[:12])


def verdict_of(res: "FileResult", ctx: "Context", key: str | None = None, checked: dt.datetime | None = None) -> Verdict:
    """What the ledger keeps of a file's check: its own issues (not the batch's), score as exact text."""
    from .scoring import show

    own = tuple(i for i in res.report if i.code not in BATCH_ONLY)
    status = status_of(sum(i.severity == "error" for i in own), sum(i.severity == "warning" for i in own))
    s = ctx.settings
    sc, e = res.scores, res.entries
    score = Decimal(show(sc.final, s.score_decimals)) if sc is not None else None
    grade = "" if sc is None else s.lowest_grade if sc.zeroed else s.grade(sc.final)
    other = res.head.other_version
    return Verdict(key or context_key(ctx), ctx.rubric.fingerprint, s.year, status,
                   "other_version" if other else res.role, res.township.code if res.township else "", other,
                   sc is not None, score, grade, e.reporter if e else "", e.phone if e else "", res.saved, res.mtime,
                   own, checked or now())


def _with(k: Kept, **changes) -> Kept:
    from dataclasses import replace

    return replace(k, **changes)
