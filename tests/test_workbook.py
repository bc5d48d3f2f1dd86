"""The generated workbook's structure, read back with openpyxl (normal mode: it sees everything)."""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import absolute_coordinate, range_boundaries

from conftest import SMALL_RUBRIC, full_marks, write_filled
from xlsx_assess import __version__, scoring
from xlsx_assess.layout import (COL_CATEGORY, COL_EVIDENCE, COL_INDICATOR, COL_POINTS, COL_SCORE, FIRST_ITEM_ROW, FORM_SHEET,
                                GUIDE_SHEET, HEADER_ROW, IDENTITY_KEYS, META_SHEET, SHEETS, TOTAL_LABELS, a1,
                                computed_cells, form_id, form_layout)
from xlsx_assess.rubric import format_points, parse_rubric
from xlsx_assess.settings import Township
from xlsx_assess.writer import build_workbook, file_name

# openpyxl reads <sheetProtection> flags as "True = this action is protected (forbidden)".
ALLOWED = ("formatRows", "formatColumns", "selectLockedCells", "selectUnlockedCells")
FORBIDDEN = ("objects", "scenarios", "formatCells", "insertColumns", "insertRows", "insertHyperlinks",
             "deleteColumns", "deleteRows", "sort", "autoFilter", "pivotTables")


class Built:
    """One generated workbook: its layout, its path, and openpyxl's views of it."""

    def __init__(self, ctx, township, folder, **kwargs):
        self.ctx, self.township = ctx, township
        self.layout = form_layout(ctx.rubric, township, ctx.settings)
        self.path = build_workbook(ctx.rubric, township, ctx.settings,
                                   folder / file_name(township, ctx.settings.year), **kwargs)
        self.wb = openpyxl.load_workbook(self.path)
        self.values = openpyxl.load_workbook(self.path, data_only=True)


@pytest.fixture(scope="module", params=["bundled", "small"])
def built(request, tmp_path_factory):
    ctx = request.getfixturevalue("ctx" if request.param == "bundled" else "small_ctx")
    return Built(ctx, ctx.townships[0], tmp_path_factory.mktemp(request.param))


def cells_of(ref: str) -> set[str]:
    """Every cell of an A1 range."""
    min_col, min_row, max_col, max_row = range_boundaries(ref)
    return {a1(r - 1, c - 1) for r in range(min_row, max_row + 1) for c in range(min_col, max_col + 1)}


def span(spec) -> str:
    """The range a layout cell covers: itself, or its merged range."""
    return f"{spec.ref}:{a1(*spec.merge_to)}" if spec.merge_to else spec.ref


# -- sheets ---------------------------------------------------------------------------------------

def test_three_sheets_identity_very_hidden_form_active(built):
    wb = built.wb
    assert wb.sheetnames == [GUIDE_SHEET, FORM_SHEET, META_SHEET] == list(SHEETS)
    assert [ws.sheet_state for ws in wb] == ["visible", "visible", "veryHidden"]
    assert wb.active.title == FORM_SHEET


def test_every_sheet_is_protected_with_only_row_and_column_formatting_allowed(built):
    for ws in built.wb:
        p = ws.protection
        assert p.sheet is True, ws.title
        assert {flag: getattr(p, flag) for flag in ALLOWED} == dict.fromkeys(ALLOWED, False), ws.title
        assert {flag: getattr(p, flag) for flag in FORBIDDEN} == dict.fromkeys(FORBIDDEN, True), ws.title


def test_password_protects_every_sheet(ctx, tmp_path):
    b = Built(ctx, ctx.townships[0], tmp_path, password="secret")
    assert all(ws.protection.sheet and ws.protection.password for ws in b.wb)


# -- locked and unlocked cells --------------------------------------------------------------------

def test_exactly_the_input_cells_are_unlocked(built):
    lay = built.layout
    inputs = lay.inputs()
    assert inputs and all(c.sheet == FORM_SHEET for c in inputs)
    expected = set().union(*(cells_of(span(c)) for c in inputs))
    for ws in built.wb:
        unlocked = {c.coordinate for row in ws.iter_rows() for c in row if not c.protection.locked}
        assert unlocked == (expected if ws.title == FORM_SHEET else set()), ws.title


