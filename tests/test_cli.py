"""The command line, the JSON shapes, the samples and the README, end to end."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, write_filled
from typer.testing import CliRunner

from xlsx_assess import ranking as ranking_mod
from xlsx_assess.cli import app
from xlsx_assess.issues import catalogue_markdown

runner = CliRunner()
SAMPLES = ROOT / "samples" / "returned"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def run(*args: str):
    return runner.invoke(app, list(args))


def test_help_lists_every_command_and_each_is_in_the_readme():
    result = run("--help")
    assert result.exit_code == 0
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert set(commands) == {"generate", "check", "rank", "rubric", "codes", "status", "init", "serve", "review",
                             "feedback"}
    for name in commands:
        assert name in result.output
        assert f"xlsx-assess {name}" in README, name
        assert run(name, "--help").exit_code == 0


def test_every_help_speaks_chinese_beside_clicks_english():
    """click's words come through gettext and stay English: each is said in Chinese beside it."""
    top = run("--help").output
    assert "用法 Usage:" in top and "命令 Commands:" in top and "选项 Options:" in top
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        assert command.cls is not None, name              # the Chinese help and usage errors are the class's
        text = run(name, "--help").output
        assert "用法 Usage:" in text and "选项 Options:" in text and "显示本帮助并退出" in text, name
        assert "\nOptions:" not in text and "\nArguments:" not in text, name
        assert "[required" not in text and "[default:" not in text, name
    assert "参数 Arguments:" in run("rank", "--help").output
    assert "[必填 required]" in run("init", "--help").output
    assert "[默认 default: 8765]" in run("serve", "--help").output


def test_readme_codes_table_is_the_catalogue():
    table = README.split("<!-- codes:start -->")[1].split("<!-- codes:end -->")[0].strip()
    assert table == catalogue_markdown()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci and "bash scripts/test.sh" in README


def test_import_is_light():
    code = ("import sys, xlsx_assess.cli; heavy = {'pandas', 'openpyxl', 'xlsxwriter', 'python_calamine', 'numpy'};"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_check_does_not_import_pandas():
    code = ("import atexit, sys; from xlsx_assess.cli import main;"
            "atexit.register(lambda: print('pandas' in sys.modules, 'numpy' in sys.modules));"
            f"sys.argv = ['xlsx-assess', 'check', {str(SAMPLES)!r}]; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "False False"


def test_generate_all_and_only(tmp_path):
    result = run("generate", "--out", str(tmp_path / "all"))
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "all").glob("2026_*.xlsx"))) == 9
    assert (tmp_path / "all" / "2026_410927100_城关镇.xlsx").exists()
    result = run("generate", "--out", str(tmp_path / "two"), "--only", "侯庙镇", "--only", "410927205", "--year", "2027")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["2027_410927101_侯庙镇.xlsx", "2027_410927205_夹河乡.xlsx"]


def test_generate_unknown_township_and_bad_rubric_exit_2(tmp_path):
    assert run("generate", "--out", str(tmp_path), "--only", "不存在乡").exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("id,category\nA01,x\n", encoding="utf-8")
    result = run("generate", "--out", str(tmp_path), "--rubric", str(bad))
    assert result.exit_code == 2 and "R102" in result.output


def test_samples_are_clean_and_in_step_with_the_generator(tmp_path):
    result = run("check", str(SAMPLES))
    assert result.exit_code == 0, result.output
    sys.path.insert(0, str(ROOT / "samples"))
    import make_samples

    make_samples.make(tmp_path)
    for path in SAMPLES.iterdir():
        assert (tmp_path / "returned" / path.name).read_bytes() == path.read_bytes(), (
            f"{path.name} is stale: run python samples/make_samples.py")


def test_check_json_and_exit_codes(tmp_path, ctx):
    result = run("check", str(SAMPLES), "--json")
    data = json.loads(result.stdout)
    assert result.exit_code == 0
    assert len(data["files"]) == 9 and data["missing"] == []
    assert data["summary"]["ok"] == 9
    write_filled(ctx, ctx.townships[0], tmp_path, {})          # blank base lines: errors
    assert run("check", str(tmp_path)).exit_code == 1


