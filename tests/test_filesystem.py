"""Every file accounted for, whatever the file system holds: links (to a file, to a folder, looping,
dangling), FIFOs and devices, folders and files that cannot be read, names that are not UTF-8, very long
names and paths longer than the system allows. Through the library and through the command line:
no traceback, received = accepted + excluded + skipped, each odd entry with its code (F112 skipped, never
opened; F101 cannot be read), the townships behind links ranked, and no temporary file left.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, SMALL_RUBRIC, full_marks, write_filled
from fills import write_roster

from xlsx_assess.checks import Context
from xlsx_assess.collect import check_paths, shown_name
from xlsx_assess.issues import Code
from xlsx_assess.rubric import parse_rubric
from xlsx_assess.settings import load_settings, load_townships

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or sys.platform == "win32",
                                reason="POSIX file system cases (FIFOs, symbolic links, bytes names)")

BAD_NAME = b"\xff\xfe\xb0\xe5"                      # not UTF-8 (GBK for part of a name, and junk)
PATH_MAX = 4096


@dataclass
class Tree:
    """A folder of returns and oddities, and what each entry must come out as."""

    root: Path                                      # the folder given to the tool
    ctx: Context
    expected: dict[str, str] = field(default_factory=dict)   # shown name (relative) -> "ok" | F112 | F101
    locked_folder: str = ""                         # fails to list (PermissionError), patched in
    locked_file: str = ""                           # fails os.access, patched in

    def name(self, shown: str) -> str:
        return os.path.relpath(shown, shown_name(str(self.root))) if shown.startswith(shown_name(str(self.root))) \
            else shown


def small_ctx4() -> Context:
    rubric, report = parse_rubric(SMALL_RUBRIC)
    assert rubric is not None, report.issues
    return Context(rubric, load_settings(), load_townships()[:4])


def build_tree(base: Path) -> Tree:
    ctx = small_ctx4()
    t0, t1, t2, t3 = ctx.townships
    values = full_marks(ctx.rubric)
    root = base / "收回"
    root.mkdir()
    tree = Tree(root, ctx)
    exp = tree.expected

    # a return whose name is not UTF-8
    good = write_filled(ctx, t0, root, values, name="t0.xlsx")
    bad = os.fsencode(root) + b"/" + BAD_NAME + b".xlsx"
    os.rename(good, bad)
    exp[shown_name(os.fsdecode(BAD_NAME)) + ".xlsx"] = "ok"
    # a link to a return outside the folder
    outside = base / "别处"
    outside.mkdir()
    os.symlink(write_filled(ctx, t1, outside, values, name="t1.xlsx"), root / "链接到文件.xlsx")
    exp["链接到文件.xlsx"] = "ok"
    # a linked folder holding a return
    linked = base / "共享盘"
    linked.mkdir()
    write_filled(ctx, t2, linked, values, name="t2.xlsx")
    os.symlink(linked, root / "链接文件夹")
    exp["链接文件夹/t2.xlsx"] = "ok"
    # a 250-byte name
    long_name = "长" * 80 + "a" * 5 + ".xlsx"
    assert len(long_name.encode()) == 250
    os.rename(write_filled(ctx, t3, root, values, name="t3.xlsx"), root / long_name)
    exp[long_name] = "ok"
    os.symlink(long_name, root / "龙-again.xlsx")      # the same file again, after it in name order: taken once
    exp["龙-again.xlsx"] = Code.SKIPPED
    # loops: to the folder itself, to the folder above, to the root, and two links naming each other
    os.symlink(".", root / "loop")
    os.symlink("..", root / "up")
    os.symlink("/", root / "root")
    os.symlink("pair-b", root / "pair-a")
    os.symlink("pair-a", root / "pair-b")
    os.symlink("nowhere.xlsx", root / "dangling.xlsx")
    for n in ("loop", "up", "root", "pair-a", "pair-b", "dangling.xlsx"):
        exp[n] = Code.SKIPPED
    # a FIFO (opening it would block) and a device through a link
    os.mkfifo(root / "fifo.xlsx")
    os.symlink(os.devnull, root / "null.xlsx")
    exp["fifo.xlsx"] = exp["null.xlsx"] = Code.SKIPPED
    # a path longer than the system allows, under nested folders of 250-byte names
    deep = _deep_file(root / "深")
    exp[deep] = Code.FILE_UNREADABLE
    # a folder and a file that cannot be read (patched in: the tests run as root, who reads mode 000)
    locked = root / "无权限"
    locked.mkdir()
    write_filled(ctx, t0, locked, values, name="t0-copy.xlsx")
    tree.locked_folder = str(locked)
    exp["无权限"] = Code.FILE_UNREADABLE
    tree.locked_file = str(write_filled(ctx, t1, root, values, name="锁定.xlsx"))
    exp["锁定.xlsx"] = Code.FILE_UNREADABLE
    return tree


def _deep_file(top: Path) -> str:
    """A file under folders nested until its path passes PATH_MAX (built through folder descriptors);
    the relative name of the first folder whose path is too long to open (what the tool reports)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    parts, length, too_long = [top.name], len(os.fsencode(top)), ""
    try:
        while length < PATH_MAX + 300:
            part = "d" * 250
            os.mkdir(part, dir_fd=fd)
            inner = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd, length = inner, length + 251
            parts.append(part)
            if length >= PATH_MAX and not too_long:
                too_long = "/".join(parts)
        out = os.open("x.xlsx", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"PK\x03\x04")
        os.close(out)
    finally:
        os.close(fd)
    return too_long


