"""反馈单 and 考核结果通报: the nine samples' round ranked, a 反馈单 per township written, filled in by
LibreOffice as a township would (one left incomplete, one tampered with), collected back by `check`;
the notice's counts; last year beside this year in a round made --from the previous one."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
import shutil
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import needs_libreoffice, sheet_part
from fills import random_values, write_filled
from typer.testing import CliRunner

import lo
from xlsx_assess import feedback_book as book
from xlsx_assess.cli import app
from xlsx_assess.ledger import kept_path
from xlsx_assess.feedback import (LineVerdict, county_losses, draft_notice, feedback_round, last_year_results,
                                  lost_lines, previous_round, read_results, township_feedback)
from xlsx_assess.feedback_book import SHEET, check_feedback, feedback_layout
from xlsx_assess.ranking import RANKING_SHEETS, rank_townships, write_ranking
from xlsx_assess.round import init_round, read_marker
from xlsx_assess.scoring import exact
from xlsx_assess.workflow import align_collection, check_round, load_round_context, rank_round

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "returned"
runner = CliRunner()


def samples_round(folder: Path):
    rnd = init_round(folder)
    for f in SAMPLES.iterdir():
        shutil.copy(f, rnd.returned / f.name)
    return rnd


@pytest.fixture(scope="module")
def told(tmp_path_factory):
    """The nine samples' round, ranked, with its nine 反馈单s."""
    rnd = samples_round(tmp_path_factory.mktemp("fb") / "2026考核")
    ctx = load_round_context(rnd)
    run = feedback_round(rnd, ctx, workers=1)
    return rnd, ctx, run


def expected_lost(ctx, res) -> list[tuple[str, Decimal]]:
    """Independently: base lines below their points (by how much), deduction lines above 0."""
    out = []
    for item in ctx.rubric.items:
        v = res.entries.values.get(item.id) if item.kind != "zero" else None
        if item.kind == "base" and (v or 0) < item.points:
            out.append((item.id, Decimal(str(item.points)) - Decimal(str(v or 0))))
        elif item.kind == "deduction" and (v or 0) > 0:
            out.append((item.id, Decimal(str(v))))
    return out


# -- writing ----------------------------------------------------------------------------------------

def test_nine_feedback_forms_say_score_rank_grade_and_every_lost_line(told):
    rnd, ctx, run = told
    assert len(run.written) == 9 and sorted(p.name for p in rnd.feedback.iterdir()) == sorted(
        p.name for _, p in run.written)
    df = run.ranking.ranking
    coll, board = check_round(rnd, ctx)
    align_collection(coll, board, ctx)
    results = {h.township.code: coll.results[k] for k, h in enumerate(coll.heads) if h.accepted}
    for fb, path in run.written:
        row = df[df["乡镇代码"] == fb.code].iloc[0]
        assert (fb.score, fb.rank, fb.of, fb.grade) == (row["最终得分"], row["排名"], 9, row["等次"])
        assert [(x.item_id, x.lost) for x in fb.lost] == expected_lost(ctx, results[fb.code])
        assert all(x.reason == results[fb.code].entries.notes.get(x.item_id, "") for x in fb.lost)
        assert path.name == f"2026_{fb.code}_{fb.township}_反馈单.xlsx"
    record = json.loads((rnd.state / "results.json").read_text(encoding="utf-8"))
    assert [t["code"] for t in record["townships"]] == list(df["乡镇代码"])


