"""The board of a round: one line per township, in one state (已合格 / 需改正 / 未收到).

These types are the interface between the ledger (what was received, `ledger.py`), the checks of a
batch (`collect.Collection`) and what is shown or sent (the console, `check --json`'s `townships`,
核查结果.xlsx and its 通知 sheet). `build_board` fills them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from .issues import Issue

STATES = ("ok", "fix", "missing")
STATE_ZH = {"ok": "已合格", "fix": "需改正", "missing": "未收到"}


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

    @property
    def state_zh(self) -> str:
        return STATE_ZH[self.state]

    def as_dict(self) -> dict:
        """The line as `check --json` gives it under "townships"."""
        return {"code": self.code, "township": self.township, "state": self.state, "file": self.file,
                "reporter": self.reporter, "phone": self.phone,
                "issues": [dict(i.as_dict(), file=i.file) for i in self.issues]}


@dataclass
class Board:
    lines: list[TownshipLine]
    setup_suspect: Issue | None = None           # every file disagrees with the setup the same way
    unassigned: list[FileEntry] = field(default_factory=list)   # files tied to no township

    def count(self, state: str) -> int:
        return sum(line.state == state for line in self.lines)

    @property
    def complete(self) -> bool:
        return bool(self.lines) and all(line.state == "ok" for line in self.lines)
