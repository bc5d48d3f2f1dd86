"""Render a `FormLayout` into a locked, validated, self-calculating workbook with XlsxWriter."""

from __future__ import annotations

import datetime as dt
import errno
import functools
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Mapping

from . import scoring
from .issues import AssessError, Code, Report, issue
from .layout import (COL_EVIDENCE, COL_POINTS, COL_RUNNING, COL_SCORE, COL_STATE, FORM_SHEET,
                     GUIDE_SHEET, HEADER_ROW, MARGINS, META_SHEET, WIDTHS, CellSpec, FormLayout, Validation, a1,
                     cell_ranges, computed_cells, form_layout, row_height)
from .rubric import Rubric
from .settings import Settings, Township
from .staging import Staged, file_mode, stage

FONT = "宋体"
INPUT_FILL = "#FFF7CC"
BORDER = {"border": 1, "border_color": "#808080"}
STYLES: dict[str, dict] = {
    "title": {"bold": True, "font_size": 16, "align": "center", "valign": "vcenter"},
    "label": {"bold": True, "align": "center", "valign": "vcenter", "bg_color": "#F2F2F2", **BORDER},
    "info": {"align": "center", "valign": "vcenter", **BORDER},
    "hint": {"font_size": 9, "font_color": "#7F6000", "valign": "vcenter", "text_wrap": True, **BORDER},
    "head": {"bold": True, "align": "center", "valign": "vcenter", "bg_color": "#D9E1F2", "text_wrap": True, **BORDER},
    "text": {"valign": "vcenter", "text_wrap": True, **BORDER},
    "text_center": {"align": "center", "valign": "vcenter", "text_wrap": True, **BORDER},
    "small": {"font_size": 9, "valign": "vcenter", "text_wrap": True, **BORDER},
    "points": {"align": "center", "valign": "vcenter", "num_format": "General", **BORDER},
    "input_score": {"align": "center", "valign": "vcenter", "bg_color": INPUT_FILL, "locked": False, **BORDER},
    "input_choice": {"align": "center", "valign": "vcenter", "bg_color": INPUT_FILL, "locked": False, **BORDER},
    "input_text": {"valign": "vcenter", "text_wrap": True, "bg_color": INPUT_FILL, "locked": False, **BORDER},
    "input_date": {"align": "center", "valign": "vcenter", "bg_color": INPUT_FILL, "locked": False,
                   "num_format": "yyyy-mm-dd", **BORDER},
    "subtotal_label": {"bold": True, "align": "right", "valign": "vcenter", "bg_color": "#F2F2F2", **BORDER},
    "subtotal_num": {"bold": True, "align": "center", "valign": "vcenter", "bg_color": "#F2F2F2",
                     "num_format": "0.00", **BORDER},
    "total_label": {"bold": True, "align": "center", "valign": "vcenter", "bg_color": "#D9E1F2", **BORDER},
    "total_value": {"bold": True, "align": "center", "valign": "vcenter", "num_format": "0.00", **BORDER},
    "final_value": {"bold": True, "font_size": 12, "align": "center", "valign": "vcenter",
                    "num_format": "0.00", **BORDER},
    "completion": {"bold": True, "valign": "vcenter", **BORDER},
    "sign": {"align": "center", "valign": "vcenter", **BORDER},
    "sign_note": {"font_size": 9, "valign": "top", "text_wrap": True, **BORDER},
    "helper": {"num_format": "0"},
    "meta": {},
}
FORMATS = {k: {"font_name": FONT, "font_size": 10.5, **v} for k, v in STYLES.items()}
SCORE_STYLES = ("subtotal_num", "total_value", "final_value")    # shown with score_decimals places
PREPARED_FORMULAS = 4096            # distinct formulas remembered per process (a form has about 20). Memory
                                    # bound: the formulas come from the layout (the county's rubric), each
                                    # under 1 KB with its key: at most 4 MB
PROTECT_OPTIONS = {"format_columns": True, "format_rows": True, "select_locked_cells": True,
                   "select_unlocked_cells": True}
WORKBOOK_OPTIONS = {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False,
                    "in_memory": True}