def test_a_feedback_form_is_locked_validated_identified_and_prints_like_the_form(told):
    rnd, ctx, run = told
    fb, path = run.written[-1]
    lay = feedback_layout(fb, ctx.settings)
    with zipfile.ZipFile(path) as zf:
        props = zf.read("docProps/custom.xml").decode()
        workbook = zf.read("xl/workbook.xml").decode()
    for key, value in lay.identity.items():
        assert f"<vt:lpwstr>{value}</vt:lpwstr>" in props, key
    assert lay.identity["xa_form"] == "feedback" and 'state="veryHidden"' in workbook
    with zipfile.ZipFile(path) as zf:
        xml = zf.read(sheet_part(path, SHEET)).decode()
    assert "<sheetProtection " in xml and 'paperSize="9"' in xml and 'orientation="landscape"' in xml
    assert 'fitToHeight="0"' in xml and "第 &amp;P 页，共 &amp;N 页" in xml
    assert re.search(rf"_xlnm.Print_Titles[^>]*>'?{SHEET}'?!\${lay.header_row + 1}:\${lay.header_row + 1}<", workbook)
    validated = " ".join(re.findall(r'<dataValidation [^>]*sqref="([^"]+)"', xml))
    for _, _, measure, deadline, owner in lay.lines:
        assert measure in validated and deadline in validated and owner in validated
    year = ctx.settings.year                            # a deadline from 1 January of the year to its third year after
    assert re.search(rf'type="date"[^>]*>\s*<formula1>{(dt.date(year, 1, 1) - dt.date(1899, 12, 30)).days}</formula1>'
                     rf'\s*<formula2>{(dt.date(year + 3, 12, 31) - dt.date(1899, 12, 30)).days}</formula2>', xml)
    # the file sent back untouched is recognised as such: 待整改, no issues
    got = check_feedback(rnd, path, path.name, ctx.settings.year)
    assert got.untouched and got.code == fb.code and not got.issues


def test_verdicts_replace_the_self_score_and_give_the_reason(told):
    rnd, ctx, run = told
    coll, board = check_round(rnd, ctx)
    align_collection(coll, board, ctx)
    res = next(coll.results[k] for k, h in enumerate(coll.heads) if h.accepted)
    item = next(i for i in ctx.rubric.base if (res.entries.values.get(i.id) or 0) == i.points)
    verdict = LineVerdict(item.id, item.points, item.points - 0.5, "现场核查缺少会议记录", "王科长")
    [line] = [x for x in lost_lines(ctx, res.entries, False, {item.id: verdict}) if x.item_id == item.id]
    assert (line.self_score, line.final_score, line.lost, line.reason) == (item.points, item.points - 0.5,
                                                                           Decimal("0.5"), "现场核查缺少会议记录")
    ranking = rank_townships(coll, ctx)
    [fb] = [f for f in township_feedback(ranking, coll, ctx, {res.township.code: {item.id: verdict}})
            if f.code == res.township.code]
    assert fb.verified and item.id in [x.item_id for x in fb.lost]


# -- the notice ---------------------------------------------------------------------------------------

def test_the_notice_counts_each_grade_names_the_unranked_and_the_lines_lost_most(tmp_path):
    rnd = samples_round(tmp_path / "r")
    for name in ("吴坝镇.xlsx", "夹河乡2026自评.xlsx"):
        (rnd.returned / name).unlink()
    ctx = load_round_context(rnd)
    coll, board, rk = rank_round(rnd, ctx)
    notice = dict(draft_notice(rk, rk.grades).paragraphs)
    assert [(p.code, p.rank, p.of) for p in read_results(rnd).values()] == [
        (str(c), int(r), 7) for c, r in zip(rk.ranking["乡镇代码"], rk.ranking["排名"])]      # rank records them
    df = rk.ranking
    for g in ctx.settings.grades:
        names = list(df.loc[df["等次"] == g.name, "乡镇"])
        assert notice[f"{g.name}（{len(names)} 个）"] == ("、".join(names) or "无")
    assert notice["未纳入排名"].startswith("2 个：") and "吴坝镇" in notice["未纳入排名"] and "夹河乡" in notice["未纳入排名"]
    # the lines lost most, computed again from each township's entries
    ranked = [coll.results[k] for k, h in enumerate(coll.heads) if h.accepted]
    total: dict[str, Decimal] = {}
    for res in ranked:
        for item_id, lost in expected_lost(ctx, res):
            total[item_id] = total.get(item_id, Decimal(0)) + lost
    top = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(r[0], Decimal(r[4])) for r in county_losses(rk)] == top
    # the sheet in the ranking workbook
    from openpyxl import load_workbook

    wb = load_workbook(rnd.results / "排名.xlsx")
    assert tuple(wb.sheetnames) == RANKING_SHEETS and RANKING_SHEETS[-1] == "考核结果通报"
    cells = [c for row in wb["考核结果通报"].iter_rows(values_only=True) for c in row if c]
    assert "结果通报" in cells[0] and any(str(c).startswith("全县失分最多的 5 项") for c in cells)
    # feedback: a 反馈单 for each ranked township only, exit 1 (some not ranked), the others named
    got = runner.invoke(app, ["feedback", "--round", str(rnd.root)])
    assert got.exit_code == 1, got.output
    assert len(list(rnd.feedback.glob("*.xlsx"))) == 7 and "2 个未纳入排名" in got.output


