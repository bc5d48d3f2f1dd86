"""The one place that knows sheet names, columns and cell addresses.

`form_layout` turns a rubric, a township and the settings into a list of `CellSpec`: every cell
of every sheet, with its value or formula, its style key, merges and, for input cells, the
validation. The writer renders that list with XlsxWriter; the checker compares returned files
against the very same list. Nothing else computes an address.
"""

from __future__ import annotations

import copy
import math
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import __version__, scoring
from .rubric import Item, Rubric, format_points
from .settings import Settings, Township

GUIDE_SHEET = "填报说明"
FORM_SHEET = "评分表"
META_SHEET = "_identity"
SHEETS = (GUIDE_SHEET, FORM_SHEET, META_SHEET)
REVIEW_SHEET = "核定表"            # the 核定表 (review.py), sent out and read back like a form
FEEDBACK_SHEET = "反馈单"          # the 反馈单 (feedback_book.py), sent out and read back like a form
FEEDBACK_MARK = "feedback"        # xa_form of a 反馈单 (FORM_MARK is the form's)
# Every sheet the reader reads the values and the structure of: the form's and those of the other
# workbooks the tool sends out and reads back (add a new one here).
READ_SHEETS = (*SHEETS, REVIEW_SHEET, FEEDBACK_SHEET)

# Columns of the form sheet (0-based).
COL_ID, COL_CATEGORY, COL_INDICATOR, COL_CRITERION, COL_GUIDE, COL_POINTS, COL_SCORE, COL_NOTE, COL_EVIDENCE = range(9)
# Hidden helper columns beside each item row: the line's state (0 valid, 1 missing, 2 invalid,
# `scoring.state_formula`) and how many lines up to it are missing or invalid (for 填报进度).
COL_STATE, COL_RUNNING = 9, 10
HEADERS = ("编号", "内容", "一级指标", "二级指标", "评分标准", "分值", "得分", "扣分说明", "佐证材料")
WIDTHS = (7, 10, 14, 40, 34, 9, 9, 24, 20)
TITLE_ROW, INFO_ROW, INFO_ROW2, HEADER_ROW, FIRST_ITEM_ROW = 0, 1, 2, 3, 4
TOTAL_LABELS = ("基础得分", "加分", "减分", "最终得分")
COMPLETION_LABEL = "填报进度"
NOTE_MAX = 1000  # characters allowed in 扣分说明 / 佐证材料 by validation
# Identity keys, stored as custom document properties and in the very hidden sheet.
IDENTITY_KEYS = ("xa_form", "xa_township_code", "xa_township", "xa_year", "xa_rubric_sha256", "xa_form_id",
                 "xa_tool_version")
FORM_MARK = "xlsx-assess"


def a1(row: int, col: int) -> str:
    """0-based (row, col) to A1 notation."""
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{row + 1}"


# Memory bound: keys are 1-3 capital letters (what files give is matched so first) and an entry (key,
# int, the cache's link) is under 200 bytes: 4,096 of them hold at most 0.8 MB.
@functools.lru_cache(maxsize=4096)
def col_index(letters: str) -> int:
    """'A' -> 0, 'G' -> 6, 'AA' -> 26: the inverse of a1's column letters."""
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


# Memory bound: keys are addresses of at most 10 characters (3 letters, 7 digits: what files give is
# matched so first); an entry (key, a tuple of two ints, the cache's link) is under 300 bytes: 1.2 MB.
@functools.lru_cache(maxsize=4096)
def position(ref: str) -> tuple[int, int]:
    """'G12' -> (11, 6), 0-based: the inverse of a1."""
    split = next(k for k, ch in enumerate(ref) if ch.isdigit())
    return int(ref[split:]) - 1, col_index(ref[:split])


@dataclass(frozen=True)
class Validation:
    kind: str                      # "score" | "list" | "length" | "date"
    minimum: float = 0.0
    maximum: float = 0.0
    choices: tuple[str, ...] = ()
    title: str = ""
    prompt: str = ""
    error: str = ""
    decimals: int = 0              # "score": the places a number may have


@dataclass(frozen=True)
class CellSpec:
    sheet: str
    row: int
    col: int
    value: Any = None
    formula: str | None = None
    style: str = "text"
    merge_to: tuple[int, int] | None = None   # (last_row, last_col) of a merged range
    validation: Validation | None = None      # set on input cells only

    @functools.cached_property
    def ref(self) -> str:
        return a1(self.row, self.col)

    @property
    def is_input(self) -> bool:
        return self.validation is not None


