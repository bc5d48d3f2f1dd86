"""Every check, with its code, sheet and cell, on small cases built here."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from conftest import codes_of, full_marks, patch_zip, sheet_part, write_filled

from xlsx_assess.checks import check_returned
from xlsx_assess.collect import check_paths, member_name
from xlsx_assess.layout import FORM_SHEET, GUIDE_SHEET, META_SHEET, form_layout
from xlsx_assess.reader import read_returned
from xlsx_assess.report import collection_json
from xlsx_assess.writer import build_workbook

GOOD = {"A01": 30.0, "A02": 10.0, "B01": 45.5, "S01": 2.0, "S02": 1.0}
NOTES = {"A01": "未研究部署，扣10分", "B01": "缺年度报告制度", "S01": "获省级通报表扬", "S02": "被市级通报一次"}


@pytest.fixture
def town(small_ctx):
    return small_ctx.townships[0]


@pytest.fixture
def lay(small_ctx, town):
    return form_layout(small_ctx.rubric, town, small_ctx.settings)


@pytest.fixture
def good(small_ctx, town, tmp_path) -> Path:
    return write_filled(small_ctx, town, tmp_path, GOOD, False, NOTES)


def check(path: Path, ctx):
    return check_returned(read_returned(path), ctx)


def test_layout_puts_scores_in_column_g(lay):
    assert lay.score_cell("A01") == "G5" and lay.score_cell("A02") == "G6"
    assert lay.subtotal_cell("组织领导") == "G7" and lay.score_cell("B01") == "G8"
    assert list(lay.total_cells) == ["基础得分", "加分", "减分", "最终得分"]


def test_a_good_file_is_clean_and_scored(good, small_ctx):
    res = check(good, small_ctx)
    assert codes_of(res) == []
    assert res.status == "ok"
    assert res.scores.base == 85.5 and res.scores.final == 86.5
    assert res.entries.notes == NOTES


def test_blank_form_reports_each_missing_base_line(small_ctx, town, tmp_path):
    path = build_workbook(small_ctx.rubric, town, small_ctx.settings, tmp_path / "blank.xlsx")
    res = check(path, small_ctx)
    zero = form_layout(small_ctx.rubric, town, small_ctx.settings).score_cell("S03")
    assert codes_of(res) == [("V401", FORM_SHEET, "G5"), ("V401", FORM_SHEET, "G6"), ("V401", FORM_SHEET, "G8"),
                             ("V418", FORM_SHEET, zero), ("V409", FORM_SHEET, "F2"), ("V410", FORM_SHEET, "I2")]


@pytest.mark.parametrize("raw, code", [
    ("abc", "V402"), ("-1", "V402"), (-1.0, "V403"), ("41", "V403"), ("#DIV/0!", "V412"), (" 12.5 ", "V404"), ("１２．５", "V405"),
])
def test_bad_inputs_are_located(small_ctx, town, tmp_path, raw, code):
    path = write_filled(small_ctx, town, tmp_path, {**GOOD, "A01": None}, False)
    lay = form_layout(small_ctx.rubric, town, small_ctx.settings)
    build_workbook(small_ctx.rubric, town, small_ctx.settings, path,
                   entries={lay.score_cell(k): v for k, v in GOOD.items() if k != "A01"} | {"G5": raw,
                            lay.reporter_cell: "张三", lay.phone_cell: "0393-1234567",
                            lay.score_cell("S03"): "否"})
    res = check(path, small_ctx)
    assert (code, FORM_SHEET, "G5") in codes_of(res)
    assert all(i.message.startswith("“A01 ") for i in res.report if i.cell == "G5")     # names the line, as V401
    if code in ("V404", "V405"):
        assert res.entries.values["A01"] == 12.5 and res.report.ok
    else:
        assert res.entries.values["A01"] is None and not res.report.ok


def test_number_out_of_range_and_cap(small_ctx, town, tmp_path):
    path = write_filled(small_ctx, town, tmp_path, {**GOOD, "S01": 4.0, "A02": 10.5}, False)
    assert [c for c in codes_of(check(path, small_ctx)) if c[0] == "V403"] == [
        ("V403", FORM_SHEET, "G6"), ("V403", FORM_SHEET, "G10")]


def test_totals_over_a_refused_score_are_folded_into_its_issue(small_ctx, town, tmp_path, lay):
    """The form counts 41 in a 40-point line, we do not: its subtotal, 基础得分, 最终得分 and 填报进度 differ
    because of the V403, which says so; a total that differs for another reason is still reported."""
    path = write_filled(small_ctx, town, tmp_path, {**GOOD, "A01": 41.0}, False)
    other = lay.subtotal_cell("制度建设")
    patch_zip(path, sheet_part(path, FORM_SHEET),
              lambda x: re.sub(rf'(<c r="{other}"[^>]*><f>.*?</f>)<v>[^<]*</v>', r"\1<v>99</v>", x))
    res = check(path, small_ctx)
    assert [c for c in codes_of(res) if c[0] in ("V403", "V408")] == [("V403", FORM_SHEET, "G5"),
                                                                       ("V408", FORM_SHEET, other)]
    assert "A01" in res.report.issues[0].message and "总分" in res.report.issues[0].message
    bonus = check(write_filled(small_ctx, town, tmp_path, {**GOOD, "S01": 4.0}, False, name="b.xlsx"), small_ctx)
    assert [c[0] for c in codes_of(bonus) if c[0] != "V417"] == ["V403"]   # 加分 and 最终得分 folded


def test_formula_typed_into_an_input_cell(good, small_ctx):
    patch_zip(good, sheet_part(good, FORM_SHEET),
              lambda x: re.sub(r'<c r="G5"( s="\d+")?( t="n")?><v>30</v></c>', r'<c r="G5"\1><f>10*3</f><v>30</v></c>', x))
    assert ("V406", FORM_SHEET, "G5") in codes_of(check(good, small_ctx))


def test_zero_line_answers(small_ctx, town, tmp_path, lay):
    zeroed = check(write_filled(small_ctx, town, tmp_path, GOOD, True, name="z.xlsx"), small_ctx)
    assert ("V413", FORM_SHEET, lay.score_cell("S03")) in codes_of(zeroed) and zeroed.scores.final == 0
    blank = check(write_filled(small_ctx, town, tmp_path, GOOD, None, name="b.xlsx"), small_ctx)
    assert blank.report.ok and not blank.scores.zeroed
    path = tmp_path / "bad.xlsx"
    build_workbook(small_ctx.rubric, town, small_ctx.settings, path,
                   entries={**{lay.score_cell(k): v for k, v in GOOD.items()}, lay.score_cell("S03"): "也许"})
    assert ("V407", FORM_SHEET, lay.score_cell("S03")) in codes_of(check(path, small_ctx))


def test_changed_points_are_reported_by_cell(good, small_ctx):
    patch_zip(good, sheet_part(good, FORM_SHEET), lambda x: x.replace('<c r="F5" s="4"><v>40</v>', '<c r="F5" s="4"><v>60</v>'))
    assert ("S303", FORM_SHEET, "F5") in codes_of(check(good, small_ctx))


def test_locked_cell_given_an_unlocked_style_is_reported(good, small_ctx):
    def unlock(xml):        # the style of the input cell G5 put on the points cell F5, value unchanged
        style = re.search(r'<c r="G5" s="(\d+)"', xml).group(1)
        return re.sub(r'<c r="F5" s="\d+"', f'<c r="F5" s="{style}"', xml)

    patch_zip(good, sheet_part(good, FORM_SHEET), unlock)
    assert ("S307", FORM_SHEET, "F5") in codes_of(check(good, small_ctx))


def test_points_cell_turned_into_true_is_reported(ctx, tmp_path):
    """TRUE equals 1 to Python, not to the check: a 1-point cell made a boolean is still a change."""
    town = ctx.townships[0]
    path = write_filled(ctx, town, tmp_path, full_marks(ctx.rubric), False)
    lay = form_layout(ctx.rubric, town, ctx.settings)
    ref = next(c.ref for c in lay.locked() if c.sheet == FORM_SHEET and c.value == 1 and c.formula is None)
    patch_zip(path, sheet_part(path, FORM_SHEET),
              lambda x: re.sub(rf'<c r="{ref}"( s="\d+")?><v>1</v>', rf'<c r="{ref}"\1 t="b"><v>1</v>', x))
    assert ("S303", FORM_SHEET, ref) in codes_of(check(path, ctx))


def test_removed_formula_is_reported(good, small_ctx, lay):
    ref = lay.total_cells["最终得分"]
    patch_zip(good, sheet_part(good, FORM_SHEET), lambda x: re.sub(rf'(<c r="{ref}"[^>]*>)<f>.*?</f>', r"\1", x))
    assert ("S304", FORM_SHEET, ref) in codes_of(check(good, small_ctx))


def test_removed_protection_and_validation_are_warnings(good, small_ctx):
    patch_zip(good, sheet_part(good, FORM_SHEET),
              lambda x: re.sub(r"<dataValidations.*?</dataValidations>", "", re.sub(r"<sheetProtection[^>]*/>", "", x)))
    res = check(good, small_ctx)
    assert ("S305", FORM_SHEET, "") in codes_of(res) and ("S306", FORM_SHEET, "F2") in codes_of(res)
    assert res.report.ok    # the values themselves are still checked, so the file is usable


def test_identity_edited_to_another_township(good, small_ctx):
    patch_zip(good, "docProps/custom.xml", lambda x: x.replace("410927100", "410927101"))
    res = check(good, small_ctx)
    assert ("I206", META_SHEET, "") in codes_of(res)


def test_file_name_that_names_another_township_warns(small_ctx, town, tmp_path):
    path = write_filled(small_ctx, town, tmp_path, GOOD, False, NOTES, name="侯庙镇考核表.xlsx")
    assert ("I205", "", "") in codes_of(check(path, small_ctx))


def test_other_year_and_other_rubric(small_ctx, ctx, town, tmp_path):
    old = write_filled(type(small_ctx)(small_ctx.rubric, small_ctx.settings.with_year(2025), small_ctx.townships),
                       town, tmp_path, GOOD, False)
    assert [c for c, *_ in codes_of(check(old, small_ctx))] == ["I203"]
    other_rubric = write_filled(ctx, ctx.townships[0], tmp_path, full_marks(ctx.rubric), False, name="o.xlsx")
    assert [c for c, *_ in codes_of(check(other_rubric, small_ctx))] == ["I204"]


def test_township_not_on_roster(small_ctx, ctx, tmp_path):
    stranger = ctx.townships[5]
    path = write_filled(type(small_ctx)(small_ctx.rubric, small_ctx.settings, [stranger]), stranger, tmp_path, GOOD, False)
    assert [c for c, *_ in codes_of(check(path, small_ctx))] == ["I202"]


def test_not_our_form(tmp_path, small_ctx):
    import xlsxwriter

    wb = xlsxwriter.Workbook(tmp_path / "x.xlsx")
    wb.add_worksheet("Sheet1").write("A1", "hello")
    wb.close()
    assert [c for c, *_ in codes_of(check(tmp_path / "x.xlsx", small_ctx))] == ["I201"]


def test_cached_total_that_disagrees_warns(good, small_ctx, lay):
    ref = lay.total_cells["最终得分"]
    patch_zip(good, sheet_part(good, FORM_SHEET),
              lambda x: re.sub(rf'(<c r="{ref}"[^>]*><f>.*?</f>)<v>[^<]*</v>', r"\1<v>99</v>", x))
    res = check(good, small_ctx)
    assert ("V408", FORM_SHEET, ref) in codes_of(res) and res.scores.final == 86.5


# -- collection ---------------------------------------------------------------------------------

def test_collection_rules(small_ctx, tmp_path):
    a, b = small_ctx.townships
    first = write_filled(small_ctx, a, tmp_path, GOOD, False, NOTES, name="a-old.xlsx")
    import os
    os.utime(first, (1_700_000_000, 1_700_000_000))
    newer = write_filled(small_ctx, a, tmp_path, {**GOOD, "A01": 40.0}, False, NOTES, name="a-new.xlsx")
    (tmp_path / "a-copy.xlsx").write_bytes(newer.read_bytes())
    (tmp_path / "~$a-new.xlsx").write_bytes(b"lock")
    (tmp_path / "Thumbs.db").write_bytes(b"junk")
    coll = check_paths([tmp_path], small_ctx)
    roles = {Path(r.name).name: r.role for r in coll.results}
    assert roles == {"a-copy.xlsx": "used", "a-new.xlsx": "duplicate", "a-old.xlsx": "superseded"} or roles == {
        "a-copy.xlsx": "duplicate", "a-new.xlsx": "used", "a-old.xlsx": "superseded"}
    assert [t.code for t in coll.missing] == [b.code]
    assert {Path(s.name).name for s in coll.skipped} == {"~$a-new.xlsx", "Thumbs.db"}
    s = coll.summary()
    assert s["received"] == 5 == s["accepted"] + s["excluded"] + s["skipped"]


def test_same_entries_as_another_township(small_ctx, tmp_path):
    a, b = small_ctx.townships
    write_filled(small_ctx, a, tmp_path, GOOD, False, NOTES)
    write_filled(small_ctx, b, tmp_path, GOOD, False, NOTES)
    coll = check_paths([tmp_path], small_ctx)
    assert len(coll.results) == 2
    assert all(("C504", "", "") in codes_of(r) for r in coll.results)
    assert not coll.accepted


def test_zip_with_gbk_names(small_ctx, tmp_path):
    a, b = small_ctx.townships
    src = write_filled(small_ctx, a, tmp_path, GOOD, False, NOTES, name="城关镇.xlsx")
    archive = tmp_path / "收回.zip"
    gbk = "城关镇.xlsx".encode("gbk")
    placeholder = b"X" * (len(gbk) - 5) + b".xlsx"        # Python would flag a non-ASCII name as UTF-8
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo(placeholder.decode(), date_time=(2027, 1, 10, 9, 0, 0)), src.read_bytes())
        zf.writestr("__MACOSX/._城关镇.xlsx", b"junk")
    archive.write_bytes(archive.read_bytes().replace(placeholder, gbk))   # as Chinese Windows writes it
    with zipfile.ZipFile(archive) as zf:
        assert not zf.infolist()[0].flag_bits & 0x800
        assert member_name(zf.infolist()[0]) == "城关镇.xlsx"
    coll = check_paths([archive], small_ctx)
    assert [r.name for r in coll.results] == [f"{archive} › 城关镇.xlsx"]
    assert coll.results[0].accepted and len(coll.skipped) == 1


def test_check_json_shape(good, small_ctx):
    data = json.loads(json.dumps(collection_json(check_paths([good.parent], small_ctx)), ensure_ascii=False))
    assert set(data) >= {"files", "missing", "summary"}
    f = data["files"][0]
    assert set(f) >= {"path", "township_code", "township", "status", "issues"}
    assert data["missing"] == [{"code": "410927101", "township": "侯庙镇"}]
    assert set(data["summary"]) >= {"received", "ok", "warning", "error", "skipped", "missing"}


def test_guide_sheet_text_is_compared_too(good, small_ctx):
    patch_zip(good, "xl/sharedStrings.xml", lambda x: x.replace("下发单位", "下发单位（改）", 1))
    assert any(c[:2] == ("S303", GUIDE_SHEET) for c in codes_of(check(good, small_ctx)))


def test_item_scores_behave_as_the_dict_they_replace():
    import pickle

    from xlsx_assess.checks import ItemScores

    values = {"A01": 12.5, "B01": None}
    scores = ItemScores.of(("A01", "A02", "B01"), values)
    assert scores == values and dict(scores) == values and len(scores) == 2
    assert scores.get("A02") is None and "A02" not in scores and scores["B01"] is None
    with pytest.raises(KeyError):
        scores["A02"]
    again = pickle.loads(pickle.dumps(scores))
    assert again == values and again._index is scores._index      # one index for every file of a rubric


# -- a file's outcome in one place ------------------------------------------------------------------

def test_a_verdict_answers_from_its_head(small_ctx):
    """Status, role and acceptance are the head's; every way of adding an issue counts it there."""
    import pickle

    from xlsx_assess.checks import FileResult
    from xlsx_assess.issues import Report, issue
    from xlsx_assess.scoring import score

    def agree(res: FileResult) -> None:
        plain = Report(list(res.report))
        assert res.status == res.head.status == res.report.status == plain.status
        assert res.head.issues == len(res.report)
        assert res.accepted == res.head.accepted == (res.role == "used" and plain.ok and res.scores is not None)

    res = FileResult("城关镇.xlsx")
    agree(res)
    res.scores = score(small_ctx.rubric, GOOD, False, small_ctx.settings)
    agree(res)
    assert res.accepted and res.status == "ok"
    res.report.add(issue("V409"))
    agree(res)
    assert res.accepted and res.status == "warning"
    res.report.extend([issue("V410"), issue("V413")])
    res.add("F104", detail="x")
    agree(res)
    assert not res.accepted and res.status == "error"
    again = pickle.loads(pickle.dumps(res))
    agree(again)
    assert again.report.head is again.head and again.head == res.head
    seeded = FileResult("a.xlsx", report=[issue("V409")], scores=res.scores, role="superseded")
    agree(seeded)
    assert seeded.status == "warning" and not seeded.accepted


