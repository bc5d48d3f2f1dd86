"""The package declares what it imports, and nothing else."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

from conftest import ROOT

PACKAGE = ROOT / "xlsx_assess"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


WEB = PACKAGE / "web"             # the page: its imports are the `web` extra's


def imported_top_names(web: bool = False) -> set[str]:
    """Top-level names of every absolute import in the package's modules (lazy ones inside functions too);
    with `web`, those of the page's modules (xlsx_assess/web/) instead."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if (WEB in path.parents) != web:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - {"xlsx_assess", "__future__"}


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {_norm(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in listed}


def test_runtime_dependencies_are_what_the_package_imports():
    third_party = imported_top_names() - set(sys.stdlib_module_names)
    dists = packages_distributions()
    imported = {_norm(dists[name][0]) for name in third_party}
    assert imported == declared()


def test_the_page_imports_only_the_web_extra_and_the_runtime_dependencies():
    third_party = imported_top_names(web=True) - set(sys.stdlib_module_names)
    dists = packages_distributions()
    imported = {_norm(dists[name][0]) for name in third_party}
    assert imported <= declared("web") | declared()
    assert "python-multipart" in declared("web")          # Starlette's form parser, imported by Starlette


def test_every_module_imports_and_the_jobs_run_without_the_test_only_libraries(tmp_path):
    blocked = ("openpyxl", "defusedxml", "pytest", "hypothesis", "starlette", "uvicorn", "multipart",
               "python_multipart", "httpx", "playwright")
    code = (
        "import importlib, pkgutil, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}: raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import xlsx_assess\n"
        "for m in pkgutil.walk_packages(xlsx_assess.__path__, 'xlsx_assess.'):\n"
        "    if m.name != 'xlsx_assess.__main__' and not m.name.startswith('xlsx_assess.web.'):\n"
        "        importlib.import_module(m.name)\n"
        "import xlsx_assess as xa\n"
        "ctx = xa.load_context()\n"
        f"xa.generate_workbooks({str(tmp_path / 'gen')!r}, ctx)\n"
        f"coll, _ = xa.rank_files([{str(ROOT / 'samples' / 'returned')!r}], {str(tmp_path / 'r.xlsx')!r}, ctx)\n"
        "assert coll.summary()['accepted'] == 9, coll.summary()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {blocked!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
