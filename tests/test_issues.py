"""Issue codes are names (`issues.Code`): every name the package uses is catalogued, every catalogued
code is emitted somewhere, and no code is written as a bare string outside the catalogue."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from xlsx_assess.issues import CATALOGUE, Code, issue

PACKAGE = Path(__file__).resolve().parents[1] / "xlsx_assess"
CODE_TEXT = re.compile(r"[RFISVC][1-5][0-9]{2}")


def _sources():
    return [(f, ast.parse(f.read_text(encoding="utf-8"))) for f in sorted(PACKAGE.glob("*.py")) if f.name != "issues.py"]


def _names_used() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for f, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Code":
                used.setdefault(node.attr, []).append(f"{f.name}:{node.lineno}")
    return used


def test_every_name_used_is_catalogued():
    unknown = {name: where for name, where in _names_used().items() if name not in Code.__members__}
    assert not unknown


def test_every_catalogued_code_is_emitted_somewhere():
    assert set(Code.__members__) - set(_names_used()) == set()


def test_no_code_is_written_as_a_bare_string():
    bare = [f"{f.name}:{node.lineno} {node.value!r}" for f, tree in _sources() for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE_TEXT.fullmatch(node.value)]
    assert not bare


def test_the_catalogue_is_keyed_by_code_and_names_are_unique():
    assert list(CATALOGUE) == [c.value for c in Code] and len(set(CATALOGUE)) == len(Code)
    assert all(CODE_TEXT.fullmatch(c) for c in CATALOGUE)
    assert Code.DAMAGED == "F104" and CATALOGUE["F104"] is Code.DAMAGED


def test_an_issue_carries_its_code_as_plain_text():
    made = issue(Code.SCORE_OUT_OF_RANGE, value=3, limit=1.5)
    assert made.code == "V403" and type(made.code) is str and made.severity == "error"