@pytest.mark.parametrize("keep", [0, 200], ids=["verdicts on disk", "verdicts kept"])
def test_heads_and_verdicts_agree_after_the_collection_rules(small_ctx, tmp_path, monkeypatch, keep):
    """C501, C502 and C504 go to a verdict's head whether the verdict is kept or waits on disk; a verdict
    read back is a copy under a copy of its head, and changing it changes nothing kept."""
    import os

    from xlsx_assess import collect
    from xlsx_assess.issues import issue

    monkeypatch.setattr(collect, "KEEP_RESULTS", keep)
    a, b = small_ctx.townships
    old = write_filled(small_ctx, a, tmp_path, {**GOOD, "A01": 20.0}, False, NOTES, name="a-old.xlsx")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    new = write_filled(small_ctx, a, tmp_path, GOOD, False, NOTES, name="a-new.xlsx")
    (tmp_path / "a-copy.xlsx").write_bytes(new.read_bytes())
    write_filled(small_ctx, b, tmp_path, GOOD, False, NOTES, name="b.xlsx")
    coll = check_paths([tmp_path], small_ctx, workers=1)
    assert {i.code for r in coll.results for i in r.report} >= {"C501", "C502", "C504"}
    for k, h in enumerate(coll.heads):
        r = coll.results[k]
        assert (r.head is h) == bool(keep)
        assert (h.name, h.status, h.role, h.accepted, h.issues) == (r.name, r.status, r.role, r.accepted, len(r.report))
    if not keep:
        counted = coll.heads[0].issues
        copy = coll.results[0]
        copy.report.add(issue("F104", detail="x"))
        assert copy.status == "error" and copy.head.issues == counted + 1
        assert coll.heads[0].issues == counted == len(coll.results[0].report)
    monkeypatch.setattr(collect, "KEEP_RESULTS", 200 - keep)
    other = check_paths([tmp_path], small_ctx, workers=1)
    assert collection_json(other) == collection_json(coll)
