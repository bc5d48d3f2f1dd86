"""The page over a round (`xlsx-assess serve`), route by route, with Starlette's TestClient."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the page needs the web extra: pip install .[web]")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

with warnings.catch_warnings():                  # Starlette >= 1.0 suggests httpx2; httpx is what pip has here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

from conftest import ROOT  # noqa: E402
from xlsx_assess.issues import Code  # noqa: E402
from xlsx_assess.round import generate_round, init_round  # noqa: E402
from xlsx_assess.web.app import Limits, create_app, zip_of  # noqa: E402
from xlsx_assess.web.uploads import safe_name  # noqa: E402
from fills import filled_review  # noqa: E402

SAMPLES = ROOT / "samples" / "returned"
FULL = os.environ.get("XLSX_ASSESS_FULL") == "1"
LOCAL = "http://127.0.0.1"
PAGE = {"HX-Request": "true"}                          # what htmx sends with every request of the page
SCRIPT = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture
def rnd(tmp_path):
    r = init_round(tmp_path / "轮次", year=2026)
    generate_round(r)
    return r


@pytest.fixture
def client(rnd):
    return TestClient(create_app(rnd, workers=1), base_url=LOCAL)


def samples() -> list[tuple]:
    return [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.glob("*.xlsx"))]


def codes(answer: dict) -> set[str]:
    return {i["code"] for i in answer["issues"]} | {c for m in answer["members"] for c in codes(m)}


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


# -- pages and the API --------------------------------------------------------------------------------

def test_every_page_is_chinese_utf8_and_names_every_page(client):
    for path in ("/", "/send", "/receive", "/rank", "/review", "/feedback"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert '<meta charset="utf-8">' in r.text
        for label in ("本轮概况", "下发", "收回", "核定", "排名", "反馈"):
            assert label in r.text
    assert "生成核定表" in client.get("/review").text
    assert "生成反馈单" in client.get("/feedback").text
    assert client.get("/static/htmx.min.js").status_code == 200
    r = client.get("/")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


def test_status_is_the_board_as_check_json_gives_it(client):
    data = client.get("/api/status").json()
    assert [t["state"] for t in data["townships"]] == ["missing"] * 9
    assert set(data["townships"][0]) == {"code", "township", "state", "file", "reporter", "phone", "issues"}
    assert data["counts"] == {"total": 9, "ok": 0, "fix": 0, "missing": 9}


def test_upload_of_the_nine_samples_a_broken_file_and_a_name_that_climbs(client, rnd, tmp_path):
    before = files_under(tmp_path) - files_under(rnd.root)
    files = samples() + [("files", ("坏文件.xlsx", b"PK\x03\x04 broken")), ("files", ("../../x.xlsx", b"not a workbook"))]
    r = client.post("/api/upload", files=files, headers=SCRIPT)
    assert r.status_code == 200
    got = r.json()["files"]
    assert len(got) == 11
    assert [a["status"] for a in got[:9]] == ["ok"] * 9
    assert {a["township"] for a in got[:9]} == {t["township"] for t in r.json()["townships"]}
    assert got[9]["status"] == "error" and codes(got[9]) & {Code.DAMAGED, Code.NOT_A_WORKBOOK}
    climb = got[10]
    assert climb["name"] == "../../x.xlsx" and climb["status"] == "error"
    assert climb["stored_as"].startswith("收回/网页上传/") and climb["stored_as"].endswith("/x.xlsx")
    for a in got:                                     # every file kept by content and placed in 收回/
        assert (rnd.root / a["stored_as"]).is_file()
        assert (rnd.files / a["sha256"][:2] / a["sha256"]).is_file()
    assert files_under(tmp_path) - files_under(rnd.root) == before       # nothing written outside the round
    assert not (tmp_path / "x.xlsx").exists() and not (rnd.root.parent.parent / "x.xlsx").exists()
    status = client.get("/api/status").json()
    assert status["counts"]["ok"] == 9
    assert (rnd.results / "核查结果.xlsx").is_file()


def test_the_page_gets_html_verdicts_and_notices(client):
    r = client.post("/api/upload", files=samples()[:2], headers=PAGE)
    assert r.status_code == 200 and "合格" in r.text and 'id="notices"' in r.text and 'id="counts"' in r.text
    assert "催报" in r.text                           # 7 townships still missing: their notices come back


def test_the_cli_sees_what_the_page_received(client, rnd):
    client.post("/api/upload", files=samples(), headers=SCRIPT)
    out = subprocess.run([sys.executable, "-m", "xlsx_assess", "check", "--round", str(rnd.root), "--json"],
                         capture_output=True, text=True, cwd=rnd.root)
    assert out.returncode == 0, out.stderr


def test_many_tiny_files_at_once_each_answered(client, rnd):
    n = 1000 if FULL else 100
    files = [("files", (f"小文件{k:04d}.xlsx", b"tiny %d" % k)) for k in range(n)]
    r = client.post("/api/upload", files=files, headers=SCRIPT)
    assert r.status_code == 200
    got = r.json()["files"]
    assert len(got) == n and all(a["status"] == "error" for a in got)
    assert len({a["stored_as"] for a in got}) == n
    assert client.get("/api/status").status_code == 200        # still serving


def test_hostile_files_each_get_their_verdict_and_the_server_keeps_serving(client, tmp_path):
    import hostile_corpus as hc

    folder = tmp_path / "hostile"
    b = hc._Builder(folder, tmp_path, with_libreoffice=False, bulk=0)
    b.good = SAMPLES / "2026_410927100_城关镇.xlsx"
    b.bombs()
    chosen = sorted(b.corpus.expected) if FULL else ["bombs/zip_bomb.xlsx", "bombs/billion_laughs_sheet.xlsx",
                                                    "bombs/far_cell.xlsx", "bombs/many_parts.xlsx",
                                                    "bombs/tangled_xml.xlsx", "bombs/too_big.xlsx"]
    chosen = [c for c in chosen if (folder / c).is_file()]
    files = [("files", (c, (folder / c).read_bytes())) for c in chosen]
    r = client.post("/api/upload", files=files, headers=SCRIPT)
    assert r.status_code == 200
    for name, answer in zip(chosen, r.json()["files"]):
        want = {c if isinstance(c, str) else c[0] for c in b.corpus.expected[name]}
        assert want <= codes(answer), (name, codes(answer))
    assert client.get("/").status_code == 200


def test_a_zip_is_answered_member_by_member(client):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(SAMPLES.glob("*.xlsx"))[:3]:
            zf.writestr(p.name, p.read_bytes())
    r = client.post("/api/upload", files=[("files", ("微信收到的.zip", buf.getvalue()))], headers=SCRIPT)
    [answer] = r.json()["files"]
    assert answer["status"] == "ok" and len(answer["members"]) == 3
    assert all(m["status"] == "ok" and m["score"] for m in answer["members"])


# -- limits ------------------------------------------------------------------------------------------

def test_too_many_files_and_too_many_bytes_are_refused_in_chinese(rnd):
    client = TestClient(create_app(rnd, limits=Limits(files=3, bytes=4000)), base_url=LOCAL)
    r = client.post("/api/upload", files=[("files", (f"{k}.xlsx", b"x")) for k in range(4)], headers=SCRIPT)
    assert r.status_code == 400 and "最多上传 3 个文件" in r.json()["error"]
    r = client.post("/api/upload", files=[("files", ("大.xlsx", b"x" * 5000))], headers=SCRIPT)
    assert r.status_code == 413 and "上传被拒绝" in r.json()["error"]
    r = client.post("/api/upload", data={"other": "1"}, headers=SCRIPT)
    assert r.status_code == 400
    assert not any((rnd.returned).rglob("*.xlsx"))


def test_the_limits_are_the_rounds_settings_as_they_are_now(rnd):
    """考核参数 网页上传文件数上限 / 网页上传大小上限, read at each upload: a change needs no restart."""
    import openpyxl

    from xlsx_assess.setup_book import SETTING_ROWS, SETTINGS_SHEET

    client = TestClient(create_app(rnd), base_url=LOCAL)
    assert "一次最多 2000 个文件、200 MB" in client.get("/receive").text
    row = {r.key: n for n, r in enumerate(SETTING_ROWS, start=2)}
    wb = openpyxl.load_workbook(rnd.setup)
    wb[SETTINGS_SHEET][f"B{row['upload_max_files']}"].value = 3
    wb[SETTINGS_SHEET][f"B{row['upload_max_mb']}"].value = "1"
    wb.save(rnd.setup)
    r = client.post("/api/upload", files=[("files", (f"{k}.xlsx", b"x")) for k in range(4)], headers=SCRIPT)
    assert r.status_code == 400 and "最多上传 3 个文件" in r.json()["error"]
    r = client.post("/api/upload", files=[("files", ("大.xlsx", b"x" * (1024 * 1024 + 1)))], headers=SCRIPT)
    assert r.status_code == 413 and "最多上传 1 MB" in r.json()["error"]
    assert "一次最多 3 个文件、1 MB" in client.get("/receive").text
    wb[SETTINGS_SHEET][f"B{row['upload_max_files']}"].value = "很多"
    wb.save(rnd.setup)
    r = client.post("/api/upload", files=[("files", ("a.xlsx", b"x"))], headers=SCRIPT)
    assert r.status_code == 507 and "R201" in r.json()["error"] and "网页上传文件数上限" in r.json()["error"]
    for url in ("/api/upload", "/review/upload", "/feedback/upload"):      # the page gets one line, not a page
        r = client.post(url, files=[("files", ("a.xlsx", b"x"))], headers=PAGE)
        assert r.status_code == 507 and r.text.startswith('<p class="refused">') and "R201" in r.text, url


def test_safe_names_are_never_paths():
    assert safe_name("../../x.xlsx") == "x.xlsx"
    assert safe_name("..\\..\\windows\\x.xlsx") == "x.xlsx"
    assert safe_name("..") == "未命名" and safe_name("") == "未命名" and safe_name("/") == "未命名"
    assert safe_name("城关镇 (1).xlsx") == "城关镇 (1).xlsx"
    assert "/" not in safe_name("a/b\x00c<>|:*?.xlsx") and "\x00" not in safe_name("a\x00b.xlsx")
    assert len(safe_name("长" * 300 + ".xlsx")) <= 80 and safe_name("长" * 300 + ".xlsx").endswith(".xlsx")
    assert safe_name("a.xlsx. ") == "a.xlsx"                    # Windows would drop the dot: one name, not two
    assert safe_name("CON.xlsx") == "_CON.xlsx" and safe_name("nul") == "_nul" and safe_name("com1.x.xlsx") == "_com1.x.xlsx"


# -- safety ------------------------------------------------------------------------------------------

def test_another_host_needs_the_token(rnd):
    app = create_app(rnd, token="s3cret-token")
    client = TestClient(app, base_url="http://192.168.1.20:8765")
    assert client.get("/").status_code == 403
    assert client.get("/api/status").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.post("/api/upload", files=samples()[:1], headers=SCRIPT).status_code == 403
    r = client.get("/?token=s3cret-token")
    assert r.status_code == 200 and "xa_token" in r.headers["set-cookie"]
    assert client.get("/api/status").status_code == 200      # the cookie from the first visit
    assert not any(rnd.returned.rglob("*.xlsx"))


def test_without_a_token_only_this_machine_names_the_server(rnd):
    app = create_app(rnd, port=8765)
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://attacker.example:8765").get("/").status_code == 403   # DNS rebinding
    assert TestClient(app, base_url="http://127.0.0.1:9999").get("/").status_code == 403


def test_cross_site_requests_cannot_change_anything(client, rnd):
    r = client.post("/api/upload", files=samples()[:1])                       # a plain form from anywhere
    assert r.status_code == 403
    r = client.post("/api/upload", files=samples()[:1], headers=dict(SCRIPT, Origin="http://evil.example"))
    assert r.status_code == 403
    r = client.post("/send/generate", headers=dict(PAGE, Referer="http://evil.example/page"))
    assert r.status_code == 403
    assert client.post("/rank/run").status_code == 403
    assert client.post("/review/generate").status_code == 403
    assert client.post("/review/generate", headers=dict(PAGE, Origin="http://evil.example")).status_code == 403
    assert client.post("/review/upload", files=samples()[:1]).status_code == 403
    assert client.post("/review/upload", files=samples()[:1],
                       headers=dict(SCRIPT, Origin="http://evil.example")).status_code == 403
    assert client.post("/feedback/generate").status_code == 403
    assert client.post("/feedback/upload", files=samples()[:1],
                       headers=dict(SCRIPT, Origin="http://evil.example")).status_code == 403
    assert not rnd.reviews.exists() or not any(rnd.reviews.rglob("*.xlsx"))
    assert not rnd.feedback.exists() or not any(rnd.feedback.rglob("*.xlsx"))
    assert not any(rnd.returned.rglob("*.xlsx"))
    r = client.post("/api/upload", files=samples()[:1], headers=dict(SCRIPT, Origin=LOCAL))
    assert r.status_code == 200


# -- 下发 and 排名 -------------------------------------------------------------------------------------

def test_forms_zip_names_are_utf8_flagged_and_gbk_safe(client, rnd):
    forms = sorted(p.name for p in rnd.sent.glob("*.xlsx"))
    (rnd.sent / "~$城关镇.xlsx").write_bytes(b"lock file WPS leaves")      # never in the zip
    r = client.get("/send/forms.zip")
    assert r.status_code == 200 and "filename*=UTF-8''" in r.headers["content-disposition"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forms.zip"
        path.write_bytes(r.content)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            assert sorted(i.filename for i in infos) == forms
            assert all(i.flag_bits & 0x800 for i in infos)
            for i in infos:
                i.filename.encode("gbk")                # every name also has a GBK spelling
                assert zf.read(i) == (rnd.sent / i.filename).read_bytes()
    assert zip_of([]) and zipfile.ZipFile(__import__("io").BytesIO(zip_of([]))).namelist() == []


def test_generate_from_the_page_and_ranking(client, rnd):
    for p in rnd.sent.glob("*.xlsx"):
        p.unlink()
    r = client.post("/send/generate", headers=PAGE)
    assert r.status_code == 200 and "已生成 9 个乡镇的考核表" in r.text
    assert len(list(rnd.sent.glob("*.xlsx"))) == 9
    r = client.post("/rank/run", headers=PAGE)
    assert r.status_code == 200 and Code.NOTHING_TO_RANK in r.text            # nothing received yet
    assert client.get("/rank/排名.xlsx").status_code == 404
    client.post("/api/upload", files=samples(), headers=SCRIPT)
    r = client.post("/rank/run", headers=PAGE)
    assert r.status_code == 200 and "<svg" in r.text, r.text
    fixes = [t for t in client.get("/api/status").json()["townships"] if t["state"] != "ok"]
    assert "全部纳入排名" in r.text and fixes == [], fixes
    book = client.get("/rank/排名.xlsx")
    assert book.status_code == 200 and book.content[:2] == b"PK"
    assert "清水河乡" in client.get("/rank").text


# -- 核定 ----------------------------------------------------------------------------------------------

def test_review_through_the_page_generate_download_upload(client, rnd, tmp_path):
    from python_calamine import CalamineWorkbook

    r = client.post("/review/generate", headers=PAGE)
    assert r.status_code == 200 and "已生成 0 个核定表" in r.text and "尚无合格的考核表" in r.text
    assert client.get("/review/reviews.zip").status_code == 404
    client.post("/api/upload", files=samples(), headers=SCRIPT)
    r = client.post("/review/generate", headers=PAGE)
    assert r.status_code == 200 and "已生成 9 个核定表" in r.text and r.text.count("待核定") >= 9
    assert len(list(rnd.reviews.glob("*.xlsx"))) == 9
    r = client.post("/review/generate", headers=PAGE)              # made for these returns already: kept
    assert "已生成 0 个核定表" in r.text
    z = client.get("/review/reviews.zip")
    assert z.status_code == 200 and "filename*=UTF-8''" in z.headers["content-disposition"]
    with zipfile.ZipFile(__import__("io").BytesIO(z.content)) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(p.name for p in rnd.reviews.glob("*.xlsx")) and len(names) == 9
        assert all(i.flag_bits & 0x800 for i in zf.infolist())
        member = tmp_path / "member.xlsx"
        member.write_bytes(zf.read(names[0]))
    sheets = CalamineWorkbook.from_path(str(member)).sheet_names
    assert "核定表" in sheets
    code = client.get("/api/status").json()["townships"][0]["code"]
    filled = filled_review(rnd, code, tmp_path)
    r = client.post("/review/upload", files=[("files", (filled.name, filled.read_bytes()))], headers=SCRIPT)
    assert r.status_code == 200, r.text
    got = r.json()
    [answer] = got["files"]
    assert answer["status"] == "ok" and answer["accepted"] and answer["stored_as"].startswith("核定/网页上传/")
    assert (rnd.root / answer["stored_as"]).is_file() and (rnd.files / answer["sha256"][:2] / answer["sha256"]).is_file()
    line = next(t for t in got["townships"] if t["code"] == code)
    assert line["review"] == "verified" and line["reviewer"] == "王核查"
    status = {t["code"]: t for t in client.get("/api/status").json()["townships"]}
    assert status[code]["review"] == "verified"                    # the board from the ledger says so too
    book = CalamineWorkbook.from_path(str(rnd.results / "核查结果.xlsx")).get_sheet_by_name("核查情况").to_python()
    assert any("已核定" in row for row in book)                     # 核查结果.xlsx rewritten by the upload
    assert sum(t.get("review") == "pending" for t in status.values()) == 8
    page = client.get("/review").text
    assert "已核定 1" in page and "待核定 8" in page
    assert "已核定" in client.get("/").text
    r = client.post("/rank/run", headers=PAGE)                     # ranked on 核定分 where verified: 初步排名
    assert r.status_code == 200 and "初步排名" in r.text and "<th>自评得分</th><th>核定得分</th>" in r.text
    row = next(tr for tr in r.text.split("<tr>") if f"<td>{line['township']}</td>" in tr)
    assert f'<td class="num">{line["reviewed_score"]}</td>' in row and "已核定" in row and "-0.50" in row


def test_a_returned_review_without_a_reason_is_reported_located(client, rnd, tmp_path):
    client.post("/api/upload", files=samples(), headers=SCRIPT)
    client.post("/review/generate", headers=PAGE)
    code = client.get("/api/status").json()["townships"][1]["code"]
    from xlsx_assess.workflow import check_round, load_round_context

    ctx = load_round_context(rnd)
    own = check_round(rnd, ctx, workers=1)[1].reviews.accepted[code]
    first = next(i for i in ctx.rubric.base if own.values.get(i.id))
    filled = filled_review(rnd, code, tmp_path, {first.id: own.values[first.id] - 1}, {})
    files = [("files", (filled.name, filled.read_bytes())), ("files", ("说明.txt", b"not a workbook"))]
    r = client.post("/review/upload", files=files, headers=PAGE)
    assert r.status_code == 200 and "有错误" in r.text and "不是核定表" not in r.text
    assert Code.REVIEW_REASON_MISSING in r.text and 'id="review"' in r.text and "已跳过" in r.text
    got = client.post("/review/upload", files=files, headers=SCRIPT).json()["files"]
    assert got[0]["status"] == "error" and Code.REVIEW_REASON_MISSING in codes(got[0])
    assert any(i["where"].startswith("核定表 › ") for i in got[0]["issues"] if i["code"] == Code.REVIEW_REASON_MISSING)
    assert got[1]["status"] == "skipped"
    assert Code.REVIEW_REASON_MISSING in client.get("/review").text


def test_a_resend_makes_the_filled_review_stale_and_refresh_asks_first(client, rnd, tmp_path):
    client.post("/api/upload", files=samples(), headers=SCRIPT)
    client.post("/review/generate", headers=PAGE)
    code = client.get("/api/status").json()["townships"][2]["code"]
    filled = filled_review(rnd, code, tmp_path)
    (rnd.reviews / filled.name).write_bytes(filled.read_bytes())   # the 考核组 filled the one in 核定/
    from fills import write_filled

    from xlsx_assess.workflow import load_round_context

    ctx = load_round_context(rnd)
    resent = write_filled(ctx, ctx.roster[code], tmp_path, {i.id: (i.points if i.kind == "base" else None)
                                                            for i in ctx.rubric.items if i.kind != "zero"},
                          zeroed=False, name="重报.xlsx")
    client.post("/api/upload", files=[("files", ("重报.xlsx", resent.read_bytes()))], headers=SCRIPT)
    page = client.get("/review").text
    assert "核定表已过期 1" in page and "refresh=1" in page and "hx-confirm" in page
    before = (rnd.reviews / filled.name).read_bytes()
    r = client.post("/review/generate", headers=PAGE)           # filled in: kept until the clerk confirms
    assert "已生成 0 个核定表" in r.text and (rnd.reviews / filled.name).read_bytes() == before
    r = client.post("/review/generate?refresh=1", headers=PAGE)
    assert "已生成 1 个核定表" in r.text and (rnd.reviews / filled.name).read_bytes() != before
    assert {t["code"]: t.get("review") for t in client.get("/api/status").json()["townships"]}[code] == "pending"


# -- 反馈 ----------------------------------------------------------------------------------------------

def test_feedback_through_the_page_generate_download_upload(client, rnd, tmp_path):
    from python_calamine import CalamineWorkbook

    r = client.post("/feedback/generate", headers=PAGE)
    assert r.status_code == 200 and Code.NOTHING_TO_RANK in r.text           # nothing received yet
    assert client.get("/feedback/feedback.zip").status_code == 404
    client.post("/api/upload", files=samples(), headers=SCRIPT)
    r = client.post("/feedback/generate", headers=PAGE)
    assert r.status_code == 200 and "已生成 9 份反馈单" in r.text and "待整改 9" in r.text
    z = client.get("/feedback/feedback.zip")
    assert z.status_code == 200 and "filename*=UTF-8''" in z.headers["content-disposition"]
    with zipfile.ZipFile(__import__("io").BytesIO(z.content)) as zf:
        names = sorted(zf.namelist())
        assert names == sorted(p.name for p in rnd.feedback.glob("*.xlsx")) and len(names) == 9
        member = tmp_path / "member.xlsx"
        member.write_bytes(zf.read(names[0]))
    assert "反馈单" in CalamineWorkbook.from_path(str(member)).sheet_names
    form = next(rnd.sent.glob("*.xlsx"))
    files = [("files", (names[0], member.read_bytes())), ("files", (form.name, form.read_bytes())),
             ("files", ("说明.txt", b"text"))]
    got = client.post("/feedback/upload", files=files, headers=SCRIPT).json()
    untouched, other, text = got["files"]
    assert untouched["status"] == "warning" and untouched["township"] and untouched["stored_as"].startswith("反馈/网页上传/")
    assert (rnd.root / untouched["stored_as"]).is_file() and (rnd.files / untouched["sha256"][:2] / untouched["sha256"]).is_file()
    assert other["status"] == "error" and Code.FEEDBACK_NOT_OURS in codes(other)
    assert text["status"] == "skipped"
    assert {t.get("feedback") for t in got["townships"]} == {"sent"}
    assert {t.get("feedback") for t in client.get("/api/status").json()["townships"]} == {"sent"}
    page = client.get("/feedback").text
    assert "待整改 9" in page and Code.FEEDBACK_NOT_OURS in page           # the stray form in 反馈/, located
    assert "待整改" in client.get("/").text
    assert client.post("/receive/check", headers=PAGE).status_code == 200    # 核查结果.xlsx as `check` writes it
    book = tmp_path / "核查结果.xlsx"
    book.write_bytes(client.get("/results/核查结果.xlsx").content)
    sheet = CalamineWorkbook.from_path(str(book)).get_sheet_by_name("核查情况").to_python()
    head = next(k for k, row in enumerate(sheet) if row[0] == "序号")
    assert [row[sheet[head].index("整改")] for row in sheet[head + 1:]] == ["待整改"] * 9


# -- the command -------------------------------------------------------------------------------------

def test_serve_outside_a_round_says_so_and_the_cli_starts_without_the_web_stack(tmp_path):
    out = subprocess.run([sys.executable, "-m", "xlsx_assess", "serve", "--no-browser"], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2 and "考核轮次" in out.stderr
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom xlsx_assess.cli import app\n"
            "CliRunner().invoke(app, ['--help'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'jinja2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_serve_on_a_taken_port_says_so_in_chinese(rnd):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "xlsx_assess", "serve", "--round", str(rnd.root), "--port",
                              str(port), "--no-browser"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--port" in out.stderr and "Traceback" not in out.stderr


def test_token_only_off_this_machine():
    from xlsx_assess.web import token_for, url_of

    assert token_for("127.0.0.1") is None
    token = token_for("0.0.0.0")
    assert token and len(token) >= 24 and token != token_for("0.0.0.0")
    assert url_of("0.0.0.0", 8765, token).endswith(f"/?token={token}")


def test_uploads_never_spool_to_the_system_temp_folder(client, monkeypatch):
    import starlette.formparsers as fp

    made = []

    class Spy(fp.SpooledTemporaryFile):                 # a rollover writes a (nameless) file in the temp folder
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(fp, "SpooledTemporaryFile", Spy)
    big = SAMPLES.joinpath("吴坝镇.xlsx").read_bytes() + b"\0" * (3 * 1024 * 1024)   # past Starlette's 1 MB spool
    r = client.post("/api/upload", files=[("files", ("大文件.xlsx", big))], headers=SCRIPT)
    assert r.status_code == 200
    assert made and not any(f._rolled for f in made)


def test_a_lock_file_is_skipped_as_check_skips_it(client):
    r = client.post("/api/upload", files=[("files", ("~$城关镇.xlsx", b"lock"))], headers=SCRIPT)
    [answer] = r.json()["files"]
    assert answer["status"] == "skipped" and Code.SKIPPED in codes(answer)


def test_the_page_and_the_cli_on_the_same_round_at_once(client, rnd):
    from xlsx_assess.ledger import Ledger

    for k, p in enumerate(sorted(SAMPLES.glob("*.xlsx"))[:4]):          # the CLI has files of its own to check
        (rnd.returned / f"微信{k}.xlsx").write_bytes(p.read_bytes())
    cli = subprocess.Popen([sys.executable, "-m", "xlsx_assess", "check", "--round", str(rnd.root), "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=rnd.root)
    r = client.post("/api/upload", files=samples()[4:], headers=SCRIPT)
    out, err = cli.communicate(timeout=120)
    assert r.status_code == 200 and cli.returncode in (0, 1), err
    with Ledger.of_round(rnd) as ledger:
        assert ledger.integrity() == []
    assert client.get("/api/status").json()["counts"]["ok"] == 9


def test_check_again_reads_what_the_clerk_put_in_the_folder(client, rnd):
    for p in sorted(SAMPLES.glob("*.xlsx"))[:3]:
        (rnd.returned / p.name).write_bytes(p.read_bytes())
    assert client.post("/receive/check").status_code == 403                 # not from the page
    r = client.post("/receive/check", headers=PAGE)
    assert r.status_code == 200 and r.text.count('class="notice ') == 6     # six townships still to chase
    assert client.get("/api/status").json()["counts"]["ok"] == 3
    assert client.get("/results/核查结果.xlsx").content[:2] == b"PK"


def test_a_broken_setup_is_shown_located_not_a_crash(client, rnd):
    rnd.setup.write_bytes(b"not a workbook")
    r = client.get("/")
    assert r.status_code == 409 and "无法继续" in r.text and "考核设置.xlsx" in r.text
    r = client.get("/api/status")
    assert r.status_code == 409 and r.json()["issues"][0]["code"]


def test_a_results_book_held_open_is_said_and_the_upload_still_answers(client, rnd, monkeypatch):
    import xlsx_assess.results_book as rb
    from xlsx_assess.issues import AssessError, Report, issue

    def held(board, ctx, path, now=None):
        raise AssessError(Report([issue(Code.OUTPUT_UNWRITABLE, file=str(path), detail="文件被占用")]))

    monkeypatch.setattr(rb, "write_results", held)
    r = client.post("/api/upload", files=samples()[:1], headers=SCRIPT)
    assert r.status_code == 200 and r.json()["files"][0]["status"] == "ok"
    assert r.json()["results"] is None and Code.OUTPUT_UNWRITABLE in r.json()["results_error"]
    r = client.post("/api/upload", files=samples()[1:2], headers=PAGE)
    assert r.status_code == 200 and "未能写入" in r.text


def test_a_changed_rubric_is_not_regenerated_without_asking(client, rnd):
    from dataclasses import replace

    from xlsx_assess.round import load_round_context
    from xlsx_assess.rubric import Rubric
    from xlsx_assess.setup_book import write_setup_book

    ctx = load_round_context(rnd)
    first, second = ctx.rubric.base[0], ctx.rubric.base[1]
    changed = Rubric(tuple(replace(i, points=i.points - 0.5) if i.id == first.id else
                           replace(i, points=i.points + 0.5) if i.id == second.id else i for i in ctx.rubric.items))
    write_setup_book(changed, ctx.townships, ctx.settings, rnd.setup)
    before = {p.name: p.read_bytes() for p in rnd.sent.iterdir()}
    r = client.post("/send/generate", headers=PAGE)
    assert r.status_code == 200 and Code.FORMS_FROM_OTHER_RUBRIC in r.text and f"{first.id} 分值" in r.text
    assert "force=1" in r.text and {p.name: p.read_bytes() for p in rnd.sent.iterdir()} == before
    r = client.post("/send/generate?force=1", headers=PAGE)
    assert "已生成 9 个乡镇的考核表" in r.text and {p.name: p.read_bytes() for p in rnd.sent.iterdir()} != before


def test_an_upload_the_round_cannot_take_is_said_in_chinese(client, rnd):
    (rnd.returned / "网页上传").write_text("not a folder")      # a read-only share, say
    got = client.post("/api/upload", files=[("files", ("a.xlsx", b"x"))], headers=SCRIPT)
    assert got.status_code == 507 and "R302" in got.json()["error"]


def test_a_review_or_feedback_upload_the_round_cannot_take_is_said_in_chinese(client, rnd):
    for folder, route in ((rnd.reviews, "/review/upload"), (rnd.feedback, "/feedback/upload")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "网页上传").write_text("not a folder")             # a read-only share, say
        got = client.post(route, files=[("files", ("a.xlsx", b"x"))], headers=SCRIPT)
        assert got.status_code == 507 and "R302" in got.json()["error"], route


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_one_ctrl_c_stops_the_page_and_its_helper(rnd):
    """The helper, forked while uvicorn's signal handlers were in place, kept them: multiprocessing's
    SIGTERM at exit only asked a copy of the server to stop, and the page waited for ever after Ctrl+C."""
    import signal
    import time
    import urllib.request

    from xlsx_assess.web import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "xlsx_assess", "serve", "--round", str(rnd.root), "--no-browser",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)                 # its own group, as a terminal's
    try:
        sample = sorted(SAMPLES.glob("*.xlsx"))[0]
        boundary = "xa-boundary"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.xlsx"\r\n\r\n'.encode()
                + sample.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/upload", data=body, method="POST",
                                         headers={**SCRIPT, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the page did not start"
                time.sleep(0.2)
        helpers = _children(proc.pid)
        assert helpers, "the upload started no helper"
        os.killpg(proc.pid, signal.SIGINT)                           # Ctrl+C in the terminal
        proc.wait(timeout=20)
        time.sleep(0.5)
        assert not [pid for pid in helpers if _running(pid)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_no_such_page_and_a_button_address_opened_are_said_in_chinese(client):
    r = client.get("/没有这页")
    assert r.status_code == 404 and "找不到这个页面" in r.text and "回到本轮概况" in r.text
    assert "Not Found" not in r.text
    r = client.get("/api/nothing")
    assert r.status_code == 404 and "找不到这个页面" in r.json()["error"]
    r = client.get("/rank/run")                                  # a button's address typed in
    assert r.status_code == 405 and "不能这样打开这个网址" in r.text and r.headers["allow"] == "POST"
