"""Re-serialisations and mutations of a workbook's XML parts, for the metamorphic and mutation tests.

A `Package` is a workbook's zip members in order. `serialize(xml, Style(...))` writes a part back from
its ElementTree with the choices XML leaves free (quotes, prefixes, attribute order, whitespace between
elements, character references, CDATA, comments, a BOM); `equivalent(a, b)` proves two parts mean the
same. `TRANSFORMS` are the named variants the metamorphic test applies; `mutate(package, rng)` is one
random damage of the kind a careless tool or a broken transfer makes.
"""

from __future__ import annotations

import decimal
import io
import random
import re
import zipfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
X14AC = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"
X14 = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"
XM = "http://schemas.microsoft.com/office/excel/2006/main"
CUSTOM = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
CORE = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
DC = "http://purl.org/dc/elements/1.1/"
DCTERMS = "http://purl.org/dc/terms/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XML_SUFFIXES = (".xml", ".rels")
# Attributes whose value names prefixes: renamed with them.
PREFIX_LISTS = {f"{{{MC}}}Ignorable", f"{{{MC}}}ProcessContent", f"{{{MC}}}MustUnderstand"}
QNAME_VALUES = {f"{{{XSI}}}type"}


# -- the zip ----------------------------------------------------------------------------------------

@dataclass
class Package:
    """A workbook's members in zip order, and how they are compressed."""

    parts: dict[str, bytes]
    compression: int = zipfile.ZIP_DEFLATED
    level: int | None = None

    @classmethod
    def load(cls, data: bytes) -> "Package":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return cls({i.filename: zf.read(i.filename) for i in zf.infolist()})

    def dump(self) -> bytes:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", self.compression, compresslevel=self.level) as zf:
            for name, blob in self.parts.items():
                info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = self.compression
                zf.writestr(info, blob, compresslevel=self.level)
        return out.getvalue()

    def xml_parts(self) -> list[str]:
        return [n for n in self.parts if n.lower().endswith(XML_SUFFIXES)]

    def copy(self) -> "Package":
        return Package(dict(self.parts), self.compression, self.level)


def sheet_parts(pkg: Package) -> dict[str, str]:
    """Sheet name -> part, from the workbook and its relationships (read with a parser)."""
    rels = ET.fromstring(pkg.parts["xl/_rels/workbook.xml.rels"])
    target = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{{{PKG_REL}}}Relationship")}
    book = ET.fromstring(pkg.parts["xl/workbook.xml"])
    out = {}
    for sheet in book.iter(f"{{{MAIN}}}sheet"):
        t = target[sheet.get(f"{{{REL}}}id")]
        out[sheet.get("name")] = t.lstrip("/") if t.startswith("/xl/") else t if t.startswith("xl/") else "xl/" + t
    return out


# -- writing a part back ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Style:
    """The free choices of one serialisation. `prefixes` maps a namespace to the prefix to write it with
    ('' = the default namespace); `mixed` also declares that namespace as the default on the root, and
    writes with its prefix only the elements named in `prefixed` (the others unprefixed)."""

    quote: str = '"'
    prefixes: tuple[tuple[str, str], ...] = ()
    mixed: str | None = None                # a namespace written both ways
    prefixed: tuple[str, ...] = ()          # local names written with the mixed namespace's prefix
    attribute_order: int | None = None      # seed of a shuffle (namespace declarations included)
    indent: bool = False
    charrefs: str = ""                       # ordinary characters as references: "" none, "text", "all" (values too)
    cdata: tuple[str, ...] = ()            # local names of the elements whose text is written as CDATA ('*': all)
    comments: bool = False                  # a comment before every child element
    formula_comments: bool = False          # a comment in the middle of every formula
    bom: bool = False
    declaration: bool = True


def declared(xml: bytes) -> list[tuple[str, str]]:
    """(prefix, namespace) of every declaration in a part, in document order."""
    return [ns for _, ns in ET.iterparse(io.BytesIO(xml), events=("start-ns",))]


