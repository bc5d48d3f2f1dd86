"""The 核定表: the county's verification of one township's accepted return.

`review_layout` lays one out as a list of `CellSpec`, like `layout.form_layout` does for a form: per
rubric line 编号, 内容, 指标, 分值 and what the township entered (自评分, 扣分说明, 佐证材料), locked,
and the inputs 核定分 (pre-filled with the 自评分) and 核定说明, with 核查人 and 日期 above; subtotals
and totals over both columns, rounded as the form rounds them. `write_review` renders it with the
writer's pieces; `check_review` reads a returned 核定表 back against the very same list (identity,
the seal of every locked cell, the inputs, the reason rule). Its identity names the return it was
made from (`xa_return_sha256`): a 核定表 applies to that return only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__, scoring
from .issues import Code, Issue, issue
from .layout import (IDENTITY_KEYS, META_SHEET, NOTE_MAX, REVIEW_SHEET, CellSpec, Validation, a1, cell_ranges,
                     page_points, paginate, position, row_height, score_validation)
from .rubric import Item, Rubric, format_points, shown_points
from .settings import Settings, Township

REVIEW_SHEETS = (REVIEW_SHEET, META_SHEET)
REVIEW_MARK = "xlsx-assess-review"          # xa_form of a 核定表 (a form's is layout.FORM_MARK)
REVIEW_KEYS = (*IDENTITY_KEYS, "xa_return_sha256")


@dataclass(frozen=True)
class Column:
    """A column of the 核定表, declared once: heading, width, style of its body cells."""

    header: str
    width: float
    style: str = "text"


COLUMNS = (Column("编号", 6, "text_center"), Column("内容", 9, "text_center"), Column("指标", 36),
           Column("分值", 6, "points"), Column("自评分", 7, "points"), Column("扣分说明", 22, "small"),
           Column("佐证材料", 18, "small"), Column("核定分", 8, "input_score"), Column("核定说明", 26, "input_text"))
C_ID, C_CAT, C_IND, C_POINTS, C_SELF, C_NOTE, C_EVID, C_SCORE, C_REASON = range(len(COLUMNS))
TITLE_ROW, INFO_ROW, HINT_ROW, HEADER_ROW, FIRST_ROW = range(5)
TOTAL_LABELS = ("基础得分", "加分", "减分", "最终得分")
HEAD_HEIGHTS = {TITLE_ROW: 32.0, INFO_ROW: 24.0, HINT_ROW: 30.0, HEADER_ROW: 24.0}
ROW, GAP = 22.0, 12.0                # points: a one-line row; the empty rows before the totals and signatures
SIGNATURE = "核查人（签字）：                        日期：                        县考核组（盖章）："


@dataclass
class ReviewLayout:
    """Where everything of one township's 核定表 sits, and every cell to write and to check."""

    rubric: Rubric
    township: Township
    settings: Settings
    own: "SelfAssessed"                  # the return it is made from
    cells: list[CellSpec] = field(default_factory=list)
    item_rows: dict[str, int] = field(default_factory=dict)
    subtotal_rows: dict[str, int] = field(default_factory=dict)
    totals: dict[str, tuple[str, str]] = field(default_factory=dict)   # label -> (自评 cell, 核定 cell)
    reviewer_cell: str = ""
    date_cell: str = ""
    last_row: int = 0
    heights: dict[int, float] = field(default_factory=dict)    # row -> height (points), from the texts
    breaks: list[int] = field(default_factory=list)             # rows that start a printed page
    identity: dict[str, str] = field(default_factory=dict)
    shared: dict = field(default_factory=dict, repr=False)           # what the writer derives once

    def score_cell(self, item_id: str) -> str:
        return a1(self.item_rows[item_id], C_SCORE)

    def self_cell(self, item_id: str) -> str:
        return a1(self.item_rows[item_id], C_SELF)

    def reason_cell(self, item_id: str) -> str:
        return a1(self.item_rows[item_id], C_REASON)

    def inputs(self) -> list[CellSpec]:
        return [c for c in self.cells if c.is_input]

    def locked(self) -> list[CellSpec]:
        return [c for c in self.cells if not c.is_input]


@dataclass(frozen=True)
class SelfAssessed:
    """What the township entered in the return a 核定表 is made from (from its `checks.Entries`)."""

    sha256: str
    values: Mapping[str, float | None]
    zeroed: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)
    evidence: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, sha256: str, entries) -> "SelfAssessed":
        return cls(sha256, dict(entries.values), bool(entries.zeroed), dict(entries.notes), dict(entries.evidence))

    def shown(self, item: Item) -> float | str | None:
        """The 自评分 a line shows: the number, 是/否 for the zero-out line, None where left blank."""
        if item.kind == "zero":
            return scoring.YES if self.zeroed else scoring.NO
        return self.values.get(item.id)


