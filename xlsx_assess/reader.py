"""Read a returned file without trusting it.

Order of work, cheapest and safest first: size, first bytes, zip directory (declared sizes and
ratios), a bounded inflate of every member (actual sizes, DTDs and entities), then values with
python-calamine and a targeted scan of the few XML parts that hold structure (workbook, styles,
sheets, properties). Nothing here executes or saves anything, and nothing raises: every problem
becomes an `Issue` on the `Returned`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .issues import Issue, issue

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_MEMBER_BYTES = 50 * 1024 * 1024       # one inflated part
MAX_TOTAL_BYTES = 100 * 1024 * 1024       # all parts inflated
MAX_RATIO = 200                           # inflated / compressed, for parts over 1 MB
MAX_MEMBERS = 2000
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

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
    styles: dict[str, int] = field(default_factory=dict)       # A1 -> cellXfs index
    protected: bool = False
    validations: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)  # (type, box)

    def validated(self, row: int, col: int) -> bool:
        return any(r1 <= row <= r2 and c1 <= col <= c2 for _, (r1, c1, r2, c2) in self.validations)


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
    locked_styles: list[bool] = field(default_factory=list)               # cellXfs index -> locked
    active: list[str] = field(default_factory=list)                       # active content found
    issues: list[Issue] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return bool(self.values)

    def value(self, sheet: str, row: int, col: int) -> Any:
        rows = self.values.get(sheet, [])
        if row < len(rows) and col < len(rows[row]):
            return rows[row][col]
        return ""

    def is_locked(self, sheet: str, ref: str) -> bool | None:
        if self.xml is None or sheet not in self.xml:
            return None
        idx = self.xml[sheet].styles.get(ref)
        if idx is None:
            return None
        return self.locked_styles[idx] if idx < len(self.locked_styles) else True

    def add(self, code: str, **fields) -> None:
        self.issues.append(issue(code, file=self.name, **fields))


def read_returned(path: str | Path, name: str | None = None, data: bytes | None = None,
                  mtime: dt.datetime | None = None) -> Returned:
    """Read a file from disk, or bytes already taken from an archive (`data`)."""
    path = Path(path)
    ret = Returned(path, name or path.name, mtime=mtime)
    try:
        if data is None:
            st = path.stat()
            ret.mtime = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)
            if st.st_size > MAX_FILE_BYTES:
                ret.size = st.st_size
                ret.add("F106", value=human_size(st.st_size), limit=human_size(MAX_FILE_BYTES))
                return ret
            data = path.read_bytes()
    except OSError as exc:
        ret.add("F101", detail=exc.strerror or str(exc))
        return ret
    ret.size = len(data)
    ret.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        ret.add("F102")
    elif len(data) > MAX_FILE_BYTES:
        ret.add("F106", value=human_size(len(data)), limit=human_size(MAX_FILE_BYTES))
    elif data[:4] in ZIP_MAGIC:
        _read_zip(ret, data)
    elif data[:8] == OLE_MAGIC:
        _read_ole(ret, data)
    else:
        ret.add("F103", detail=_foreign_kind(data))
    return ret


def _read_zip(ret: Returned, data: bytes) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = _safe_members(ret, zf)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        ret.add("F104", detail=zip_reason(exc))
        return
    if members is None:
        return
    names = set(members)
    if "xl/workbook.bin" in names:
        ret.add("F109", detail="Excel 二进制工作簿 .xlsb")
        return
    if members.get("mimetype", b"").startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
        ret.format = "ods"
        if any(n.startswith("Basic/") and not n.endswith("/") for n in names):
            ret.active.append("宏（Basic）")
        _read_values(ret, data)
        ret.add("F110", detail="OpenDocument（.ods）")
    elif "xl/workbook.xml" in names:
        ret.format = "xlsm" if b"macroEnabled" in members.get("[Content_Types].xml", b"") else "xlsx"
        _scan_ooxml(ret, members)
        if ret.format:
            _read_values(ret, data)
    elif "word/document.xml" in names:
        ret.add("F103", detail="Word 文档")
    elif any(n.startswith("ppt/") for n in names):
        ret.add("F103", detail="PowerPoint 演示文稿")
    elif members.get("mimetype", b"").startswith(b"application/vnd.oasis.opendocument"):
        ret.add("F103", detail="OpenDocument 文档（非表格）")
    else:
        ret.add("F103", detail="压缩包（zip），不是工作簿")
    if ret.active:
        ret.add("F111", detail="、".join(ret.active))


def _safe_members(ret: Returned, zf: zipfile.ZipFile) -> dict[str, bytes] | None:
    """Inflate every member with hard limits; None (with an issue) if the archive is hostile."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        ret.add("F107", detail=f"{len(infos)} 个部件")
        return None
    declared = sum(i.file_size for i in infos)
    if declared > MAX_TOTAL_BYTES:
        ret.add("F107", detail=f"声明解压后 {human_size(declared)}")
        return None
    for i in infos:
        if i.file_size > MAX_MEMBER_BYTES or (i.file_size > 1 << 20 and i.file_size > MAX_RATIO * max(i.compress_size, 1)):
            ret.add("F107", detail=f"{i.filename} 解压后 {human_size(i.file_size)}")
            return None
    members: dict[str, bytes] = {}
    total = 0
    for i in infos:
        if i.is_dir():
            continue
        with zf.open(i) as fh:          # zipfile stops at the declared size and checks the CRC
            blob = fh.read(MAX_MEMBER_BYTES + 1)
        total += len(blob)
        if len(blob) > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            ret.add("F107", detail=f"{i.filename} 实际解压超过上限")
            return None
        if i.filename.endswith((".xml", ".rels", ".vml")) and (b"<!DOCTYPE" in blob or b"<!ENTITY" in blob):
            ret.add("F108")
            return None
        members[i.filename] = blob
    return members