# -- last year ------------------------------------------------------------------------------------------

def test_last_year_beside_this_year_in_a_round_made_from_the_previous_one(told, tmp_path):
    rnd26, ctx26, run26 = told
    rnd = init_round(tmp_path / "2027考核", from_round=rnd26.root)
    assert read_marker(rnd)["from"] == str(rnd26.root) and previous_round(rnd) == rnd26
    ctx = load_round_context(rnd)
    assert ctx.settings.year == 2027
    rng = random.Random(2027)
    for t in ctx.townships:
        write_filled(ctx, t, rnd.returned, random_values(ctx.rubric, rng), zeroed=False)
    last = last_year_results(rnd)
    assert last == read_results(rnd26)
    _, _, rk = rank_round(rnd, ctx)
    past = {fb.code: fb for fb, _ in run26.written}
    for row in rk.ranking.to_dict("records"):
        p = past[row["乡镇代码"]]
        assert row["上年得分"] == p.score and row["上年名次"] == f"{p.rank}/9" and row["上年等次"] == p.grade
        assert Decimal(row["得分变化"]) == exact(row["最终得分"]) - exact(p.score)
        moved = p.rank - row["排名"]
        assert row["名次变化"] == ("持平" if moved == 0 else f"↑{moved}" if moved > 0 else f"↓{-moved}")
    run = feedback_round(rnd, ctx, workers=1)
    assert all(fb.last is not None and fb.last.rank == past[fb.code].rank for fb, _ in run.written)
    # without the recorded results, last year comes from the previous round's ledger: the same here
    (rnd26.state / "results.json").rename(rnd26.state / "results.json.bak")
    try:
        again = last_year_results(rnd)
    finally:
        (rnd26.state / "results.json.bak").rename(rnd26.state / "results.json")
    assert {c: (p.score, p.rank, p.grade) for c, p in again.items()} == {
        c: (p.score, p.rank, p.grade) for c, p in last.items()}


def test_a_feedback_form_put_among_the_returns_says_where_it_belongs(tmp_path):
    rnd = samples_round(tmp_path / "r")
    ctx = load_round_context(rnd)
    fb, path = feedback_round(rnd, ctx, workers=1).written[0]
    shutil.copy(path, rnd.returned / path.name)
    _, board = check_round(rnd, ctx)
    assert board.count("ok") == 9
    [stray] = board.unassigned
    assert stray.name == f"收回/{path.name}" and stray.issue_codes == ("V439",)


def test_feedback_again_never_overwrites_a_returned_form_put_over_the_one_sent(tmp_path):
    from conftest import patch_zip

    rnd = samples_round(tmp_path / "r")
    ctx = load_round_context(rnd)
    fb, path = feedback_round(rnd, ctx, workers=1).written[0]
    patch_zip(path, "xl/worksheets/sheet1.xml", lambda t: t.replace("</sheetData>", "</sheetData>", 1) + " ")
    returned_bytes = path.read_bytes()
    got = runner.invoke(app, ["feedback", "--round", str(rnd.root)])
    assert got.exit_code == 0, got.output
    [kept] = (rnd.feedback / "报回").iterdir()
    assert kept.name == path.name and kept.read_bytes() == returned_bytes and "报回" in got.output
    assert path.read_bytes() != returned_bytes and len(list(rnd.feedback.glob("*.xlsx"))) == 9


def test_a_round_not_made_from_another_has_no_last_year(told):
    rnd, _, run = told
    assert last_year_results(rnd) is None and all(fb.last is None for fb, _ in run.written)
    assert "上年得分" not in run.ranking.ranking.columns


# -- sent back: filled in by LibreOffice, collected by check ------------------------------------------------