@dataclass
class FormLayout:
    """Where everything sits, plus the full list of cells to write and to check."""

    rubric: Rubric
    township: Township
    settings: Settings
    cells: list[CellSpec] = field(default_factory=list)
    item_rows: dict[str, int] = field(default_factory=dict)
    subtotal_rows: dict[str, int] = field(default_factory=dict)
    total_cells: dict[str, str] = field(default_factory=dict)   # label -> value cell (A1)
    completion_cell: str = ""
    township_cell: str = ""
    reporter_cell: str = ""
    phone_cell: str = ""
    date_cell: str = ""
    last_row: int = 0
    running_cell: str = ""               # the last running count: how many lines are missing or invalid
    heights: dict[int, float] = field(default_factory=dict)   # form row -> height (points), from its texts
    breaks: list[int] = field(default_factory=list)           # form rows that start a printed page
    identity: dict[str, str] = field(default_factory=dict)
    personal: tuple[int, ...] = ()       # indices of the cells that name the township
    filled: bool = False                 # some input cells carry entries (else a blank form)
    shared: dict = field(default_factory=dict, repr=False)  # derived once per rubric and settings (row heights)

    def score_cell(self, item_id: str) -> str:
        return a1(self.item_rows[item_id], COL_SCORE)

    def note_cell(self, item_id: str) -> str:
        return a1(self.item_rows[item_id], COL_NOTE)

    def evidence_cell(self, item_id: str) -> str:
        return a1(self.item_rows[item_id], COL_EVIDENCE)

    def subtotal_cell(self, category: str) -> str:
        return a1(self.subtotal_rows[category], COL_SCORE)

    def inputs(self) -> list[CellSpec]:
        return [c for c in self.cells if c.is_input]

    def locked(self) -> list[CellSpec]:
        return [c for c in self.cells if not c.is_input]

    def on(self, sheet: str) -> list[CellSpec]:
        return [c for c in self.cells if c.sheet == sheet]


def form_id(rubric: Rubric, township: Township, year: int) -> str:
    return hashlib.sha256(f"{rubric.fingerprint}|{township.code}|{year}".encode()).hexdigest()[:16]


def identity_of(rubric: Rubric, township: Township, settings: Settings) -> dict[str, str]:
    return {
        "xa_form": FORM_MARK,
        "xa_township_code": township.code,
        "xa_township": township.name,
        "xa_year": str(settings.year),
        "xa_rubric_sha256": rubric.fingerprint,
        "xa_form_id": form_id(rubric, township, settings.year),
        "xa_tool_version": __version__,
    }


_PLACEHOLDER = Township("\0code\0", "\0name\0")


def form_layout(rubric: Rubric, township: Township, settings: Settings,
                entries: Mapping[str, Any] | None = None) -> FormLayout:
    """Lay out the three sheets for one township; `entries` pre-fills input cells (cell -> value).

    The layout of a rubric and settings is made once (`_template`); a township's is that template
    with the few cells that name the township filled in, so checking thousands of files neither
    rebuilds nor keeps thousands of layouts.
    """
    tpl = _template(rubric, settings)
    lay = copy.copy(tpl)
    lay.township = township
    lay.identity = identity_of(rubric, township, settings)
    cells = list(tpl.cells)
    for k in tpl.personal:
        cells[k] = _personal(cells[k], township, lay.identity)
    lay.cells = [_filled(c, entries) for c in cells] if entries else cells
    lay.filled = bool(entries)
    return lay


# Memory bound: keyed by the county's own rubric and settings (never by a returned file); a layout of the
# bundled 70-line rubric and what is derived from it (`shared`) is about 0.5 MB, so 4 hold about 2 MB.
@functools.lru_cache(maxsize=4)
def _template(rubric: Rubric, settings: Settings) -> FormLayout:
    lay = FormLayout(rubric, _PLACEHOLDER, settings)
    lay.identity = identity_of(rubric, _PLACEHOLDER, settings)
    _lay_form(lay)
    _lay_guide(lay)
    _lay_meta(lay)
    lay.personal = tuple(k for k, c in enumerate(lay.cells)
                         if c.sheet == META_SHEET or (isinstance(c.value, str) and "\0" in c.value))
    return lay


def _personal(cell: CellSpec, township: Township, identity: dict[str, str]) -> CellSpec:
    if cell.sheet == META_SHEET and cell.col == 1:
        key = identity_key_at(cell.row)
        value = identity[key] if key else cell.value
    else:
        value = cell.value.replace(_PLACEHOLDER.code, township.code).replace(_PLACEHOLDER.name, township.name)
    return CellSpec(cell.sheet, cell.row, cell.col, value, cell.formula, cell.style, cell.merge_to, cell.validation)


