"""The OOXML parts that carry meaning, read as XML.

Every part the checks read (the package and workbook relationships, the workbook, the styles, each
worksheet of the form, the shared strings, the document properties) must be well-formed XML, as it
must be for an office suite: one that is not makes the file damaged (F104), one with a DTD is refused
(F108; the byte scan in `container` refuses it first). Names are matched by namespace, never by
prefix; comments, CDATA, character references, either quote, any attribute order, a BOM and UTF-16
are read as they mean.

Speed: expat (C, no Python call per element) proves each part well-formed; a worksheet whose cells
are written the plain way (`<c r="A1" s="N" t="T"><f>…</f><v>…</v></c>`, proven by one strict
pattern over the whole of `sheetData`) is then read by a few whole-document patterns, anything else
by a walk over the parsed tree. A test runs both over every worksheet it can find and compares.

python-calamine reads the values, and it is not an XML parser: it matches names without their
namespace and reads a number written with CDATA, a comment or a character reference as empty.
Parts written that way are given to it rewritten plainly from the parsed tree (`plain_parts`), so
it reads what the tree says; the sheets it lists are compared with the workbook's.
"""

from __future__ import annotations

import datetime as dt
import html
import pyexpat
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import AbstractSet

from .container import MEMO_MEMBER_BYTES, Parts, member_key
from .issues import Code, Refused
from .layout import READ_SHEETS, a1, col_index, position
from .memo import Memo, remembered, size_of_bytes

MAIN = ("http://schemas.openxmlformats.org/spreadsheetml/2006/main", "http://purl.oclc.org/ooxml/spreadsheetml/main")
RELATIONSHIPS = ("http://schemas.openxmlformats.org/officeDocument/2006/relationships",
                 "http://purl.oclc.org/ooxml/officeDocument/relationships")
PACKAGE = ("http://schemas.openxmlformats.org/package/2006/relationships",)
X14 = ("http://schemas.microsoft.com/office/spreadsheetml/2009/9/main",)
XM = ("http://schemas.microsoft.com/office/excel/2006/main",)
CUSTOM = ("http://schemas.openxmlformats.org/officeDocument/2006/custom-properties",
          "http://purl.oclc.org/ooxml/officeDocument/customProperties")
DCTERMS = ("http://purl.org/dc/terms/",)
XML_NS = "http://www.w3.org/XML/1998/namespace"


def _tags(local: str, *spaces: tuple[str, ...]) -> frozenset[str]:
    return frozenset(f"{{{uri}}}{local}" for space in spaces for uri in space)


def local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


WORKSHEET, SHEET_DATA, ROW, CELL = (_tags(n, MAIN) for n in ("worksheet", "sheetData", "row", "c"))
FORMULA, VALUE, INLINE = (_tags(n, MAIN) for n in ("f", "v", "is"))
PROTECTION = _tags("sheetProtection", MAIN)
VALIDATION = _tags("dataValidation", MAIN, X14)
SQREF = _tags("sqref", XM)
WORKBOOK, SHEET = _tags("workbook", MAIN), _tags("sheet", MAIN)
RELS, REL = _tags("Relationships", PACKAGE), _tags("Relationship", PACKAGE)
STYLESHEET, CELL_XFS, XF, XF_PROTECTION = (_tags(n, MAIN) for n in ("styleSheet", "cellXfs", "xf", "protection"))
PROPERTIES, PROPERTY = _tags("Properties", CUSTOM), _tags("property", CUSTOM)
MODIFIED = _tags("modified", DCTERMS)
SST = _tags("sst", MAIN)


# -- well-formed XML ---------------------------------------------------------------------------------

def _refuse_dtd(*_args) -> None:
    raise Refused(Code.XML_DTD)


def check_xml(part: str, xml: bytes) -> None:
    """Refuse a part that is not well-formed XML (F104) or that declares a DTD or an entity (F108)."""
    if len(xml) <= MEMO_MEMBER_BYTES and _WELL_FORMED.get(xml):
        return
    parser = pyexpat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    try:
        parser.Parse(xml, True)
    except pyexpat.ExpatError as exc:
        raise Refused(Code.DAMAGED, detail=f"{part} 不是完整的 XML（第 {exc.lineno} 行第 {exc.offset + 1} 列）") from None
    if len(xml) <= MEMO_MEMBER_BYTES:
        _WELL_FORMED.put(xml, True, size_of_bytes(xml))


# parts proven well-formed (the ones every file repeats: styles, workbook, guide sheet, ...). Bound: 4 MB.
_WELL_FORMED = Memo("well-formed parts", 4 << 20, second_sight=True)


def parse_xml(part: str, xml: bytes) -> ET.Element:
    """The tree of a part (comments and processing instructions dropped, CDATA and references read)."""
    check_xml(part, xml)
    try:
        return ET.fromstring(xml)        # no DTD got past the check: only the five predefined entities exist
    except ET.ParseError as exc:         # (expat said well-formed: only a parser disagreeing gets here)
        raise Refused(Code.DAMAGED, detail=f"{part} 不是完整的 XML（{exc}）"[:120]) from None