def serialize(xml: bytes, style: Style, tree: ET.Element | None = None) -> bytes:
    """The part written back with `style` (from `tree` when given: a tree edited since it was parsed)."""
    root = ET.fromstring(xml) if tree is None else tree
    decls = declared(xml)
    old = {}                                          # prefix -> namespace, as the part declared them
    uri_prefix: dict[str, str] = {}
    for prefix, uri in decls:
        old.setdefault(prefix, uri)
        uri_prefix.setdefault(uri, prefix)
    for uri in _namespaces(root):
        if uri not in uri_prefix:
            uri_prefix[uri] = f"ns{len(uri_prefix)}"
    uri_prefix.update((uri, prefix) for uri, prefix in style.prefixes if uri in uri_prefix)
    uri_prefix[XML_NS] = "xml"
    writer = _Writer(style, uri_prefix, old)
    body = writer.element(root, top=True)
    head = ""
    if style.declaration:
        q = style.quote
        head = f"<?xml version={q}1.0{q} encoding={q}UTF-8{q} standalone={q}yes{q}?>\n"
    out = (head + body).encode("utf-8")
    return (b"\xef\xbb\xbf" + out) if style.bom else out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespaces(root: ET.Element) -> list[str]:
    found = []
    for el in root.iter():
        for name in [el.tag, *el.attrib]:
            if name.startswith("{"):
                uri = name[1:].split("}", 1)[0]
                if uri not in found:
                    found.append(uri)
    return found


class _Writer:
    def __init__(self, style: Style, uri_prefix: dict[str, str], old: dict[str, str]) -> None:
        self.style, self.uri_prefix, self.old = style, uri_prefix, old
        self.rng = random.Random(style.attribute_order) if style.attribute_order is not None else None
        self.attr_prefix: dict[str, str] = {}         # for a namespace written as the default: attributes need one

    def name(self, tag: str, attribute: bool = False) -> str:
        if not tag.startswith("{"):
            return tag
        uri, loc = tag[1:].split("}", 1)
        prefix = self.uri_prefix[uri]
        if attribute and prefix == "":
            prefix = self.attr_prefix.setdefault(uri, f"a{len(self.attr_prefix)}")
        elif not attribute and self.style.mixed == uri and loc not in self.style.prefixed:
            prefix = ""
        return f"{prefix}:{loc}" if prefix else loc

    def value(self, key: str, value: str) -> str:
        """An attribute value that names prefixes, with the prefixes renamed."""
        def rename(token: str, qname: bool) -> str:
            prefix, sep, rest = token.partition(":") if qname else (token, "", "")
            if qname and not sep:
                return token
            uri = self.old.get(prefix)
            new = self.uri_prefix.get(uri, prefix) if uri is not None else prefix
            return f"{new}{sep}{rest}"
        if key in PREFIX_LISTS:
            return " ".join(rename(t, False) for t in value.split())
        if key in QNAME_VALUES:
            return rename(value, True)
        return value

    def element(self, el: ET.Element, top: bool = False) -> str:
        attrs = [(self.name(k, attribute=True), self.value(k, v)) for k, v in el.attrib.items()]
        tag = self.name(el.tag)
        if top:
            decls = []
            for uri, prefix in self.uri_prefix.items():
                if uri == XML_NS:
                    continue
                decls.append(("xmlns:" + prefix if prefix else "xmlns", uri))
                if self.style.mixed == uri and prefix:
                    decls.append(("xmlns", uri))
            for uri, prefix in self.attr_prefix.items():
                decls.append(("xmlns:" + prefix, uri))
            attrs = decls + attrs
        elif not el.tag.startswith("{") and "" in self.uri_prefix.values():
            attrs.insert(0, ("xmlns", ""))
        if self.rng is not None:
            self.rng.shuffle(attrs)
        q = self.style.quote
        head = "<" + tag + "".join(f" {k}={q}{self.escape(v, attribute=True)}{q}" for k, v in attrs)
        children = list(el)
        text = el.text or ""
        if not children and not text:
            return head + "/>"
        parts = [head, ">"]
        if children:
            pad = "\n  " if self.style.indent else ""
            for child in children:
                parts.append(pad)
                if self.style.comments:
                    parts.append("<!-- between elements -->")
                parts.append(self.element(child))
            parts.append("\n" if self.style.indent else "")
        else:
            parts.append(self.text(text, _local(el.tag)))
        parts.append(f"</{tag}>")
        return "".join(parts)

    def text(self, text: str, name: str) -> str:
        if self.style.formula_comments and name == "f" and len(text) > 1:
            half = len(text) // 2
            return self.text(text[:half], "") + "<!-- inside a formula -->" + self.text(text[half:], "")
        if (name in self.style.cdata or "*" in self.style.cdata) and "\r" not in text:
            return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"
        return self.escape(text)

    def escape(self, text: str, attribute: bool = False) -> str:
        if not self.style.charrefs:              # the common case, without a walk over every character
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
            if attribute:
                text = text.replace("\n", "&#10;").replace("\t", "&#9;")
                text = text.replace('"', "&quot;") if self.style.quote == '"' else text.replace("'", "&apos;")
            return text
        out = []
        for k, ch in enumerate(text):
            if ch == "&":
                out.append("&amp;")
            elif ch == "<":
                out.append("&lt;")
            elif ch == ">":
                out.append("&gt;")
            elif ch == "\r" or (attribute and ch in "\n\t"):
                out.append(f"&#{ord(ch)};")
            elif attribute and ch == self.style.quote:
                out.append("&quot;" if ch == '"' else "&apos;")
            elif ch.isalnum() and (self.style.charrefs == "all" or (self.style.charrefs == "text" and not attribute)):
                out.append(f"&#{ord(ch)};" if k % 2 else f"&#x{ord(ch):X};")
            else:
                out.append(ch)
        return "".join(out)


