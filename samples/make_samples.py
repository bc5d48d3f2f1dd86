"""Make the sample returns: the 9 Taiqian townships' workbooks filled with plausible scores, and their ranking.

    python samples/make_samples.py            # writes samples/returned/*.xlsx and samples/排名.xlsx
    python samples/make_samples.py --picture  # also renders the blank form to docs/form.png and the ranking's
                                              # pages to docs/ranking-*.png (needs LibreOffice)

Made with the current generator, so a test can keep them in step with the rubric (they must pass
`xlsx-assess check`). Deterministic: the same rubric and settings give the same files.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from xlsx_assess.layout import entry_cells, form_layout  # noqa: E402
from xlsx_assess.ranking import rank_townships, write_ranking  # noqa: E402
from xlsx_assess.scoring import score  # noqa: E402
from xlsx_assess.workflow import check_files, load_context  # noqa: E402
from xlsx_assess.writer import build_workbook  # noqa: E402

RANKED_AT = dt.datetime(2027, 1, 20, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
# How the files came back: chat apps and e-mail rename them.
NAMES = {
    "410927100": "2026_410927100_城关镇.xlsx",
    "410927101": "侯庙镇政务公开考核自评表.xlsx",
    "410927102": "2026_410927102_孙口镇(1).xlsx",
    "410927103": "打渔陈镇-自评.xlsx",
    "410927104": "2026_410927104_马楼镇 - 副本.xlsx",
    "410927105": "吴坝镇.xlsx",
    "410927200": "后方乡考核表（最终版）.xlsx",
    "410927201": "2026_410927201_清水河乡.xlsx",
    "410927205": "夹河乡2026自评.xlsx",
}
REPORTERS = ["王丽", "李强", "张敏", "刘洋", "陈静", "杨帆", "赵磊", "黄娟", "周涛"]
# Special items: (township code, item id, points, note); S0x ids are the bundled rubric's.
SPECIAL = [
    ("410927100", "S01", 2.0, "市级媒体报道2篇"), ("410927100", "S03", 1.0, "县政务公开办通报表扬1次"),
    ("410927102", "S02", 1.0, "县领导批示表扬1次"),
    ("410927104", "S04", 1.0, "县级媒体负面报道1篇"), ("410927104", "S07", 1.5, "逾期报送材料3次"),
    ("410927200", "S07", 0.5, "未按时参加培训1次"),
    ("410927201", "S01", 3.0, "省级媒体报道1篇"), ("410927201", "S02", 3.0, "市领导批示表扬"),
]


def plausible_values(ctx, code: str, rng: random.Random) -> tuple[dict, dict, dict]:
    """Most lines at full marks, a few losing half or a quarter of their points, with a reason."""
    values, notes, evidence = {}, {}, {}
    for item in ctx.rubric.items:
        if item.kind == "zero":
            continue
        if item.kind != "base":
            values[item.id] = None
            continue
        values[item.id] = item.points
        evidence[item.id] = f"{item.id}-佐证材料.pdf"
        if rng.random() < 0.22:
            loss = min(item.points, rng.choice([0.25, 0.5, 0.5, 1.0]))
            values[item.id] = item.points - loss
            notes[item.id] = f"扣{loss:g}分：" + (item.guide.split("；")[0] if item.guide else "未完全达到要求")
    for town, item_id, pts, note in SPECIAL:
        if town == code:
            values[item_id] = pts
            notes[item_id] = note
    return values, notes, evidence


def make(out: Path) -> list[Path]:
    ctx = load_context()
    rng = random.Random(2026)
    returned = out / "returned"
    if returned.exists():
        shutil.rmtree(returned)
    filled = {t.code: plausible_values(ctx, t.code, rng) for t in ctx.townships}
    _make_tie(ctx, filled, "410927103", "410927205")
    paths = []
    for k, t in enumerate(ctx.townships):
        values, notes, evidence = filled[t.code]
        lay = form_layout(ctx.rubric, t, ctx.settings)
        entries = entry_cells(lay, values, False, notes, evidence, REPORTERS[k], f"0393-72{k:02d}{k * 7 % 100:03d}")
        entries[lay.date_cell] = dt.date(2027, 1, 8 + k)
        paths.append(build_workbook(ctx.rubric, t, ctx.settings, returned / NAMES.get(t.code, f"{t.name}.xlsx"),
                                    entries=entries))
    with contextlib.chdir(ROOT):        # the ranking names files as the office would type them
        coll = check_files([os.path.relpath(returned, ROOT)], ctx, workers=1)
    bad = [i.render() for r in coll.results for i in r.report if i.severity != "info"]
    if bad or coll.missing:
        raise SystemExit("samples do not pass the checks:\n" + "\n".join(bad))
    write_ranking(rank_townships(coll, ctx, RANKED_AT), out / "排名.xlsx")
    return paths


def _make_tie(ctx, filled: dict, a: str, b: str) -> None:
    """Give township b exactly township a's final score, by moving points on b's first partial lines."""
    s = ctx.settings

    def final(code):
        values = filled[code][0]
        return score(ctx.rubric, values, False, s).final

    gap = round(final(a) - final(b), 2)
    values, notes, _ = filled[b]
    for item in ctx.rubric.base:
        if gap == 0:
            break
        v = values[item.id]
        new = min(item.points, max(0.0, v + gap))
        if new != v:
            gap = round(gap - (new - v), 2)
            values[item.id] = new
            if new == item.points:
                notes.pop(item.id, None)
            else:
                notes[item.id] = f"扣{item.points - new:g}分：" + (item.guide.split("；")[0] or "未完全达到要求")
    assert final(a) == final(b), "could not make a tie"


def render_picture(out: Path) -> Path:
    """Render the blank form's first form page to docs/form.png, and its last page (totals, 填报进度 and
    the signatures) to docs/form-last.png, with LibreOffice and pdftoppm."""
    ctx = load_context()
    t = ctx.townships[0]
    with tempfile.TemporaryDirectory() as tmp:
        src = build_workbook(ctx.rubric, t, ctx.settings, Path(tmp) / "form.xlsx")
        profile = Path(tmp) / "profile"
        subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                        "--outdir", tmp, str(src)], check=True, capture_output=True, timeout=180)
        pdf = Path(tmp) / "form.pdf"
        subprocess.run(["pdftoppm", "-png", "-r", "100", "-f", "2", "-l", "2", str(pdf), str(Path(tmp) / "first")],
                       check=True, timeout=60)
        pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                                                                   check=True).stdout).group(1))
        subprocess.run(["pdftoppm", "-png", "-r", "100", "-singlefile", "-f", str(pages), "-l", str(pages), str(pdf),
                        str(Path(tmp) / "last")], check=True, timeout=60)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(next(Path(tmp).glob("first*.png")), out)
        shutil.copyfile(Path(tmp) / "last.png", out.with_name("form-last.png"))
    return out


# The ranking's pages shown in the README: (picture, a sheet's title ends with this).
RANKING_PICTURES = (("ranking-1.png", "考核排名"), ("ranking-2.png", "考核得分明细"), ("ranking-3.png", "收到文件处理结果"))


def render_ranking_pictures(ranking: Path, out: Path) -> list[Path]:
    """Render the first page of some of the ranking's sheets to docs/ranking-*.png (LibreOffice, pdftoppm)."""
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / "profile"
        subprocess.run(["soffice", f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
                        "--outdir", tmp, str(ranking)], check=True, capture_output=True, timeout=180)
        pdf = Path(tmp) / (ranking.stem + ".pdf")
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                              text=True, timeout=60).stdout
        pages = ["".join(page.split()) for page in text.split("\f")]
        for name, title in RANKING_PICTURES:
            number = next(k for k, page in enumerate(pages, start=1) if title in page)
            stem = Path(tmp) / name.removesuffix(".png")
            subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", str(number), "-l", str(number), "-singlefile",
                            str(pdf), str(stem)], check=True, timeout=60)
            out.mkdir(parents=True, exist_ok=True)
            made.append(Path(shutil.copyfile(stem.with_suffix(".png"), out / name)))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--picture", action="store_true",
                        help="also render docs/form.png and docs/ranking-*.png (needs LibreOffice)")
    args = parser.parse_args()
    for p in make(args.out):
        print(p.relative_to(args.out))
    if args.picture:
        print(render_picture(ROOT / "docs" / "form.png"))
        for picture in render_ranking_pictures(args.out / "排名.xlsx", ROOT / "docs"):
            print(picture)


if __name__ == "__main__":
    main()