@contextmanager
def locked(tree: Tree, monkeypatch):
    """The tree's locked folder cannot be listed and its locked file cannot be read."""
    real_scandir, real_access = os.scandir, os.access

    def scandir(path="."):
        if os.fspath(path) == tree.locked_folder:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_scandir(path)

    def access(path, mode, **kw):
        return False if os.fspath(path) == tree.locked_file else real_access(path, mode, **kw)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "access", access)
    yield


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging (opening a FIFO with no writer blocks)."""
    def expire(*_):
        raise TimeoutError("gathering blocked")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def outcomes(tree: Tree, files: list[dict], skipped: list[dict]) -> dict[str, str]:
    """Each entry's outcome by relative shown name: "ok" (accepted), its first error code, or F112."""
    out = {}
    for f in files:
        codes = [i["code"] for i in f["issues"] if i["severity"] == "error"]
        out[tree.name(f["path"])] = "ok" if f["accepted"] else codes[0] if codes else f["role"]
    for s in skipped:
        out[tree.name(s["path"])] = Code.SKIPPED
    return out


@pytest.fixture
def tree(tmp_path) -> Tree:
    return build_tree(tmp_path)


@pytest.mark.parametrize("workers", [1, 2])
def test_library_accounts_for_every_entry(tree, monkeypatch, tmp_path, workers):
    from xlsx_assess import collect
    from xlsx_assess.report import collection_json

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(collect, "POOL_THRESHOLD", 1)          # two workers: the odd names cross to the pool
    with locked(tree, monkeypatch), deadline(120):
        coll = check_paths([tree.root], tree.ctx, workers=workers)
    data = json.loads(json.dumps(collection_json(coll), ensure_ascii=False).encode("utf-8"))   # valid UTF-8
    s = data["summary"]
    assert s["received"] == s["accepted"] + s["excluded"] + s["skipped"] == len(tree.expected)
    assert outcomes(tree, data["files"], data["skipped"]) == tree.expected
    assert data["missing"] == []                    # the townships behind links and odd names are all here
    assert list(tmp.iterdir()) == []


def test_same_file_twice_and_folders_given_twice_are_taken_once(tree, monkeypatch):
    inner = tree.root / "链接文件夹"
    with locked(tree, monkeypatch):
        coll = check_paths([inner / "t2.xlsx", tree.root, inner], tree.ctx, workers=1)
    s = coll.summary()
    assert s["received"] == s["accepted"] + s["excluded"] + s["skipped"] == len(tree.expected) + 2
    assert [r.name for r in coll.results][0] == str(inner / "t2.xlsx")
    again = {Path(k.name).name: k.reason for k in coll.skipped}
    assert "t2.xlsx" in again and "链接文件夹" in again     # the file inside the linked folder, then the folder


def test_a_path_given_that_cannot_be_followed_is_accounted_for(tmp_path):
    ctx = small_ctx4()
    os.mkfifo(tmp_path / "fifo.xlsx")
    os.symlink("a", tmp_path / "b")
    os.symlink("b", tmp_path / "a")
    with deadline(60):
        coll = check_paths([tmp_path / "fifo.xlsx", tmp_path / "a", tmp_path / "missing.xlsx", os.devnull], ctx,
                           workers=1)
    assert [k.name for k in coll.skipped] == [str(tmp_path / "fifo.xlsx"), str(tmp_path / "a"), os.devnull]
    assert [(r.name, r.report.issues[0].code) for r in coll.results] == [
        (str(tmp_path / "missing.xlsx"), Code.FILE_UNREADABLE)]


