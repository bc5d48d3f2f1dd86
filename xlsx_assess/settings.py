"""Settings of an assessment round and the roster of townships.

Both ship inside the package (`defaults/`), so `xlsx-assess generate --out DIR` works right after
`pip install`; options point to the user's own files.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .issues import AssessError, Code, Report, issue
from .rubric import CsvUnreadable, csv_rows, decode_text
from .scoring import MAX_DECIMALS, exact, has_more_decimals

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
    missing_note_severity: str = "warning"   # a claimed deduction without 扣分说明 (V417): "warning" | "error"

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


# What a setting may hold: the forms carry these texts in cells, headers and file names, and the caps and
# bands in formulas, so a value that cannot be right is refused at its line before anything is written.
TEXT_LIMITS = {"title": 100, "county": 30, "issuing_office": 100, "deadline": 50, "contact_person": 50,
               "contact_phone": 50, "instructions": 5000}
YEARS = (2000, 2100)
MAX_CAP = 1000.0               # a bonus or deduction cap, and a grade's floor, lie in 0..MAX_CAP
MAX_GRADES = 10
MAX_GRADE_NAME = 10
MAX_ROSTER_TEXT = 50          # a township's code, name or kind: they make file names and headers


def load_settings(path: str | Path | None = None, year: int | None = None) -> Settings:
    """Read settings.toml; every value that cannot be right is an R201 at its line and key."""
    path = Path(path) if path else default_path("settings.toml")
    report = Report()
    try:
        text = decode_text(path.read_bytes())
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        report.add(issue(Code.SETTINGS_INVALID, file=path.name, detail=str(exc)))
        raise AssessError(report) from None
    for key, message in setting_problems(data):
        report.add(issue(Code.SETTINGS_INVALID, file=path.name, line=_line_of(text, key), column=key, detail=message))
    if year is not None and (message := _year_problem(year)):
        report.add(issue(Code.SETTINGS_INVALID, file="--year", column="year", detail=message))
    if not report.ok:
        raise AssessError(report)
    return Settings(**_converted(data)).with_year(year)


def setting_problems(data: dict) -> list[tuple[str, str]]:
    """(key, what is wrong) for every setting in `data` that cannot be right."""
    known = set(Settings.__dataclass_fields__)
    problems = [(key, f"不认识的设置项 {key}") for key in data if key not in known]
    checks = {**{k: _text_problem for k in TEXT_LIMITS}, "year": lambda k, v, d: _year_problem(v),
              "bonus_cap": _cap_problem, "deduction_cap": _cap_problem, "grades": _grades_problem,
              "score_decimals": lambda k, v, d: _decimals_problem(v), "missing_note_severity": _severity_problem}
    for key, value in data.items():
        message = checks[key](key, value, data) if key in checks else None
        if message:
            problems.append((key, message))
    return problems


def _text_problem(key: str, value, data: dict) -> str | None:
    if not isinstance(value, str):
        return f"{key} 应为文字（加英文引号），实际为 {value!r}"
    if len(value.strip()) > TEXT_LIMITS[key]:
        return f"{key} 有 {len(value.strip())} 个字，超过 {TEXT_LIMITS[key]} 个字，请精简"
    return None


def _year_problem(value) -> str | None:
    if type(value) is not int or not YEARS[0] <= value <= YEARS[1]:
        return f"year（考核年度）应为 {YEARS[0]} 到 {YEARS[1]} 之间的整数，实际为 {value!r}"
    return None


def _number(value) -> bool:
    """A finite number that TOML wrote as one (true and false are not numbers)."""
    return type(value) in (int, float) and math.isfinite(value)


def _cap_problem(key: str, value, data: dict) -> str | None:
    if not _number(value) or not 0 <= value <= MAX_CAP:
        return f"{key} 应为 0 到 {MAX_CAP:g} 之间的数，实际为 {value!r}"
    decimals = data.get("score_decimals", Settings.score_decimals)
    if _decimals_problem(decimals) is None and has_more_decimals(exact(float(value)), decimals):
        return f"{key} 为 {value}，小数位数超过 score_decimals（{decimals} 位）"
    return None


SEVERITIES = ("warning", "error")


def _severity_problem(key: str, value, data: dict) -> str | None:
    if value not in SEVERITIES:
        return f"{key}（缺少扣分说明时的级别）应为 \"warning\"（警告）或 \"error\"（错误），实际为 {value!r}"
    return None


def _decimals_problem(value) -> str | None:
    """score_decimals is a whole number from 0 to scoring.MAX_DECIMALS."""
    if type(value) is not int or not 0 <= value <= MAX_DECIMALS:
        return f"score_decimals（得分小数位数）应为 0 到 {MAX_DECIMALS} 之间的整数，实际为 {value!r}"
    return None


def _grades_problem(key: str, value, data: dict) -> str | None:
    """Grade bands: 1 to MAX_GRADES tables {name, min}, names short and distinct, floors falling."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_GRADES:
        return f"grades 应为 1 到 {MAX_GRADES} 个等次，如 {{ name = \"优秀\", min = 90 }}"
    for n, g in enumerate(value, start=1):
        if not isinstance(g, dict) or set(g) != {"name", "min"}:
            return f"grades 第 {n} 个等次应恰有 name 和 min 两项"
        if not isinstance(g["name"], str) or not 0 < len(g["name"].strip()) <= MAX_GRADE_NAME:
            return f"grades 第 {n} 个等次的 name 应为 1 到 {MAX_GRADE_NAME} 个字"
        if not _number(g["min"]) or not 0 <= g["min"] <= MAX_CAP:
            return f"grades 第 {n} 个等次的 min 应为 0 到 {MAX_CAP:g} 之间的数，实际为 {g['min']!r}"
    floors = [g["min"] for g in value]
    if any(a <= b for a, b in zip(floors, floors[1:])):
        return f"grades 必须按分数线从高到低排列，实际为 {', '.join(f'{m:g}' for m in floors)}"
    names = [g["name"].strip() for g in value]
    if len(set(names)) != len(names):
        return "grades 的等次名称不能重复"
    return None