def _is_plain(xml: bytes, references: bool = False) -> bool:
    """True when a part has no comment, CDATA, DTD, character reference (unless `references`: python-calamine
    reads them in shared strings, not in a sheet's values) or processing instruction (beyond the
    declaration) and is UTF-8 without a BOM: what python-calamine reads as it means."""
    if b"<!" in xml or (not references and b"&#" in xml) or not _plain_head(xml):
        return False
    return xml.find(b"<?", xml.find(b"?>") + 2 if xml.startswith(b"<?xml") else 0) < 0


def _plain_head(xml: bytes) -> bool:
    """UTF-8 without a BOM, as declared (or by default)."""
    if xml[:3] == b"\xef\xbb\xbf" or b"\x00" in xml[:4]:
        return False
    declared = _ENCODING.search(xml, 0, xml.find(b"?>") + 2) if xml.startswith(b"<?xml") else None
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
_PREFIXED = re.compile(rb"</?[A-Za-z_][\w.-]*:")


# -- the package: where the workbook is, the sheets it lists, what a reader takes for each -----------

@dataclass(frozen=True)
class Listed:
    """One sheet the workbook lists: its name, the member holding it (as python-calamine finds it), its state."""

    name: str
    part: str
    state: str


@dataclass(frozen=True)
class Book:
    """The workbook as python-calamine resolves it, and what is wrong with its list of sheets."""

    folder: str                                   # 'xl/': where workbook.xml, styles and shared strings are
    sheets: tuple[Listed, ...]
    problems: tuple[tuple[str, str, str], ...]    # (code, sheet, value)

    def first(self, name: str) -> Listed | None:
        """The sheet python-calamine reads for `name`: the first listed under it."""
        return next((s for s in self.sheets if s.name == name), None)


def read_book(parts: Parts) -> Book:
    """The workbook's sheets, resolved exactly as python-calamine resolves them (its folder from the
    package relationships, the part from the workbook's, first sheet of a name wins)."""
    root_rels = parts.get("_rels/.rels")
    folder = remembered(_FOLDERS, root_rels, lambda: _book_folder(root_rels), lambda f: size_of_bytes(root_rels, f)) \
        if root_rels else "xl/"
    rels_xml, book_xml = parts.get(folder + "_rels/workbook.xml.rels"), parts.get(folder + "workbook.xml")
    if not book_xml:
        raise Refused(Code.DAMAGED, detail=f"缺少 {folder}workbook.xml")
    key = (folder, rels_xml, book_xml)

    def make() -> Book:
        rels = _relationships(folder + "_rels/workbook.xml.rels", rels_xml) if rels_xml else {}
        return _listed(folder, rels, parse_xml(folder + "workbook.xml", book_xml))

    return remembered(_BOOKS, key, make, lambda book: size_of_bytes(rels_xml, book_xml) + 400 * (len(book.sheets) + 1))


# (folder, workbook rels, workbook) -> Book. Bound: 2 MB.
_BOOKS = Memo("workbook listings", 2 << 20)
# package relationships -> the workbook's folder. Bound: 256 KB.
_FOLDERS = Memo("workbook folders", 256 << 10)


def _book_folder(xml: bytes) -> str:
    """python-calamine's folder of the workbook: that of the last officeDocument relationship's target."""
    target = None
    for rel in _relationships("_rels/.rels", xml).values():
        if rel[1].endswith("/relationships/officeDocument"):
            target = rel[0]
    if target is None:
        raise Refused(Code.DAMAGED, detail="_rels/.rels 中没有工作簿")
    cut = target.rfind("/")
    return target[:cut + 1].removeprefix("/") if cut >= 0 else ""


def _relationships(part: str, xml: bytes) -> dict[str, tuple[str, str]]:
    """Id -> (Target, Type) of a relationships part; an Id given twice is damage (readers differ on it)."""
    root = parse_xml(part, xml)
    if root.tag not in RELS:
        raise Refused(Code.DAMAGED, detail=f"{part} 不是关系部件")
    found: dict[str, tuple[str, str]] = {}
    for el in root.iter():
        if local_name(el.tag) != "Relationship":
            continue
        if el.tag not in REL:
            raise Refused(Code.DAMAGED, detail=f"{part} 中有无法识别的关系条目")
        rel_id = el.get("Id")
        if rel_id is None:
            continue
        if rel_id in found:
            raise Refused(Code.DAMAGED, detail=f"{part} 中关系编号 {rel_id[:20]} 重复")
        found[rel_id] = (el.get("Target", ""), el.get("Type", ""))
    return found


def _listed(folder: str, rels: dict[str, tuple[str, str]], root: ET.Element) -> Book:
    if root.tag not in WORKBOOK:
        raise Refused(Code.DAMAGED, detail=f"{folder}workbook.xml 不是工作簿")
    sheets, seen, problems = [], {}, []
    for el in root.iter():
        if local_name(el.tag) != "sheet":
            continue
        if el.tag not in SHEET:                          # python-calamine would list it all the same
            raise Refused(Code.DAMAGED, detail="工作簿中有无法识别的工作表条目")
        ids = [v for k, v in el.attrib.items() if local_name(k) == "id"]
        if len(ids) > 1:
            raise Refused(Code.DAMAGED, detail="工作表条目有多个关系编号")
        target = rels.get(ids[0], ("", ""))[0] if ids else ""
        part = member_key(target[1:] if target.startswith("/") else folder + target)
        name = el.get("name", "")
        sheets.append(Listed(name, part, el.get("state", "visible")))
        claimed = name.casefold()
        if claimed in seen and (name in READ_SHEETS or seen[claimed] in READ_SHEETS):
            problems.append((Code.SHEET_NAME_TWICE, seen[claimed], seen[claimed]))
        seen.setdefault(claimed, name)
    return Book(folder, tuple(sheets), tuple(dict.fromkeys(problems)))


