"""Shared fixtures: the bundled context, generated workbooks, filled workbooks, LibreOffice."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import lo  # noqa: E402  (tests/lo.py: drives LibreOffice headless)

from xlsx_assess.checks import Context  # noqa: E402
from xlsx_assess.layout import entry_cells, form_layout  # noqa: E402
from xlsx_assess.rubric import Rubric, load_rubric, parse_rubric  # noqa: E402
from xlsx_assess.settings import Township, load_settings, load_townships  # noqa: E402
from xlsx_assess.writer import build_workbook, file_name  # noqa: E402

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


def random_values(rubric: Rubric, rng: random.Random, blanks: float = 0.0) -> dict[str, float | None]:
    """Valid random scores: halves and quarters between 0 and each line's points, some at the cap."""
    values: dict[str, float | None] = {}
    for item in rubric.items:
        if item.kind == "zero":
            continue
        if rng.random() < blanks:
            values[item.id] = None
            continue
        choice = rng.random()
        if choice < 0.2:
            values[item.id] = item.points
        elif choice < 0.3:
            values[item.id] = 0.0
        else:
            values[item.id] = round(rng.uniform(0, item.points) * 4) / 4
    return values


def write_filled(ctx: Context, township: Township, folder: Path, values=None, zeroed=None, notes=None,
                 reporter="张三", phone="13800000000", name: str | None = None) -> Path:
    """A returned workbook as our writer would fill it (cached totals correct)."""
    lay = form_layout(ctx.rubric, township, ctx.settings)
    entries = entry_cells(lay, values, zeroed, notes, None, reporter, phone)
    path = folder / (name or file_name(township, ctx.settings.year))
    return build_workbook(ctx.rubric, township, ctx.settings, path, entries=entries)


def full_marks(rubric: Rubric) -> dict[str, float]:
    return {i.id: (i.points if i.kind == "base" else 0.0) for i in rubric.items if i.kind != "zero"}


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
