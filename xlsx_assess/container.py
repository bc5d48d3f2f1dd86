"""The container of a returned file, judged before anything in it is parsed.

Size (a file over the limit is not opened), first bytes (never the extension), and for a zip its own
directory (member count, declared sizes, ratios and sizes that lie, names that collide) and a bounded
inflate of every member (actual sizes, CRCs, DTDs and entities in UTF-8 or UTF-16). Members are
found as python-calamine finds them: case-insensitively, with backslashes read as slashes.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import Callable

from .issues import Code, Refused
from .memo import Memo, size_of_bytes

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_MEMBER_BYTES = 50 * 1024 * 1024       # one inflated part that is only streamed (a picture, an embedded file)
MAX_XML_BYTES = 10 * 1024 * 1024          # one inflated part that gets parsed (sheets, shared strings, workbook, ...)
MAX_TOTAL_BYTES = 100 * 1024 * 1024       # all parts inflated
MAX_RATIO = 200                           # inflated / compressed, for parts over 1 MB
MAX_MEMBERS = 2000
# One archive of returns (a .zip the office receives), the archives inside it included: refused as a whole
# (F107) past any of these. A county's returns are a few hundred forms of 20 KB-1 MB, already compressed.
MAX_ARCHIVE_MEMBERS = 2000                # files listed
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024     # their declared inflated sizes, added up
MAX_ARCHIVE_SECONDS = 10.0                # wall time spent opening it (listing, reading archives inside it)
RATIO_FLOOR = 1 << 20                     # MAX_RATIO applies to what inflates to more than this
CHUNK = 1 << 16
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
XML_SUFFIXES = (".xml", ".rels", ".vml")
# A DTD (and so any entity) in any part, in UTF-8 or UTF-16 either way round.
_DTD_MARKERS = tuple(m for w in ("<!DOCTYPE", "<!ENTITY") for m in (w.encode(), w.encode("utf-16-le"),
                                                                    w.encode("utf-16-be")))
_DTD_TAIL = 20                            # bytes kept between chunks so a marker split across two is still seen
_DTD_HINT = b"!"                          # in every marker above; rare in XML, so most parts skip the markers

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

ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError,
              zlib.error, struct.error)

MEMO_MEMBER_BYTES = 256 << 10        # members up to this size are inflated in one piece and remembered
# (method, size, crc, compressed bytes) -> inflated bytes. Bound: 8 MB of keys and values together.
_INFLATED = Memo("inflated members", 8 << 20, second_sight=True)


def member_key(name: str) -> str:
    """A member name as python-calamine looks it up: backslashes as slashes, ASCII case ignored."""
    return name.replace("\\", "/").lower()


class Parts:
    """The members of a zip, inflated at most once each with hard limits, and kept only when asked."""

    def __init__(self, data: bytes):
        self.data = data
        self.zf = zipfile.ZipFile(io.BytesIO(data))
        self.entries = [i for i in self.zf.infolist() if not i.is_dir()]
        self.keys = {member_key(i.filename): i for i in self.entries}
        self.kept: dict[str, bytes] = {}
        self.seen: set[int] = set()
        self.total = 0

    def has(self, name: str) -> bool:
        return member_key(name) in self.keys

    def total_declared(self) -> int:
        return sum(i.file_size for i in self.entries)

    def check_directory(self) -> None:
        """Refuse what the zip's own directory gives away: too many parts, sizes that are too big or lie,
        two members a reader cannot tell apart."""
        if len(self.entries) > MAX_MEMBERS:
            raise Refused(Code.DECOMPRESSION_BOMB, detail=f"{len(self.entries)} 个部件")
        if len(self.keys) != len(self.entries):
            raise Refused(Code.DAMAGED, detail="压缩包内有重名的部件")
        if any(i.flag_bits & 0x1 for i in self.entries):     # zip-level encryption (e.g. 7-Zip with a password)
            raise Refused(Code.PASSWORD_PROTECTED)
        declared = self.total_declared()
        if declared > MAX_TOTAL_BYTES:
            raise Refused(Code.DECOMPRESSION_BOMB, detail=f"声明解压后 {human_size(declared)}")
        for i in self.entries:
            limit = MAX_XML_BYTES if i.filename.lower().endswith(XML_SUFFIXES) else MAX_MEMBER_BYTES
            if i.file_size > limit or inflates_too_far(i.file_size, i.compress_size):
                raise Refused(Code.DECOMPRESSION_BOMB, detail=f"{i.filename} 解压后 {human_size(i.file_size)}")
            stored = i.compress_type == zipfile.ZIP_STORED and i.compress_size != i.file_size
            if stored or i.compress_size > i.file_size + i.file_size // 100 + 1024:
                raise Refused(Code.DECOMPRESSION_BOMB, detail=f"{i.filename} 声明解压后只有 {human_size(i.file_size)}，"
                                              f"压缩数据却有 {human_size(i.compress_size)}")

    def get(self, name: str) -> bytes:
        """A member's bytes (b'' if absent), found as python-calamine finds it, inflated and checked
        once, then kept."""
        info = self.keys.get(member_key(name))
        if info is None:
            return b""
        if info.filename not in self.kept:
            self.kept[info.filename] = self._inflate(info, keep=True)
        return self.kept[info.filename]

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
            _INFLATED.put(key, blob, size_of_bytes(raw, blob))
        self.total += len(blob)
        if self.total > MAX_TOTAL_BYTES:
            raise Refused(Code.DECOMPRESSION_BOMB, detail=f"{info.filename} 实际解压超过上限")
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
                    raise Refused(Code.DECOMPRESSION_BOMB, detail=f"{info.filename} 实际解压超过上限")
                seen = tail + chunk
                if _has_dtd(seen):
                    raise Refused(Code.XML_DTD)
                tail = chunk[-_DTD_TAIL:]
                if keep:
                    chunks.append(chunk)
        return b"".join(chunks)

    def replaced(self, parts: dict[str, bytes]) -> bytes:
        """The zip's XML members again (stored, uncompressed), those named in `parts` replaced: what the
        value reader is given when some parts had to be rewritten for it (it reads no other member)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
            for info in self.entries:
                if info.filename.lower().endswith(XML_SUFFIXES):
                    blob = parts.get(info.filename)
                    out.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)),
                                 self.get(info.filename) if blob is None else blob)
        return buf.getvalue()


def _has_dtd(blob: bytes) -> bool:
    """Whether a DTD marker is in `blob` (six plain searches: some 4x faster than one pattern of six
    alternatives, which made a big binary part, full of "!", cost 20 ms a MiB)."""
    return _DTD_HINT in blob and any(m in blob for m in _DTD_MARKERS)


def inflates_too_far(size: int, packed: int) -> bool:
    """Whether `packed` compressed bytes that declare `size` inflated ones are a bomb's ratio."""
    return size > RATIO_FLOOR and size > MAX_RATIO * max(packed, 1)


def _inflate_small(info: zipfile.ZipInfo, raw: bytes) -> bytes:
    """A small member in one piece: exactly its declared size, its CRC, no DTD (raises as `zipfile` does)."""
    if info.compress_type == zipfile.ZIP_STORED:
        blob = raw
    else:
        inflater = zlib.decompressobj(-15)
        blob = inflater.decompress(raw, info.file_size + 1)
    if len(blob) != info.file_size or zlib.crc32(blob) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
    if _has_dtd(blob):
        raise Refused(Code.XML_DTD)
    return blob


def foreign_kind(data: bytes) -> str:
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
