"""Benchmark xlsx-assess against the floors it is measured by, in one run.

    python bench/run.py --n 1000                 # full run, results in bench/results/bench-1000.json
    python bench/run.py --n 20 --quick           # CI smoke test (well under 30 s)
    python bench/run.py --n 200 --profile        # also print cProfile tops for check and build
    python bench/run.py --cli                    # only the user's commands, over 1,000 returns

Needs only `pip install .` (no pytest): what it fills comes from tests/fills.py, plain Python.

Stages (each in a fresh subprocess, so its peak RSS is its own):
  gen       xlsx-assess `generate_workbooks` of N blank workbooks (synthetic roster of N townships)
  bare      the floor for gen: the same cells, merges, formulas (with cached values), validations,
            a few formats and protection, written with bare XlsxWriter calls (`bare_workbook`)
  bare_naive  the same without XlsxWriter's in_memory and with one validation per cell (informational)
  fill      N filled workbooks with random valid scores (`build_workbook(entries=...)`), the input of
            the reading stages
  rank1     `rank_files(returned, out, ctx, workers=1)`: gather, check, rank, write the ranking
  rank2     the same with workers=2 (skipped with --quick)
  rank1core the same as rank1 on one core (the process and its helper pinned to one CPU): the
            baseline of the 2-core speed-up, since one worker already keeps its helper busy on the
            second core (skipped with --quick, and where CPU affinity cannot be set)
  calamine  the floor for rank: `CalamineWorkbook.from_path(p)` + `评分表` `.to_python()` per file
  pandas    `pandas.read_excel(p, sheet_name='评分表', engine='openpyxl')` on at most 200 files,
            extrapolated per file (skipped with --quick, and with a note where openpyxl is absent)
plus the start-up of `xlsx-assess --help`, `xlsx-assess check <one file>` and the end-to-end
`xlsx-assess rank samples/returned --out ...` (best of 5 each), and last the user's commands:
  user      `xlsx-assess rank DIR --out F.xlsx` and `xlsx-assess check DIR` in fresh processes over the
            fill's N returns, saved in turn by our writer, openpyxl and LibreOffice (bench/saved.py),
            against `python -c` reading every sheet of them with python-calamine; process start
            included, runs interleaved (--repeat, default 3)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from fills import filled_entries, random_values, write_filled, write_roster  # noqa: E402  (no pytest needed)

import saved  # noqa: E402  (bench/saved.py: returns saved by three writers)

SEED = 20261128
PANDAS_SAMPLE = 200
STAGES = ("gen", "bare", "bare_naive", "fill", "rank1", "rank1few", "rank2", "rank1core", "calamine", "pandas")
FEW = 10                    # rank1few: the same run on this many files, the baseline of memory per file
COUNTRY = 38_000            # township-level units in China: where memory per file is projected to

TARGETS = {
    "gen_vs_floor": ("generation per file ≤ 1.5× bare xlsxwriter", 1.5),
    "rank_vs_calamine": ("check+rank per file ≤ 3× calamine read", 3.0),
    "user_rank_vs_floor": ("`xlsx-assess rank DIR` ≤ 3× a calamine read, process start incl.", 3.0),
    "user_check_vs_floor": ("`xlsx-assess check DIR` ≤ 2× a calamine read, process start incl.", 2.0),
    "speedup_2w": ("2 cores vs 1 core: speed-up ≥ 1.6×", 1.6),
    "peak_rss_mb": ("peak RSS < 300 MB", 300.0),
    "rss_country_mb": ("peak RSS flat in N: the whole country (38,000) < 300 MB", 300.0),
    "help_s": ("`xlsx-assess --help` < 0.2 s", 0.2),
    "rank_e2e_s": ("`xlsx-assess rank samples/returned` end to end < 1.5 s", 1.5),
}


# -- the synthetic county -------------------------------------------------------------------------

def synthetic_townships(n: int):
    """N townships with codes 41xxxxNNN (unique, 9 digits) and names 测试乡0001…"""
    from xlsx_assess.settings import Township

    return [Township(f"41{k // 1000 + 1:04d}{k % 1000:03d}", f"测试乡{k + 1:04d}", "乡") for k in range(n)]


def make_context(n: int):
    from xlsx_assess.checks import Context
    from xlsx_assess.workflow import load_context

    base = load_context()
    return Context(base.rubric, base.settings, synthetic_townships(n))


def fill_values(ctx, k: int) -> dict:
    """The k-th township's valid random scores (no blanks), the same in every run."""
    return random_values(ctx.rubric, random.Random(SEED + k))


def fill_notes(ctx) -> dict:
    """A 扣分说明 on every scored line (a township explains its deductions: no V417)."""
    return {i.id: "扣分说明" for i in ctx.rubric.items if i.kind != "zero"}


def fill_entries(ctx, township, k: int) -> dict:
    """What `write_filled` passes to `build_workbook(entries=...)` for the k-th township: its scores, the
    zero-out line answered 否, a 扣分说明 on every line."""
    return filled_entries(ctx, township, fill_values(ctx, k), False, fill_notes(ctx))


# -- the floor for generation: bare XlsxWriter ----------------------------------------------------