def equivalent(a: bytes, b: bytes) -> str | None:
    """None if the two parts are the same XML (names resolved, comments and whitespace between elements
    ignored, prefixes in prefix-valued attributes resolved), else where they first differ."""
    ta, tb = _resolved(a), _resolved(b)
    return _differ(ta, tb, ta.tag)


def _resolved(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)
    old = {}
    for prefix, uri in declared(xml):
        old.setdefault(prefix, uri)
    for el in root.iter():
        for key in PREFIX_LISTS & el.attrib.keys():
            el.set(key, " ".join(sorted(old.get(t, t) for t in el.get(key).split())))
        for key in QNAME_VALUES & el.attrib.keys():
            prefix, _, rest = el.get(key).rpartition(":")
            el.set(key, f"{{{old.get(prefix, prefix)}}}{rest}")
    return root


def _differ(a: ET.Element, b: ET.Element, where: str) -> str | None:
    if a.tag != b.tag:
        return f"{where}: tag {a.tag} != {b.tag}"
    if a.attrib != b.attrib:
        return f"{where}: attributes {a.attrib} != {b.attrib}"
    ca, cb = list(a), list(b)
    ta, tb = a.text or "", b.text or ""
    if ca or cb:                                        # element content: whitespace between elements is free
        ta, tb = ta.strip(), tb.strip()
    if ta != tb:
        return f"{where}: text {ta!r} != {tb!r}"
    if len(ca) != len(cb):
        return f"{where}: {len(ca)} children != {len(cb)}"
    for k, (x, y) in enumerate(zip(ca, cb)):
        if (x.tail or "").strip() != (y.tail or "").strip():
            return f"{where}/{x.tag}[{k}]: tail differs"
        found = _differ(x, y, f"{where}/{_local(x.tag)}[{k}]")
        if found:
            return found
    return None


# -- the metamorphic transforms ----------------------------------------------------------------------

def restyle(style: Style, only: Callable[[str], bool] = lambda name: True) -> Callable[[Package], Package]:
    """Every XML part (or those `only` names) written back with `style`."""
    def apply(pkg: Package) -> Package:
        out = pkg.copy()
        for name in pkg.xml_parts():
            if only(name):
                out.parts[name] = serialize(pkg.parts[name], style)
        return out
    return apply