def test_rank_writes_six_sheets_and_json(tmp_path):
    out = tmp_path / "排名.xlsx"
    result = run("rank", str(SAMPLES), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"ranking", "excluded", "missing", "coverage", "summary"}
    assert data["coverage"] == "共 9 个乡镇，全部纳入排名。" and data["summary"]["accepted"] == 9
    first = data["ranking"][0]
    assert set(first) == {"rank", "code", "township", "base", "bonus", "deduction", "final", "grade", "zeroed"}
    ranks = [r["rank"] for r in data["ranking"]]
    assert ranks == sorted(ranks) and len(set(ranks)) < len(ranks)      # the samples hold a tie
    import openpyxl

    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == list(ranking_mod.SHEET_NAMES)
    assert wb["排名"]._charts


def test_rank_is_atomic(tmp_path, monkeypatch, ctx):
    out = tmp_path / "排名.xlsx"
    out.write_bytes(b"previous ranking")

    def broken(rk, target, scratch):
        target.write(b"half")
        (scratch / "row data").write_bytes(b"rows")
        raise OSError("disk full")

    monkeypatch.setattr(ranking_mod, "_write_ranking", broken)
    from xlsx_assess.issues import AssessError

    with pytest.raises(AssessError) as caught:       # a file system error is R302, naming the file
        from xlsx_assess.workflow import rank_files

        rank_files([SAMPLES], out, ctx)
    assert [(i.code, i.file) for i in caught.value.report] == [("R302", str(out))]
    assert out.read_bytes() == b"previous ranking"
    assert [p.name for p in tmp_path.iterdir()] == ["排名.xlsx"]