def test_every_other_layout_cell_is_locked(built):
    for spec in built.layout.locked():
        ws = built.wb[spec.sheet]
        for ref in cells_of(span(spec)):
            assert ws[ref].protection.locked, f"{spec.sheet}!{ref}"


def test_score_and_header_inputs_are_among_the_unlocked_cells(built):
    lay, ws = built.layout, built.wb[FORM_SHEET]
    refs = [lay.score_cell(i.id) for i in lay.rubric.items] + [lay.reporter_cell, lay.phone_cell, lay.date_cell]
    assert not any(ws[ref].protection.locked for ref in refs)
    assert {ws[lay.score_cell(i.id)].column - 1 for i in lay.rubric.items} == {COL_SCORE}


# -- validation -----------------------------------------------------------------------------------

def validations(ws) -> dict[str, object]:
    """Cell -> its data validation; no cell may have two."""
    out: dict[str, object] = {}
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            for ref in cells_of(rng.coord):
                assert ref not in out, f"two validations on {ref}"
                out[ref] = dv
    return out


def test_validation_on_exactly_the_input_cells(built):
    assert set(validations(built.wb[FORM_SHEET])) == {c.ref for c in built.layout.inputs()}
    for name in (GUIDE_SHEET, META_SHEET):
        assert validations(built.wb[name]) == {}


def test_score_cells_accept_0_to_the_items_points(built):
    lay, dvs = built.layout, validations(built.wb[FORM_SHEET])
    first = {id(dv): min((ref for r in dv.sqref.ranges for ref in cells_of(r.coord)), key=lambda ref: int(ref[1:]))
             for dv in dvs.values()}
    for item in lay.rubric.items:
        dv = dvs[lay.score_cell(item.id)]
        if item.kind == "zero":
            assert dv.type == "list"
            assert dv.formula1 == f'"{scoring.YES},{scoring.NO}"'
        else:                      # a number from 0 to the points, with at most two places (score_decimals)
            assert dv.type == "custom", item.id
            top = first[id(dv)]    # the formula is written for the rule's first (top) cell, relative to it
            assert dv.formula1 == (f"AND(ISNUMBER({top}),{top}>=0,{top}<={format_points(item.points)},"
                                   f"ROUND({top},2)={top})"), item.id
            assert dv.allow_blank, item.id


def test_text_cells_have_a_length_validation(built):
    lay, dvs = built.layout, validations(built.wb[FORM_SHEET])
    text_cells = [lay.note_cell(i.id) for i in lay.rubric.items] + [lay.evidence_cell(i.id) for i in lay.rubric.items]
    for ref in text_cells + [lay.reporter_cell, lay.phone_cell]:
        dv = dvs[ref]
        assert dv.type == "textLength", ref
        assert 0 <= float(dv.formula1) < float(dv.formula2), ref
    assert dvs[lay.date_cell].type == "date"


def test_every_validation_has_a_prompt_and_stops_bad_entries(built):
    for ref, dv in validations(built.wb[FORM_SHEET]).items():
        assert dv.showInputMessage and dv.prompt and dv.promptTitle, ref
        assert dv.showErrorMessage and dv.error and dv.errorTitle, ref
        assert dv.errorStyle in (None, "stop"), ref          # absent means stop
        assert len(dv.promptTitle) <= 32 and len(dv.errorTitle) <= 32, ref
        assert len(dv.prompt) <= 255 and len(dv.error) <= 255, ref


# -- merged ranges --------------------------------------------------------------------------------

def test_merged_ranges_are_exactly_the_layouts(built):
    for ws in built.wb:
        expected = {span(c) for c in built.layout.on(ws.title) if c.merge_to}
        assert {str(r) for r in ws.merged_cells.ranges} == expected, ws.title


def test_category_and_multi_line_indicator_cells_are_merged_over_their_lines(built):
    lay, ws = built.layout, built.wb[FORM_SHEET]
    merged = {str(r) for r in ws.merged_cells.ranges}
    rows = lay.item_rows

    def expect(col: int, lines: list[int]) -> None:
        first, last = min(lines), max(lines)
        assert last - first + 1 == len(lines)              # contiguous
        if last > first:
            assert f"{a1(first, col)}:{a1(last, col)}" in merged
        else:
            assert not any(r.startswith(a1(first, col) + ":") for r in merged)

    for category in lay.rubric.categories:
        items = [i for i in lay.rubric.items if i.category == category]
        expect(COL_CATEGORY, [rows[i.id] for i in items])
        assert ws[a1(rows[items[0].id], COL_CATEGORY)].value == category
        for indicator in dict.fromkeys(i.indicator for i in items):
            group = [i for i in items if i.indicator == indicator]
            expect(COL_INDICATOR, [rows[i.id] for i in group])
            assert ws[a1(rows[group[0].id], COL_INDICATOR)].value == indicator