def file_name(township: Township, year: int) -> str:
    """`2026_410927100_城关镇.xlsx`; characters Windows forbids in names become '_'."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", f"{year}_{township.code}_{township.name}") + ".xlsx"


def _hf(text: str) -> str:
    """Text for a print header or footer, where '&' starts a control code."""
    return text.replace("&", "&&")


def build_workbook(rubric: Rubric, township: Township, settings: Settings, path: str | Path,
                   password: str | None = None, entries: Mapping[str, Any] | None = None,
                   mover: Mover | None = None) -> Path:
    """Write one township's workbook atomically; `entries` (A1 -> value) pre-fills input cells.

    With a `mover` the finished file takes its name on the mover's thread (see `Mover`).
    """
    lay = form_layout(rubric, township, settings, entries)
    path = Path(path)
    with atomic_path(path, mover) as staged:
        _write(lay, staged.file, password)
    return path


@contextmanager
def atomic_path(path: Path, mover: Mover | None = None) -> Iterator[Staged]:
    """Yield a file staged beside `path` (see `staging`); it takes the name `path` only if the block succeeds.

    A file system error becomes `AssessError` (R302) naming `path`; no temporary file is left."""
    try:
        staged = stage(path.parent)
    except OSError as exc:
        raise unwritable(path, exc) from None
    try:
        yield staged
    except BaseException as exc:
        staged.discard()
        if isinstance(exc, OSError):
            raise unwritable(path, exc) from None
        raise
    if mover is None:
        _move_into_place(staged, path)
    else:
        mover.move(staged, path)


def _move_into_place(staged: Staged, path: Path) -> None:
    try:
        staged.move_into_place(path)
    except OSError as exc:
        raise unwritable(path, exc, replacing=True) from None


def check_writable(path: str | Path, folder: bool = False) -> None:
    """Refuse, before any work, an output that cannot be written (`folder`: `path` is a folder to write
    into): raise `AssessError` (R302) naming it and saying what to do. What only the write itself can
    tell (a file held open, a full disk) is caught there, by `atomic_path`."""
    path = Path(path)
    if not folder and path.is_dir():
        raise _refusal(path, "这是一个文件夹，不是文件：请移走或改名这个文件夹，或（用 --out 时）写出文件名，例如 排名.xlsx")
    if folder and path.exists() and not path.is_dir():
        raise _refusal(path, "这是一个文件，不是文件夹，请在 --out 中写一个文件夹")
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise _refusal(path, f"“{parent}”是一个文件，不是文件夹，请换一个位置")
        if not parent.exists():
            break
        if parent == path.parent and not os.access(parent, os.W_OK):
            raise _refusal(path, f"文件夹“{parent}”不允许写入，请换一个文件夹")


def unwritable(path: Path, exc: OSError, replacing: bool = False) -> AssessError:
    """The `AssessError` (R302) for an OSError met while writing `path`: what happened and what to do."""
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        why = "这是一个文件夹，不是文件：请移走或改名这个文件夹，或（用 --out 时）写出文件名，例如 排名.xlsx"
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        why = "路径中有一级是文件而不是文件夹，请换一个位置"
    elif isinstance(exc, PermissionError) and replacing and path.exists():
        why = f"{path.name} 正被其他程序打开（WPS、Excel 等）或为只读，请关闭后重试"
    elif isinstance(exc, PermissionError):
        why = f"文件夹“{path.parent}”不允许写入，请换一个文件夹"
    elif exc.errno == errno.ENOSPC:
        why = "磁盘已满，请清理后重试"
    elif exc.errno == errno.ENAMETOOLONG:
        why = "路径太长，请换一个较短的文件名或文件夹"
    else:
        why = f"{exc.strerror or exc}，请换一个位置后重试"
    return _refusal(path, why)


def _refusal(path: Path, why: str) -> AssessError:
    return AssessError(Report([issue(Code.OUTPUT_UNWRITABLE, file=str(path), detail=why)]))


class Mover:
    """Moves finished files into place on one background thread, in order, each after its own fsync.

    Waiting for the disk is I/O, not work: while it flushes one workbook, the next is being written.
    At most `depth` files wait; leaving the `with` block waits for all of them and raises the first
    error (a file that failed to move is removed, never left half-named).
    """

    def __init__(self, depth: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        file_mode()                          # read here, before the thread that uses it starts

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="xa-move")
        self._waiting: list = []
        self._depth = depth

    def move(self, staged: Staged, path: Path) -> None:
        self._waiting.append(self._pool.submit(_move_into_place, staged, path))
        while len(self._waiting) > self._depth:
            self._waiting.pop(0).result()

    def __enter__(self) -> Mover:
        return self

    def __exit__(self, *exc) -> None:
        try:
            for waiting in self._waiting:
                waiting.exception()          # wait for every file, whatever happened to the others
            if exc[0] is None:
                for waiting in self._waiting:
                    waiting.result()
        finally:
            self._waiting.clear()
            self._pool.shutdown()


def _write(lay: FormLayout, target: BinaryIO, password: str | None) -> None:
    import xlsxwriter

    s = lay.settings
    wb = xlsxwriter.Workbook(target, WORKBOOK_OPTIONS)
    created = dt.datetime(s.year, 1, 1, tzinfo=dt.timezone.utc)
    wb.set_properties({"title": f"{s.title}（{s.year}年度）— {lay.township.name}", "subject": s.title,
                       "author": s.issuing_office, "company": s.issuing_office, "created": created,
                       "comments": "由 xlsx-assess 生成，请只填写浅黄色单元格。"})
    for key, value in lay.identity.items():
        wb.set_custom_property(key, value)
    formats = {k: wb.add_format(v) for k, v in _formats(s.score_decimals).items()}
    sheet_class = _sheet_class()
    guide, form, meta = (wb.add_worksheet(name, sheet_class) for name in (GUIDE_SHEET, FORM_SHEET, META_SHEET))
    sheets = {GUIDE_SHEET: guide, FORM_SHEET: form, META_SHEET: meta}
    cached = _cached_values(lay)

    for cell in lay.cells:
        write_cell(sheets[cell.sheet], cell, formats[cell.style], cached)
    write_validations(lay, sheets)

    _setup_form(lay, form, formats, wb)
    guide.set_column(0, 0, 12)
    guide.set_column(1, 1, 100)
    guide.set_row(0, 30)
    for cell in lay.on(GUIDE_SHEET):
        if cell.col == 1 and cell.row > 0:
            guide.set_row(cell.row, row_height(str(cell.value), 100))
    guide.set_paper(9)
    guide.fit_to_pages(1, 0)
    guide.hide_gridlines(2)
    meta.set_column(0, 1, 30)
    meta.very_hidden()
    for ws in (guide, form, meta):
        ws.protect(password or "", PROTECT_OPTIONS)
    form.activate()
    wb.close()


@functools.cache
def _formats(decimals: int) -> dict[str, dict]:
    """The cell formats, the totals showing `decimals` places (as they are rounded)."""
    shown = scoring.number_format(decimals)
    return {k: {**v, "num_format": shown} if k in SCORE_STYLES else v for k, v in FORMATS.items()}


@functools.cache
def _sheet_class():
    """An XlsxWriter worksheet that prepares each distinct formula once per process.

    XlsxWriter rewrites every formula, and every conditional-format formula, through some 180 regular
    expressions (its "future functions"), a pure function of the formula text. Every township's form
    has the same formulas, so the rewrite is remembered instead of repeated for each workbook.
    """
    from xlsxwriter.worksheet import Worksheet

    prepared: dict[tuple, str] = {}

    class FormSheet(Worksheet):
        remembered = prepared                # what a test looks at: the override is still called

        def _prepare_formula(self, formula, *args, **kwargs):     # XlsxWriter's own, private: if it is
            key = (formula, bool(self.use_future_functions), args, tuple(sorted(kwargs.items())))  # renamed,
            done = prepared.get(key)                              # this is simply never called
            if done is None:
                done = super()._prepare_formula(formula, *args, **kwargs)
                if len(prepared) < PREPARED_FORMULAS:
                    prepared[key] = done
            return done

    return FormSheet


def _cached_values(lay: FormLayout) -> dict[str, Any]:
    """The formula cells' values as saved in the file; a blank form's are the same for every township."""
    if lay.filled:
        return computed_cells(lay, _scores_of(lay))
    if "blank_values" not in lay.shared:
        lay.shared["blank_values"] = computed_cells(lay, _scores_of(lay))
    return lay.shared["blank_values"]


def _scores_of(lay: FormLayout) -> scoring.Scores:
    """Score the pre-filled entries (none for a blank form), as the formulas will."""
    by_ref = {c.ref: c.value for c in lay.inputs() if c.sheet == FORM_SHEET}
    values, invalid = {}, set()
    d = lay.settings.score_decimals
    for item in lay.rubric.items:
        v = by_ref.get(lay.score_cell(item.id))
        if scoring.line_state(item.kind, v, item.points, d) == 2:
            invalid.add(item.id)
        if item.kind != "zero":
            values[item.id] = float(v) if isinstance(v, (int, float)) and item.id not in invalid else None
    zero = lay.rubric.zero
    answer = by_ref.get(lay.score_cell(zero.id)) if zero is not None else None
    zeroed = None if zero is not None and answer in (None, "") else answer == scoring.YES
    return scoring.score(lay.rubric, values, zeroed, lay.settings, frozenset(invalid))


def write_cell(ws, cell: CellSpec, fmt, cached: Mapping[str, Any]) -> None:
    r, c = cell.row, cell.col
    if cell.merge_to:
        ws.merge_range(r, c, cell.merge_to[0], cell.merge_to[1], "", fmt)
    if cell.formula is not None:
        ws.write_formula(r, c, "=" + cell.formula, fmt, cached.get(cell.ref, 0))
    elif isinstance(cell.value, str):
        if ws.write_string(r, c, cell.value, fmt) == -2:
            raise ValueError(f"text too long for {cell.sheet}!{cell.ref}")
    elif isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
        ws.write_number(r, c, cell.value, fmt)
    elif isinstance(cell.value, (dt.date, dt.datetime)):
        ws.write_datetime(r, c, cell.value, fmt)
    elif not cell.merge_to:
        ws.write_blank(r, c, None, fmt)


def write_validations(lay: FormLayout, sheets: dict) -> None:
    """The data validations of `lay`'s input cells (any layout with `inputs()` and `shared`: forms, 核定表)."""
    for sheet, row, col, options in _validation_rules(lay):
        sheets[sheet].data_validation(row, col, row, col, options)     # XlsxWriter copies the options


