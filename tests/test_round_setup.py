"""A round's setup: 考核设置.xlsx written and read back (also through LibreOffice, and as WPS users edit it),
`init`, rubric versions and their differences, `generate` inside a round."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import SMALL_RUBRIC, lo, needs_libreoffice
from typer.testing import CliRunner

from xlsx_assess.changes import compatible, describe, diff_rubrics
from xlsx_assess.checks import Context
from xlsx_assess.cli import app
from xlsx_assess.issues import AssessError
from xlsx_assess.round import (find_round, generate_round, init_round, load_round_context, open_round, read_marker,
                               store_rubric, stored_rubric, stored_rubrics)
from xlsx_assess.rubric import Rubric, parse_rubric
from xlsx_assess.settings import Settings, load_settings, load_townships
from xlsx_assess.setup_book import (RUBRIC_SHEET, SETTING_ROWS, SETTINGS_SHEET, read_setup_book, write_setup_book)

runner = CliRunner()
ROW = {r.key: n for n, r in enumerate(SETTING_ROWS, start=2)}          # 考核参数 row of each setting
EXTRA = len(SETTING_ROWS) + 2                                            # the first row after them


def problems(setup) -> list[tuple[str, str, int | None, str]]:
    return [(i.code, i.sheet, i.line, i.column) for i in setup.report.issues]


def shown(result) -> str:
    """What the console showed, its wrapping undone."""
    return " ".join(result.output.split())


def write(ctx: Context, path: Path) -> Path:
    return write_setup_book(ctx.rubric, ctx.townships, ctx.settings, path)


def edit(path: Path, cells: dict[tuple[str, str], object], out: Path | None = None) -> Path:
    """Set cells with openpyxl (tests only): a string stays a string, as WPS keeps text typed in a text cell."""
    import openpyxl

    wb = openpyxl.load_workbook(path)
    for (sheet, ref), value in cells.items():
        wb[sheet][ref].value = value
    wb.save(out or path)
    return out or path


def with_points(rubric: Rubric, **points: float) -> Rubric:
    return Rubric(tuple(replace(i, points=points[i.id]) if i.id in points else i for i in rubric.items))


# -- the setup workbook ---------------------------------------------------------------------------

def test_the_setup_book_reads_back_as_the_context_it_was_written_from(ctx, small_ctx, tmp_path):
    for c in (ctx, small_ctx):
        setup = read_setup_book(write(c, tmp_path / "考核设置.xlsx"))
        assert problems(setup) == [] and setup.context() == c


def test_every_setting_has_a_row():
    assert {r.key for r in SETTING_ROWS} == set(Settings.__dataclass_fields__)


def test_the_setup_book_is_deterministic(ctx, tmp_path):
    assert write(ctx, tmp_path / "a.xlsx").read_bytes() == write(ctx, tmp_path / "b.xlsx").read_bytes()


def test_values_as_wps_users_leave_them_read_as_the_csv_does(small_ctx, tmp_path):
    path = edit(write(small_ctx, tmp_path / "考核设置.xlsx"), {
        (RUBRIC_SHEET, "F2"): "40分", (RUBRIC_SHEET, "F3"): " 10 ", (RUBRIC_SHEET, "E2"): "基础项 ",
        (RUBRIC_SHEET, "A3"): "A02  ", (RUBRIC_SHEET, "F4"): "５０",
        (SETTINGS_SHEET, f"B{ROW['year']}"): "2026", (SETTINGS_SHEET, f"B{ROW['bonus_cap']}"): "3分",
        (SETTINGS_SHEET, f"B{ROW['score_decimals']}"): 2.0,
        (SETTINGS_SHEET, f"B{ROW['grades']}"): "优秀≥90; 良好 80分\n一般：60，较差 0",
        ("乡镇名单", "A2"): 410927100,
    })
    setup = read_setup_book(path)
    assert problems(setup) == []
    expected = replace(small_ctx, settings=replace(small_ctx.settings, bonus_cap=3.0))
    assert setup.context() == expected


def test_problems_are_located_by_sheet_row_and_column(small_ctx, tmp_path):
    path = edit(write(small_ctx, tmp_path / "考核设置.xlsx"), {
        (RUBRIC_SHEET, "E3"): "奖励", (RUBRIC_SHEET, "F4"): -1, (RUBRIC_SHEET, "C5"): None,
        (SETTINGS_SHEET, f"B{ROW['year']}"): 3000, (SETTINGS_SHEET, f"B{ROW['grades']}"): "优秀；良好 80",
        (SETTINGS_SHEET, f"A{EXTRA}"): "颜色", (SETTINGS_SHEET, f"B{EXTRA}"): "红",
        ("乡镇名单", "A3"): "410927100",
    })
    assert problems(read_setup_book(path)) == [
        ("R104", RUBRIC_SHEET, 3, "类型"), ("R106", RUBRIC_SHEET, 4, "分值"), ("R109", RUBRIC_SHEET, 5, "一级指标"),
        ("R202", "乡镇名单", 3, "代码"),
        ("R201", SETTINGS_SHEET, EXTRA, "参数"), ("R201", SETTINGS_SHEET, ROW["year"], "值"),
        ("R201", SETTINGS_SHEET, ROW["grades"], "值")]
    with pytest.raises(AssessError):
        read_setup_book(path).context()


def test_a_setting_row_deleted_is_r201_naming_it(small_ctx, tmp_path):
    import openpyxl

    path = write(small_ctx, tmp_path / "考核设置.xlsx")
    wb = openpyxl.load_workbook(path)
    wb[SETTINGS_SHEET].delete_rows(ROW["year"])
    wb.save(path)
    assert problems(read_setup_book(path)) == [("R201", SETTINGS_SHEET, None, "考核年度")]


def test_a_missing_sheet_or_a_file_that_is_no_workbook(small_ctx, tmp_path):
    import openpyxl

    path = write(small_ctx, tmp_path / "考核设置.xlsx")
    wb = openpyxl.load_workbook(path)
    del wb["乡镇名单"]
    wb.save(path)
    assert [(i.code, i.file) for i in read_setup_book(path).report.issues] == [("R205", "考核设置.xlsx")]
    path.write_text("not a workbook")
    assert [i.code for i in read_setup_book(path).report.issues] == ["R204"]
    assert [i.code for i in read_setup_book(tmp_path / "nowhere.xlsx").report.issues] == ["R204"]


def test_a_sheet_reaching_far_is_refused_before_python_calamine_reads_it(small_ctx, tmp_path):
    from conftest import patch_zip, sheet_part

    path = write(small_ctx, tmp_path / "考核设置.xlsx")
    patch_zip(path, sheet_part(path, "乡镇名单"), lambda xml: xml.replace(
        "</sheetData>", '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row></sheetData>'))
    [bad] = read_setup_book(path).report.issues
    assert bad.code == "R204" and "XFD1048576" in bad.message


@pytest.mark.libreoffice
def test_the_setup_book_through_libreoffice(ctx, tmp_path):
    """LibreOffice opens and saves it: the same Context comes back. Typed in as a person would (text in
    number cells, "2分"), it still reads the same, and LibreOffice's own validation marks what is bad."""
    needs_libreoffice()
    book = write(ctx, tmp_path / "考核设置.xlsx")
    saved, typed, bad = (tmp_path / n for n in ("saved.xlsx", "typed.xlsx", "bad.xlsx"))
    pdf = tmp_path / "pdf" / "考核设置.pdf"
    pdf.parent.mkdir()
    jobs = [{"in": book, "out": saved, "format": "xlsx"},
            {"in": book, "out": typed, "format": "xlsx",
             "set": [[RUBRIC_SHEET, "F2", "1.5分"], [RUBRIC_SHEET, "E2", " 基础项"],
                     [SETTINGS_SHEET, f"B{ROW['year']}", str(ctx.settings.year)],
                     [SETTINGS_SHEET, f"B{ROW['deduction_cap']}", "10 "]]},
            {"in": book, "out": bad, "format": "xlsx", "invalid": [RUBRIC_SHEET, SETTINGS_SHEET],
             "set": [[RUBRIC_SHEET, "E3", "奖励"], [RUBRIC_SHEET, "F4", -1], [SETTINGS_SHEET, f"B{ROW['year']}", 3000]]},
            {"in": book, "out": pdf, "format": "pdf"}]
    results = lo.run_jobs(jobs)
    assert all(r["ok"] for r in results), results
    for path in (saved, typed):
        setup = read_setup_book(path)
        assert problems(setup) == [] and setup.context() == ctx
    assert {"E3", "F4"} <= set(results[2]["invalid"][RUBRIC_SHEET])
    assert f"B{ROW['year']}" in results[2]["invalid"][SETTINGS_SHEET]
    assert problems(read_setup_book(bad))[:2] == [("R104", RUBRIC_SHEET, 3, "类型"), ("R106", RUBRIC_SHEET, 4, "分值")]
    _assert_prints_right(pdf, ctx)