def _converted(data: dict) -> dict:
    """Checked TOML values as Settings holds them."""
    out = dict(data)
    if "grades" in out:
        out["grades"] = tuple(Grade(g["name"].strip(), float(g["min"])) for g in out["grades"])
    for key in ("bonus_cap", "deduction_cap"):
        if key in out:
            out[key] = float(out[key])
    if "instructions" in out:
        out["instructions"] = out["instructions"].strip()
    return out


def _line_of(text: str, key: str) -> int | None:
    """The line of the settings file that sets `key` (`key = …`, or a `[key]`/`[[key]]` table), if one does."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.split("=", 1)[0].strip() == key or line.strip().strip("[]").strip() == key:
            return n
    return None


def load_townships(path: str | Path | None = None) -> list[Township]:
    """Read the roster (columns code, name and optionally kind), as CSV in UTF-8 or GBK."""
    path = Path(path) if path else default_path("townships.csv")
    report = Report()
    try:
        records = csv_rows(decode_text(path.read_bytes()))
    except (OSError, UnicodeDecodeError, CsvUnreadable) as exc:
        report.add(issue(Code.ROSTER_INVALID, file=path.name, line=getattr(exc, "line", None), detail=str(exc)))
        raise AssessError(report) from None
    header = records[0][1] if records else []
    rows = [(lineno, dict(zip(header, values))) for lineno, values in records[1:]]
    townships: list[Township] = []
    seen: set[str] = set()
    for lineno, row in rows:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        code, name = row.get("code", ""), row.get("name", "")
        if not code or not name:
            report.add(issue(Code.ROSTER_INVALID, file=path.name, line=lineno, detail="每行都需要 code（代码）和 name（名称）"))
        elif len(code) > MAX_ROSTER_TEXT or len(name) > MAX_ROSTER_TEXT or len(row.get("kind", "")) > MAX_ROSTER_TEXT:
            report.add(issue(Code.ROSTER_INVALID, file=path.name, line=lineno,
                             detail=f"代码、名称或类别超过 {MAX_ROSTER_TEXT} 个字"))
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