def fill_job(fb, path: Path, ctx, into: Path, complete: bool = True) -> tuple[dict, dict]:
    """A LibreOffice job filling a 反馈单 as the township would (整改措施, 整改时限 as a date, 责任人 on every
    line) and saving it into `into`; not `complete`: the first 整改措施 and the second 整改时限 left blank, the
    third 整改时限 "下月底" (then also where, by cell, and whose)."""
    lay = feedback_layout(fb, ctx.settings)
    sets = []
    for item_id, _, measure, deadline, owner in lay.lines:
        sets += [[SHEET, measure, f"完善{item_id}相关制度并落实"], [SHEET, deadline, {"date": "2027-03-31"}],
                 [SHEET, owner, "李四"]]
    left = {}
    if not complete:
        (_, _, m0, _, _), (_, _, _, d1, _), (_, _, _, d2, _) = lay.lines[:3]
        sets = [s for s in sets if s[1] not in (m0, d1, d2)] + [[SHEET, d2, "下月底"]]
        left = {"measure": m0, "blank": d1, "bad": d2, "code": fb.code}
    return {"in": path, "out": into / path.name, "format": "xlsx", "set": sets}, left


@pytest.fixture(scope="module")
def returned(told, tmp_path_factory):
    """Every 反馈单 filled in and saved by LibreOffice into 反馈/报回/; the last one left incomplete
    (one 整改措施 blank, one 整改时限 blank, one 整改时限 not a date); a copy of the first tampered with
    (protection removed, a locked cell changed) kept apart; the ranking and a 反馈单 rendered to PDF."""
    needs_libreoffice()
    rnd, ctx, run = told
    back = rnd.feedback / "报回"
    back.mkdir()
    apart = tmp_path_factory.mktemp("apart")
    jobs, incomplete = [], {}
    for n, (fb, path) in enumerate(run.written):
        job, left = fill_job(fb, path, ctx, back, complete=n < len(run.written) - 1)
        jobs.append(job)
        incomplete = left or incomplete
    fb0, path0 = run.written[0]
    jobs.append({"in": path0, "out": apart / path0.name, "format": "xlsx",
                 "ops": [["unprotect", SHEET]], "set": [[SHEET, "A6", 100]]})
    jobs.append({"in": back / run.written[0][1].name, "out": apart / "filled.pdf", "format": "pdf"})
    jobs.append({"in": write_ranking(run.ranking, apart / "排名.xlsx"), "out": apart / "排名.pdf", "format": "pdf"})
    results = lo.run_jobs(jobs)
    assert all(r["ok"] for r in results), [r.get("error") for r in results]
    return rnd, ctx, run, incomplete, apart


def test_check_shows_rectified_for_the_filled_and_the_missing_cells_for_the_other(returned):
    rnd, ctx, run, incomplete, _ = returned
    got = runner.invoke(app, ["check", "--round", str(rnd.root), "--json"])
    assert got.exit_code == 0, got.output
    towns = {t["code"]: t for t in json.loads(got.output)["townships"]}
    assert {c: t["feedback"] for c, t in towns.items()} == {
        fb.code: "rectifying" if fb.code == incomplete["code"] else "rectified" for fb, _ in run.written}
    left = [(i["code"], i["sheet"], i["cell"]) for i in towns[incomplete["code"]]["feedback_issues"]]
    assert left == [("V434", SHEET, incomplete["measure"]), ("V435", SHEET, incomplete["blank"]),
                    ("V436", SHEET, incomplete["bad"])]
    assert towns[incomplete["code"]]["feedback_file"].startswith("反馈/报回/")
    for back in (rnd.feedback / "报回").iterdir():           # every 反馈单 received is kept by content
        assert kept_path(rnd.files, hashlib.sha256(back.read_bytes()).hexdigest()).is_file(), back.name
    shown = runner.invoke(app, ["check", "--round", str(rnd.root)]).output
    assert "已整改 8" in shown and "整改未完成 1" in shown and incomplete["measure"] in shown
    status = runner.invoke(app, ["status", "--round", str(rnd.root), "--json"])
    assert {t["code"]: t["feedback"] for t in json.loads(status.output)["townships"]} == {
        c: t["feedback"] for c, t in towns.items()}


