"""The form as it prints and as it behaves once filled, judged by LibreOffice.

One LibreOffice session for the module: the bundled blank form to PDF, and two forms filled and
recalculated (an out-of-range score; a claim without 扣分说明 and a blank 直接归零项). The PDF is read
with poppler's `pdftotext -bbox-layout` (words with their boxes, per page).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import needs_libreoffice

import lo
from xlsx_assess import scoring
from xlsx_assess.checks import Context, check_returned
from xlsx_assess.layout import (COL_CATEGORY, COL_INDICATOR, FIRST_ITEM_ROW, FORM_SHEET, WIDTHS, form_layout,
                                text_height)
from xlsx_assess.reader import read_returned
from xlsx_assess.settings import Township
from xlsx_assess.writer import build_workbook, file_name

pytestmark = pytest.mark.libreoffice


def _page_of(lay, row: int) -> int:
    """The form's printed page (0-based) that holds `row`."""
    return sum(1 for b in lay.breaks if b <= row)


def _names_by_page(lay, col: int) -> dict[int, str]:
    """The merged 内容 / 一级指标 texts each page should show in column `col`, in row order."""
    out: dict[int, str] = {}
    last = max(lay.item_rows.values())
    cells = sorted((c for c in lay.on(FORM_SHEET) if c.col == col and FIRST_ITEM_ROW <= c.row <= last and c.value),
                   key=lambda c: c.row)
    for c in cells:
        out[_page_of(lay, c.row)] = out.get(_page_of(lay, c.row), "") + re.sub(r"\s", "", str(c.value))
    return out


WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')
PAGE = re.compile(r"<page .*?</page>", re.S)


def _pages(pdf: Path) -> list[list[tuple[float, float, float, str]]]:
    """Words of each page: (x centre, y top, y bottom, text)."""
    html = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return [[((float(a) + float(c)) / 2, float(b), float(d), t) for a, b, c, d, t in WORD.findall(p)]
            for p in PAGE.findall(html)]


def _column_text(words, col: int) -> str:
    """What a form page shows in column `col` between its header row and 得分汇总 (if any)."""
    heads = {t: x for x, y, _, t in words if t in ("编号", "内容", "一级指标", "二级指标")}
    head_y = min(y for x, y, _, t in words if t == "编号")
    stop = min([y for x, y, _, t in words if t == "得分汇总"] or [1e9])
    centres = [heads["编号"], heads["内容"], heads["一级指标"], heads["二级指标"]]
    # Column edges from the header's centres and the columns' widths.
    edges = [centres[k] + (centres[k + 1] - centres[k]) * WIDTHS[k] / (WIDTHS[k] + WIDTHS[k + 1]) for k in range(3)]
    lo_x, hi_x = edges[col - 1], edges[col]
    picked = sorted((y, x, t) for x, y, _, t in words if lo_x < x < hi_x and head_y + 2 < y < stop)
    return re.sub(r"\s", "", "".join(t for _, _, t in picked))


@pytest.fixture(scope="module")
def rendered(ctx, tmp_path_factory):
    needs_libreoffice()
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) not installed")
    folder = tmp_path_factory.mktemp("render")
    t = ctx.townships[0]
    lay = form_layout(ctx.rubric, t, ctx.settings)
    blank = build_workbook(ctx.rubric, t, ctx.settings, folder / file_name(t, ctx.settings.year))
    r = ctx.rubric
    base = r.base
    over = next(i for i in base if i.points < 3)          # 3 in a line worth less: out of range
    below, bonus = base[1], r.bonus[0]
    full = [[FORM_SHEET, lay.score_cell(i.id), i.points] for i in base]
    who = [[FORM_SHEET, lay.reporter_cell, "李四"], [FORM_SHEET, lay.phone_cell, "0393-1234567"]]
    zero = [[FORM_SHEET, lay.score_cell(r.zero.id), scoring.NO]]
    fills = {
        "over": full + zero + who + [[FORM_SHEET, lay.score_cell(over.id), 3]],
        "notes": full + who + [[FORM_SHEET, lay.score_cell(below.id), below.points - 0.5],
                               [FORM_SHEET, lay.score_cell(bonus.id), 1]],
    }
    reads = [[FORM_SHEET, ref] for ref in [lay.completion_cell, *lay.total_cells.values(),
                                           *(lay.subtotal_cell(c) for c in lay.subtotal_rows)]]
    jobs = [{"in": str(blank), "out": str(folder / "pdf" / "form.pdf"), "format": "pdf"}]
    (folder / "pdf").mkdir()
    for name, sets in fills.items():
        (folder / name).mkdir()
        jobs.append({"in": str(blank), "out": str(folder / name / blank.name), "format": "xlsx", "set": sets,
                     "read": reads})
    results = lo.run_jobs(jobs)
    assert all(res["ok"] for res in results), results
    shown = {name: {x["cell"]: x["string"] for x in res["read"]} for name, res in zip(fills, results[1:])}
    return {"lay": lay, "pages": _pages(folder / "pdf" / "form.pdf"), "shown": shown, "folder": folder,
            "over": over, "below": below, "bonus": bonus, "name": blank.name}


