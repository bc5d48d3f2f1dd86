"""Memory bounded by bytes: crafted files cannot make the memos (or the process) keep more than stated.

Each crafted file is small on disk and distinct, and is made to fill one memo as much as it can: many
large validation rules, a large shared-strings table, many styles that unlock cells, a large
workbook listing. They go through `read_returned` and `check_returned` in a fresh process that
reports every memo's bytes and its own resident memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import sheet_part, write_filled

from xlsx_assess.memo import Memo, total_bound

CRAFTED = 16                   # files of each kind (the issue: 16 small files pinned about 150 MB)
RSS_GROWTH_MB = 64             # what the whole process may grow by over the crafted files, after the first
# (the memos' own bound, 35 MB, plus the allocator's slack and the largest single file's working set)

PROBE = """
import gc, json, sys, zipfile
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import small_ctx_for_probe
from xlsx_assess.checks import check_returned
from xlsx_assess.memo import Memo, total_bound
from xlsx_assess.reader import read_returned

def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20

ctx = small_ctx_for_probe()
paths = sys.argv[1:]
check_returned(read_returned(paths[0]), ctx)
gc.collect()
first = rss()
codes = set()
for p in paths:
    res = check_returned(read_returned(p), ctx)
    codes |= {i.code for i in res.report}
gc.collect()
print(json.dumps({"growth_mb": rss() - first, "codes": sorted(codes), "bound": total_bound(),
                  "memos": {m.name: [m.held, m.max_bytes] for m in Memo.everyone}}))
"""


def crafted(small_ctx, folder: Path) -> list[Path]:
    """`CRAFTED` files of each kind, each distinct, each a valid return apart from what it is made to hold."""
    import hashlib
    import io
    import zipfile

    good = write_filled(small_ctx, small_ctx.townships[0], folder, {"A01": 30.0, "A02": 10.0, "B01": 45.5}, False)
    form = sheet_part(good, "评分表")
    with zipfile.ZipFile(good) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}

    def write(name: str, changes: dict[str, bytes]) -> Path:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for n, b in members.items():
                zf.writestr(n, changes.get(n, b))
        path = folder / name
        path.write_bytes(buf.getvalue())
        return path

    out = []
    for k in range(CRAFTED):
        rules = b"".join(b'<dataValidation type="decimal" sqref="B%d:CV%d"><formula1>%d</formula1></dataValidation>'
                         % (k * 7 + j, k * 7 + j + 999, j) for j in range(1000))
        sheet = members[form].replace(b"<dataValidations", b"<dataValidations_old", 1).replace(
            b"</dataValidations>", b"</dataValidations_old>", 1)
        sheet = sheet.replace(b"<pageMargins", b'<dataValidations count="1000">' + rules + b"</dataValidations><pageMargins")
        sheet = sheet.replace(b"dataValidations_old", b"ignoredValidations")
        out.append(write(f"rules{k:02d}.xlsx", {form: sheet}))
        strings = b"".join(b"<si><t>%s</t></si>" % hashlib.sha512(b"%d-%d" % (k, j)).hexdigest().encode() * 4
                           for j in range(4000))       # 2 MB that does not compress 200-fold
        sst = members["xl/sharedStrings.xml"]
        count = sst.count(b"<si>") + 4000
        sst = sst.replace(b"</sst>", strings + b"</sst>")
        sst = sst.replace(b'uniqueCount="', b'uniqueCount="%d" old="' % count, 1)
        out.append(write(f"strings{k:02d}.xlsx", {"xl/sharedStrings.xml": sst}))
        xfs = b"".join(b'<xf numFmtId="%d" fontId="0" fillId="0" borderId="0" xfId="0" applyProtection="1">'
                       b'<protection locked="0"/></xf>' % (k + j % 50) for j in range(7000))
        styles = members["xl/styles.xml"].replace(b"</cellXfs>", xfs + b"</cellXfs>")
        out.append(write(f"styles{k:02d}.xlsx", {"xl/styles.xml": styles}))
    return out


def test_crafted_files_keep_the_memos_and_the_process_within_their_bounds(small_ctx, tmp_path):
    paths = crafted(small_ctx, tmp_path)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, paths)], capture_output=True, text=True, cwd=root,
                          timeout=600, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    for name, (held, bound) in report["memos"].items():
        assert held <= bound, name
    assert report["bound"] <= 40 << 20
    assert report["growth_mb"] < RSS_GROWTH_MB, report
    assert "F104" not in report["codes"] and "F107" not in report["codes"], report["codes"]


def test_every_memo_is_bounded_and_its_bound_stated():
    import xlsx_assess.container  # noqa: F401  (the memos are made at import)
    import xlsx_assess.ooxml  # noqa: F401

    names = {m.name for m in Memo.everyone}
    assert {"inflated members", "well-formed parts", "workbook listings", "unlocked styles", "scanned sheets",
            "unlocked-cell patterns", "validation rules", "workbook folders"} <= names
    assert total_bound() == sum(m.max_bytes for m in Memo.everyone) <= 40 << 20


def test_a_memo_keeps_to_its_bytes_and_forgets_the_least_recently_used():
    memo = Memo("test", 10_000)
    Memo.everyone.remove(memo)
    for k in range(100):
        memo.put(k, str(k), 1000)
        assert memo.held <= memo.max_bytes
    assert memo.get(99) == "99" and memo.get(0) is None
    memo.put("big", "x", 5000)                      # over a quarter of the bound: not kept
    assert memo.get("big") is None
    once = Memo("test", 10_000, second_sight=True)
    Memo.everyone.remove(once)
    once.put("a", 1, 10)
    assert once.get("a") is None                    # a key seen once is not kept: most are one file's own
    once.put("a", 1, 10)
    assert once.get("a") == 1