BARE_FORMATS = {
    "plain": {"font_name": "宋体", "font_size": 10.5, "border": 1, "valign": "vcenter", "text_wrap": True},
    "bold": {"font_name": "宋体", "font_size": 10.5, "border": 1, "bold": True, "align": "center",
             "bg_color": "#F2F2F2"},
    "input": {"font_name": "宋体", "font_size": 10.5, "border": 1, "bg_color": "#FFF7CC", "locked": False},
    "number": {"font_name": "宋体", "font_size": 10.5, "border": 1, "bold": True, "num_format": "0.00"},
    "date": {"font_name": "宋体", "font_size": 10.5, "border": 1, "bg_color": "#FFF7CC", "locked": False,
             "num_format": "yyyy-mm-dd"},
    "meta": {},
}


def _bare_style(style: str) -> str:
    if style == "meta":
        return "meta"
    if style == "input_date":
        return "date"
    if style.startswith("input"):
        return "input"
    if style in ("subtotal_num", "total_value", "final_value"):
        return "number"
    if style in ("title", "label", "head", "subtotal_label", "total_label", "completion"):
        return "bold"
    return "plain"


def bare_workbook(lay, path, naive: bool = False) -> None:
    """The same cells, merges, formulas (cached values), validations and protection, with minimal calls.

    The floor uses XlsxWriter the cheap way: `in_memory` (no temp files) and one validation rule per
    distinct rule over all its cells (`multi_range`), as xlsx-assess itself does since d0014c1.
    `naive=True` is what a first script would do: default options, one rule per cell.
    What it leaves out on purpose (xlsx-assess's own logic): the style table, row heights from text
    length, print setup, conditional formats, document properties other than the identity, atomic
    writes. Column widths, custom properties and the very hidden sheet stay: they cost almost nothing.
    """
    import xlsxwriter

    from xlsx_assess.scoring import score_rule_formula    # the score cells' rule, as the form has it

    wb = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False,
                                         "strings_to_numbers": False, "in_memory": not naive})
    wb.set_properties({"created": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)})
    for key, value in lay.identity.items():
        wb.set_custom_property(key, value)
    fmts = {k: wb.add_format(v) for k, v in BARE_FORMATS.items()}
    sheets = {name: wb.add_worksheet(name) for name in ("填报说明", "评分表", "_identity")}
    from xlsx_assess.layout import computed_cells     # what a blank form's formulas show, as xlsx-assess writes
    from xlsx_assess.scoring import score

    shown = computed_cells(lay, score(lay.rubric, {}, None, lay.settings))
    rules: dict[tuple, list] = {}
    for c in lay.cells:
        ws, fmt, r, col = sheets[c.sheet], fmts[_bare_style(c.style)], c.row, c.col
        if c.merge_to:
            ws.merge_range(r, col, c.merge_to[0], c.merge_to[1], "", fmt)
        if c.formula is not None:
            ws.write_formula(r, col, "=" + c.formula, fmt, shown.get(c.ref, 0))
        elif isinstance(c.value, str):
            ws.write_string(r, col, c.value, fmt)
        elif isinstance(c.value, (int, float)):
            ws.write_number(r, col, c.value, fmt)
        elif not c.merge_to:
            ws.write_blank(r, col, None, fmt)
        if c.validation is not None:
            rules.setdefault((c.sheet, c.validation), []).append(c)
    for (sheet, v), cells in rules.items():
        opts = {"input_title": v.title[:32], "input_message": v.prompt[:255], "error_message": v.error[:255]}
        if v.kind == "list":
            opts.update(validate="list", source=list(v.choices))
        elif v.kind == "date":
            opts.update(validate="date", criteria="between", minimum=dt.date(2000, 1, 1),
                        maximum=dt.date(2100, 12, 31))
        elif v.kind == "score":
            opts.update(validate="custom", value="=" + score_rule_formula(cells[0].ref, v.maximum, v.decimals))
        else:
            opts.update(validate="length", criteria="between", minimum=int(v.minimum), maximum=int(v.maximum))
        if naive:
            for c in cells:
                sheets[sheet].data_validation(c.row, c.col, c.row, c.col, dict(opts))
        else:
            if len(cells) > 1:
                opts["multi_range"] = " ".join(c.ref for c in cells)
            sheets[sheet].data_validation(cells[0].row, cells[0].col, cells[0].row, cells[0].col, opts)
    form = sheets["评分表"]
    for col, width in enumerate((7, 10, 14, 40, 34, 9, 9, 24, 20)):
        form.set_column(col, col, width)
    sheets["_identity"].very_hidden()
    for ws in sheets.values():
        ws.protect("", {"select_locked_cells": True, "select_unlocked_cells": True})
    form.activate()
    wb.close()


