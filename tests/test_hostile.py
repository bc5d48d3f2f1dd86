"""Survive whatever comes back: every returned file gets a verdict, nothing crashes, hangs or eats memory.

The corpus (tests/hostile_corpus.py) holds every case of the issue, from renamed PDFs to decompression
bombs, tampered forms and abused inputs, next to good files that must still be ranked. LibreOffice makes
what a person would make (one session for the module); the rest is zip and XML surgery. Without
LibreOffice, the cases it makes are skipped and the rest still run.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import codes_of, needs_libreoffice, patch_zip, sheet_part, write_filled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_corpus as hc
from xlsx_assess import ooxml, reader, sandbox
from xlsx_assess.checks import check_returned
from xlsx_assess.collect import Collection, check_paths
from xlsx_assess.issues import CATALOGUE, Refused
from xlsx_assess.layout import FORM_SHEET
from xlsx_assess.ranking import rank_townships, write_ranking
from xlsx_assess.reader import read_returned

SMALL_VALUES = {"A01": 30.0, "A02": 10.0, "B01": 45.5, "S01": 2.0, "S02": 1.0}


@dataclass
class Run:
    corpus: hc.Corpus
    coll: Collection
    ranking_path: Path
    before: dict[str, str]


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def check_and_rank(corpus: hc.Corpus, out: Path, workers: int = 1) -> Run:
    before = hashes(corpus.folder)
    coll = check_paths([corpus.folder], corpus.context(), workers=workers)
    write_ranking(rank_townships(coll, corpus.context()), out)
    return Run(corpus, coll, out, before)


def relative(run: Run, name: str) -> str:
    return name[len(str(run.corpus.folder)) + 1:]


def verdict_failures(run: Run) -> list[str]:
    """Every expectation of the corpus that the run does not meet, one line each."""
    results = {relative(run, r.name): r for r in run.coll.results}
    failures = []
    for name, expected in sorted(run.corpus.expected.items()):
        res = results.get(name)
        if res is None:
            failures.append(f"{name}: no verdict")
            continue
        located, bare = set(codes_of(res)), {i.code for i in res.report}
        missing = [e for e in expected if (e not in located if isinstance(e, tuple) else e not in bare)]
        must_rank = name in run.corpus.ranked_files
        if missing:
            failures.append(f"{name}: missing {missing}, got {sorted(located)[:8]}")
        if must_rank != res.accepted:
            failures.append(f"{name}: accepted={res.accepted}, expected {must_rank} ({sorted(bare)})")
        if not expected and not must_rank and res.report.ok:
            failures.append(f"{name}: no verdict at all")
    failures += [f"{n}: not in the corpus" for n in results if n not in run.corpus.expected]
    skipped = {relative(run, s.name) for s in run.coll.skipped}
    if skipped != run.corpus.skipped:
        failures.append(f"skipped {sorted(skipped ^ run.corpus.skipped)} differently")
    return failures


def ranking_failures(run: Run) -> list[str]:
    """The accepted townships, their finals and their ranks, against a direct computation."""
    accepted = {r.township.code: r for r in run.coll.accepted}
    failures = [f"{code}: ranked={code in accepted}, expected {code in run.corpus.ranked}"
                for code in set(accepted) ^ set(run.corpus.ranked)]
    finals = run.corpus.ranked
    for code, res in accepted.items():
        if code in finals and res.scores.final != finals[code]:
            failures.append(f"{code}: final {res.scores.final}, expected {finals[code]}")
    rk = rank_townships(run.coll, run.corpus.context()).ranking
    for row in rk.to_dict("records"):
        expected_rank = 1 + sum(1 for v in finals.values() if round(v, 2) > round(finals.get(row["乡镇代码"], -1), 2))
        if row["排名"] != expected_rank:
            failures.append(f"{row['乡镇代码']}: rank {row['排名']}, expected {expected_rank}")
    return failures


def accounted_failures(run: Run) -> list[str]:
    """received = accepted + excluded + skipped, and every file on disk is one of them (or an opened archive)."""
    s = run.coll.summary()
    failures = [] if s["received"] == s["accepted"] + s["excluded"] + s["skipped"] else [f"summary {s}"]
    names = [relative(run, r.name) for r in run.coll.results] + [relative(run, k.name) for k in run.coll.skipped]
    seen = {n.split(hc.ARROW)[0] for n in names}
    failures += [f"{n}: not accounted for" for n in run.before if n not in seen]
    failures += [f"{n}: reported twice" for n in names if names.count(n) > 1]
    return failures


# -- the whole corpus, LibreOffice included ------------------------------------------------------------

@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Run:
    needs_libreoffice()
    corpus = hc.build(tmp_path_factory.mktemp("hostile") / "收回")
    return check_and_rank(corpus, tmp_path_factory.mktemp("ranking") / "排名.xlsx", workers=2)


@pytest.mark.libreoffice
def test_every_file_gets_its_expected_verdict(full):
    assert verdict_failures(full) == []


@pytest.mark.libreoffice
def test_good_files_are_ranked_as_computed_directly(full):
    assert len(full.corpus.ranked) > 500
    assert ranking_failures(full) == []


@pytest.mark.libreoffice
def test_every_input_is_accounted_for_and_left_untouched(full):
    assert accounted_failures(full) == []
    assert hashes(full.corpus.folder) == full.before


def ranking_texts(path: Path) -> tuple[list[bytes], list[str]]:
    """The sheets' XML and every string of a ranking workbook (shared, or written in place in the cells)."""
    with zipfile.ZipFile(path) as zf:
        sheets = [zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/sheet")]
        shared = zf.read("xl/sharedStrings.xml") if "xl/sharedStrings.xml" in zf.namelist() else b""
    xml = b"".join([shared, *sheets]).decode("utf-8")
    return sheets, [html.unescape(t) for t in re.findall(r"<t[^>]*>([^<]*)</t>", xml)]


@pytest.mark.libreoffice
def test_verdicts_kept_on_disk_give_the_same_reports_and_ranking(full, monkeypatch):
    """A province's verdicts wait in a temporary file (`collect.KEEP_RESULTS`); reading them back, with
    the roles and issues the collection rules gave them, changes nothing anyone sees."""
    import datetime as dt

    import pandas as pd

    from xlsx_assess import collect
    from xlsx_assess.report import collection_json, ranking_json

    monkeypatch.setattr(collect, "KEEP_RESULTS", 0)
    ctx = full.corpus.context()
    on_disk = check_paths([full.corpus.folder], ctx, workers=2)
    assert on_disk.results._kept == [] and len(on_disk.results._spans) == 2 * len(on_disk.results)
    codes = {i["code"] for f in collection_json(on_disk)["files"] for i in f["issues"]}
    assert {"C501", "C502", "C504"} <= codes                 # the rules' own issues came back with them
    assert collection_json(on_disk) == collection_json(full.coll)
    for coll in (full.coll, on_disk):
        with pytest.raises(IndexError):                      # a sequence: out of range either way
            coll.results[-len(coll.results) - 1]
        assert coll.results[-1].name == coll.heads[-1].name
    for coll in (full.coll, on_disk):                        # the heads say what the verdicts say
        for h, r in zip(coll.heads, coll.results):
            assert (h.name, h.status, h.role, h.accepted, h.issues) == (r.name, r.status, r.role, r.accepted,
                                                                        len(r.report))
    now = dt.datetime(2027, 1, 5, 9, 0, tzinfo=dt.timezone.utc)
    kept, read_back = rank_townships(full.coll, ctx, now), rank_townships(on_disk, ctx, now)
    assert {"C501", "C502", "C504"} <= set(kept.issues["代码"])
    for table in ("ranking", "categories", "details", "issues", "files", "missing", "notes"):
        pd.testing.assert_frame_equal(getattr(kept, table), getattr(read_back, table))
    assert kept.explanation == read_back.explanation
    assert ranking_json(kept, full.coll) == ranking_json(read_back, on_disk)


# ../shared/real-files from the repository's root (XLSX_ASSESS_REAL_FILES elsewhere, e.g. in a worktree)
REAL_FILES = Path(os.environ.get("XLSX_ASSESS_REAL_FILES") or Path(__file__).resolve().parents[2] / "shared" / "real-files")


def plain_and_tree_differences(paths) -> tuple[int, list[str]]:
    """Run the plain-way patterns and the tree walk over every worksheet of `paths` (xlsx/xlsm) with a
    few sets of unlocked styles: (worksheets the patterns accepted, the ones where the two differ)."""
    compared, differ = 0, []
    for path in paths:
        try:
            zf = zipfile.ZipFile(path)
            parts = [(n, zf.read(n)) for n in zf.namelist() if n.lower().startswith("xl/worksheets/")
                     and n.lower().endswith(".xml")]
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, NotImplementedError, EOFError, zlib.error):
            continue
        for name, xml in parts:
            try:
                ooxml.check_xml(name, xml)
                well_formed = True
            except Refused:
                well_formed = False                    # then the patterns must not read it either
            for unlocked in (frozenset(), frozenset({1, 5, 6, 11}), frozenset(range(1, 40))):
                plain = ooxml.scan_plain(xml, unlocked)
                if plain is None:
                    continue
                if not well_formed:
                    differ.append(f"{path.name} › {name}: the patterns read a sheet that is not well-formed")
                    continue
                try:
                    tree = ooxml.scan_tree(name, xml, unlocked)
                except Exception as exc:
                    differ.append(f"{path.name} › {name}: the tree refused what the patterns read ({exc})")
                    continue
                if plain != tree:
                    differ.append(f"{path.name} › {name} ({sorted(unlocked)[:3]}…)")
                compared += 1
    return compared, differ