def _validation_rules(lay: FormLayout) -> list[tuple[str, int, int, dict]]:
    """One validation rule per distinct rule and sheet, over all the cells it applies to.

    The input cells and their rules come from the rubric, so every township's form has the same.
    """
    if "validations" not in lay.shared:
        groups: dict[tuple, list[CellSpec]] = {}
        for cell in lay.inputs():
            groups.setdefault((cell.sheet, cell.validation), []).append(cell)
        rules = []
        for (sheet, v), cells in groups.items():
            options = validation_options(v, cells[0].ref)
            if len(cells) > 1:
                options["multi_range"] = " ".join(cell_ranges([c.ref for c in cells]))
            rules.append((sheet, cells[0].row, cells[0].col, options))
        lay.shared["validations"] = rules
    return lay.shared["validations"]


def validation_options(v: Validation, top_left: str) -> dict:
    """XlsxWriter's options for a rule; a formula in it is relative to `top_left`, its first cell."""
    opts: dict[str, Any] = {"input_title": v.title[:32], "input_message": v.prompt[:255],
                            "error_title": "填写有误"[:32], "error_message": v.error[:255], "error_type": "stop"}
    if v.kind == "score":
        opts.update(validate="custom", value="=" + scoring.score_rule_formula(top_left, v.maximum, v.decimals))
    elif v.kind == "list":
        opts.update(validate="list", source=list(v.choices))
    elif v.kind == "length":
        opts.update(validate="length", criteria="between", minimum=int(v.minimum), maximum=int(v.maximum))
    elif v.kind == "date":
        opts.update(validate="date", criteria="between", minimum=dt.date(int(v.minimum or 2000), 1, 1),
                    maximum=dt.date(int(v.maximum or 2100), 12, 31))          # years; none given: any date
    return opts


