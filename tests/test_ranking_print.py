"""The ranking workbook as it prints: rendered through LibreOffice to PDF (one conversion per workbook) for
the 9 bundled returns and for a 30-township county, and its print settings read from the XML.

What a county leader is handed: 排名 (the whole table and its chart) on the first page alone, every sheet
titled with county and year, page numbers, file hashes shown short, 分类得分 in rank order.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import ROOT, needs_libreoffice, sheet_part, write_filled
import lo

from xlsx_assess.checks import Context
from xlsx_assess.clock import local_text
from xlsx_assess.ranking import RANKING_SHEETS, SHEETS, SHORT_HASH, heading_of, is_ranking_workbook, rank_townships, write_ranking
from xlsx_assess.settings import Township
from xlsx_assess.workflow import check_files

SAMPLES = ROOT / "samples" / "returned"
MADE = dt.datetime(2027, 1, 20, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
# A county of 30 townships, some with long names.
THIRTY = ("城关镇 侯庙镇 孙口镇 打渔陈镇 马楼镇 吴坝镇 后方乡 清水河乡 夹河乡 龙王庙镇 白马坡镇 东风乡 柳树湾乡 "
          "石桥镇 青龙山镇 杏花村镇 黄河滩乡 金堤乡 南关镇 北关镇 西湖乡 东湖乡 大王庄乡 小李庄镇 高庙乡 "
          "新集镇 老城镇 王集乡 张庄乡 刘楼镇").split()


class Rendered:
    """A ranking workbook, its PDF and the PDF's text page by page."""

    def __init__(self, xlsx: Path, rk, names: list[str]):
        self.xlsx, self.rk, self.names = xlsx, rk, names
        self.pdf = lo.convert(xlsx, xlsx.parent / "pdf", "pdf")
        text = subprocess.run(["pdftotext", "-layout", str(self.pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        self.pages = text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")

    def flat(self, k: int) -> str:
        return re.sub(r"\s+", "", self.pages[k])


def _rank(paths, ctx, out: Path) -> tuple[Path, object]:
    coll = check_files(paths, ctx, workers=1)
    rk = rank_townships(coll, ctx, MADE)
    return write_ranking(rk, out), rk


@pytest.fixture(scope="module")
def nine(tmp_path_factory, ctx) -> Rendered:
    needs_libreoffice()
    out, rk = _rank([SAMPLES], ctx, tmp_path_factory.mktemp("nine") / "排名.xlsx")
    return Rendered(out, rk, [t.name for t in ctx.townships])


@pytest.fixture(scope="module")
def thirty_ctx(ctx) -> Context:
    towns = [Township(f"4109271{k:02d}", name, "乡" if name.endswith("乡") else "镇") for k, name in enumerate(THIRTY)]
    return Context(ctx.rubric, ctx.settings, towns)


@pytest.fixture(scope="module")
def thirty(tmp_path_factory, thirty_ctx) -> Rendered:
    """30 townships' returns filled as our writer fills them (no LibreOffice), checked and ranked."""
    needs_libreoffice()
    folder = tmp_path_factory.mktemp("thirty")
    returned = folder / "returned"
    returned.mkdir()
    rng = random.Random(30)
    for t in thirty_ctx.townships:
        values, notes = plausible(thirty_ctx.rubric, rng)
        write_filled(thirty_ctx, t, returned, values, False, notes)
    out, rk = _rank([returned], thirty_ctx, folder / "排名.xlsx")
    assert len(rk.ranking) == 30
    return Rendered(out, rk, list(THIRTY))


def plausible(rubric, rng: random.Random) -> tuple[dict, dict]:
    """As a township fills its form: most lines at full marks, one in five losing a little, with a reason;
    now and then a bonus or a deduction."""
    values, notes = {}, {}
    for item in rubric.items:
        if item.kind == "base":
            values[item.id] = item.points
            if rng.random() < 0.2:
                values[item.id] = max(0.0, item.points - rng.choice([0.25, 0.5, 1.0]))
                notes[item.id] = "扣分原因：" + (item.guide.split("；")[0] or "未完全达到要求")
        elif item.kind in ("bonus", "deduction") and rng.random() < 0.15:
            values[item.id] = min(item.points, 1.0)
            notes[item.id] = "市级通报 1 次"
    return values, notes


@pytest.fixture(params=["nine", "thirty"])
def rendered(request) -> Rendered:
    return request.getfixturevalue(request.param)


def test_the_first_page_holds_the_whole_ranking_table_and_its_chart(rendered):
    first, second = rendered.flat(0), rendered.flat(1)
    assert "排名" in first and "各乡镇最终得分" in first                        # the table's title and the chart's
    for name in rendered.names:       # each township twice on page 1: its row and its bar's label
        assert first.count(name) - sum(first.count(o) for o in rendered.names if o != name and name in o) >= 2, name
    # 排名 prints on one page: the next page is 分类得分's
    assert re.sub(r"\s+", "", rendered.rk.heading.title("分类得分")) in second


def test_every_sheet_is_titled_with_county_and_year_and_every_page_numbered(rendered):
    heading = rendered.rk.heading
    assert heading.county == "台前县" and heading.year == 2026
    pages = [rendered.flat(k) for k in range(len(rendered.pages))]
    for name, what in SHEETS:
        title = re.sub(r"\s+", "", heading.title(what))
        assert title.startswith("台前县2026年度") and any(title in p for p in pages), name
        assert any("制表单位：" + heading.office.replace(" ", "") in p and "制表日期：2027-01-20" in p for p in pages)
    total = len(rendered.pages)
    for k, page in enumerate(pages, start=1):
        assert f"第{k}页，共{total}页" in page, k


def test_file_hashes_print_short_and_whole_on_one_line(rendered):
    text = "\n".join(rendered.pages)
    for sha in rendered.rk.files["SHA-256"]:
        assert sha[:SHORT_HASH] in text and sha[SHORT_HASH:SHORT_HASH + 8] not in text
    lines = [ln for ln in text.splitlines() if re.search(r"\b[0-9a-f]{12}\b", ln)]
    assert len(lines) >= len(rendered.rk.files)


def test_codes_print_whole(rendered):
    text = "\n".join(rendered.pages)
    for code in rendered.rk.ranking["乡镇代码"]:
        assert text.count(code) >= 3, code         # 排名, 分类得分, 文件处理结果: never broken across lines


def test_the_explanation_prints_its_labels_beside_their_text(rendered):
    """排名说明 is one page wide: every label on the page that holds the start of its text."""
    title = re.sub(r"\s+", "", rendered.rk.heading.title("排名说明"))
    [k] = [k for k in range(len(rendered.pages)) if title in rendered.flat(k)]
    for label, text in rendered.rk.explanation:
        lines = [ln.split() for ln in rendered.pages[k].splitlines()]
        assert any(words and words[0] == label for words in lines), label
        assert re.sub(r"\s+", "", text)[:12] in rendered.flat(k), label


# -- what the XML says (no LibreOffice) ---------------------------------------------------------------

def _part(path: Path, member: str) -> str:
    with zipfile.ZipFile(path) as zf:
        return zf.read(member).decode("utf-8")


@pytest.fixture(scope="module")
def nine_xlsx(tmp_path_factory, ctx) -> tuple[Path, object]:
    return _rank([SAMPLES], ctx, tmp_path_factory.mktemp("nine_xlsx") / "排名.xlsx")


def test_every_sheet_prints_on_a4_fit_to_width_with_page_numbers_and_its_header_repeated(nine_xlsx):
    path, _ = nine_xlsx
    assert is_ranking_workbook(path)
    workbook = _part(path, "xl/workbook.xml")
    for name in RANKING_SHEETS:
        xml = _part(path, sheet_part(path, name))
        setup = re.search(r"<pageSetup [^>]*>", xml).group(0)
        assert 'fitToPage="1"' in xml and 'paperSize="9"' in setup, name
        assert name == "排名" or 'fitToHeight="0"' in setup, name                  # as many pages as it needs
        assert "fitToWidth" not in setup or 'fitToWidth="1"' in setup, name        # 1 is the default
        assert "第 &amp;P 页，共 &amp;N 页" in xml, name
        if name not in ("排名说明", "考核结果通报"):            # prose, no table header to repeat
            assert re.search(rf"_xlnm.Print_Titles\" localSheetId=\"{RANKING_SHEETS.index(name)}\"[^>]*>"
                             rf"'?{name}'?!\$4:\$4<", workbook), name
    rank = _part(path, sheet_part(path, "排名"))
    setup = re.search(r"<pageSetup [^>]*>", rank).group(0)
    assert 'fitToHeight="0"' not in setup and "<drawing " in rank           # one page high (1 is the default)
    assert re.search(r"_xlnm.Print_Area\" localSheetId=\"0\"", workbook)


def test_categories_follow_the_ranking_and_the_whole_hash_is_kept_hidden(nine_xlsx):
    from python_calamine import CalamineWorkbook

    path, rk = nine_xlsx
    wb = CalamineWorkbook.from_path(str(path))
    ranking = wb.get_sheet_by_name("排名").to_python()
    categories = wb.get_sheet_by_name("分类得分").to_python()
    codes = [row[1] for row in ranking[4:]]
    assert [row[1] for row in categories[4:4 + len(codes)]] == codes
    assert [row[0] for row in categories[4:4 + len(codes)]] == [row[0] for row in ranking[4:]]
    files = wb.get_sheet_by_name("文件处理结果").to_python()
    head = files[3]
    short, full = head.index("SHA-256（前12位）"), head.index("SHA-256")
    assert full == len(head) - 1
    assert sorted(row[full] for row in files[4:]) == sorted(rk.files["SHA-256"])
    assert all(row[short] == row[full][:SHORT_HASH] for row in files[4:])
    xml = _part(path, sheet_part(path, "文件处理结果"))
    assert re.search(rf'<col min="{full + 1}" max="{full + 1}"[^>]*hidden="1"', xml)


def test_times_are_local_with_their_offset(nine_xlsx):
    _, rk = nine_xlsx
    made = dict(rk.explanation)["生成时间"]
    assert made == local_text(MADE) and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d（UTC[+-]\d\d:\d\d）", made)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d（UTC[+-]\d\d:\d\d）", t) for t in rk.files["保存时间"] if t)


def test_local_text_converts_to_this_machines_zone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        assert local_text(dt.datetime(2026, 11, 30, 12, 15, tzinfo=dt.timezone.utc)) == "2026-11-30 20:15（UTC+08:00）"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_heading_drops_county_form_and_parenthesis_from_the_title(ctx):
    s = replace(ctx.settings, title="台前县政务公开工作考核表（适用乡﹝镇﹞政府）")
    assert heading_of(s).title("排名") == "台前县 2026 年度政务公开工作考核排名"
    assert heading_of(replace(s, county="", title="表")).title("排名") == "2026 年度考核排名"


def test_a_ranking_written_before_its_sheets_changed_is_still_told_by_its_content(tmp_path):
    """The input folder may hold last year's ranking (six sheets), or one written before the 考核结果通报: it is
    still not read as a return."""
    import xlsxwriter

    from xlsx_assess.ranking import EARLIER_SHEETS, ISSUE12_SHEETS

    for k, sheets in enumerate((EARLIER_SHEETS, ISSUE12_SHEETS)):
        path = tmp_path / f"旧排名{k}.xlsx"
        wb = xlsxwriter.Workbook(path)
        for name in sheets:
            wb.add_worksheet(name)
        wb.close()
        assert is_ranking_workbook(path), sheets


def test_every_row_has_its_height_set_and_no_hash_makes_a_row_tall(nine_xlsx):
    path, rk = nine_xlsx
    for name in RANKING_SHEETS:
        rows = re.findall(r"<row [^>]*>", _part(path, sheet_part(path, name)))
        assert rows and all('customHeight="1"' in row for row in rows), name
    heights = [float(h) for h in re.findall(r'<row [^>]*ht="([\d.]+)"', _part(path, sheet_part(path, "文件处理结果")))]
    assert max(heights[4:]) <= 14 * 3 + 6              # a long file name wraps to three lines at most, a hash never
