"""Read a returned file without trusting it.

Order of work, cheapest and safest first: size (a file over the limit is not opened), first bytes
(never the extension), the container's own directory (zip: member count, declared sizes, ratios and
sizes that lie; Office 97: its streams, encryption), a bounded streaming inflate of every member
(actual sizes, DTDs and entities in UTF-8 or UTF-16), a linear-time scan of the XML that holds
structure (workbook, styles, properties, sheets) and of how far every sheet reaches, and only then
the values, with python-calamine in a helper process (`sandbox`) that may die or hang on a damaged
file without taking the run with it. Nothing here executes or saves anything, and nothing raises:
every problem becomes an `Issue` on the `Returned`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import html
import io
import re
import stat
import struct
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Callable, Iterator

from .issues import Issue, Refused, issue
from .ole import OleFile, biff_extents
from .sandbox import Pending, begin_read, check_size, check_sizes, read_values
from .layout import SHEETS, a1, col_index, position

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_MEMBER_BYTES = 50 * 1024 * 1024       # one inflated part that is only streamed (a picture, an embedded file)
MAX_XML_BYTES = 10 * 1024 * 1024          # one inflated part that gets parsed (sheets, shared strings, workbook, ...)
MAX_TOTAL_BYTES = 100 * 1024 * 1024       # all parts inflated
MAX_RATIO = 200                           # inflated / compressed, for parts over 1 MB
MAX_MEMBERS = 2000
CHUNK = 1 << 16
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
XML_SUFFIXES = (".xml", ".rels", ".vml")
# A DTD (and so any entity) in any part, in UTF-8 or UTF-16 either way round.
_DTD = re.compile(b"|".join(re.escape(m) for w in (b"<!DOCTYPE", b"<!ENTITY") for m in (
    w, w.decode().encode("utf-16-le"), w.decode().encode("utf-16-be"))))
_DTD_TAIL = 20                            # bytes kept between chunks so a marker split across two is still seen
_DTD_HINT = b"!"                              # in every marker above; rare in XML, so most parts skip the pattern

# What other files look like, by their first bytes (shown to the office in F103).
FOREIGN_MAGIC = (
    (b"%PDF", "PDF 文件"),
    (b"\x89PNG", "PNG 图片"),
    (b"\xff\xd8\xff", "JPEG 图片"),
    (b"GIF8", "GIF 图片"),
    (b"BM", "BMP 图片"),
    (b"Rar!", "RAR 压缩包"),
    (b"7z\xbc\xaf", "7z 压缩包"),
    (b"\x1f\x8b", "gzip 压缩包"),
    (b"{\\rtf", "RTF 文档"),
    (b"RIFF", "音视频文件"),
)


@dataclass
class SheetXml:
    """What the raw XML of one worksheet says beyond its values."""

    formulas: dict[str, str] = field(default_factory=dict)     # A1 -> formula text ('' if shared)
    unlocked: set[str] = field(default_factory=set)            # A1 of the cells whose style is unlocked
    protected: bool = False
    validations: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)  # (type, box)
    errors: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, col) -> '#DIV/0!' (calamine gives '')
    covered: frozenset[tuple[int, int]] = frozenset()   # (row, col) of the validated cells, up to a limit

    def validated(self, row: int, col: int) -> bool:
        return (row, col) in self.covered or any(r1 <= row <= r2 and c1 <= col <= c2
                                                 for _, (r1, c1, r2, c2) in self.validations)

    def unvalidated(self, cells: AbstractSet[tuple[int, int]]) -> set[tuple[int, int]]:
        """The (row, col) among `cells` that no validation rule covers."""
        return {cell for cell in cells - self.covered if not self.validated(*cell)}


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
    pending: Pending | None = field(default=None, repr=False)             # values the helper is reading

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
            raise Refused("F102")
        if len(data) > MAX_FILE_BYTES:
            raise Refused("F106", value=human_size(len(data)), limit=human_size(MAX_FILE_BYTES))
        if data[:4] in ZIP_MAGIC:
            _read_zip(ret, data)
        elif data[:8] == OLE_MAGIC:
            _read_ole(ret, data)
        else:
            raise Refused("F103", detail=_foreign_kind(data))
        if ret.pending is None and not ret.sheets:
            raise Refused("F104", detail="工作簿中没有工作表")
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
                raise Refused("F104", detail="工作簿中没有工作表")
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
        _refuse(ret, "F107", detail="读取时内存不足")
    except Exception as exc:      # a reader library choking on a malformed file: still only a verdict
        cancel_returned(ret)
        _refuse(ret, "F104", detail=f"{type(exc).__name__}: {exc}"[:120])


def _refuse(ret: Returned, code: str, **fields) -> None:
    ret.values.clear()
    ret.sheets.clear()
    ret.format = ""
    ret.xml = None
    ret.add(code, **fields)


def _read_file(ret: Returned, path: Path) -> bytes:
    """The file's bytes, read only if it is a regular file within the size limit."""
    try:
        st = path.stat()
        ret.mtime = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("F101", detail="不是普通文件")
        if st.st_size > MAX_FILE_BYTES:
            ret.size = st.st_size
            raise Refused("F106", value=human_size(st.st_size), limit=human_size(MAX_FILE_BYTES))
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)        # the file may grow between stat and read
    except OSError as exc:
        raise Refused("F101", detail=exc.strerror or str(exc)) from None


