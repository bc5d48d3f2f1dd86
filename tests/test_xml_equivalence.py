"""The reader's view of the XML is proven equal to a real XML parser's, in three ways (issue 10, part 3):

1. differential: on every .xlsx/.xlsm of the shared real-files corpus, what the reader reads of the
   structure (formulas, unlocked cells, validated ranges, protection, error cells; sheet names, order
   and visibility; saved time; custom properties) equals what `xml_reference` reads with ElementTree;
2. metamorphic: XML-equivalent re-serialisations of valid returns (`xml_variants.TRANSFORMS`) get the
   same verdict, issues, scores and structure as the original;
3. mutation: random damage to valid returns (`xml_variants.MUTATIONS`); every mutant the tool accepts
   is opened in LibreOffice, which must open it and show the scores the tool counted.

Only `ours` below knows the reader's internals; everything else goes through the public API.
"""

from __future__ import annotations

import io
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import codes_of, full_marks, needs_libreoffice, random_values, write_filled

import lo
import xml_reference
import xml_variants
from xlsx_assess import container, ooxml
from xlsx_assess.checks import check_returned
from xlsx_assess.layout import FORM_SHEET, SHEETS, form_layout
from xlsx_assess.reader import read_returned

FULL = os.environ.get("XLSX_ASSESS_FULL") == "1"


def ours(data: bytes) -> dict:
    """What the reader reads of a file, in `xml_reference.extract`'s shape, or {"refused": [codes], ...}.

    The one place that reaches past the public API (`Returned.xml` keeps only the form's sheets): the
    workbook as `ooxml.read_book` resolves it, and each of its worksheets through `ooxml.scan_sheet`."""
    ret = read_returned("corpus.xlsx", data=data)
    if not ret.readable:
        return {"refused": [i.code for i in ret.issues if i.severity == "error"],
                "messages": [i.message for i in ret.issues]}
    parts = container.Parts(data)
    book = ooxml.read_book(parts)
    styles = book.folder + "styles.xml"
    unlocked = ooxml.unlocked_styles(styles, parts.get(styles))
    worksheets = {}
    for listed in book.sheets:
        xml = parts.get(listed.part)
        worksheet = xml and ooxml.parse_xml(listed.part, xml).tag in ooxml.WORKSHEET    # not a chartsheet
        sx = ooxml.scan_sheet(listed.part, xml, unlocked) if worksheet else ooxml.SheetXml()
        worksheets[listed.name] = {"formulas": dict(sx.formulas), "unlocked": set(sx.unlocked),
                                   "validations": sorted(sx.validations), "protected": sx.protected,
                                   "errors": dict(sx.errors)}
    return {"sheets": list(ret.sheets.items()), "saved": ret.saved, "properties": dict(ret.properties),
            "worksheets": worksheets}


def differences(mine: dict, reference: dict, limit: int = 6) -> list[str]:
    """Readable differences between two structure readings (empty when equal)."""
    out = []
    for key in ("sheets", "saved", "properties"):
        if mine.get(key) != reference.get(key):
            out.append(f"{key}: reader {mine.get(key)!r} != parser {reference.get(key)!r}")
    mine_ws, ref_ws = mine.get("worksheets", {}), reference.get("worksheets", {})
    if set(mine_ws) != set(ref_ws):
        out.append(f"worksheets: reader {sorted(mine_ws)} != parser {sorted(ref_ws)}")
    for sheet in sorted(set(mine_ws) & set(ref_ws)):
        for key, want in ref_ws[sheet].items():
            got = mine_ws[sheet][key]
            if got == want:
                continue
            if isinstance(want, (dict, set, list)):
                a = set(got.items()) if isinstance(got, dict) else set(got)
                b = set(want.items()) if isinstance(want, dict) else set(want)
                out.append(f"{sheet} › {key}: reader only {sorted(a - b, key=str)[:limit]}, "
                           f"parser only {sorted(b - a, key=str)[:limit]}")
            else:
                out.append(f"{sheet} › {key}: reader {got!r} != parser {want!r}")
    return out


# -- 1. differential: the real-files corpus -----------------------------------------------------------

def _corpus() -> Path | None:
    here = Path(__file__).resolve()
    candidates = [os.environ.get("XLSX_ASSESS_REAL_FILES", "")] + [
        str(p / "shared" / "real-files") for p in here.parents[1:4]]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), None)


CORPUS = _corpus()
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in (".xlsx", ".xlsm")) if CORPUS else []