def identity_key_at(row: int) -> str | None:
    """The identity key on a row of the hidden sheet (row 0 is the header)."""
    return IDENTITY_KEYS[row - 1] if 1 <= row <= len(IDENTITY_KEYS) else None


def _filled(cell: CellSpec, entries: Mapping[str, Any]) -> CellSpec:
    if cell.is_input and cell.sheet == FORM_SHEET and cell.ref in entries:
        return CellSpec(cell.sheet, cell.row, cell.col, entries[cell.ref], None, cell.style, cell.merge_to,
                        cell.validation)
    return cell


def score_validation(item: Item, decimals: int, cap: float | None = None) -> Validation:
    """A number from 0 to the line's points with at most `decimals` places (`cap`: what its kind counts at most)."""
    top = format_points(item.points)
    what = {"base": "得分", "bonus": "加分", "deduction": "减分"}[item.kind]
    hint = "不得分请填 0" if item.kind == "base" else "没有发生的填 0 或留空"
    if cap is not None and item.kind != "base":
        hint += f"；{what}合计最多计 {format_points(cap)} 分"
    if item.kind == "base":
        hint += "；有扣分的请在扣分说明中写明原因"
    else:
        hint += f"；有{what}的请在扣分说明中写明依据"
    kind = f"、最多{scoring.PLACES_ZH[decimals]}的数" if decimals else "的整数"
    return Validation("score", 0.0, item.points, title=f"{what}（0–{top}）",
                      prompt=f"请填写 0 到 {top} 之间{kind}，{hint}。",
                      error=f"{what}必须是 0 到 {top} 之间{kind}，请重新填写。",
                      decimals=decimals)


# -- print geometry: A4 landscape, one page wide, page breaks only where no merged cell is cut ----------

PAGE_INCHES = (11.69, 8.27)          # A4 landscape
MARGINS = {"left": 0.4, "right": 0.4, "top": 0.7, "bottom": 0.7}   # header and footer sit inside (0.3)
HEADER_HEIGHTS = {TITLE_ROW: 32.0, INFO_ROW: 24.0, INFO_ROW2: 24.0, HEADER_ROW: 24.0}
SUBTOTAL_HEIGHT = 21.0
GAP_HEIGHT = 10.0                    # the empty rows before the totals and before the signatures
SIGN_HEIGHTS = (32.0, 32.0, 110.0)   # 填报人/审核人, 日期 and the seal's first part, the seal's room
PAGE_SLACK = 0.95                    # plan pages a little shorter than they are: programs round heights
FONT_SIZES = {"small": 9.0, "hint": 9.0, "sign_note": 9.0}


def column_pixels(width: float) -> int:
    """A column's width in pixels at 96 dpi, as Excel (and XlsxWriter) convert a width in characters."""
    return int(width * 7 + 0.5) + 5


def largest_scale(widths: tuple[float, ...] = WIDTHS) -> float:
    """The largest print scale "one page wide" can give the form (1 at most: fitting never enlarges),
    measuring a character as Excel does with its default font, plus a margin for programs that measure
    it narrower. A program that measures it wider prints smaller and holds more rows per page, so the
    breaks planned for this scale never leave a page too full."""
    usable = (PAGE_INCHES[0] - MARGINS["left"] - MARGINS["right"]) * 96
    return min(1.0, usable / sum(column_pixels(w) for w in widths) * 1.05)


def page_points(widths: tuple[float, ...] = WIDTHS) -> float:
    """Rows (points, at the sheet's own size) that one printed page surely holds, for a sheet of columns
    `widths` (the form's by default) fit to one page wide."""
    usable = (PAGE_INCHES[1] - MARGINS["top"] - MARGINS["bottom"]) * 72
    return usable / largest_scale(widths) * PAGE_SLACK


def text_width(text: str) -> int:
    """Width in characters, a CJK character counting two."""
    return len(text) if text.isascii() else sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def text_lines(text: str, width: float, size: float = 10.5) -> int:
    """How many lines `text` of `size` points takes wrapped in a column of `width` characters (counted in
    the 10.5-point font, a CJK character as two): the one measure every workbook's row heights rest on."""
    room = max((width - 1) * 10.5 / size, 1)
    return sum(max(1, math.ceil(text_width(part) / room)) for part in text.split("\n")) if text else 1


def row_height(text: str, width: float, size: float = 10.5) -> float:
    """Row height (points) for wrapped CJK text of `size` points in a column of `width` characters."""
    room = max((width - 1) * 10.5 / size, 1)
    if len(text) * 2 <= room and "\n" not in text:        # fits on one line even if all CJK
        return 21.0
    return max(18.0, round(size * 10 / 7, 1) * text_lines(text, width, size) + 6)