# -- zip containers (xlsx, xlsm, ods, ...) ----------------------------------------------------------

ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
              zlib.error, struct.error)


class _Parts:
    """The members of a zip, inflated at most once each with hard limits, and kept only when asked."""

    def __init__(self, data: bytes):
        self.data = data
        self.zf = zipfile.ZipFile(io.BytesIO(data))
        self.entries = [i for i in self.zf.infolist() if not i.is_dir()]
        self.infos = {i.filename: i for i in self.entries}
        self.kept: dict[str, bytes] = {}
        self.seen: set[int] = set()
        self.total = 0

    @property
    def names(self) -> set[str]:
        return set(self.infos)

    def total_declared(self) -> int:
        return sum(i.file_size for i in self.entries)

    def check_directory(self) -> None:
        """Refuse what the zip's own directory gives away: too many parts, sizes that are too big or lie."""
        if len(self.entries) > MAX_MEMBERS:
            raise Refused("F107", detail=f"{len(self.entries)} 个部件")
        if len(self.infos) != len(self.entries):
            raise Refused("F104", detail="压缩包内有重名的部件")
        if any(i.flag_bits & 0x1 for i in self.entries):     # zip-level encryption (e.g. 7-Zip with a password)
            raise Refused("F105")
        declared = sum(i.file_size for i in self.entries)
        if declared > MAX_TOTAL_BYTES:
            raise Refused("F107", detail=f"声明解压后 {human_size(declared)}")
        for i in self.entries:
            limit = MAX_XML_BYTES if i.filename.lower().endswith(XML_SUFFIXES) else MAX_MEMBER_BYTES
            if i.file_size > limit or (i.file_size > 1 << 20 and i.file_size > MAX_RATIO * max(i.compress_size, 1)):
                raise Refused("F107", detail=f"{i.filename} 解压后 {human_size(i.file_size)}")
            stored = i.compress_type == zipfile.ZIP_STORED and i.compress_size != i.file_size
            if stored or i.compress_size > i.file_size + i.file_size // 100 + 1024:
                raise Refused("F107", detail=f"{i.filename} 声明解压后只有 {human_size(i.file_size)}，"
                                              f"压缩数据却有 {human_size(i.compress_size)}")

    def get(self, name: str) -> bytes:
        """A member's bytes (b'' if absent), inflated and checked once, then kept."""
        if name not in self.kept:
            info = self.infos.get(name)
            self.kept[name] = self._inflate(info, keep=True) if info is not None else b""
        return self.kept[name]

    def sweep(self, look: Callable[[str, bytes], None] | None = None) -> None:
        """Inflate every member not read yet (bounded, no DTD); `look` sees each XML part before it is dropped."""
        for info in self.entries:
            if id(info) in self.seen:
                continue
            xml = info.filename.lower().endswith(XML_SUFFIXES)
            blob = self._inflate(info, keep=bool(look and xml))
            if look and xml:
                look(info.filename, blob)

    def _inflate(self, info: zipfile.ZipInfo, keep: bool) -> bytes:
        """One member through the limits; its bytes if `keep` (kept parts get parsed: XML limit)."""
        self.seen.add(id(info))
        if info.file_size > MEMO_MEMBER_BYTES or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return self._stream(info, keep)
        raw = self._raw(info)
        key = (info.compress_type, info.file_size, info.CRC, raw)
        blob = _INFLATED.get(key)
        if blob is None:
            blob = _inflate_small(info, raw)
            _INFLATED.put(key, blob)
        self.total += len(blob)
        if self.total > MAX_TOTAL_BYTES:
            raise Refused("F107", detail=f"{info.filename} 实际解压超过上限")
        return blob if keep else b""

    def _raw(self, info: zipfile.ZipInfo) -> bytes:
        """A member's compressed bytes, found through its local header as `zipfile` (and calamine) find them."""
        at = info.header_offset
        head = self.data[at:at + 30]
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile("Bad magic number for file header")
        flags, name_len, extra_len = struct.unpack("<H18xHH", head[6:30])
        name = self.data[at + 30:at + 30 + name_len].decode("utf-8" if flags & 0x800 else "cp437", "replace")
        if name != info.orig_filename:
            raise zipfile.BadZipFile(f"File name in directory {info.orig_filename!r} and header {name!r} differ.")
        start = at + 30 + name_len + extra_len
        raw = self.data[start:start + info.compress_size]
        if len(raw) < info.compress_size:
            raise EOFError
        return raw

    def _stream(self, info: zipfile.ZipInfo, keep: bool) -> bytes:
        """A big (or unusually compressed) member, streamed through the limits in chunks."""
        xml = keep or info.filename.lower().endswith(XML_SUFFIXES)
        limit = MAX_XML_BYTES if xml else MAX_MEMBER_BYTES
        chunks, size, tail = [], 0, b""
        with self.zf.open(info) as fh:           # zipfile stops at the declared size and checks the CRC
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                self.total += len(chunk)
                if size > limit or self.total > MAX_TOTAL_BYTES:
                    raise Refused("F107", detail=f"{info.filename} 实际解压超过上限")
                seen = tail + chunk
                if _DTD_HINT in seen and _DTD.search(seen):
                    raise Refused("F108")
                tail = chunk[-_DTD_TAIL:]
                if keep:
                    chunks.append(chunk)
        return b"".join(chunks)