def review_id(rubric: Rubric, township: Township, year: int, return_sha256: str) -> str:
    return hashlib.sha256(f"review|{rubric.fingerprint}|{township.code}|{year}|{return_sha256}".encode()).hexdigest()[:16]


def review_identity(rubric: Rubric, township: Township, settings: Settings, return_sha256: str) -> dict[str, str]:
    return {"xa_form": REVIEW_MARK, "xa_township_code": township.code, "xa_township": township.name,
            "xa_year": str(settings.year), "xa_rubric_sha256": rubric.fingerprint,
            "xa_form_id": review_id(rubric, township, settings.year, return_sha256),
            "xa_tool_version": __version__, "xa_return_sha256": return_sha256}


def review_file_name(township: Township, year: int) -> str:
    """`2026_410927100_城关镇_核定表.xlsx`."""
    from .writer import file_name

    return file_name(township, year)[:-len(".xlsx")] + "_核定表.xlsx"


def review_layout(rubric: Rubric, township: Township, settings: Settings, own: SelfAssessed,
                  decided: Mapping[str, Any] | None = None) -> ReviewLayout:
    """Lay out the 核定表 of `township` for its return `own`; `decided` (A1 -> value) fills input cells
    (how tests fill one in); 核定分 is otherwise pre-filled with the 自评分."""
    lay = ReviewLayout(rubric, township, settings, own)
    lay.identity = review_identity(rubric, township, settings, own.sha256)
    _lay_sheet(lay, own)
    _lay_meta(lay)
    if decided:
        lay.cells = [_filled(c, decided) for c in lay.cells]
    return lay


def _filled(cell: CellSpec, decided: Mapping[str, Any]) -> CellSpec:
    if cell.is_input and cell.ref in decided:
        return CellSpec(cell.sheet, cell.row, cell.col, decided[cell.ref], None, cell.style, cell.merge_to,
                        cell.validation)
    return cell


def _lay_sheet(lay: ReviewLayout, own: SelfAssessed) -> None:
    s, rubric, t = lay.settings, lay.rubric, lay.township

    def put(row, col, value=None, style="text", formula=None, merge_to=None, validation=None):
        lay.cells.append(CellSpec(REVIEW_SHEET, row, col, value, formula, style, merge_to, validation))

    put(TITLE_ROW, 0, f"{s.title}（{s.year}年度）核定表", "title", merge_to=(TITLE_ROW, C_REASON))
    put(INFO_ROW, 0, "被考核单位", "label", merge_to=(INFO_ROW, C_CAT))
    put(INFO_ROW, C_IND, t.label, "info")
    put(INFO_ROW, C_POINTS, "核查人", "label", merge_to=(INFO_ROW, C_SELF))
    put(INFO_ROW, C_NOTE, None, "input_text", validation=Validation(
        "length", 1, 20, title="核查人", prompt="请填写核查人姓名（多人用顿号分隔）。", error="核查人请控制在 20 个字以内。"))
    lay.reviewer_cell = a1(INFO_ROW, C_NOTE)
    put(INFO_ROW, C_EVID, "核定日期", "label")
    put(INFO_ROW, C_SCORE, None, "input_date", merge_to=(INFO_ROW, C_REASON), validation=Validation(
        "date", title="核定日期", prompt="请填写日期，如 2027-01-15。", error="请填写有效日期，如 2027-01-15。"))
    lay.date_cell = a1(INFO_ROW, C_SCORE)
    put(HINT_ROW, 0, "核定分已按自评分预填，只填写浅黄色单元格。核定分与自评分不同的，必须在“核定说明”中写明理由"
        f"（未写时显示为红色）。依据的自评文件 SHA-256：{own.sha256[:16]}", "hint", merge_to=(HINT_ROW, C_REASON))
    for col, column in enumerate(COLUMNS):
        put(HEADER_ROW, col, column.header, "head")

    row = FIRST_ROW
    blocks: list[tuple[str, list[int]]] = []          # each category and its item rows
    for category in rubric.categories:
        items = [i for i in rubric.items if i.category == category]
        blocks.append((category, list(range(row, row + len(items)))))
        for item in items:
            lay.item_rows[item.id] = row
            lay.heights[row] = _lay_line(put, row, item, own, s.score_decimals)
            row += 1
        base = [i for i in items if i.kind == "base"]
        if base:
            lay.subtotal_rows[category] = row
            put(row, 0, f"{category} 小计", "subtotal_label", merge_to=(row, C_IND))
            put(row, C_POINTS, rubric.category_max(category), "subtotal_num")
            for col in (C_SELF, C_SCORE):
                refs = cell_ranges([a1(lay.item_rows[i.id], col) for i in base])
                put(row, col, None, "subtotal_num", formula=scoring.total_formula(refs, s.score_decimals))
            put(row, C_NOTE, None, "subtotal_label", merge_to=(row, C_EVID))
            put(row, C_REASON, None, "subtotal_label")
            lay.heights[row] = ROW
            row += 1
    lay.last_row = _lay_totals(lay, put, row + 1)
    _paginate(lay, blocks)
    for category, rows in blocks:                       # 内容 merged over its rows within each page
        for piece in _pieces(rows, lay.breaks):
            put(piece[0], C_CAT, category, "text_center", merge_to=(piece[-1], C_CAT) if len(piece) > 1 else None)
            short = row_height(category, COLUMNS[C_CAT].width) - sum(lay.heights[r] for r in piece)
            if short > 0:
                lay.heights[piece[-1]] += short


