"""The form's XML read as XML: what XML allows is read as it means, what is not XML is damage, and what
readers could disagree on is reported where it is (focused cases; the differential, metamorphic and
mutation harnesses are in test_xml_equivalence.py)."""

from __future__ import annotations

import io
import pyexpat
import re
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import codes_of, sheet_part, write_filled

from xlsx_assess import ooxml
from xlsx_assess.checks import check_returned
from xlsx_assess.issues import Refused
from xlsx_assess.layout import FORM_SHEET, form_layout
from xlsx_assess.reader import read_returned

VALUES = {"A01": 30.0, "A02": 10.0, "B01": 45.5, "S01": 2.0, "S02": 1.0}
MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@pytest.fixture(scope="module")
def form(small_ctx, tmp_path_factory):
    """(members of a good return, the form sheet's member, the score cell of A01, its baseline verdict)."""
    path = write_filled(small_ctx, small_ctx.townships[0], tmp_path_factory.mktemp("xml"), VALUES, False)
    with zipfile.ZipFile(path) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    lay = form_layout(small_ctx.rubric, small_ctx.townships[0], small_ctx.settings)
    return members, sheet_part(path, FORM_SHEET), lay.score_cell("A01")


def rezip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in members:
            zf.writestr(zipfile.ZipInfo(name), blob)
    return buf.getvalue()


def checked(small_ctx, form, edit=None, part=None):
    members, sheet, _ = form
    part = part or sheet
    changed = [(n, edit(b) if n == part and edit else b) for n, b in members]
    assert edit is None or changed != members, "the edit changed nothing"
    return check_returned(read_returned("edited.xlsx", data=rezip(changed)), small_ctx)


def cell(xml: bytes, ref: str) -> re.Match:
    return re.search(rb'<c r="' + ref.encode() + rb'"[^>]*?(?:/>|>.*?</c>)', xml)


def put(ref: str, new: bytes):
    """An edit replacing cell `ref` of a sheet with `new`."""
    def edit(xml: bytes) -> bytes:
        m = cell(xml, ref)
        return xml[:m.start()] + new + xml[m.end():]
    return edit


def scores(res):
    return dict(res.entries.values) if res.entries else None


# -- a formula is a formula however it is written -------------------------------------------------------

@pytest.mark.parametrize("written", [
    b'<c r="{ref}"><f><![CDATA[1+1]]></f><v>2</v></c>',
    b'<c r="{ref}"><!-- a note --><f>1+1</f><v>2</v></c>',
    b'<c r="{ref}"><v>2</v><f>1+1</f></c>',
    b"<c r='{ref}'><f>1&#43;1</f><v>2</v></c>",
    b'<c r="{ref}"><x:f xmlns:x="' + MAIN + b'">1+1</x:f><v>2</v></c>',
], ids=["cdata", "after a comment", "after the value", "single quotes and a character reference", "prefixed"])
def test_a_formula_in_a_score_cell_is_found_however_it_is_written(small_ctx, form, written):
    ref = form[2]
    res = checked(small_ctx, form, put(ref, written.replace(b"{ref}", ref.encode())))
    assert ("V406", FORM_SHEET, ref) in codes_of(res)


def test_the_main_namespace_as_a_prefix_and_single_quotes_change_nothing(small_ctx, form):
    """Every element of the form sheet as `x:` and every attribute in single quotes: the same verdict."""
    def respell(xml: bytes) -> bytes:
        xml = re.sub(rb"<(/?)([A-Za-z][\w.-]*)(?=[\s/>])", rb"<\1x:\2", xml)
        xml = xml.replace(b'xmlns="' + MAIN + b'"', b'xmlns:x="' + MAIN + b'"')
        return re.sub(rb"<[^<>]*>", lambda tag: re.sub(rb'="([^"\']*)"', rb"='\1'", tag.group(0)), xml)

    before, after = checked(small_ctx, form), checked(small_ctx, form, respell)
    assert ooxml.scan_plain(respell(dict(form[0])[form[1]])) is None          # the tree read it
    assert codes_of(after) == codes_of(before) and scores(after) == scores(before)


