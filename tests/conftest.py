"""Shared fixtures: the bundled context, generated workbooks, filled workbooks, LibreOffice."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import lo  # noqa: E402  (tests/lo.py: drives LibreOffice headless)
from fills import full_marks, random_values, write_filled  # noqa: E402,F401  (tests/fills.py, shared with bench/)

from xlsx_assess.checks import Context  # noqa: E402
from xlsx_assess.rubric import load_rubric, parse_rubric  # noqa: E402
from xlsx_assess.settings import Township, load_settings, load_townships  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# A small rubric written inline: two categories, a bonus, a deduction and the zero line.
SMALL_RUBRIC = """id,category,indicator,criterion,kind,points,guide,note
A01,组织领导,主要负责人亲自抓,听取专题汇报,base,40,未听取不得分,
A02,组织领导,主要负责人亲自抓,发布解读,base,10,,
B01,制度建设,信息公开制度,建立制度,base,50,缺一项扣10,
S01,特别项,特别加分项,正面报道,bonus,3,+1/篇,
S02,特别项,特别减分项,负面报道,deduction,5,-1/篇,
S03,特别项,直接归零项,弄虚作假,zero,0,,
"""


@pytest.fixture(scope="session")
def ctx() -> Context:
    return Context(load_rubric(), load_settings(), load_townships())


def small_ctx_for_probe() -> Context:
    """The small context, for a test's own subprocess."""
    rubric, report = parse_rubric(SMALL_RUBRIC)
    assert rubric is not None, report.issues
    return Context(rubric, load_settings(), [Township("410927100", "城关镇"), Township("410927101", "侯庙镇")])


@pytest.fixture(scope="session")
def small_ctx() -> Context:
    return small_ctx_for_probe()


def needs_libreoffice() -> None:
    reason = lo.available()
    if reason:
        pytest.skip(f"LibreOffice unavailable: {reason}")


def patch_zip(path: Path, member: str, edit, out: Path | None = None) -> Path:
    """Rewrite one part of a workbook's zip with `edit(text) -> text`: surgical tampering for tests."""
    import zipfile

    out = out or path
    with zipfile.ZipFile(path) as zf:
        parts = [(i, zf.read(i.filename)) for i in zf.infolist()]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in parts:
            if info.filename == member:
                new = edit(data.decode("utf-8"))
                assert new != data.decode("utf-8"), f"edit changed nothing in {member}"
                data = new.encode("utf-8")
            zf.writestr(info, data)
    return out


def sheet_part(path: Path, sheet: str) -> str:
    """The zip member holding a sheet, e.g. 'xl/worksheets/sheet2.xml'."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as zf:
        wb = zf.read("xl/workbook.xml").decode()
        rels = zf.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(rf'<sheet [^>]*name="{sheet}"[^>]*r:id="(rId\d+)"', wb).group(1)
    return "xl/" + re.search(rf'Id="{rid}"[^>]*Target="([^"]+)"', rels).group(1)


def codes_of(result) -> list[tuple[str, str, str]]:
    return [(i.code, i.sheet, i.cell) for i in result.report]
