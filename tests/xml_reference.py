"""What an .xlsx says beyond its values, read with a real XML parser: the reference the reader is held to.

Namespace-aware ElementTree over the parts that carry meaning, written from the file format and from
how python-calamine finds sheets, never from the reader's code. `extract(data)` returns plain data:

    {"sheets": [(name, visibility), ...],          # workbook order; visible | hidden | veryhidden
     "saved": datetime | None,                      # docProps/core.xml dcterms:modified
     "properties": {name: text},                    # docProps/custom.xml
     "worksheets": {name: {"formulas": {A1: text},  # '' for a shared formula's follower
                           "unlocked": {A1, ...},   # cells whose cellXfs style has protection locked="0"
                           "validations": [(type, (r1, c1, r2, c2)), ...] sorted,
                           "protected": bool,
                           "errors": {(row, col): "#DIV/0!"}}}}

or raises `Unreadable(reason)` for a file no XML reader can take (not a zip, not well-formed, a DTD, no
workbook): the reasons a reader may refuse a file for.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
import xml.etree.ElementTree as ET

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
MAIN_STRICT = "http://purl.oclc.org/ooxml/spreadsheetml/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
X14 = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
XM = "http://schemas.microsoft.com/office/excel/2006/main"
CUSTOM = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
DCTERMS = "http://purl.org/dc/terms/"

_REF = re.compile(r"\$?([A-Z]{1,3})\$?([0-9]+)")
_CELL = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")


class Unreadable(Exception):
    """The file cannot be read as a workbook at all; `reason` says why, in a word a test can match."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def extract(data: bytes) -> dict:
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise Unreadable("ole", "Office 97 container (an .xls, or an encrypted .xlsx)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        # members found as python-calamine finds them: backslashes as slashes, ASCII case ignored
        names = {n.replace("\\", "/").lower(): n for n in zf.namelist()}
    except zipfile.BadZipFile as exc:
        raise Unreadable("zip", str(exc)) from None
    if "xl/workbook.bin" in names:
        raise Unreadable("xlsb")
    if "xl/workbook.xml" not in names:
        raise Unreadable("no-workbook")

    def part(name: str) -> ET.Element | None:
        if name.lower() not in names:
            return None
        try:
            xml = zf.read(names[name.lower()])
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:    # a bad CRC, a truncated member
            raise Unreadable("zip", f"{name}: {exc}") from None
        return parse(xml, name)

    sheets, targets = _sheets(part("xl/workbook.xml"), part("xl/_rels/workbook.xml.rels"))
    unlocked = _unlocked_styles(part("xl/styles.xml"))
    worksheets = {}
    for (name, _), target in zip(sheets, targets):
        root = part(target) if target else None
        worksheets[name] = _worksheet(root, unlocked)
    return {"sheets": sheets, "saved": _saved(part("docProps/core.xml")),
            "properties": _properties(part("docProps/custom.xml")), "worksheets": worksheets}


def parse(xml: bytes, name: str = "") -> ET.Element:
    """A part's root; Unreadable for a DTD (which a safe reader refuses) or XML that is not well-formed."""
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml or "<!DOCTYPE".encode("utf-16-le") in xml:
        raise Unreadable("dtd", name)
    try:
        return ET.fromstring(xml)
    except (ET.ParseError, LookupError) as exc:           # LookupError: an encoding no reader knows
        raise Unreadable("not-well-formed", f"{name}: {exc}") from None


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _sheets(book: ET.Element | None, rels: ET.Element | None) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, visibility) of every sheet in workbook order, and the part each is in, found as
    python-calamine finds it: the relationship's Target, with '/xl/' made 'xl/' and 'xl/' prefixed
    where missing (a sheet whose relationship is not found has no part here)."""
    if book is None:
        raise Unreadable("no-workbook")
    targets_by_id = {}
    for rel in rels.iter(f"{{{PKG_REL}}}Relationship") if rels is not None else ():
        target = rel.get("Target", "")
        targets_by_id[rel.get("Id", "")] = (target[1:] if target.startswith("/xl/") else target
                                            if target.startswith("xl/") else "xl/" + target)
    sheets, targets = [], []
    for ns in (MAIN, MAIN_STRICT):
        for sheet in book.iter(f"{{{ns}}}sheet"):
            state = sheet.get("state", "visible")
            sheets.append((sheet.get("name", ""), state.lower()))
            targets.append(targets_by_id.get(sheet.get(f"{{{REL}}}id", ""), ""))
    return sheets, targets


def _unlocked_styles(styles: ET.Element | None) -> frozenset[int]:
    if styles is None:
        return frozenset()
    found = set()
    for xfs in styles.iter(f"{{{MAIN}}}cellXfs"):
        for k, xf in enumerate(xfs.findall(f"{{{MAIN}}}xf")):
            prot = xf.find(f"{{{MAIN}}}protection")
            if prot is not None and prot.get("locked") in ("0", "false"):
                found.add(k)
        break                                        # the first cellXfs is the one readers use
    return frozenset(found)


def _worksheet(root: ET.Element | None, unlocked: frozenset[int]) -> dict:
    out = {"formulas": {}, "unlocked": set(), "validations": [], "protected": False, "errors": {}}
    if root is None or local(root.tag) != "worksheet":
        return out
    for row, col, ref, cell in _cells(root):
        style = cell.get("s", "0")           # no style: the first cellXfs entry
        if style.isascii() and style.isdigit() and int(style) in unlocked:
            out["unlocked"].add(ref)
        f = cell.find(f"{{{MAIN}}}f")
        if f is not None:
            out["formulas"][ref] = "".join(f.itertext())
        v = cell.find(f"{{{MAIN}}}v")
        if cell.get("t") == "e" and v is not None:
            out["errors"][(row, col)] = "".join(v.itertext()).strip()[:20]
    prot = root.find(f"{{{MAIN}}}sheetProtection")
    out["protected"] = prot is not None and prot.get("sheet", "0") in ("1", "true")
    out["validations"] = sorted(_validations(root))
    return out


def _cells(root: ET.Element):
    """(row, col, A1, element) of every cell, placed as a reader places them: a row or cell without
    an address follows the one before it."""
    row = -1
    for data in root.iter(f"{{{MAIN}}}sheetData"):
        for r in data.findall(f"{{{MAIN}}}row"):
            number = r.get("r")
            row = row + 1 if number is None else int(number) - 1
            col = -1
            for c in r.findall(f"{{{MAIN}}}c"):
                ref = c.get("r")
                if ref is None:
                    col += 1
                    yield max(row, 0), col, _a1(max(row, 0), col), c
                    continue
                m = _CELL.fullmatch(ref)
                if not m:
                    raise Unreadable("bad-address", ref)
                col, row = _col(m.group(1).upper()), int(m.group(2)) - 1
                yield row, col, ref.upper(), c


def _validations(root: ET.Element):
    """(type, box) of every validated range, in the main namespace and in Excel 2010's extension."""
    for v in root.iter(f"{{{MAIN}}}dataValidation"):
        yield from _boxes(v.get("type", ""), v.get("sqref", ""))
    for v in root.iter(f"{{{X14}}}dataValidation"):
        refs = " ".join(filter(None, [v.get("sqref", "")] + ["".join(s.itertext()) for s in v.iter(f"{{{XM}}}sqref")]))
        yield from _boxes(v.get("type", ""), refs)


def _boxes(kind: str, refs: str):
    for text in refs.split():
        ends = [_REF.fullmatch(p) for p in text.split(":")]
        if ends and all(ends) and len(ends) <= 2:
            (c1, r1), (c2, r2) = ends[0].groups(), ends[-1].groups()
            yield kind, (int(r1) - 1, _col(c1), int(r2) - 1, _col(c2))


def _saved(core: ET.Element | None) -> dt.datetime | None:
    node = core.find(f"{{{DCTERMS}}}modified") if core is not None else None
    if node is None or not node.text:
        return None
    try:
        t = dt.datetime.fromisoformat(node.text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _properties(custom: ET.Element | None) -> dict[str, str]:
    out = {}
    for prop in custom.iter(f"{{{CUSTOM}}}property") if custom is not None else ():
        value = next(iter(prop), None)
        out[prop.get("name", "")] = "".join(value.itertext()) if value is not None else ""
    return out


def _col(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _a1(row: int, col: int) -> str:
    letters, col = "", col + 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{row + 1}"