def retree(edit: Callable[[Package, str, ET.Element], bool],
           only: Callable[[str], bool]) -> Callable[[Package], Package]:
    """The parts `only` names, edited as trees by `edit(pkg, name, root)` (True if it changed something),
    then written back keeping their prefixes."""
    def apply(pkg: Package) -> Package:
        out = pkg.copy()
        for name in pkg.xml_parts():
            if only(name):
                root = ET.fromstring(pkg.parts[name])
                if edit(pkg, name, root):
                    out.parts[name] = serialize(pkg.parts[name], Style(), tree=root)
        return out
    return apply


def _is_sheet(name: str) -> bool:
    return name.startswith("xl/worksheets/") and name.endswith(".xml")


def _cells(root: ET.Element):
    return root.iter(f"{{{MAIN}}}c")


def _shared_strings(pkg: Package) -> list[ET.Element]:
    blob = pkg.parts.get("xl/sharedStrings.xml")
    return ET.fromstring(blob).findall(f"{{{MAIN}}}si") if blob else []


def _inline_strings(pkg: Package, name: str, root: ET.Element) -> bool:
    """Every shared-string cell holds its string inline (t="inlineStr" and an <is> copied from the table)."""
    table = _shared_strings(pkg)
    changed = False
    for c in _cells(root):
        v = c.find(f"{{{MAIN}}}v")
        if c.get("t") == "s" and v is not None:
            c.set("t", "inlineStr")
            c.remove(v)
            inline = ET.SubElement(c, f"{{{MAIN}}}is")
            inline.extend(list(table[int(v.text)]))
            changed = True
    return changed


def _shared_formulas(pkg: Package, name: str, root: ET.Element) -> bool:
    """Every formula written as the master of a shared formula over its own cell."""
    changed = False
    for k, c in enumerate(_cells(root)):
        f = c.find(f"{{{MAIN}}}f")
        if f is not None and f.text and not f.get("t"):
            f.set("t", "shared")
            f.set("ref", c.get("r"))
            f.set("si", str(k))
            changed = True
    return changed


def _numbers(form: Callable[[str], str]) -> Callable[[Package, str, ET.Element], bool]:
    def edit(pkg: Package, name: str, root: ET.Element) -> bool:
        changed = False
        for c in _cells(root):
            v = c.find(f"{{{MAIN}}}v")
            if c.get("t", "n") == "n" and v is not None and v.text:
                v.text = form(v.text)
                changed = True
        return changed
    return edit


def trailing_zero(text: str) -> str:
    """'1.5' -> '1.50', '2' -> '2.00'."""
    return text + "0" if "." in text else text + ".00"


def exponent(text: str) -> str:
    """'1.5' -> '1.5E0', '100' -> '1E2', '0.25' -> '2.5E-1'."""
    sign, digits, exp = decimal.Decimal(text).normalize().as_tuple()
    if digits == (0,):
        return "0E0"
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return ("-" if sign else "") + f"{mantissa}E{exp + len(digits) - 1}"


def rezip(compression: int, level: int | None = None, reverse: bool = False) -> Callable[[Package], Package]:
    def apply(pkg: Package) -> Package:
        out = Package(dict(reversed(pkg.parts.items())) if reverse else dict(pkg.parts), compression, level)
        return out
    return apply


def MAIN_PARTS(name: str) -> bool:       # noqa: N802 - a constant-like selector
    """The parts in SpreadsheetML's main namespace (workbook, styles, strings, sheets)."""
    return name.startswith("xl/") and not name.startswith("xl/theme/") and name.endswith(".xml")

