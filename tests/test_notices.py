"""What the clerk sends: the notices per township and 核查结果.xlsx, from boards built by hand (a round's
own 核查结果.xlsx after 核定 and 反馈: tests/test_feedback.py)."""

from __future__ import annotations

import dataclasses

import datetime as dt
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

import lo
from conftest import needs_libreoffice

from xlsx_assess.board import Board, FileEntry, TownshipLine
from xlsx_assess.checks import Context
from xlsx_assess.feedback_book import SHEET as FEEDBACK_SHEET
from xlsx_assess.layout import META_SHEET, REVIEW_SHEET
from xlsx_assess.issues import AssessError, Code, issue
from xlsx_assess.notices import MAX_ITEMS, item_rows, listed, notice_for, notices
from xlsx_assess.results_book import RESULTS_NAME, SHEETS, write_results
from xlsx_assess.settings import Township

CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 11, 30, 20, 15, tzinfo=CST)
FORM = "评分表"
NAMES = ("王芳", "李建国", "张丽", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周婷", "吴刚")


def _issues(ctx: Context, k: int, name: str) -> tuple:
    """Issues of township number `k`'s latest file: a few kinds, located on rubric lines."""
    rows = {item: row for row, item in item_rows(ctx.rubric, ctx.settings).items()}
    cell = lambda item: f"G{rows[item] + 1}"      # noqa: E731
    items = [i for i in ctx.rubric.items if i.kind == "base"]
    if k % 8 == 1:                                 # one wrong score, one warning
        return (issue(Code.PHONE_MISSING, file=name, sheet=FORM, cell="C83"),
                issue(Code.SCORE_OUT_OF_RANGE, file=name, sheet=FORM, cell=cell("A01"), value=12, limit="1.5"))
    if k % 8 == 5:                                 # an old form: the whole file
        return (issue(Code.WRONG_YEAR, file=name, value=2025, expected=2026),)
    # many blanks: more than a notice lists
    return tuple(issue(Code.SCORE_MISSING, file=name, sheet=FORM, cell=cell(i.id), label=i.label,
                       limit=i.points) for i in items[:MAX_ITEMS + 3]) + (
        issue(Code.PROTECTION_REMOVED, file=name, sheet=FORM),)


def _board(ctx: Context, suspect: bool = False) -> Board:
    """Every township in turn 已合格, 需改正, 未收到 (and 需改正 again, with other issues)."""
    lines = []
    for k, t in enumerate(ctx.townships):
        state = ("ok", "fix", "missing", "fix")[k % 4]
        name = f"2026_{t.code}_{t.name}.xlsx"
        common = dict(code=t.code, township=t.name, state=state)
        if state == "missing":
            lines.append(TownshipLine(**common))
            continue
        got = NOW - dt.timedelta(days=k % 5, hours=k)
        entry = FileEntry("ab" * 32, name, got, "ok" if state == "ok" else "error", township_code=t.code)
        lines.append(TownshipLine(**common, file=name, sha256=entry.sha256, received=got,
                                  score=Decimal("92.5") - k if state == "ok" else None,
                                  grade="优秀" if state == "ok" and k < 3 else "良好" if state == "ok" else "",
                                  reporter=NAMES[k % len(NAMES)], phone=f"1390393{k:04d}",
                                  issues=() if state == "ok" else _issues(ctx, k, name), history=(entry,)))
    setup = issue(Code.WRONG_YEAR, value=2027, expected=2026) if suspect else None
    return Board(lines, setup_suspect=setup,
                 unassigned=[FileEntry("cd" * 32, "新建 Microsoft Excel 工作表.xlsx", NOW, "error")])


# After 核定 and 反馈: the 已合格 lines in turn at these (核定, 整改) stages.
STAGES = (("verified", "rectified"), ("pending", "rectifying"), ("stale", "sent"), ("pending", ""))


def _staged(ctx: Context) -> Board:
    """`_board` once 核定 and 反馈 began: each 已合格 line in turn 已核定 and 已整改; 待核定 (a change with
    no reason) and 整改未完成 (three cells still missing); 核定表已过期 and 待整改; 待核定 alone."""
    lines, k = [], 0
    for line in _board(ctx).lines:
        if line.state != "ok":
            lines.append(line)
            continue
        review, feedback = STAGES[k % len(STAGES)]
        k += 1
        sheet = f"核定/2026_{line.code}_{line.township}_核定表.xlsx"
        sent = f"反馈/报回/2026_{line.township}_反馈单.xlsx" if feedback else ""
        found = {"stale": (issue(Code.REVIEW_STALE, file=sheet, sheet=META_SHEET, value=line.township,
                                 detail="ab" * 6, expected="另一个文件"),),
                 "pending": (issue(Code.REVIEW_UNSIGNED, file=sheet, sheet=REVIEW_SHEET, value="核查人"),)}
        review_issues = found.get(review, ())
        if k % len(STAGES) == 2:                  # a 核定分 changed with no 核定说明
            review_issues = (issue(Code.REVIEW_REASON_MISSING, file=sheet, sheet=REVIEW_SHEET, cell="H9",
                                   value="C01", detail=2, expected=3),) + review_issues
        left = () if feedback != "rectifying" else (
            issue(Code.FEEDBACK_MEASURE_MISSING, file=sent, sheet=FEEDBACK_SHEET, cell="F8", label="A01"),
            issue(Code.FEEDBACK_DEADLINE_MISSING, file=sent, sheet=FEEDBACK_SHEET, cell="G9", label="B02",
                  expected="2027-03-31"),
            issue(Code.FEEDBACK_DEADLINE_INVALID, file=sent, sheet=FEEDBACK_SHEET, cell="G10", label="C01",
                  value="下月底", expected="2027-03-31"))
        lines.append(dataclasses.replace(
            line, review=review, review_file=sheet, review_issues=review_issues,
            reviewed_score=Decimal("90.25") if review == "verified" else None,
            reviewer="王核查" if review == "verified" else "",
            feedback=feedback, feedback_file=sent, feedback_issues=left))
    return dataclasses.replace(_board(ctx), lines=lines)


@pytest.fixture
def shanghai(monkeypatch):
    """The machine's clock set to the county's zone, as it is in the field."""
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _thirty(ctx: Context) -> Context:
    towns = [Township(f"4109273{k:02d}", f"第{k + 1}乡镇", "乡") for k in range(30)]
    return Context(ctx.rubric, ctx.settings, towns)


# -- the notices ------------------------------------------------------------------------------------

def test_a_return_notice_names_each_place_errors_first_and_the_deadline(ctx):
    s = ctx.settings
    board = _board(ctx)
    fix = board.lines[1]                          # k=1: a wrong score in A01, a missing phone
    text = notice_for(fix, s, item_rows(ctx.rubric, s))
    assert fix.township in text and fix.file in text
    assert "评分表 › G5（编号 A01）" in text and "评分表 › C83" in text
    assert text.index("G5") < text.index("C83")   # the error before the warning
    assert s.deadline in text and s.contact_phone in text and s.contact_person in text
    assert ".xlsx" in text and "同一个文件" in text            # a value to mend: in the same file
    assert "请让乡镇" not in text                  # spoken to the township, not to the clerk


def test_a_long_list_stops_at_ten_and_counts_the_rest(ctx):
    board = _board(ctx)
    many = board.lines[3]                          # k=3: 13 blanks and a warning
    text = notice_for(many, ctx.settings, item_rows(ctx.rubric, ctx.settings))
    numbered = re.findall(r"^(\d+)\. ", text, re.M)
    assert numbered == [str(n) for n in range(1, MAX_ITEMS + 1)]
    assert f"等 {len(many.issues)} 项" in text
    assert "评分表 › G5：“A01 " in text           # the message names its line: not named twice


def test_a_whole_file_issue_is_listed_without_a_cell(ctx):
    line = next(l for l in _board(ctx).lines if l.issues and l.issues[0].code == Code.WRONG_YEAR)
    hidden = dataclasses.replace(line, file="收回/网页上传/20261130-1/旧表.xlsx",
                                 issues=tuple(dataclasses.replace(i, sheet=META_SHEET) for i in line.issues))
    shown = notice_for(hidden, ctx.settings)                # what the township never sees is not named
    assert META_SHEET not in shown and "网页上传" not in shown and "（文件：旧表.xlsx）" in shown
    text = notice_for(line, ctx.settings)
    assert "2025 年度" in text and ctx.settings.deadline in text
    assert "原表重新填写" in text and "同一个文件" not in text  # another year's form: refill the one sent


def test_chase_and_receipt(ctx):
    board = _board(ctx)
    missing, ok = board.lines[2], board.lines[0]
    chase = notice_for(missing, ctx.settings)
    assert missing.township in chase and ctx.settings.deadline in chase and ctx.settings.contact_phone in chase
    receipt = notice_for(ok, ctx.settings)
    assert "合格" in receipt and "92.50" in receipt


def test_notices_are_for_fix_and_missing_in_board_order(ctx):
    board = _board(ctx)
    sent = notices(board, ctx.settings)
    assert [line.code for line, _ in sent] == [l.code for l in board.lines if l.state != "ok"]
    with_receipts = notices(board, ctx.settings, receipts=True)
    assert len(with_receipts) == len(board.lines)


@pytest.mark.parametrize("thirty", [False, True], ids=["9", "30"])
def test_notices_are_plain_short_lines(ctx, thirty):
    c = _thirty(ctx) if thirty else ctx
    for line, text in notices(_board(c), c.settings, item_rows(c.rubric, c.settings)):
        assert not re.search(r"\*\*|^#|`|\t", text, re.M), text
        assert all(len(row) <= 150 for row in text.split("\n")), text
        assert c.settings.deadline in text


# -- 核查结果.xlsx ------------------------------------------------------------------------------------

def _sheets(path: Path) -> dict[str, list[list]]:
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(path))
    return {name: wb.get_sheet_by_name(name).to_python() for name in wb.sheet_names}