def _assert_prints_right(pdf: Path, ctx: Context) -> None:
    """Every page of the printed rubric repeats the header; every line and setting is on some page."""
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) not installed")
    pages = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                           check=True).stdout.split("\f")
    rubric_pages = [p for p in pages if "评分细则 第" in p]
    assert len(rubric_pages) >= 2 and all("二级指标" in p and "分值" in p for p in rubric_pages)
    text = "".join(pages)
    assert all(i.id in text for i in ctx.rubric.items)
    assert all(t.name in text for t in ctx.townships)
    assert all(r.label in text for r in SETTING_ROWS) and "基础项分值合计：100" in text
    if shutil.which("pdftoppm"):                 # the pictures a person looks at (tmp_path keeps them)
        subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(pdf.parent / "page")], check=True)
        assert len(list(pdf.parent.glob("page-*.png"))) == len(pages) - (pages[-1].strip() == "")


# -- CSV and TOML as people write them ------------------------------------------------------------

def test_a_roster_with_chinese_headers_and_a_bom(tmp_path):
    path = tmp_path / "乡镇.csv"
    path.write_bytes("代码,名称,类别\n410927100,城关镇,镇\n".encode("utf-8-sig"))
    assert [(t.code, t.name, t.kind) for t in load_townships(path)] == [("410927100", "城关镇", "镇")]