def text_height(cell: "CellSpec") -> float:
    """What a text cell needs, across its merged columns when it is merged."""
    last = cell.merge_to[1] if cell.merge_to else cell.col
    width = sum(WIDTHS[cell.col:last + 1]) if last < len(WIDTHS) else WIDTHS[cell.col]
    return row_height(str(cell.value), width, FONT_SIZES.get(cell.style, 10.5))


def paginate(blocks: list[list[float]], first: float, repeat: float, capacity: float,
             soft: list[set[int]] | None = None) -> list[int]:
    """Where pages start: `blocks` are runs of row heights kept together when they fit on a page (a
    category, the totals with the signatures), in order; `first` is what page one holds above them,
    `repeat` the header row repeated on every later page. A block taller than a page is cut where a row
    no longer fits, or rather at the last of its `soft` offsets (where an 一级指标 starts) on that page.
    Returns the row offsets (counted over all blocks' rows) at which a new page starts."""
    breaks, used, offset = [], first, 0
    for n, block in enumerate(blocks):
        total = sum(block)
        if used + total <= capacity or used <= repeat:
            used += total
        elif total <= capacity - repeat:
            breaks.append(offset)
            used = repeat + total
        else:
            used = _cut(block, offset, used, repeat, capacity, (soft or [])[n] if soft and n < len(soft) else set(), breaks)
        offset += len(block)
    return breaks


def _cut(block: list[float], offset: int, used: float, repeat: float, capacity: float, soft: set[int],
         breaks: list[int]) -> float:
    """Cut a block taller than a page (see `paginate`); returns what its last page holds."""
    start = 0                                   # where the block's current page starts (0: a page begun before)
    if used > repeat and used + sum(block[:min(soft - {0}, default=len(block))]) > capacity:
        breaks.append(offset)                   # not even its first 一级指标 fits: begin it on a new page
        used = repeat
    for k, h in enumerate(block):
        if used + h > capacity and used > repeat:
            at = max((j for j in soft if start < j <= k), default=k)
            breaks.append(offset + at)
            start = at
            used = repeat + sum(block[at:k])
        used += h
    return used


@dataclass
class _Line:
    """An item row before pagination: what it holds and what its text needs."""

    item: Item
    row: int
    height: float


def _lay_form(lay: FormLayout) -> None:
    s, rubric, cells = lay.settings, lay.rubric, lay.cells

    def put(row, col, value=None, style="text", formula=None, merge_to=None, validation=None):
        cells.append(CellSpec(FORM_SHEET, row, col, value, formula, style, merge_to, validation))

    _lay_head(lay, put)
    plan = _plan_rows(lay)
    states: list[str] = []
    previous: str | None = None
    for category, lines, subtotal in plan:
        for item_row in lines:
            item, row = item_row.item, item_row.row
            lay.item_rows[item.id] = row
            _lay_item(lay, put, item, row)
            state = a1(row, COL_STATE)
            put(row, COL_STATE, None, "helper", formula=scoring.state_formula(
                item.kind, a1(row, COL_SCORE), a1(row, COL_POINTS), s.score_decimals))
            put(row, COL_RUNNING, None, "helper", formula=scoring.running_formula(state, previous))
            previous = a1(row, COL_RUNNING)
            states.append(state)
        if subtotal is not None:
            base = [i for i in rubric.items if i.category == category and i.kind == "base"]
            lay.subtotal_rows[category] = subtotal
            put(subtotal, 0, f"{category} 小计", "subtotal_label", merge_to=(subtotal, COL_GUIDE))
            put(subtotal, COL_POINTS, rubric.category_max(category), "subtotal_num")
            score_refs = cell_ranges([a1(lay.item_rows[i.id], COL_SCORE) for i in base])
            state_refs = cell_ranges([a1(lay.item_rows[i.id], COL_STATE) for i in base])
            put(subtotal, COL_SCORE, None, "subtotal_num", formula=scoring.pending_formula(
                state_refs, scoring.total_formula(score_refs, s.score_decimals)))
            put(subtotal, COL_NOTE, None, "subtotal_label", merge_to=(subtotal, COL_EVIDENCE))
    _lay_merged_names(lay, put, plan)
    row = max([FIRST_ITEM_ROW - 1, *lay.item_rows.values(), *lay.subtotal_rows.values()]) + 1
    lay.heights[row] = GAP_HEIGHT
    every = [f"{states[0]}:{states[-1]}"] if states else []     # the rows between hold no state
    _lay_totals(lay, put, row + 1, every, previous)