# name -> (transform, whether each part it rewrites must be XML-equivalent to the original)
TRANSFORMS: dict[str, tuple[Callable[[Package], Package], bool]] = {
    "reserialized": (restyle(Style()), True),
    "single-quotes": (restyle(Style(quote="'")), True),
    "main-as-x-prefix": (restyle(Style(prefixes=((MAIN, "x"),)), only=MAIN_PARTS), True),
    "main-x-prefix-for-formulas-only": (restyle(Style(prefixes=((MAIN, "x"),), mixed=MAIN, prefixed=("f",)),
                                                only=MAIN_PARTS), True),
    "main-x-prefix-for-cells-and-rules": (restyle(Style(
        prefixes=((MAIN, "x"),), mixed=MAIN, prefixed=("c", "sheet", "sheetProtection", "dataValidation", "xf",
                                                       "protection", "cellXfs", "si", "t")), only=MAIN_PARTS), True),
    "relationships-as-relationships-prefix": (restyle(Style(prefixes=((REL, "relationships"),))), True),
    "relationships-as-other-prefix": (restyle(Style(prefixes=((REL, "rel"),))), True),
    "package-rels-prefixed": (restyle(Style(prefixes=((PKG_REL, "pr"), (CONTENT_TYPES, "ct")))), True),
    "extension-prefixes": (restyle(Style(prefixes=((MC, "compat"), (X14AC, "ac"), (X14, "ext14"), (XM, "xmm")))), True),
    "property-prefixes": (restyle(Style(prefixes=((CUSTOM, "op"), (VT, "vtypes"), (CORE, "core"), (DC, "d"),
                                                  (DCTERMS, "terms"), (XSI, "inst")))), True),
    "attribute-order": (restyle(Style(attribute_order=20261130)), True),
    "whitespace-between-elements": (restyle(Style(indent=True)), True),
    "character-references": (restyle(Style(charrefs="all")), True),
    "character-references-in-text": (restyle(Style(charrefs="text")), True),
    "character-references-in-sheets": (restyle(Style(charrefs="all"), only=_is_sheet), True),
    "cdata-everywhere": (restyle(Style(cdata=("*",))), True),
    "cdata-formulas": (restyle(Style(cdata=("f",))), True),
    "cdata-strings-and-properties": (restyle(Style(cdata=("t", "lpwstr", "modified"))), True),
    "comments-between-elements": (restyle(Style(comments=True)), True),
    "comments-inside-formulas": (restyle(Style(formula_comments=True)), True),
    "bom": (restyle(Style(bom=True)), True),
    "no-xml-declaration": (restyle(Style(declaration=False)), True),
    "inline-strings": (retree(_inline_strings, _is_sheet), False),
    "shared-formulas": (retree(_shared_formulas, _is_sheet), False),
    "numbers-trailing-zero": (retree(_numbers(trailing_zero), _is_sheet), False),
    "numbers-exponent": (retree(_numbers(exponent), _is_sheet), False),
    "stored-reversed-zip": (rezip(zipfile.ZIP_STORED, reverse=True), True),
    "deflate-level-1": (rezip(zipfile.ZIP_DEFLATED, 1), True),
}


# -- mutations ----------------------------------------------------------------------------------------

_TAG = re.compile(rb"<(/?)([A-Za-z_][\w.:-]*)([^<>]*?)(/?)>")


@dataclass
class Span:
    """One element of a part: where it starts and ends in the bytes, its name and its parent's start."""

    start: int
    end: int
    name: bytes
    depth: int
    parent: int = -1
    children: list[int] = field(default_factory=list)


def spans(xml: bytes) -> list[Span]:
    """Every element of a well-formed part without comments or CDATA (as our writer writes them)."""
    out: list[Span] = []
    stack: list[int] = []
    for m in _TAG.finditer(xml):
        closing, name, empty = m.group(1), m.group(2), m.group(4)
        if closing:
            out[stack.pop()].end = m.end()
            continue
        span = Span(m.start(), m.end(), name, len(stack), stack[-1] if stack else -1)
        if stack:
            out[stack[-1]].children.append(len(out))
        out.append(span)
        if not empty:
            stack.append(len(out) - 1)
    return out


Mutation = Callable[[Package, random.Random], "tuple[str, Package] | None"]