def _read_ole(ret: Returned, data: bytes) -> None:
    def has(stream: str) -> bool:
        return stream.encode("utf-16-le") in data

    suffix = ret.name.lower().rsplit(".", 1)[-1]
    if has("EncryptionInfo") or has("EncryptedPackage"):
        ret.add("F105")
    elif suffix in ("et", "ett"):
        ret.add("F109", detail="WPS 表格 .et/.ett")
    elif has("Workbook") or has("Book"):
        ret.format = "xls"
        if has("_VBA_PROJECT") or has("VBA"):
            ret.active.append("宏（VBA）")
            ret.add("F111", detail="宏（VBA）")
        _read_values(ret, data)
        if ret.readable:
            ret.add("F110", detail="Excel 97-2003（.xls）")
    elif has("WordDocument"):
        ret.add("F103", detail="Word 97-2003 文档")
    else:
        ret.add("F109", detail="无法识别的 Office 旧格式")


def _read_values(ret: Returned, data: bytes) -> None:
    import python_calamine as pc

    try:
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        for meta in wb.sheets_metadata:
            ret.sheets[meta.name] = str(meta.visible).rsplit(".", 1)[-1].lower()
            ret.values[meta.name] = wb.get_sheet_by_name(meta.name).to_python(skip_empty_area=False)
    except pc.PasswordError:
        ret.values.clear()
        ret.add("F105")
    except Exception as exc:  # calamine raises several types for broken files; all mean the same here
        ret.values.clear()
        ret.format = ""
        ret.add("F104", detail=str(exc)[:120] or type(exc).__name__)


# -- OOXML structure ------------------------------------------------------------------------------