def _inflate_small(info: zipfile.ZipInfo, raw: bytes) -> bytes:
    """A small member in one piece: exactly its declared size, its CRC, no DTD (raises as `zipfile` does)."""
    if info.compress_type == zipfile.ZIP_STORED:
        blob = raw
    else:
        inflater = zlib.decompressobj(-15)
        blob = inflater.decompress(raw, info.file_size + 1)
    if len(blob) != info.file_size or zlib.crc32(blob) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    if _DTD_HINT in blob and _DTD.search(blob):
        raise Refused("F108")
    return blob


class _Memo:
    """Results of pure functions of part bytes, kept for the parts that repeat across a batch (styles,
    theme, the guide sheet, validation rules: the same bytes in every file a program saved)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.found: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        value = self.found.pop(key, None)          # the least recently used goes first
        if value is not None:
            self.found[key] = value
        return value

    def put(self, key: Any, value: Any) -> None:
        if len(self.found) >= self.size:
            self.found.pop(next(iter(self.found)))
        self.found[key] = value


MEMO_MEMBER_BYTES = 256 << 10        # members up to this size are inflated in one piece and remembered (64 of
                                     # them kept: at most 32 MB, whatever the batch)
_INFLATED = _Memo(64)                # (method, size, crc, compressed bytes) -> inflated bytes


def _read_zip(ret: Returned, data: bytes) -> None:
    pending = None
    try:
        parts = _Parts(data)
        parts.check_directory()
        names = parts.names
        if "xl/workbook.bin" in names:
            raise Refused("F109", detail="Excel 二进制工作簿 .xlsb")
        mimetype = parts.get("mimetype") if "mimetype" in names else b""
        if mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
            _read_ods(ret, parts)
        elif "xl/workbook.xml" in names:
            if parts.total_declared() <= MAX_XML_BYTES:   # the helper reads while this process scans
                pending = begin_read(data, guard=lambda: _check_worksheets(data))
            _read_ooxml(ret, parts)
        elif "word/document.xml" in names:
            raise Refused("F103", detail="Word 文档")
        elif any(n.startswith("ppt/") for n in names):
            raise Refused("F103", detail="PowerPoint 演示文稿")
        elif mimetype.startswith(b"application/vnd.oasis.opendocument"):
            raise Refused("F103", detail="OpenDocument 文档（非表格）")
        else:
            raise Refused("F103", detail="压缩包（zip），不是工作簿")
    except ZIP_ERRORS as exc:
        if pending is not None:
            pending.cancel()
        raise Refused("F104", detail=zip_reason(exc)) from None
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    if pending is not None:
        ret.pending = pending                    # the values are taken in `finish_returned`
    else:
        if ret.format in ("xlsx", "xlsm"):
            _check_worksheets(data)
        _read_values(ret, data)
        _after_values(ret)


def _after_values(ret: Returned) -> None:
    _show_errors(ret)
    if ret.active:
        ret.add("F111", detail="、".join(ret.active))
    if ret.format == "ods":
        ret.add("F110", detail="OpenDocument（.ods）")


def _read_ooxml(ret: Returned, parts: _Parts) -> None:
    ret.format = "xlsm" if b"macroEnabled" in parts.get("[Content_Types].xml") else "xlsx"
    _check_shared_strings(parts.get("xl/sharedStrings.xml"))
    _scan_ooxml(ret, parts)
    parts.sweep()


def _check_worksheets(data: bytes) -> None:
    """Refuse (F114) an .xlsx with a worksheet too big to hold, whichever part a reader takes it from.

    Asked only where python-calamine would run in this process (no helper) or where the helper died
    on the file: otherwise the helper measures what it read (`sandbox`), and that is what counts."""
    parts = _Parts(data)
    names = {part: name for name, part in _sheet_parts(parts)}

    def bound(part: str, xml: bytes) -> None:
        if b"sheetData" in xml and _SHEET_DATA.search(xml):
            check_size(names.get(part, part), *_sheet_extent(xml))

    parts.sweep(bound)


def _check_shared_strings(xml: bytes) -> None:
    """python-calamine reserves room for `uniqueCount` strings up front: a lie there aborts the process."""
    m = _SST.search(xml)
    declared = _attr(b"uniqueCount", m.group(1)) if m else None
    if declared is not None and not (declared.isascii() and declared.isdigit() and (
            int(declared) <= xml.count(b"<si>") or int(declared) <= len(_SI.findall(xml)))):   # the first: a quick lower bound
        raise Refused("F104", detail=f"共享字符串表声明有 {declared[:20]} 项，与实际不符")


def _read_ods(ret: Returned, parts: _Parts) -> None:
    ret.format = "ods"
    if any(n.startswith("Basic/") and not n.endswith("/") for n in parts.names):
        ret.active.append("宏（Basic）")
    check_sizes(_ods_extents(parts.get("content.xml")))        # every table is read at once
    parts.sweep()


def _show_errors(ret: Returned) -> None:
    """Put error values (#DIV/0!, #REF!, ...) where python-calamine left an empty string."""
    for sheet, sx in (ret.xml or {}).items():
        rows = ret.values.get(sheet, [])
        for (r, c), text in sx.errors.items():
            if r < len(rows) and c < len(rows[r]) and rows[r][c] == "":
                rows[r][c] = text


# -- OLE containers (xls, encrypted OOXML, WPS) ------------------------------------------------------

def _read_ole(ret: Returned, data: bytes) -> None:
    try:
        ole = OleFile(data)
    except (ValueError, IndexError, struct.error) as exc:
        raise Refused("F104", detail=f"Office 旧格式文件结构有误（{exc}）") from None
    names = ole.names
    suffix = ret.name.lower().rsplit(".", 1)[-1]
    if {"EncryptionInfo", "EncryptedPackage"} & names:
        raise Refused("F105")
    if suffix in ("et", "ett"):
        raise Refused("F109", detail="WPS 表格 .et/.ett")
    book = next((n for n in ("Workbook", "Book") if n in names), None)
    if book is None:
        if "WordDocument" in names:
            raise Refused("F103", detail="Word 97-2003 文档")
        if "PowerPoint Document" in names:
            raise Refused("F103", detail="PowerPoint 97-2003 演示文稿")
        raise Refused("F109", detail="无法识别的 Office 旧格式")
    try:
        encrypted, extents = biff_extents(ole.stream(book))
    except (ValueError, IndexError, struct.error) as exc:
        raise Refused("F104", detail=f"Excel 97-2003 文件结构有误（{exc}）") from None
    if encrypted:
        raise Refused("F105")
    check_sizes(extents)                         # every sheet is read at once
    ret.format = "xls"
    _read_values(ret, data)
    if {"_VBA_PROJECT_CUR", "_VBA_PROJECT", "VBA"} & names:
        ret.active.append("宏（VBA）")
        ret.add("F111", detail="宏（VBA）")
    ret.add("F110", detail="Excel 97-2003（.xls）")


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


# -- OOXML structure ------------------------------------------------------------------------------
# Linear-time patterns only: attribute runs stop at '<' or '>', bodies are possessive and may not
# contain the start of another element of their own kind, so hostile XML cannot make them backtrack.

_ATTR = re.compile(r'(?<![\w:.-])([\w:.-]++)\s*+=\s*+"([^"]*+)"')
_SHEET = re.compile(rb"<(?:\w+:)?sheet\b([^<>]*)>")
_REL = re.compile(rb"<(?:\w+:)?Relationship\b([^<>]*)>")
_ROW_OR_CELL = re.compile(    # groups: row attributes | cell r (when it comes first, as all writers put it), attributes, body
    rb"<(?:\w+:)?(?:row\b([^<>]*)>|c\b(?:\s+r=\"([A-Za-z]{1,3}[1-9][0-9]{0,6})\")?([^<>]*?)"
    rb"(?:/>|>((?:[^<]++|<(?!/?(?:\w+:)?c\b))*+)</(?:\w+:)?c>))")
_FORMULA = re.compile(rb"<(?:\w+:)?f\b[^<>]*?(?:/>|>([^<]*+)</(?:\w+:)?f>)")
_VALUE = re.compile(rb"<(?:\w+:)?(?:v|is)\b")
_V_TEXT = re.compile(rb"<(?:\w+:)?v\b[^<>]*>([^<]*+)</")
_SHEET_DATA = re.compile(rb"<(?:\w+:)?sheetData\b")
_SST = re.compile(rb"<(?:\w+:)?sst\b([^<>]*)>")
_SI = re.compile(rb"<(?:\w+:)?si\b")
_PROTECTION = re.compile(rb"<(?:\w+:)?sheetProtection\b([^<>]*)>")
_VALIDATION = re.compile(rb"<(?:\w+:)?dataValidation\b([^<>]*?)(?:/>|>((?:[^<]++|<(?!/?(?:\w+:)?dataValidation\b))*+)"
                         rb"</(?:\w+:)?dataValidation>)")
_SQREF = re.compile(rb"<xm:sqref>([^<]*+)</xm:sqref>")
_CELLXFS = re.compile(rb"<(?:\w+:)?cellXfs\b[^<>]*>((?:[^<]++|<(?!/?(?:\w+:)?cellXfs\b))*+)</(?:\w+:)?cellXfs>")
_XF = re.compile(rb"<(?:\w+:)?xf\b([^<>]*?)(?:/>|>((?:[^<]++|<(?!/?(?:\w+:)?xf\b))*+)</(?:\w+:)?xf>)")
_UNLOCKED = re.compile(rb"<(?:\w+:)?protection\b[^<>]*\blocked\s*=\s*\"(?:0|false)\"")
_PROPERTY = re.compile(rb"<(?:\w+:)?property\b([^<>]*)>\s*+<(?:\w+:)?\w+\b[^<>]*>([^<]*+)</[^<>]*>\s*+"
                       rb"</(?:\w+:)?property>")
_MODIFIED = re.compile(rb"<dcterms:modified\b[^<>]*>([^<]*)</dcterms:modified>")
_REF = re.compile(r"\$?([A-Z]{1,3})\$?(\d+)")
_CELL_REF = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")
_S_PLAIN = re.compile(rb'(?<![\w:.-])s="([0-9]{1,9})"')


def _attrs(raw: bytes) -> dict[str, str]:
    return {k.split(":")[-1]: html.unescape(v) for k, v in _ATTR.findall(raw.decode("utf-8", "replace"))}


def _scan_ooxml(ret: Returned, parts: _Parts) -> None:
    """Structure of the sheets the checks read."""
    names = parts.names
    for prefix, what in (("xl/vbaProject", "宏（VBA）"), ("xl/externalLinks/", "外部链接"),
                         ("xl/embeddings/", "嵌入对象"), ("xl/activeX/", "ActiveX 控件")):
        if any(n.startswith(prefix) for n in names):
            ret.active.append(what)
    ret.unlocked_styles = _unlocked_styles(parts.get("xl/styles.xml"))
    ret.xml = {}
    for name, part in _sheet_parts(parts):
        if name in SHEETS and part in names:
            ret.xml[name] = _scan_sheet(parts.get(part), ret.unlocked_styles)
    for raw, value in _PROPERTY.findall(parts.get("docProps/custom.xml")):
        ret.properties[_attrs(raw).get("name", "")] = html.unescape(value.decode("utf-8", "replace"))
    m = _MODIFIED.search(parts.get("docProps/core.xml"))
    if m:
        ret.saved = _parse_time(m.group(1).decode("ascii", "replace"))


def _sheet_parts(parts: _Parts) -> tuple[tuple[str, str], ...]:
    """(sheet name, part) of every sheet the workbook lists, resolved as python-calamine resolves them."""
    rels_xml, book_xml = parts.get("xl/_rels/workbook.xml.rels"), parts.get("xl/workbook.xml")
    found = _LISTED.get((rels_xml, book_xml))
    if found is None:
        rels = {}
        for raw in _REL.findall(rels_xml):
            a = _attrs(raw)
            target = a.get("Target", "")
            rels[a.get("Id", "")] = (target[1:] if target.startswith("/xl/") else target if target.startswith("xl/")
                                     else "xl/" + target)
        found = tuple((a.get("name", ""), rels.get(a.get("id", ""), ""))
                      for a in map(_attrs, _SHEET.findall(book_xml)))
        if len(rels_xml) + len(book_xml) <= MEMO_MEMBER_BYTES:
            _LISTED.put((rels_xml, book_xml), found)
    return found


_LISTED = _Memo(8)                   # (workbook rels, workbook) -> (sheet name, part) of each sheet


def _unlocked_styles(xml: bytes) -> frozenset[int]:
    """The cellXfs indexes whose protection unlocks the cell (every other index locks it)."""
    found = _STYLES.get(xml)
    if found is None:
        xfs = _CELLXFS.search(xml)
        found = frozenset(k for k, (_, body) in enumerate(_XF.findall(xfs.group(1)) if xfs else ())
                          if body and _UNLOCKED.search(body))
        if len(xml) <= MEMO_MEMBER_BYTES:
            _STYLES.put(xml, found)
    return found


_STYLES = _Memo(8)                   # styles part -> unlocked cellXfs indexes


def _cells(xml: bytes):
    """(row, col, ref, raw attributes, body) of every cell in document order, positioned as a reader
    would (a row or cell without an `r` follows the previous one); a malformed address refuses the file."""
    row, col = -1, -1
    for m in _ROW_OR_CELL.finditer(xml):
        head, raw, body = m.group(2), m.group(3), m.group(4)
        if head is not None:                     # the usual <c r="G12" ...>: no decoding, no unescaping
            ref = head.decode("ascii").upper()
            row, col = position(ref)
            yield row, col, ref, raw, body
            continue
        if raw is None:                          # <row>
            r = _attr(b"r", m.group(1))
            if r is None:
                row += 1
            elif r.isascii() and r.isdigit() and 0 < len(r) <= 7 and int(r) > 0:
                row = int(r) - 1
            else:
                raise Refused("F104", detail=f"无效的行号“{r[:20]}”")
            col = -1
            continue
        ref = _attr(b"r", raw)
        if ref is None:
            col += 1
            ref = a1(max(row, 0), col)
        else:
            parsed = _CELL_REF.fullmatch(ref)
            if not parsed or parsed.group(2).strip("0") == "":
                raise Refused("F104", detail=f"无效的单元格地址“{ref[:20]}”")
            col, row = col_index(parsed.group(1).upper()), int(parsed.group(2)) - 1
            ref = ref.upper()
        yield max(row, 0), col, ref, raw, body


_ATTR_BY_NAME: dict[bytes, re.Pattern] = {}


def _attr(name: bytes, raw: bytes) -> str | None:
    """One attribute of a tag, found without parsing the others (cells are many)."""
    pattern = _ATTR_BY_NAME.get(name)
    if pattern is None:
        pattern = _ATTR_BY_NAME[name] = re.compile(rb'(?<![\w:.-])' + name + rb'\s*+=\s*+"([^"]*+)"')
    m = pattern.search(raw)
    return html.unescape(m.group(1).decode("utf-8", "replace")) if m else None


def _sheet_extent(xml: bytes) -> tuple[int, int]:
    """(rows, cols) from A1 to the farthest cell that holds a value: what a reader will allocate."""
    rows = cols = 0
    for row, col, _, _, body in _cells(xml):
        if body and (row >= rows or col >= cols) and _VALUE.search(body):
            rows, cols = max(rows, row + 1), max(cols, col + 1)
    return rows, cols


# The common case, as XlsxWriter, Excel, WPS and LibreOffice write it: every cell starts `<c r="A1"`
# (style right after the address, formula first in the body). Whole-document patterns then replace
# the walk over every cell; anything else takes the general walk below.
_FAST_ODD_CELL = re.compile(rb'<c(?! r=")[\s/>]')    # a cell not written `<c r="` (two searches: one
_FAST_PREFIXED_CELL = re.compile(rb":c[\s/>]")        # alternation would defeat the literal-prefix scan)
_FAST_STYLE = re.compile(rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})" s="([0-9]{1,9})"')
_FAST_STYLE_ALTERNATIVES = 200     # up to this many unlocked styles, a pattern finds just their cells
_FAST_FORMULA = re.compile(rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})"[^<>]*+><f\b[^<>]*?(?:/>|>([^<]*+)</f>)')
_FAST_ERROR = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"[^<>]*?\bt="e"[^<>]*+>'
                         rb'(?:<f\b[^<>]*?(?:/>|>[^<]*+</f>))?<v>([^<]*+)</v>')