def _pick_part(pkg: Package, rng: random.Random, weights: dict[str, int] | None = None) -> str:
    names = pkg.xml_parts()
    w = weights or {}
    return rng.choices(names, [w.get(n, 1) for n in names])[0]


def _edit(pkg: Package, part: str, blob: bytes) -> Package:
    out = pkg.copy()
    out.parts[part] = blob
    return out


def _form_weights(pkg: Package) -> dict[str, int]:
    form = sheet_parts(pkg).get("评分表", "")
    return {form: 6, "xl/sharedStrings.xml": 3, "xl/workbook.xml": 3, "xl/styles.xml": 2}


def drop_element(pkg: Package, rng: random.Random):
    part = _pick_part(pkg, rng, _form_weights(pkg))
    el = rng.choice(spans(pkg.parts[part])[1:])
    blob = pkg.parts[part]
    return f"drop {el.name.decode()} in {part}", _edit(pkg, part, blob[:el.start] + blob[el.end:])


def duplicate_element(pkg: Package, rng: random.Random):
    part = _pick_part(pkg, rng, _form_weights(pkg))
    el = rng.choice(spans(pkg.parts[part])[1:])
    blob = pkg.parts[part]
    return f"duplicate {el.name.decode()} in {part}", _edit(pkg, part, blob[:el.end] + blob[el.start:])


def swap_siblings(pkg: Package, rng: random.Random):
    part = _pick_part(pkg, rng, _form_weights(pkg))
    all_spans = spans(pkg.parts[part])
    parents = [s for s in all_spans if len(s.children) >= 2]
    if not parents:
        return None
    parent = rng.choice(parents)
    i, j = sorted(rng.sample(range(len(parent.children)), 2))
    a, b = all_spans[parent.children[i]], all_spans[parent.children[j]]
    blob = pkg.parts[part]
    new = blob[:a.start] + blob[b.start:b.end] + blob[a.end:b.start] + blob[a.start:a.end] + blob[b.end:]
    return f"swap {a.name.decode()} and {b.name.decode()} in {part}", _edit(pkg, part, new)


def corrupt_tag(pkg: Package, rng: random.Random):
    """A start or end tag's name changed (the document may stay well-formed only if both change)."""
    part = _pick_part(pkg, rng, _form_weights(pkg))
    blob = pkg.parts[part]
    tags = list(_TAG.finditer(blob))
    m = rng.choice(tags[1:])
    name = m.group(2)
    new_name = rng.choice([name + b"x", name[:-1] or b"q", name.upper(), b"v", b"f", b"c"])
    return (f"rename tag <{m.group(1).decode()}{name.decode()}> to {new_name.decode()} in {part}",
            _edit(pkg, part, blob[:m.start(2)] + new_name + blob[m.end(2):]))


def duplicate_cell_or_row(pkg: Package, rng: random.Random):
    part = sheet_parts(pkg)["评分表"]
    blob = pkg.parts[part]
    kind = rng.choice([b"c", b"row"])
    chosen = [s for s in spans(blob) if s.name == kind]
    el = rng.choice(chosen)
    return f"duplicate a {kind.decode()} in {part}", _edit(pkg, part, blob[:el.end] + blob[el.start:])


def second_value(pkg: Package, rng: random.Random):
    """A cell given a second <v>, an inline string beside its value, or a t="inlineStr"."""
    part = sheet_parts(pkg)["评分表"]
    blob = pkg.parts[part]
    cells = [m for m in re.finditer(rb'<c r="G[0-9]+"[^>]*>(<f>[^<]*</f>)?<v>[^<]*</v></c>', blob)]
    m = rng.choice(cells)
    text = m.group(0)
    how = rng.choice(["second-v", "inline-beside", "inlineStr-type", "v-before-f"])
    if how == "second-v":
        new = text.replace(b"</c>", b"<v>7</v></c>")
    elif how == "inline-beside":
        new = text.replace(b"</c>", b"<is><t>x</t></is></c>")
    elif how == "inlineStr-type":
        new = text.replace(b"<c ", b'<c t="inlineStr" ', 1) if b" t=" not in text else text.replace(b' t="', b' u="')
    else:
        new = text.replace(b"<v>", b"<v>3</v><v>", 1)
    ref = re.match(rb'<c r="([A-Z0-9]+)"', text).group(1).decode()
    return f"{how} at {ref}", _edit(pkg, part, blob[:m.start()] + new + blob[m.end():])