# -- measuring ------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_rss_mb() -> float:
    """Peak resident set of the largest reaped child (pool workers), in MB; 0 if none."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def summarize(per_file: list[float]) -> dict:
    if not per_file:
        return {}
    ms = sorted(x * 1000 for x in per_file)
    return {"median_ms": round(statistics.median(ms), 3), "p10_ms": round(ms[len(ms) // 10], 3),
            "p90_ms": round(ms[min(len(ms) - 1, (len(ms) * 9) // 10)], 3), "max_ms": round(ms[-1], 3),
            "timed_files": len(ms)}


def files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".xlsx")


class Ticks:
    """A progress callback that records when each file finished."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def __call__(self, done: int, total: int) -> None:
        self.times.append(time.perf_counter())

    def per_file(self) -> list[float]:
        edges = [self.t0] + self.times
        return [b - a for a, b in zip(edges, edges[1:])]


# -- stages (run in a child process) --------------------------------------------------------------

def stage_gen(n: int, work: Path) -> dict:
    from xlsx_assess.workflow import generate_workbooks

    ctx = make_context(n)
    out = work / "blank"
    ticks = Ticks()
    t0 = ticks.t0
    done = generate_workbooks(out, ctx, progress=ticks)
    wall = time.perf_counter() - t0
    return {"files": len(done), "wall_s": wall, **summarize(ticks.per_file()),
            "mean_bytes": sum(g.path.stat().st_size for g in done) / max(len(done), 1)}


def stage_bare(n: int, work: Path, naive: bool = False) -> dict:
    from xlsx_assess.layout import form_layout

    ctx = make_context(n)
    out = work / ("bare_naive" if naive else "bare")
    out.mkdir(parents=True, exist_ok=True)
    per_file, prep = [], 0.0
    wall0 = time.perf_counter()
    for k, t in enumerate(ctx.townships):
        p0 = time.perf_counter()
        lay = form_layout(ctx.rubric, t, ctx.settings)      # the layout is input to the floor, not timed
        t0 = time.perf_counter()
        bare_workbook(lay, out / f"{t.code}.xlsx", naive)
        per_file.append(time.perf_counter() - t0)
        prep += t0 - p0
    wall = time.perf_counter() - wall0
    files = files_in(out)
    same = None if naive else _same_form_values(work / "blank", out, ctx)
    return {"files": len(files), "wall_s": sum(per_file), "wall_incl_layout_s": wall, "layout_s": prep,
            **summarize(per_file), "mean_bytes": sum(p.stat().st_size for p in files) / max(len(files), 1),
            "same_form_values_as_gen": same}


def _same_form_values(blank: Path, bare: Path, ctx) -> bool | None:
    """Sanity: the floor writes what xlsx-assess writes (the form sheet's values, first township)."""
    import python_calamine as pc
    from xlsx_assess.writer import file_name

    t = ctx.townships[0]
    a, b = blank / file_name(t, ctx.settings.year), bare / f"{t.code}.xlsx"
    if not a.exists():
        return None
    va = pc.CalamineWorkbook.from_path(str(a)).get_sheet_by_name("评分表").to_python(skip_empty_area=False)
    vb = pc.CalamineWorkbook.from_path(str(b)).get_sheet_by_name("评分表").to_python(skip_empty_area=False)
    return va == vb


def stage_bare_naive(n: int, work: Path) -> dict:
    return stage_bare(n, work, naive=True)


def stage_fill(n: int, work: Path) -> dict:
    from xlsx_assess.writer import build_workbook, file_name

    ctx = make_context(n)
    out = work / "returned"
    per_file = []
    wall0 = time.perf_counter()
    for k, t in enumerate(ctx.townships):
        entries = fill_entries(ctx, t, k)
        t0 = time.perf_counter()
        build_workbook(ctx.rubric, t, ctx.settings, out / file_name(t, ctx.settings.year), entries=entries)
        per_file.append(time.perf_counter() - t0)
    wall = time.perf_counter() - wall0
    return {"files": len(per_file), "wall_s": sum(per_file), "wall_incl_entries_s": wall, **summarize(per_file)}


def _stage_rank(n: int, work: Path, workers: int, few: bool = False) -> dict:
    from xlsx_assess.collect import POOL_THRESHOLD
    from xlsx_assess.workflow import rank_files

    ctx = make_context(FEW if few else n)   # few: a roster of those files alone, so that the growth per
    inputs = files_in(work / "returned")[:FEW] if few else [work / "returned"]   # file counts the roster too
    ticks = Ticks()
    t0 = ticks.t0
    coll, ranking = rank_files(inputs, work / f"rank-{workers}w.xlsx", ctx, progress=ticks, workers=workers)
    wall = time.perf_counter() - t0
    checked = (ticks.times[-1] - t0) if ticks.times else wall
    out = {"files": len(coll.results), "wall_s": wall, "check_s": checked, "rank_and_write_s": wall - checked,
           "summary": coll.summary(), "ranked": int(len(ranking.ranking)),
           "pool_used": workers > 1 and len(coll.results) >= POOL_THRESHOLD, "pool_threshold": POOL_THRESHOLD,
           "workers_peak_rss_mb": round(children_rss_mb(), 1)}
    del ranking                             # the timing below makes a second one: not both at once
    if workers == 1:
        out.update(summarize(ticks.per_file()))
        from xlsx_assess.ranking import rank_townships, write_ranking

        t1 = time.perf_counter()            # the two halves of "rank & write" again, timed apart
        again = rank_townships(coll, ctx)
        t2 = time.perf_counter()
        write_ranking(again, work / "rank-again.xlsx")
        out["rank_townships_s"], out["write_ranking_s"] = t2 - t1, time.perf_counter() - t2
    codes: dict[str, int] = {}
    for r in coll.results:
        for i in r.report:
            codes[i.code] = codes.get(i.code, 0) + 1
    out["issue_codes"] = codes
    return out