def _paginate(lay: ReviewLayout, blocks: list[tuple[str, list[int]]]) -> None:
    """Page breaks (`layout.paginate`) wherever a page is full, a category's 小计 kept with its last line and
    the totals with the signatures, its 内容 cell merged again on the next page: `lay.breaks`, the rows
    that start a printed page. A 核定表 is read line by line, so its pages are filled."""
    heights = []
    for category, rows in blocks:
        sub = lay.subtotal_rows.get(category)
        heights += [[lay.heights[r]] for r in rows]
        if sub is not None:
            heights[-1].append(lay.heights[sub])
    tail_rows = range(lay.last_row - len(TOTAL_LABELS) - 3, lay.last_row + 1)
    heights.append([lay.heights.get(r, GAP) for r in tail_rows])
    offsets = paginate(heights, sum(HEAD_HEIGHTS.values()), HEAD_HEIGHTS[HEADER_ROW],
                       page_points(tuple(c.width for c in COLUMNS)))
    lay.breaks = [FIRST_ROW + k for k in offsets]


def _pieces(rows: list[int], breaks: list[int]) -> list[list[int]]:
    """`rows` cut where a page starts."""
    out: list[list[int]] = []
    for r in rows:
        if out and r not in breaks:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _lay_line(put, row: int, item: Item, own: SelfAssessed, decimals: int) -> float:
    """The cells of a rubric line; the height its texts need."""
    put(row, C_ID, item.id, "text_center")
    what = f"{item.indicator}：{item.criterion}" if item.criterion else item.indicator
    put(row, C_IND, what, "text")
    shown = own.shown(item)
    if item.kind == "zero":
        put(row, C_POINTS, "是/否", "text_center")
        put(row, C_SELF, shown, "text_center")
        put(row, C_SCORE, shown, "input_choice", validation=Validation(
            "list", choices=(scoring.YES, scoring.NO), title="直接归零项",
            prompt="请选择“是”或“否”。选“是”则最终得分记 0 分。", error="只能选择“是”或“否”。"))
    else:
        put(row, C_POINTS, item.points, "points")
        put(row, C_SELF, shown, "points")
        put(row, C_SCORE, shown, "input_score", validation=score_validation(item, decimals))
    put(row, C_NOTE, own.notes.get(item.id), "small")
    put(row, C_EVID, own.evidence.get(item.id), "small")
    put(row, C_REASON, None, "input_text", validation=Validation(
        "length", 0, NOTE_MAX, title="核定说明", prompt=f"核定分与自评分不同的，写明理由，{NOTE_MAX} 字以内。",
        error=f"核定说明请控制在 {NOTE_MAX} 字以内。"))
    texts = ((what, C_IND, 10.5), (own.notes.get(item.id, ""), C_NOTE, 9.0), (own.evidence.get(item.id, ""), C_EVID, 9.0))
    return max(ROW, *(row_height(t, COLUMNS[c].width, size) for t, c, size in texts if t))


def _lay_totals(lay: ReviewLayout, put, row: int) -> int:
    s, rubric = lay.settings, lay.rubric
    d = s.score_decimals
    put(row, 0, "得分汇总", "total_label", merge_to=(row, C_POINTS))
    put(row, C_SELF, "自评", "total_label")
    put(row, C_NOTE, "说明", "total_label", merge_to=(row, C_EVID))
    put(row, C_SCORE, "核定", "total_label")
    put(row, C_REASON, "核定−自评", "total_label")
    row += 1
    lay.heights[row - 1] = ROW
    for k, label in enumerate(TOTAL_LABELS):
        lay.totals[label] = (a1(row + k, C_SELF), a1(row + k, C_SCORE))
        lay.heights[row + k] = ROW
    explain = {
        "基础得分": f"各类小计之和，满分 {format_points(sum(i.points for i in rubric.base))} 分",
        "加分": f"特别加分项合计，计入总分最多 {format_points(s.bonus_cap)} 分",
        "减分": f"特别减分项合计，计入总分最多 {format_points(s.deduction_cap)} 分",
        "最终得分": "基础得分＋加分−减分，最低 0 分" + ("；直接归零项为“是”时记 0 分" if rubric.zero else ""),
    }
    for label in TOTAL_LABELS:
        put(row, 0, label, "total_label", merge_to=(row, C_POINTS))
        for col, which in ((C_SELF, 0), (C_SCORE, 1)):
            put(row, col, None, "final_value" if label == "最终得分" else "total_value",
                formula=_total_formula(lay, label, col, which))
        put(row, C_NOTE, explain[label], "small", merge_to=(row, C_EVID))
        self_ref, review_ref = lay.totals[label]
        put(row, C_REASON, None, "difference", formula=f"ROUND({review_ref}-{self_ref},{d})")
        row += 1
    row += 1
    put(row, 0, SIGNATURE, "signature", merge_to=(row, C_REASON))
    lay.heights[row] = 30.0
    return row