def _lay_head(lay: FormLayout, put) -> None:
    s = lay.settings
    put(TITLE_ROW, 0, f"{s.title}（{s.year}年度）", "title", merge_to=(TITLE_ROW, COL_EVIDENCE))
    # Header block: who fills in, and when.
    put(INFO_ROW, 0, "填报单位", "label", merge_to=(INFO_ROW, 1))
    put(INFO_ROW, 2, lay.township.name, "info", merge_to=(INFO_ROW, 3))
    lay.township_cell = a1(INFO_ROW, 2)
    put(INFO_ROW, COL_GUIDE, "填报人", "label")
    put(INFO_ROW, COL_POINTS, None, "input_text", merge_to=(INFO_ROW, COL_SCORE), validation=Validation(
        "length", 1, 20, title="填报人", prompt="请填写填报人姓名。", error="姓名请控制在 20 个字以内。"))
    lay.reporter_cell = a1(INFO_ROW, COL_POINTS)
    put(INFO_ROW, COL_NOTE, "联系电话", "label")
    put(INFO_ROW, COL_EVIDENCE, None, "input_text", validation=Validation(
        "length", 7, 20, title="联系电话", prompt="请填写手机或座机号码，如 0393-1234567。",
        error="电话号码应为 7 到 20 位。"))
    lay.phone_cell = a1(INFO_ROW, COL_EVIDENCE)
    example = f"{s.year + 1}-01-10"
    put(INFO_ROW2, 0, "填报日期", "label", merge_to=(INFO_ROW2, 1))
    put(INFO_ROW2, 2, None, "input_date", merge_to=(INFO_ROW2, 3), validation=Validation(
        "date", title="填报日期", prompt=f"请填写日期，如 {example}。", error=f"请填写有效日期，如 {example}。"))
    lay.date_cell = a1(INFO_ROW2, 2)
    places = f"最多填{scoring.PLACES_ZH[s.score_decimals]}" if s.score_decimals else "填整数"
    put(INFO_ROW2, COL_GUIDE, f"只填写浅黄色单元格，得分{places}，合计自动计算；有扣分的请写明扣分说明。"
        f"报送截止：{s.deadline}", "hint", merge_to=(INFO_ROW2, COL_EVIDENCE))
    for col, head in enumerate(HEADERS):
        put(HEADER_ROW, col, head, "head")
    lay.heights.update(HEADER_HEIGHTS)


def _lay_item(lay: FormLayout, put, item: Item, row: int) -> None:
    s = lay.settings
    put(row, COL_ID, item.id, "text_center")
    put(row, COL_CRITERION, item.criterion, "text")
    put(row, COL_GUIDE, _guide_text(item), "small")
    if item.kind == "zero":
        put(row, COL_POINTS, "是/否", "text_center")
        put(row, COL_SCORE, None, "input_choice", validation=Validation(
            "list", choices=(scoring.YES, scoring.NO), title="直接归零项",
            prompt="请选择“是”或“否”，不要留空。选“是”则最终得分记 0 分。", error="只能选择“是”或“否”。"))
    else:
        cap = {"bonus": s.bonus_cap, "deduction": s.deduction_cap}.get(item.kind)
        put(row, COL_POINTS, item.points, "points")
        put(row, COL_SCORE, None, "input_score", validation=score_validation(item, s.score_decimals, cap))
    put(row, COL_NOTE, None, "input_text", validation=_text_validation("扣分说明"))
    put(row, COL_EVIDENCE, None, "input_text", validation=_text_validation("佐证材料"))


def _guide_text(item: Item) -> str:
    return "；".join(p for p in (item.guide, item.note) if p)


def _line_height(item: Item) -> float:
    """What an item row's own texts need (编号, 二级指标, 评分标准), at least a one-line row."""
    texts = ((item.id, COL_ID, 10.5), (item.criterion, COL_CRITERION, 10.5), (_guide_text(item), COL_GUIDE, 9.0))
    return max(row_height(t, WIDTHS[c], size) for t, c, size in texts)