LAUNCH = """
import errno, os, runpy, sys
locked_folder, locked_file = sys.argv[1:3]
real_scandir, real_access = os.scandir, os.access
def scandir(path="."):
    if os.fspath(path) == locked_folder:
        raise PermissionError(errno.EACCES, "Permission denied", path)
    return real_scandir(path)
os.scandir = scandir
os.access = lambda path, mode, **kw: False if os.fspath(path) == locked_file else real_access(path, mode, **kw)
sys.argv = ["xlsx-assess", *sys.argv[3:]]
runpy.run_module("xlsx_assess", run_name="__main__", alter_sys=True)
"""


def run_cli(tree: Tree, tmp: Path, *args: str) -> tuple[int, bytes, str]:
    """The command line as a user runs it (a fresh process), with the tree's locks and its own TMPDIR."""
    rubric = tmp.parent / "rubric.csv"
    rubric.write_text(SMALL_RUBRIC, encoding="utf-8")
    roster = write_roster(tree.ctx.townships, tmp.parent / "townships.csv")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", LAUNCH, tree.locked_folder, tree.locked_file, *args,
                           "--rubric", str(rubric), "--townships", str(roster)],
                          capture_output=True, env=env, timeout=180)
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    return proc.returncode, proc.stdout, err


def test_cli_check_and_rank_account_for_every_entry(tree, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code, out, err = run_cli(tree, tmp, "check", str(tree.root), "--json")
    assert code == 1, err                           # F101: some entries could not be read
    data = json.loads(out.decode("utf-8"))          # strict: the names are valid UTF-8
    s = data["summary"]
    assert s["received"] == s["accepted"] + s["excluded"] + s["skipped"] == len(tree.expected)
    assert outcomes(tree, data["files"], data["skipped"]) == tree.expected

    ranking = tmp_path / "排名" / "排名.xlsx"
    ranking.parent.mkdir()
    code, out, err = run_cli(tree, tmp, "rank", str(tree.root), "--out", str(ranking), "--json")
    assert code == 0, err
    data = json.loads(out.decode("utf-8"))
    assert len(data["ranking"]) + len(data["excluded"]) == len(tree.expected)    # a file each, ranked or not
    assert data["missing"] == [] and len(data["ranking"]) == 4
    assert [p.name for p in ranking.parent.iterdir()] == ["排名.xlsx"]
    assert list(tmp.iterdir()) == []

    code, out, err = run_cli(tree, tmp, "check", str(tree.root))                # the console: names shown
    assert code == 1
    text = out.decode("utf-8")
    assert shown_name(os.fsdecode(BAD_NAME)) in text and "收到 %d 个文件" % len(tree.expected) in text


def test_console_shows_control_characters_in_names_escaped(tmp_path):
    """A zip member's name (or a file's) with ESC, BEL or a bidirectional override reaches the terminal
    as visible escapes, never as the raw bytes."""
    ctx = small_ctx4()
    form = write_filled(ctx, ctx.townships[0], tmp_path, full_marks(ctx.rubric), name="form.xlsx")
    folder = tmp_path / "in"
    folder.mkdir()
    with zipfile.ZipFile(folder / "returns.zip", "w") as zf:
        zf.write(form, "\x1b]0;owned\x07\x1b[2J吴坝镇.xlsx")
        zf.writestr("\u202eslx.exe", b"MZ")
    (folder / "note\x1b[31m.txt").write_bytes(b"x")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tree = Tree(folder, ctx)
    for args in (("check", str(folder)), ("rank", str(folder), "--out", str(tmp_path / "r.xlsx"))):
        code, out, err = run_cli(tree, tmp, *args)
        assert code in (0, 1), err
        for stream in (out, err.encode()):
            assert b"\x1b" not in stream and b"\x07" not in stream and "\u202e".encode() not in stream
        text = out.decode()
        assert "\\u202eslx.exe" in text and "note\\x1b[31m.txt" in text                 # skipped, in both
        assert "\\x1b]0;owned\\x07\\x1b[2J吴坝镇.xlsx" in text or args[0] == "rank"       # rank lists errors only
