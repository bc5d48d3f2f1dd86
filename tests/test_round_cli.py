"""A whole round through the real command line, no options after `init` (issue 13's "done when"): generate,
returns with mistakes and a township that sends nothing, check (the board, 核查结果.xlsx with its 退回 and
催报 texts), resends with the old files left in 收回/, check again, and the ledger after 收回/ is gone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fills import full_marks, write_filled
from python_calamine import CalamineWorkbook

from xlsx_assess.results_book import RESULTS_NAME
from xlsx_assess.round import open_round
from xlsx_assess.workflow import load_round_context

ROOT = Path(__file__).resolve().parent.parent


def xa(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xlsx_assess", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "120"}, timeout=600)


def clean(ctx, township, folder: Path, name: str, **changes) -> Path:
    values = {**full_marks(ctx.rubric), **changes}
    return write_filled(ctx, township, folder, values=values, zeroed=False, name=name)


def test_a_round_runs_with_no_options_after_init(tmp_path):
    made = xa(tmp_path, "init", "本轮")
    assert made.returncode == 0, made.stderr
    here = tmp_path / "本轮"
    assert xa(here, "generate").returncode == 0
    rnd = open_round(here)
    ctx = load_round_context(rnd)
    assert len(list(rnd.sent.glob("*.xlsx"))) == len(ctx.townships) == 9
    first, second, *rest = ctx.townships
    wrong = next(i for i in ctx.rubric.items if i.kind == "base")
    clean(ctx, first, rnd.returned, "微信文件/第一版.xlsx".replace("/", "_"), **{wrong.id: wrong.points + 5})
    for t in rest:
        clean(ctx, t, rnd.returned, f"{t.name}.xlsx")

    day1 = xa(rnd.returned, "check", "--json")              # from inside 收回/: the round is found upward
    assert day1.returncode == 1, day1.stderr
    lines = {t["township"]: t for t in json.loads(day1.stdout)["townships"]}
    assert lines[first.name]["state"] == "fix" and lines[second.name]["state"] == "missing"
    assert {lines[t.name]["state"] for t in rest} == {"ok"}
    assert any(i["code"] == "V403" for i in lines[first.name]["issues"])
    book = CalamineWorkbook.from_path(str(rnd.results / RESULTS_NAME))
    notices = book.get_sheet_by_name("通知").to_python()
    text = "\n".join(str(c) for row in notices for c in row)
    assert first.name in text and second.name in text and ctx.settings.deadline in text and wrong.id in text

    partial = xa(here, "rank")                               # written, but honest about who is left out
    assert partial.returncode == 1, partial.stderr
    assert f"共9个乡镇，2个未纳入排名：{first.name}（需改正）、{second.name}（未收到）" in "".join(partial.stdout.split())
    top = CalamineWorkbook.from_path(str(rnd.results / "排名.xlsx")).get_sheet_by_name("排名").to_python()[:3]
    assert any("2 个未纳入排名" in str(c) for row in top for c in row)

    clean(ctx, first, rnd.returned, "第二版.xlsx")          # the resend; the wrong file stays in 收回/
    clean(ctx, second, rnd.returned, f"{second.name}.xlsx")
    day2 = xa(here, "check")
    assert day2.returncode == 0, day2.stdout + day2.stderr
    assert "已合格 9" in " ".join(day2.stdout.split())

    ranked = xa(here, "rank")
    assert ranked.returncode == 0, ranked.stdout + ranked.stderr
    table = (rnd.results / "排名.csv").read_bytes()
    assert table.startswith(b"\xef\xbb\xbf") and len(table.decode("utf-8-sig").splitlines()) == 10

    shutil.rmtree(rnd.returned)
    status = xa(here, "status", "--json")
    assert status.returncode == 0, status.stderr
    board = json.loads(status.stdout)["townships"]
    names = [n for t in board for f in t["history"] for n in f.get("names", [f["name"]])]
    assert len(names) == 10 and any("第一版" in n for n in names)


def test_rank_with_nothing_accepted_writes_nothing_and_exits_2(tmp_path):
    (tmp_path / "收回").mkdir()
    empty = xa(tmp_path, "rank", "收回", "--out", "排名.xlsx")
    assert empty.returncode == 2 and "C508" in empty.stderr + empty.stdout
    assert not (tmp_path / "排名.xlsx").exists()


def test_a_good_file_resent_after_a_wrong_one_is_the_latest_again(small_ctx, tmp_path):
    """The board follows what arrived last: a township that sent its good return, then by mistake the blank
    form, then the good return again (same bytes, a new name), is 已合格 again."""
    from xlsx_assess.round import generate_round, init_round
    from xlsx_assess.setup_book import write_setup_book
    from xlsx_assess.workflow import check_round

    rnd = init_round(tmp_path / "r")
    write_setup_book(small_ctx.rubric, small_ctx.townships, small_ctx.settings, rnd.setup)
    generate_round(rnd)
    ctx = load_round_context(rnd)
    town = ctx.townships[0]
    notes = {i.id: "说明" for i in ctx.rubric.items}
    good = write_filled(ctx, town, rnd.returned, values=full_marks(ctx.rubric), zeroed=False, notes=notes,
                        name="好.xlsx")
    state = lambda: next(x for x in check_round(rnd, ctx)[1].lines if x.code == town.code).state  # noqa: E731
    assert state() == "ok"
    blank = next(rnd.sent.glob(f"*{town.name}*.xlsx"))
    shutil.copy(blank, rnd.returned / "误发空表.xlsx")
    assert state() == "fix"
    shutil.copy(good, rnd.returned / "重发.xlsx")
    assert state() == "ok"


def test_a_mistyped_round_inside_a_round_is_a_usage_error_not_this_round(tmp_path):
    assert xa(tmp_path, "init", "本轮").returncode == 0
    here = tmp_path / "本轮"
    for command in ("status", "check", "review", "feedback", "serve"):
        got = xa(here, command, "--round", "不存在", *(["--no-browser"] if command == "serve" else []))
        assert got.returncode == 2 and "找不到“不存在”这个文件夹" in got.stderr, (command, got.stderr)
    got = xa(tmp_path, "status")
    assert got.returncode == 2 and "当前文件夹不在考核轮次中" in got.stderr and "要核查的文件" not in got.stderr
    got = xa(tmp_path, "init")
    assert got.returncode == 2 and "缺少新考核轮次的文件夹" in got.stderr and "xlsx-assess init 考核2026" in got.stderr


def test_issues_under_the_board_wrap_at_the_console_width(tmp_path):
    assert xa(tmp_path, "init", "本轮").returncode == 0
    here = tmp_path / "本轮"
    rnd = open_round(here)
    ctx = load_round_context(rnd)
    item = next(i for i in ctx.rubric.items if i.kind == "base")
    clean(ctx, ctx.townships[0], rnd.returned, "错.xlsx", **{item.id: item.points + 5})
    got = subprocess.run([sys.executable, "-m", "xlsx_assess", "check"], cwd=here, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "80"}, timeout=600)
    grid = [line for line in got.stdout.splitlines() if line.startswith("    ")]
    assert any("V403" in line for line in grid)
    assert max(map(len, grid)) <= 80, grid