def _plan_rows(lay: FormLayout) -> list[tuple[str, list[_Line], int | None]]:
    """Rows of every category (item rows, its 小计 row or None), with heights that fit the texts of the
    merged 一级指标 and 内容 cells, and the page breaks between categories (`lay.breaks`)."""
    rubric = lay.rubric
    plan, row = [], FIRST_ITEM_ROW
    for category in rubric.categories:
        items = [i for i in rubric.items if i.category == category]
        lines = [_Line(i, row + k, _line_height(i)) for k, i in enumerate(items)]
        row += len(items)
        subtotal = row if any(i.kind == "base" for i in items) else None
        row += subtotal is not None
        for group in _runs(lines, lambda ln: ln.item.indicator):
            _fit(group, row_height(group[0].item.indicator, WIDTHS[COL_INDICATOR]))
        plan.append((category, lines, subtotal))
    for _ in range(2):      # a category re-split at a break may need its rows a little taller: plan again
        heights = [[ln.height for ln in lines] + ([SUBTOTAL_HEIGHT] if sub is not None else [])
                   for _, lines, sub in plan]
        capacity = page_points()
        first = sum(HEADER_HEIGHTS.values())
        tail = [GAP_HEIGHT, *_totals_heights(lay), GAP_HEIGHT, *SIGN_HEIGHTS]
        soft = [{k for k, ln in enumerate(lines) if k and ln.item.indicator != lines[k - 1].item.indicator}
                for _, lines, _ in plan]
        offsets = paginate(heights + [tail], first, HEADER_HEIGHTS[HEADER_ROW], capacity, soft)
        lay.breaks = [FIRST_ITEM_ROW + k for k in offsets]
        for category, lines, _ in plan:
            for piece in _pieces(lines, lay.breaks):
                _fit(piece, row_height(category, WIDTHS[COL_CATEGORY]))
    return plan


def _runs(lines: list[_Line], key) -> list[list[_Line]]:
    out: list[list[_Line]] = []
    for ln in lines:
        if out and key(out[-1][-1]) == key(ln):
            out[-1].append(ln)
        else:
            out.append([ln])
    return out


def _pieces(lines: list[_Line], breaks: list[int]) -> list[list[_Line]]:
    """`lines` cut where a page starts."""
    out: list[list[_Line]] = []
    for ln in lines:
        if out and ln.row not in breaks:
            out[-1].append(ln)
        else:
            out.append([ln])
    return out


def _fit(lines: list[_Line], need: float) -> None:
    """Make rows tall enough together for a text merged across them (the last row takes what is missing)."""
    short = need - sum(ln.height for ln in lines)
    if short > 0:
        lines[-1].height = round(lines[-1].height + short, 1)


def _lay_merged_names(lay: FormLayout, put, plan) -> None:
    """内容 and 一级指标 cells, merged over their rows within each page (re-split where a page starts)."""
    for category, lines, _ in plan:
        for piece in _pieces(lines, lay.breaks):
            _merged(put, piece, COL_CATEGORY, category)
            for group in _runs(piece, lambda ln: ln.item.indicator):
                _merged(put, group, COL_INDICATOR, group[0].item.indicator)
        for ln in lines:
            lay.heights[ln.row] = ln.height


def _merged(put, lines: list[_Line], col: int, text: str) -> None:
    first, last = lines[0].row, lines[-1].row
    put(first, col, text, "text_center", merge_to=(last, col) if last > first else None)


def _lay_totals(lay: FormLayout, put, row: int, states: list[str], running: str | None) -> None:
    s, rubric = lay.settings, lay.rubric
    totals_top = row
    base_cells = [lay.subtotal_cell(c) for c in rubric.scored_categories]
    bonus_cells = cell_ranges([lay.score_cell(i.id) for i in rubric.bonus])
    ded_cells = cell_ranges([lay.score_cell(i.id) for i in rubric.deduction])
    bonus_states = cell_ranges([a1(lay.item_rows[i.id], COL_STATE) for i in rubric.bonus])
    ded_states = cell_ranges([a1(lay.item_rows[i.id], COL_STATE) for i in rubric.deduction])
    for label in TOTAL_LABELS:
        lay.total_cells[label] = a1(row + TOTAL_LABELS.index(label), COL_SCORE)
    zero = lay.score_cell(rubric.zero.id) if rubric.zero else None
    base_total = scoring.total_formula(base_cells, s.score_decimals)
    if base_cells:
        base_total = f'IF(COUNT({",".join(base_cells)})<{len(base_cells)},"{scoring.PENDING}",{base_total})'
    formulas = {
        "基础得分": base_total,
        "加分": scoring.pending_formula(bonus_states, scoring.total_formula(bonus_cells, s.score_decimals)),
        "减分": scoring.pending_formula(ded_states, scoring.total_formula(ded_cells, s.score_decimals)),
        "最终得分": scoring.final_formula(lay.total_cells["基础得分"], lay.total_cells["加分"],
                                          lay.total_cells["减分"], zero, s.bonus_cap, s.deduction_cap,
                                          s.score_decimals, states),
    }
    explain = _explanations(lay)
    put(totals_top, 0, "得分汇总", "total_label", merge_to=(totals_top + len(TOTAL_LABELS), COL_GUIDE))
    for label in TOTAL_LABELS:
        put(row, COL_POINTS, label, "total_label")
        put(row, COL_SCORE, None, "final_value" if label == "最终得分" else "total_value", formula=formulas[label])
        put(row, COL_NOTE, explain[label], "small", merge_to=(row, COL_EVIDENCE))
        row += 1
    put(row, COL_POINTS, COMPLETION_LABEL, "total_label")
    first, last = FIRST_ITEM_ROW, max(lay.item_rows.values()) if lay.item_rows else FIRST_ITEM_ROW
    ids, counts = f"{a1(first, COL_ID)}:{a1(last, COL_ID)}", f"{a1(first, COL_RUNNING)}:{a1(last, COL_RUNNING)}"
    put(row, COL_SCORE, None, "completion", formula=scoring.completion_formula(
        ids, counts, running or "0", scoring.required_lines(rubric)), merge_to=(row, COL_EVIDENCE))
    lay.completion_cell = a1(row, COL_SCORE)
    lay.running_cell = running or ""
    for r, height in enumerate(_totals_heights(lay), start=totals_top):
        lay.heights[r] = height
    lay.heights[row + 1] = GAP_HEIGHT
    _lay_signatures(lay, put, row + 2)