def test_the_form_prints_on_the_pages_its_breaks_make(rendered):
    lay, pages = rendered["lay"], rendered["pages"]
    form = [p for p in pages if any(t == "二级指标" for *_, t in p)]
    assert len(pages) == 1 + len(form)                                # the guide on one page, then the form
    assert len(form) == len(lay.breaks) + 1


def test_every_category_and_indicator_is_whole_on_the_page_where_its_rows_start(rendered):
    lay, pages = rendered["lay"], rendered["pages"]
    form = [p for p in pages if any(t == "二级指标" for *_, t in p)]
    for col in (COL_CATEGORY, COL_INDICATOR):
        expected = _names_by_page(lay, col)
        for k, words in enumerate(form):
            assert _column_text(words, col) == expected.get(k, ""), (col, k + 2)


def test_the_signatures_share_the_last_page_with_the_totals(rendered):
    last = " ".join(t for *_, t in rendered["pages"][-1])
    for text in ("得分汇总", "最终得分", "填报进度", "填报人（签字）", "审核人（签字）", "单位（盖章）"):
        assert text in last, text
    assert re.search(r"第\s*\d+\s*页，共\s*\d+\s*页", last)


def test_no_row_is_taller_than_its_text_needs(rendered):
    """Every item row is as tall as its own texts need, or, the last row of a merged 内容 / 一级指标 cell,
    just as tall as makes the merged rows hold that text."""
    lay = rendered["lay"]
    cells = [c for c in lay.on(FORM_SHEET) if c.row >= FIRST_ITEM_ROW and isinstance(c.value, str) and c.value]
    own: dict[int, float] = {}
    for c in cells:
        if not c.merge_to or c.merge_to[0] == c.row:
            own[c.row] = max(own.get(c.row, 0), text_height(c) if c.col <= 4 else 0)
    merged = [c for c in cells if c.merge_to and c.merge_to[0] > c.row]
    for row in lay.item_rows.values():
        height = lay.heights[row]
        assert height >= own[row], row
        if height > own[row] + 0.05:
            ends = [c for c in merged if c.merge_to[0] == row]
            assert any(abs(sum(lay.heights[r] for r in range(c.row, row + 1)) - text_height(c)) < 0.2 for c in ends), row


def test_an_out_of_range_score_leaves_the_form_not_complete_in_libreoffice(rendered, ctx):
    lay, shown, over = rendered["lay"], rendered["shown"]["over"], rendered["over"]
    assert shown[lay.completion_cell] == f"还有 1 项未填或有误：{over.id}"
    assert shown[lay.subtotal_cell(over.category)] == scoring.PENDING
    assert shown[lay.total_cells["基础得分"]] == shown[lay.total_cells["最终得分"]] == scoring.PENDING
    res = check_returned(read_returned(rendered["folder"] / "over" / rendered["name"]), ctx)
    # Only the score itself: the check shows what the form shows (no V408), the formulas survive (no S304).
    assert [(i.code, i.cell) for i in res.report] == [("V403", lay.score_cell(over.id))]


def test_claims_without_notes_and_a_blank_zero_line_are_reported_at_their_cells(rendered, ctx):
    lay, shown = rendered["lay"], rendered["shown"]["notes"]
    zero = ctx.rubric.zero
    assert shown[lay.completion_cell] == f"还有 1 项未填或有误：{zero.id}"
    res = check_returned(read_returned(rendered["folder"] / "notes" / rendered["name"]), ctx)
    found = sorted((i.code, i.cell, i.severity) for i in res.report)
    assert found == sorted([("V417", lay.note_cell(rendered["below"].id), "warning"),
                            ("V417", lay.note_cell(rendered["bonus"].id), "warning"),
                            ("V418", lay.score_cell(zero.id), "warning")])
    assert rendered["below"].id in next(i.message for i in res.report if i.cell == lay.note_cell(rendered["below"].id))