def stage_rank1(n: int, work: Path) -> dict:
    return _stage_rank(n, work, 1)


def stage_rank1few(n: int, work: Path) -> dict:
    """rank1 on the first FEW files (and a roster of FEW): what memory a batch costs before its files."""
    return _stage_rank(n, work, 1, few=True)


def stage_rank2(n: int, work: Path) -> dict:
    return _stage_rank(n, work, 2)


def stage_rank1core(n: int, work: Path) -> dict:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})              # the helper, forked from here, inherits it
    return {**_stage_rank(n, work, 1), "pinned_to_cpu": cpu}


def stage_calamine(n: int, work: Path) -> dict:
    import python_calamine as pc

    paths = files_in(work / "returned")
    per_file = []
    for p in paths:
        t0 = time.perf_counter()
        pc.CalamineWorkbook.from_path(str(p)).get_sheet_by_name("评分表").to_python()
        per_file.append(time.perf_counter() - t0)
    return {"files": len(paths), "wall_s": sum(per_file), **summarize(per_file)}


def stage_pandas(n: int, work: Path) -> dict:
    import pandas as pd

    paths = files_in(work / "returned")
    step = max(1, len(paths) // PANDAS_SAMPLE)
    sample = paths[::step][:PANDAS_SAMPLE]
    per_file = []
    for p in sample:
        t0 = time.perf_counter()
        pd.read_excel(p, sheet_name="评分表", engine="openpyxl")
        per_file.append(time.perf_counter() - t0)
    mean = sum(per_file) / max(len(per_file), 1)
    return {"files": len(paths), "sampled": len(sample), "wall_s": mean * len(paths),
            "extrapolated": len(sample) < len(paths), **summarize(per_file)}


def run_stage(name: str, n: int, work: Path, result: Path) -> None:
    import warnings

    warnings.simplefilter("ignore")
    out = globals()[f"stage_{name}"](n, work)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result.write_text(json.dumps(out, ensure_ascii=False))


# -- the driver -----------------------------------------------------------------------------------

def spawn_stage(name: str, n: int, work: Path) -> dict:
    result = work / f"stage-{name}.json"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--stage", name, "--n", str(n),
                           "--workdir", str(work), "--stage-result", str(result)],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stage {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(result.read_text())
    out["process_wall_s"] = elapsed
    n_files = out.get("files") or n
    out["per_file_ms"] = out["wall_s"] / max(n_files, 1) * 1000
    return out


def cli_path() -> tuple[str, str | None]:
    """The real console script next to this interpreter, and another one on PATH (e.g. a pyenv shim)."""
    real = Path(sys.executable).parent / "xlsx-assess"
    real_s = str(real) if real.exists() else (shutil.which("xlsx-assess") or "xlsx-assess")
    for d in os.environ.get("PATH", "").split(os.pathsep):
        cand = Path(d) / "xlsx-assess"
        if cand.is_file() and os.access(cand, os.X_OK) and cand.resolve() != Path(real_s).resolve():
            return real_s, str(cand)
    return real_s, None


def best_of(cmd: list[str], times: int = 5, cwd: Path | None = None) -> dict:
    runs, code = [], None
    for _ in range(times):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, cwd=cwd)
        runs.append(time.perf_counter() - t0)
        code = p.returncode
    return {"best_s": min(runs), "median_s": statistics.median(runs), "runs": len(runs), "exit_code": code,
            "cmd": " ".join(cmd)}


def bundled_samples(work: Path) -> tuple[Path, str]:
    """samples/returned if the project has it, else 9 filled files for the bundled roster."""
    real = ROOT / "samples" / "returned"
    if real.is_dir() and any(real.iterdir()):
        return real, "samples/returned"
    from xlsx_assess.workflow import load_context

    ctx = load_context()
    folder = work / "samples-returned"
    for k, t in enumerate(ctx.townships[:9]):
        write_filled(ctx, t, folder, fill_values(ctx, k), False, fill_notes(ctx))
    return folder, f"samples/returned does not exist: timed on {len(ctx.townships[:9])} filled files for the " \
                   f"bundled roster generated into a temp dir"


def startup(work: Path) -> dict:
    real, on_path = cli_path()
    folder, source = bundled_samples(work)
    one = files_in(folder)[0]
    out = {
        "cli": real,
        "help": best_of([real, "--help"]),
        "check_one": best_of([real, "check", str(one)]),
        "rank_samples": best_of([real, "rank", str(folder), "--out", str(work / "samples-rank.xlsx")]),
        "rank_samples_source": source,
        "rank_samples_files": len(files_in(folder)),
        "python_bare": best_of([sys.executable, "-c", "pass"]),
        "import_pandas": best_of([sys.executable, "-c", "import pandas"]),
    }
    if on_path:
        out["help_via_path"] = best_of([on_path, "--help"])
        out["help_via_path"]["note"] = "the xlsx-assess found on PATH (e.g. a pyenv shim, which adds its own start-up)"
    return out