_ATTR = re.compile(r'([\w:]+)\s*=\s*"([^"]*)"')
_SHEET = re.compile(rb"<(?:\w+:)?sheet\b([^>]*)/?>")
_REL = re.compile(rb"<(?:\w+:)?Relationship\b([^>]*)/?>")
_CELL = re.compile(rb"<(?:\w+:)?c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.S)
_FORMULA = re.compile(rb"<(?:\w+:)?f\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?f>)", re.S)
_PROTECTION = re.compile(rb"<(?:\w+:)?sheetProtection\b([^>]*)/?>")
_VALIDATION = re.compile(rb"<(?:\w+:)?dataValidation\b([^>]*)>(.*?)</(?:\w+:)?dataValidation>", re.S)
_SQREF = re.compile(rb"<xm:sqref>(.*?)</xm:sqref>", re.S)
_CELLXFS = re.compile(rb"<(?:\w+:)?cellXfs\b[^>]*>(.*?)</(?:\w+:)?cellXfs>", re.S)
_XF = re.compile(rb"<(?:\w+:)?xf\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?xf>)", re.S)
_UNLOCKED = re.compile(rb"<(?:\w+:)?protection\b[^>]*\blocked\s*=\s*\"(?:0|false)\"")
_PROPERTY = re.compile(rb"<(?:\w+:)?property\b([^>]*)>\s*<(?:\w+:)?\w+>(.*?)</(?:\w+:)?\w+>\s*</(?:\w+:)?property>", re.S)
_MODIFIED = re.compile(rb"<dcterms:modified\b[^>]*>([^<]*)</dcterms:modified>")
_REF = re.compile(r"\$?([A-Z]{1,3})\$?(\d+)")


def _attrs(raw: bytes) -> dict[str, str]:
    return {k.split(":")[-1]: html.unescape(v) for k, v in _ATTR.findall(raw.decode("utf-8", "replace"))}


def _scan_ooxml(ret: Returned, members: dict[str, bytes]) -> None:
    names = set(members)
    for prefix, what in (("xl/vbaProject", "宏（VBA）"), ("xl/externalLinks/", "外部链接"),
                         ("xl/embeddings/", "嵌入对象"), ("xl/activeX/", "ActiveX 控件")):
        if any(n.startswith(prefix) for n in names):
            ret.active.append(what)
    rels = {}
    for raw in _REL.findall(members.get("xl/_rels/workbook.xml.rels", b"")):
        a = _attrs(raw)
        target = a.get("Target", "")
        rels[a.get("Id", "")] = target.lstrip("/") if target.startswith("/") else "xl/" + target
    ret.xml = {}
    for raw in _SHEET.findall(members.get("xl/workbook.xml", b"")):
        a = _attrs(raw)
        part = members.get(rels.get(a.get("id", ""), ""))
        if part is not None:
            ret.xml[a.get("name", "")] = _scan_sheet(part)
    xfs = _CELLXFS.search(members.get("xl/styles.xml", b""))
    if xfs:
        ret.locked_styles = [not (body and _UNLOCKED.search(body)) for _, body in _XF.findall(xfs.group(1))]
    for raw, value in _PROPERTY.findall(members.get("docProps/custom.xml", b"")):
        ret.properties[_attrs(raw).get("name", "")] = html.unescape(value.decode("utf-8", "replace"))
    m = _MODIFIED.search(members.get("docProps/core.xml", b""))
    if m:
        ret.saved = _parse_time(m.group(1).decode("ascii", "replace"))


def _scan_sheet(xml: bytes) -> SheetXml:
    out = SheetXml()
    for raw, body in _CELL.findall(xml):
        a = _attrs(raw)
        ref = a.get("r", "")
        if not ref:
            continue
        if "s" in a and a["s"].isdigit():
            out.styles[ref] = int(a["s"])
        if body and b"<" in body:
            f = _FORMULA.search(body)
            if f:
                out.formulas[ref] = html.unescape((f.group(1) or b"").decode("utf-8", "replace"))
    prot = _PROTECTION.search(xml)
    if prot:
        out.protected = _attrs(prot.group(1)).get("sheet", "0") in ("1", "true")
    for raw, body in _VALIDATION.findall(xml):
        a = _attrs(raw)
        refs = a.get("sqref", "")
        m = _SQREF.search(body)
        if m:
            refs += " " + m.group(1).decode("utf-8", "replace")
        for part in refs.split():
            box = parse_range(part)
            if box:
                out.validations.append((a.get("type", ""), box))
    return out


def parse_range(text: str) -> tuple[int, int, int, int] | None:
    """'G5:G13' -> (4, 6, 12, 6), 0-based and inclusive; None if not a range."""
    ends = [_REF.fullmatch(p) for p in text.split(":")]
    if not ends or not all(ends) or len(ends) > 2:
        return None
    (c1, r1), (c2, r2) = (ends[0].groups(), ends[-1].groups())
    return int(r1) - 1, col_index(c1), int(r2) - 1, col_index(c2)


def col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


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