@pytest.mark.libreoffice
def test_the_plain_way_patterns_read_what_the_tree_reads(full):
    """Every worksheet of the corpus the plain-way patterns accept (ours, LibreOffice's, tampered ones)
    gives the same formulas, unlocked cells, errors, protection, validation and problems as the tree."""
    compared, differ = plain_and_tree_differences(sorted(full.corpus.folder.rglob("*.xls[xm]")))
    assert differ == []
    assert compared > 500


def test_the_plain_way_patterns_read_what_the_tree_reads_in_real_files():
    """The same over every .xlsx/.xlsm saved by Excel and other programs (../shared/real-files)."""
    if not REAL_FILES.is_dir():
        pytest.skip(f"no real files at {REAL_FILES}")
    paths = sorted(p for p in REAL_FILES.rglob("*") if p.suffix.lower() in (".xlsx", ".xlsm"))
    compared, differ = plain_and_tree_differences(paths)
    assert differ == []
    assert compared > 300


@pytest.mark.libreoffice
def test_the_ranking_workbook_holds_no_formula_whatever_came_in(full):
    sheets, _ = ranking_texts(full.ranking_path)
    assert not any(re.search(rb"<f[ >]", s) for s in sheets)


def test_township_text_stays_inert_text_in_the_ranking_workbook(small_ctx, tmp_path, monkeypatch):
    """File names and notes that start like formulas reach the ranking as plain strings, first in their cells."""
    a, b = small_ctx.townships
    folder = tmp_path / "收回"
    folder.mkdir()
    notes = dict(zip(("A01", "A02", "B01"), hc.INJECTIONS))
    write_filled(small_ctx, a, folder, SMALL_VALUES, False, notes, name=hc.INJECTIONS[0].replace("/", "_") + ".xlsx")
    write_filled(small_ctx, b, folder, {**SMALL_VALUES, "A01": 25.0}, False, {"A01": hc.INJECTIONS[3]},
                 name=hc.INJECTIONS[1] + ".xlsx")
    monkeypatch.chdir(folder)                      # names relative to here: the file name starts the cell
    coll = check_paths(["."], small_ctx, workers=1)
    assert len(coll.accepted) == 2 and all(("V414", FORM_SHEET, "H5") in codes_of(r) for r in coll.results)
    out = write_ranking(rank_townships(coll, small_ctx), tmp_path / "排名.xlsx")
    sheets, strings = ranking_texts(out)
    assert not any(re.search(rb"<f[ >]", s) for s in sheets)          # not one formula, whatever the text
    for text in (*hc.INJECTIONS, hc.INJECTIONS[1] + ".xlsx"):
        assert any(text in s for s in strings), text
    assert hc.INJECTIONS[1] + ".xlsx" in strings                       # a whole cell that starts with "+"