# Why the reader may refuse a file, by code, and what the parser must then have seen.
REFUSAL_REASONS = {
    "F103": {"no-workbook"},
    "F104": {"zip", "not-well-formed", "bad-address", "no-workbook"},
    "F105": {"ole"},
    "F108": {"dtd"},
    "F109": {"xlsb", "ole"},
}
_CRASH = re.compile(r"\b\w*(?:Error|Exception|Panic)\w*: ")     # an exception's name in a refusal: a crash


@pytest.mark.parametrize("path", CORPUS_FILES or [None], ids=lambda p: str(p.relative_to(CORPUS)) if p else "absent")
def test_reader_reads_real_files_as_a_parser_does(path):
    if path is None:
        pytest.skip("the real-files corpus (../shared/real-files) is not here")
    data = path.read_bytes()
    mine = ours(data)
    try:
        reference, unreadable = xml_reference.extract(data), None
    except xml_reference.Unreadable as exc:
        reference, unreadable = None, exc
    if "refused" in mine:
        assert not any(_CRASH.search(m) for m in mine["messages"]), f"the reader crashed: {mine['messages']}"
        assert unreadable is not None, f"refused {mine['refused']} a file the parser reads: {mine['messages']}"
        assert unreadable.reason in REFUSAL_REASONS.get(mine["refused"][0], ()), (
            f"refused {mine['refused']} ({mine['messages']}), the parser saw: {unreadable}")
        return
    assert unreadable is None, f"accepted a file the parser cannot read: {unreadable}"
    found = differences(mine, reference)
    assert not found, "\n".join(found)


def test_corpus_is_the_one_described():
    if CORPUS is None:
        pytest.skip("the real-files corpus (../shared/real-files) is not here")
    by_folder = {f: sum(1 for p in CORPUS_FILES if p.parent.name == f) for f in ("excel", "calamine")}
    assert by_folder["excel"] == 419 and by_folder["calamine"] >= 60, by_folder


# -- 2. metamorphic: XML-equivalent variants of valid returns --------------------------------------------

CASES = ("full-marks", "deductions", "formula-in-score", "text-score", "saved-by-libreoffice")


def _case_file(ctx, case: str, folder: Path) -> bytes:
    t = ctx.townships[CASES.index(case)]
    rubric = ctx.rubric
    if case == "saved-by-libreoffice":   # the deductions return, opened, recalculated and saved by LibreOffice
        source = folder / "for_libreoffice.xlsx"
        source.write_bytes(_case_file(ctx, "deductions", folder))
        out = folder / "saved_by_libreoffice.xlsx"
        [result] = lo.run_jobs([{"in": str(source), "out": str(out), "format": "xlsx"}])
        assert result["ok"], result.get("error")
        return out.read_bytes()
    if case == "deductions":
        values = random_values(rubric, random.Random(20261130))
        for item in rubric.items:
            if item.kind in ("bonus", "deduction"):
                values[item.id] = min(item.points, 1.5)
        notes = {i.id: "扣分或加减分说明" for i in rubric.items if i.kind != "zero"}
        path = write_filled(ctx, t, folder, values, False, notes)
    elif case == "text-score":
        values = full_marks(rubric)
        values[rubric.base[2].id] = str(rubric.base[2].points)      # typed as text: a V404 warning
        path = write_filled(ctx, t, folder, values, False)
    else:
        path = write_filled(ctx, t, folder, full_marks(rubric), False)
    data = path.read_bytes()
    if case == "formula-in-score":       # a formula typed into a score cell: V406
        lay = form_layout(rubric, t, ctx.settings)
        ref = lay.score_cell(rubric.base[0].id)
        pkg = xml_variants.Package.load(data)
        part = xml_variants.sheet_parts(pkg)[FORM_SHEET]
        blob, n = re.subn(rb'(<c r="' + ref.encode() + rb'"[^>]*>)(<v>)', rb"\1<f>0.5+1</f>\2", pkg.parts[part])
        assert n == 1
        pkg.parts[part] = blob
        data = pkg.dump()
    return data


class _Lazy(dict):
    """A dict that makes a missing value with `make(key)` the first time it is asked for."""

    def __init__(self, make) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key):
        self[key] = value = self.make(key)
        return value


@pytest.fixture(scope="module")
def originals(ctx, tmp_path_factory) -> dict[str, bytes]:
    """Each case's bytes, made when first asked for (LibreOffice only for the case that needs it)."""
    folder = tmp_path_factory.mktemp("originals")

    def make(case: str) -> bytes:
        if case == "saved-by-libreoffice":
            needs_libreoffice()
        return _case_file(ctx, case, folder)
    return _Lazy(make)