def _setup_form(lay: FormLayout, ws, formats, wb) -> None:
    for col, width in enumerate(WIDTHS):
        ws.set_column(col, col, width)
    ws.set_column(COL_STATE, COL_RUNNING, 6, None, {"hidden": True})     # helper columns, never printed
    for row, height in lay.heights.items():
        ws.set_row(row, height)
    ws.freeze_panes(HEADER_ROW + 1, 0)
    ws.repeat_rows(HEADER_ROW)
    print_setup(ws, lay.breaks, lay.last_row, COL_EVIDENCE, f"{lay.settings.county}政务公开办", lay.township.name)
    _attention_rules(lay, ws, wb)


def print_setup(ws, breaks: list[int], last_row: int, last_col: int, left: str, right: str) -> None:
    """How a form (or a 核定表) prints: A4 landscape, one page wide, page breaks at `breaks`, `left` and
    `right` in the page header, page numbers in the footer, rows 0..`last_row` and columns 0..`last_col`."""
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)                    # one page wide, as many tall as the breaks make
    ws.set_h_pagebreaks(breaks)
    ws.center_horizontally()
    ws.set_margins(**MARGINS)
    ws.set_header(f"&L&9{_hf(left)}&R&9{_hf(right)}")
    ws.set_footer("&C&9第 &P 页，共 &N 页")
    ws.print_area(0, 0, last_row, last_col)
    ws.hide_gridlines(2)