def _text(rows: list[list]) -> str:
    return "\n".join("|".join(str(v) for v in row) for row in rows)


@pytest.mark.parametrize("thirty", [False, True], ids=["9", "30"])
def test_the_results_book_holds_the_board_the_issues_and_the_notices(ctx, tmp_path, thirty, shanghai):
    c = _thirty(ctx) if thirty else ctx
    board = _board(c)
    path = write_results(board, c, tmp_path / "结果" / RESULTS_NAME, now=NOW)
    book = _sheets(path)
    assert tuple(book) == SHEETS
    top = _text(book["核查情况"][:4])
    assert "台前县" in top and "2026年度" in top and "核查结果" in top
    assert c.settings.issuing_office in top and "2026-11-30 20:15（UTC+08:00）" in top
    assert f"共 {len(board.lines)} 个乡镇" in top and f"需改正 {board.count('fix')} 个" in top
    head = next(k for k, row in enumerate(book["核查情况"]) if row[0] == "序号")
    assert book["核查情况"][head][:3] == ["序号", "乡镇", "状态"]
    rows = book["核查情况"][head + 1:]
    assert [(r[1], r[2]) for r in rows] == [(l.township, l.state_zh) for l in board.lines]
    ok = rows[0]
    assert ok[3] == board.lines[0].file and ok[5] == pytest.approx(92.5) and ok[7] == NAMES[0]
    assert "（UTC+08:00）" in ok[4]
    issues = book["问题清单"]
    head = next(k for k, row in enumerate(issues) if row[0] == "乡镇")
    listed = issues[head + 1:]
    assert len(listed) == sum(len(l.issues) for l in board.lines) + len(board.unassigned)
    assert [board.lines[1].township, board.lines[1].file, "评分表 › G5", "A01", "V403", "错误"] == listed[0][:6]
    assert any(r[2] == "整个文件" and r[4] == "I203" for r in listed)
    sent = book["通知"]
    head = next(k for k, row in enumerate(sent) if row[0] == "乡镇")
    expected = notices(board, c.settings, item_rows(c.rubric, c.settings))
    assert [(r[0], r[1], r[4]) for r in sent[head + 1:]] == [
        (l.township, "退回" if l.state == "fix" else "催报", t) for l, t in expected]
    assert [p.name for p in path.parent.iterdir()] == [RESULTS_NAME]     # nothing left beside it


