"""Settings and rosters that cannot be right: each problem an R201 (settings) or R202 (roster) at its
line and key, all at once, exit 2 — never a form with MIN(G82,nan) in it, never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xlsx_assess.cli import app
from xlsx_assess.issues import AssessError
from xlsx_assess.settings import load_settings, load_townships

BAD = [
    ("bonus_cap = nan", "bonus_cap"), ("deduction_cap = inf", "deduction_cap"), ("bonus_cap = -inf", "bonus_cap"),
    ("bonus_cap = -1", "bonus_cap"), ("deduction_cap = 1e300", "deduction_cap"), ("bonus_cap = true", "bonus_cap"),
    ('deduction_cap = "10"', "deduction_cap"),
    ("year = 99999", "year"), ("year = 1066", "year"), ("year = 2026.5", "year"), ('year = "2026"', "year"),
    ('title = "' + "长" * 101 + '"', "title"), ("title = 5", "title"), ('county = "' + "县" * 31 + '"', "county"),
    ('instructions = "' + "说" * 5001 + '"', "instructions"),
    ('grades = [{ name = "优秀", min = 60 }, { name = "良好", min = 80 }]', "grades"),
    ('grades = [{ name = "优秀", min = 90 }, { name = "良好", min = 90 }]', "grades"),
    ('grades = [{ name = "优秀", min = 90 }, { name = "优秀", min = 80 }]', "grades"),
    ('grades = [{ name = "优秀", min = nan }, { name = "较差", min = 0 }]', "grades"),
    ('grades = [{ name = "优秀", min = 90 }, { name = "较差", min = -1 }]', "grades"),
    ('grades = [{ name = "优秀" }]', "grades"), ("grades = []", "grades"), ("grades = 5", "grades"),
    ('grades = [{ name = "' + "优" * 11 + '", min = 0 }]', "grades"),
    ("colour = 1", "colour"),
]


def _settings(tmp_path, line: str):
    path = tmp_path / "settings.toml"
    path.write_text(f'# 本轮考核\n\n{line}\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("line, key", BAD, ids=[f"{key}-{n}" for n, (_, key) in enumerate(BAD)])
def test_a_setting_that_cannot_be_right_is_r201_at_its_key(tmp_path, line, key):
    with pytest.raises(AssessError) as exc:
        load_settings(_settings(tmp_path, line))
    [bad] = exc.value.report.issues
    assert (bad.code, bad.file, bad.line, bad.column) == ("R201", "settings.toml", 3, key)


def test_every_bad_setting_is_reported_at_once(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text('bonus_cap = nan\ntitle = "考核"\ndeduction_cap = -2\n\n[[grades]]\nname = "优"\nmin = 1e9\n',
                    encoding="utf-8")
    with pytest.raises(AssessError) as exc:
        load_settings(path)
    assert [(i.code, i.line, i.column) for i in exc.value.report.issues] == [
        ("R201", 1, "bonus_cap"), ("R201", 3, "deduction_cap"), ("R201", 5, "grades")]


@pytest.mark.parametrize("line", ["bonus_cap = 0", "bonus_cap = 2.5", "deduction_cap = 1000", "year = 2000", "year = 2100",
                                  'grades = [{ name = "合格", min = 60 }, { name = "不合格", min = 0 }]',
                                  'title = "' + "长" * 100 + '"'])
def test_values_at_the_edges_are_fine(tmp_path, line):
    load_settings(_settings(tmp_path, line))


def test_a_year_option_outside_the_range_is_r201(tmp_path):
    with pytest.raises(AssessError) as exc:
        load_settings(None, 99999)
    [bad] = exc.value.report.issues
    assert (bad.code, bad.file, bad.column) == ("R201", "--year", "year")


def test_the_cli_refuses_nan_caps_with_exit_2_before_writing(tmp_path):
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path / "forms"),
                                      "--settings", str(_settings(tmp_path, "bonus_cap = nan"))])
    assert result.exit_code == 2 and "R201" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "forms").exists()


@pytest.mark.parametrize("text, line", [
    ("code,name\n410927100,城关镇\n410927101," + "镇" * 200_000 + "\n", 3),      # the csv module's field limit
    ("code,name\n410927100,城关镇\n\n410927101," + "镇" * 51 + "\n", 4),
    ("code,name\n410927100,城关镇\n410927100,侯庙镇\n", 3),
    ("code,name\n410927100,\n", 2),
], ids=["over the csv field limit", "name too long", "code repeated", "name empty"])
def test_a_roster_problem_is_r202_at_its_line(tmp_path, text, line):
    path = tmp_path / "townships.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AssessError) as exc:
        load_townships(path)
    [bad] = exc.value.report.issues
    assert (bad.code, bad.file, bad.line) == ("R202", "townships.csv", line)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_roster_reads_with_any_line_ending(tmp_path, newline):
    """Excel for Mac and old tools end lines with a bare CR: the roster reads as the rubric does."""
    path = tmp_path / "townships.csv"
    path.write_bytes(newline.join(["code,name", "410927100,城关镇", "", "410927101,侯庙镇", ""]).encode())
    assert [(t.code, t.name) for t in load_townships(path)] == [("410927100", "城关镇"), ("410927101", "侯庙镇")]