def _scan_cells_fast(xml: bytes, out: SheetXml, unlocked: frozenset[int]) -> bool:
    """Fill formulas, unlocked cells and errors with whole-document patterns; False if the sheet is unusual."""
    if _FAST_ODD_CELL.search(xml) or _FAST_PREFIXED_CELL.search(xml):
        return False
    if len(unlocked) <= _FAST_STYLE_ALTERNATIVES:
        out.unlocked = {ref.decode() for ref in _unlocked_cell_pattern(unlocked).findall(xml)} if unlocked else set()
    else:
        out.unlocked = {ref.decode() for ref, style in _FAST_STYLE.findall(xml) if int(style) in unlocked}
    out.formulas = _fast_formulas(xml)
    for letters, digits, text in _FAST_ERROR.findall(xml) if b't="e"' in xml else ():
        key = (int(digits) - 1, col_index(letters.decode()))
        out.errors[key] = html.unescape(text.decode("utf-8", "replace")).strip()[:20]
    return True


def _fast_formulas(xml: bytes) -> dict[str, str]:
    """What `_FAST_FORMULA.findall` finds, from the few `<f` tags back to the start tag right before
    each, instead of trying the pattern at every cell. Each step back stops at the previous `<`, so
    the whole stays linear in the document."""
    out: dict[str, str] = {}
    at = xml.find(b"<f")
    while at != -1:
        start = xml.rfind(b"<", 0, at - 1) if at and xml[at - 1] == 0x3E else -1      # 0x3E: '>'
        found = _FAST_FORMULA.match(xml, start) if start >= 0 else None
        if found:
            out[found[1].decode()] = html.unescape((found[2] or b"").decode("utf-8", "replace"))
        at = xml.find(b"<f", at + 2)
    return out