# -- identity -------------------------------------------------------------------------------------

def test_identity_in_custom_properties_and_hidden_sheet(built):
    ctx, t = built.ctx, built.township
    expected = {
        "xa_township_code": t.code,
        "xa_township": t.name,
        "xa_year": str(ctx.settings.year),
        "xa_rubric_sha256": ctx.rubric.fingerprint,
        "xa_form_id": form_id(ctx.rubric, t, ctx.settings.year),
        "xa_tool_version": __version__,
    }
    props = {p.name: p.value for p in built.wb.custom_doc_props.props}
    rows = list(built.wb[META_SHEET].iter_rows(min_row=2, values_only=True))
    sheet = {k: v for k, v in rows}
    for found in (props, sheet):
        assert {k: found.get(k) for k in expected} == expected
        assert set(found) == set(IDENTITY_KEYS)
    assert props == sheet == built.layout.identity


# -- formulas and their cached values -------------------------------------------------------------

def test_totals_labels_each_have_a_formula_to_their_right(built):
    lay, ws = built.layout, built.wb[FORM_SHEET]
    labels = {c.value: c for row in ws.iter_rows() for c in row if c.value in TOTAL_LABELS}
    assert list(labels) == list(TOTAL_LABELS)               # each once, in this order
    for label, cell in labels.items():
        assert cell.column - 1 == COL_POINTS
        right = ws.cell(cell.row, cell.column + 1)
        assert right.data_type == "f" and right.value.startswith("="), label
        assert right.coordinate == lay.total_cells[label]


def test_every_formula_is_the_layouts(built):
    for ws in built.wb:
        written = {c.coordinate: c.value for row in ws.iter_rows() for c in row if c.data_type == "f"}
        expected = {c.ref: "=" + c.formula for c in built.layout.on(ws.title) if c.formula}
        assert written == expected, ws.title


def test_cached_values_of_the_blank_form(built):
    lay, ws = built.layout, built.values[FORM_SHEET]
    for label in TOTAL_LABELS:
        assert ws[lay.total_cells[label]].value == 0, label
    for category in lay.rubric.scored_categories:
        assert ws[lay.subtotal_cell(category)].value == 0, category
    required = [i.id for i in lay.rubric.items if i.kind in ("base", "zero")]
    assert ws[lay.completion_cell].value == f"还有 {len(required)} 项未填或有误：{'、'.join(required[:3])}…"
    assert {c.ref for c in lay.cells if c.formula} == set(computed_cells(lay, scoring.score(
        lay.rubric, {}, False, lay.settings)))


def test_cached_completion_of_the_bundled_blank_form(ctx, tmp_path):
    b = Built(ctx, ctx.townships[1], tmp_path)
    assert b.values[FORM_SHEET][b.layout.completion_cell].value == "还有 60 项未填或有误：A01、A02、A03…"


def test_cached_values_of_a_filled_form(small_ctx, tmp_path):
    t = small_ctx.townships[0]
    values = full_marks(small_ctx.rubric) | {"S01": 2.5, "S02": 1.0}
    path = write_filled(small_ctx, t, tmp_path, values=values, zeroed=False)
    lay = form_layout(small_ctx.rubric, t, small_ctx.settings)
    ws = openpyxl.load_workbook(path, data_only=True)[FORM_SHEET]
    assert {label: ws[lay.total_cells[label]].value for label in TOTAL_LABELS} == \
        {"基础得分": 100, "加分": 2.5, "减分": 1.0, "最终得分": 101.5}
    assert ws[lay.completion_cell].value == "已填 4/4 项 · 可以提交"          # 3 base lines and the zero-out line


# -- text that looks like a formula or a link stays text --------------------------------------------