# -- the user's commands: `xlsx-assess rank` and `check` over returns saved by three writers ---------

FLOOR = ("import os, sys, python_calamine as pc\n"
         "d = sys.argv[1]\n"
         "for f in sorted(os.listdir(d)):\n"
         "    wb = pc.CalamineWorkbook.from_path(os.path.join(d, f))\n"
         "    for s in wb.sheet_names:\n"
         "        wb.get_sheet_by_name(s).to_python()\n")


def user_cli() -> list[str]:
    """`xlsx-assess` as pip installs it next to this interpreter, else `python -m xlsx_assess` (the same
    start-up, without a shim of a version manager in front of it)."""
    script = Path(sys.executable).parent / "xlsx-assess"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xlsx_assess"]


def user_set(n: int, work: Path) -> tuple[Path, Path, dict]:
    """N returns for a roster of N townships, saved in turn by each writer usable here: the folder,
    the roster, and how many each writer saved (with a note for a writer left out)."""
    folder, roster = work / "user-returns", work / "user-roster.csv"
    writers, notes = saved.available_writers()
    made = saved.build(files_in(work / "returned"), folder, writers)
    write_roster(synthetic_townships(n), roster)
    return folder, roster, {"made": made, "notes": notes}


def timed_runs(commands: dict[str, list[str]], repeat: int) -> dict[str, dict]:
    """Each command `repeat` times, interleaved (so a busy spell of the machine hits all alike)."""
    runs: dict[str, list[float]] = {k: [] for k in commands}
    codes: dict[str, int] = {}
    for _ in range(repeat):
        for key, cmd in commands.items():
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True)
            runs[key].append(time.perf_counter() - t0)
            codes[key] = proc.returncode
            if proc.returncode not in (0, 1):
                raise SystemExit(f"{key} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()[-3000:]}")
    return {k: {"best_s": min(v), "median_s": statistics.median(v), "runs": v, "exit_code": codes[k],
                "cmd": " ".join(commands[k])} for k, v in runs.items()}


def stage_user(n: int, work: Path, repeat: int) -> dict:
    """`xlsx-assess rank DIR --out F.xlsx` and `xlsx-assess check DIR` as a user runs them (a fresh process,
    the default workers), against a bare python-calamine read of every sheet of the same files in a
    fresh process; process start included in all three."""
    folder, roster, made = user_set(n, work)
    cli = user_cli()
    commands = {"floor": [sys.executable, "-c", FLOOR, str(folder)],
                "check": cli + ["check", str(folder), "--townships", str(roster)],
                "rank": cli + ["rank", str(folder), "--out", str(work / "user-rank.xlsx"), "--townships", str(roster)]}
    warm = subprocess.run(cli + ["check", str(folder), "--townships", str(roster), "--json"], capture_output=True)
    verdicts = json.loads(warm.stdout)          # untimed: warms the page cache and says what was found
    out = {"files": len(files_in(folder)), "writers": made["made"], "notes": made["notes"], "cli": " ".join(cli),
           "summary": verdicts["summary"], "issue_codes": _codes_of(verdicts), **timed_runs(commands, repeat)}
    for key in ("check", "rank"):
        out[f"{key}_vs_floor"] = out[key]["best_s"] / out["floor"]["best_s"]
        out[f"{key}_vs_floor_median"] = out[key]["median_s"] / out["floor"]["median_s"]
    return out


def _codes_of(verdicts: dict) -> dict[str, int]:
    codes: dict[str, int] = {}
    for f in verdicts["files"]:
        for i in f["issues"]:
            codes[i["code"]] = codes.get(i["code"], 0) + 1
    return codes


def environment() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    return {"loadavg_start": os.getloadavg(), "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "versions": {p: installed(p) for p in ("xlsx-assess", "xlsxwriter", "python-calamine", "openpyxl", "pandas",
                                                   "typer", "pydantic", "rich")},
            "git_commit": git("rev-parse", "--short", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--",
                                                                                      "xlsx_assess"))}


def _gen_vs_floor(st, su, us):
    return st["gen"]["per_file_ms"] / st["bare"]["per_file_ms"], "ratio of per-file wall"


def _rank_vs_calamine(st, su, us):
    r1, cal = st["rank1"], st["calamine"]
    return r1["per_file_ms"] / cal["per_file_ms"], (f"rank_files(workers=1) wall/N over calamine wall/N; check alone, "
                                                    f"median per file: {r1['median_ms'] / cal['median_ms']:.1f}×")


def _user_vs_floor(key: str):
    def value(st, su, us):
        return us[f"{key}_vs_floor"], (f"best of {len(us[key]['runs'])}: {us[key]['best_s']:.2f} s vs "
                                       f"{us['floor']['best_s']:.2f} s over {us['files']} returns "
                                       f"({', '.join(f'{w} {c}' for w, c in us['writers'].items())}); "
                                       f"medians {us[f'{key}_vs_floor_median']:.2f}×")
    return value