@pytest.mark.libreoffice
def test_other_formats_and_damaged_xls_never_take_the_run_down(full, tmp_path):
    """Mutated .xls and .ods files (LibreOffice-made) go through the isolated reader: a verdict each."""
    rng = random.Random(7)
    for source in ("formats/form.xls", "formats/form.ods"):
        data = (full.corpus.folder / source).read_bytes()
        for _ in range(40):
            blob = bytearray(data)
            for _ in range(rng.randint(1, 30)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
            res = check_returned(read_returned(tmp_path / source.replace("/", "_"), data=bytes(blob)),
                                 full.corpus.context())
            assert_a_report(res)


# -- without LibreOffice: the rest of the corpus ---------------------------------------------------------

@pytest.fixture(scope="module")
def scripted(tmp_path_factory) -> Run:
    corpus = hc.build(tmp_path_factory.mktemp("scripted") / "收回", with_libreoffice=False, bulk=20)
    return check_and_rank(corpus, tmp_path_factory.mktemp("ranking") / "排名.xlsx")


def test_scripted_cases_get_their_verdicts_and_good_files_are_ranked(scripted):
    assert verdict_failures(scripted) == []
    assert ranking_failures(scripted) == []
    assert accounted_failures(scripted) == []
    assert hashes(scripted.corpus.folder) == scripted.before


BOMB_READER = """
import json, resource, sys, time
from xlsx_assess.reader import read_returned
out = []
for path in sys.argv[1:]:
    t = time.monotonic()
    ret = read_returned(path)
    out.append([path, [i.code for i in ret.issues], time.monotonic() - t])
# This process's own peak (VmHWM): ru_maxrss would include the peak of the process that started it (pytest,
# 250 MB late in a whole run), which Linux carries over an exec after a vfork.
try:
    with open("/proc/self/status", encoding="ascii") as fh:
        own = next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))
except OSError:                                  # not Linux: the wider figure
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
helper = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"files": out, "rss_mb": own, "helper_rss_mb": helper}))
"""


def test_bombs_are_refused_in_seconds_with_bounded_memory(scripted):
    bombs = sorted((scripted.corpus.folder / "bombs").iterdir())
    assert len(bombs) >= 9
    proc = subprocess.run([sys.executable, "-c", BOMB_READER, *map(str, bombs)], capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout)
    for path, codes, seconds in report["files"]:
        name = relative(scripted, path)
        assert scripted.corpus.expected[name] <= set(codes), (name, codes)
        assert seconds < 5, (name, seconds)
    print("bombs: this process", report["rss_mb"], "MB, the helper", report["helper_rss_mb"], "MB")
    # This process holds at most one file's inflated parts (container.MAX_TOTAL_BYTES, 100 MB) at a time,
    # besides the memos (bounded by bytes, 35 MB) and the interpreter (30 MB): measured 41 MB, so the bound
    # is what the limits add up to.
    assert report["rss_mb"] < 200, report["rss_mb"]
    # The helper may get some way into a bomb before the scan here refuses it and stops the read (how far
    # depends on timing); what bounds it is its own address-space limit (sandbox.HELPER_EXTRA_MEMORY).
    assert report["helper_rss_mb"] < 200 + sandbox.HELPER_EXTRA_MEMORY / 2**20, report["helper_rss_mb"]


def test_a_file_over_the_size_limit_is_not_even_opened(tmp_path, monkeypatch):
    big = tmp_path / "big.xlsx"
    with open(big, "wb") as fh:
        fh.truncate(reader.MAX_FILE_BYTES + 1)

    def no_open(*args, **kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr(reader, "open", no_open, raising=False)
    assert [i.code for i in read_returned(big).issues] == ["F106"]


@pytest.mark.parametrize("xml", [
    b"<worksheet><sheetData>" + b'<c r="A1">' * 200_000,
    b"<worksheet>" + b'<dataValidation type="list">' * 200_000,
    b'<worksheet><sheetData><row r="1"><c r="A1"><f>' + b"<f>" * 200_000,
    b"<worksheet><c " + b'a="1" ' * 300_000,
], ids=["unclosed cells", "unclosed validations", "unclosed formulas", "endless attributes"])
def test_scanning_hostile_xml_takes_linear_time(xml):
    start = time.monotonic()
    with pytest.raises(Refused) as stop:
        ooxml.scan_sheet("xl/worksheets/sheet1.xml", xml)       # not well-formed: refused, in linear time
    assert stop.value.code == "F104"
    assert time.monotonic() - start < 1.0
    start = time.monotonic()
    ooxml.sheet_extent(xml)                                      # what python-calamine would allocate
    assert time.monotonic() - start < 1.0


def test_a_crash_or_a_hang_in_the_value_reader_costs_only_that_file(small_ctx, tmp_path, monkeypatch):
    """python-calamine can abort the process on some damaged files: it runs in a helper that may die."""
    a, b = small_ctx.townships
    write_filled(small_ctx, a, tmp_path, SMALL_VALUES, False)
    write_filled(small_ctx, b, tmp_path, {**SMALL_VALUES, "A01": 20.0}, False)
    for name, marker in (("crash.xlsx", "CRASH"), ("hang.xlsx", "HANG")):
        write_filled(small_ctx, a, tmp_path, SMALL_VALUES, False, notes={"A01": marker}, name=name)
    real = sandbox._calamine_values

    def flaky(data: bytes):
        blob = zipfile.ZipFile(io.BytesIO(data)).read("xl/sharedStrings.xml")
        if b"CRASH" in blob:
            os.abort()
        if b"HANG" in blob:
            time.sleep(60)
        return real(data)

    sandbox.stop_helper()                      # the helper forks from here, with the flaky reader
    monkeypatch.setattr(sandbox, "_calamine_values", flaky)
    monkeypatch.setattr(sandbox, "READ_SECONDS", 2)
    try:
        coll = check_paths([tmp_path], small_ctx, workers=1)
    finally:
        sandbox.stop_helper()
    verdicts = {Path(r.name).name: r for r in coll.results}
    assert [i.code for i in verdicts["crash.xlsx"].report] == ["F104"]
    assert [i.code for i in verdicts["hang.xlsx"].report] == ["F104"]
    assert {r.township.code for r in coll.accepted} == {a.code, b.code}


def dies_on_the_fifth(cands):
    """A pool worker's task that kills the worker when given the file 05.xlsx."""
    from xlsx_assess import collect

    if any(Path(c.name).name == "05.xlsx" for c in cands):
        os._exit(1)
    return list(collect.check_candidates(cands, collect._POOL_CTX))


def test_a_pool_worker_that_dies_costs_nothing(small_ctx, tmp_path, monkeypatch):
    """A worker killed mid-batch (out of memory, a crash): the files it had are checked here instead."""
    from xlsx_assess import collect
    from xlsx_assess.report import collection_json

    a, b = small_ctx.townships
    for k in range(12):
        write_filled(small_ctx, (a, b)[k % 2], tmp_path, {**SMALL_VALUES, "A01": float(k)}, False, name=f"{k:02d}.xlsx")
    alone = collection_json(check_paths([tmp_path], small_ctx, workers=1))
    monkeypatch.setattr(collect, "POOL_THRESHOLD", 2)
    monkeypatch.setattr(collect, "_check_in_worker", dies_on_the_fifth)     # the workers fork from here
    pooled = check_paths([tmp_path], small_ctx, workers=2)
    assert collection_json(pooled) == alone
    assert [Path(r.name).name for r in pooled.results] == [f"{k:02d}.xlsx" for k in range(12)]


@pytest.mark.parametrize("far", ["ZZ2000", "XFD1048576"], ids=["measured by the helper", "the helper dies"])
def test_a_sheet_too_big_to_hold_is_refused_by_name(small_ctx, tmp_path, far):
    """1.4 million cells: python-calamine reads them, the helper measures and refuses before sending any;
    17 billion: python-calamine aborts the helper, and this process measures the sheets to say why."""
    path = write_filled(small_ctx, small_ctx.townships[0], tmp_path, SMALL_VALUES, False)
    assert read_returned(path).readable                      # the helper is up, reading good files
    helper = sandbox.helper_pid()
    assert helper is not None
    row = re.sub(r"[A-Z]", "", far)
    patch_zip(path, sheet_part(path, FORM_SHEET),
              lambda x: x.replace("</sheetData>", f'<row r="{row}"><c r="{far}"><v>1</v></c></row></sheetData>'))
    issues = read_returned(path).issues
    assert [(i.code, far in i.message, FORM_SHEET in i.message) for i in issues] == [("F114", True, True)]
    assert (sandbox.helper_pid() == helper) == (far == "ZZ2000")


def test_without_a_helper_the_same_guard_runs_before_reading_here(small_ctx, tmp_path, monkeypatch):
    """Where no helper process can start, values are read in this process: a sheet that would make
    python-calamine abort must be refused first (if not, this test run dies)."""
    good = write_filled(small_ctx, small_ctx.townships[0], tmp_path, SMALL_VALUES, False,
                        {k: "扣分或加减分说明" for k in SMALL_VALUES})
    far = patch_zip(good, sheet_part(good, FORM_SHEET), lambda x: x.replace(
        "</sheetData>", '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'), out=tmp_path / "far.xlsx")
    monkeypatch.setattr(sandbox, "_SANDBOX", sandbox.Helper(processes=False))
    assert [i.code for i in read_returned(far).issues] == ["F114"]
    assert codes_of(check_returned(read_returned(good), small_ctx)) == []
    assert sandbox.helper_pid() is None


@pytest.mark.libreoffice
def test_every_reader_asks_the_one_size_rule(full, small_ctx, tmp_path, monkeypatch):
    """Lower the limit in `sandbox.check_size` alone, and every way a sheet is measured refuses by it:
    the helper's measure, the guard where values are read here, the .xls and .ods sheet scans."""
    good = write_filled(small_ctx, small_ctx.townships[0], tmp_path, SMALL_VALUES, False)
    monkeypatch.setattr(sandbox, "MAX_CELLS", 10)
    helper = sandbox._SANDBOX
    helper.stop()                                  # the next helper forks with the lower limit
    try:
        assert [i.code for i in read_returned(good).issues] == ["F114"]
        for source in ("formats/form.xls", "formats/form.ods"):
            assert [i.code for i in read_returned(full.corpus.folder / source).issues] == ["F114"], source
        monkeypatch.setattr(sandbox, "_SANDBOX", sandbox.Helper(processes=False))
        assert [i.code for i in read_returned(good).issues] == ["F114"]
    finally:
        helper.stop()                              # not to be used again with the lower limit


# -- fuzzing: random damage to a good workbook never raises, every outcome is a report ------------------

TOKENS = [b'<c r="', b'"', b">", b"</c>", b"<v>", b"</v>", b"9999999", b"XFD1048576", b"<!DOCTYPE", b"&amp;", b"<f>",
          b't="e"', b't="s"', b't="b"', b't="inlineStr"', b"<is><t>x</t></is>", b'<row r="', b"<row>", b"<c>", b"0",
          b"-1", b"\x00", b"\xff\xfe", b"A0", b"$", b"<xf>", b"</cellXfs>", b'uniqueCount="', b"4294967295", b"</sst>",
          b'<sheetProtection sheet="0"/>', b"<dataValidation sqref=", b'name="xa_year"', b"#DIV/0!", b"=1+1"]


class Blob(bytes):
    """Workbook bytes that print short in hypothesis reports."""

    def __repr__(self) -> str:
        return f"<workbook of {len(self)} bytes>"


@pytest.fixture(scope="module")
def good_bytes(small_ctx, tmp_path_factory) -> Blob:
    notes = {"A01": "未研究部署，扣10分", "B01": "缺年度报告制度"}
    return Blob(write_filled(small_ctx, small_ctx.townships[0], tmp_path_factory.mktemp("fuzz"), SMALL_VALUES, False,
                             notes).read_bytes())


def rezip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members:
            zf.writestr(zipfile.ZipInfo(name), blob)
    return buf.getvalue()


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """A good workbook after one to three of: byte edits, truncation, member edits, XML edits, cell edits."""
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        kind = draw(st.sampled_from(["bytes", "truncate", "member", "xml", "cell"]))
        if kind == "bytes":
            blob = bytearray(data)
            for _ in range(draw(st.integers(1, 12))):
                blob[draw(st.integers(0, len(blob) - 1))] = draw(st.integers(0, 255))
            data = bytes(blob)
            continue
        if kind == "truncate":
            data = data[:draw(st.integers(0, len(data) - 1))]
            continue
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                members = [(i.filename, zf.read(i)) for i in zf.infolist()]
        except Exception:
            continue                               # already no zip: byte edits only from here
        if not members:
            continue
        k = draw(st.integers(0, len(members) - 1))
        name, blob = members[k]
        if kind == "member":
            op = draw(st.sampled_from(["drop", "twice", "rename", "empty", "grow"]))
            if op == "drop":
                members.pop(k)
            elif op == "twice":
                members.append(members[k])
            elif op == "rename":
                members[k] = (draw(st.sampled_from(["xl/workbook.xml", "mimetype", "xl/worksheets/sheet2.xml",
                                                    "xl/workbook.bin", "word/document.xml", "x"])), blob)
            elif op == "empty":
                members[k] = (name, b"")
            else:
                members[k] = (name, blob * 40)
        else:
            blob = bytearray(blob)
            for _ in range(draw(st.integers(1, 5))):
                cells = [m.end() for m in re.finditer(rb'<c r="', bytes(blob))] if kind == "cell" else []
                at = draw(st.sampled_from(cells)) if cells else draw(st.integers(0, len(blob)))
                token = draw(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8),
                                       st.integers(0, 10 ** 12).map(lambda n: str(n).encode())))
                blob[at:at + draw(st.integers(0, 12))] = token
            members[k] = (name, bytes(blob))
        data = rezip(members)
    return data