def plain_parts(parts: Parts, book: Book, scanned: dict[str, "SheetXml"], strings_plain: bool) -> dict[str, bytes]:
    """The parts python-calamine reads text from (values, shared strings) that are not written the plain
    way, rewritten plainly from their trees. (It reads only attributes of the workbook, its
    relationships and the styles, and those it reads as they mean.)"""
    names = [] if strings_plain else [book.folder + "sharedStrings.xml"]
    names += [s.part for s in map(book.first, READ_SHEETS)
              if s is not None and not scanned[s.name].plain and not _calamine_reads(parts.get(s.part))]
    out = {}
    for name in names:
        info = parts.keys.get(member_key(name))
        if info is not None and info.filename not in out:
            out[info.filename] = serialize(parse_xml(info.filename, parts.get(name)))
    return out


def _calamine_reads(sheet: bytes) -> bool:
    """True when python-calamine reads a well-formed sheet's values as they mean although the sheet is not
    written the plain way (other attribute order, quotes, prefixes, white space): no comment, CDATA,
    character reference or processing instruction, and no value written before its cell's formula."""
    return _is_plain(sheet) and not _VALUE_BEFORE_FORMULA.search(sheet)


_VALUE_BEFORE_FORMULA = re.compile(rb"</(?:[\w.-]+:)?v\s*>\s*<(?:[\w.-]+:)?f[\s/>]")


# -- styles ------------------------------------------------------------------------------------------

def unlocked_styles(part: str, xml: bytes) -> frozenset[int]:
    """The cellXfs indexes whose protection unlocks the cell (every other index locks it)."""
    if not xml:
        return frozenset()

    def make() -> frozenset[int]:
        root = parse_xml(part, xml)
        if root.tag not in STYLESHEET:
            raise Refused(Code.DAMAGED, detail=f"{part} 不是样式部件")
        xfs = next((el for el in root if el.tag in CELL_XFS), None)
        found = set()
        for k, xf in enumerate(el for el in (xfs if xfs is not None else ()) if el.tag in XF):
            prot = next((el for el in xf if el.tag in XF_PROTECTION), None)
            if prot is not None and prot.get("locked", "").strip() in ("0", "false"):
                found.add(k)
        return frozenset(found)

    return remembered(_STYLES, xml, make, lambda found: size_of_bytes(xml) + _set_bytes(found, 28))


# styles part -> unlocked cellXfs indexes. Bound: 4 MB.
_STYLES = Memo("unlocked styles", 4 << 20)


# -- worksheets --------------------------------------------------------------------------------------

@dataclass
class SheetXml:
    """What the raw XML of one worksheet says beyond its values."""

    formulas: dict[str, str] = field(default_factory=dict)     # A1 -> formula text ('' if shared)
    unlocked: set[str] = field(default_factory=set)            # A1 of the cells whose style is unlocked
    protected: bool = False
    validations: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)  # (type, box)
    errors: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, col) -> '#DIV/0!' (calamine gives '')
    covered: frozenset[tuple[int, int]] = frozenset()   # (row, col) of the validated cells, up to a limit
    problems: tuple[tuple[str, str], ...] = ()           # (code, A1 or '5:5'): cells or rows written twice, ...
    plain: bool = field(default=False, compare=False)    # its cells are written the plain way (python-calamine
                                                         # reads them as they mean)

    def validated(self, row: int, col: int) -> bool:
        return (row, col) in self.covered or any(r1 <= row <= r2 and c1 <= col <= c2
                                                 for _, (r1, c1, r2, c2) in self.validations)

    def unvalidated(self, cells: AbstractSet[tuple[int, int]]) -> set[tuple[int, int]]:
        """The (row, col) among `cells` that no validation rule covers."""
        return {cell for cell in cells - self.covered if not self.validated(*cell)}

    def nbytes(self) -> int:
        """The bytes this holds, estimated on the large side (for the memos) without a Python loop: a
        text of n characters takes at most 4n + 80 bytes, a key and its slot under 200."""
        text = sum(map(len, self.formulas.values())) + sum(map(len, self.errors.values()))
        return (4 * text + 200 * (len(self.formulas) + len(self.errors)) + 160 * len(self.unlocked)
                + 160 * len(self.covered) + 300 * len(self.validations) + 400 * len(self.problems) + 2000)


def _set_bytes(items, each: int) -> int:
    """A set, dict or frozenset's own table plus `each` bytes per item."""
    return sys.getsizeof(items) + len(items) * each


def scan_sheet(part: str, xml: bytes, unlocked: frozenset[int] = frozenset()) -> SheetXml:
    """Formulas, unlocked cells, error values, protection, validation and the located problems of one
    worksheet. The result is shared by every file with the same sheet bytes: nothing may change it."""
    key = (xml, unlocked)
    out = _SCANNED.get(key)
    if out is None:
        out = scan_plain(xml, unlocked)        # proves the sheet well-formed where it reads it
        if out is None:
            out = scan_tree(part, xml, unlocked)
        if len(xml) <= MEMO_MEMBER_BYTES:
            _SCANNED.put(key, out, size_of_bytes(xml) + _set_bytes(unlocked, 28) + out.nbytes())
    return out


