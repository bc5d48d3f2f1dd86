"""A round (考核轮次): files received over days, kept by content in the ledger, one line per township.

The round's setup is taken through `workflow.load_round_context`, which these tests replace by the
context they build (in this process through monkeypatch, in a subprocess through `cli_script`), so they
hold whatever the setup workbook says.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SMALL_RUBRIC
from fills import full_marks, random_values, write_filled
from xlsx_assess import workflow
from xlsx_assess.board import board_from_ledger
from xlsx_assess.checks import Context
from xlsx_assess.cli import app
from xlsx_assess.ledger import Ledger, kept_path
from xlsx_assess.round import MARKER, Round
from xlsx_assess.rubric import load_rubric, parse_rubric
from xlsx_assess.settings import Township, load_settings, load_townships
from xlsx_assess.workflow import check_round, round_status
from xlsx_assess.writer import file_name

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "returned"
KILLS = 30 if os.environ.get("XLSX_ASSESS_FULL") else 4
runner = CliRunner()


def make_round(root: Path) -> Round:
    """A round folder as `init` leaves it (the setup itself comes from the test's context)."""
    rnd = Round(root)
    for folder in (rnd.sent, rnd.returned, rnd.results, rnd.state):
        folder.mkdir(parents=True, exist_ok=True)
    rnd.marker.write_text("{}", encoding="utf-8")
    return rnd


def use_context(monkeypatch, ctx: Context) -> None:
    monkeypatch.setattr(workflow, "load_round_context", lambda rnd: ctx)


def bundled() -> Context:
    return Context(load_rubric(), load_settings(), load_townships())


def small30() -> Context:
    rubric, report = parse_rubric(SMALL_RUBRIC)
    assert rubric is not None, report.issues
    return Context(rubric, load_settings(), [Township(f"{410900100 + k}", f"测试{k}镇") for k in range(1, 31)])


def other_year(ctx: Context, delta: int) -> Context:
    return Context(ctx.rubric, dataclasses.replace(ctx.settings, year=ctx.settings.year + delta), ctx.townships)


def ledger_counts(rnd: Round) -> tuple[int, int]:
    with sqlite3.connect(rnd.ledger) as db:
        return (db.execute("SELECT count(*) FROM files").fetchone()[0],
                db.execute("SELECT count(*) FROM names").fetchone()[0])


def states(board) -> dict[str, str]:
    return {line.code: line.state for line in board.lines}


# -- the nine samples -----------------------------------------------------------------------------------

def test_the_samples_round_is_all_ok_and_status_survives_deleting_returned(tmp_path, monkeypatch):
    rnd = make_round(tmp_path / "2026考核")
    for f in SAMPLES.iterdir():
        shutil.copy(f, rnd.returned / f.name)
    use_context(monkeypatch, bundled())
    monkeypatch.chdir(rnd.returned)                       # a round is found from a folder inside it
    got = runner.invoke(app, ["check", "--json"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.output)
    assert [t["state"] for t in data["townships"]] == ["ok"] * 9
    assert all(t["reporter"] and t["phone"] for t in data["townships"])
    assert data["missing"] == [] and data["setup_suspect"] is None

    shutil.rmtree(rnd.returned)
    got = runner.invoke(app, ["status", "--round", str(rnd.root)])
    assert got.exit_code == 0, got.output
    for f in SAMPLES.iterdir():
        assert f.name in got.output
    with Ledger.of_round(rnd) as ledger:
        assert len(ledger.kept()) == 9 and ledger.integrity() == []


def test_check_without_paths_outside_a_round_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["check"]).exit_code == 2
    assert runner.invoke(app, ["status"]).exit_code == 2
    assert runner.invoke(app, ["check", "--round", str(tmp_path)]).exit_code == 2


# -- a 30-township round, over three days ---------------------------------------------------------------

def test_a_30_township_round_with_mistakes_and_resends(tmp_path, monkeypatch):
    ctx = small30()
    rnd = make_round(tmp_path / "round")
    use_context(monkeypatch, ctx)
    inbox, rng = rnd.returned, random.Random(13)
    towns = ctx.townships
    good, bad, old, damaged, missing = towns[:15], towns[15:18], towns[18:20], towns[20], towns[21:]
    for t in good:
        write_filled(ctx, t, inbox, random_values(ctx.rubric, rng), reporter=f"填报{t.code[-2:]}", phone="13900000000")
    for t in bad:                                           # a score above its line's points
        write_filled(ctx, t, inbox, dict(full_marks(ctx.rubric), A01=45), reporter="王五", phone="13700000000")
    for t in old:                                           # last year's form
        write_filled(other_year(ctx, -1), t, inbox, full_marks(ctx.rubric))
    (inbox / file_name(damaged, ctx.settings.year)).write_bytes(b"PK\x03\x04 cut short in WeChat")
    shutil.copy(inbox / file_name(good[0], ctx.settings.year), inbox / "副本.xlsx")     # the same file twice

    coll, board = check_round(rnd, ctx)
    got = states(board)
    assert [got[t.code] for t in good] == ["ok"] * 15
    assert [got[t.code] for t in [*bad, *old, damaged]] == ["fix"] * 6
    assert [got[t.code] for t in missing] == ["missing"] * 9
    assert coll.missing == missing                          # a township with a bad file is not also 未提交
    lines = {line.code: line for line in board.lines}
    assert ("V403", "评分表", "G5") in [(i.code, i.sheet, i.cell) for i in lines[bad[0].code].issues]
    assert (lines[bad[0].code].reporter, lines[bad[0].code].phone) == ("王五", "13700000000")
    assert [i.code for i in lines[old[0].code].issues] == ["I203"]
    assert lines[old[0].code].history[-1].role == "other_version"
    assert lines[damaged.code].issues and lines[damaged.code].issues[0].code.startswith("F")
    assert lines[good[0].code].history[0].names == (f"收回/{file_name(good[0], ctx.settings.year)}", "收回/副本.xlsx")
    assert board.setup_suspect is None and board.unassigned == []

    # day two: every township that must fix resends under a new name, the missing ones send; old files stay
    for t in [*bad, *old, damaged]:
        write_filled(ctx, t, inbox, full_marks(ctx.rubric), name=f"{t.name}（修改后）.xlsx")
    for t in missing:
        write_filled(ctx, t, inbox, random_values(ctx.rubric, rng))
    got = runner.invoke(app, ["check", "--round", str(rnd.root), "--json"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.output)
    assert {t["state"] for t in data["townships"]} == {"ok"} and len(data["townships"]) == 30
    assert data["missing"] == []
    fixed = next(t for t in data["townships"] if t["code"] == bad[0].code)
    assert fixed["file"] == f"收回/{bad[0].name}（修改后）.xlsx" and fixed["issues"] == []

    received = sorted(p.name for p in inbox.iterdir())
    shutil.rmtree(inbox)                                    # nothing received is lost
    got = runner.invoke(app, ["status", "--round", str(rnd.root)])
    assert got.exit_code == 0, got.output
    for name in received:
        assert name in got.output
    got = runner.invoke(app, ["status", "--round", str(rnd.root), "--json"])
    data = json.loads(got.output)
    assert sorted(n.split("/", 1)[1] for t in data["townships"] for f in t["history"] for n in f["names"]) == received
    board = round_status(rnd, ctx)
    assert states(board) == {t.code: "ok" for t in towns}
    history = {line.code: line.history for line in board.lines}
    assert [f.role for f in history[bad[0].code]] == ["superseded", "used"]
    assert [f.role for f in history[old[0].code]] == ["other_version", "used"]
    assert ledger_counts(rnd) == (len(received) - 1, len(received))      # 副本.xlsx: one file, two names


def test_every_form_for_another_year_blames_the_setup(tmp_path):
    ctx = small30()
    rnd = make_round(tmp_path / "round")
    for t in ctx.townships[:12]:
        write_filled(other_year(ctx, +1), t, rnd.returned, full_marks(ctx.rubric))
    _, board = check_round(rnd, ctx)
    assert board.setup_suspect is not None and board.setup_suspect.code == "C505"
    assert board.count("fix") == 12 and board.count("missing") == 18
    with Ledger.of_round(rnd) as ledger:                    # the same from the ledger alone
        assert board_from_ledger(ledger, ctx).setup_suspect.code == "C505"


def test_a_kept_file_is_not_rewritten_and_rows_name_kept_files(tmp_path):
    ctx = small30()
    rnd = make_round(tmp_path / "round")
    write_filled(ctx, ctx.townships[0], rnd.returned, full_marks(ctx.rubric))
    check_round(rnd, ctx)
    with Ledger.of_round(rnd) as ledger:
        (kept,) = ledger.kept()
        path = kept_path(rnd.files, kept.sha256)
        before = path.stat().st_mtime_ns, path.stat().st_ino
    check_round(rnd, ctx)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    with Ledger.of_round(rnd) as ledger:
        assert ledger.integrity() == [] and len(ledger.kept()) == 1
        assert ledger.bytes_of(kept.sha256) == (rnd.returned / kept.name.split("/", 1)[1]).read_bytes()
        assert sqlite3.connect(rnd.ledger).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_zip_members_are_kept_by_content(tmp_path):
    import zipfile

    ctx = small30()
    rnd = make_round(tmp_path / "round")
    one = write_filled(ctx, ctx.townships[0], tmp_path, full_marks(ctx.rubric))
    with zipfile.ZipFile(rnd.returned / "乡镇.zip", "w") as zf:
        zf.write(one, one.name)
    _, board = check_round(rnd, ctx)
    line = board.lines[0]
    assert line.state == "ok" and line.file == f"收回/乡镇.zip › {one.name}"
    with Ledger.of_round(rnd) as ledger:
        assert ledger.bytes_of(line.sha256) == one.read_bytes()


def test_a_ledger_from_a_newer_version_is_refused(tmp_path):
    from xlsx_assess.issues import AssessError

    rnd = make_round(tmp_path / "round")
    Ledger.of_round(rnd).close()
    with sqlite3.connect(rnd.ledger) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(AssessError) as err:
        Ledger.of_round(rnd)
    assert err.value.report.issues[0].code == "C507"


def test_a_ledger_held_too_long_by_another_command_is_reported_not_a_traceback(tmp_path, monkeypatch):
    from xlsx_assess import ledger as ledger_mod
    from xlsx_assess.issues import AssessError

    rnd = make_round(tmp_path / "round")
    with Ledger.of_round(rnd) as ledger:
        sha = ledger.keep(b"data")
    monkeypatch.setattr(ledger_mod, "BUSY_MS", 200)
    other = sqlite3.connect(rnd.ledger, isolation_level=None)
    try:
        with Ledger.of_round(rnd) as ledger:
            other.execute("BEGIN IMMEDIATE")               # another command in the middle of a write
            with pytest.raises(AssessError) as err:
                ledger.record([ledger_mod.Sighting(sha, 4, "收回/a.xlsx", None)])
        issue = err.value.report.issues[0]
        assert issue.code == "C510" and "0.2 秒" in issue.message and "没有丢失" in issue.message
        with pytest.raises(AssessError) as err:              # opening it then is the same report
            Ledger.of_round(rnd)
        assert err.value.report.issues[0].code == "C510"
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Ledger.of_round(rnd) as ledger:                     # once it is free, the same record goes in
        ledger.record([ledger_mod.Sighting(sha, 4, "收回/a.xlsx", None)])
        assert [k.sha256 for k in ledger.kept()] == [sha]


# -- two commands at once, and kill -9 --------------------------------------------------------------------

def cli_script(*args: str) -> list[str]:
    """`xlsx-assess ARGS` in a subprocess, its round's setup the bundled one (whatever the setup reads)."""
    code = ("import sys, xlsx_assess.workflow as w; w.load_round_context = lambda rnd: w.load_context(); "
            "from xlsx_assess.cli import main; sys.argv = ['xlsx-assess', *sys.argv[1:]]; main()")
    return [sys.executable, "-c", code, *args]


def busy_round(root: Path, per_township: int) -> Round:
    """A round of the bundled nine townships with a few distinct files each (resends)."""
    ctx = bundled()
    rnd = make_round(root)
    rng = random.Random(7)
    for t in ctx.townships:
        for k in range(per_township):
            write_filled(ctx, t, rnd.returned, random_values(ctx.rubric, rng), name=f"{t.name}_{k}.xlsx")
    return rnd


def test_two_checks_at_once_both_succeed_and_keep_each_file_once(tmp_path):
    rnd = busy_round(tmp_path / "round", 3)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen(cli_script("check", "--round", str(rnd.root), "--json"), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
        assert {t["state"] for t in json.loads(out)["townships"]} == {"ok"}
    assert ledger_counts(rnd) == (27, 27)
    with Ledger.of_round(rnd) as ledger:
        assert ledger.integrity() == []


def test_kill_9_during_check_leaves_the_ledger_consistent(tmp_path):
    rnd = busy_round(tmp_path / "round", 4)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random(int(os.environ.get("XLSX_ASSESS_SEED", "9")))
    started = time.monotonic()
    subprocess.run(cli_script("check", "--round", str(tmp_path / "warm")), env=env, capture_output=True)
    startup = time.monotonic() - started                   # the interpreter and imports, roughly
    shutil.copytree(rnd.root, tmp_path / "timed")
    started = time.monotonic()
    subprocess.run(cli_script("check", "--round", str(tmp_path / "timed")), env=env, capture_output=True)
    whole = time.monotonic() - started                     # a whole run: kills fall between its start and end
    for _ in range(KILLS):
        proc = subprocess.Popen(cli_script("check", "--round", str(rnd.root)), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(startup * 0.7, whole))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with Ledger.of_round(rnd) as ledger:
            assert ledger.integrity() == []
    done = subprocess.run(cli_script("check", "--round", str(rnd.root)), env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert ledger_counts(rnd) == (36, 36)
    with Ledger.of_round(rnd) as ledger:
        assert ledger.integrity() == []
        for kept in ledger.kept():
            assert kept.verdict is not None and kept.verdict.accepted


# -- setup changes, and ranking a round -------------------------------------------------------------------

def test_a_setup_change_rechecks_kept_files_no_longer_in_returned(tmp_path):
    ctx = small30()
    rnd = make_round(tmp_path / "round")
    for t in ctx.townships[:3]:
        write_filled(ctx, t, rnd.returned, full_marks(ctx.rubric))
    _, board = check_round(rnd, ctx)
    assert board.count("ok") == 3
    shutil.rmtree(rnd.returned)
    _, board = check_round(rnd, other_year(ctx, -1))          # the setup's year corrected (say): 2025
    assert board.count("fix") == 3 and board.setup_suspect.code == "C505"
    assert [i.code for i in board.lines[0].issues] == ["I203"]
    assert ledger_counts(rnd) == (3, 3)                       # checked again from the kept copies: no new names
    assert board_from_ledger(Ledger.of_round(rnd), ctx).count("ok") == 3     # each setup's verdict is kept


def test_rank_round_ranks_the_boards_files_and_names_the_rest(tmp_path):
    from openpyxl import load_workbook

    ctx = small30()
    rnd = make_round(tmp_path / "round")
    towns = ctx.townships
    for t in towns[:27]:
        write_filled(ctx, t, rnd.returned, full_marks(ctx.rubric))
    write_filled(ctx, towns[27], rnd.returned, dict(full_marks(ctx.rubric), A01=45))
    check_round(rnd, ctx)
    (rnd.returned / file_name(towns[0], ctx.settings.year)).unlink()       # deleted: still the round's
    coll, board, ranking = workflow.rank_round(rnd, ctx)
    assert len(ranking.ranking) == 27 and (rnd.results / "排名.xlsx").is_file()
    assert [line.code for line in board.unranked] == [t.code for t in towns[27:]]
    assert board.unranked_text().startswith("共 30 个乡镇，3 个未纳入排名：测试28镇（需改正）")
    assert [t.code for t in coll.missing] == [t.code for t in towns[27:]]
    left = [row[0] for row in load_workbook(rnd.results / "排名.xlsx")["未提交"].iter_rows(min_row=5, values_only=True)]
    assert [str(code) for code in left if code] == [t.code for t in towns[27:]]


def test_rank_round_with_nothing_accepted_writes_nothing(tmp_path):
    from xlsx_assess.issues import AssessError

    ctx = small30()
    rnd = make_round(tmp_path / "round")
    write_filled(ctx, ctx.townships[0], rnd.returned, dict(full_marks(ctx.rubric), A01=45))
    with pytest.raises(AssessError) as err:
        workflow.rank_round(rnd, ctx)
    assert err.value.report.issues[0].code == "C508"
    assert not (rnd.results / "排名.xlsx").exists()


def test_the_latest_received_file_decides_even_when_saved_times_tie(tmp_path):
    ctx = small30()
    rnd = make_round(tmp_path / "round")
    t = ctx.townships[0]
    write_filled(ctx, t, rnd.returned, full_marks(ctx.rubric), name="z_first.xlsx")
    assert check_round(rnd, ctx)[1].lines[0].state == "ok"
    write_filled(ctx, t, rnd.returned, dict(full_marks(ctx.rubric), A01=45), name="a_second.xlsx")
    line = check_round(rnd, ctx)[1].lines[0]
    assert (line.state, line.file) == ("fix", "收回/a_second.xlsx")     # what it sent last is what counts


# -- the board without a round ----------------------------------------------------------------------------

def test_the_board_of_a_plain_batch(tmp_path):
    from xlsx_assess.board import build_board
    from xlsx_assess.collect import check_paths

    ctx = small30()
    towns = ctx.townships
    write_filled(ctx, towns[0], tmp_path, full_marks(ctx.rubric))
    write_filled(ctx, towns[1], tmp_path, dict(full_marks(ctx.rubric), A01=45))
    write_filled(other_year(ctx, -1), towns[2], tmp_path, full_marks(ctx.rubric))
    coll = check_paths([tmp_path], ctx)
    old = next(r for r in coll.results if r.head.other_version)
    assert (old.township, old.head.other_version) == (towns[2], f"year:{ctx.settings.year - 1}")
    board = build_board(coll, ctx, None)
    assert [line.state for line in board.lines[:4]] == ["ok", "fix", "fix", "missing"]
    assert board.count("missing") == 27 and len(coll.missing) == 29     # the stateless batch: no accepted file
    assert board.lines[1].as_dict()["issues"][0]["code"] == "V403"