BOARD_HEADS = ["序号", "乡镇", "状态", "使用的文件", "收到时间", "得分", "等次", "填报人", "联系电话", "问题数"]


@pytest.mark.parametrize("thirty", [False, True], ids=["9", "30"])
def test_the_results_book_shows_the_核定_and_整改_stage_the_board_shows(ctx, tmp_path, thirty):
    c = _thirty(ctx) if thirty else ctx
    plain = _sheets(write_results(_board(c), c, tmp_path / "plain.xlsx", now=NOW))["核查情况"]
    assert next(row for row in plain if row[0] == "序号") == BOARD_HEADS      # before 核定: as it was
    board = _staged(c)
    book = _sheets(write_results(board, c, tmp_path / RESULTS_NAME, now=NOW))
    sheet = book["核查情况"]
    head = next(k for k, row in enumerate(sheet) if row[0] == "序号")
    assert board.stage_counts() and all(s in _text(sheet[:head]) for s in board.stage_counts())
    heads = sheet[head]
    assert heads == ["序号", "乡镇", "状态", "核定", "整改", "使用的文件", "收到时间", "自评得分", "等次", "核定得分",
                     "填报人", "联系电话", "问题数"]
    rows = [dict(zip(heads, row)) for row in sheet[head + 1:]]
    assert [(r["乡镇"], r["状态"], r["核定"].split("\n")[0], r["整改"].split("\n")[0]) for r in rows] == [
        (l.township, l.state_zh, l.review_zh, l.feedback_zh) for l in board.lines]
    by = {r["乡镇"]: r for r in rows}
    for line in board.lines:
        row = by[line.township]
        assert row["核定得分"] == (90.25 if line.review == "verified" else "")
        assert ("1 处错误" in row["核定"]) == any(i.severity == "error" for i in line.review_issues)
        assert ("3 处未完成" in row["整改"]) == (line.feedback == "rectifying")
        if line.state != "missing":           # every issue of its return, 核定表 and 反馈单, as 问题清单 lists them
            assert row["问题数"] == len(listed(line.issues + line.review_issues + line.feedback_issues))
    issues = book["问题清单"]
    listed_rows = issues[next(k for k, row in enumerate(issues) if row[0] == "乡镇") + 1:]
    stale = next(l for l in board.lines if l.review == "stale")
    assert [stale.township, stale.review_file, "整个文件", "", "C509", "警告"] in [r[:6] for r in listed_rows]
    left = next(l for l in board.lines if l.feedback == "rectifying")
    assert [(r[2], r[4]) for r in listed_rows if r[0] == left.township and r[1] == left.feedback_file] == [
        (f"{FEEDBACK_SHEET} › F8", "V434"), (f"{FEEDBACK_SHEET} › G9", "V435"), (f"{FEEDBACK_SHEET} › G10", "V436")]
    unexplained = [r[:6] for r in listed_rows if r[4] == "V420"]
    assert unexplained and all(r[2] == f"{REVIEW_SHEET} › H9" and r[1].startswith("核定/") for r in unexplained)