def _total_formula(lay: ReviewLayout, label: str, col: int, which: int) -> str:
    """A total over the 自评 (`which` 0) or 核定 (1) column, as the form computes it (`scoring`)."""
    s, rubric = lay.settings, lay.rubric
    d = s.score_decimals
    if label == "基础得分":
        return scoring.total_formula([a1(r, col) for r in lay.subtotal_rows.values()], d)
    if label in ("加分", "减分"):
        kind = "bonus" if label == "加分" else "deduction"
        return scoring.total_formula(cell_ranges([a1(lay.item_rows[i.id], col) for i in rubric.items if i.kind == kind]), d)
    zero = a1(lay.item_rows[rubric.zero.id], col) if rubric.zero else None
    cells = [lay.totals[k][which] for k in ("基础得分", "加分", "减分")]
    return scoring.final_formula(*cells, zero, s.bonus_cap, s.deduction_cap, d)


def _lay_meta(lay: ReviewLayout) -> None:
    lay.cells.append(CellSpec(META_SHEET, 0, 0, "key", style="meta"))
    lay.cells.append(CellSpec(META_SHEET, 0, 1, "value", style="meta"))
    for r, key in enumerate(REVIEW_KEYS, start=1):
        lay.cells.append(CellSpec(META_SHEET, r, 0, key, style="meta"))
        lay.cells.append(CellSpec(META_SHEET, r, 1, lay.identity[key], style="meta"))


# -- what a 核定表 decides ---------------------------------------------------------------------------

@dataclass
class Decided:
    """What a 核定表 holds: the 核定分 per line (None: blank), the zero-out answer, the reasons, who."""

    values: dict[str, float | None] = field(default_factory=dict)
    zeroed: bool = False
    reasons: dict[str, str] = field(default_factory=dict)
    reviewer: str = ""
    date: str = ""


def scores_of(rubric: Rubric, settings: Settings, values: Mapping[str, float | None], zeroed: bool) -> scoring.Scores:
    return scoring.score(rubric, values, zeroed, settings)


def changed(item: Item, own: SelfAssessed, decided: Decided) -> bool:
    """Whether the 核定分 of a line differs from its 自评分 (a blank counts as 0, as the totals count it)."""
    if item.kind == "zero":
        return decided.zeroed != own.zeroed
    a, b = own.values.get(item.id), decided.values.get(item.id)
    return scoring.exact(a or 0.0) != scoring.exact(b or 0.0)


def computed(lay: ReviewLayout, decided: Decided) -> dict[str, Any]:
    """What every formula cell shows for these 核定分 (the cached values written into the file)."""
    own = lay.own
    out: dict[str, Any] = {}
    d = lay.settings.score_decimals
    pair = (scores_of(lay.rubric, lay.settings, own.values, own.zeroed),
            scores_of(lay.rubric, lay.settings, decided.values, decided.zeroed))
    for which, col in ((0, C_SELF), (1, C_SCORE)):
        sc = pair[which]
        out.update({a1(lay.subtotal_rows[c], col): v for c, v in sc.subtotals.items()})
        out.update({lay.totals[label][which]: v for label, v in sc.totals.items()})
    for label in TOTAL_LABELS:
        self_ref, review_ref = lay.totals[label]
        out[a1(position(self_ref)[0], C_REASON)] = float(scoring.round_half_up(
            scoring.exact(out[review_ref]) - scoring.exact(out[self_ref]), d))
    return out


def prefilled(lay: ReviewLayout) -> Decided:
    """The `Decided` of a layout's input cells as they will be written."""
    by_ref = {c.ref: c.value for c in lay.inputs()}
    dec = Decided(reviewer=str(by_ref.get(lay.reviewer_cell) or ""))
    for item in lay.rubric.items:
        v = by_ref.get(lay.score_cell(item.id))
        if item.kind == "zero":
            dec.zeroed = v == scoring.YES
        else:
            dec.values[item.id] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        text = by_ref.get(lay.reason_cell(item.id))
        if isinstance(text, str) and text.strip():
            dec.reasons[item.id] = text
    return dec


