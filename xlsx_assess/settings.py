"""Settings of an assessment round and the roster of townships.

Both ship inside the package (`defaults/`), so `xlsx-assess generate --out DIR` works right after
`pip install`; options point to the user's own files.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .issues import AssessError, Code, Report, issue
from .rubric import decode_text

DEFAULTS = Path(__file__).parent / "defaults"


def default_path(name: str) -> Path:
    return DEFAULTS / name


@dataclass(frozen=True)
class Grade:
    name: str
    min: float


@dataclass(frozen=True)
class Settings:
    title: str = "政务公开工作考核表"
    county: str = ""
    year: int = 2026
    issuing_office: str = ""
    deadline: str = ""
    contact_person: str = ""
    contact_phone: str = ""
    bonus_cap: float = 5.0
    deduction_cap: float = 10.0
    score_decimals: int = 2       # places a score may have; every total is rounded half up to as many
    grades: tuple[Grade, ...] = field(default_factory=lambda: (
        Grade("优秀", 90), Grade("良好", 80), Grade("一般", 60), Grade("较差", 0)))
    instructions: str = ""

    def with_year(self, year: int | None) -> "Settings":
        return self if year is None else replace(self, year=int(year))

    def grade(self, score: float) -> str:
        """The band of a final score (already rounded by `scoring`, as the form shows it)."""
        for g in self.grades:
            if score >= g.min:
                return g.name
        return self.grades[-1].name

    @property
    def lowest_grade(self) -> str:
        return self.grades[-1].name


@dataclass(frozen=True)
class Township:
    code: str
    name: str
    kind: str = ""

    @property
    def label(self) -> str:
        return f"{self.name}（{self.code}）"


def load_settings(path: str | Path | None = None, year: int | None = None) -> Settings:
    path = Path(path) if path else default_path("settings.toml")
    report = Report()
    text = ""
    try:
        text = decode_text(path.read_bytes())
        data = tomllib.loads(text)
        known = {f for f in Settings.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"不认识的设置项 {', '.join(unknown)}")
        if "grades" in data:
            grades = tuple(Grade(str(g["name"]), float(g["min"])) for g in data["grades"])
            if not grades or list(g.min for g in grades) != sorted((g.min for g in grades), reverse=True):
                raise ValueError("grades 必须按分数线从高到低排列")
            data["grades"] = grades
        for key in ("bonus_cap", "deduction_cap"):
            if key in data:
                data[key] = float(data[key])
                if not 0 <= data[key] < 1e9:
                    raise ValueError(f"{key} 应为 0 到 10 亿之间的数")
        if "year" in data:
            data["year"] = int(data["year"])
        _check_decimals(data)
        if "instructions" in data:
            data["instructions"] = str(data["instructions"]).strip()
        settings = Settings(**data)
    except _Misplaced as exc:
        report.add(issue(Code.SETTINGS_INVALID, file=path.name, line=_line_of(text, exc.key), column=exc.key, detail=str(exc)))
        raise AssessError(report) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError, TypeError, KeyError) as exc:
        report.add(issue(Code.SETTINGS_INVALID, file=path.name, detail=str(exc)))
        raise AssessError(report) from None
    return settings.with_year(year)


class _Misplaced(ValueError):
    """A setting with a wrong value, reported at its line."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _check_decimals(data: dict) -> None:
    """score_decimals is a whole number from 0 to scoring.MAX_DECIMALS, and the caps have no more places."""
    from .scoring import MAX_DECIMALS, exact, has_more_decimals

    d = data.get("score_decimals", Settings.score_decimals)
    if type(d) is not int or not 0 <= d <= MAX_DECIMALS:
        raise _Misplaced("score_decimals", f"score_decimals（得分小数位数）应为 0 到 {MAX_DECIMALS} 之间的整数，"
                                           f"实际为 {d!r}")
    for key in ("bonus_cap", "deduction_cap"):
        cap = data.get(key)
        if cap is not None and has_more_decimals(exact(cap), d):
            raise _Misplaced(key, f"{key} 为 {cap}，小数位数超过 score_decimals（{d} 位）")


def _line_of(text: str, key: str) -> int | None:
    """The line of the settings file that sets `key`, if one does."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.split("=", 1)[0].strip() == key:
            return n
    return None


def load_townships(path: str | Path | None = None) -> list[Township]:
    """Read the roster (columns code, name and optionally kind), as CSV in UTF-8 or GBK."""
    path = Path(path) if path else default_path("townships.csv")
    report = Report()
    try:
        rows = list(csv.DictReader(io.StringIO(decode_text(path.read_bytes()))))
    except (OSError, UnicodeDecodeError) as exc:
        report.add(issue(Code.ROSTER_INVALID, file=path.name, detail=str(exc)))
        raise AssessError(report) from None
    townships: list[Township] = []
    seen: set[str] = set()
    for lineno, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        code, name = row.get("code", ""), row.get("name", "")
        if not code or not name:
            report.add(issue(Code.ROSTER_INVALID, file=path.name, line=lineno, detail="每行都需要 code（代码）和 name（名称）"))
        elif code in seen:
            report.add(issue(Code.ROSTER_INVALID, file=path.name, line=lineno, detail=f"代码 {code} 重复"))
        else:
            seen.add(code)
            townships.append(Township(code, name, row.get("kind", "")))
    if not townships and report.ok:
        report.add(issue(Code.ROSTER_INVALID, file=path.name, detail="名单为空"))
    if not report.ok:
        raise AssessError(report)
    return townships


def select_townships(townships: list[Township], only: list[str] | None) -> list[Township]:
    """Pick townships by code or name; an unknown one is an error naming it."""
    if not only:
        return townships
    report = Report()
    chosen: list[Township] = []
    for key in only:
        match = [t for t in townships if key in (t.code, t.name)]
        if not match:
            report.add(issue(Code.ROSTER_TOWNSHIP_UNKNOWN, value=key))
        chosen.extend(t for t in match if t not in chosen)
    if not report.ok:
        raise AssessError(report)
    return chosen