def _speedup_2w(st, su, us):
    if "rank2" not in st or "rank1core" not in st:
        return None, "skipped (--quick, or CPU affinity cannot be set here)"
    if not st["rank2"]["pool_used"]:
        return None, f"not measured: the pool is not used below {st['rank2']['pool_threshold']} files (POOL_THRESHOLD)"
    return st["rank1core"]["wall_s"] / st["rank2"]["wall_s"], (
        f"rank1core wall / rank2 wall; check phase alone {st['rank1core']['check_s'] / st['rank2']['check_s']:.2f}×; "
        f"one worker (its helper on the other core) / rank2: {st['rank1']['wall_s'] / st['rank2']['wall_s']:.2f}×")


def _peak_rss_mb(st, su, us):
    worst = max(st, key=lambda k: st[k]["peak_rss_mb"])
    note = f"largest single process: stage {worst}"
    pool = st.get("rank2", {})
    if pool.get("pool_used"):
        note += (f"; with 2 workers the main process peaks at {pool['peak_rss_mb']:.0f} MB and the largest "
                 f"worker at {pool['workers_peak_rss_mb']:.0f} MB")
    return st[worst]["peak_rss_mb"], note


def _rss_country_mb(st, su, us):
    few, full = st["rank1few"], st["rank1"]
    if full["files"] <= few["files"]:
        return None, f"needs more than {FEW} files"
    per_file = (full["peak_rss_mb"] - few["peak_rss_mb"]) / (full["files"] - few["files"])
    return few["peak_rss_mb"] + per_file * COUNTRY, (
        f"grows {per_file * 1024:.1f} KB per file and township: {few['peak_rss_mb']:.0f} MB with {few['files']}, "
        f"{full['peak_rss_mb']:.0f} MB with {full['files']}, projected to {COUNTRY:,}")


MEASURES = {
    "gen_vs_floor": _gen_vs_floor,
    "rank_vs_calamine": _rank_vs_calamine,
    "user_rank_vs_floor": _user_vs_floor("rank"),
    "user_check_vs_floor": _user_vs_floor("check"),
    "speedup_2w": _speedup_2w,
    "peak_rss_mb": _peak_rss_mb,
    "rss_country_mb": _rss_country_mb,
    "help_s": lambda st, su, us: (su["help"]["best_s"], f"best of 5, {su['cli']}"),
    "rank_e2e_s": lambda st, su, us: (su["rank_samples"]["best_s"], su["rank_samples_source"]),
}
STRICTLY_BELOW = ("peak_rss_mb", "rss_country_mb", "help_s", "rank_e2e_s")


def evaluate(res: dict) -> list[dict]:
    """Each target with its value and whether it is met (None where its stages did not run)."""
    out = []
    for key, (what, limit) in TARGETS.items():
        try:
            v, note = MEASURES[key](res["stages"], res.get("startup", {}), res.get("user", {}))
        except (KeyError, ValueError):
            v, note = None, "not run"
        met = None if v is None else (v >= limit if key == "speedup_2w" else v < limit if key in STRICTLY_BELOW
                                      else v <= limit)
        out.append({"target": key, "what": what, "limit": limit, "value": None if v is None else round(v, 3),
                    "met": met, "note": note})
    return out


def render(res: dict) -> str:
    st = res["stages"]
    lines = [f"xlsx-assess bench  N={res['n']}  python {res['env']['python']}  {res['env']['cpus']} CPUs  "
             f"commit {res['env']['git_commit']}{' (dirty)' if res['env']['git_dirty'] else ''}  "
             f"load avg {res['env']['loadavg_start'][0]:.2f} → {res['env']['loadavg_end'][0]:.2f}"]
    if max(res["env"]["loadavg_start"][0], res["env"]["loadavg_end"][0]) > 0.7:
        lines.append("WARNING: the machine was busy with other work; timings (and the 2-worker speed-up) are noisy")
    lines += [f"note: {note}" for note in res.get("notes", [])]
    if "rank1" in st:
        lines += ["", *render_stages(st)]
    if "startup" in res:
        lines += ["", *render_startup(res["startup"])]
    if "user" in res:
        lines += ["", *render_user(res["user"])]
    lines += ["", "targets"]
    for t in res["targets"]:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t["met"]]
        val = "-" if t["value"] is None else f"{t['value']:.3f}"
        lines.append(f"  [{mark}] {t['what']:<64} {val:>9}  {t['note']}")
    lines.append(f"\ntotal bench wall {res['bench_wall_s']:.1f} s")
    return "\n".join(lines)


