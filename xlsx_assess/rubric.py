"""The rubric: the one source of truth for what is assessed and how many points each line is worth.

`rubric.csv` has one row per line of the form, in the form's order, with the columns
id, category (内容), indicator (一级指标), criterion (二级指标), kind (base | bonus | deduction |
zero), points, guide (评分标准) and note (备注). The loader accepts the file as Excel and WPS
save it (UTF-8 with or without BOM, GB18030/GBK) and reports every problem at once.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from .issues import AssessError, Code, Report, issue

Kind = Literal["base", "bonus", "deduction", "zero"]
KINDS: tuple[str, ...] = ("base", "bonus", "deduction", "zero")
COLUMNS: tuple[str, ...] = ("id", "category", "indicator", "criterion", "kind", "points", "guide", "note")
REQUIRED: tuple[str, ...] = ("id", "category", "indicator", "criterion", "kind", "points")
BASE_TOTAL = 100.0
MAX_TEXT = 1000  # a criterion or guide longer than this does not belong in a form cell
ENCODINGS = ("utf-8-sig", "gb18030")


@dataclass(frozen=True)
class Item:
    """One line of the form."""

    id: str
    category: str
    indicator: str
    criterion: str
    kind: Kind
    points: float
    guide: str = ""
    note: str = ""

    @property
    def label(self) -> str:
        """How a person names this line: id and the most specific text it has."""
        return f"{self.id} {self.criterion or self.indicator}"


@dataclass(frozen=True)
class Rubric:
    items: tuple[Item, ...]

    # Derived once: a rubric never changes (frozen, its items a tuple), and scoring asks for these per file.
    @functools.cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.items)

    @functools.cached_property
    def base(self) -> tuple[Item, ...]:
        return self.of_kind("base")

    @functools.cached_property
    def bonus(self) -> tuple[Item, ...]:
        return self.of_kind("bonus")

    @functools.cached_property
    def deduction(self) -> tuple[Item, ...]:
        return self.of_kind("deduction")

    @functools.cached_property
    def zero(self) -> Item | None:
        found = self.of_kind("zero")
        return found[0] if found else None

    def of_kind(self, kind: str) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.kind == kind)

    @functools.cached_property
    def categories(self) -> tuple[str, ...]:
        """Categories in form order."""
        return tuple(dict.fromkeys(i.category for i in self.items))

    def category_max(self, category: str) -> float:
        return sum(i.points for i in self.base if i.category == category)

    @functools.cached_property
    def scored_categories(self) -> tuple[str, ...]:
        """Categories that hold base lines (they get a subtotal)."""
        return tuple(c for c in self.categories if any(i.category == c for i in self.base))

    @functools.cached_property
    def scored_lines(self) -> tuple[tuple[str, int, bool], ...]:
        """(id, total, base?) of every scored line: the total it adds to is its category's index among
        `scored_categories` for a base line, one past them for a bonus line, two past for a deduction."""
        at = {c: k for k, c in enumerate(self.scored_categories)}
        n = len(at)
        return tuple((i.id, at[i.category] if i.kind == "base" else n + (i.kind == "deduction"), i.kind == "base")
                     for i in self.items if i.kind in ("base", "bonus", "deduction"))

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical rubric: what every generated workbook carries."""
        canon = [[i.id, i.category, i.indicator, i.criterion, i.kind, format_points(i.points), i.guide, i.note]
                 for i in self.items]
        blob = json.dumps(canon, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()


def format_points(value: float) -> str:
    """1.0 -> '1', 1.5 -> '1.5': how points read in messages and the canonical form."""
    return f"{value:.10g}"


def decode_text(data: bytes) -> str:
    """Decode CSV bytes as saved by Excel (UTF-8, with BOM) or WPS (GB18030/GBK)."""
    for enc in ENCODINGS:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("gb18030", data, 0, 1, "neither UTF-8 nor GB18030")


def load_rubric(path: str | Path | None = None) -> Rubric:
    """Load and validate a rubric; raise AssessError with every problem if it is unusable."""
    rubric, report = read_rubric(path)
    if not report.ok or rubric is None:
        raise AssessError(report)
    return rubric


def read_rubric(path: str | Path | None = None) -> tuple[Rubric | None, Report]:
    """Load a rubric and collect all its problems; the bundled Taiqian rubric when path is None."""
    from .settings import default_path

    path = Path(path) if path else default_path("rubric.csv")
    report = Report()
    name = path.name
    try:
        text = decode_text(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        report.add(issue(Code.RUBRIC_UNREADABLE, file=name, detail=str(exc)))
        return None, report
    return parse_rubric(text, name, report)


def parse_rubric(text: str, name: str = "rubric.csv", report: Report | None = None) -> tuple[Rubric | None, Report]:
    report = report if report is not None else Report()
    try:
        records = csv_rows(text)
    except CsvUnreadable as exc:
        report.add(issue(Code.RUBRIC_UNREADABLE, file=name, line=exc.line, detail=str(exc)))
        return None, report
    if not records:
        report.add(issue(Code.RUBRIC_EMPTY, file=name))
        return None, report
    header_line, header_row = records[0]
    header = [h.strip().lower() for h in header_row]
    for col in sorted({h for h in header if h and header.count(h) > 1}):
        report.add(issue(Code.RUBRIC_COLUMN_DUPLICATE, file=name, line=header_line, column=col))
    for col in REQUIRED:
        if col not in header:
            report.add(issue(Code.RUBRIC_COLUMN_MISSING, file=name, line=header_line, column=col))
    for col in header:
        if col and col not in COLUMNS:
            report.add(issue(Code.RUBRIC_COLUMN_UNKNOWN, file=name, line=header_line, column=col))
    if not report.ok:
        return None, report

    items: list[Item] = []
    seen: dict[str, int] = {}
    zero_lines = 0
    for lineno, row in records[1:]:
        rec = {h: (row[k].strip() if k < len(row) else "") for k, h in enumerate(header)}
        before = len(report.errors)

        def bad(code: str, column: str, **fields) -> None:
            report.add(issue(code, file=name, line=lineno, column=column, **fields))

        ident = rec.get("id", "")
        if not ident:
            bad(Code.RUBRIC_ID_EMPTY, "id")
        elif ident in seen:
            bad(Code.RUBRIC_ID_DUPLICATE, "id", value=ident, other=seen[ident])
        else:
            seen[ident] = lineno
        if not rec.get("category"):
            bad(Code.RUBRIC_CATEGORY_EMPTY, "category")
        if not rec.get("indicator"):
            bad(Code.RUBRIC_INDICATOR_EMPTY, "indicator")
        kind = rec.get("kind", "").lower()
        if kind not in KINDS:
            bad(Code.RUBRIC_KIND_UNKNOWN, "kind", value=rec.get("kind", ""))
        points = _parse_points(rec.get("points", ""))
        if points is None:
            bad(Code.RUBRIC_POINTS_NOT_NUMBER, "points", value=rec.get("points", ""))
        elif points < 0:
            bad(Code.RUBRIC_POINTS_NEGATIVE, "points", value=rec.get("points", ""))
        for col in ("category", "indicator", "criterion", "guide", "note"):
            if len(rec.get(col, "")) > MAX_TEXT:
                bad(Code.RUBRIC_TEXT_TOO_LONG, col, value=MAX_TEXT)
        if kind == "zero":
            zero_lines += 1
            if points:
                bad(Code.RUBRIC_ZERO_LINE_POINTS, "points")
                points = 0.0
        if len(report.errors) == before:
            items.append(Item(ident, rec["category"], rec["indicator"], rec.get("criterion", ""), kind,
                              float(points), rec.get("guide", ""), rec.get("note", "")))
    if len(records) == 1:
        report.add(issue(Code.RUBRIC_EMPTY, file=name))
    if zero_lines > 1:
        report.add(issue(Code.RUBRIC_MANY_ZERO_LINES, file=name, value=zero_lines))
    _check_contiguous(records[1:], header, name, report)
    base_total = sum(i.points for i in items if i.kind == "base")
    if report.ok and not math.isclose(base_total, BASE_TOTAL, abs_tol=1e-9):
        report.add(issue(Code.RUBRIC_BASE_NOT_100, file=name, column="points", value=format_points(base_total)))
    if not report.ok:
        return None, report
    return Rubric(tuple(items)), report


class CsvUnreadable(ValueError):
    """A CSV record the csv module refuses (a cell longer than its field limit), at the line it starts on."""

    def __init__(self, line: int, error: csv.Error):
        super().__init__(f"第 {line} 行起的记录无法读取（单元格文字超过 {csv.field_size_limit()} 个字符，"
                         f"或引号不成对：{error}）")
        self.line = line


def csv_records(reader) -> Iterator[tuple[int, list[str]]]:
    """Every record of a csv reader with the file line it starts on; CsvUnreadable where one cannot be read."""
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CsvUnreadable(start, exc) from None


def csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """The non-blank CSV records, each with the file line it starts on (CR/CRLF read as LF)."""
    reader = csv.reader(io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n")))
    return [(start, row) for start, row in csv_records(reader) if any(c.strip() for c in row)]


def _parse_points(raw: str) -> float | None:
    try:
        value = float(raw.replace("＋", "+").replace("－", "-"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_contiguous(records: list[tuple[int, list[str]]], header: list[str], name: str, report: Report) -> None:
    """Merged cells need each category, and each indicator within it, on consecutive lines."""
    if "category" not in header or "indicator" not in header:
        return
    ci, ii = header.index("category"), header.index("indicator")
    keys = [(n, (r[ci].strip() if ci < len(r) else "", r[ii].strip() if ii < len(r) else "")) for n, r in records]
    for level, key_of in (("category", lambda k: k[0]), ("indicator", lambda k: k)):
        closed: set = set()
        previous = None
        for lineno, k in keys:
            key = key_of(k)
            if key != previous:
                if key in closed:
                    label = key if isinstance(key, str) else key[1]
                    report.add(issue(Code.RUBRIC_NOT_CONTIGUOUS, file=name, line=lineno, column=level, value=label))
                if previous is not None:
                    closed.add(previous)
                previous = key