# -- writing ----------------------------------------------------------------------------------------

EXTRA_STYLES = {"difference": {"bold": True, "align": "center", "valign": "vcenter", "border": 1,
                               "border_color": "#808080"},
                "signature": {"valign": "vcenter"}}


def write_review(lay: ReviewLayout, path: str | Path) -> Path:
    """Write the 核定表 atomically (see `writer.atomic_path`)."""
    from .writer import atomic_path

    path = Path(path)
    with atomic_path(path) as staged:
        _write(lay, staged.file)
    return path


def _write(lay: ReviewLayout, target) -> None:
    import xlsxwriter

    from .writer import FORMATS, FONT, PROTECT_OPTIONS, WORKBOOK_OPTIONS, write_cell, write_validations

    s = lay.settings
    d = s.score_decimals
    wb = xlsxwriter.Workbook(target, WORKBOOK_OPTIONS)
    wb.set_properties({"title": f"{s.title}（{s.year}年度）核定表 — {lay.township.name}", "subject": s.title,
                       "author": s.issuing_office, "company": s.issuing_office,
                       "created": dt.datetime(s.year, 1, 1, tzinfo=dt.timezone.utc),
                       "comments": "由 xlsx-assess 生成的核定表，请只填写浅黄色单元格。"})
    for key, value in lay.identity.items():
        wb.set_custom_property(key, value)
    shown = scoring.number_format(d)
    styles = {**FORMATS, **{k: {"font_name": FONT, "font_size": 10.5, **v} for k, v in EXTRA_STYLES.items()}}
    styles["difference"] = {**styles["difference"], "num_format": f"+{shown};-{shown};{shown}"}
    for key in ("subtotal_num", "total_value", "final_value"):
        styles[key] = {**styles[key], "num_format": shown}
    formats = {k: wb.add_format(v) for k, v in styles.items()}
    ws, meta = wb.add_worksheet(REVIEW_SHEET), wb.add_worksheet(META_SHEET)
    sheets = {REVIEW_SHEET: ws, META_SHEET: meta}
    cached = computed(lay, prefilled(lay))
    for cell in lay.cells:
        write_cell(sheets[cell.sheet], cell, formats[cell.style], cached)
    write_validations(lay, sheets)
    _setup_sheet(lay, ws, wb)
    meta.set_column(0, 1, 30)
    meta.very_hidden()
    for sheet in (ws, meta):
        sheet.protect("", PROTECT_OPTIONS)
    ws.activate()
    wb.close()


def _setup_sheet(lay: ReviewLayout, ws, wb) -> None:
    from .writer import print_setup

    for col, column in enumerate(COLUMNS):
        ws.set_column(col, col, column.width)
    for row, height in HEAD_HEIGHTS.items():
        ws.set_row(row, height)
    for row in range(FIRST_ROW, lay.last_row + 1):
        ws.set_row(row, lay.heights.get(row, GAP))
    ws.freeze_panes(HEADER_ROW + 1, 0)
    ws.repeat_rows(HEADER_ROW)
    print_setup(ws, lay.breaks, lay.last_row, C_REASON, f"{lay.settings.county}考核组", f"{lay.township.name} 核定表")
    _attention(lay, ws, wb)


def _attention(lay: ReviewLayout, ws, wb) -> None:
    """A 核定说明 missing where the 核定分 differs turns red; a changed 核定分 orange; a refused score red;
    核查人 and 日期 amber while blank."""
    red = wb.add_format({"bg_color": "#F4B6B6", "font_color": "#9C0006"})
    orange = wb.add_format({"bg_color": "#F8CBAD", "bold": True})
    amber = wb.add_format({"bg_color": "#FFEB9C"})
    items = lay.rubric.items
    reasons = cell_ranges([lay.reason_cell(i.id) for i in items])
    scores = cell_ranges([lay.score_cell(i.id) for i in items])
    row = str(lay.item_rows[items[0].id] + 1)
    score, own, reason = (f"${a1(0, c)[:-1]}{row}" for c in (C_SCORE, C_SELF, C_REASON))
    ws.conditional_format(reasons[0].split(":")[0], {"type": "formula", "multi_range": " ".join(reasons),
                                                     "criteria": f"=AND({score}<>{own},LEN(TRIM({reason}))=0)",
                                                     "format": red})
    numbers = cell_ranges([lay.score_cell(i.id) for i in items if i.kind != "zero"])
    if numbers:
        top = numbers[0].split(":")[0]
        points = f"${a1(0, C_POINTS)[:-1]}{top[len(top.rstrip('0123456789')):]}"
        ws.conditional_format(top, {"type": "formula", "multi_range": " ".join(numbers),
                                    "criteria": "=" + scoring.bad_score_formula(top, points, lay.settings.score_decimals),
                                    "format": red})
    ws.conditional_format(scores[0].split(":")[0], {"type": "formula", "multi_range": " ".join(scores),
                                                    "criteria": f"={score}<>{own}", "format": orange})
    for ref in (lay.reviewer_cell, lay.date_cell):
        ws.conditional_format(ref, {"type": "blanks", "format": amber})


