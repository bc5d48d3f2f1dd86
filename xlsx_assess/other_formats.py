"""Office 97 (.xls) and OpenDocument (.ods): the formats read for their values only (F110).

What must be known before python-calamine reads them: encryption, WPS's own format, macros, and how
far every sheet reaches (python-calamine allocates the whole rectangle from A1), all from the bytes.
A flat OpenDocument spreadsheet (.fods, one XML file) is known by its content and refused (F109):
python-calamine does not read it.
"""

from __future__ import annotations

import html
import re
import struct
from typing import TYPE_CHECKING, Callable

from .container import Parts
from .issues import Code, Refused
from .ole import OleFile, biff_extents
from .sandbox import check_sizes

if TYPE_CHECKING:
    from .reader import Returned


def read_ole(ret: "Returned", data: bytes, read_values: Callable[["Returned", bytes], None]) -> None:
    """An Office 97 compound file: an .xls is read (values only), anything else refused with its reason."""
    try:
        ole = OleFile(data)
    except (ValueError, IndexError, struct.error) as exc:
        raise Refused(Code.DAMAGED, detail=f"Office 旧格式文件结构有误（{exc}）") from None
    names = ole.names
    suffix = ret.name.lower().rsplit(".", 1)[-1]
    if {"EncryptionInfo", "EncryptedPackage"} & names:
        raise Refused(Code.PASSWORD_PROTECTED)
    if suffix in ("et", "ett"):
        raise Refused(Code.UNSUPPORTED_FORMAT, detail="WPS 表格 .et/.ett")
    book = next((n for n in ("Workbook", "Book") if n in names), None)
    if book is None:
        if "WordDocument" in names:
            raise Refused(Code.NOT_A_WORKBOOK, detail="Word 97-2003 文档")
        if "PowerPoint Document" in names:
            raise Refused(Code.NOT_A_WORKBOOK, detail="PowerPoint 97-2003 演示文稿")
        raise Refused(Code.UNSUPPORTED_FORMAT, detail="无法识别的 Office 旧格式")
    try:
        encrypted, extents = biff_extents(ole.stream(book))
    except (ValueError, IndexError, struct.error) as exc:
        raise Refused(Code.DAMAGED, detail=f"Excel 97-2003 文件结构有误（{exc}）") from None
    if encrypted:
        raise Refused(Code.PASSWORD_PROTECTED)
    check_sizes(extents)                         # every sheet is read at once
    ret.format = "xls"
    read_values(ret, data)
    if {"_VBA_PROJECT_CUR", "_VBA_PROJECT", "VBA"} & names:
        ret.active.append("宏（VBA）")
        ret.add(Code.ACTIVE_CONTENT, detail="宏（VBA）")
    ret.add(Code.OLD_FORMAT, detail="Excel 97-2003（.xls）")


FLAT_ODF_HEAD = 64 << 10           # LibreOffice declares some 40 namespaces before the mimetype (~2 KB)
_FLAT_ODF = re.compile(rb'<office:document\b[^<>]*?\soffice:mimetype\s*=\s*["\']application/vnd\.oasis\.opendocument\.'
                       rb'([a-z-]+)["\']')


def flat_opendocument(data: bytes) -> str:
    """What a flat (single XML file) OpenDocument holds ("spreadsheet", "text", ...), "" if it is none."""
    head = data[:FLAT_ODF_HEAD].lstrip(b"\xef\xbb\xbf").lstrip()
    m = _FLAT_ODF.search(head) if head[:1] == b"<" else None
    return m.group(1).decode("ascii") if m else ""


def refuse_flat_ods(data: bytes) -> None:
    if flat_opendocument(data) == "spreadsheet":
        raise Refused(Code.UNSUPPORTED_FORMAT, detail="LibreOffice 单文件 XML 表格 .fods")


def read_ods(ret: "Returned", parts: Parts) -> None:
    ret.format = "ods"
    if any(n.startswith("basic/") and not n.endswith("/") for n in parts.keys):
        ret.active.append("宏（Basic）")
    check_sizes(ods_extents(parts.get("content.xml")))      # every table is read at once
    parts.sweep()


_ODS_TOKEN = re.compile(rb"<(/?)table:(table-row|table-cell|covered-table-cell|table)(?=[\s/>])([^<>]*?)(/?)>")
_ATTR = re.compile(r'(?<![\w:.-])([\w:.-]++)\s*+=\s*+"([^"]*+)"')


def ods_extents(xml: bytes) -> dict[str, tuple[int, int]]:
    """Every table's (rows, cols) up to its farthest non-empty cell, repeats included."""
    out: dict[str, tuple[int, int]] = {}
    name, row, col, repeat, rows, cols = "", 0, 0, 1, 0, 0
    pending = None                               # an open cell without a value type: (end of its tag, col, span)
    for m in _ODS_TOKEN.finditer(xml):
        closing, kind, raw, empty = m.group(1), m.group(2), m.group(3), m.group(4)
        if pending is not None:
            if xml.find(b"<text:", pending[0], m.start()) >= 0:
                rows, cols = max(rows, row + repeat), max(cols, pending[1] + pending[2])
            pending = None
        if kind == b"table":
            if closing:
                out[name] = (rows, cols)
            elif not empty:
                name, row, rows, cols = _attrs(raw).get("name", ""), 0, 0, 0
        elif kind == b"table-row":
            if closing:
                row += repeat
            else:
                repeat, col = _repeat(raw, "number-rows-repeated"), 0
                if empty:
                    row += repeat
        elif not closing:
            span = _repeat(raw, "number-columns-repeated")
            if b"value-type" in raw:
                rows, cols = max(rows, row + repeat), max(cols, col + span)
            elif not empty:
                pending = (m.end(), col, span)
            col += span
    if name not in out and (rows or cols):      # a table left open: a reader may still take it
        out[name] = (rows, cols)
    return out


def _attrs(raw: bytes) -> dict[str, str]:
    return {k.split(":")[-1]: html.unescape(v) for k, v in _ATTR.findall(raw.decode("utf-8", "replace"))}


def _repeat(raw: bytes, key: str) -> int:
    value = _attrs(raw).get(key, "1")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 12 else 1
