"""The benchmarks run in CI only as smoke tests at a small N: they must work, not be fast here."""

from __future__ import annotations

import json
import subprocess
import sys

import lo
from conftest import ROOT


def test_bench_runs_at_small_n(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--n", "12", "--quick", "--out", str(out)],
                   check=True, capture_output=True, timeout=600, cwd=ROOT)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {"gen", "bare", "rank1", "rank1few", "calamine"} <= set(data["stages"])
    assert {t["target"] for t in data["targets"]} >= {"gen_vs_floor", "rank_vs_calamine", "rss_country_mb",
                                                      "user_rank_vs_floor", "user_check_vs_floor"}
    assert data["stages"]["bare"]["same_form_values_as_gen"] is True     # the floor writes the same form
    user = data["user"]
    writers = {"ours": 4, "openpyxl": 4, "libreoffice": 4} if lo.available() is None else {"ours": 6, "openpyxl": 6}
    assert user["writers"] == writers                                    # LibreOffice's share only where it runs
    assert user["summary"]["accepted"] == 12 and user["summary"]["error"] == 0
    assert set(user["issue_codes"]) <= {"V408"}          # openpyxl drops the formulas' cached values: a warning
    assert user["rank"]["exit_code"] == 0 and user["rank_vs_floor"] > 0 and user["check_vs_floor"] > 0