# -- checking a returned 核定表 ----------------------------------------------------------------------

@dataclass
class ReviewResult:
    """The verdict on one 核定表 found in 核定/."""

    name: str
    sha256: str = ""
    township: Township | None = None
    return_sha256: str = ""            # the return it was made from (its identity)
    stale: bool = False                # made from another return than the township's accepted one
    touched: bool = False              # someone filled something in (a reviewer, a reason, a changed score)
    earlier: dict = field(default_factory=dict)   # a stale one's lines: id -> (自评分, 核定分, 核定说明) shown
    decided: Decided | None = None     # what it decides (None: not read that far)
    scores: scoring.Scores | None = None
    changes: list[tuple[Item, Any, Any, str]] = field(default_factory=list)   # (line, 自评, 核定, 说明)
    issues: list[Issue] = field(default_factory=list)
    mtime: dt.datetime | None = None

    def add(self, code: Code, **fields) -> None:
        self.issues.append(issue(code, file=self.name, **fields))

    @property
    def errors(self) -> int:
        return sum(i.severity == "error" for i in self.issues)

    @property
    def valid(self) -> bool:
        """Sealed, for the township's accepted return, every input acceptable and every change explained."""
        return self.decided is not None and not self.stale and not self.errors

    @property
    def signed(self) -> bool:
        return self.decided is not None and bool(self.decided.reviewer) and bool(self.decided.date)

    @property
    def done(self) -> bool:
        """已核定: valid and signed (核查人 and 日期 filled in)."""
        return self.valid and self.signed


def check_review(ret, ctx, accepted: Mapping[str, SelfAssessed]) -> ReviewResult:
    """Check one 核定表 (`ret`, read by `reader.read_returned`) against the returns the board accepts
    (`accepted`: township code -> what its accepted return holds); nothing raises."""
    res = ReviewResult(ret.name, ret.sha256, mtime=ret.mtime)
    res.issues.extend(ret.issues)
    if not ret.readable:
        return res
    ident = _identity(ret, ctx, res)
    if ident is None:
        return res
    own = accepted.get(res.township.code)
    if own is None or own.sha256 != res.return_sha256:
        res.stale = True
        res.earlier = _stale_lines(ret, ctx.rubric)
        res.touched = _touched_anyway(ret, res.earlier)
        now = f"另一个文件（SHA-256 前 12 位 {own.sha256[:12]}）" if own else "没有合格的自评文件"
        res.add(Code.REVIEW_STALE, sheet=META_SHEET, value=res.township.name, detail=res.return_sha256[:12],
                expected=now)
        return res
    if ident.get("xa_form_id") != review_id(ctx.rubric, res.township, ctx.settings.year, own.sha256):
        res.add(Code.IDENTITY_ALTERED, sheet=META_SHEET, detail="表单编号不符")
    lay = review_layout(ctx.rubric, res.township, ctx.settings, own)
    from .checks import MAX_CHANGED, check_sheets, locked_changes

    if not check_sheets(ret, res.add, REVIEW_SHEETS, REVIEW_SHEET):
        return res

    changed_cells = locked_changes(ret, lay.locked(), res.name)
    res.issues.extend(changed_cells[:MAX_CHANGED])
    if len(changed_cells) > MAX_CHANGED:
        res.add(Code.MANY_LOCKED_CELLS_CHANGED, sheet=REVIEW_SHEET, value=len(changed_cells) - MAX_CHANGED)
    _structure(ret, lay, res)
    res.decided = _read_decided(ret, lay, own, res)
    res.scores = scores_of(ctx.rubric, ctx.settings, res.decided.values, res.decided.zeroed)
    _check_shown(ret, lay, res)
    res.touched = bool(res.decided.reviewer or res.decided.reasons or res.changes)
    return res


def _identity(ret, ctx, res: ReviewResult) -> dict[str, str] | None:
    from .checks import claimed_township

    ident, township = claimed_township(ret, ctx, res.add, REVIEW_MARK, REVIEW_KEYS)
    if township is None:
        return None
    res.township, res.return_sha256 = township, ident.get("xa_return_sha256", "")
    if ident.get("xa_year") != str(ctx.settings.year):
        res.add(Code.WRONG_YEAR, sheet=META_SHEET, value=ident.get("xa_year", "?"), expected=ctx.settings.year)
        return None
    if ident.get("xa_rubric_sha256") != ctx.rubric.fingerprint:
        res.add(Code.WRONG_RUBRIC, sheet=META_SHEET, detail="核定表所用的评分细则不是本次考核的版本，"
                                                           "请运行 xlsx-assess review --refresh 重新生成")
        return None
    return ident


