"""No traceback in any console: every command, run as a user runs it, under an encoding that cannot carry
its symbols (GBK: Chinese Windows) or even its Chinese (ASCII), exits 0/1/2 as it should, and --json parses."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from xlsx_assess import cli

SAMPLES = ROOT / "samples" / "returned"
ENCODINGS = ("gbk", "ascii")


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Two returns, a damaged one whose name has a symbol GBK lacks, a rubric with a 10 MB line and
    settings with a cap of NaN."""
    root = tmp_path_factory.mktemp("console")
    returned = root / "returned"
    returned.mkdir()
    for p in sorted(SAMPLES.glob("*.xlsx"))[:2]:
        shutil.copy(p, returned / p.name)
    (returned / "损坏✖.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "long.csv").write_text("id,category,indicator,criterion,kind,points\nA01,a,b," + "长" * 10_000_000
                                   + ",base,100\n", encoding="utf-8")
    (root / "nan.toml").write_text('title = "考核"\nbonus_cap = nan\n', encoding="utf-8")
    return root


CASES = {
    "help": (["--help"], 0),
    "codes": (["codes"], 0),
    "codes json": (["codes", "--json"], 0),
    "rubric": (["rubric"], 0),
    "rubric 10 MB line": (["rubric", "{root}/long.csv"], 1),
    "check": (["check", "{root}/returned"], 1),
    "check json": (["check", "--json", "{root}/returned"], 1),
    "rank": (["rank", "{root}/returned", "--out", "{out}/排名.xlsx"], 1),          # written; townships left out
    "rank json": (["rank", "--json", "{root}/returned", "--out", "{out}/排名.xlsx"], 1),
    "generate": (["generate", "--out", "{out}/forms", "--only", "城关镇"], 0),
    "generate bad settings": (["generate", "--out", "{out}/forms", "--settings", "{root}/nan.toml"], 2),
    "check bad year": (["check", "{root}/returned", "--year", "99999"], 2),
    "check missing path": (["check", "{root}/不存在✖"], 2),
    "unknown option": (["check", "{root}/returned", "--未知"], 2),
    "version": (["--version"], 0),
}


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("case", CASES)
def test_every_command_runs_in_a_console_that_cannot_encode_it(place, tmp_path, encoding, case):
    args, expected = CASES[case]
    args = [a.format(root=place, out=tmp_path) for a in args]
    env = {**os.environ, "PYTHONIOENCODING": encoding, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "xlsx_assess", *args], capture_output=True, env=env, timeout=120)
    err = done.stderr.decode(encoding, "replace")
    assert "Traceback" not in err and done.returncode == expected, err[-2000:]
    if not (encoding == "ascii" and "--help" in args):  # click takes an ASCII console for a misconfigured one
        done.stdout.decode(encoding)                   # and writes UTF-8; we write what the console can show
    if "--json" in args:
        assert json.loads(done.stdout.decode(encoding))
    if encoding == "gbk" and expected != 2:
        assert done.stdout.decode("gbk").strip()       # Chinese stays Chinese where the console carries it


def _stream(encoding: str) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="strict")


@pytest.mark.parametrize("encoding, expected", [("gbk", "√ 合格 > 评分表 - × !"),
                                                ("ascii", "OK \\u5408\\u683c > \\u8bc4\\u5206\\u8868 - X !")])
def test_symbols_fall_back_once_for_the_stream(encoding, expected):
    stream = _stream(encoding)
    plain = cli._PlainStream(stream)
    plain.write("✔ 合格 › 评分表 − ✖ ⚠")
    stream.flush()
    assert stream.buffer.getvalue().decode(encoding) == expected


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_console_that_carries_any_text_is_left_alone(monkeypatch, encoding):
    monkeypatch.setattr(sys, "stdout", _stream(encoding))
    assert cli._carries_all(sys.stdout)
    assert not isinstance(cli._console().file, cli._PlainStream)


@pytest.mark.parametrize("encoding, ascii_only", [("utf-8", False), ("gbk", True), ("ascii", True)])
def test_json_is_ascii_unless_the_console_carries_any_text(monkeypatch, capsys, encoding, ascii_only):
    stream = _stream(encoding)
    monkeypatch.setattr(sys, "stdout", stream)
    cli._print_json({"乡镇": "城关镇", "note": "✔"})
    stream.flush()
    raw = stream.buffer.getvalue()
    assert raw.isascii() == ascii_only
    assert json.loads(raw.decode(encoding)) == {"乡镇": "城关镇", "note": "✔"}