@functools.lru_cache(maxsize=16)
def _unlocked_cell_pattern(unlocked: frozenset[int]) -> re.Pattern:
    """Cells written `<c r="A1" s="N"` with N among `unlocked` (leading zeros allowed, as readers do)."""
    styles = b"|".join(str(k).encode() for k in sorted(unlocked))
    return re.compile(rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})" s="0*(?:' + styles + rb')"')


def _scan_sheet(xml: bytes, unlocked: frozenset[int] = frozenset()) -> SheetXml:
    """Formulas, unlocked cells, error values, protection and validation of one worksheet.

    The result is shared by every file with the same sheet bytes: nothing may change it afterwards."""
    key = (xml, unlocked)
    out = _SCANNED.get(key)
    if out is None:
        out = SheetXml()
        if not _scan_cells_fast(xml, out, unlocked):
            _scan_cells(xml, out, unlocked)
        _scan_rules(xml, out)
        if len(xml) <= MEMO_MEMBER_BYTES:
            _SCANNED.put(key, out)
    return out


_SCANNED = _Memo(16)                 # (sheet part, unlocked styles) -> SheetXml


def _scan_cells(xml: bytes, out: SheetXml, unlocked: frozenset[int]) -> None:
    """The general walk over every cell, for sheets the fast patterns do not fit."""
    for row, col, ref, raw, body in _cells(xml):
        style = _S_PLAIN.search(raw)
        if style is not None and int(style.group(1)) in unlocked:
            out.unlocked.add(ref)
        if body and b"<" in body:
            f = _FORMULA.search(body) if b"f" in body else None
            if f:
                out.formulas[ref] = html.unescape((f.group(1) or b"").decode("utf-8", "replace"))
            v = _V_TEXT.search(body) if b't="e"' in raw else None
            if v:
                out.errors[(row, col)] = html.unescape(v.group(1).decode("utf-8", "replace")).strip()[:20]


