"""Inputs are never touched and `--out` never ends in a traceback (issue 11, part 2).

Each case runs the command line as the user does (a subprocess) and holds it to: the exit code, a coded
Chinese message naming the files, no traceback, every input byte unchanged and no temporary file left.
What only Windows does (a file held open by WPS makes `os.replace` fail) is simulated at library level.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from xlsx_assess import ranking as ranking_mod
from xlsx_assess import staging as staging_mod
from xlsx_assess import writer as writer_mod
from xlsx_assess.issues import AssessError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "returned"
RETURN = "吴坝镇.xlsx"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    temp = tmp_path / "TMPDIR"
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400", "TMPDIR": str(temp)}
    return subprocess.run([sys.executable, "-m", "xlsx_assess", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)


def fingerprints(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` (links read through), by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def folder(tmp_path) -> Path:
    shutil.copytree(SAMPLES, tmp_path / "收回")
    return tmp_path / "收回"


def refused(tmp_path: Path, code: str, out: Path, inputs: list[str], *mentioned: str, command: str = "rank"):
    """Run `command inputs --out out`; it must exit 2 with `code` naming `out` and `mentioned`, touching
    nothing: every file's bytes as before, no file added (no temporary file) anywhere under tmp_path."""
    before, listing = fingerprints(tmp_path), names(tmp_path) | {"TMPDIR"}
    result = run(tmp_path, command, *inputs, "--out", str(out))
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    assert "Traceback" not in said
    assert code in said and str(out) in said, said
    for m in mentioned:
        assert m in said, (m, said)
    assert fingerprints(tmp_path) == before
    assert names(tmp_path) == listing
    return said


def test_out_naming_a_return_in_the_input_folder_is_refused(tmp_path, folder):
    refused(tmp_path, "R301", folder / RETURN, [str(folder)], "收回的文件从不改动")


def test_out_linking_to_a_return_is_refused(tmp_path, folder):
    link = tmp_path / "排名.xlsx"
    link.symlink_to(folder / RETURN)
    refused(tmp_path, "R301", link, [str(folder)], str(folder / RETURN))
    assert link.is_symlink()


def test_out_hard_linked_to_a_return_is_refused(tmp_path, folder):
    hard = tmp_path / "排名.xlsx"
    os.link(folder / RETURN, hard)
    refused(tmp_path, "R301", hard, [str(folder)], str(folder / RETURN))


def test_out_that_is_an_input_file_or_zip_is_refused(tmp_path, folder):
    refused(tmp_path, "R301", folder / RETURN, [str(folder / RETURN)])
    archive = tmp_path / "收回.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.iterdir()):
            zf.write(p, p.name)
    refused(tmp_path, "R301", archive, [str(archive)], "压缩包")


def test_out_that_cannot_be_written_is_refused(tmp_path, folder):
    refused(tmp_path, "R302", tmp_path, [str(folder)], "文件夹")                      # a directory
    refused(tmp_path, "R302", folder / RETURN / "排名.xlsx", [str(folder)], str(folder / RETURN))   # under a file


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_out_in_a_read_only_folder_is_refused(tmp_path, folder):
    locked = tmp_path / "只读"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        refused(tmp_path, "R302", locked / "排名.xlsx", [str(folder)], "不允许写入")
    finally:
        locked.chmod(0o755)


def test_generate_out_that_is_not_a_folder_is_refused(tmp_path):
    plain = tmp_path / "说明.txt"
    plain.write_text("不是文件夹", encoding="utf-8")
    refused(tmp_path, "R302", plain, [], "不是文件夹", command="generate")
    refused(tmp_path, "R302", plain / "下发", [], str(plain), command="generate")


def test_rank_runs_again_with_its_ranking_in_the_input_folder(tmp_path, folder):
    before = fingerprints(folder)
    out = folder / "排名.xlsx"
    for _ in range(2):
        result = run(tmp_path, "rank", str(folder), "--out", str(out))
        assert result.returncode == 0, result.stdout + result.stderr
        assert ranking_mod.is_ranking_workbook(out)
        assert {k: v for k, v in fingerprints(folder).items() if k != out.name} == before
        assert names(folder) == set(before) | {out.name}          # no temporary file beside it
    assert "未提交乡镇 0 个" in result.stdout


def test_a_ranking_is_told_by_its_content_not_its_name(tmp_path, folder):
    assert not any(ranking_mod.is_ranking_workbook(p) for p in folder.iterdir())
    renamed = tmp_path / "排名.xlsx"
    shutil.copy(folder / RETURN, renamed)
    assert not ranking_mod.is_ranking_workbook(renamed)
    assert ranking_mod.is_ranking_workbook(ROOT / "samples" / "排名.xlsx")


# -- what only the write itself can tell: simulated at library level ---------------------------------------

def test_a_ranking_held_open_by_another_program_is_r302_and_the_old_one_stays(tmp_path, monkeypatch, ctx):
    from xlsx_assess.workflow import rank_files

    out = tmp_path / "排名.xlsx"
    out.write_bytes(b"previous ranking")

    def held_open(src, dst):                   # what Windows does while WPS or Excel has the file open
        raise PermissionError(13, "另一个程序正在使用此文件，进程无法访问。", str(dst))

    monkeypatch.setattr(writer_mod.os, "replace", held_open)
    with pytest.raises(AssessError) as caught:
        rank_files([SAMPLES], out, ctx)
    [problem] = caught.value.report.issues
    assert (problem.code, problem.file) == ("R302", str(out))
    assert "排名.xlsx 正被其他程序打开" in problem.message and "请关闭后重试" in problem.message
    assert out.read_bytes() == b"previous ranking"
    assert [p.name for p in tmp_path.iterdir()] == ["排名.xlsx"]


def test_a_folder_refusing_the_temporary_file_is_r302(tmp_path, monkeypatch, ctx):
    from xlsx_assess.workflow import generate_workbooks

    def refused_here(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(staging_mod, "Staged", refused_here)
    with pytest.raises(AssessError) as caught:
        generate_workbooks(tmp_path / "下发", ctx)
    [problem] = caught.value.report.issues
    assert problem.code == "R302" and "不允许写入" in problem.message
    assert list((tmp_path / "下发").iterdir()) == []