@pytest.fixture(scope="module")
def judged(originals, ctx) -> dict[str, tuple[dict, dict, object]]:
    """Each original's outcome, structure as read, and python-calamine view, computed once."""
    return _Lazy(lambda case: (outcome(originals[case], ctx), ours(originals[case]), calamine_view(originals[case])))


def outcome(data: bytes, ctx) -> dict:
    """What the tool makes of a file: verdict, issues (code, sheet, cell), scores, saved time."""
    res = check_returned(read_returned("2026_变体.xlsx", data=data), ctx)
    return {"status": res.status, "issues": sorted(codes_of(res)), "scores": res.scores,
            "entries": res.entries and dict(res.entries.values), "saved": res.saved}


def calamine_view(data: bytes):
    """What python-calamine reads of the form's sheets (their names, visibility and values), or its error."""
    import python_calamine as pc

    try:
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheets = [(m.name, str(m.visible)) for m in wb.sheets_metadata]
        return sheets, {n: wb.get_sheet_by_name(n).to_python() for n, _ in sheets if n in SHEETS}
    except Exception as exc:                     # noqa: BLE001 - any failure is "cannot read it the same"
        return f"{type(exc).__name__}: {exc}"


# Transforms python-calamine 0.9.1 itself does not read as the original (the metamorphic test then only
# asks that the file is not scored differently): for the record, and checked to stay true.
CALAMINE_DIFFERS = {
    "character-references": "Target and r:id attributes are not unescaped: 'Cannot detect file format'",
    "character-references-in-text": "a <v> written with character references is not unescaped: a shared-string "
                                    "index or a number is read wrong",
    "character-references-in-sheets": "a cell address written with references: 'Expecting alphanumeric character'",
    "cdata-everywhere": "a <v> written as CDATA reads as empty",
}


def _metamorphic_params():
    for name in xml_variants.TRANSFORMS:
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("case", [pytest.param(c, marks=[pytest.mark.libreoffice] if c == "saved-by-libreoffice"
                                                 else []) for c in CASES])
@pytest.mark.parametrize("transform", list(_metamorphic_params()))
def test_xml_equivalent_variant_is_judged_as_the_original(originals, judged, ctx, case, transform):
    original = originals[case]
    want, structure, values = judged[case]
    apply, xml_equivalent = xml_variants.TRANSFORMS[transform]
    pkg = xml_variants.Package.load(original)
    variant_pkg = apply(pkg)
    if xml_equivalent:                           # the transform is sound: every rewritten part means the same
        for part in pkg.xml_parts():
            if variant_pkg.parts[part] != pkg.parts[part]:
                assert xml_variants.equivalent(pkg.parts[part], variant_pkg.parts[part]) is None, part
    variant = variant_pkg.dump()
    got = outcome(variant, ctx)
    if calamine_view(variant) != values:
        # python-calamine does not read this variant's values as the original's (CALAMINE_DIFFERS): then
        # the file may be refused, or judged on what calamine read, but never scored differently.
        assert transform in CALAMINE_DIFFERS, f"python-calamine reads it differently: {calamine_view(variant)!r:.200}"
        assert got["status"] == "error" or got["scores"] == want["scores"], got["issues"]
        return
    assert got == want
    found = differences(ours(variant), structure)
    assert not found, "\n".join(found)


def test_cases_are_judged_as_intended(judged):
    """The originals themselves: clean, clean with deductions, V406 at the formula, V404 at the text
    (so that a variant that loses the formula or the text is seen to)."""
    judged = {case: judged[case][0] for case in CASES if case != "saved-by-libreoffice"}
    assert judged["full-marks"]["status"] == "ok" and judged["full-marks"]["scores"].final == 100
    assert judged["deductions"]["status"] == "ok" and judged["deductions"]["scores"].deduction > 0
    formula = judged["formula-in-score"]
    assert formula["status"] == "error" and ("V406", FORM_SHEET, "G5") in formula["issues"]
    assert {c for c, _, _ in formula["issues"]} == {"V406"}     # the totals that counted it: folded into V406
    text = judged["text-score"]
    # The form shows 待完善 over a number typed as text (its rule refuses text), and so does the check: no V408.
    assert text["status"] == "warning" and {c for c, _, _ in text["issues"]} == {"V404"}


@pytest.mark.libreoffice
def test_return_saved_by_libreoffice_is_judged_as_before(judged):
    saved, before = judged["saved-by-libreoffice"][0], judged["deductions"][0]
    assert saved["status"] == "ok" and saved["scores"] == before["scores"], saved["issues"]


# -- what XML allows but a form must not hold: reported, located ---------------------------------------

