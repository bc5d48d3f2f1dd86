"""Read a returned file without trusting it: the entry points.

Order of work, cheapest and safest first: size (a file over the limit is not opened), first bytes
(never the extension), the container (`container`: the zip's own directory, a bounded inflate of
every member, no DTD anywhere; Office 97 and OpenDocument in `other_formats`), the XML that holds
structure, read as XML (`ooxml`: workbook, styles, properties, the form's sheets), and only then the
values, with python-calamine in a helper process (`sandbox`) that may die or hang on a damaged file
without taking the run with it. Nothing here executes or saves anything, and nothing raises: every
problem becomes an `Issue` on the `Returned`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .container import (MAX_FILE_BYTES, MAX_XML_BYTES, OLE_MAGIC, ZIP_ERRORS, ZIP_MAGIC, Parts,
                        foreign_kind, human_size, member_key, zip_reason)
from .issues import Code, Issue, Refused, issue
from .layout import READ_SHEETS
from .ooxml import (SHEET_DATA_MARK, Book, SheetXml, check_shared_strings, check_xml, custom_properties,
                    plain_parts, read_book, saved_time, scan_sheet, sheet_extent, unlocked_styles)
from .other_formats import read_ods, read_ole, refuse_flat_ods
from .sandbox import Pending, begin_read, check_size, read_values

__all__ = ["MAX_FILE_BYTES", "ZIP_MAGIC", "Returned", "SheetXml", "cancel_returned", "finish_returned", "human_size",
           "read_returned", "start_returned", "zip_reason"]


@dataclass
class Returned:
    """One returned file as read: values always (when readable), structure where the format has it."""

    path: Path
    name: str                      # how the office knows the file (path, or archive › member)
    sha256: str = ""
    size: int = 0
    format: str = ""               # xlsx | xlsm | xls | ods | "" when unreadable
    sheets: dict[str, str] = field(default_factory=dict)                  # name -> visible|hidden|veryhidden
    values: dict[str, list[list[Any]]] = field(default_factory=dict)      # sheet -> rows of values
    properties: dict[str, str] = field(default_factory=dict)              # custom document properties
    saved: dt.datetime | None = None                                      # when last saved, by the file
    mtime: dt.datetime | None = None                                      # file system time
    xml: dict[str, SheetXml] | None = None                                # None: the format has no structure
    unlocked_styles: frozenset[int] = frozenset()                         # cellXfs indexes that unlock a cell
    active: list[str] = field(default_factory=list)                       # active content found
    issues: list[Issue] = field(default_factory=list)
    pending: Pending | None = field(default=None, repr=False)           # values the helper is reading
    listed: tuple[str, ...] | None = field(default=None, repr=False)      # sheet names the workbook lists
    strings_plain: bool = field(default=True, repr=False)                 # shared strings written the plain way

    @property
    def readable(self) -> bool:
        return bool(self.sheets)

    def value(self, sheet: str, row: int, col: int) -> Any:
        rows = self.values.get(sheet, [])
        if row < len(rows) and col < len(rows[row]):
            return rows[row][col]
        return ""

    def is_locked(self, sheet: str, ref: str) -> bool | None:
        """Whether the cell is locked by its style; None where the format does not say."""
        if self.xml is None or sheet not in self.xml:
            return None
        return ref not in self.xml[sheet].unlocked

    def add(self, code: str, **fields) -> None:
        self.issues.append(issue(code, file=self.name, **fields))


def read_returned(path: str | Path, name: str | None = None, data: bytes | None = None,
                  mtime: dt.datetime | None = None) -> Returned:
    """Read a file from disk, or bytes already taken from an archive (`data`)."""
    return finish_returned(start_returned(path, name, data, mtime))


def start_returned(path: str | Path, name: str | None = None, data: bytes | None = None,
                   mtime: dt.datetime | None = None) -> Returned:
    """`read_returned` up to the values, which the helper reads meanwhile: call `finish_returned` next.

    Starting the next file before finishing this one lets the helper read while this process checks."""
    path = Path(path)
    ret = Returned(path, name or path.name, mtime=mtime)
    with _verdict(ret):
        if data is None:
            data = _read_file(ret, path)
        ret.size = len(data)
        ret.sha256 = hashlib.sha256(data).hexdigest()
        if not data:
            raise Refused(Code.FILE_EMPTY)
        if len(data) > MAX_FILE_BYTES:
            raise Refused(Code.FILE_TOO_LARGE, value=human_size(len(data)), limit=human_size(MAX_FILE_BYTES))
        if data[:4] in ZIP_MAGIC:
            _read_zip(ret, data)
        elif data[:8] == OLE_MAGIC:
            read_ole(ret, data, _read_values)
        else:
            refuse_flat_ods(data)
            raise Refused(Code.NOT_A_WORKBOOK, detail=foreign_kind(data))
        if ret.pending is None and not ret.sheets:
            raise Refused(Code.DAMAGED, detail="工作簿中没有工作表")
    return ret


def finish_returned(ret: Returned) -> Returned:
    """Take the values from the helper into a started `Returned` (nothing to do if it has them)."""
    pending, ret.pending = ret.pending, None
    if pending is not None:
        with _verdict(ret):
            sheets, values = pending.result()
            ret.sheets.update(sheets)
            ret.values.update(values)
            _after_values(ret)
            if not ret.sheets:
                raise Refused(Code.DAMAGED, detail="工作簿中没有工作表")
    return ret


def cancel_returned(ret: Returned) -> None:
    """Drop a started `Returned` that will not be finished (its read is dropped from the helper's queue)."""
    if ret.pending is not None:
        ret.pending.cancel()
        ret.pending = None


@contextmanager
def _verdict(ret: Returned) -> Iterator[None]:
    """Whatever goes wrong while reading becomes the file's verdict, never an exception."""
    try:
        yield
    except Refused as stop:
        cancel_returned(ret)
        _refuse(ret, stop.code, **stop.fields)
    except MemoryError:
        cancel_returned(ret)
        _refuse(ret, Code.DECOMPRESSION_BOMB, detail="读取时内存不足")
    except Exception as exc:      # a reader library choking on a malformed file: still only a verdict
        cancel_returned(ret)
        _refuse(ret, Code.DAMAGED, detail=f"{type(exc).__name__}: {exc}"[:120])


def _refuse(ret: Returned, code: str, **fields) -> None:
    ret.values.clear()
    ret.sheets.clear()
    ret.format = ""
    ret.xml = None
    ret.issues = [i for i in ret.issues if i.code.startswith("F")]     # what the structure scan said no longer counts
    ret.add(code, **fields)


def _read_file(ret: Returned, path: Path) -> bytes:
    """The file's bytes, read only if it is a regular file within the size limit."""
    try:
        st = path.stat()
        ret.mtime = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(Code.FILE_UNREADABLE, detail="不是普通文件")
        if st.st_size > MAX_FILE_BYTES:
            ret.size = st.st_size
            raise Refused(Code.FILE_TOO_LARGE, value=human_size(st.st_size), limit=human_size(MAX_FILE_BYTES))
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)        # the file may grow between stat and read
    except OSError as exc:
        raise Refused(Code.FILE_UNREADABLE, detail=exc.strerror or str(exc)) from None