def _explanations(lay: FormLayout) -> dict[str, str]:
    s, rubric = lay.settings, lay.rubric
    return {
        "基础得分": f"各基础项得分之和，满分 {format_points(sum(i.points for i in rubric.base))} 分",
        "加分": f"特别加分项合计，计入总分最多 {format_points(s.bonus_cap)} 分",
        "减分": f"特别减分项合计，计入总分最多 {format_points(s.deduction_cap)} 分",
        "最终得分": "基础得分＋加分−减分，最低 0 分" + ("；直接归零项为“是”时记 0 分" if rubric.zero else "")
                    + f"；有得分填写有误时显示“{scoring.PENDING}”",
    }


def _totals_heights(lay: FormLayout) -> list[float]:
    """Heights of the four total rows (their explanations wrap in 扣分说明:佐证材料) and of 填报进度."""
    width = WIDTHS[COL_NOTE] + WIDTHS[COL_EVIDENCE]
    return [row_height(text, width, FONT_SIZES["small"]) for text in _explanations(lay).values()] + [21.0]


def _lay_signatures(lay: FormLayout, put, row: int) -> None:
    """填报人, 审核人, 日期 and room for the seal, below the totals (kept on their page)."""
    put(row, 0, "填报人（签字）", "label", merge_to=(row, 1))
    put(row, 2, None, "sign", merge_to=(row, COL_CRITERION))
    put(row, COL_GUIDE, "审核人（签字）", "label")
    put(row, COL_POINTS, None, "sign", merge_to=(row, COL_EVIDENCE))
    put(row + 1, 0, "日　　期", "label", merge_to=(row + 1, 1))
    put(row + 1, 2, "　　　　年　　月　　日", "sign", merge_to=(row + 1, COL_CRITERION))
    put(row + 1, COL_GUIDE, "单位（盖章）", "label", merge_to=(row + 2, COL_GUIDE))
    put(row + 1, COL_POINTS, None, "sign", merge_to=(row + 2, COL_EVIDENCE))
    put(row + 2, 0, "打印后由填报人、审核人签字，加盖乡（镇）政府公章，连同电子表格一并报送。", "sign_note",
        merge_to=(row + 2, COL_CRITERION))
    for k, h in enumerate(SIGN_HEIGHTS):
        lay.heights[row + k] = h
    lay.last_row = row + len(SIGN_HEIGHTS) - 1


def _text_validation(what: str) -> Validation:
    return Validation("length", 0, NOTE_MAX, title=what, prompt=f"{what}，{NOTE_MAX} 字以内。",
                      error=f"{what}请控制在 {NOTE_MAX} 字以内。")


def cell_ranges(cells: list[str]) -> list[str]:
    """Collapse consecutive cells of one column into ranges: G5,G6,G7,G9 -> G5:G7,G9."""
    import re

    out: list[str] = []
    run: list[tuple[str, int]] = []
    for ref in cells:
        col, num = re.match(r"([A-Z]+)(\d+)", ref).groups()
        if run and run[-1][0] == col and run[-1][1] + 1 == int(num):
            run.append((col, int(num)))
            continue
        _flush(run, out)
        run = [(col, int(num))]
    _flush(run, out)
    return out


def _flush(run: list[tuple[str, int]], out: list[str]) -> None:
    if not run:
        return
    (col, first), (_, last) = run[0], run[-1]
    out.append(f"{col}{first}" if first == last else f"{col}{first}:{col}{last}")