def test_the_results_book_shows_the_核定_and_整改_state_check_shows(tmp_path):
    """A round through 核定 and 反馈 (one township never sent; 核定表s filled, one change left unexplained,
    one made stale by a resend; 反馈单s filled by LibreOffice, one incomplete, the rest not back): 核查结果.xlsx,
    as `check` writes it, shows per township the board's state, 核定 stage and 整改 stage, and lists the
    stale 核定表 (C509) and the 反馈单's missing cells (V434-V436) where they are."""
    needs_libreoffice()
    from python_calamine import CalamineWorkbook
    from test_review import fill

    from xlsx_assess.board import STATE_ZH
    from xlsx_assess.results_book import RESULTS_NAME
    from xlsx_assess.workflow import review_round

    rnd = samples_round(tmp_path / "2026考核")
    (rnd.returned / "吴坝镇.xlsx").unlink()                                    # 未收到
    ctx = load_round_context(rnd)
    board, _ = review_round(rnd, ctx, workers=1)
    A, B, C, D = [line.code for line in board.lines if line.state == "ok"][:4]
    fill(rnd, ctx, board, A, {"A01": 1.0}, {"A01": "无研究部署记录"})             # 已核定
    fill(rnd, ctx, board, B, {"C01": 2.0}, {})                                  # a change with no reason
    fill(rnd, ctx, board, D, {}, {})                                            # made stale below
    run = feedback_round(rnd, ctx, workers=1)
    sent = {fb.code: (fb, path) for fb, path in run.written}
    back = rnd.feedback / "报回"
    back.mkdir()
    (done, _), (half, left) = (fill_job(*sent[code], ctx, back, complete=code == A) for code in (A, B))
    assert all(r["ok"] for r in lo.run_jobs([done, half]))
    write_filled(ctx, ctx.roster[D], rnd.returned, {i.id: i.points if i.kind == "base" else None
                                                    for i in ctx.rubric.items if i.kind != "zero"},
                 zeroed=False, name="重报.xlsx")
    got = runner.invoke(app, ["check", "--round", str(rnd.root), "--json"])
    assert got.exit_code == 1, got.output                                       # 吴坝镇 未收到
    towns = {t["township"]: t for t in json.loads(got.output)["townships"]}
    by_code = {t["code"]: t for t in towns.values()}
    assert (by_code[A]["review"], by_code[A]["feedback"]) == ("verified", "rectified")
    assert (by_code[B]["review"], by_code[B]["feedback"]) == ("pending", "rectifying")
    assert (by_code[C]["review"], by_code[C]["feedback"]) == ("pending", "sent")
    assert (by_code[D]["review"], by_code[D]["feedback"]) == ("stale", "sent")
    assert towns["吴坝镇"]["state"] == "missing"

    wb = CalamineWorkbook.from_path(str(rnd.results / RESULTS_NAME))
    sheet = wb.get_sheet_by_name("核查情况").to_python()
    head = next(k for k, row in enumerate(sheet) if row[0] == "序号")
    rows = {r["乡镇"]: r for r in (dict(zip(sheet[head], row)) for row in sheet[head + 1:])}
    assert set(rows) == set(towns)
    for name, t in towns.items():                                               # the board's words, line by line
        r = rows[name]
        assert (r["状态"], r["核定"].split("\n")[0], r["整改"].split("\n")[0]) == (
            STATE_ZH[t["state"]], STATE_ZH.get(t.get("review", ""), ""), STATE_ZH.get(t.get("feedback", ""), ""))
    b = by_code[B]["township"]
    assert "1 处错误" in rows[b]["核定"] and "3 处未完成" in rows[b]["整改"]
    assert rows[by_code[A]["township"]]["核定得分"] == float(by_code[A]["reviewed_score"])
    top = "\n".join(str(row[0]) for row in sheet[:head])
    assert "核定：已核定 1，待核定 6，核定表已过期 1。" in top and "反馈单：待整改 6，整改未完成 1，已整改 1。" in top

    issues = wb.get_sheet_by_name("问题清单").to_python()
    listed = issues[next(k for k, row in enumerate(issues) if row[0] == "乡镇") + 1:]
    missing = [(r[1], r[2], r[4]) for r in listed if r[0] == b and r[4].startswith("V43")]
    assert missing == [(by_code[B]["feedback_file"], f"{SHEET} › {left[k]}", code)
                       for k, code in (("measure", "V434"), ("blank", "V435"), ("bad", "V436"))]
    assert [(r[1], r[2]) for r in listed if r[0] == by_code[D]["township"] and r[4] == "C509"] == [
        (by_code[D]["review_file"], "整个文件")]
    assert any(r[0] == b and r[4] == "V420" and r[1] == by_code[B]["review_file"] for r in listed)


def test_a_tampered_feedback_form_is_reported_at_its_cells(returned):
    rnd, ctx, run, _, apart = returned
    fb, path = run.written[0]
    got = check_feedback(rnd, apart / path.name, path.name, ctx.settings.year)
    codes = {(i.code, i.cell) for i in got.issues}
    assert ("V432", "A6") in codes and any(c == "V433" for c, _ in codes) and not got.complete


