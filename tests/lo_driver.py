#!/usr/bin/python3
"""Drive a headless LibreOffice Calc through UNO to edit / recalc / convert workbooks.

Runs under Debian's system interpreter (``/usr/bin/python3``) because that is
the only interpreter where ``import uno`` works.  Standard library + uno only.

Usage::

    /usr/bin/python3 lo_driver.py JOB.json

JOB.json::

    {"jobs": [
        {"in": "/abs/in.xlsx",
         "out": "/abs/out.xlsx",            # optional; omit to only set/read
         "format": "xlsx",                  # xlsx | xls | ods | pdf (default: from out's suffix)
         "set": [["评分表", "G5", 1.5],               # number  -> setValue
                 ["评分表", "H5", "text"],            # string  -> setString (a leading "=" stays text)
                 ["评分表", "G6", {"formula": "=1+1"}],  # typed formula -> setFormula
                 ["评分表", "G70", null]],            # null    -> clearContents (truly empty)
         "read": [["评分表", "G80"]],
         "ops": [["insert_rows", "评分表", 9, 1],     # structural edits, after "set", in order:
                 ["remove_rows", "评分表", 9, 1],     #   insert_rows / remove_rows SHEET INDEX COUNT (0-based)
                 ["move_row", "评分表", 9, 20],       #   move_row SHEET FROM TO (as cut + insert);
                                                      #   row edits need the sheet unprotected first
                 ["rename_sheet", "评分表", "Sheet1"], ["remove_sheet", "_identity"],
                 ["add_sheet", "Sheet2"], ["show_sheet", "_identity"],
                 ["unprotect", "评分表", ""], ["set_property", "xa_year", "2025"],
                 ["remove_property", "xa_form"]],
         "invalid": ["评分表"],               # optional: after storing, the cells LibreOffice's own data
                                            #   validation refuses (Tools › Detective › Mark Invalid Data)
         "password": "secret",              # optional: store encrypted with this open password
                                            # (.xlsx: EncryptionData/OOXPassword; "Password" alone does not)
         "timeout": 120}                    # optional per-job watchdog, seconds
    ]}

Typed values in "set": {"formula": "=1/0"} -> setFormula, {"date": "2027-01-05"} -> a date
number (setValue with a date number format), {"bool": true} -> a logical value (TRUE()/FALSE()
result stored as a value with the boolean number format).

Prints exactly ONE JSON object on stdout at the end::

    {"results": [{"ok": true, "read": [{"sheet", "cell", "value", "string",
                                        "formula", "type", "error"}, ...],
                  "out": "/abs/out.xlsx",
                  "invalid": {"评分表": ["G7", ...]}},           # only with "invalid"
                 {"ok": false, "error": "..."}]}

One soffice process serves all jobs.  A failing job is reported and does not
stop the others; if the office process dies (crash or watchdog), it is
restarted for the remaining jobs.  soffice is always terminated and its
temporary profile removed at the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException
from com.sun.star.sheet.CellFlags import DATETIME, FORMULA, STRING, VALUE

CLEAR_FLAGS = VALUE | STRING | FORMULA | DATETIME

FILTERS = {
    "xlsx": "Calc MS Excel 2007 XML",
    "xls": "MS Excel 97",
    "ods": "calc8",
    "fods": "OpenDocument Spreadsheet Flat XML",
    "pdf": "calc_pdf_Export",
}

# Seeded into the throw-away profile.  Document locking is switched off so that
# (a) no ".~lock.NAME#" files are left next to the inputs when soffice is
# killed, and (b) a stale lock file does not make loadComponentFromURL return
# None (headless mode silently aborts the "document in use" interaction).
REGISTRY_XCU = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" \
xmlns:xs="http://www.w3.org/2001/XMLSchema" \
xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Misc">\
<prop oor:name="UseLocking" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc">\
<prop oor:name="UseDocumentOOoLockFile" oor:op="fuse"><value>false</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc">\
<prop oor:name="UseDocumentSystemFileLocking" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"""