def _start_of(xml: bytes, word: bytes) -> int:
    """Where to start looking for element `word`: the '<' before its first mention (the end if none),
    so the pattern does not try every tag before it."""
    at = xml.find(word)
    return len(xml) if at < 0 else max(xml.rfind(b"<", 0, at), 0)


def _scan_rules(xml: bytes, out: SheetXml) -> None:
    """Protection and data validation of one worksheet."""
    prot = _PROTECTION.search(xml, _start_of(xml, b"sheetProtection"))
    out.protected = bool(prot) and _attrs(prot.group(1)).get("sheet", "0") in ("1", "true")
    # Every rule starts at the '<' before a mention of its name and ends at the first '>' after one:
    # the rules depend on these bytes alone, which are the same in every file a program saved.
    last = xml.rfind(b"dataValidation")
    region = xml[_start_of(xml, b"dataValidation"):xml.find(b">", last) + 1 if last >= 0 else 0]
    found = _RULES.get(region)
    if found is None:
        found = _validations(region)
        if len(region) <= MEMO_MEMBER_BYTES:
            _RULES.put(region, found)
    out.validations, out.covered = found


COVERED_CELLS = 100_000              # validated cells listed one by one; boxes beyond are tested as boxes


def _validations(xml: bytes) -> tuple[list[tuple[str, tuple[int, int, int, int]]], frozenset[tuple[int, int]]]:
    found = []
    for raw, body in _VALIDATION.findall(xml):
        a = _attrs(raw)
        refs = a.get("sqref", "")
        m = _SQREF.search(body or b"")
        if m:
            refs += " " + m.group(1).decode("utf-8", "replace")
        for part in refs.split():
            box = parse_range(part)
            if box:
                found.append((a.get("type", ""), box))
    covered: set[tuple[int, int]] = set()
    for _, (r1, c1, r2, c2) in found:
        if len(covered) + (r2 - r1 + 1) * (c2 - c1 + 1) <= COVERED_CELLS:
            covered.update((r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1))
    return found, frozenset(covered)