def assert_a_report(res) -> None:
    assert res.status in ("ok", "warning", "error")
    assert all(i.code in CATALOGUE for i in res.report)
    if res.scores is None:
        assert res.report.errors, "a file that could not be scored must say why"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_damaged_workbooks_always_get_a_report(good_bytes, small_ctx, data):
    blob = data.draw(damaged(good_bytes))
    assert_a_report(check_returned(read_returned("damaged.xlsx", data=blob), small_ctx))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_files_in_folders_and_archives_never_stop_a_collection(good_bytes, small_ctx, tmp_path, data):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    blobs = [data.draw(damaged(good_bytes)) for _ in range(3)]
    (folder / "a.xlsx").write_bytes(blobs[0])
    (folder / "b.zip").write_bytes(rezip([("b1.xlsx", blobs[1]), ("内/b2.xlsx", blobs[2]), ("b3.zip", rezip(
        [("b4.xlsx", good_bytes)]))]))
    if data.draw(st.booleans()):                   # the archive itself damaged too
        raw = bytearray((folder / "b.zip").read_bytes())
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 0xFF
        (folder / "b.zip").write_bytes(bytes(raw))
    coll = check_paths([folder], small_ctx, workers=1)
    s = coll.summary()
    assert s["received"] == s["accepted"] + s["excluded"] + s["skipped"] >= 2
    for res in coll.results:
        assert_a_report(res)