def test_a_feedback_form_from_an_earlier_feedback_run_is_stale(returned, tmp_path):
    rnd, ctx, run, _, _ = returned
    fb, path = run.written[0]
    filled = rnd.feedback / "报回" / path.name
    latest = json.loads((rnd.state / "feedback" / "latest.json").read_text(encoding="utf-8"))
    (rnd.state / "feedback" / "latest.json").write_text(json.dumps(dict(latest, **{fb.code: "0" * 16})),
                                                         encoding="utf-8")
    try:
        got = check_feedback(rnd, filled, path.name, ctx.settings.year)
    finally:
        (rnd.state / "feedback" / "latest.json").write_text(json.dumps(latest), encoding="utf-8")
    assert [i.code for i in got.issues] == ["V431"]
    stray = tmp_path / "x.xlsx"
    shutil.copy(filled, stray)
    from conftest import patch_zip

    patch_zip(stray, "docProps/custom.xml", lambda t: t.replace(fb.code, "410927999", 1))
    assert [i.code for i in check_feedback(rnd, stray, "x.xlsx", ctx.settings.year).issues] == ["V430"]
    form = next(rnd.returned.glob("*.xlsx"))
    assert [i.code for i in check_feedback(rnd, form, form.name, ctx.settings.year).issues] == ["V430"]
    broken = tmp_path / "y.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really")
    got = check_feedback(rnd, broken, "y.xlsx", ctx.settings.year)
    assert got.code == "" and [i.code[0] for i in got.issues] == ["F"]


def test_the_feedback_form_renders_on_a4_with_its_header_on_every_page(returned):
    rnd, ctx, run, _, apart = returned
    pdf = apart / "filled.pdf"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    pages = [p for p in text.split("\f") if p.strip()]
    fb, _ = run.written[0]
    assert f"第1页，共{len(pages)}页" in re.sub(r"\s+", "", pages[0])
    assert "考核结果反馈单" in pages[0] and fb.township in pages[0] and "完善" in pages[0]
    for page in pages:
        assert "整改措施" in page and "责任人" in page        # the table's header repeated on every page


