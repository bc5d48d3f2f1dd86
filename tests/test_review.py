"""核定: the county's verification of the accepted returns, from `review` to the ranking on 核定分.

The nine samples' round: `review` writes nine 核定表s; the 考核组 fills them (lines changed with reasons,
one changed without a reason, one made stale by a resend); `check` reports each at its cell and the board
says 已核定 / 待核定 / 核定表已过期; `rank` scores the verified townships on 核定分, exactly as an
independent computation (tests/oracle.py) from the 核定分 entered. LibreOffice fills, recalculates and
saves one 核定表, which `check` accepts; one is rendered to PNG (docs/review.png).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import lo
from fills import write_filled
from oracle import oracle, shown
from test_round import SAMPLES, bundled, make_round, use_context
from xlsx_assess import scoring
from xlsx_assess.cli import app
from xlsx_assess.ledger import Ledger, kept_path
from xlsx_assess.ranking import ADJUSTMENT_SHEET, REVIEWED_SHEETS, is_ranking_workbook
from xlsx_assess.reader import read_returned
from xlsx_assess.review import (REVIEW_SHEET, SelfAssessed, check_review, review_file_name,
                                review_layout, write_review)
from xlsx_assess.workflow import check_round, rank_round, review_round

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
runner = CliRunner()
SIGNED = "王核查"
DAY = dt.date(2027, 1, 15)


@pytest.fixture
def samples_round(tmp_path, monkeypatch):
    ctx = bundled()
    rnd = make_round(tmp_path / "2026考核")
    for f in SAMPLES.iterdir():
        shutil.copy(f, rnd.returned / f.name)
    use_context(monkeypatch, ctx)
    return rnd, ctx


def fill(rnd, ctx, board, code: str, changes: dict, reasons: dict, signed: bool = True) -> dict:
    """Fill a township's 核定表 as the 考核组 would (by rewriting it with its inputs set); the 核定分 entered."""
    t = ctx.roster[code]
    own = board.reviews.accepted[code]
    lay = review_layout(ctx.rubric, t, ctx.settings, own)
    decided = {lay.score_cell(i): v for i, v in changes.items()}
    decided.update({lay.reason_cell(i): text for i, text in reasons.items()})
    if signed:
        decided.update({lay.reviewer_cell: SIGNED, lay.date_cell: DAY})
    filled = review_layout(ctx.rubric, t, ctx.settings, own, decided)
    write_review(filled, rnd.reviews / review_file_name(t, ctx.settings.year))
    values = {i.id: own.values.get(i.id) for i in ctx.rubric.items if i.kind != "zero"}
    values.update({i: v for i, v in changes.items() if i in values})
    return values


def expected_final(ctx, values: dict, zeroed: bool = False) -> Decimal:
    """The final score from the 核定分 entered, computed independently (fractions, tests/oracle.py)."""
    s = ctx.settings
    typed = {i: None if v is None else repr(float(v)) for i, v in values.items()}
    got = oracle(ctx.rubric, typed, zeroed, repr(s.bonus_cap), repr(s.deduction_cap), s.score_decimals)
    return Decimal(shown(got["最终得分"], s.score_decimals))


def located(issues) -> set[tuple[str, str, str]]:
    return {(i.code, i.sheet, i.cell) for i in issues}