# -- zip containers (xlsx, xlsm, ods, ...) ----------------------------------------------------------

def _read_zip(ret: Returned, data: bytes) -> None:
    pending = None
    try:
        parts = Parts(data)
        parts.check_directory()
        if parts.has("xl/workbook.bin"):
            raise Refused(Code.UNSUPPORTED_FORMAT, detail="Excel 二进制工作簿 .xlsb")
        mimetype = parts.get("mimetype")
        if mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
            read_ods(ret, parts)
        elif parts.has("xl/workbook.xml"):
            book = _read_ooxml(ret, parts)
            plain = plain_parts(parts, book, ret.xml or {}, ret.strings_plain)
            given = parts.replaced(plain) if plain else data      # what python-calamine reads as the tree says
            if parts.total_declared() <= MAX_XML_BYTES:           # the helper reads while this process goes on
                pending = begin_read(given, guard=lambda: check_worksheets(given))
            parts.sweep()
            data = given
        elif parts.has("word/document.xml"):
            raise Refused(Code.NOT_A_WORKBOOK, detail="Word 文档")
        elif any(n.startswith("ppt/") for n in parts.keys):
            raise Refused(Code.NOT_A_WORKBOOK, detail="PowerPoint 演示文稿")
        elif mimetype.startswith(b"application/vnd.oasis.opendocument"):
            raise Refused(Code.NOT_A_WORKBOOK, detail="OpenDocument 文档（非表格）")
        else:
            raise Refused(Code.NOT_A_WORKBOOK, detail="压缩包（zip），不是工作簿")
    except ZIP_ERRORS as exc:
        if pending is not None:
            pending.cancel()
        raise Refused(Code.DAMAGED, detail=zip_reason(exc)) from None
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    if pending is not None:
        ret.pending = pending                    # the values are taken in `finish_returned`
    else:
        if ret.format in ("xlsx", "xlsm"):
            check_worksheets(data)
        _read_values(ret, data)
        _after_values(ret)