def test_a_thirty_township_roster_gets_the_same_form(ctx, tmp_path):
    """Every township's written form has the same row heights and page breaks (what prints), whatever its name."""
    import zipfile

    towns = [Township(f"41092730{k:02d}", f"测试第{k:02d}号乡镇") for k in range(30)]
    c30 = Context(ctx.rubric, ctx.settings, towns)

    def printed(path: Path) -> list:
        with zipfile.ZipFile(path) as z:
            sheets = [z.read(n).decode() for n in sorted(z.namelist()) if n.startswith("xl/worksheets/sheet")]
        return [(re.findall(r'<row r="(\d+)"[^>]*?ht="([\d.]+)"', x), re.findall(r"<rowBreaks.*?</rowBreaks>", x))
                for x in sheets]

    books = [build_workbook(c30.rubric, t, c30.settings, tmp_path / file_name(t, c30.settings.year)) for t in towns]
    first = printed(books[0])
    assert first[0][0] or first[1][0]                       # heights were written at all
    assert all(printed(b) == first for b in books[1:])
    assert len(list(tmp_path.glob("*.xlsx"))) == 30


# -- without LibreOffice: the setting, and a category taller than a page ------------------------------

def test_missing_note_severity_is_the_countys(small_ctx, tmp_path):
    from dataclasses import replace

    from fills import write_filled

    strict = Context(small_ctx.rubric, replace(small_ctx.settings, missing_note_severity="error"), small_ctx.townships)
    t = strict.townships[0]
    path = write_filled(strict, t, tmp_path, {"A01": 30.0, "A02": 10.0, "B01": 50.0}, False)
    res = check_returned(read_returned(path), strict)
    lay = form_layout(strict.rubric, t, strict.settings)
    assert [(i.code, i.cell, i.severity) for i in res.report] == [("V417", lay.note_cell("A01"), "error")]
    assert res.status == "error"


@pytest.mark.parametrize("value", ['"fatal"', "1", '"Warning"'])
def test_a_wrong_missing_note_severity_is_r201_at_its_line(tmp_path, value):
    from xlsx_assess.issues import AssessError
    from xlsx_assess.settings import load_settings

    path = tmp_path / "settings.toml"
    path.write_text(f'title = "考核"\nmissing_note_severity = {value}\n', encoding="utf-8")
    with pytest.raises(AssessError) as exc:
        load_settings(path)
    [bad] = exc.value.report.issues
    assert (bad.code, bad.line, bad.column) == ("R201", 2, "missing_note_severity")


def test_a_category_taller_than_a_page_is_split_with_its_name_on_each_page(small_ctx):
    from xlsx_assess.rubric import parse_rubric

    lines = ["id,category,indicator,criterion,kind,points,guide,note"]
    lines += [f"L{k:02d},很长的一类,指标{k // 4},{'很长的二级指标文字' * 6},base,2,{'评分标准' * 12}," for k in range(50)]
    rubric, report = parse_rubric("\n".join(lines) + "\n")
    assert rubric is not None, report.issues
    lay = form_layout(rubric, small_ctx.townships[0], small_ctx.settings)
    assert len(lay.breaks) >= 2
    names = sorted((c.row, c.merge_to) for c in lay.on(FORM_SHEET) if c.col == COL_CATEGORY and c.value == "很长的一类")
    pieces = [(row, (to or (row, 0))[0]) for row, to in names]
    assert len(pieces) == len(lay.breaks) + 1 - sum(b > max(lay.item_rows.values()) for b in lay.breaks)
    for first, last in pieces:                                   # each piece on one page, each page's piece whole
        assert _page_of(lay, first) == _page_of(lay, last)
    indicators = [c for c in lay.on(FORM_SHEET) if c.col == COL_INDICATOR and c.merge_to and c.row in lay.item_rows.values()]
    for c in indicators:
        assert _page_of(lay, c.row) == _page_of(lay, c.merge_to[0]), c.ref
    starts = {lay.item_rows[f"L{k:02d}"] for k in range(0, 50, 4)}         # where each 一级指标 begins
    assert set(lay.breaks) <= starts | {max(lay.item_rows.values()) + 1}    # cut between 一级指标 where one fits