def _structure(ret, lay: ReviewLayout, res: ReviewResult) -> None:
    if ret.xml is None or REVIEW_SHEET not in ret.xml:
        return
    sheet = ret.xml[REVIEW_SHEET]
    if not sheet.protected:
        res.add(Code.PROTECTION_REMOVED, sheet=REVIEW_SHEET)
    from .checks import check_validations

    inputs = {(c.row, c.col): c.ref for c in lay.inputs() if c.sheet == REVIEW_SHEET}
    check_validations(sheet, REVIEW_SHEET, inputs, res.add)


def _read_decided(ret, lay: ReviewLayout, own: SelfAssessed, res: ReviewResult) -> Decided:
    from .checks import MAX_NOTE, cell_text

    formulas = ret.xml[REVIEW_SHEET].formulas if ret.xml and REVIEW_SHEET in ret.xml else {}
    dec = Decided()
    d = lay.settings.score_decimals
    for item in lay.rubric.items:
        row = lay.item_rows[item.id]
        ref, reason_ref = lay.score_cell(item.id), lay.reason_cell(item.id)
        raw = ret.value(REVIEW_SHEET, row, C_SCORE)
        reason = cell_text(ret.value(REVIEW_SHEET, row, C_REASON)).strip()
        if reason:
            dec.reasons[item.id] = reason[:MAX_NOTE]
        if ref in formulas:
            res.add(Code.FORMULA_IN_INPUT, sheet=REVIEW_SHEET, cell=ref, label=item.label, value="=" + formulas[ref][:40])
            continue
        if item.kind == "zero":
            answer = cell_text(raw).strip()
            if answer not in (scoring.YES, scoring.NO):
                res.add(Code.REVIEW_SCORE_INVALID, sheet=REVIEW_SHEET, cell=ref, value=item.id, detail=answer or "（空）",
                        expected="请选择“是”或“否”")
            dec.zeroed = answer == scoring.YES
        else:
            dec.values[item.id] = _score(raw, item, d, ref, res)
        if changed(item, own, dec):
            res.changes.append((item, own.shown(item), _decided_shown(item, dec), reason))
            if not reason:
                res.add(Code.REVIEW_REASON_MISSING, sheet=REVIEW_SHEET, cell=reason_ref, value=item.id,
                        detail=shown_points(_decided_shown(item, dec)), expected=shown_points(own.shown(item)))
    dec.reviewer = cell_text(ret.value(REVIEW_SHEET, *position(lay.reviewer_cell))).strip()
    date = ret.value(REVIEW_SHEET, *position(lay.date_cell))
    dec.date = date.isoformat()[:10] if isinstance(date, (dt.date, dt.datetime)) else cell_text(date).strip()
    missing = [w for w, v in (("核查人", dec.reviewer), ("核定日期", dec.date)) if not v]
    if missing:
        res.add(Code.REVIEW_UNSIGNED, sheet=REVIEW_SHEET, cell=lay.reviewer_cell if not dec.reviewer else lay.date_cell,
                value="和".join(missing))
    return dec


def _check_shown(ret, lay: ReviewLayout, res: ReviewResult) -> None:
    """Where the file shows totals (a spreadsheet program saved it), they must be what the entries give:
    V408 at each that is not (the totals counted are ours, whatever the file shows)."""
    d = lay.settings.score_decimals
    labels = {a1(r, col): f"{c}小计" for c, r in lay.subtotal_rows.items() for col in (C_SELF, C_SCORE)}
    labels.update({ref: label for label, pair in lay.totals.items() for ref in pair})
    for ref, expected in computed(lay, res.decided).items():
        if ref not in labels:
            continue
        actual = ret.value(REVIEW_SHEET, *position(ref))
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            continue                                  # not calculated by a program (or text): nothing shown to compare
        if scoring.round_half_up(scoring.exact(actual), d) != scoring.round_half_up(scoring.exact(expected), d):
            res.add(Code.CACHED_TOTAL_DIFFERS, sheet=REVIEW_SHEET, cell=ref, label=labels[ref],
                    value=scoring.show(actual, d), expected=scoring.show(expected, d))


def _decided_shown(item: Item, dec: Decided):
    if item.kind == "zero":
        return scoring.YES if dec.zeroed else scoring.NO
    return dec.values.get(item.id)


