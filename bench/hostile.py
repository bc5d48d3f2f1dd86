"""The hostile corpus end to end: build it, rank it with the real CLI, measure time and memory.

    python bench/hostile.py                     # default workers (CPU count); prints a JSON report
    python bench/hostile.py --workers 1 --json bench/results/hostile.json

Builds tests/hostile_corpus.py's corpus (LibreOffice needed for its office-made cases) in a temp dir,
then runs `xlsx-assess rank CORPUS --out ... --townships ROSTER` in a subprocess and reports:
  - wall time of the rank run;
  - peak RSS via resource.getrusage(RUSAGE_CHILDREN), taken in a clean wrapper process whose only
    descendants are the rank run (its pool workers and reader helpers), so LibreOffice's memory from
    the build does not count: that is the largest single process of the run;
  - the peak of the whole process tree, sampled every 20 ms: the sum of RSS (counts shared pages once
    per process) and the sum of PSS (shared pages split between processes: what the run really holds);
  - whether the ranking holds exactly the townships the corpus says must be ranked, and whether every
    input file is byte-identical afterwards.
The target: peak memory of the whole run under 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 300


def tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            fields = {line.split(":")[0]: int(line.split()[1]) for line in fh if line.split(":")[0] in ("Rss", "Pss")}
        return fields.get("Rss", 0), fields.get("Pss", 0)
    except (OSError, ValueError, IndexError):
        return 0, 0


def measure(cmd: list[str]) -> dict:
    """Run `cmd`; its wall time, exit code, RUSAGE_CHILDREN peak and the sampled peaks of its process tree."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_rss = peak_pss = 0
    while proc.poll() is None:
        rss = pss = 0
        for pid in tree(proc.pid):
            r, p = memory_kb(pid)
            rss, pss = rss + r, pss + p
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.02)
    stderr = proc.stderr.read().decode("utf-8", "replace")
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": round(wall, 2), "exit": proc.returncode, "stderr": stderr[-2000:],
            "rusage_children_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
            "tree_rss_peak_mb": round(peak_rss / 1024, 1), "tree_pss_peak_mb": round(peak_pss / 1024, 1)}


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=None, help="passed to xlsx-assess rank (default: its own)")
    ap.add_argument("--json", type=Path, help="also write the report here")
    ap.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)   # the clean wrapper
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0

    sys.path.insert(0, str(ROOT / "tests"))
    import hostile_corpus
    import lo

    with tempfile.TemporaryDirectory(prefix="xa-hostile-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        corpus = hostile_corpus.build(tmp / "收回", with_libreoffice=lo.available() is None)
        built = time.monotonic() - t0
        roster = corpus.write_roster(tmp / "townships.csv")
        before = hashes(corpus.folder)
        out = tmp / "out" / "排名.xlsx"
        cmd = [sys.executable, "-m", "xlsx_assess", "rank", str(corpus.folder), "--out", str(out),
               "--townships", str(roster), "--json"]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        wrapper = subprocess.run([sys.executable, __file__, "--measure", *cmd], capture_output=True, text=True,
                                 check=True)
        run = json.loads(wrapper.stdout)
        ranked = set()
        if out.exists():
            import python_calamine as pc

            rows = pc.CalamineWorkbook.from_path(str(out)).get_sheet_by_name("排名").to_python()
            ranked = {str(r[1]) for r in rows if str(r[1]) in {t.code for t in corpus.roster}}
        report = {
            "files": sum(1 for k in before),
            "expected_verdicts": len(corpus.expected),
            "libreoffice_cases": lo.available() is None,
            "build_s": round(built, 1),
            "workers": args.workers,
            **{k: v for k, v in run.items() if k != "stderr"},
            "ranked": len(ranked),
            "ranked_as_expected": ranked == set(corpus.ranked),
            "inputs_unchanged": hashes(corpus.folder) == before,
            "peak_under_limit": max(run["rusage_children_maxrss_mb"], run["tree_pss_peak_mb"]) < LIMIT_MB,
        }
        if run["exit"] != 0:
            report["stderr"] = run["stderr"]
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    ok = run["exit"] == 0 and report["ranked_as_expected"] and report["inputs_unchanged"] and report["peak_under_limit"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