def test_formula_and_url_lookalikes_are_written_as_text(small_ctx, tmp_path):
    text = (SMALL_RUBRIC.replace("听取专题汇报", "=1+1")
            .replace("未听取不得分", "http://example.com")
            .replace("发布解读", '"=HYPERLINK(""http://evil.example"",""点我"")"')
            .replace("B01,制度建设", "B01,+制度建设"))
    rubric, report = parse_rubric(text)
    assert rubric is not None, report.issues
    settings = replace(small_ctx.settings, issuing_office="https://evil.example/x", contact_phone="-1+2",
                       deadline="=NOW()")
    township = Township("410927999", "@evil")
    path = build_workbook(rubric, township, settings, tmp_path / "evil.xlsx")
    wb = openpyxl.load_workbook(path)
    lay = form_layout(rubric, township, settings)

    planted = {"=1+1", "http://example.com", '=HYPERLINK("http://evil.example","点我")', "+制度建设", "@evil",
               "https://evil.example/x", "-1+2", "=NOW()"}
    seen = set()
    for ws in wb:
        for row in ws.iter_rows():
            for c in row:
                assert c.hyperlink is None, c.coordinate
                if c.data_type == "f":
                    assert c.coordinate in {s.ref for s in lay.on(ws.title) if s.formula}, c.coordinate
                elif isinstance(c.value, str):
                    seen |= {p for p in planted if p in c.value}
    assert seen == planted
    form = wb[FORM_SHEET]
    assert form[a1(lay.item_rows["A01"], 3)].value == "=1+1"
    assert form[lay.township_cell].value == "@evil"


# -- print setup and view -------------------------------------------------------------------------

def test_form_prints_landscape_a4_one_page_wide_with_repeated_header(built):
    ws = built.wb[FORM_SHEET]
    ps = ws.page_setup
    assert ps.orientation == "landscape"
    assert int(ps.paperSize) == 9                                   # A4
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert int(ps.fitToWidth if ps.fitToWidth is not None else 1) == 1   # absent means 1
    assert int(ps.fitToHeight) == 0                                 # as many pages tall as needed
    header = HEADER_ROW + 1
    assert ws.print_title_rows == f"${header}:${header}"
    last = a1(built.layout.last_row, COL_EVIDENCE)
    assert ws.print_area == f"'{FORM_SHEET}'!$A$1:{absolute_coordinate(last)}"


def test_bad_scores_and_completion_are_coloured(built):
    """Out-of-range, over-precise or text scores turn red; the completion cell turns green or amber."""
    lay = built.layout
    cfs = built.wb[FORM_SHEET].conditional_formatting
    rules = {str(cf.sqref): [r.text if r.type == "containsText" else r.formula[0] for r in cf.rules] for cf in cfs}
    fills = {str(cf.sqref): [r.dxf.fill.bgColor.rgb for r in cf.rules] for cf in cfs}
    scores = {lay.score_cell(i.id) for i in lay.rubric.items if i.kind != "zero"}
    score_rule = next(sqref for sqref in rules if set().union(*map(cells_of, sqref.split())) == scores)
    [formula] = rules[score_rule]
    top = sorted(scores, key=lambda ref: int(ref[1:]))[0]
    assert formula == (f"OR(AND(ISNUMBER({top}),OR({top}<0,{top}>$F{top[1:]},ROUND({top},2)<>{top})),"
                       f"ISTEXT({top}))")
    assert rules[lay.completion_cell] == ["可以提交", "还有"]
    assert fills[score_rule] == ["FFF4B6B6"]                               # red
    assert fills[lay.completion_cell] == ["FFC6EFCE", "FFFFEB9C"]          # green when done, amber before
    # A 扣分说明 left blank beside a deduction (base lines) or a bonus or deduction (their lines) turns orange.
    for kind in ("base", "bonus", "deduction"):
        notes = {lay.note_cell(i.id) for i in lay.rubric.items if i.kind == kind}
        if not notes:
            continue
        [sqref] = [q for q in rules if set().union(*map(cells_of, q.split())) == notes]
        top = sorted(notes, key=lambda ref: int(ref[1:]))[0]
        score, points = f"$G{top[1:]}", f"$F{top[1:]}"
        claim = f"{score}<{points}" if kind == "base" else f"{score}>0"
        assert rules[sqref] == [f'AND(ISNUMBER({score}),{claim},TRIM({top})="")'] and fills[sqref] == ["FFF8CBAD"]
    # 最终得分 is not red by itself: only while lines are missing or invalid, and 待完善 totals.
    final = lay.total_cells["最终得分"]
    assert rules[final] == [f"${lay.running_cell[0]}${lay.running_cell[1:]}>0"]