def test_a_round_from_returns_to_the_ranking_on_核定分(samples_round):
    rnd, ctx = samples_round
    board, done = review_round(rnd, ctx)
    assert [d.action for d in done] == ["written"] * 9
    assert {line.review for line in board.lines} == {"pending"}
    codes = [t.code for t in ctx.townships]
    A, B, C, D, E = codes[:5]

    entered = {
        A: fill(rnd, ctx, board, A, {"A01": 1.0, "B02": 1.5}, {"A01": "无研究部署记录", "B02": "目录更新不及时"}),
        B: fill(rnd, ctx, board, B, {"C01": 2.0}, {}),                       # changed, no reason
        C: fill(rnd, ctx, board, C, {}, {}),                                 # verified as is
        D: fill(rnd, ctx, board, D, {"D03": 3.0, "S01": 1.0}, {"D03": "抽查 3 条未按时公开", "S01": "补记市级媒体报道 1 篇"}),
        E: fill(rnd, ctx, board, E, {"A02": 0.5, "S07": 1.0}, {"A02": "无发布记录", "S07": "逾期 2 次"}),  # made stale below
    }
    old_a02 = board.reviews.accepted[E].values["A02"]
    resent = write_filled(ctx, ctx.roster[E], rnd.returned, {i.id: (i.points if i.kind == "base" else None)
                                                            for i in ctx.rubric.items if i.kind != "zero"},
                          zeroed=False, name="马楼镇-重报.xlsx")
    _, board = check_round(rnd, ctx)
    lines = {line.code: line for line in board.lines}
    assert {c: lines[c].review for c in codes} == {A: "verified", B: "pending", C: "verified", D: "verified",
                                                    E: "stale", **{c: "pending" for c in codes[5:]}}
    lay_b = review_layout(ctx.rubric, ctx.roster[B], ctx.settings, board.reviews.accepted[B])
    assert ("V420", REVIEW_SHEET, lay_b.reason_cell("C01")) in located(lines[B].review_issues)
    assert [i.code for i in lines[E].review_issues] == ["C509"]
    assert lines[A].reviewed_score == expected_final(ctx, entered[A])
    assert all("V422" in {i.code for i in lines[c].review_issues} for c in codes[5:])

    # `review` keeps a filled stale 核定表 without --refresh, rewrites it with it (the old one stays kept)
    stale = rnd.reviews / review_file_name(ctx.roster[E], ctx.settings.year)
    before = stale.read_bytes()
    _, done = review_round(rnd, ctx)
    assert {d.code: d.action for d in done}[E] == "filled" and stale.read_bytes() == before
    board, done = review_round(rnd, ctx, refresh=True)
    assert {d.code: d.action for d in done}[E] == "refreshed"
    assert {d.code: d.action for d in done}[A] == "kept"
    import hashlib

    with Ledger.of_round(rnd) as ledger:
        assert kept_path(ledger.files, hashlib.sha256(before).hexdigest()).is_file()
        assert {row[3] for row in ledger.reviews()} >= {A, B, C, D, E}
    assert {line.code: line.review for line in board.lines}[E] == "pending"
    again = board.reviews.chosen[E]                  # the decisions that still apply are carried over
    same = old_a02 == next(i.points for i in ctx.rubric.items if i.id == "A02")     # the resend gives full marks
    assert again.decided.values["A02"] == (0.5 if same else 1.5)
    assert again.decided.reasons.get("A02") == ("无发布记录" if same else None)
    assert again.decided.values["S07"] is None and "S07" not in again.decided.reasons   # its 自评分 changed
    assert again.decided.reviewer == "" and not again.errors          # signed anew, and nothing unexplained
    assert board.reviews.accepted[E].sha256 == read_returned(resent).sha256

    # status (from the ledger alone) shows the same stages
    got = runner.invoke(app, ["status", "--round", str(rnd.root), "--json"])
    assert {t["code"]: t["review"] for t in json.loads(got.output)["townships"]}[A] == "verified"

    coll, board, rk = rank_round(rnd, ctx, now=dt.datetime(2027, 1, 20, 9, tzinfo=dt.timezone.utc))
    table = rk.ranking.set_index("乡镇代码")
    for code in (A, C, D):
        want = expected_final(ctx, entered[code])
        assert Decimal(scoring.show(table.loc[code, "最终得分"], 2)) == want
        assert Decimal(scoring.show(table.loc[code, "核定得分"], 2)) == want
        assert table.loc[code, "核定情况"] == "已核定"
        diff = Decimal(scoring.show(table.loc[code, "核定差额"], 2))
        assert diff == want - Decimal(scoring.show(table.loc[code, "自评得分"], 2))
    for code in (B, E, *codes[5:]):
        assert table.loc[code, "最终得分"] == table.loc[code, "自评得分"]
        assert table.loc[code, "核定情况"].startswith("未核定")
    ranks = table["排名"].to_dict()
    finals = table["最终得分"].to_dict()
    assert all(ranks[c] == 1 + sum(f > finals[c] for f in finals.values()) for c in codes)
    assert rk.preliminary and set(rk.unverified) == {ctx.roster[c].name for c in (B, E, *codes[5:])}
    adj = rk.adjustments
    assert sorted(zip(adj["乡镇代码"], adj["编号"])) == sorted([(A, "A01"), (A, "B02"), (D, "D03"), (D, "S01")])
    assert set(adj["核查人"]) == {SIGNED} and adj["核定说明"].str.len().min() > 0
    book = rnd.results / "排名.xlsx"
    assert is_ranking_workbook(book)
    assert (rnd.results / "排名.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    import zipfile

    with zipfile.ZipFile(book) as zf:
        names = re.findall(r'<sheet [^>]*name="([^"]*)"', zf.read("xl/workbook.xml").decode())
        xml = "".join(zf.read(n).decode() for n in zf.namelist() if n.startswith("xl/") and n.endswith(".xml"))
    assert tuple(names) == REVIEWED_SHEETS and ADJUSTMENT_SHEET in names
    assert "初步排名" in xml


def test_review_and_rank_from_the_command_line(samples_round, monkeypatch):
    rnd, ctx = samples_round
    monkeypatch.chdir(rnd.root)
    got = runner.invoke(app, ["review"])
    assert got.exit_code == 0, got.output
    assert len(list(rnd.reviews.glob("*.xlsx"))) == 9
    got = runner.invoke(app, ["check", "--json"])
    data = json.loads(got.output)
    assert got.exit_code == 0 and {t["review"] for t in data["townships"]} == {"pending"}
    got = runner.invoke(app, ["rank", "--json"])
    assert got.exit_code == 0, got.output
    data = json.loads(got.output)
    assert all(r["verified"] is False and r["reviewed_final"] is None for r in data["ranking"])
    assert (rnd.results / "排名.xlsx").is_file() and (rnd.results / "排名.csv").is_file()


def test_a_核定表_that_is_not_sealed_or_not_ours_is_reported(samples_round, tmp_path):
    rnd, ctx = samples_round
    board, _ = review_round(rnd, ctx)
    code = ctx.townships[0].code
    own = board.reviews.accepted[code]
    t = ctx.roster[code]
    lay = review_layout(ctx.rubric, t, ctx.settings, own)
    forged = SelfAssessed(own.sha256, {**own.values, "A01": 0.0}, own.zeroed, own.notes, own.evidence)
    path = write_review(review_layout(ctx.rubric, t, ctx.settings, forged), tmp_path / "forged.xlsx")
    res = check_review(read_returned(path), ctx, {code: own})
    assert ("S303", REVIEW_SHEET, lay.self_cell("A01")) in located(res.issues) and not res.valid
    form = next(SAMPLES.iterdir())
    res = check_review(read_returned(form), ctx, {code: own})
    assert [i.code for i in res.issues] == ["I201"] and res.township is None
    bad = {lay.score_cell("A01"): 9.0, lay.score_cell("A02"): "abc", lay.reviewer_cell: SIGNED, lay.date_cell: DAY}
    path = write_review(review_layout(ctx.rubric, t, ctx.settings, own, bad), tmp_path / "bad.xlsx")
    res = check_review(read_returned(path), ctx, {code: own})
    assert {("V421", REVIEW_SHEET, lay.score_cell("A01")), ("V421", REVIEW_SHEET, lay.score_cell("A02"))} <= located(res.issues)


# -- LibreOffice: fills, recalculates, saves; and the picture -----------------------------------------------

def test_libreoffice_fills_a_核定表_and_check_accepts_it(samples_round, tmp_path):
    reason = lo.available()
    if reason:
        pytest.skip(reason)
    rnd, ctx = samples_round
    board, _ = review_round(rnd, ctx)
    code = ctx.townships[1].code
    t, own = ctx.roster[code], board.reviews.accepted[code]
    lay = review_layout(ctx.rubric, t, ctx.settings, own)
    path = rnd.reviews / review_file_name(t, ctx.settings.year)
    changes = {"A01": 0.5, "C02": 1.25, "S07": 1.0}
    sets = [[REVIEW_SHEET, lay.score_cell(i), v] for i, v in changes.items()]
    sets += [[REVIEW_SHEET, lay.reason_cell(i), f"核查：{i} 佐证不足"] for i in changes]
    sets += [[REVIEW_SHEET, lay.reviewer_cell, SIGNED], [REVIEW_SHEET, lay.date_cell, {"date": "2027-01-15"}]]
    final_ref = lay.totals["最终得分"][1]
    saved, tampered = tmp_path / "lo.xlsx", tmp_path / "tampered.xlsx"
    res, bad = lo.run_jobs([
        {"in": str(path), "out": str(saved), "format": "xlsx", "set": sets, "read": [[REVIEW_SHEET, final_ref]]},
        {"in": str(path), "out": str(tampered), "format": "xlsx", "ops": [["unprotect", REVIEW_SHEET]],    # a 自评分
         "set": [[REVIEW_SHEET, lay.self_cell("A01"), 0.5], *sets]}])                                # "corrected"
    assert res["ok"], res.get("error")
    assert bad["ok"], bad.get("error")
    broken = check_review(read_returned(tampered), ctx, {code: own})
    assert {("S303", REVIEW_SHEET, lay.self_cell("A01")), ("S305", REVIEW_SHEET, "")} <= located(broken.issues)
    assert not broken.valid
    shutil.copy(saved, path)
    values = {i.id: own.values.get(i.id) for i in ctx.rubric.items if i.kind != "zero"}
    values.update(changes)
    want = expected_final(ctx, values, own.zeroed)
    assert Decimal(scoring.show(res["read"][0]["value"], 2)) == want       # LibreOffice's own total
    _, board = check_round(rnd, ctx)
    line = {line.code: line for line in board.lines}[code]
    assert line.review == "verified", [i.render() for i in line.review_issues]
    assert line.review_issues == ()            # LibreOffice's totals (V408 otherwise), the seal, every input: all as ours
    assert line.reviewed_score == want
    _, _, rk = rank_round(rnd, ctx)
    assert Decimal(scoring.show(rk.ranking.set_index("乡镇代码").loc[code, "最终得分"], 2)) == want


def test_render_a_核定表(samples_round, tmp_path):
    reason = lo.available()
    if reason:
        pytest.skip(reason)
    if shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils not installed")
    rnd, ctx = samples_round
    board, _ = review_round(rnd, ctx)
    code = ctx.townships[0].code
    fill(rnd, ctx, board, code, {"A01": 1.0, "A04": 0.5, "S01": 1.0},
         {"A01": "无研究部署记录", "S01": "仅 1 篇为市级媒体报道"})        # A04 left without a reason: red
    path = rnd.reviews / review_file_name(ctx.roster[code], ctx.settings.year)
    pdf = Path(lo.convert(path, tmp_path, "pdf"))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True).stdout
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 2
    for k, page in enumerate(pages, start=1):
        assert "核定分" in page and "核定说明" in page, k                   # the header row on every page
        assert f"第 {k} 页，共 {len(pages)} 页" in page
    assert "核查人（签字）" in pages[-1] and "最终得分" in pages[-1]
    subprocess.run(["pdftoppm", "-r", "70", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True)
    page = next(tmp_path.glob("page*.png"))
    DOCS.mkdir(exist_ok=True)
    shutil.copy(page, tmp_path / "review.png")
    if not (DOCS / "review.png").exists():
        shutil.copy(page, DOCS / "review.png")


@pytest.mark.parametrize("typed", ["1.5", "１.５", " 1 ", "1.5分"])
def test_a_verified_score_typed_as_text_is_refused(typed):
    """The 核定表's totals skip text, so a 核定分 held as text would make the signed total differ from the
    published one: V421 at its cell, whatever the text says."""
    from xlsx_assess.review import ReviewResult, _score
    from xlsx_assess.rubric import Item

    res = ReviewResult("x.xlsx", "0" * 64)
    assert _score(typed, Item("A01", "类", "指标", "标准", "base", 2.0), 2, "I7", res) is None
    assert [(i.code, i.cell) for i in res.issues] == [("V421", "I7")]