def render_stages(st: dict) -> list[str]:
    lines = []
    head = f"{'stage':<10}{'files':>7}{'wall s':>10}{'per file ms':>13}{'median ms':>11}{'p90 ms':>9}" \
           f"{'vs floor':>10}{'med vs floor':>14}{'peak RSS MB':>13}"
    lines += [head, "-" * len(head)]
    floors = {"rank1few": "", "gen": "bare", "bare_naive": "bare", "rank1": "calamine", "rank2": "calamine", "rank1core": "calamine",
              "pandas": "calamine", "fill": "bare"}
    for name in STAGES:
        if name not in st:
            continue
        s = st[name]
        floor = floors.get(name)
        ratio = f"{s['per_file_ms'] / st[floor]['per_file_ms']:.2f}×" if floor in st else "floor" if floor is None else "-"
        if name == "bare_naive":
            ratio = f"({ratio})"
        mratio = f"{s['median_ms'] / st[floor]['median_ms']:.2f}×" if floor in st and "median_ms" in s else "-"
        rss = f"{s['peak_rss_mb']:.0f}" + (f"+{s['workers_peak_rss_mb']:.0f}w" if s.get("workers_peak_rss_mb") else "")
        med = f"{s['median_ms']:.2f}" if "median_ms" in s else "-"
        p90 = f"{s['p90_ms']:.2f}" if "p90_ms" in s else "-"
        label = name + ("*" if s.get("extrapolated") else "")
        lines.append(f"{label:<10}{s['files']:>7}{s['wall_s']:>10.2f}{s['per_file_ms']:>13.2f}{med:>11}{p90:>9}"
                     f"{ratio:>10}{mratio:>14}{rss:>13}")
    r1 = st["rank1"]
    lines.append(f"  rank1: check {r1['check_s']:.2f} s + rank & write {r1['rank_and_write_s']:.2f} s\n         "
                 f"(the first call imports pandas; timed again: rank_townships {r1['rank_townships_s']:.2f} s, write_ranking {r1['write_ranking_s']:.2f} s);\n         "
                 f"summary {r1['summary']['ok']} ok / {r1['summary']['warning']} warning / {r1['summary']['error']} error")
    if "pandas" in st and st["pandas"].get("extrapolated"):
        lines.append(f"  * pandas: {st['pandas']['sampled']} files sampled, wall extrapolated to {st['pandas']['files']}")
    return lines


def render_startup(su: dict) -> list[str]:
    lines = ["start-up (best of 5)",
              f"  python -c pass                  {su['python_bare']['best_s']:.3f} s",
              f"  python -c 'import pandas'       {su['import_pandas']['best_s']:.3f} s",
              f"  xlsx-assess --help              {su['help']['best_s']:.3f} s"]
    if "help_via_path" in su:
        lines.append(f"  xlsx-assess --help (PATH shim)  {su['help_via_path']['best_s']:.3f} s")
    lines += [f"  xlsx-assess check <one file>    {su['check_one']['best_s']:.3f} s",
              f"  xlsx-assess rank <samples>      {su['rank_samples']['best_s']:.3f} s  "
              f"({su['rank_samples_files']} files; {su['rank_samples_source']})"]
    return lines


def render_user(us: dict) -> list[str]:
    s = us["summary"]
    lines = [f"the user's commands over {us['files']} returns ("
             + ", ".join(f"{c} saved by {w}" for w, c in us["writers"].items())
             + f"), {len(us['floor']['runs'])} runs each, process start included; {us['cli']}",
             f"  verdicts: {s['ok']} ok / {s['warning']} warning / {s['error']} error, {s['accepted']} accepted; "
             f"codes {us['issue_codes'] or '-'}"]
    for key, label in (("floor", "python -c: python-calamine, every sheet"), ("check", "xlsx-assess check DIR"),
                       ("rank", "xlsx-assess rank DIR --out F.xlsx")):
        ratio = "floor" if key == "floor" else f"{us[f'{key}_vs_floor']:.2f}×  (medians {us[f'{key}_vs_floor_median']:.2f}×)"
        lines.append(f"  {label:<42} best {us[key]['best_s']:6.2f} s  median {us[key]['median_s']:6.2f} s  {ratio}")
    return lines


PHASES = (("imports (all, nested in the rest too)", "_bootstrap", "_find_and_load"),
          ("load_context (rubric, roster, settings)", "workflow.py", "load_context"),
          ("check_paths (gather, check, collection rules)", "collect.py", "check_paths"),
          ("  of which waiting for the pool's results", "~", "<method 'acquire' of '_thread.lock' objects>"),
          ("  of which Results.append (heads, spill)", "collect.py", "append"),
          ("rank_townships (pandas frames)", "ranking.py", "rank_townships"),
          ("write_ranking (the workbook)", "ranking.py", "write_ranking"),
          ("printing the verdicts", "cli.py", "_render_collection"),
          ("printing the ranking", "cli.py", "_render_ranking"))


