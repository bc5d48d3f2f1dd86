"""The rubric: the one source of truth for what is assessed and how many points each line is worth.

`rubric.csv` has one row per line of the form, in the form's order, with the columns
id, category (内容), indicator (一级指标), criterion (二级指标), kind (base | bonus | deduction |
zero), points, guide (评分标准) and note (备注); the Chinese headers (编号, 内容, …) and kinds
(基础项, 加分项, 减分项, 归零项) are read alike, and points may be written "2分". The loader accepts
the file as Excel and WPS save it (UTF-8 with or without BOM, GB18030/GBK) and reports every problem
at once. A CSV and the setup workbook's 评分细则 sheet (`setup_book`) both become a table of text
cells, which `rubric_from_table` validates: the rules live once.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from .issues import AssessError, Code, Report, issue

Kind = Literal["base", "bonus", "deduction", "zero"]
KINDS: tuple[str, ...] = ("base", "bonus", "deduction", "zero")
KIND_ZH = {"base": "基础项", "bonus": "加分项", "deduction": "减分项", "zero": "归零项"}
KIND_ALIASES = {**{k: k for k in KINDS}, **{zh: k for k, zh in KIND_ZH.items()}, "基础": "base",
                "加分": "bonus", "特别加分项": "bonus", "减分": "deduction", "特别减分项": "deduction",
                "归零": "zero", "直接归零项": "zero"}


@dataclass(frozen=True)
class Column:
    """A column of a table the county edits, declared once: its key, its Chinese header (the setup
    workbook's, and read in a CSV as the key), whether it must be there, and its width in the workbook."""

    key: str
    zh: str
    required: bool = True
    width: float = 12
    wrap: bool = False


RUBRIC_COLUMNS: tuple[Column, ...] = (
    Column("id", "编号", width=7), Column("category", "内容", width=11, wrap=True),
    Column("indicator", "一级指标", width=16, wrap=True), Column("criterion", "二级指标", width=34, wrap=True),
    Column("kind", "类型", width=8), Column("points", "分值", width=6),
    Column("guide", "评分标准", False, 34, True), Column("note", "备注", False, 12, True))
COLUMNS: tuple[str, ...] = tuple(c.key for c in RUBRIC_COLUMNS)
REQUIRED: tuple[str, ...] = tuple(c.key for c in RUBRIC_COLUMNS if c.required)
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


def shown_points(value: float | str | None) -> str:
    """A score as a message shows it: points as `format_points`, text as typed, nothing as （空）."""
    return "（空）" if value is None else value if isinstance(value, str) else format_points(value)


def rubric_csv(rubric: Rubric) -> bytes:
    """The rubric as a CSV that loads back to an equal rubric (same fingerprint): UTF-8 with a BOM, so
    Excel on Chinese Windows opens it right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for i in rubric.items:
        writer.writerow([i.id, i.category, i.indicator, i.criterion, i.kind, format_points(i.points), i.guide, i.note])
    return out.getvalue().encode("utf-8-sig")


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
    return rubric_from_table(records, report, name), report


Table = list[tuple[int, list[str]]]   # (line or row number, cells as text), the header first, no blank rows


class Headers:
    """A table's header row read against its declared columns: English keys or Chinese headers, any case,
    spaces around forgiven. `shown(key)` is how a message names a column: as the table writes it."""

    def __init__(self, row: list[str], columns: tuple[Column, ...]):
        by_name = {n: c.key for c in columns for n in (c.key, c.zh)}
        self.written = [_norm(h) for h in row]
        self.keys = [by_name.get(h.lower(), h.lower()) for h in self.written]
        self.chinese = any(h in {c.zh for c in columns} for h in self.written)
        self._zh = {c.key: c.zh for c in columns}

    def shown(self, key: str) -> str:
        if key in self.keys:
            written = self.written[self.keys.index(key)]
            return written if self.chinese else written.lower()
        return self._zh.get(key, key) if self.chinese else key

    def record(self, row: list[str]) -> dict[str, str]:
        return {h: (row[k].strip() if k < len(row) else "") for k, h in enumerate(self.keys)}


def _norm(text: str) -> str:
    """Text as typed in Excel or WPS, compared: full-width letters and digits as half-width, outer spaces off."""
    return unicodedata.normalize("NFKC", text).strip()


def rubric_from_table(records: Table, report: Report, file: str, sheet: str = "") -> Rubric | None:
    """Validate a rubric given as a table of text (a CSV's records, or the setup workbook's 评分细则 sheet);
    every problem goes into `report` at file › sheet › line › column."""
    if not records:
        report.add(issue(Code.RUBRIC_EMPTY, file=file, sheet=sheet))
        return None
    header_line, header_row = records[0]
    head = Headers(header_row, RUBRIC_COLUMNS)
    header = head.keys

    def at(line: int | None, key: str = "") -> dict:
        return {"file": file, "sheet": sheet, "line": line, "column": head.shown(key) if key else ""}

    for col in sorted({h for h in header if h and header.count(h) > 1}):
        report.add(issue(Code.RUBRIC_COLUMN_DUPLICATE, **at(header_line, col)))
    for col in REQUIRED:
        if col not in header:
            report.add(issue(Code.RUBRIC_COLUMN_MISSING, **at(header_line, col)))
    for col in header:
        if col and col not in COLUMNS:
            report.add(issue(Code.RUBRIC_COLUMN_UNKNOWN, **at(header_line, col)))
    if not report.ok:
        return None

    items: list[Item] = []
    seen: dict[str, int] = {}
    zero_lines = 0
    for lineno, row in records[1:]:
        rec = head.record(row)
        before = len(report.errors)

        def bad(code: str, column: str, **fields) -> None:
            report.add(issue(code, **at(lineno, column), **fields))

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
        kind = KIND_ALIASES.get(_norm(rec.get("kind", "")).lower(), "")
        if kind not in KINDS:
            bad(Code.RUBRIC_KIND_UNKNOWN, "kind", value=rec.get("kind", ""))
        points = parse_points(rec.get("points", ""))
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
        report.add(issue(Code.RUBRIC_EMPTY, file=file, sheet=sheet))
    if zero_lines > 1:
        report.add(issue(Code.RUBRIC_MANY_ZERO_LINES, file=file, sheet=sheet, value=zero_lines))
    _check_contiguous(records[1:], head, report, at)
    base_total = sum(i.points for i in items if i.kind == "base")
    if report.ok and not math.isclose(base_total, BASE_TOTAL, abs_tol=1e-9):
        report.add(issue(Code.RUBRIC_BASE_NOT_100, value=format_points(base_total), **at(None, "points")))
    if not report.ok:
        return None
    return Rubric(tuple(items))


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


def parse_points(raw: str) -> float | None:
    """Points as typed: "1.5", "２", "2分", " 2 " all read; None if not a finite number."""
    text = _norm(raw)
    text = text[:-1].rstrip() if text.endswith("分") else text
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_contiguous(records: Table, head: Headers, report: Report, at) -> None:
    """Merged cells need each category, and each indicator within it, on consecutive lines."""
    header = head.keys
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
                    report.add(issue(Code.RUBRIC_NOT_CONTIGUOUS, value=label, **at(lineno, level)))
                if previous is not None:
                    closed.add(previous)
                previous = key