def _form_twin(pkg: xml_variants.Package, first: bool) -> None:
    """A second worksheet named like the form (a copy of it), listed before or after the real one."""
    form = xml_variants.sheet_parts(pkg)[FORM_SHEET]
    pkg.parts["xl/worksheets/sheet99.xml"] = pkg.parts[form]
    pkg.parts["xl/_rels/workbook.xml.rels"] = pkg.parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>", b'<Relationship Id="rId99" Type="http://schemas.openxmlformats.org/officeDocument/'
                             b'2006/relationships/worksheet" Target="worksheets/sheet99.xml"/></Relationships>')
    pkg.parts["[Content_Types].xml"] = pkg.parts["[Content_Types].xml"].replace(
        b"</Types>", b'<Override PartName="/xl/worksheets/sheet99.xml" ContentType="application/'
                     b'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
    entry = f'<sheet name="{FORM_SHEET}" sheetId="99" r:id="rId99"/>'.encode()
    book = pkg.parts["xl/workbook.xml"]
    pkg.parts["xl/workbook.xml"] = (book.replace(b"<sheets>", b"<sheets>" + entry) if first
                                    else book.replace(b"</sheets>", entry + b"</sheets>"))


def _in_form(pkg: xml_variants.Package, pattern: bytes, replacement) -> None:
    form = xml_variants.sheet_parts(pkg)[FORM_SHEET]
    pkg.parts[form], n = re.subn(pattern, replacement, pkg.parts[form], count=1)
    assert n == 1


_G5_VALUE = rb'<c r="G5"( s="[0-9]+")><v>([^<]*)</v></c>'
AMBIGUOUS = {   # name -> (edit, the cell the report must point at: None for the sheet, the code it must give)
    "duplicate-cell": (lambda pkg: _in_form(pkg, rb'<c r="G5"[^>]*>.*?</c>', lambda m: m.group(0) * 2), "G5", "S311"),
    "duplicate-row": (lambda pkg: _in_form(pkg, rb'<row r="5".*?</row>', lambda m: m.group(0) * 2), "5", "S312"),
    "form-twin-before": (lambda pkg: _form_twin(pkg, True), None, "S310"),
    "form-twin-after": (lambda pkg: _form_twin(pkg, False), None, "S310"),
    "inline-string-then-value": (lambda pkg: _in_form(pkg, _G5_VALUE, rb'<c r="G5"\1 t="inlineStr"><is><t>x</t></is>'
                                                                      rb'<v>\2</v></c>'), "G5", "V416"),
    "value-then-inline-string": (lambda pkg: _in_form(pkg, _G5_VALUE, rb'<c r="G5"\1><v>\2</v><is><t>x</t></is></c>'),
                                 "G5", "V416"),
}
def _points_at(cell: str, where: str | None) -> bool:
    """Whether an issue's cell is `where`: a cell, a row number (the row, any cell of it, or none), or None."""
    if where is None:
        return True
    if where.isdigit():
        return cell in ("", f"{where}:{where}") or cell.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == where
    return cell == where


@pytest.mark.parametrize("name", list(AMBIGUOUS))
def test_ambiguous_structure_is_reported_where_it_is(originals, ctx, name):
    edit, where, code = AMBIGUOUS[name]
    pkg = xml_variants.Package.load(originals["full-marks"])
    edit(pkg)
    found = outcome(pkg.dump(), ctx)["issues"]
    located = [got for got, sheet, cell in found if sheet == FORM_SHEET and _points_at(cell, where)]
    assert code in located, f"no {code} at {FORM_SHEET} › {where or ''}: {found}"


# -- 3. mutation: what LibreOffice shows for every mutant the tool accepts ------------------------------

MUTANTS = 400 if FULL else 40
# The parts that carry meaning: one of them not well-formed makes the file damaged (F104), as for an office suite.
MEANINGFUL = re.compile(r"\[Content_Types\]\.xml|_rels/\.rels|xl/workbook\.xml|xl/_rels/workbook\.xml\.rels|"
                        r"xl/styles\.xml|xl/sharedStrings\.xml|xl/worksheets/[^/]+\.xml|docProps/(core|custom)\.xml")


@dataclass
class Mutant:
    kind: str
    what: str
    path: Path
    result: object               # the tool's FileResult

    @property
    def accepted(self) -> bool:
        return self.result.status != "error"

    def label(self) -> str:
        return f"{self.path.name} [{self.kind}] {self.what}"


@pytest.fixture(scope="module")
def mutants(ctx, tmp_path_factory) -> list[Mutant]:
    """`MUTANTS` seeded mutants of three valid returns, each judged by the tool."""
    folder = tmp_path_factory.mktemp("mutants")
    seed = 20261130
    bases = []
    for k, values in enumerate([full_marks(ctx.rubric), random_values(ctx.rubric, random.Random(seed)),
                                random_values(ctx.rubric, random.Random(seed + 1))]):
        path = write_filled(ctx, ctx.townships[k], folder, values)
        bases.append(xml_variants.Package.load(path.read_bytes()))
    rng = random.Random(seed)
    out = []
    for n in range(MUTANTS):
        kind, what, mutant = xml_variants.mutate(bases[n % len(bases)], rng)
        path = folder / f"mutant_{n:04d}.xlsx"
        path.write_bytes(mutant.dump())
        out.append(Mutant(kind, what, path, check_returned(read_returned(path), ctx)))
    return out


def _not_well_formed(path: Path) -> list[str]:
    pkg = xml_variants.Package.load(path.read_bytes())
    bad = []
    for name in pkg.xml_parts():
        if MEANINGFUL.fullmatch(name):
            try:
                xml_reference.parse(pkg.parts[name], name)
            except xml_reference.Unreadable:
                bad.append(name)
    return bad


def test_mutants_with_a_part_that_is_not_well_formed_are_refused(mutants):
    accepted_damaged = [f"{m.label()}: {', '.join(bad)}" for m in mutants if m.accepted
                        for bad in [_not_well_formed(m.path)] if bad]
    summary = (f"of {len(mutants)} mutants, {sum(m.accepted for m in mutants)} accepted, "
               f"{len(accepted_damaged)} of them with a part that is not well-formed")
    print(summary)
    assert not accepted_damaged, "\n".join([summary, *accepted_damaged])


def _shown(read: dict):
    """What LibreOffice displays in a cell: None (empty), a number, or text."""
    if read["type"] == "EMPTY":
        return None
    if read["type"] == "TEXT" or read["error"] != 0:
        return read["string"]
    return read["value"]


def _disagreement(res, lay, reads: dict, rubric) -> str:
    """'' when LibreOffice shows what the tool scored, else what differs. A score shown as text that is a
    plain number agrees with that number (the tool counts it, with V404); the form's own total leaves such
    text out, so the final is compared only where every score is shown as a number or blank."""
    texts = False
    for item in rubric.items:
        ref = lay.score_cell(item.id)
        shown = _shown(reads[ref])
        if item.kind == "zero":
            if (shown == "是") != res.entries.zeroed:
                return f"{ref}: LibreOffice shows {shown!r}, zeroed {res.entries.zeroed}"
            continue
        scored = res.entries.values.get(item.id)
        if isinstance(shown, str):
            texts = True
            if not re.fullmatch(r"\s*[0-9]+(\.[0-9]*)?\s*|\s*", shown):
                return f"{ref}: LibreOffice shows text {shown!r}, scored {scored!r}"
            shown = float(shown) if shown.strip() else None
        if (shown is None) != (scored is None) or (shown is not None and abs(shown - scored) > 1e-9):
            return f"{ref}: LibreOffice shows {shown!r}, scored {scored!r}"
    final = _shown(reads[lay.total_cells["最终得分"]])
    if not texts and (not isinstance(final, float) or abs(final - round(res.scores.final, 2)) > 0.005):
        return f"最终得分: LibreOffice shows {final!r} after recalculation, scored {res.scores.final!r}"
    return ""


@pytest.mark.libreoffice
def test_accepted_mutants_are_shown_by_libreoffice_as_scored(mutants, ctx):
    needs_libreoffice()
    accepted = [m for m in mutants if m.accepted]
    layouts = [form_layout(ctx.rubric, m.result.township, ctx.settings) for m in accepted]
    jobs = [{"in": str(m.path), "timeout": 30,
             "read": [[FORM_SHEET, ref] for ref in [*(lay.score_cell(i.id) for i in ctx.rubric.items),
                                                    lay.total_cells["最终得分"]]]}
            for m, lay in zip(accepted, layouts)]
    results = lo.run_jobs(jobs) if jobs else []
    unopenable, different = [], []
    for m, lay, result in zip(accepted, layouts, results):
        if not result["ok"]:
            unopenable.append(f"{m.label()}: {result['error'][:100]}")
            continue
        found = _disagreement(m.result, lay, {r["cell"]: r for r in result["read"]}, ctx.rubric)
        if found:
            different.append(f"{m.label()}: {found}")
    summary = (f"of {len(mutants)} mutants, {len(accepted)} accepted; of those LibreOffice cannot open "
               f"{len(unopenable)} and shows {len(different)} differently")
    print(summary)
    assert not unopenable and not different, "\n".join([summary, *unopenable, *different])