# (sheet part, unlocked styles) -> SheetXml. Bound: 8 MB.
_SCANNED = Memo("scanned sheets", 8 << 20, second_sight=True)

# The plain way, as XlsxWriter, Excel, WPS and LibreOffice write cells: every attribute optional, at most
# once, in the schema's order, with double quotes; in a cell a formula first, then the value, nothing
# else; nothing but cells in a row. Text holds only the five predefined entities, never a character
# reference. Possessive throughout: one pass, no backtracking, whatever the input. What matches is
# well-formed XML but for its characters and undeclared prefixes, which `_plain_split` checks.
_PLAIN_TEXT = rb"[^<&]*+(?:&(?:amp|lt|gt|quot|apos);[^<&]*+)*+"
_PLAIN_VALUE = rb'="[^"<>&]*+"'


def _attrs_in_order(*names: bytes) -> bytes:
    return b"".join(rb"(?: " + n + _PLAIN_VALUE + rb")?+" for n in names)


_PLAIN_CELL = (rb'<c r="[A-Z]{1,3}[1-9][0-9]{0,6}"(?: s="[0-9]{1,9}")?+(?: t="[a-zA-Z]{1,9}")?+'
               + _attrs_in_order(b"cm", b"vm", b"ph") + rb"(?: ?/>|>(?:<f"
               + _attrs_in_order(b"t", b"aca", b"ref", b"dt2D", b"dtr", b"del1", b"del2", b"r1", b"r2", b"ca", b"si", b"bx")
               + rb"(?: ?/>|>" + _PLAIN_TEXT + rb"</f>))?+(?:<v>" + _PLAIN_TEXT + rb"</v>|<v ?/>"
               + rb'|<is><t(?: xml:space="preserve")?>' + _PLAIN_TEXT + rb"</t></is>)?+</c>)")   # a value or inline text
_PLAIN_ROW = (rb"<row" + _attrs_in_order(b"r", b"spans", b"s", b"customFormat", b"ht", b"hidden", b"customHeight",
                                          b"outlineLevel", b"collapsed", b"thickTop", b"thickBot", b"ph",
                                          b"x14ac:dyDescent")
              + rb"(?: ?/>|>(?:" + _PLAIN_CELL + rb")*+</row>)")
_PLAIN_SHEET_DATA = re.compile(rb"<sheetData(?:/>|>(?:" + _PLAIN_ROW + rb")*+</sheetData>)")
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))        # not characters in XML 1.0
_NON_CHARACTER = re.compile(rb"\xef\xbf[\xbe\xbf]")                 # U+FFFE, U+FFFF


def _xml_characters(data: bytes) -> bool:
    """True when `data` is UTF-8 text and markup holding only characters XML allows, and no `]]>`."""
    if len(data.translate(None, _CONTROL)) != len(data) or b"]]>" in data or (
            b"\xef\xbf" in data and _NON_CHARACTER.search(data)):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

_MAIN_DEFAULT = b'xmlns="' + MAIN[0].encode() + b'"'
_CELL_OR_ROW = re.compile(rb"<(?:[\w.-]+:)?(?:c|row)[\s/>]")
_PLAIN_REF = re.compile(rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})"')
_PLAIN_ROW_NUMBER = re.compile(rb'<row r="([0-9]{1,7})"')
_PLAIN_STYLE = re.compile(rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})" s="([0-9]{1,9})"')
_PLAIN_FORMULA = re.compile(rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})"[^<>]*+><f\b[^<>]*?(?:/>|>([^<]*+)</f>)')
_PLAIN_ERROR = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"[^<>]*?\bt="e"[^<>]*+>'
                          rb'(?:<f\b[^<>]*?(?:/>|>[^<]*+</f>))?<v>([^<]*+)</v>')
_INLINE_NOT_TEXT = re.compile(rb't="inlineStr"[^<>/]*+>(?!<is>)')     # an inline-string cell with a <v> or <f>
_FEW_STYLES = 64       # up to this many unlocked styles, one pattern finds just their cells (see _style_pattern)


def scan_plain(xml: bytes, unlocked: frozenset[int] = frozenset()) -> SheetXml | None:
    """`scan_tree`'s result from whole-document patterns, for a sheet written the plain way (which it
    proves well-formed); None for any other sheet, well-formed or not."""
    split = _plain_split(xml)
    if split is None:
        return None
    root_tag, data, tail = split
    rest = _without_header_footer(tail)
    if rest is None:
        return None
    try:           # what follows the sheet data, less its page header and footer, is the same in every form
        protected, validations, covered = remembered(_RULES, root_tag + rest, lambda: _rules(ET.fromstring(
            root_tag + rest)), lambda found: size_of_bytes(root_tag, rest) + _rules_bytes(found))
    except ET.ParseError:          # the sheet data sits deeper than the root: let the tree say
        return None
    out = SheetXml(protected=protected, validations=validations, covered=covered, plain=True)
    refs = _PLAIN_REF.findall(data)
    rows = _PLAIN_ROW_NUMBER.findall(data)
    numbers = [int(r) for r in rows]
    if len(rows) != data.count(b"<row") or 0 in numbers:
        return None
    problems = [(Code.ROW_TWICE, f"{n}:{n}") for n in _repeated(numbers)]
    out.problems = _ordered(problems + [(Code.CELL_TWICE, ref.decode()) for ref in _repeated(refs)])
    if unlocked and len(unlocked) <= _FEW_STYLES:
        out.unlocked = {ref.decode() for ref in _style_pattern(unlocked).findall(data)}
    elif unlocked:
        out.unlocked = {ref.decode() for ref, style in _PLAIN_STYLE.findall(data) if int(style) in unlocked}
    out.formulas = _plain_formulas(data)
    for letters, digits, text in _PLAIN_ERROR.findall(data) if b't="e"' in data else ():
        key = (int(digits) - 1, col_index(letters.decode()))
        out.errors[key] = html.unescape(text.decode("utf-8", "replace")).strip()[:20]
    return out