def _after_values(ret: Returned) -> None:
    if ret.listed is not None and list(ret.sheets) != list(dict.fromkeys(ret.listed)):
        raise Refused(Code.DAMAGED, detail="工作表列表与读取结果不一致")
    _show_errors(ret)
    if ret.active:
        ret.add(Code.ACTIVE_CONTENT, detail="、".join(ret.active))
    if ret.format == "ods":
        ret.add(Code.OLD_FORMAT, detail="OpenDocument（.ods）")


def _read_ooxml(ret: Returned, parts: Parts) -> Book:
    """Structure of the sheets the checks read, and the located problems of how they are written."""
    types = parts.get("[Content_Types].xml")
    if types:
        check_xml("[Content_Types].xml", types)
    ret.format = "xlsm" if b"macroEnabled" in types else "xlsx"
    book = read_book(parts)
    ret.listed = tuple(s.name for s in book.sheets)
    strings = book.folder + "sharedStrings.xml"
    ret.strings_plain = check_shared_strings(strings, parts.get(strings))
    for prefix, what in (("xl/vbaproject", "宏（VBA）"), ("xl/externallinks/", "外部链接"),
                         ("xl/embeddings/", "嵌入对象"), ("xl/activex/", "ActiveX 控件")):
        if any(n.startswith(prefix) for n in parts.keys):
            ret.active.append(what)
    styles = book.folder + "styles.xml"
    ret.unlocked_styles = unlocked_styles(styles, parts.get(styles))
    ret.xml = {}
    for code, sheet, value in book.problems:
        ret.add(code, sheet=sheet, value=value)
    for name in READ_SHEETS:
        listed = book.first(name)
        if listed is None:
            continue
        if not parts.has(listed.part):
            raise Refused(Code.DAMAGED, detail=f"找不到工作表“{name}”的内容")
        found = ret.xml[name] = scan_sheet(listed.part, parts.get(listed.part), ret.unlocked_styles)
        for code, cell in found.problems:
            ret.add(code, sheet=name, cell=cell, value=cell.partition(":")[0])
    ret.properties = custom_properties("docProps/custom.xml", parts.get("docProps/custom.xml"))
    ret.saved = saved_time("docProps/core.xml", parts.get("docProps/core.xml"))
    return book


def check_worksheets(data: bytes) -> None:
    """Refuse (F114) an .xlsx with a worksheet too big to hold, whichever part a reader takes it from.

    Asked only where python-calamine would run in this process (no helper) or where the helper died
    on the file: otherwise the helper measures what it read (`sandbox`), and that is what counts."""
    parts = Parts(data)
    names = {s.part: s.name for s in read_book(parts).sheets}

    def bound(part: str, xml: bytes) -> None:
        if b"sheetData" in xml and SHEET_DATA_MARK.search(xml):
            check_size(names.get(member_key(part), part), *sheet_extent(xml))

    parts.sweep(bound)


def _show_errors(ret: Returned) -> None:
    """Put error values (#DIV/0!, #REF!, ...) where python-calamine left an empty string."""
    for sheet, sx in (ret.xml or {}).items():
        rows = ret.values.get(sheet, [])
        for (r, c), text in sx.errors.items():
            if r < len(rows) and c < len(rows[r]) and rows[r][c] == "":
                rows[r][c] = text


# -- values ------------------------------------------------------------------------------------------

def _read_values(ret: Returned, data: bytes) -> None:
    """Values of the sheets the checks read, with python-calamine (formulas' cached results).

    python-calamine runs in a helper process: some damaged files make it abort (a failed allocation
    ends the process, and no `except` can catch that). Then only the helper dies, and this file is
    reported damaged; the helper is started again for the next file.
    """
    sheets, values = read_values(data)
    ret.sheets.update(sheets)
    ret.values.update(values)