@pytest.mark.parametrize("written", [
    b'<c r="{ref}" s="{s}"><v><![CDATA[7.5]]></v></c>',
    b'<c r="{ref}" s="{s}"><v><!--typed-->7.5</v></c>',
    b'<c r="{ref}" s="{s}"><v>&#55;.5</v></c>',
    b'<c r="{ref}" s="{s}"><v>7.5<?pi here?></v></c>',
], ids=["cdata", "comment", "character reference", "processing instruction"])
def test_a_number_is_read_as_it_means_however_it_is_written(small_ctx, form, written):
    """python-calamine reads these as empty; it is given the part rewritten plainly, so the score counts."""
    ref = form[2]
    style = re.search(rb' s="(\d+)"', cell(dict(form[0])[form[1]], ref).group(0)).group(1)
    plain = checked(small_ctx, form, put(ref, b'<c r="%s" s="%s"><v>7.5</v></c>' % (ref.encode(), style)))
    res = checked(small_ctx, form, put(ref, written.replace(b"{ref}", ref.encode()).replace(b"{s}", style)))
    assert scores(res) == scores(plain) and scores(res)["A01"] == 7.5
    assert codes_of(res) == codes_of(plain)


def test_a_bom_and_utf16_are_read_as_they_mean(small_ctx, form):
    def utf16(xml: bytes) -> bytes:
        return xml.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")

    before = checked(small_ctx, form)
    for edit in (utf16, lambda xml: b"\xef\xbb\xbf" + xml):
        after = checked(small_ctx, form, edit)
        assert codes_of(after) == codes_of(before) and scores(after) == scores(before)


# -- what is not XML is damage --------------------------------------------------------------------------

@pytest.mark.parametrize("part", ["sheet", "xl/workbook.xml", "xl/styles.xml", "docProps/custom.xml",
                                  "xl/sharedStrings.xml", "xl/_rels/workbook.xml.rels"])
def test_a_part_that_carries_meaning_and_is_not_well_formed_is_damage(small_ctx, form, part):
    part = form[1] if part == "sheet" else part
    res = checked(small_ctx, form, lambda xml: xml.replace(b"</", b"<", 1), part=part)
    assert [i.code for i in res.report] == ["F104"]
    assert part.rsplit("/", 1)[-1] in res.report.issues[0].message


@pytest.mark.parametrize("bad", [b"\xff", b"\xe4\xb8", b"\x01"], ids=["invalid byte", "cut character", "control"])
def test_a_page_header_that_is_not_well_formed_is_damage(small_ctx, form, bad):
    """The plain way proves the page header and footer apart from the rest of the sheet: bytes that are
    not UTF-8 or not XML characters there still make the sheet damaged."""
    res = checked(small_ctx, form, lambda xml: xml.replace(b"<oddHeader>", b"<oddHeader>" + bad, 1))
    assert [i.code for i in res.report] == ["F104"]