def _plain_split(xml: bytes) -> tuple[bytes, bytes, bytes] | None:
    """(root start tag, sheetData, what follows it) of a sheet whose cells are written the plain way,
    proven well-formed: the pattern for the sheet data (with its characters and prefixes checked), expat
    for what comes before it, the tree of what follows it (in `scan_plain`)."""
    start = xml.find(b"<sheetData")
    if start < 0 or xml.find(b"<sheetData", start + 1) >= 0 or not _plain_head(xml):
        return None
    whole = _PLAIN_SHEET_DATA.match(xml, start)
    if whole is None:
        return None
    data, head, tail = xml[start:whole.end()], xml[:start], xml[whole.end():]
    if b"\r" in data or xml.count(b'xmlns="') != 1 or (b"inlineStr" in data and _INLINE_NOT_TEXT.search(data)):
        return None                    # (the pattern lets no prefix in; an inline-string cell holds inline text)
    at = head.find(b"<", head.find(b"?>") + 2 if head.startswith(b"<?xml") else 0)
    root_tag = head[at:head.find(b">", at) + 1]
    if not (root_tag.startswith((b"<worksheet ", b"<worksheet>")) and _MAIN_DEFAULT in root_tag):
        return None
    if b"sheetProtection" in head or b"dataValidation" in head or _CELL_OR_ROW.search(head, len(root_tag) + at) \
            or _CELL_OR_ROW.search(tail):
        return None
    if not _xml_characters(data) or (b"x14ac:" in data and b"xmlns:x14ac=" not in root_tag):
        return None
    try:
        check_xml("", head + b"</worksheet>")
    except Refused:
        return None                    # the whole part's check says what is wrong
    return root_tag, data, tail


def _without_header_footer(tail: bytes) -> bytes | None:
    """`tail` without its page header and footer, which name the township (so `tail` differs in every
    form, and the rules' memo would never hit) and hold no rule: proven well-formed here by a strict
    pattern (text only, in the elements the schema allows), so that the rest's parse proves the whole.
    None when the header and footer are not written the plain way (the tree then reads the sheet)."""
    at = tail.find(b"<headerFooter")
    if at < 0:
        return tail
    found = _PLAIN_HEADER_FOOTER.match(tail, at)
    if found is None or not _xml_characters(found[0]) or tail.find(b"<headerFooter", found.end()) >= 0:
        return None
    return tail[:at] + tail[found.end():]


_PLAIN_HEADER_FOOTER = re.compile(
    rb'<headerFooter(?: (?:differentOddEven|differentFirst|scaleWithDoc|alignWithMargins)="[a-z0-9]{1,5}")*+'
    rb"(?:/>|>(?:<(oddHeader|oddFooter|evenHeader|evenFooter|firstHeader|firstFooter)(?: ?/>|>" + _PLAIN_TEXT
    + rb"</\1>))*+</headerFooter>)")


def _repeated(items: list) -> list:
    """The items that occur more than once, each once, in order of first occurrence."""
    if len(set(items)) == len(items):
        return []
    seen: set = set()
    return list(dict.fromkeys(i for i in items if i in seen or seen.add(i)))


def _plain_formulas(xml: bytes) -> dict[str, str]:
    """What `_PLAIN_FORMULA.findall` finds, from the few `<f` tags back to the start tag right before
    each, instead of trying the pattern at every cell. Each step back stops at the previous `<`, so
    the whole stays linear in the document."""
    out: dict[str, str] = {}
    at = xml.find(b"<f")
    while at != -1:
        start = xml.rfind(b"<", 0, at - 1) if at and xml[at - 1] == 0x3E else -1      # 0x3E: '>'
        found = _PLAIN_FORMULA.match(xml, start) if start >= 0 else None
        if found:                                 # a cell written twice: its first formula, as the tree reads
            out.setdefault(found[1].decode(), html.unescape((found[2] or b"").decode("utf-8", "replace")))
        at = xml.find(b"<f", at + 2)
    return out


def _style_pattern(unlocked: frozenset[int]) -> re.Pattern:
    """Cells written `<c r="A1" s="N"` with N among `unlocked` (leading zeros allowed, as readers do)."""
    styles = b"|".join(str(k).encode() for k in sorted(unlocked))
    return remembered(_PATTERNS, unlocked, lambda: re.compile(
        rb'<c r="([A-Z]{1,3}[1-9][0-9]{0,6})" s="0*(?:' + styles + rb')"'),
        lambda p: 4 * sys.getsizeof(p) + _set_bytes(unlocked, 28))