def _lay_guide(lay: FormLayout) -> None:
    s, rubric, cells = lay.settings, lay.rubric, lay.cells

    def put(row, col, value, style="text", merge_to=None):
        cells.append(CellSpec(GUIDE_SHEET, row, col, value, None, style, merge_to))

    put(0, 0, f"{s.title}（{s.year}年度）填报说明", "title", merge_to=(0, 1))
    rows = [
        ("填报单位", lay.township.label),
        ("考核年度", f"{s.year}年度"),
        ("下发单位", s.issuing_office),
        ("报送截止", s.deadline),
        ("联系人", s.contact_person),
        ("联系电话", s.contact_phone),
        ("填写方法", s.instructions),
        ("计分方法", _scoring_rules(rubric, s)),
        ("等次划分", "；".join(_grade_text(s))),
    ]
    for r, (label, text) in enumerate(rows, start=2):
        put(r, 0, label, "label")
        put(r, 1, text, "text")


def _grade_text(s: Settings) -> list[str]:
    out = []
    for k, g in enumerate(s.grades):
        if k == len(s.grades) - 1:
            out.append(f"{g.name}：{format_points(s.grades[k - 1].min)} 分以下" if k else g.name)
        else:
            out.append(f"{g.name}：{format_points(g.min)} 分及以上")
    return out


def _scoring_rules(rubric: Rubric, s: Settings) -> str:
    places = scoring.PLACES_ZH[s.score_decimals]
    lines = [
        f"1. 基础项共 {len(rubric.base)} 项，满分 {format_points(sum(i.points for i in rubric.base))} 分，逐项填写得分"
        f"（{'最多' + places if s.score_decimals else '填写整数'}）。",
        f"2. 特别加分项合计计入总分，最多 {format_points(s.bonus_cap)} 分；特别减分项合计从总分中扣除，最多 {format_points(s.deduction_cap)} 分。",
        f"3. 最终得分＝基础得分＋加分−减分，最低 0 分；各类小计、基础得分、加分、减分和最终得分均四舍五入保留{places}。",
    ]
    if rubric.zero:
        lines.append(f"4. 直接归零项（{rubric.zero.criterion}）为“是”的，最终得分记 0 分，等次为“{s.lowest_grade}”。")
    return "\n".join(lines)


def _lay_meta(lay: FormLayout) -> None:
    lay.cells.append(CellSpec(META_SHEET, 0, 0, "key", style="meta"))
    lay.cells.append(CellSpec(META_SHEET, 0, 1, "value", style="meta"))
    for r, key in enumerate(IDENTITY_KEYS, start=1):
        lay.cells.append(CellSpec(META_SHEET, r, 0, key, style="meta"))
        lay.cells.append(CellSpec(META_SHEET, r, 1, lay.identity[key], style="meta"))


def computed_cells(lay: FormLayout, scores: scoring.Scores) -> dict[str, Any]:
    """What every formula cell of the form sheet shows for these scores (its cached value)."""
    pending = scores.pending
    out: dict[str, Any] = {lay.subtotal_cell(c): scoring.PENDING if c in pending else v
                           for c, v in scores.subtotals.items()}
    out.update({lay.total_cells[label]: scoring.PENDING if label in pending else v
                for label, v in scores.totals.items()})
    out[lay.completion_cell] = scores.completion
    count = 0
    for item in lay.rubric.items:
        row, state = lay.item_rows[item.id], scores.state(item.id)
        count += state > 0
        out[a1(row, COL_STATE)], out[a1(row, COL_RUNNING)] = state, count
    return out


def entry_cells(lay: FormLayout, values: Mapping[str, float | None] | None = None, zeroed: bool | None = None,
                notes: Mapping[str, str] | None = None, evidence: Mapping[str, str] | None = None,
                reporter: str | None = None, phone: str | None = None) -> dict[str, Any]:
    """Input cells (A1 -> value) for a township's entries: how tests and samples fill a form."""
    out: dict[str, Any] = {}
    for item_id, v in (values or {}).items():
        if v is not None:
            out[lay.score_cell(item_id)] = v
    if zeroed is not None and lay.rubric.zero:
        out[lay.score_cell(lay.rubric.zero.id)] = scoring.YES if zeroed else scoring.NO
    for item_id, text in (notes or {}).items():
        out[lay.note_cell(item_id)] = text
    for item_id, text in (evidence or {}).items():
        out[lay.evidence_cell(item_id)] = text
    if reporter is not None:
        out[lay.reporter_cell] = reporter
    if phone is not None:
        out[lay.phone_cell] = phone
    return out
