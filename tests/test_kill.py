"""Killed at any moment (SIGKILL included), `rank` leaves nothing running and nothing behind.

The command runs in its own session over a folder big enough to start the process pool (two workers,
each with its python-calamine helper). While it runs, its descendants are listed from /proc; it is
killed at a random moment; within a few seconds none of them may be alive, no temporary file may be
left in the output folder or in its $TMPDIR (a folder of the test's own), and the output must be the
old ranking, absent, or a complete workbook. 10 kills here, 50 with XLSX_ASSESS_FULL=1.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import SMALL_RUBRIC
from fills import random_values, write_filled, write_roster
from xlsx_assess.collect import POOL_THRESHOLD
from xlsx_assess.staging import PREFIX, stage

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc") or not hasattr(os, "killpg"),
                                reason="counts processes through Linux /proc")

KILLS = 50 if os.environ.get("XLSX_ASSESS_FULL") else 10
RETURNS = POOL_THRESHOLD + 30             # enough for the pool to start


# -- processes, from /proc ------------------------------------------------------------------------------

def stat_of(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()      # the name, in parentheses, may hold spaces
    return int(fields[1]), fields[0], int(fields[19])


def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process whose parent chain leads to `root`."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := stat_of(int(name))) is not None:
            table[int(name)] = st
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def alive(seen: dict[int, int]) -> list[int]:
    """Those of `seen` still running (the same process: same start time; a zombie is over)."""
    out = []
    for pid, start in seen.items():
        st = stat_of(pid)
        if st is not None and st[2] == start and st[1] not in ("Z", "X"):
            out.append(pid)
    return out


# -- files ----------------------------------------------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def is_complete(path: Path) -> bool:
    import python_calamine as pc

    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
    rows = pc.CalamineWorkbook.from_path(str(path)).get_sheet_by_name("排名").to_python()
    return len(rows) > 1


@pytest.fixture(scope="module")
def returns(small_ctx, tmp_path_factory) -> Path:
    """RETURNS forms filled in on the small rubric: one per township, written, then copied under other
    names; the rubric and roster beside them, in `setup/`."""
    top = tmp_path_factory.mktemp("returns")
    folder, setup = top / "in", top / "setup"
    folder.mkdir()
    setup.mkdir()
    (setup / "rubric.csv").write_text(SMALL_RUBRIC, encoding="utf-8")
    write_roster(small_ctx.townships, setup / "townships.csv")
    ctx = small_ctx
    rng = random.Random(11)
    made = [write_filled(ctx, t, folder, random_values(ctx.rubric, rng), False) for t in ctx.townships]
    for k in range(RETURNS - len(made)):
        src = made[k % len(made)]
        shutil.copyfile(src, folder / f"{src.stem}_第{k}次.xlsx")
    return folder


class Run:
    """`rank` over the returns, in its own session, with its own $TMPDIR."""

    def __init__(self, returns: Path, tmp_path: Path):
        self.out = tmp_path / "out" / "排名.xlsx"
        self.tmpdir = tmp_path / "tmp"
        self.out.parent.mkdir()
        self.tmpdir.mkdir()
        root = Path(__file__).resolve().parent.parent
        self.env = {**os.environ, "TMPDIR": str(self.tmpdir),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        setup = returns.parent / "setup"
        self.cmd = [sys.executable, "-m", "xlsx_assess", "rank", str(returns), "--out", str(self.out),
                    "--workers", "2", "--rubric", str(setup / "rubric.csv"), "--townships", str(setup / "townships.csv")]
        self.check_cmd = [c for c in self.cmd if c not in ("--out", str(self.out))]
        self.check_cmd[self.check_cmd.index("rank")] = "check"

    def start(self, command: str = "rank") -> subprocess.Popen:
        cmd = self.cmd if command == "rank" else self.check_cmd
        return subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)

    def whole(self) -> float:
        start = time.monotonic()
        subprocess.run(self.cmd, env=self.env, check=True, capture_output=True, timeout=300)
        return time.monotonic() - start

    def watch_until(self, proc: subprocess.Popen, moment: float, writing: bool = False) -> dict[int, int]:
        """The descendants of `proc` seen until `moment` (monotonic), or until it starts writing."""
        seen: dict[int, int] = {}
        while proc.poll() is None and time.monotonic() < moment:
            seen.update(descendants(proc.pid))
            if writing and any(p.name.startswith(PREFIX) for p in self.out.parent.iterdir()):
                break
            time.sleep(0.01)
        return seen


def kill_and_check(run: Run, proc: subprocess.Popen, seen: dict[int, int], old: bytes | None) -> str:
    """Kill `proc`, then assert nothing is left; what the output is afterwards."""
    seen.update(descendants(proc.pid))
    proc.kill()
    proc.wait()

    def clean() -> bool:
        return not alive(seen) and not leftovers(run.tmpdir) and leftovers(run.out.parent) in ([], [run.out.name])

    deadline = time.monotonic() + 5
    while not clean() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert alive(seen) == [], f"still running after the kill: {alive(seen)} of {sorted(seen)}"
        assert leftovers(run.tmpdir) == []
        assert leftovers(run.out.parent) in ([], [run.out.name])
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)       # whatever the assertions say, leave nothing here
        except OSError:
            pass
    if not run.out.exists():
        return "absent"
    if old is not None and run.out.read_bytes() == old:
        return "old"
    assert is_complete(run.out)
    return "new"


def test_killed_at_any_moment_check_and_rank_leave_nothing_running_and_nothing_behind(returns, tmp_path):
    """Most kills come at a random moment; every fifth while the ranking is being written, and every
    fifth (another) hits `check`, which spills verdicts to $TMPDIR too."""
    run = Run(returns, tmp_path)
    whole = run.whole()
    old = run.out.read_bytes()
    assert is_complete(run.out) and leftovers(run.tmpdir) == []
    rng = random.Random(20261130)
    outcomes: dict[str, int] = {}
    children = caught_writing = 0
    for k in range(KILLS):
        if k % 3 == 0:
            run.out.unlink(missing_ok=True)
        elif not run.out.exists() or run.out.read_bytes() != old:
            run.out.write_bytes(old)
        writing = k % 5 == 2
        proc = run.start("check" if k % 5 == 4 else "rank")
        if writing:
            seen = run.watch_until(proc, time.monotonic() + 3 * whole, writing=True)
            caught_writing += proc.poll() is None
            time.sleep(rng.uniform(0, 0.05))
        else:
            seen = run.watch_until(proc, time.monotonic() + rng.uniform(0.05, 0.95) * whole)
        children = max(children, len(seen))
        outcome = kill_and_check(run, proc, seen, None if k % 3 == 0 else old)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert children >= 4                       # the pool started: two workers, each with a helper
    assert caught_writing >= 1
    assert outcomes.get("absent", 0) + outcomes.get("old", 0) >= 1


def test_the_next_write_removes_what_a_killed_run_left(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_file = tmp_path / f"{PREFIX}{dead.pid}-abc.tmp"
    stale_dir = tmp_path / f"{PREFIX}{dead.pid}-def.tmp"
    stale_file.write_bytes(b"half a ranking")
    stale_dir.mkdir()
    (stale_dir / "rows").write_bytes(b"rows")
    mine = tmp_path / f"{PREFIX}{os.getpid()}-ghi.tmp"        # a live process's: left alone
    mine.write_bytes(b"being written")
    others = tmp_path / ".~lock.排名.xlsx#"
    others.write_bytes(b"")
    stage(tmp_path).discard()                                 # the next write into the folder
    assert leftovers(tmp_path) == sorted([mine.name, others.name])


def test_a_staged_file_has_no_name_until_it_takes_its_own(tmp_path):
    staged = stage(tmp_path)
    staged.file.write(b"content")
    if sys.platform.startswith("linux"):
        assert leftovers(tmp_path) == []                      # anonymous (O_TMPFILE)
    scratch = staged.scratch()
    (scratch / "rows").write_bytes(b"rows")
    staged.move_into_place(tmp_path / "out.xlsx")
    assert leftovers(tmp_path) == ["out.xlsx"]
    assert (tmp_path / "out.xlsx").read_bytes() == b"content"


def test_verdicts_spilled_to_disk_have_no_name(small_ctx, monkeypatch):
    from xlsx_assess import collect
    from xlsx_assess.checks import FileResult

    results = collect.Results(small_ctx)
    monkeypatch.setattr(results, "_keep", 0)
    results.append(FileResult("a.xlsx"))
    if os.name == "posix":
        assert os.fstat(results._file.fileno()).st_nlink == 0   # unlinked at creation: a kill leaves nothing
