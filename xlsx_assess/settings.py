"""Settings of an assessment round and the roster of townships.

Both ship inside the package (`defaults/`), so `xlsx-assess generate --out DIR` works right after
`pip install`; options point to the user's own files.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from .issues import AssessError, Code, Report, issue
from .rubric import Column, CsvUnreadable, Headers, Table, csv_rows, decode_text
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
    # The page's upload limits: files in one upload (a request), and their size together in MB. Not in the
    # repr, which is part of what a verdict rests on (ledger.context_key): a new limit re-checks nothing.
    upload_max_files: int = field(default=2000, repr=False)
    upload_max_mb: int = field(default=200, repr=False)

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
    except (OSError, UnicodeDecodeError) as exc:
        report.add(issue(Code.SETTINGS_INVALID, file=path.name, detail=str(exc)))
        raise AssessError(report) from None
    except tomllib.TOMLDecodeError as exc:
        line, detail = toml_problem(text, exc)
        report.add(issue(Code.SETTINGS_INVALID, file=path.name, line=line, detail=detail))
        raise AssessError(report) from None
    settings = settings_from_data(data, report, lambda key: {"file": path.name, "line": _line_of(text, key),
                                                             "column": key})
    if year is not None and (message := _year_problem(year)):
        report.add(issue(Code.SETTINGS_INVALID, file="--year", column="year", detail=message))
    if settings is None or not report.ok:
        raise AssessError(report)
    return settings.with_year(year)


def settings_from_data(data: dict, report: Report, where, named=None) -> Settings | None:
    """Settings from their values by key (as TOML gives them, or the setup workbook's 考核参数 sheet);
    every value that cannot be right is an R201 in `report`, located by `where(key)` (issue fields).
    `named(key)`: how the messages name a setting where the clerk does not see its key (the workbook's
    label, 加分上限, instead of bonus_cap)."""
    for key, message in setting_problems(data):
        if named is not None:
            message = re.sub(rf"^{re.escape(key)}(（[^）]*）)?", named(key), message)
            message = message.replace('"warning"（警告）或 "error"（错误）', "“警告”或“错误”")
        report.add(issue(Code.SETTINGS_INVALID, detail=message, **where(key)))
    return Settings(**_converted(data)) if report.ok else None


CHINESE_QUOTES = "“”‘’「」"
TOML_AT = re.compile(r"\(at line (\d+), column (\d+)\)")


def toml_problem(text: str, exc: "tomllib.TOMLDecodeError") -> tuple[int | None, str]:
    """(line, what is wrong, in Chinese) for a settings file TOML cannot read: the parser's English names
    the place, the line itself tells the likely mistake."""
    found = TOML_AT.search(str(exc))
    if not found:
        if "end of document" in str(exc):
            return len(text.splitlines()) or None, "到文件末尾仍有括号 [ { 或引号没有成对，请补上"
        return None, "文件格式不对（应为 TOML：每行写成 名称 = 值）"
    line = int(found[1])
    lines = text.splitlines()
    written = lines[line - 1] if 0 < line <= len(lines) else ""
    key, eq, value = written.partition("=")
    value = value.strip()
    if any(q in written for q in CHINESE_QUOTES):
        why = "用了中文引号，请改为英文双引号 \"，例如 contact_phone = \"0393-1234567\""
    elif "＝" in written:
        why = "用了中文等号“＝”，请改为英文等号 ="
    elif not eq:
        why = f"“{written.strip()[:30]}”不是“名称 = 值”的写法"
    elif value and value[0] not in "\"'[{" and not re.fullmatch(r"[-+]?[0-9._]+|true|false", value):
        why = f"{key.strip()} 的值“{value[:30]}”没有加英文双引号，文字请写成 {key.strip()} = \"{value[:30]}\""
    else:
        why = f"第 {found[2]} 个字符附近写法不对：文字加英文双引号，数字直接写，每行写成 名称 = 值"
    return line, why


def check_year(year: int | None) -> None:
    """Refuse a --year option outside the range (AssessError, R201 at "--year")."""
    if year is not None and (message := _year_problem(year)):
        raise AssessError(Report([issue(Code.SETTINGS_INVALID, file="--year", column="year", detail=message)]))


def setting_problems(data: dict) -> list[tuple[str, str]]:
    """(key, what is wrong) for every setting in `data` that cannot be right."""
    known = set(Settings.__dataclass_fields__)
    problems = [(key, f"不认识的设置项 {key}") for key in data if key not in known]
    checks = {**{k: _text_problem for k in TEXT_LIMITS}, "year": lambda k, v, d: _year_problem(v),
              "bonus_cap": _cap_problem, "deduction_cap": _cap_problem, "grades": _grades_problem,
              "score_decimals": lambda k, v, d: _decimals_problem(v), "missing_note_severity": _severity_problem,
              **{k: _whole_problem for k in WHOLE_LIMITS}}
    for key, value in data.items():
        message = checks[key](key, value, data) if key in checks else None
        if message:
            problems.append((key, message))
    return problems


def _text_problem(key: str, value, data: dict) -> str | None:
    if hasattr(value, "isoformat"):                  # TOML reads 2027-01-15 without quotes as a date
        return f"{key} 的日期没有加英文双引号，请写成 {key} = \"{value.isoformat()}\""
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
# whole-number settings: key -> (what it is, lowest, highest)
WHOLE_LIMITS = {"upload_max_files": ("网页每次最多上传的文件数", 1, 100_000),
                "upload_max_mb": ("网页每次最多上传的大小（MB）", 1, 4096)}


def _whole_problem(key: str, value, data: dict) -> str | None:
    what, low, high = WHOLE_LIMITS[key]
    if type(value) is not int or not low <= value <= high:
        return f"{key}（{what}）应为 {low} 到 {high} 之间的整数，实际为 {value!r}"
    return None


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


ROSTER_COLUMNS: tuple[Column, ...] = (Column("code", "代码", width=14), Column("name", "名称", width=16),
                                     Column("kind", "类别", False, 12))


def load_townships(path: str | Path | None = None) -> list[Township]:
    """Read the roster (columns code, name and optionally kind, or 代码, 名称, 类别), as CSV in UTF-8 or GBK."""
    path = Path(path) if path else default_path("townships.csv")
    report = Report()
    try:
        records = csv_rows(decode_text(path.read_bytes()))
    except (OSError, UnicodeDecodeError, CsvUnreadable) as exc:
        report.add(issue(Code.ROSTER_INVALID, file=path.name, line=getattr(exc, "line", None), detail=str(exc)))
        raise AssessError(report) from None
    townships = townships_from_table(records, report, path.name)
    if not report.ok:
        raise AssessError(report)
    return townships


def townships_from_table(records: Table, report: Report, file: str, sheet: str = "") -> list[Township]:
    """Validate a roster given as a table of text (a CSV's records, or the setup workbook's 乡镇名单 sheet);
    every problem is an R202 in `report` at file › sheet › line."""
    head = Headers(records[0][1] if records else [], ROSTER_COLUMNS)
    townships: list[Township] = []
    seen: set[str] = set()
    for lineno, values in records[1:]:
        row = head.record(values)
        code, name, kind = row.get("code", ""), row.get("name", ""), row.get("kind", "")

        def bad(detail: str, column: str = "") -> None:
            report.add(issue(Code.ROSTER_INVALID, file=file, sheet=sheet, line=lineno,
                             column=head.shown(column) if column else "", detail=detail))

        if not code or not name:
            bad("每行都需要 code（代码）和 name（名称）", "name" if code else "code")
        elif len(code) > MAX_ROSTER_TEXT or len(name) > MAX_ROSTER_TEXT or len(kind) > MAX_ROSTER_TEXT:
            bad(f"代码、名称或类别超过 {MAX_ROSTER_TEXT} 个字")
        elif code in seen:
            bad(f"代码 {code} 重复", "code")
        else:
            seen.add(code)
            townships.append(Township(code, name, kind))
    if not townships and report.ok:
        report.add(issue(Code.ROSTER_INVALID, file=file, sheet=sheet, detail="名单为空"))
    return townships


def select_townships(townships: list[Township], only: list[str] | None) -> list[Township]:
    """Pick townships by code or name; an unknown one is an error naming it."""
    if not only:
        return townships
    chosen: list[Township] = []
    unknown: list[str] = []
    for key in only:
        match = [t for t in townships if key in (t.code, t.name)]
        if not match:
            unknown.append(key)
        chosen.extend(t for t in match if t not in chosen)
    if unknown:
        shown = "、".join(t.name for t in townships[:SHOWN_NAMES]) + (f" 等 {len(townships)} 个" if len(townships) > SHOWN_NAMES else "")
        raise AssessError(Report([issue(Code.ROSTER_TOWNSHIP_UNKNOWN, column="--only", value="、".join(unknown),
                                        detail=shown)]))
    return chosen


SHOWN_NAMES = 30          # townships named when an --only name is not on the roster