# unlocked styles -> the pattern of their cells. At most 64 styles each: a pattern under 1 KB of source
# and 8 KB compiled (measured: 3 KB), so `re`'s own cache of 512 patterns holds at most 4 MB of them.
# Bound: 512 KB.
_PATTERNS = Memo("unlocked-cell patterns", 512 << 10)


def scan_tree(part: str, xml: bytes, unlocked: frozenset[int] = frozenset()) -> SheetXml:
    """Everything `scan_sheet` gives, from the parsed tree: cells positioned as python-calamine positions
    them (a cell without `r` follows the one before it in its row, a row without `r` the row before)."""
    root = parse_xml(part, xml)
    if root.tag not in WORKSHEET:
        raise Refused(Code.DAMAGED, detail=f"{part} 不是工作表")
    datas = [el for el in root.iter() if el.tag in SHEET_DATA]
    if len(datas) > 1:
        raise Refused(Code.DAMAGED, detail=f"{part} 中有多个表格数据区")
    out = SheetXml()
    out.protected, out.validations, out.covered = _rules(root)
    cells = _walk_cells(part, datas[0] if datas else ET.Element("sheetData"), unlocked, out)
    outside = sum(1 for el in root.iter() if local_name(el.tag) in ("c", "row"))
    if outside != cells:
        raise Refused(Code.DAMAGED, detail=f"{part} 中有表格数据区以外的单元格")
    return out


def _walk_cells(part: str, data: ET.Element, unlocked: frozenset[int], out: SheetXml) -> int:
    """Fill `out` from every row and cell of `data`; the number of rows and cells met."""
    problems: list[tuple[str, str]] = []
    seen_cells: set[tuple[int, int]] = set()
    seen_rows: set[int] = set()
    row, met = 0, 0
    for row_el in data:
        if row_el.tag not in ROW:
            raise Refused(Code.DAMAGED, detail=f"{part} 的表格数据区中有无法识别的内容")
        met += 1
        r = row_el.get("r")
        if r is not None:
            row = _row_number(r)
            if row in seen_rows:
                problems.append((Code.ROW_TWICE, f"{row + 1}:{row + 1}"))
            seen_rows.add(row)
        col = 0
        for cell in row_el:
            if cell.tag not in CELL:
                raise Refused(Code.DAMAGED, detail=f"{part} 的第 {row + 1} 行中有无法识别的内容")
            met += 1
            ref = cell.get("r")
            at = (row, col) if ref is None else _cell_position(ref)
            col = at[1] + 1
            ref = a1(*at)
            if at in seen_cells:
                problems.append((Code.CELL_TWICE, ref))
            seen_cells.add(at)
            _read_cell(part, cell, at, ref, unlocked, out, problems)
        row += 1
    out.problems = _ordered(problems)
    return met