CONNECT_TIMEOUT = 30.0
DEFAULT_JOB_TIMEOUT = 120.0


def log(msg):
    sys.stderr.write("[lo_driver] %s\n" % msg)
    sys.stderr.flush()


def prop(name, value):
    p = PropertyValue()
    p.Name = name
    p.Value = value
    return p


def named(name, value):
    from com.sun.star.beans import NamedValue

    return NamedValue(name, value)


def find_soffice():
    found = shutil.which("soffice")
    if found:
        return found
    for cand in ("/usr/lib/libreoffice/program/soffice", "/usr/bin/libreoffice"):
        if os.path.exists(cand):
            return cand
    raise RuntimeError("soffice not found")


class Office(object):
    """One headless soffice process plus a UNO connection to it."""

    def __init__(self):
        self.proc = None
        self.desktop = None
        self.profile = None
        self.pipe = None

    # -- lifecycle -------------------------------------------------------
    def start(self):
        self.profile = "/tmp/lo_profile_%d_%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self.pipe = "lo_driver_%d_%s" % (os.getpid(), uuid.uuid4().hex)
        os.makedirs(os.path.join(self.profile, "user"))
        with open(os.path.join(self.profile, "user", "registrymodifications.xcu"),
                  "w", encoding="utf-8") as fh:
            fh.write(REGISTRY_XCU)
        cmd = [
            find_soffice(),
            "--headless", "--invisible", "--nologo", "--norestore",
            "--nodefault", "--nolockcheck", "--nofirststartwizard",
            "-env:UserInstallation=" + uno.systemPathToFileUrl(self.profile),
            "--accept=pipe,name=%s;urp;StarOffice.ComponentContext" % self.pipe,
        ]
        # Own session/process group: /usr/bin/soffice exec's oosplash which in
        # turn forks soffice.bin, so we kill the whole group on shutdown.
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(), start_new_session=True, close_fds=True)
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", local)
        url = "uno:pipe,name=%s;urp;StarOffice.ComponentContext" % self.pipe
        deadline = time.time() + CONNECT_TIMEOUT
        last = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("soffice exited early with code %s" % self.proc.returncode)
            try:
                ctx = resolver.resolve(url)
                smgr = ctx.ServiceManager
                self.desktop = smgr.createInstanceWithContext(
                    "com.sun.star.frame.Desktop", ctx)
                return
            except NoConnectException as exc:
                last = exc
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("could not connect to soffice within %ss: %s"
                                   % (CONNECT_TIMEOUT, last))
            time.sleep(0.25)

    def kill(self):
        """Hard-kill the office process group (safe to call from any thread)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def stop(self):
        if self.desktop is not None:
            try:
                self.desktop.terminate()
            except Exception:  # bridge usually drops during terminate()
                pass
            self.desktop = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            # oosplash may have exited while soffice.bin lingers: always
            # sweep the process group.
            self.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def alive(self):
        if self.proc is None or self.desktop is None:
            return False
        if self.proc.poll() is not None:
            return False
        try:
            self.desktop.getComponents()
            return True
        except Exception:
            return False


# -- job execution -----------------------------------------------------------

def get_cell(doc, sheet, cell):
    sheets = doc.getSheets()
    if not sheets.hasByName(sheet):
        raise KeyError("no sheet named %r (have: %s)" % (sheet, list(sheets.getElementNames())))
    return sheets.getByName(sheet).getCellRangeByName(cell)


def apply_set(doc, op):
    if len(op) != 3:
        raise ValueError("set op must be [sheet, cell, value]: %r" % (op,))
    sheet, ref, val = op
    cell = get_cell(doc, sheet, ref)
    if val is None:
        cell.clearContents(CLEAR_FLAGS)
    elif isinstance(val, bool):
        cell.setValue(1.0 if val else 0.0)
    elif isinstance(val, (int, float)):
        cell.setValue(float(val))
    elif isinstance(val, str):
        cell.setString(val)
    elif isinstance(val, dict) and "formula" in val:
        cell.setFormula(val["formula"])
    elif isinstance(val, dict) and "date" in val:
        y, m, d = (int(x) for x in val["date"].split("-"))
        cell.setFormula("=DATE(%d;%d;%d)" % (y, m, d))
        serial = cell.getValue()
        cell.setValue(serial)
        cell.NumberFormat = _std_format(doc, "DATE")
    elif isinstance(val, dict) and "bool" in val:
        cell.setValue(1.0 if val["bool"] else 0.0)
        cell.NumberFormat = _std_format(doc, "LOGICAL")
    else:
        raise ValueError("unsupported value in set op: %r" % (op,))


def _std_format(doc, kind):
    from com.sun.star.lang import Locale
    from com.sun.star.util.NumberFormat import DATE, LOGICAL

    return doc.getNumberFormats().getStandardFormat({"DATE": DATE, "LOGICAL": LOGICAL}[kind], Locale())


def apply_op(doc, op):
    """One structural edit, as a person with an unprotected copy (or any non-Excel program) might make."""
    kind, args = op[0], op[1:]
    sheets = doc.getSheets()
    if kind in ("insert_rows", "remove_rows"):
        rows = sheets.getByName(args[0]).getRows()
        (rows.insertByIndex if kind == "insert_rows" else rows.removeByIndex)(int(args[1]), int(args[2]))
    elif kind == "move_row":
        from com.sun.star.table import CellAddress, CellRangeAddress

        sheet = sheets.getByName(args[0])
        idx = sheets.getElementNames().index(args[0])
        src, dst = int(args[1]), int(args[2])
        sheet.getRows().insertByIndex(dst, 1)
        if src >= dst:
            src += 1
        last = sheet.getColumns().getCount() - 1
        sheet.moveRange(CellAddress(idx, 0, dst), CellRangeAddress(idx, 0, src, last, src))
        sheet.getRows().removeByIndex(src, 1)
    elif kind == "rename_sheet":
        sheets.getByName(args[0]).setName(args[1])
    elif kind == "remove_sheet":
        sheets.removeByName(args[0])
    elif kind == "add_sheet":
        sheets.insertNewByName(args[0], sheets.getCount())
    elif kind == "show_sheet":
        sheets.getByName(args[0]).IsVisible = True
    elif kind == "unprotect":
        sheets.getByName(args[0]).unprotect(args[1] if len(args) > 1 else "")
    elif kind == "protect":
        sheets.getByName(args[0]).protect(args[1] if len(args) > 1 else "")
    elif kind in ("set_property", "remove_property"):
        props = doc.getDocumentProperties().getUserDefinedProperties()
        if kind == "remove_property":
            props.removeProperty(args[0])
        elif props.getPropertySetInfo().hasPropertyByName(args[0]):
            props.setPropertyValue(args[0], args[1])
        else:
            props.addProperty(args[0], 0, args[1])
    else:
        raise ValueError("unsupported op: %r" % (op,))


def read_cell(doc, op):
    sheet, ref = op[0], op[1]
    cell = get_cell(doc, sheet, ref)
    ctype = cell.getType()
    return {
        "sheet": sheet,
        "cell": ref,
        "value": cell.getValue(),
        "string": cell.getString(),
        "formula": cell.getFormula(),
        "type": getattr(ctype, "value", str(ctype)),  # EMPTY | VALUE | TEXT | FORMULA
        "error": cell.getError(),  # 0 = no error (e.g. 532 = #DIV/0!)
    }


def a1(row, col):
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return "%s%d" % (letters, row + 1)


def invalid_cells(doc, name):
    """The cells of a sheet that its data validation refuses, as LibreOffice itself judges them: the
    detective's "mark invalid data" circles them. The sheet is unprotected for it (the detective works
    on unprotected sheets only), so call it after the document is stored."""
    sheet = doc.getSheets().getByName(name)
    if sheet.isProtected():
        sheet.unprotect("")
    sheet.showInvalid()
    page = sheet.getDrawPage()
    refs = []
    for i in range(page.getCount()):
        shape = page.getByIndex(i)
        if shape.getShapeType() == "com.sun.star.drawing.EllipseShape":
            address = shape.Anchor.getCellAddress()
            refs.append((address.Row, address.Column))
    sheet.clearArrows()
    return [a1(row, col) for row, col in sorted(set(refs))]


def run_job(office, job):
    src = os.path.abspath(job["in"])
    if not os.path.exists(src):
        raise FileNotFoundError(src)
    out = job.get("out")
    fmt = job.get("format")
    if out:
        out = os.path.abspath(out)
        if not fmt:
            fmt = os.path.splitext(out)[1].lstrip(".").lower()
        if fmt not in FILTERS:
            raise ValueError("unsupported format %r (want one of %s)" % (fmt, sorted(FILTERS)))

    doc = office.desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(src), "_blank", 0, (prop("Hidden", True),))
    if doc is None:
        raise RuntimeError("LibreOffice could not load %s" % src)
    try:
        if not hasattr(doc, "getSheets"):
            raise RuntimeError("%s did not open as a spreadsheet" % src)
        for op in job.get("set") or []:
            apply_set(doc, op)
        for op in job.get("ops") or []:
            apply_op(doc, op)
        doc.calculateAll()
        reads = [read_cell(doc, op) for op in job.get("read") or []]
        if out:
            d = os.path.dirname(out)
            if d and not os.path.isdir(d):
                os.makedirs(d)
            args = [prop("FilterName", FILTERS[fmt]), prop("Overwrite", True)]
            if job.get("password") and fmt == "xlsx":   # the OOXML filter encrypts only with EncryptionData
                args.append(prop("EncryptionData", uno.Any(
                    "[]com.sun.star.beans.NamedValue",
                    (named("OOXPassword", job["password"]), named("CryptoType", "Standard")))))
            elif job.get("password"):
                args.append(prop("Password", job["password"]))
            doc.storeToURL(uno.systemPathToFileUrl(out), tuple(args))
        result = {"ok": True, "read": reads}
        if out:
            result["out"] = out
        if job.get("invalid"):
            result["invalid"] = {name: invalid_cells(doc, name) for name in job["invalid"]}
        return result
    finally:
        try:
            doc.close(True)
        except Exception:
            try:
                doc.dispose()
            except Exception:
                pass


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s JOB.json\n" % argv[0])
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        spec = json.load(fh)
    jobs = spec["jobs"] if isinstance(spec, dict) else spec

    # Turn SIGTERM (e.g. from the parent's timeout handling) into a normal exit
    # so the finally-block below still shuts soffice down.
    def _term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _term)

    results = []
    office = Office()
    try:
        for i, job in enumerate(jobs):
            timer = None
            timed_out = []
            try:
                if not office.alive():
                    if office.proc is not None:
                        log("office not alive, restarting before job %d" % i)
                    office.stop()
                    office.start()
                limit = float(job.get("timeout", DEFAULT_JOB_TIMEOUT))

                def _watchdog():
                    timed_out.append(True)
                    log("job %d exceeded %ss, killing soffice" % (i, limit))
                    office.kill()
                timer = threading.Timer(limit, _watchdog)
                timer.daemon = True
                timer.start()
                results.append(run_job(office, job))
            except Exception as exc:
                msg = "%s: %s" % (type(exc).__name__, exc)
                if timed_out:
                    msg = "timeout after %ss (%s)" % (job.get("timeout", DEFAULT_JOB_TIMEOUT), msg)
                log("job %d failed: %s\n%s" % (i, msg, traceback.format_exc()))
                results.append({"ok": False, "error": msg})
            finally:
                if timer is not None:
                    timer.cancel()
    finally:
        office.stop()
        # Pad results so callers always get one entry per job, even if we
        # were interrupted.
        while len(results) < len(jobs):
            results.append({"ok": False, "error": "not run (driver interrupted)"})
        sys.stdout.write(json.dumps({"results": results}))
        sys.stdout.write("\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