@pytest.mark.parametrize("line", ["deadline = 2027年1月15日", "contact_phone = “0393-1234567”", "year ＝ 2026",
                                  'title = "考核', "bonus_cap 5"])
def test_a_settings_file_toml_cannot_read_is_r201_in_chinese_at_its_line(tmp_path, line):
    path = tmp_path / "settings.toml"
    path.write_text(f"# 设置\ncounty = \"台前县\"\n{line}\n", encoding="utf-8")
    with pytest.raises(AssessError) as exc:
        load_settings(path)
    [bad] = exc.value.report.issues
    assert (bad.code, bad.line) == ("R201", 3)
    assert "at line" not in bad.message and "Invalid" not in bad.message and "Expected" not in bad.message


def test_a_date_without_quotes_is_r201_saying_so(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("deadline = 2027-01-15\n", encoding="utf-8")
    with pytest.raises(AssessError) as exc:
        load_settings(path)
    [bad] = exc.value.report.issues
    assert (bad.code, bad.line, bad.column) == ("R201", 1, "deadline") and "datetime" not in bad.message


# -- rubric versions ------------------------------------------------------------------------------

@pytest.fixture()
def small_rubric() -> Rubric:
    return parse_rubric(SMALL_RUBRIC)[0]


def test_diff_names_each_change_by_line(small_rubric):
    new = with_points(small_rubric, A01=35.0, A02=15.0)
    new = Rubric(tuple(replace(i, guide="新标准") if i.id == "B01" else i for i in new.items if i.id != "S02")
                 + (replace(small_rubric.items[0], id="S09", category="特别项", kind="bonus", points=2.0),))
    changes = diff_rubrics(small_rubric, new)
    assert [(c.id, c.what) for c in changes] == [("S02", "removed"), ("A01", "points"), ("A02", "points"),
                                                  ("B01", "guide"), ("S09", "added")]
    assert changes[1].text == "A01 分值 40 → 35"
    assert not compatible(small_rubric, new)
    assert "A01 分值 40 → 35" in describe(changes)


def test_wording_only_is_compatible_and_kind_or_order_is_not(small_rubric):
    items = small_rubric.items
    worded = Rubric(tuple(replace(i, criterion=i.criterion + "（修订）") for i in items))
    assert compatible(small_rubric, worded) and all(c.wording for c in diff_rubrics(small_rubric, worded))
    kind = Rubric(tuple(replace(i, kind="deduction") if i.id == "S01" else i for i in items))
    assert [c.text for c in diff_rubrics(small_rubric, kind)] == ["S01 类型 加分项 → 减分项"]
    assert not compatible(small_rubric, kind)
    moved = Rubric((items[1], items[0], *items[2:]))
    assert [c.what for c in diff_rubrics(small_rubric, moved)] == ["order"] and not compatible(small_rubric, moved)
    assert diff_rubrics(small_rubric, small_rubric) == [] and compatible(small_rubric, small_rubric)


# -- a round --------------------------------------------------------------------------------------

def test_init_makes_the_round_and_refuses_to_make_it_twice(ctx, tmp_path):
    rnd = init_round(tmp_path / "2026考核")
    assert all(p.is_dir() for p in (rnd.sent, rnd.returned, rnd.results, rnd.rubrics))
    marker = read_marker(rnd)
    assert marker["year"] == ctx.settings.year and marker["tool"] == "xlsx-assess" and "+" in marker["created"]
    assert load_round_context(rnd) == ctx
    assert find_round(rnd.returned) == rnd and find_round(rnd.root) == rnd
    assert find_round(rnd.returned / "some" / "where") is None              # a path that is not there
    with pytest.raises(AssessError) as exc:
        init_round(rnd.root)
    assert [i.code for i in exc.value.report.issues] == ["R206"]


def test_init_from_the_previous_round_adds_a_year_and_files_override(small_ctx, tmp_path):
    first = init_round(tmp_path / "2026")
    write(small_ctx, first.setup)
    second = init_round(tmp_path / "2027", from_round=first.root)
    assert load_round_context(second) == replace(small_ctx, settings=small_ctx.settings.with_year(
        small_ctx.settings.year + 1))
    rubric_file = tmp_path / "细则.csv"
    rubric_file.write_text(SMALL_RUBRIC.replace(",40,", ",45,").replace(",10,", ",5,"), encoding="utf-8")
    third = init_round(tmp_path / "2030", year=2030, from_round=second.root, rubric=rubric_file)
    got = load_round_context(third)
    assert got.settings.year == 2030 and got.townships == small_ctx.townships
    assert [c.text for c in diff_rubrics(small_ctx.rubric, got.rubric)] == ["A01 分值 40 → 45", "A02 分值 10 → 5"]


def test_outside_a_round_is_r207(tmp_path):
    with pytest.raises(AssessError) as exc:
        open_round(tmp_path)
    assert [i.code for i in exc.value.report.issues] == ["R207"]
    with pytest.raises(AssessError) as exc:
        init_round(tmp_path / "new", from_round=tmp_path)
    assert [i.code for i in exc.value.report.issues] == ["R207"]
    assert not (tmp_path / "new").exists()


def test_rubric_versions_are_kept_by_fingerprint(small_ctx, tmp_path):
    rnd = init_round(tmp_path / "r")
    path = store_rubric(rnd, small_ctx.rubric)
    assert path.name == f"{small_ctx.rubric.fingerprint}.csv" and path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert stored_rubric(rnd, small_ctx.rubric.fingerprint) == small_ctx.rubric
    assert store_rubric(rnd, small_ctx.rubric) == path and list(stored_rubrics(rnd)) == [small_ctx.rubric.fingerprint]
    assert stored_rubric(rnd, "0" * 64) is None


def test_generate_in_a_round_keeps_its_version_and_will_not_overwrite_another(small_ctx, tmp_path):
    rnd = init_round(tmp_path / "r")
    write(small_ctx, rnd.setup)
    done = generate_round(rnd)
    assert sorted(p.name for p in rnd.sent.iterdir()) == sorted(g.path.name for g in done) and len(done) == 2
    assert list(stored_rubrics(rnd)) == [small_ctx.rubric.fingerprint]
    generate_round(rnd)                                      # the same version again: fine
    changed = with_points(small_ctx.rubric, A01=35.0, A02=15.0)
    write_setup_book(changed, small_ctx.townships, small_ctx.settings, rnd.setup)
    before = {p: p.read_bytes() for p in rnd.sent.iterdir()}
    with pytest.raises(AssessError) as exc:
        generate_round(rnd)
    [bad] = exc.value.report.issues
    assert bad.code == "R208" and "A01 分值 40 → 35" in bad.message and small_ctx.rubric.fingerprint not in bad.message
    assert {p: p.read_bytes() for p in rnd.sent.iterdir()} == before
    generate_round(rnd, force=True)
    assert set(stored_rubrics(rnd)) == {small_ctx.rubric.fingerprint, changed.fingerprint}
    assert {p: p.read_bytes() for p in rnd.sent.iterdir()} != before


# -- the commands ---------------------------------------------------------------------------------

def test_the_cli_runs_a_round_without_options(small_ctx, tmp_path, monkeypatch):
    result = runner.invoke(app, ["init", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["init", str(tmp_path / "r")]).exit_code == 2
    rnd = find_round(tmp_path / "r")
    write(small_ctx, rnd.setup)
    monkeypatch.chdir(rnd.returned)
    result = runner.invoke(app, ["generate"])
    assert result.exit_code == 0, result.output
    assert len(list(rnd.sent.glob("*.xlsx"))) == 2
    assert runner.invoke(app, ["generate", "--rubric", "x.csv"]).exit_code == 2
    write_setup_book(with_points(small_ctx.rubric, A01=35.0, A02=15.0), small_ctx.townships, small_ctx.settings,
                     rnd.setup)
    refused = runner.invoke(app, ["generate"])
    assert refused.exit_code == 2 and "R208" in refused.output and "A01 分值 40 → 35" in shown(refused)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["generate", "--round", str(rnd.root), "--force"]).exit_code == 0
    outside = runner.invoke(app, ["generate"])
    assert outside.exit_code == 2 and "R207" in outside.output


def test_rubric_diff_exit_codes(small_ctx, tmp_path):
    old = tmp_path / "old.csv"
    old.write_text(SMALL_RUBRIC, encoding="utf-8")
    book = write(small_ctx, tmp_path / "考核设置.xlsx")
    assert runner.invoke(app, ["rubric", "diff", str(old), str(book)]).exit_code == 0
    new = tmp_path / "new.csv"
    new.write_text(SMALL_RUBRIC.replace(",40,", ",35,").replace(",10,", ",15,"), encoding="utf-8")
    result = runner.invoke(app, ["rubric", "diff", str(book), str(new)])
    assert result.exit_code == 1 and "A01 分值 40 → 35" in shown(result)
    assert runner.invoke(app, ["rubric", "diff", str(old), str(tmp_path / "nowhere.csv")]).exit_code == 2
    assert runner.invoke(app, ["rubric", "diff", str(old)]).exit_code == 2
    assert runner.invoke(app, ["rubric", str(book)]).exit_code == 0


def test_the_marker_is_json_with_the_year(tmp_path):
    rnd = init_round(tmp_path / "r", year=2031)
    assert json.loads(rnd.marker.read_text(encoding="utf-8"))["year"] == 2031
    assert load_round_context(rnd).settings.year == 2031


def test_a_setting_changed_after_the_forms_went_out_is_r209_naming_it(small_ctx, tmp_path):
    rnd = init_round(tmp_path / "r")
    write(small_ctx, rnd.setup)
    generate_round(rnd)
    generate_round(rnd)                                      # the same setup again: fine
    before = {p: p.read_bytes() for p in rnd.sent.iterdir()}
    edit(rnd.setup, {(SETTINGS_SHEET, f"B{ROW['bonus_cap']}"): 6})
    with pytest.raises(AssessError) as exc:
        generate_round(rnd)
    [bad] = exc.value.report.issues
    assert bad.code == "R209" and "加分上限 5 → 6" in bad.message
    assert {p: p.read_bytes() for p in rnd.sent.iterdir()} == before
    generate_round(rnd, force=True)
    assert {p: p.read_bytes() for p in rnd.sent.iterdir()} != before
    generate_round(rnd)                                      # what was sent is now the new setup


def test_every_number_setting_is_validated_in_the_workbook():
    from xlsx_assess.setup_book import _setting_rule

    for row in SETTING_ROWS:
        if row.kind in ("int", "number", "severity"):
            rule = _setting_rule(row)
            assert rule is not None and rule["error_title"] == row.label, row.key
    rule = _setting_rule(next(r for r in SETTING_ROWS if r.key == "upload_max_files"))
    assert (rule["validate"], rule["minimum"], rule["maximum"]) == ("integer", 1, 100_000)