def profile_cli(n: int, work: Path) -> None:
    """Where the time of `xlsx-assess rank DIR --out F.xlsx` goes: its imports (-X importtime, by package)
    and its main process (cProfile; the pool's workers and their helpers are other processes, seen
    here as the wait for their results)."""
    import pstats

    args = ["rank", str(work / "user-returns"), "--out", str(work / "profile-rank.xlsx"),
            "--townships", str(work / "user-roster.csv")]
    imp = subprocess.run([sys.executable, "-X", "importtime", "-m", "xlsx_assess", *args], capture_output=True, text=True)
    by_package: dict[str, int] = {}
    for line in imp.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[0].startswith("import time:") and parts[1].strip().isdigit() \
                and not parts[2].startswith("   "):
            root = parts[2].strip().split(".")[0]
            by_package[root] = by_package.get(root, 0) + int(parts[1])
    print(f"\n== import time of `xlsx-assess rank` over {n} returns, by package (ms, cumulative) ==")
    for root, us in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {root:<24}{us / 1000:8.1f}")
    prof = work / "cli-rank.prof"
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "xlsx_assess", *args],
                   capture_output=True, check=True)
    stats = pstats.Stats(str(prof))
    print(f"\n== cProfile of the `xlsx-assess rank` process over {n} returns (s, cumulative; profiled, so slower) ==")
    print(f"  {'whole process':<48}{stats.total_tt:8.2f}")
    for label, where, name in PHASES:
        cum = sum(v[3] for (file, _, func), v in stats.stats.items() if func == name and where in file)
        print(f"  {label:<48}{cum:8.2f}")
    stats.sort_stats("cumulative").print_stats(r"xlsx_assess", 15)


def profile(n_files: int, work: Path) -> None:
    """cProfile of check_candidate and build_workbook over a few files: top 15 by cumulative time."""
    import cProfile
    import pstats

    from xlsx_assess.collect import Candidate, check_candidate
    from xlsx_assess.writer import build_workbook, file_name

    ctx = make_context(n_files)
    out = work / "profile"
    entries = [fill_entries(ctx, t, k) for k, t in enumerate(ctx.townships)]
    prof = cProfile.Profile()
    prof.enable()
    paths = [build_workbook(ctx.rubric, t, ctx.settings, out / file_name(t, ctx.settings.year), entries=e)
             for t, e in zip(ctx.townships, entries)]
    prof.disable()
    print(f"\n== cProfile: build_workbook (filled) x {n_files}, top 15 by cumulative ==")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
    pstats.Stats(prof).sort_stats("tottime").print_stats(10)
    cands = [Candidate(p, str(p)) for p in paths]
    prof = cProfile.Profile()
    prof.enable()
    for c in cands:
        check_candidate(c, ctx)
    prof.disable()
    print(f"\n== cProfile: check_candidate x {n_files} (fresh Context, one layout per file), top 15 by cumulative ==")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(15)
    pstats.Stats(prof).sort_stats("tottime").print_stats(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, help="number of townships / workbooks (default 20; 1,000 with --cli)")
    ap.add_argument("--cli", action="store_true",
                    help="only the user's commands (`xlsx-assess rank` and `check` over returns saved by three "
                         "writers, against a bare calamine read) and the fill they need")
    ap.add_argument("--repeat", type=int, help="runs of each user command (default 3; 1 with --quick)")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results/bench-N.json)")
    ap.add_argument("--quick", action="store_true", help="skip the pandas/openpyxl read and the 2-worker run")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (printed at the end)")
    ap.add_argument("--workdir", type=Path, help="work folder (default: a new temp folder)")
    ap.add_argument("--profile", type=int, nargs="?", const=50, default=0, metavar="FILES",
                    help="also print cProfile tops for build_workbook and check_candidate over FILES files, and "
                         "where the time of `xlsx-assess rank` goes (with the user's commands)")
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    ap.add_argument("--stage-result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.n = args.n or (1000 if args.cli else 20)

    if args.stage:
        run_stage(args.stage, args.n, args.workdir, args.stage_result)
        return 0

    t0 = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix=f"xa-bench-{args.n}-"))
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or HERE / "results" / f"bench-{args.n}{'-cli' if args.cli else ''}.json"
    try:
        res = {"n": args.n, "quick": args.quick, "when": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               "env": environment(), "notes": []}
        res["stages"] = run_stages(args, work, res["notes"])
        if not args.cli:
            print("… start-up", file=sys.stderr, flush=True)
            res["startup"] = startup(work)
        print("… the user's commands", file=sys.stderr, flush=True)
        res["user"] = stage_user(args.n, work, args.repeat or (1 if args.quick else 3))
        res["notes"] += res["user"]["notes"]
        res["env"]["loadavg_end"] = os.getloadavg()
        res["targets"] = evaluate(res)
        res["bench_wall_s"] = time.perf_counter() - t0
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, ensure_ascii=False, indent=2))
        print(render(res))
        print(f"results: {out}")
        if args.profile:
            profile_cli(args.n, work)
            profile(args.profile, work)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        elif not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def run_stages(args, work: Path, notes: list[str]) -> dict:
    """Each stage in a child process; what is skipped here, and why, goes to `notes`."""
    chosen = ("fill",) if args.cli else STAGES
    stages = {}
    for name in chosen:
        if args.quick and name in ("rank2", "rank1core", "pandas"):
            continue
        if name == "rank1core" and not hasattr(os, "sched_setaffinity"):
            continue
        if name == "pandas" and importlib.util.find_spec("openpyxl") is None:
            notes.append("stage pandas skipped: openpyxl is not installed (pandas.read_excel needs it)")
            continue
        print(f"… {name}", file=sys.stderr, flush=True)
        stages[name] = spawn_stage(name, args.n, work)
    return stages


if __name__ == "__main__":
    sys.exit(main())