def test_township_text_is_inert_in_the_ranking(tmp_path, ctx):
    notes = {"A01": "=HYPERLINK(\"http://x\",\"x\")", "A02": "+1", "A03": "@SUM(1)", "A04": "http://example.com"}
    values = {i.id: i.points for i in ctx.rubric.base}
    for k, item_id in enumerate(("A01", "A02", "A03", "A04")):
        values[item_id] = ctx.rubric.items[k].points - 0.5
    write_filled(ctx, ctx.townships[0], tmp_path / "in", values, False, notes)
    out = tmp_path / "r.xlsx"
    assert run("rank", str(tmp_path / "in"), "--out", str(out)).exit_code == 1      # written; 8 townships left out
    import openpyxl

    ws = openpyxl.load_workbook(out)["扣分说明"]          # the notes, one a row
    cells = [c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" for c in cells)
    assert not any(c.hyperlink for row in ws.iter_rows() for c in row)


def test_rubric_and_codes_commands():
    result = run("rubric")
    assert result.exit_code == 0 and re.search(r"[0-9a-f]{64}", result.output)
    codes = json.loads(run("codes", "--json").stdout)
    assert {c["code"] for c in codes} >= {"R101", "F103", "I201", "S303", "V401", "C503"}


def test_rank_output_inside_the_input_folder_is_not_read_back(tmp_path):
    import shutil

    folder = tmp_path / "收回"
    shutil.copytree(SAMPLES, folder)
    for _ in range(2):
        result = run("rank", str(folder), "--out", str(folder / "排名.xlsx"), "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert len(data["ranking"]) == 9
        assert [e["reasons"] for e in data["excluded"]] == ([] if _ == 0 else [["skipped"]])


def test_rank_prints_the_ranking_in_aligned_columns(tmp_path):
    from rich.cells import cell_len

    finals = [f"{r['final']:.2f}" for r in json.loads(run("rank", str(SAMPLES), "--out", str(tmp_path / "a.xlsx"),
                                                          "--json").stdout)["ranking"]]
    lines = run("rank", str(SAMPLES), "--out", str(tmp_path / "b.xlsx")).output.splitlines()
    head = next(k for k, line in enumerate(lines) if line.startswith("排名  "))
    rows = lines[head + 1:head + 1 + len(finals)]

    def end_of(line: str, text: str, after: int = 0) -> int:     # display column where `text` ends
        at = line.index(text, after)
        return cell_len(line[:at + len(text)])

    ends = {end_of(row, final, row.index(".") + 3) for row, final in zip(rows, finals)}
    assert ends == {end_of(lines[head], "最终得分")}            # numbers right-aligned under their heading


# -- the clerk's language (issue 12) -------------------------------------------------------------

def run_process(*args: str, columns: int = 80):
    """The real process, as a clerk runs it, in an 80-column console."""
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "xlsx_assess", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("args, named", [
    (("check", "不存在的文件夹"), "不存在的文件夹"),
    (("check", str(SAMPLES), "--foo"), "--foo"),
    (("rank", str(SAMPLES)), "--out"),
    (("rank", str(SAMPLES), "--out"), "--out"),
    (("bogus",), "bogus"),
    (("check",), "xlsx-assess check"),
    (("check", str(SAMPLES), "--workers", "abc"), "--workers"),
    (("check", str(SAMPLES), "--rubric", "无此细则.csv"), "无此细则.csv"),
    (("rank", "无此文件夹", "--out", "排名.xlsx"), "无此文件夹"),
    (("generate", "--out", "x", "--settings", "无此设置.toml"), "无此设置.toml"),
])
def test_usage_errors_are_chinese_name_the_culprit_and_exit_2(args, named):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "用法错误" in result.output and named in result.output and "--help" in result.output
    assert "Error" not in result.output and "Usage" not in result.output and "未提交" not in result.output


def test_usage_errors_in_the_real_process():
    for args in (("check", "不存在的文件夹"), ("check", str(SAMPLES), "--unknown")):
        done = run_process(*args)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert done.stderr.startswith("✖ 用法错误：") and args[-1] in done.stderr and "Traceback" not in done.stderr


def test_version():
    from xlsx_assess import __version__

    assert run("--version").output == f"xlsx-assess {__version__}\n"
    done = run_process("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"xlsx-assess {__version__}"


def test_only_takes_lists_and_names_the_unknown(tmp_path):
    result = run("generate", "--out", str(tmp_path), "--only", "侯庙镇,孙口镇", "--only", "夹河乡、410927100，吴坝镇")
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.glob("*.xlsx"))) == 5
    result = run("generate", "--out", str(tmp_path / "no"), "--only", "侯庙,孙口镇,马楼")
    assert result.exit_code == 2 and "R203" in result.output
    said = result.output.replace("\n", "").replace(" ", "")
    assert "“侯庙、马楼”" in said and "打渔陈镇" in said and not (tmp_path / "no").exists()


def _one_error_folder(ctx, folder: Path) -> Path:
    from fills import full_marks

    values = full_marks(ctx.rubric)
    values[ctx.rubric.base[0].id] = ctx.rubric.base[0].points + 2      # out of range: a long V403 message
    return write_filled(ctx, ctx.townships[0], folder, values)


def test_long_messages_wrap_within_80_columns_and_lose_nothing(tmp_path, ctx):
    from rich.cells import cell_len

    _one_error_folder(ctx, tmp_path)
    message = json.loads(run("check", str(tmp_path), "--json").stdout)["files"][0]["issues"][0]["message"]
    assert cell_len(message) > 80
    done = run_process("check", str(tmp_path))
    grid = [line for line in done.stdout.splitlines() if line.startswith("    ")]
    assert grid and all(cell_len(line) <= 80 for line in grid)
    joined = "".join(line.strip() for line in grid[1:]).replace(" ", "")  # a break takes the space it is at
    assert message.replace(" ", "") in joined                                 # every word of it, in order
    codes = run_process("codes").stdout
    assert "…" not in codes and all(cell_len(line) <= 80 for line in codes.splitlines())


def test_a_large_batch_prints_a_line_per_township_and_detail_every_issue(tmp_path, ctx):
    import shutil

    for k in range(3):
        for p in SAMPLES.glob("*.xlsx"):
            shutil.copy(p, tmp_path / f"{p.stem}_{k}.xlsx")
    _one_error_folder(ctx, tmp_path)                                      # 28 files
    summary = run("check", str(tmp_path)).output.splitlines()
    first = [line for line in summary if "城关镇（410927100）" in line]
    assert len(first) == 1 and "4 个文件" in first[0] and "V403" in "".join(summary)
    assert len(summary) < 9 * 3 and "--detail" in summary[-1]
    detail = run("check", str(tmp_path), "--detail").output
    assert all(p.name in detail for p in tmp_path.iterdir()) and "V403  评分表  G" in detail
    small = run("check", str(SAMPLES)).output                              # a small batch: file by file
    assert all(p.name in small for p in SAMPLES.glob("*.xlsx"))


def test_codes_are_listed_in_chinese():
    from xlsx_assess.issues import Code

    out = run("codes").output
    assert Code.SCORE_OUT_OF_RANGE.meaning in out and "错误" in out and "score out of range" not in out
    assert all(re.search(r"[\u4e00-\u9fff]", c.meaning) for c in Code)
    assert all(re.search(r"[\u4e00-\u9fff]", c["title"]) for c in json.loads(run("codes", "--json").stdout))