def test_a_suspect_setup_is_shown_first(ctx, tmp_path):
    board = _board(ctx, suspect=True)
    path = write_results(board, ctx, tmp_path / RESULTS_NAME, now=NOW)
    top = _text(_sheets(path)["核查情况"][:5])
    assert "请先检查考核设置" in top and "2027 年度" in top


def test_the_book_is_replaced_whole_and_an_unwritable_place_is_refused(ctx, tmp_path):
    path = tmp_path / RESULTS_NAME
    write_results(_board(ctx), ctx, path, now=NOW)
    write_results(Board([]), ctx, path, now=NOW)
    assert "共 0 个乡镇" in _text(_sheets(path)["核查情况"][:4])
    (tmp_path / "folder.xlsx").mkdir()
    with pytest.raises(AssessError) as err:
        write_results(_board(ctx), ctx, tmp_path / "folder.xlsx", now=NOW)
    assert [i.code for i in err.value.report] == [Code.OUTPUT_UNWRITABLE]


def test_the_results_book_prints_with_titles_and_page_numbers(ctx, tmp_path):
    needs_libreoffice()
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) not installed")
    books = {}
    for label, c in (("9", ctx), ("30", _thirty(ctx)), ("staged", _thirty(ctx))):
        board = _staged(c) if label == "staged" else _board(c, suspect=label == "9")
        books[label] = write_results(board, c, tmp_path / label / RESULTS_NAME, now=NOW)
    jobs = [{"in": str(p), "out": str(tmp_path / f"{label}.pdf"), "format": "pdf"} for label, p in books.items()]
    assert all(r["ok"] for r in lo.run_jobs(jobs))
    for label in books:
        text = subprocess.run(["pdftotext", "-layout", str(tmp_path / f"{label}.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
        pages = [p for p in text.split("\f") if p.strip()]
        by_sheet = {name: [p for p in pages if re.search(rf"^\s*{name}\b", p.strip().splitlines()[-1])]
                    for name in SHEETS}
        for name, sheet_pages in by_sheet.items():
            assert sheet_pages, f"{label}: no page of {name}"
            assert ("核查结果" if name == "核查情况" else "问题清单" if name == "问题清单" else "通知") in sheet_pages[0]
            for p in sheet_pages:
                assert re.search(rf"第 \d+ 页，共 {len(pages)} 页", p)
                assert "乡镇" in p and (name != "核查情况" or "序号" in p)     # headings on every page
        assert sum(map(len, by_sheet.values())) == len(pages)
        numbers = [int(re.search(r"第 (\d+) 页", p).group(1)) for p in pages]
        assert numbers == list(range(1, len(pages) + 1))
        if label != "9":
            assert len(by_sheet["核查情况"]) >= 2 and "第30乡镇" in by_sheet["核查情况"][-1]
        if label == "staged":                     # the 核定 and 整改 columns on every page
            assert all("核定得分" in p and "整改" in p for p in by_sheet["核查情况"])