_RULES = _Memo(16)                   # the validation rules' part of a sheet -> (type, box) of each


# -- OpenDocument extents ---------------------------------------------------------------------------

_ODS_TOKEN = re.compile(rb"<(/?)table:(table-row|table-cell|covered-table-cell|table)(?=[\s/>])([^<>]*?)(/?)>")


def _ods_extents(xml: bytes) -> dict[str, tuple[int, int]]:
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


def _repeat(raw: bytes, key: str) -> int:
    value = _attrs(raw).get(key, "1")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 12 else 1


def parse_range(text: str) -> tuple[int, int, int, int] | None:
    """'G5:G13' -> (4, 6, 12, 6), 0-based and inclusive; None if not a range."""
    ends = [_REF.fullmatch(p) for p in text.split(":")]
    if not ends or not all(ends) or len(ends) > 2:
        return None
    (c1, r1), (c2, r2) = (ends[0].groups(), ends[-1].groups())
    return int(r1) - 1, col_index(c1), int(r2) - 1, col_index(c2)


def _parse_time(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _foreign_kind(data: bytes) -> str:
    for magic, what in FOREIGN_MAGIC:
        if data.startswith(magic):
            return what
    head = data[:512].lstrip(b"\xef\xbb\xbf").lstrip()
    if head[:1] == b"<":
        return "网页或 XML 文本"
    try:
        head.decode("utf-8")
        return "纯文本文件"
    except UnicodeDecodeError:
        return "无法识别的文件"


def zip_reason(exc: Exception) -> str:
    text = str(exc)
    if "CRC" in text:
        return "数据校验失败"
    if "not a zip" in text.lower() or "End-of-central" in text or isinstance(exc, EOFError):
        return "文件被截断"
    return text[:80] or type(exc).__name__


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