def _ordered(problems: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Each problem once, rows first, then by code and place (the same whichever path found them)."""
    def place(p: tuple[str, str]) -> tuple:
        return (p[0] != Code.ROW_TWICE, p[0], int(p[1].partition(":")[0]) if ":" in p[1] else position(p[1]))
    return tuple(sorted(set(problems), key=place))


def _read_cell(part: str, cell: ET.Element, at: tuple[int, int], ref: str, unlocked: frozenset[int],
               out: SheetXml, problems: list) -> None:
    style = cell.get("s", "").strip()
    if unlocked and style.isascii() and style.isdigit() and int(style) in unlocked:
        out.unlocked.add(ref)
    kinds = []
    for child in cell:
        if child.tag in FORMULA:
            kinds.append("f")
            if ref not in out.formulas:
                out.formulas[ref] = child.text or ""
        elif child.tag in VALUE:
            kinds.append("v")
            if cell.get("t") == "e":
                out.errors[at] = (child.text or "").strip()[:20]
        elif child.tag in INLINE:
            kinds.append("is")
        else:
            raise Refused(Code.DAMAGED, detail=f"{part} 的单元格 {ref} 中有无法识别的内容")
    values = kinds.count("v") + kinds.count("is")
    if values > 1 or kinds.count("f") > 1 or (cell.get("t") == "inlineStr" and "v" in kinds):
        problems.append((Code.VALUE_AND_TEXT, ref))


def _row_number(r: str) -> int:
    if r.isascii() and r.isdigit() and 0 < len(r) <= 7 and int(r) > 0:
        return int(r) - 1
    raise Refused(Code.DAMAGED, detail=f"无效的行号“{r[:20]}”")


def _cell_position(ref: str) -> tuple[int, int]:
    parsed = _CELL_REF.fullmatch(ref)
    if not parsed or parsed.group(2).strip("0") == "":
        raise Refused(Code.DAMAGED, detail=f"无效的单元格地址“{ref[:20]}”")
    return int(parsed.group(2)) - 1, col_index(parsed.group(1).upper())


_CELL_REF = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")

COVERED_CELLS = 100_000              # validated cells listed one by one; boxes beyond are tested as boxes


def _rules(root: ET.Element) -> tuple[bool, list[tuple[str, tuple[int, int, int, int]]], frozenset[tuple[int, int]]]:
    """Protection and data validation of a worksheet's tree (main and x14 rules, matched by namespace)."""
    protected = False
    for el in root.iter():
        if el.tag in PROTECTION:
            protected = el.get("sheet", "0").strip() in ("1", "true")
            break
    found = []
    for el in root.iter():
        if el.tag not in VALIDATION:
            continue
        refs = el.get("sqref", "")
        for child in el:
            if child.tag in SQREF:
                refs += " " + (child.text or "")
        for piece in refs.split():
            box = parse_range(piece)
            if box:
                found.append((el.get("type", ""), box))
    covered: set[tuple[int, int]] = set()
    for _, (r1, c1, r2, c2) in found:
        if len(covered) + (r2 - r1 + 1) * (c2 - c1 + 1) <= COVERED_CELLS:
            covered.update((r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1))
    return protected, found, frozenset(covered)


def _rules_bytes(found) -> int:
    _, validations, covered = found
    return len(validations) * 300 + _set_bytes(covered, 120) + sys.getsizeof(validations)


# (root tag + what follows the sheet data) -> protection and validation. Bound: 8 MB (a crafted sheet's
# 100,000 validated cells alone take about 12 MB, so such a one is not kept at all).
_RULES = Memo("validation rules", 8 << 20)

_REF = re.compile(r"\$?([A-Z]{1,3})\$?(\d+)")


def parse_range(text: str) -> tuple[int, int, int, int] | None:
    """'G5:G13' -> (4, 6, 12, 6), 0-based and inclusive; None if not a range."""
    ends = [_REF.fullmatch(p) for p in text.split(":")]
    if not ends or not all(ends) or len(ends) > 2:
        return None
    (c1, r1), (c2, r2) = (ends[0].groups(), ends[-1].groups())
    return int(r1) - 1, col_index(c1), int(r2) - 1, col_index(c2)


# -- document properties ------------------------------------------------------------------------------

def custom_properties(part: str, xml: bytes) -> dict[str, str]:
    """name -> text of every custom document property."""
    if not xml:
        return {}
    root = parse_xml(part, xml)
    if root.tag not in PROPERTIES:
        raise Refused(Code.DAMAGED, detail=f"{part} 不是文档属性部件")
    found = {}
    for prop in root:
        if prop.tag in PROPERTY:
            value = next(iter(prop), None)
            found[prop.get("name", "")] = "" if value is None else "".join(value.itertext())
    return found


def saved_time(part: str, xml: bytes) -> dt.datetime | None:
    """When the file says it was last saved (dcterms:modified)."""
    if not xml:
        return None
    for el in parse_xml(part, xml).iter():
        if el.tag in MODIFIED:
            return _parse_time(el.text or "")
    return None


def _parse_time(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


# -- shared strings -------------------------------------------------------------------------------------

_SST_TAG = re.compile(rb"<(?:\w+:)?sst\b([^<>]*)>")
_SI = re.compile(rb"<(?:\w+:)?si\b")
_UNIQUE = re.compile(rb'(?<![\w:.-])uniqueCount\s*+=\s*+["\']([^"\']*+)["\']')


def check_shared_strings(part: str, xml: bytes) -> bool:
    """Well-formed, nothing python-calamine would read that an office suite would not, and a
    `uniqueCount` it can trust: it reserves room for that many strings up front, and a lie there
    aborts the process. (Matched by local name, prefix or not, as python-calamine reads it.)
    True if written the plain way (python-calamine reads it as it means)."""
    if not xml:
        return True
    plain = _plain_strings(xml)                # proves the part well-formed where it says True
    if not plain:
        check_xml(part, xml)
        plain = _is_plain(xml, references=True) and _MAIN_DEFAULT in xml[:1024] and not _PREFIXED.search(xml)
    if not plain:
        root = parse_xml(part, xml)
        if root.tag not in SST or any(el.tag.partition("}")[0][1:] not in MAIN for el in root.iter()):
            raise Refused(Code.DAMAGED, detail=f"{part} 中有无法识别的内容")
    m = _SST_TAG.search(xml)
    found = _UNIQUE.search(m.group(1)) if m else None
    declared = found.group(1).decode("utf-8", "replace") if found else None
    if declared is not None and not (declared.isascii() and declared.isdigit() and (
            int(declared) <= xml.count(b"<si>") or int(declared) <= len(_SI.findall(xml)))):   # the first: a quick lower bound
        raise Refused(Code.DAMAGED, detail=f"共享字符串表声明有 {declared[:20]} 项，与实际不符")
    return plain


def _plain_strings(xml: bytes) -> bool:
    """True when the shared strings are written the plain way, as XlsxWriter, LibreOffice and Excel write
    them (plain or rich text runs, the main namespace as the only one, no comment, CDATA or processing
    instruction): one strict pattern that admits only well-formed XML, with its characters and character
    references checked, so expat need not read them. Such a part python-calamine reads as it means."""
    if not (_PLAIN_SST.fullmatch(xml) and _xml_characters(xml)):
        return False
    return b"&#" not in xml or all(_xml_char(int(digits, 16) if hex_ else int(digits))
                                   for hex_, digits in _CHAR_REFERENCE.findall(xml))


def _xml_char(code: int) -> bool:
    return code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF


_STRING_TEXT = rb"[^<&]*+(?:&(?:amp|lt|gt|quot|apos|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});[^<&]*+)*+"
_STRING_T = rb'<t(?: xml:space="preserve")?+(?:/>|>' + _STRING_TEXT + rb"</t>)"
_RUN_PROPERTY = (rb"<(?:rFont|charset|family|b|i|strike|outline|shadow|condense|extend|color|sz|u|vertAlign|scheme)"
                 + _attrs_in_order(b"val", b"auto", b"indexed", b"rgb", b"theme", b"tint") + rb"/>")
_STRING_RUN = rb"<r>(?:<rPr>(?:" + _RUN_PROPERTY + rb")*+</rPr>)?+" + _STRING_T + rb"</r>"
_PLAIN_SST = re.compile(
    rb'<\?xml version="1\.0" encoding="UTF-8"(?: standalone="yes")?+\?>\r?+\n?+<sst xmlns="'
    + MAIN[0].encode() + rb'"(?: count="[0-9]{1,9}")?+(?: uniqueCount="[0-9]{1,9}")?+'
    rb"(?:/>|>(?:<si>(?:" + _STRING_T + rb"|(?:" + _STRING_RUN + rb")++)</si>)*+</sst>)\s*+")
_CHAR_REFERENCE = re.compile(rb"&#(x?)([0-9a-fA-F]{1,7});")


# -- how far a sheet reaches (for python-calamine's sake: it allocates the whole rectangle) ------------

_ROW_OR_CELL = re.compile(    # groups: row attributes | cell r (when it comes first, as all writers put it), attributes, body
    rb"<(?:\w+:)?(?:row\b([^<>]*)>|c\b(?:\s+r=\"([A-Za-z]{1,3}[1-9][0-9]{0,6})\")?([^<>]*?)"
    rb"(?:/>|>((?:[^<]++|<(?!/?(?:\w+:)?c\b))*+)</(?:\w+:)?c>))")
_VALUE = re.compile(rb"<(?:\w+:)?(?:v|is)\b")
_ROW_R = re.compile(rb'(?<![\w:.-])r\s*+=\s*+["\']([^"\']*+)["\']')
SHEET_DATA_MARK = re.compile(rb"<(?:\w+:)?sheetData\b")


def sheet_extent(xml: bytes) -> tuple[int, int]:
    """(rows, cols) from A1 to the farthest cell that holds a value, found by local names as python-calamine
    finds cells (any prefix, any namespace): what it will allocate. Linear-time patterns only."""
    rows = cols = 0
    row, col = -1, -1
    for m in _ROW_OR_CELL.finditer(xml):
        head, raw, body = m.group(2), m.group(3), m.group(4)
        if head is not None:
            row, col = position(head.decode("ascii").upper())
        elif raw is None:                        # <row>
            r = _ROW_R.search(m.group(1))
            row = row + 1 if r is None else _row_number(r.group(1).decode("utf-8", "replace"))
            col = -1
            continue
        else:
            r = _ROW_R.search(raw)
            if r is None:
                col += 1
            else:
                row, col = _cell_position(r.group(1).decode("utf-8", "replace"))
        if body and (row >= rows or col >= cols) and _VALUE.search(body):
            rows, cols = max(rows, row + 1), max(cols, col + 1)
    return rows, cols


# -- the tree, written plainly for python-calamine ----------------------------------------------------

_CELL_ORDER = {"f": 0, "v": 1, "is": 2}


def serialize(root: ET.Element) -> bytes:
    """A tree as plain UTF-8 XML: its main namespace as the default, other namespaces prefixed, double
    quotes, no comment, CDATA or character reference python-calamine could misread (and, in a cell,
    the formula before the value, the order it reads them in)."""
    spaces: dict[str, str] = {}
    for el in root.iter():
        for name in (el.tag, *el.attrib):
            uri = name[1:].partition("}")[0] if name.startswith("{") else ""
            if uri and uri != XML_NS and uri not in spaces:
                spaces[uri] = "" if uri in MAIN and "" not in spaces.values() else f"n{len(spaces)}"
    out: list[str] = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n']
    decls = "".join(f' xmlns{":" + p if p else ""}="{_escape_attr(u)}"' for u, p in spaces.items())
    _write(root, spaces, decls, out)
    return "".join(out).encode("utf-8")


def _qname(name: str, spaces: dict[str, str]) -> str:
    if not name.startswith("{"):
        return name
    uri, _, local = name[1:].partition("}")
    prefix = "xml" if uri == XML_NS else spaces[uri]
    return f"{prefix}:{local}" if prefix else local


def _write(el: ET.Element, spaces: dict[str, str], decls: str, out: list[str]) -> None:
    tag = _qname(el.tag, spaces)
    attrs = "".join(f' {_qname(k, spaces)}="{_escape_attr(v)}"' for k, v in el.attrib.items())
    out.append(f"<{tag}{decls}{attrs}>")
    if el.text:
        out.append(_escape_text(el.text))
    children = list(el)
    if el.tag in CELL:
        children.sort(key=lambda c: _CELL_ORDER.get(local_name(c.tag), 3))
    for child in children:
        _write(child, spaces, "", out)
        if child.tail:
            out.append(_escape_text(child.tail))
    out.append(f"</{tag}>")


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _escape_attr(text: str) -> str:
    return (_escape_text(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;"))

