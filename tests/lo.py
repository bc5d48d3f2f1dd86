"""Thin wrapper to drive LibreOffice (via tests/lo_driver.py) from the test suite.

``import uno`` only works under Debian's system ``/usr/bin/python3``, so the
actual UNO work happens in a subprocess running ``lo_driver.py``.  See that
file for the job format.

    from tests import lo   # or: import lo (tests/ on sys.path)
    reason = lo.available()
    if reason: pytest.skip(reason)
    [res] = lo.run_jobs([{"in": src, "out": dst, "format": "xlsx",
                          "set": [["评分表", "G5", 1.5]],
                          "read": [["评分表", "G80"]]}])
    assert res["ok"], res["error"]
    res["read"][0]["value"]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

LO_PYTHON = "/usr/bin/python3"
DRIVER = str(Path(__file__).resolve().with_name("lo_driver.py"))
FORMATS = ("xlsx", "xls", "ods", "fods", "pdf")

_UNSET = object()
_available_cache: object = _UNSET


def _soffice() -> str | None:
    found = shutil.which("soffice")
    if found:
        return found
    cand = "/usr/lib/libreoffice/program/soffice"
    return cand if os.path.exists(cand) else None


def _driver_env() -> dict:
    # Don't leak the pyenv interpreter's settings into the system python.
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(key, None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def available() -> str | None:
    """None if LibreOffice + python3-uno are usable, else a reason string (cached)."""
    global _available_cache
    if _available_cache is not _UNSET:
        return _available_cache  # type: ignore[return-value]
    reason: str | None = None
    if _soffice() is None:
        reason = "LibreOffice (soffice) not installed"
    elif not os.path.exists(LO_PYTHON):
        reason = f"{LO_PYTHON} not found (needed for python3-uno)"
    else:
        try:
            proc = subprocess.run([LO_PYTHON, "-c", "import uno"], capture_output=True,
                                  text=True, timeout=60, env=_driver_env())
            if proc.returncode != 0:
                reason = f"`{LO_PYTHON} -c 'import uno'` failed: {proc.stderr.strip()[-500:]}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"cannot run {LO_PYTHON}: {exc}"
    _available_cache = reason
    return reason


def _norm_job(job: dict) -> dict:
    job = dict(job)
    for key in ("in", "out"):
        if job.get(key) is not None:
            job[key] = os.path.abspath(os.fspath(job[key]))
    return job


def run_jobs(jobs: list[dict], timeout: float = 600) -> list[dict]:
    """Run jobs in one LibreOffice session; one result dict per job.

    Each result is ``{"ok": True, "read": [...], "out": path}`` or
    ``{"ok": False, "error": "..."}``.  Raises RuntimeError if the driver
    itself fails (bad exit, unparsable output, timeout).
    """
    payload = {"jobs": [_norm_job(j) for j in jobs]}
    fd, job_file = tempfile.mkstemp(prefix="lo_jobs_", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False)
        proc = subprocess.Popen([LO_PYTHON, DRIVER, job_file], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=_driver_env())
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM lets the driver shut soffice down and print partial results.
            proc.send_signal(signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            raise RuntimeError(f"lo_driver timed out after {timeout}s\n"
                               f"stderr:\n{err.decode('utf-8', 'replace')}")
        stderr = err.decode("utf-8", "replace")
        stdout = out.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError(f"lo_driver exited with {proc.returncode}\n"
                               f"stdout:\n{stdout}\nstderr:\n{stderr}")
        try:
            data = json.loads(stdout.strip().splitlines()[-1])
            results = data["results"]
        except (ValueError, KeyError, IndexError) as exc:
            raise RuntimeError(f"unparsable lo_driver output ({exc})\n"
                               f"stdout:\n{stdout}\nstderr:\n{stderr}") from None
        if len(results) != len(jobs):
            raise RuntimeError(f"lo_driver returned {len(results)} results for {len(jobs)} jobs\n"
                               f"stderr:\n{stderr}")
        return results
    finally:
        try:
            os.unlink(job_file)
        except OSError:
            pass


def convert(src, dst_dir, fmt: str, timeout: float = 600) -> Path:
    """Convert ``src`` to ``fmt`` (xlsx/xls/ods/pdf) in ``dst_dir``; return the output path."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    src = Path(src)
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = (dst_dir / f"{src.stem}.{fmt}").resolve()
    if dst == src.resolve():
        raise ValueError(f"conversion would overwrite the source file {src}")
    [res] = run_jobs([{"in": str(src), "out": str(dst), "format": fmt}], timeout=timeout)
    if not res.get("ok"):
        raise RuntimeError(f"LibreOffice conversion of {src} to {fmt} failed: {res.get('error')}")
    return dst