def test_the_notice_sheet_prints_on_its_own_page_with_the_counts(returned):
    _, ctx, run, _, apart = returned
    text = subprocess.run(["pdftotext", "-layout", str(apart / "排名.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    last = re.sub(r"\s+", "", [p for p in text.split("\f") if p.strip()][-1])
    df = run.ranking.ranking
    assert "结果通报" in last and "全县失分最多的5项" in last and "整改要求" in last
    for g in ctx.settings.grades:
        assert f"{g.name}（{int((df['等次'] == g.name).sum())}个）" in last


def test_a_deadline_is_a_date_cell_or_text_written_as_one():
    import datetime as dt

    assert book.as_date(dt.datetime(2027, 3, 31, 0, 0)) == dt.date(2027, 3, 31)
    assert book.as_date("2027年3月31日") == book.as_date(" 2027-3-31 ") == dt.date(2027, 3, 31)
    assert book.as_date("2027-02-30") is None and book.as_date("下月底") is None and book.as_date(46477.0) is None


# -- on 核定分: the round's 核定表s (review) ---------------------------------------------------------------

def test_feedback_rests_on_the_核定分_and_gives_the_核定说明(tmp_path):
    from test_review import expected_final, fill

    from xlsx_assess.workflow import review_round

    rnd = samples_round(tmp_path / "r")
    ctx = load_round_context(rnd)
    board, _ = review_round(rnd, ctx, workers=1)
    A, B = ctx.townships[0].code, ctx.townships[1].code
    entered = fill(rnd, ctx, board, A, {"A01": 1.0, "B02": 1.5}, {"A01": "无研究部署记录", "B02": "目录更新不及时"})
    fill(rnd, ctx, board, B, {}, {})                                              # verified as is
    own = board.reviews.accepted[A]
    run = feedback_round(rnd, ctx, workers=1)
    told = {fb.code: fb for fb, _ in run.written}
    a = told[A]
    assert Decimal(str(a.score)) == expected_final(ctx, entered)                # the ranking's, on 核定分, exactly
    assert a.verified and a.adjusted == 2 and told[B].verified and told[B].adjusted == 0
    assert not told[ctx.townships[2].code].verified
    lost = {x.item_id: x for x in a.lost}
    points = {i.id: i.points for i in ctx.rubric.items}
    for item_id, new, why in (("A01", 1.0, "无研究部署记录"), ("B02", 1.5, "目录更新不及时")):
        if new < points[item_id]:
            assert (lost[item_id].self_score, lost[item_id].final_score, lost[item_id].reason) == (
                own.values[item_id], new, why)
            assert lost[item_id].lost == Decimal(str(points[item_id])) - Decimal(str(new))
        else:
            assert item_id not in lost
    # the category table: 自评 from the return, 核定 as the ranking counts it
    cats = {c.category: c for c in a.categories}
    row = run.ranking.categories[run.ranking.categories["乡镇代码"] == A].iloc[0]
    assert all(cats[c].final_score == row[c] for c in cats)
    assert sum(Decimal(str(c.self_score)) for c in a.categories) != sum(Decimal(str(c.final_score)) for c in a.categories)


def test_a_returned_form_that_cannot_be_moved_aside_is_r302_not_a_traceback(tmp_path):
    from conftest import patch_zip

    rnd = samples_round(tmp_path / "r")
    ctx = load_round_context(rnd)
    fb, path = feedback_round(rnd, ctx, workers=1).written[0]
    patch_zip(path, "xl/worksheets/sheet1.xml", lambda t: t + " ")
    returned_bytes = path.read_bytes()
    (rnd.feedback / "报回").write_text("not a folder")       # where it would go: as if locked on Windows
    got = runner.invoke(app, ["feedback", "--round", str(rnd.root)])
    assert got.exit_code == 2 and "R302" in got.output and "Traceback" not in got.output
    assert path.read_bytes() == returned_bytes                  # the township's file untouched


def test_feedback_stopped_part_way_keeps_the_forms_it_wrote_current(tmp_path, monkeypatch):
    """A run stopped by a file it cannot write (held open in WPS): the 反馈单s written before it are the
    ones `check` expects back, the rest stay the earlier run's."""
    from xlsx_assess import feedback_book
    from xlsx_assess.feedback_book import read_latest
    from xlsx_assess.issues import AssessError
    from xlsx_assess.writer import unwritable

    rnd = samples_round(tmp_path / "r")
    ctx = load_round_context(rnd)
    first = read_latest(rnd) if feedback_round(rnd, ctx, workers=1) else None
    real, calls = feedback_book.write_feedback, []

    def held_open_at_the_fourth(fb, s, path, *args):
        calls.append(fb.code)
        if len(calls) == 4:
            raise unwritable(path, PermissionError("held open"), replacing=True)
        return real(fb, s, path, *args)

    monkeypatch.setattr(feedback_book, "write_feedback", held_open_at_the_fourth)
    layout = feedback_book.feedback_layout

    def revised(*args, **kwargs):                              # every 反馈单 differs from the first run's
        lay = layout(*args, **kwargs)
        lay.identity["xa_feedback_id"] = lay.identity["xa_feedback_id"][::-1]
        return lay

    monkeypatch.setattr(feedback_book, "feedback_layout", revised)
    with pytest.raises(AssessError) as stop:
        feedback_round(rnd, ctx, workers=1)
    assert len(calls) == 4 and stop.value.report.issues[0].code == "R302"
    now = read_latest(rnd)
    assert set(now) == set(first)
    changed = {code for code in now if now[code] != first[code]}
    assert changed == set(calls[:3])


def test_feedback_refuses_before_writing_when_one_form_cannot_be_written(tmp_path):
    rnd = samples_round(tmp_path / "r")
    ctx = load_round_context(rnd)
    fb, path = feedback_round(rnd, ctx, workers=1).written[-1]
    path.unlink()
    path.mkdir()                                      # where the last one goes: a folder
    before = {p.name: p.stat().st_mtime_ns for p in rnd.feedback.glob("*.xlsx") if p.is_file()}
    got = runner.invoke(app, ["feedback", "--round", str(rnd.root)])
    assert got.exit_code == 2 and "R302" in got.output and "夹河乡" in got.output
    assert {p.name: p.stat().st_mtime_ns for p in rnd.feedback.glob("*.xlsx") if p.is_file()} == before   # none rewritten