def rename_sheet_to_form(pkg: Package, rng: random.Random):
    blob = pkg.parts["xl/workbook.xml"]
    names = re.findall(rb'<sheet name="([^"]*)"', blob)
    others = [n for n in names if n != "评分表".encode()]
    victim = rng.choice(others)
    new = blob.replace(b'name="' + victim + b'"', "name=\"评分表\"".encode(), 1)
    return f"sheet {victim.decode()} renamed to the form's name", _edit(pkg, "xl/workbook.xml", new)


def break_well_formedness(pkg: Package, rng: random.Random):
    part = _pick_part(pkg, rng, _form_weights(pkg))
    blob = pkg.parts[part]
    how = rng.choice(["truncate", "drop-gt", "unclosed", "stray-amp", "stray-lt", "bad-utf8", "drop-end-tag"])
    at = rng.randrange(len(blob) // 4, len(blob) - 1)
    if how == "truncate":
        new = blob[:at]
    elif how == "drop-gt":
        gt = blob.find(b">", at)
        new = blob[:gt] + blob[gt + 1:]
    elif how == "unclosed":
        lt = blob.find(b"<", at)
        new = blob[:lt] + b"<open>" + blob[lt:]
    elif how == "stray-amp":
        lt = blob.find(b"<", at)
        new = blob[:lt] + b"&" + blob[lt:]
    elif how == "stray-lt":
        gt = blob.find(b">", at) + 1
        new = blob[:gt] + b"<" + blob[gt:]
    elif how == "bad-utf8":
        gt = blob.find(b">", at) + 1
        new = blob[:gt] + b"\xff\xfe" + blob[gt:]
    else:
        ends = [m for m in re.finditer(rb"</[^>]+>", blob) if m.start() >= at] or list(re.finditer(rb"</[^>]+>", blob))
        m = ends[0]
        new = blob[:m.start()] + blob[m.end():]
    return f"{how} in {part}", _edit(pkg, part, new)


_ATTR_VALUE = re.compile(rb'\s([\w:]+)="([^"]*)"')


def change_attribute(pkg: Package, rng: random.Random):
    part = _pick_part(pkg, rng, _form_weights(pkg))
    blob = pkg.parts[part]
    found = [m for m in _ATTR_VALUE.finditer(blob) if not m.group(1).startswith(b"xmlns")]
    if not found:
        return None
    m = rng.choice(found)
    old = m.group(2)
    choices = [b"", b"0", b"1", b"-1", b"99", b"G5", b"A1", b"x", old + old, b"s", b"str", b"inlineStr", b"e"]
    new = rng.choice([c for c in choices if c != old])
    return (f'{m.group(1).decode()}="{old.decode()[:20]}" -> "{new.decode()}" in {part}',
            _edit(pkg, part, blob[:m.start(2)] + new + blob[m.end(2):]))


MUTATIONS: dict[str, Mutation] = {
    "drop-element": drop_element,
    "duplicate-element": duplicate_element,
    "swap-siblings": swap_siblings,
    "corrupt-tag": corrupt_tag,
    "duplicate-cell-or-row": duplicate_cell_or_row,
    "second-value": second_value,
    "rename-sheet-to-form": rename_sheet_to_form,
    "break-well-formedness": break_well_formedness,
    "change-attribute": change_attribute,
}


def mutate(pkg: Package, rng: random.Random) -> tuple[str, str, Package]:
    """(kind, what was done, the mutant) for one random mutation of `pkg`."""
    while True:
        kind = rng.choice(sorted(MUTATIONS))
        done = MUTATIONS[kind](pkg, rng)
        if done is not None:
            return kind, done[0], done[1]