@pytest.fixture(scope="module")
def zero_scored(small_ctx, tmp_path_factory) -> tuple[list[tuple[str, bytes]], str]:
    """A good workbook whose A01 score is 0, as zip members, and the part holding the form sheet."""
    path = write_filled(small_ctx, small_ctx.townships[0], tmp_path_factory.mktemp("value"),
                        {**SMALL_VALUES, "A01": 0.0}, False)
    return hc._members(path), sheet_part(path, FORM_SHEET)


@settings(max_examples=80, deadline=None)
@given(value=st.one_of(st.text(max_size=40), st.floats(), st.integers(-10 ** 30, 10 ** 30), st.booleans()))
def test_any_value_in_a_score_cell_gets_a_verdict(small_ctx, zero_scored, value):
    """Whatever a program wrote into a score cell (any number, any text, a logical) is judged, never trusted."""
    members, sheet = zero_scored
    if isinstance(value, bool):
        cell = f'<c r="G5" t="b"><v>{int(value)}</v></c>'
    elif isinstance(value, str):
        text = html.escape("".join(ch for ch in value if ch in "\t\n" or ord(ch) >= 32 and ch not in "\ufffe\uffff"))
        cell = f'<c r="G5" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    else:
        cell = f"<c r=\"G5\"><v>{value!r}</v></c>"
    patched = [(n, re.sub(rb'<c r="G5"[^>]*><v>0</v></c>', lambda m: cell.encode(), b) if n == sheet else b) for n, b in members]
    assert patched != members
    res = check_returned(read_returned("value.xlsx", data=rezip(patched)), small_ctx)
    assert_a_report(res)
    if res.entries is not None:
        accepted = res.entries.values["A01"]
        assert accepted is None or 0 <= accepted <= 40


def test_every_note_reaches_the_ranking_workbook(small_ctx, tmp_path):
    a, b = small_ctx.townships
    write_filled(small_ctx, a, tmp_path, SMALL_VALUES, False, {"A01": "长" * 32_000})
    write_filled(small_ctx, b, tmp_path, {**SMALL_VALUES, "A01": 20.0}, False, {"A01": "资料不全"})
    coll = check_paths([tmp_path], small_ctx, workers=1)
    out = write_ranking(rank_townships(coll, small_ctx), tmp_path / "out" / "排名.xlsx")
    import python_calamine as pc

    rows = pc.CalamineWorkbook.from_path(str(out)).get_sheet_by_name("扣分说明").to_python()
    head = rows[3]                                 # under the title and 制表单位
    town, notes = head.index("乡镇"), head.index("扣分说明")
    assert {(r[town], r[notes][:4]) for r in rows[4:]} == {("城关镇", "长长长长"), ("侯庙镇", "资料不全")}
