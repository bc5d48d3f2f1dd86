"""A whole round played in headless Chromium (Debian's, driven by Playwright for Python) on the page
that `xlsx-assess serve` serves: generate the forms, upload returns and a broken file through the file
input, read the verdicts and the board, make the 核定表s, download them and upload one back filled, rank, download the ranking and open it.

Screenshots of every page go to a temporary folder, or to $XLSX_ASSESS_SCREENSHOTS (the README's
pictures: `XLSX_ASSESS_SCREENSHOTS=docs pytest tests/test_browser.py` refreshes docs/web-*.png).
Without /usr/bin/chromium or Playwright the test skips with its reason, except in CI (CI=true).
"""

from __future__ import annotations

import base64
import os
import threading
import time
import zipfile
from pathlib import Path

import pytest

import lo
from conftest import ROOT, needs_libreoffice
from fills import filled_review

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SAMPLES = ROOT / "samples" / "returned"


def _needs(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser test: scripts/test.sh installs it)")
    pytest.skip(reason)


@pytest.fixture
def browser():
    if not CHROMIUM.is_file():
        _needs("no /usr/bin/chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _needs("Playwright for Python is not installed (pip install playwright)")
    pytest.importorskip("uvicorn", reason="the page needs the web extra: pip install .[web]")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def server(tmp_path):
    """The page over a new round, served by uvicorn in a thread on a free port: (url, round)."""
    import uvicorn

    from xlsx_assess.round import init_round
    from xlsx_assess.web import free_port
    from xlsx_assess.web.app import create_app

    rnd = init_round(tmp_path / "考核2026", year=2026)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(rnd, port=port, workers=1), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", rnd
    finally:
        srv.should_exit = True
        thread.join(10)


def old_form(rnd, folder: Path) -> Path:
    """夹河乡's form of last year, as a township that kept using an old file sends it."""
    from xlsx_assess.round import load_round_context
    from xlsx_assess.writer import build_workbook, file_name

    ctx = load_round_context(rnd)
    town = next(t for t in ctx.townships if t.name == "夹河乡")
    year = ctx.settings.year - 1
    return build_workbook(ctx.rubric, town, ctx.settings.with_year(year), folder / file_name(town, year))


def drop(page, paths: list[Path]) -> None:
    """Drop files on the 收回 page's box: a drop event carrying them, as a drag from a folder makes."""
    files = [{"name": p.name, "data": base64.b64encode(p.read_bytes()).decode()} for p in paths]
    page.evaluate("""(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), c => c.charCodeAt(0));
            dt.items.add(new File([bytes], f.name));
        }
        const drop = new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true});
        document.getElementById("drop").dispatchEvent(drop);
    }""", files)


def rectified(rnd, path: Path) -> list:
    """The cells LibreOffice sets to fill in a 反馈单's 整改措施, 整改时限 and 责任人 (from the record `feedback`
    kept of it)."""
    from xlsx_assess.feedback_book import SHEET, read_record
    from xlsx_assess.reader import read_returned
    from xlsx_assess.feedback_book import read_feedback_identity

    record = read_record(rnd, read_feedback_identity(read_returned(path, path.name))["xa_feedback_id"])
    sets = []
    for item_id, _, measure, deadline, owner in record["lines"]:
        sets += [[SHEET, measure, f"完善{item_id}相关制度并落实"], [SHEET, deadline, {"date": "2027-03-31"}],
                 [SHEET, owner, "李四"]]
    return sets


def test_a_whole_round_in_chromium(browser, server, tmp_path):
    from python_calamine import CalamineWorkbook

    needs_libreoffice()
    url, rnd = server
    shots = Path(os.environ.get("XLSX_ASSESS_SCREENSHOTS") or tmp_path / "shots")
    if not shots.is_absolute():
        shots = ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800}, locale="zh-CN",
                              permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)   # CSP refusals too

    # 下发: generate the forms
    page.goto(url + "/send")
    page.get_by_role("button", name="生成考核表").click()
    page.wait_for_selector("text=已生成 9 个乡镇的考核表")
    assert len(list(rnd.sent.glob("*.xlsx"))) == 9
    page.screenshot(path=str(shots / "web-send.png"), full_page=True)

    # 收回: seven returns, last year's form from 夹河乡 and a broken file, through the file input
    returns = sorted(SAMPLES.glob("*.xlsx"))                # the last two: 夹河乡 and 打渔陈镇
    broken = tmp_path / "坏掉的文件.xlsx"
    broken.write_bytes(b"PK\x03\x04 this is not a workbook")
    page.goto(url + "/receive")
    page.set_input_files("#files", [str(p) for p in returns[:7]] + [str(old_form(rnd, tmp_path)), str(broken)])
    page.wait_for_selector("text=已核查 9 个文件")
    assert page.locator("ul.verdicts > li.verdict").count() == 9
    assert page.locator("ul.verdicts > li.verdict.ok").count() == 7
    bad = page.locator("ul.verdicts > li.verdict.error")
    assert bad.count() == 2 and "坏掉的文件.xlsx" in bad.nth(1).inner_text()
    assert "I203" in bad.nth(0).inner_text()                  # 用了旧表, located in the form's identity
    notices = page.locator("#notices .notice")
    assert notices.count() == 2 and "退回" in notices.nth(1).inner_text() and "催报" in notices.nth(0).inner_text()
    page.screenshot(path=str(shots / "web-receive.png"), full_page=True)
    copy = notices.nth(1).get_by_role("button", name="复制")
    copy.click()
    page.wait_for_selector("text=已复制")
    assert page.evaluate("navigator.clipboard.readText()") == notices.nth(1).locator("pre").inner_text()

    # 本轮概况 with two townships missing, then the last two returns
    page.goto(url + "/")
    assert page.locator("tr.state-ok").count() == 7 and page.locator("tr.state-fix").count() == 1
    assert page.locator("tr.state-missing").count() == 1
    page.screenshot(path=str(shots / "web-board.png"), full_page=True)
    page.goto(url + "/receive")
    drop(page, returns[7:])                      # dragged onto the box, as the clerk does from a folder
    page.wait_for_selector("text=已核查 2 个文件")
    assert page.locator("ul.verdicts > li.verdict.ok").count() == 2
    page.goto(url + "/")
    assert page.locator("tr.state-ok").count() == 9
    assert "共收到 2 个文件" in page.locator("tr.state-ok").last.inner_text()    # 夹河乡: last year's form, then this year's

    # 核定: generate the 核定表s, download them as one zip, upload one back filled in and signed
    page.goto(url + "/review")
    page.get_by_role("button", name="生成核定表").click()
    page.wait_for_selector("text=已生成 9 个核定表")
    assert page.locator("#review tbody tr.state-pending").count() == 9
    with page.expect_download() as info:
        page.get_by_role("link", name="下载全部核定表（zip）").click()
    zipped = tmp_path / "核定表.zip"
    info.value.save_as(zipped)
    assert info.value.suggested_filename == "2026年核定表.zip"
    with zipfile.ZipFile(zipped) as zf:
        assert len(zf.namelist()) == 9
        zf.extract(zf.namelist()[0], tmp_path / "zip")
    assert "核定表" in CalamineWorkbook.from_path(str(tmp_path / "zip" / zf.namelist()[0])).sheet_names
    town = page.locator("#review tbody tr").first.locator("small").inner_text()     # its code
    (tmp_path / "filled").mkdir()
    filled = filled_review(rnd, town, tmp_path / "filled")
    page.set_input_files("#files", [str(filled)])
    page.wait_for_selector("text=已核查 1 个文件")
    assert "已核定" in page.locator("ul.verdicts > li.verdict.ok").inner_text()
    assert page.locator("#review tbody tr.state-verified").count() == 1
    assert "已核定 1" in page.locator("#review p.counts").inner_text()
    page.screenshot(path=str(shots / "web-review.png"), full_page=True)

    # 排名: rank (初步排名: one township on its 核定分), see the table and chart, download the workbook, open it
    page.goto(url + "/rank")
    page.get_by_role("button", name="生成排名").click()
    page.wait_for_selector("svg.chart")
    assert page.locator("table.ranking tbody tr").count() == 9
    assert page.locator("h2.ranking-title").inner_text() == "初步排名"
    assert page.locator("table.ranking tbody tr", has_text="已核定").count() == 1
    page.screenshot(path=str(shots / "web-rank.png"), full_page=True)
    with page.expect_download() as info:
        page.get_by_role("link", name="下载 排名.xlsx").click()
    saved = tmp_path / "下载的排名.xlsx"
    info.value.save_as(saved)
    assert info.value.suggested_filename == "排名.xlsx"
    rows = CalamineWorkbook.from_path(str(saved)).get_sheet_by_name("排名").to_python()
    text = "\n".join(" ".join(str(c) for c in row) for row in rows)
    assert all(name in text for name in ("城关镇", "清水河乡", "夹河乡", "打渔陈镇"))

    # 反馈: generate the 反馈单s, download them, one comes back with 整改 filled in (by LibreOffice): 已整改
    page.goto(url + "/feedback")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="生成反馈单").click()
    page.wait_for_selector("text=已生成 9 份反馈单")
    with page.expect_download() as info:
        page.get_by_role("link", name="下载全部反馈单（zip）").click()
    zipped = tmp_path / "反馈单.zip"
    info.value.save_as(zipped)
    with zipfile.ZipFile(zipped) as zf:
        assert len(zf.namelist()) == 9
        first, second = sorted(zf.namelist())[:2]
        zf.extract(first, tmp_path / "fb")
        zf.extract(second, tmp_path / "fb")
    done, partly = tmp_path / "fb" / "城关镇报回.xlsx", tmp_path / "fb" / "侯庙镇报回.xlsx"
    sets = rectified(rnd, tmp_path / "fb" / second)
    blank = sets[0][1]                                        # its first 整改措施 left blank
    results = lo.run_jobs([{"in": tmp_path / "fb" / first, "out": done, "format": "xlsx",
                            "set": rectified(rnd, tmp_path / "fb" / first)},
                           {"in": tmp_path / "fb" / second, "out": partly, "format": "xlsx", "set": sets[1:]}])
    assert all(r["ok"] for r in results), results
    page.set_input_files("#files", [str(done), str(partly)])
    page.wait_for_selector("text=已核查 2 个文件")
    assert "已整改" in page.locator("ul.verdicts > li.verdict.ok").inner_text()
    assert f"反馈单 › {blank}" in page.locator("ul.verdicts > li.verdict.error").inner_text()
    assert page.locator("#feedback tbody tr.state-rectified").count() == 1
    assert page.locator("#feedback tbody tr.state-rectifying").count() == 1
    assert f"反馈单 › {blank}" in page.locator("#feedback tbody tr.state-rectifying").inner_text()
    assert page.locator("#feedback tbody tr.state-sent").count() == 7
    page.screenshot(path=str(shots / "web-feedback.png"), full_page=True)
    assert errors == []
    ctx.close()


def test_many_files_are_sent_in_a_few_requests_and_every_verdict_shows(browser, server, tmp_path):
    url, rnd = server
    files = []
    for k in range(25):
        p = tmp_path / "many" / f"文件{k:02d}.xlsx"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"not a workbook %d" % k)
        files.append(str(p))
    page = browser.new_page()
    posts: list[str] = []
    page.on("request", lambda req: posts.append(req.url) if req.method == "POST" else None)
    page.goto(url + "/receive")
    page.set_input_files("#files", files)
    page.wait_for_selector("text=已核查 25 个文件")
    assert page.locator("ul.verdicts > li.verdict.error").count() == 25
    assert len(posts) == 3                                   # 10 + 10 + 5
    assert len(list((rnd.returned / "网页上传").rglob("*.xlsx"))) == 25
    page.close()