def test_the_parser_refuses_a_dtd_the_byte_scan_did_not_see():
    with pytest.raises(Refused) as stop:
        ooxml.check_xml("x.xml", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    assert stop.value.code == "F108"


# -- what readers could disagree on is reported where it is -----------------------------------------------

def test_a_cell_with_a_value_and_inline_text_is_an_error_at_the_cell(small_ctx, form):
    ref = form[2]
    res = checked(small_ctx, form, put(ref, b'<c r="%s" t="inlineStr"><v>5</v><is><t>x</t></is></c>' % ref.encode()))
    assert ("V416", FORM_SHEET, ref) in codes_of(res) and not res.accepted


def test_a_cell_written_twice_is_an_error_and_a_row_written_twice_a_warning(small_ctx, form):
    ref = form[2]
    twice = checked(small_ctx, form, put(ref, b'<c r="%s"><v>1</v></c><c r="%s"><v>2</v></c>' % ((ref.encode(),) * 2)))
    assert ("S311", FORM_SHEET, ref) in codes_of(twice) and not twice.accepted
    row = re.sub(r"\D", "", ref)

    def split_row(xml: bytes) -> bytes:     # the row's last cell moved into a second <row> of the same number
        m = re.search(rb'(<row r="' + row.encode() + rb'"[^>]*>)(.*?)(<c r="I' + row.encode() + rb'".*?)</row>', xml)
        return xml[:m.start()] + m.group(1) + m.group(2) + b"</row>" + m.group(1) + m.group(3) + b"</row>" + xml[m.end():]

    res = checked(small_ctx, form, split_row)
    assert ("S312", FORM_SHEET, f"{row}:{row}") in codes_of(res)
    assert res.accepted and scores(res) == scores(checked(small_ctx, form))


def test_a_second_sheet_claiming_the_form_sheets_name_is_an_error(small_ctx, form):
    def second(xml: bytes) -> bytes:
        return re.sub(rb'(<sheet [^>]*?name=")[^"]*(" sheetId="3")', lambda m: m.group(1) + FORM_SHEET.encode()
                      + m.group(2), xml)

    res = checked(small_ctx, form, second, part="xl/workbook.xml")
    assert ("S310", FORM_SHEET, "") in codes_of(res) and not res.accepted


def test_a_sheet_entry_in_another_namespace_is_damage(small_ctx, form):
    """python-calamine lists any element named `sheet`; an office suite only the workbook's own."""
    res = checked(small_ctx, form, lambda xml: xml.replace(
        b"</sheets>", b'<q:sheet xmlns:q="urn:q" name="extra" sheetId="9" r:id="rId1"/></sheets>'), part="xl/workbook.xml")
    assert [i.code for i in res.report] == ["F104"]


# -- the plain-way patterns read what the tree reads ------------------------------------------------------

PLAIN_ROWS = [
    b'<row r="1"><c r="A1" s="05"><f>1+1</f><v>2</v></c><c r="B1" t="e"><v>#DIV/0!</v></c></row>',
    b'<row r="2"><c r="A2"><f>SUM(A1)</f></c><c r="A2"><f>2</f><v>1</v></c></row><row r="2"><c r="B2" s="1"/></row>',
    b'<row r="3" spans="1:3" x14ac:dyDescent="0.25"><c r="A3" t="e"><f>1/0</f><v> #N/A </v></c>'
    b'<c r="C3" s="11"><f t="shared" ref="C3:C4" si="0">A1&amp;"x"</f><v>1</v></c></row>',
    b'<row r="4"><c r="C4" s="11"><f t="shared" si="0"/><v>1</v></c><c r="D4" s="6" t="s"><v>0</v></c></row>',
    # as openpyxl writes: inline strings, ` />`, an empty <v />
    b'<row r="5"><c r="A5" s="5" t="inlineStr"><is><t>x &amp; y</t></is></c><c r="B5" s="1" t="inlineStr" />'
    b'<c r="C5" s="11"><f>ROUND(SUM(A1:A4),2)</f><v /></c><c r="D5" t="n" /></row>',
]


@pytest.mark.parametrize("rows", PLAIN_ROWS + [b"".join(PLAIN_ROWS)])
def test_the_plain_way_patterns_read_what_the_tree_reads(rows):
    doc = (b'<?xml version="1.0" encoding="UTF-8"?>\r\n<worksheet xmlns="' + MAIN + b'" xmlns:x14ac="urn:x14ac">'
           b'<cols><col min="1" max="2" width="9"/></cols><sheetData>' + rows + b'</sheetData>'
           b'<sheetProtection sheet="1"/><dataValidations count="1"><dataValidation type="decimal" sqref="A1:B3 C4">'
           b'<formula1>0</formula1></dataValidation></dataValidations><headerFooter><oddHeader>&amp;L x</oddHeader>'
           b'<evenHeader /></headerFooter></worksheet>')
    for unlocked in (frozenset(), frozenset({1, 5}), frozenset(range(20))):
        plain = ooxml.scan_plain(doc, unlocked)
        assert plain is not None
        assert plain == ooxml.scan_tree("sheet.xml", doc, unlocked)
    assert plain.formulas and plain.protected and plain.validations


@pytest.mark.parametrize("odd", [b'<c r="A1" s="1" ><v>1</v></c>', b"<c r='A1'><v>1</v></c>", b'<c s="1" r="A1"/>',
                                 b'<c r="A1"><v>1</v><!-- x --></c>', b'<c r="a1"/>', b'<c r="A1" t="inlineStr"><v>1</v></c>',
                                 b'<c r="A1" t="inlineStr"><is><r><t>x</t></r></is></c>', b'<c r="A1"><v>1</v><is><t>x</t></is></c>',
                                 b'<c r="A1"> <v>1</v></c>', b'<c r="A1"><v>1</v><f>1</f></c>'])
def test_anything_else_is_left_to_the_tree(odd):
    doc = b'<worksheet xmlns="' + MAIN + b'"><sheetData><row r="1">' + odd + b"</row></sheetData></worksheet>"
    assert ooxml.scan_plain(doc) is None
    ooxml.scan_tree("sheet.xml", doc)


MUTATIONS = [b"<", b">", b"&", b"&amp;", b"&#49;", b"&bogus;", b"\x01", b"\x0b", b"]]>", b'"', b"'", b" ", b"\xff",
             b"\xef\xbf\xbe", b"\xef\xbc\x91", b' s="1"', b' t="e"', b' r="A1"', b"x14ac:", b"q:", b"<f>", b"</f>",
             b"<v>", b"</v>", b"<v />", b"<is><t>", b"</t></is>", b't="inlineStr"', b"<c>", b"</c>", b'<c r="A1">', b"<row>", b"</row>", b'<row r="1">', b"/>", b"<!--",
             b"-->", b"<?", b"?>", b"<![CDATA[", b"\r", b"\t", b"1", b"A", b"=", b'="', b"\x00", b"<headerFooter>",
             b"</headerFooter>", b"<oddHeader>", b"</oddHeader>", b"<oddFooter />"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_sheet_the_plain_way_accepts_is_well_formed_and_read_as_the_tree_reads(form, data):
    """Whatever is done to the sheet data (or to the page header and footer, which the plain way proves
    with a pattern of its own), the plain way reads a sheet only if expat calls it well-formed, and then
    exactly as the tree does."""
    xml = dict(form[0])[form[1]]
    start, end = xml.index(b"<sheetData"), len(xml)
    inside = [m.end() for m in re.finditer(rb'<v>|<f>|="|<c |<row |Header>|Footer>', xml[start:end])]   # text, values, tags
    blob = bytearray(xml)
    for _ in range(data.draw(st.integers(1, 4))):
        at = start + data.draw(st.sampled_from(inside)) if data.draw(st.booleans()) else data.draw(st.integers(start, end))
        cut = data.draw(st.integers(0, 2))
        blob[at:at + cut] = data.draw(st.sampled_from(MUTATIONS))
    mutant = bytes(blob)
    plain = ooxml.scan_plain(mutant, frozenset({1, 5, 11}))
    if plain is not None:
        parser = pyexpat.ParserCreate()
        parser.Parse(mutant, True)                     # raises if not well-formed
        assert plain == ooxml.scan_tree("sheet.xml", mutant, frozenset({1, 5, 11}))


# -- the shared strings' plain-way proof ---------------------------------------------------------------

RICH_STRINGS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="' + MAIN + b'" count="3" '
                b'uniqueCount="3"><si><t>a &amp; b&#10;c</t></si><si><r><rPr><b val="true"/><sz val="16"/>'
                b'<color rgb="FF000000"/><rFont val="Noto Sans CJK SC"/><family val="2"/></rPr>'
                b'<t xml:space="preserve">x </t></r><r><t>y</t></r></si><si><t/></si><si><t></t></si></sst>')
STRING_MUTATIONS = [b"<", b">", b"&", b"&amp;", b"&#0;", b"&#10;", b"&#x1F600;", b"&#xD800;", b"&bogus;", b"\x01",
                    b"]]>", b'"', b" ", b"\xff", b"\xef\xbf\xbe", b"<t>", b"</t>", b"<r>", b"</r>", b"<si>",
                    b"</si>", b"<rPr>", b"</rPr>", b'<b val="1"/>', b' val="1"', b"q:", b"<!--", b"-->", b"<?",
                    b"<![CDATA[", b"x", b"\xe4\xb8\xad", b"\x00", b'xml:space="preserve"']


def test_the_shared_strings_our_writers_and_libreoffice_write_are_plain(form):
    strings = dict(form[0])["xl/sharedStrings.xml"]
    assert ooxml._plain_strings(strings) and ooxml._plain_strings(RICH_STRINGS)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_shared_strings_the_plain_way_accepts_are_well_formed_in_the_main_namespace(data):
    """Whatever is done to them, the shared strings' pattern accepts only what a namespace-aware expat
    calls well-formed, with every element in the main namespace (what python-calamine reads as meant)."""
    blob = bytearray(RICH_STRINGS)
    start = RICH_STRINGS.index(b"<si>")
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(start, len(blob)))
        cut = data.draw(st.integers(0, 2))
        blob[at:at + cut] = data.draw(st.sampled_from(STRING_MUTATIONS))
    mutant = bytes(blob)
    if ooxml._plain_strings(mutant):
        parser = pyexpat.ParserCreate(namespace_separator=" ")
        parser.Parse(mutant, True)                     # raises if not well-formed
        root = ooxml.parse_xml("xl/sharedStrings.xml", mutant)
        assert all(el.tag.partition("}")[0][1:] in ooxml.MAIN for el in root.iter())