def test_form_freezes_panes_below_the_header(built):
    assert built.wb[FORM_SHEET].freeze_panes == a1(HEADER_ROW + 1, 0) == a1(FIRST_ITEM_ROW, 0)


# -- determinism and names ------------------------------------------------------------------------

def test_same_township_twice_gives_identical_bytes(ctx, tmp_path):
    t = ctx.townships[0]
    a = build_workbook(ctx.rubric, t, ctx.settings, tmp_path / "a" / file_name(t, ctx.settings.year))
    b = build_workbook(ctx.rubric, t, ctx.settings, tmp_path / "b" / file_name(t, ctx.settings.year))
    assert a.read_bytes() == b.read_bytes()


def test_timestamps_are_fixed(built):
    year = built.ctx.settings.year
    props = built.wb.properties
    assert props.created == props.modified == dt.datetime(year, 1, 1)
    with zipfile.ZipFile(built.path) as z:
        assert all(info.date_time[0] == 1980 for info in z.infolist())


def test_remembered_formulas_write_the_same_bytes(small_ctx, tmp_path):
    """XlsxWriter's formula rewrite is remembered per process; a fresh memo writes the same file."""
    from xlsx_assess import writer

    t = small_ctx.townships[0]
    writer._sheet_class.cache_clear()
    fresh = build_workbook(small_ctx.rubric, t, small_ctx.settings, tmp_path / "a.xlsx").read_bytes()
    remembered = build_workbook(small_ctx.rubric, t, small_ctx.settings, tmp_path / "b.xlsx").read_bytes()
    assert fresh == remembered
    assert writer._sheet_class().remembered      # XlsxWriter still calls the private method it overrides


def test_generate_moves_every_file_into_place_with_the_umask_mode(small_ctx, tmp_path):
    from xlsx_assess.workflow import generate_workbooks

    import os

    done = generate_workbooks(tmp_path, small_ctx)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(g.path.name for g in done)
    assert all(g.path.stat().st_size > 0 for g in done)
    umask = os.umask(0o22)
    os.umask(umask)
    assert {g.path.stat().st_mode & 0o777 for g in done} == {0o666 & ~umask}   # not the temporary file's 0600


def test_a_file_that_cannot_be_moved_fails_the_run_after_the_others_land(small_ctx, tmp_path, monkeypatch):
    import os

    from xlsx_assess.workflow import generate_workbooks

    bad = file_name(small_ctx.townships[0], small_ctx.settings.year)
    replace = os.replace

    def failing(src, dst):
        if Path(dst).name == bad:
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    from xlsx_assess.issues import AssessError

    with pytest.raises(AssessError, match="disk full") as caught:      # R302, naming the file
        generate_workbooks(tmp_path, small_ctx)
    assert [(i.code, Path(i.file).name) for i in caught.value.report] == [("R302", bad)]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(file_name(t, small_ctx.settings.year) for t in small_ctx.townships[1:])


def test_two_townships_give_different_files(small_ctx, tmp_path):
    t1, t2 = small_ctx.townships[:2]
    a = build_workbook(small_ctx.rubric, t1, small_ctx.settings, tmp_path / "a.xlsx")
    b = build_workbook(small_ctx.rubric, t2, small_ctx.settings, tmp_path / "b.xlsx")
    assert a.read_bytes() != b.read_bytes()


def test_build_leaves_no_temporary_files(small_ctx, tmp_path):
    t = small_ctx.townships[0]
    build_workbook(small_ctx.rubric, t, small_ctx.settings, tmp_path / "out" / "x.xlsx")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.xlsx"]


def test_file_name():
    assert file_name(Township("410927100", "城关镇"), 2026) == "2026_410927100_城关镇.xlsx"


def test_bundled_file_names_are_distinct(ctx):
    names = [file_name(t, ctx.settings.year) for t in ctx.townships]
    assert len(set(names)) == len(names)
