"""Returns as the county receives them: one per township, saved by one of three writers in turn.

    ours         the filled form as our writer makes it (`write_filled`: the fill stage's output)
    openpyxl     that form loaded and saved again by openpyxl (which drops the formulas' cached values)
    libreoffice  that form opened, recalculated and saved as .xlsx by LibreOffice headless

LibreOffice takes ~0.25 s a file, so its copies are kept in `bench/cache/libreoffice/`, named by the
sha256 of the form they were saved from: a form the writer makes again byte for byte (same township,
same seed, same code) is not saved again, and a changed writer makes new ones. Every file is a real
re-save of its own township's form (no copies with patched identities: their entries would be equal
and the collection rules would flag them as copies, C504). A writer that is not installed here
(openpyxl, or LibreOffice with python3-uno) is left out with a note and the others take its turns.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache" / "libreoffice"
WRITERS = ("ours", "openpyxl", "libreoffice")
LO_BATCH = 100                  # forms per LibreOffice session (one soffice start each)


def available_writers() -> tuple[list[str], list[str]]:
    """The writers usable here, and a note for each one left out."""
    usable, notes = ["ours"], []
    try:
        import openpyxl  # noqa: F401
        usable.append("openpyxl")
    except ImportError:
        notes.append("openpyxl is not installed: no openpyxl-saved returns (pip install openpyxl)")
    reason = _lo().available()
    if reason is None:
        usable.append("libreoffice")
    else:
        notes.append(f"no LibreOffice-saved returns: {reason}")
    return usable, notes


def _lo():
    """tests/lo.py, which drives LibreOffice (plain Python, no test framework)."""
    tests = str(HERE.parent / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import lo

    return lo


def build(forms: list[Path], folder: Path, writers: list[str]) -> dict[str, int]:
    """`folder` gets one return per form, the k-th saved by writers[k % len(writers)]; how many each."""
    folder.mkdir(parents=True, exist_ok=True)
    turns: dict[str, list[Path]] = {w: forms[k::len(writers)] for k, w in enumerate(writers)}
    for src in turns.get("ours", []):
        shutil.copyfile(src, folder / src.name)
    for src in turns.get("openpyxl", []):
        _openpyxl_resave(src, folder / src.name)
    _libreoffice_resave(turns.get("libreoffice", []), folder)
    return {w: len(v) for w, v in turns.items()}


def _openpyxl_resave(src: Path, dst: Path) -> None:
    import openpyxl

    openpyxl.load_workbook(src).save(dst)


def _libreoffice_resave(forms: list[Path], folder: Path) -> None:
    """Each form as LibreOffice saves it, from the cache or made now (and cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = {src: CACHE / f"{hashlib.sha256(src.read_bytes()).hexdigest()[:32]}.xlsx" for src in forms}
    todo = [src for src, hit in cached.items() if not hit.exists()]
    for k in range(0, len(todo), LO_BATCH):
        batch = todo[k:k + LO_BATCH]
        print(f"  LibreOffice: saving {k + len(batch)}/{len(todo)} returns (cached in {CACHE})", file=sys.stderr,
              flush=True)
        jobs = [{"in": str(src), "out": str(cached[src]) + ".part.xlsx", "format": "xlsx"} for src in batch]
        for src, res in zip(batch, _lo().run_jobs(jobs, timeout=60 + 5 * len(batch))):
            if not res.get("ok"):
                raise RuntimeError(f"LibreOffice could not save {src}: {res.get('error')}")
            os.replace(str(cached[src]) + ".part.xlsx", cached[src])
    for src, hit in cached.items():
        shutil.copyfile(hit, folder / src.name)