def _attention_rules(lay: FormLayout, ws, wb) -> None:
    """Colour only where something needs attention: a score the form refuses, a claim without its
    扣分说明, a total that is not final, 最终得分 while lines are missing or invalid, and 填报进度."""
    red = wb.add_format({"bg_color": "#F4B6B6", "font_color": "#9C0006"})
    amber = wb.add_format({"bg_color": "#FFEB9C", "font_color": "#9C5700"})
    good = wb.add_format({"bg_color": "#C6EFCE", "font_color": "#006100"})
    orange = wb.add_format({"bg_color": "#F8CBAD"})           # plainly unlike the light yellow of an input
    bad_score = _bad_score_rule(lay)
    if bad_score:
        top, rule = bad_score
        ws.conditional_format(top, {**rule, "format": red})
    for top, rule in _note_rules(lay):
        ws.conditional_format(top, {**rule, "format": orange})
    pending = [lay.subtotal_cell(c) for c in lay.subtotal_rows] + [lay.total_cells[k] for k in lay.total_cells]
    top = pending[0]
    ws.conditional_format(top, {"type": "formula", "multi_range": " ".join(pending),
                                "criteria": f"=ISTEXT({top})", "format": red})
    final = lay.total_cells["最终得分"]
    if lay.running_cell:
        ws.conditional_format(final, {"type": "formula", "criteria": f"=${lay.running_cell[0]}${lay.running_cell[1:]}>0",
                                      "format": amber})
    ws.conditional_format(lay.completion_cell, {"type": "text", "criteria": "containing",
                                                "value": "可以提交", "format": good})
    ws.conditional_format(lay.completion_cell, {"type": "text", "criteria": "containing",
                                                "value": "还有", "format": amber})


def _note_rules(lay: FormLayout) -> list[tuple[str, dict]]:
    """A 扣分说明 cell turns orange while its line claims a deduction (a base line below its points) or
    a bonus or deduction (a bonus or deduction line above 0) and the cell is blank: one rule per kind."""
    if "note_rules" not in lay.shared:
        rules = []
        for kind in ("base", "bonus", "deduction"):
            notes = cell_ranges([lay.note_cell(i.id) for i in lay.rubric.items if i.kind == kind])
            if not notes:
                continue
            top = notes[0].split(":")[0]
            row = top[len(top.rstrip("0123456789")):]
            score, points = f"${a1(0, COL_SCORE)[:-1]}{row}", f"${a1(0, COL_POINTS)[:-1]}{row}"
            rules.append((top, {"type": "formula", "multi_range": " ".join(notes),
                                "criteria": "=" + scoring.note_missing_formula(kind, score, points, top)}))
        lay.shared["note_rules"] = rules
    return lay.shared["note_rules"]


def _bad_score_rule(lay: FormLayout) -> tuple[str, dict] | None:
    """The first score cell and the conditional format over all of them, without its format object.

    The same for every township's form, so made once.
    """
    if "bad_score" not in lay.shared:
        score_refs = cell_ranges([lay.score_cell(i.id) for i in lay.rubric.items if i.kind != "zero"])
        rule = None
        if score_refs:
            top = score_refs[0].split(":")[0]
            f = "$" + a1(int(top[1:]) - 1, COL_POINTS)[:-len(top[1:])] + top[1:]
            rule = top, {"type": "formula", "multi_range": " ".join(score_refs),
                         "criteria": "=" + scoring.bad_score_formula(top, f, lay.settings.score_decimals)}
        lay.shared["bad_score"] = rule
    return lay.shared["bad_score"]