def _score(raw: Any, item: Item, decimals: int, ref: str, res: ReviewResult) -> float | None:
    """A 核定分 as the file holds it; None (with V421) where it is not a number from 0 to the points with at
    most `decimals` places. A blank base line is invalid too: every base line needs its 核定分."""
    from .checks import FULL_WIDTH, TYPED_NUMBER

    top = format_points(item.points)
    places = f"最多保留{scoring.PLACES_ZH[decimals]}" if decimals else "只能填整数"
    why = f"应为 0 到 {top} 之间的数，{places}"
    where = {"sheet": REVIEW_SHEET, "cell": ref, "value": item.id}
    if isinstance(raw, bool) or isinstance(raw, (dt.date, dt.time, dt.timedelta)):
        res.add(Code.REVIEW_SCORE_INVALID, detail=str(raw), expected=why, **where)
        return None
    if isinstance(raw, (int, float)):
        value = scoring.exact(raw)
    else:
        text = str(raw or "").translate(FULL_WIDTH)
        if not text.strip():
            if item.kind == "base":
                res.add(Code.REVIEW_SCORE_INVALID, detail="（空）", expected=why + "；不得分请填 0", **where)
            return None
        if TYPED_NUMBER.fullmatch(text):            # the sheet's totals skip text: the signed total would not be ours
            res.add(Code.REVIEW_SCORE_INVALID, detail=f"“{str(raw)[:40]}”（文字形式的数字，表内合计不计入）",
                    expected=why + "，请重新输入为数字", **where)
        else:
            res.add(Code.REVIEW_SCORE_INVALID, detail=str(raw)[:40], expected=why, **where)
        return None
    if not value.is_finite() or value < 0 or value > scoring.exact(item.points) or scoring.has_more_decimals(value, decimals):
        res.add(Code.REVIEW_SCORE_INVALID, detail=format_points(float(value)), expected=why, **where)
        return None
    return float(value)


def _stale_lines(ret, rubric: Rubric) -> dict[str, tuple[Any, Any, str]]:
    """What a 核定表 whose layout we cannot rebuild (a stale one) holds per rubric line, found by its 编号:
    line id -> (自评分, 核定分, 核定说明) as the file shows them."""
    from .checks import cell_text

    ids = set(rubric.ids)
    out = {}
    for line in ret.values.get(REVIEW_SHEET, [])[FIRST_ROW:]:
        if len(line) > C_REASON and isinstance(line[C_ID], str) and line[C_ID] in ids:
            out[line[C_ID]] = (line[C_SELF], line[C_SCORE], cell_text(line[C_REASON]).strip())
    return out


def _touched_anyway(ret, lines: Mapping[str, tuple[Any, Any, str]]) -> bool:
    """Whether a stale 核定表 was filled in: a 核查人, a 核定说明, or a 核定分 unlike the 自评分 beside it."""
    from .checks import cell_text

    if cell_text(ret.value(REVIEW_SHEET, INFO_ROW, C_NOTE)).strip():
        return True
    return any(reason or own != decided for own, decided, reason in lines.values())


def carried(lay: ReviewLayout, earlier: Mapping[str, tuple[Any, Any, str]]) -> dict[str, Any]:
    """The decisions of an earlier 核定表 that still apply to `lay`'s return (A1 -> value, for
    `review_layout`'s `decided`): the 核定分 and 核定说明 of every line whose 自评分 is unchanged; where
    the township changed its 自评分 the line starts again from the new one. Never 核查人 or 日期: a
    核定表 for a new return is signed anew."""
    out: dict[str, Any] = {}
    for item in lay.rubric.items:
        was = earlier.get(item.id)
        if was is None or not _same_shown(was[0], lay.own.shown(item)):
            continue
        own, decided, reason = was
        if decided not in ("", None):
            out[lay.score_cell(item.id)] = decided
        if reason:
            out[lay.reason_cell(item.id)] = reason
    return out


def _same_shown(a: Any, b: Any) -> bool:
    blank = ("", None)
    if a in blank or b in blank:
        return a in blank and b in blank
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return scoring.exact(a) == scoring.exact(b)


# -- reading 核定/ ------------------------------------------------------------------------------------

def review_files(folder: Path) -> list[Path]:
    """The workbooks in 核定/ (and its subfolders), not the lock files WPS and Excel leave (~$…)."""
    if not folder.is_dir():
        return []
    from .collect import skip_reason

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".xlsx", ".xlsm")
                  and not skip_reason(p.name))


def chosen_reviews(results: Iterable[ReviewResult]) -> dict[str, ReviewResult]:
    """Per township the 核定表 that counts: a valid one before an invalid, a fresh one before a stale,
    then the latest saved."""
    best: dict[str, ReviewResult] = {}
    for r in results:
        if r.township is None:
            continue
        key = (r.done, r.valid, not r.stale, r.mtime or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
        old = best.get(r.township.code)
        if old is None or key > (old.done, old.valid, not old.stale,
                                 old.mtime or dt.datetime.min.replace(tzinfo=dt.timezone.utc)):
            best[r.township.code] = r
    return best
