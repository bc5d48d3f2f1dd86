"""Scores are exact: the Python scoring, an independent exact oracle (tests/oracle.py) and the form agree.

Property tests: any valid rubric and any valid scores survive build → read → check → score unchanged;
any typed scores are scored as the oracle scores them. Then the boundaries, numbers as a person types
them, the county's score_decimals and the form's rule that refuses more places.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import openpyxl
import pytest
from conftest import SMALL_RUBRIC, codes_of, write_filled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import half_up, oracle, places, random_typed, shown

from xlsx_assess import scoring
from xlsx_assess.checks import Context, check_returned
from xlsx_assess.issues import AssessError
from xlsx_assess.layout import FORM_SHEET, form_layout
from xlsx_assess.reader import read_returned
from xlsx_assess.rubric import Item, Rubric, parse_rubric
from xlsx_assess.settings import Settings, Township, load_settings
from xlsx_assess.writer import build_workbook

TOWN = Township("410927100", "城关镇")
quarter = st.integers(min_value=1, max_value=24).map(lambda q: q / 4)

# Three base lines in two categories, two bonus and two deduction lines, the zero line: small enough
# to put every boundary on one line.
EDGE_RUBRIC = """id,category,indicator,criterion,kind,points,guide,note
B1,甲,指标一,要求一,base,40,,
B2,甲,指标一,要求二,base,10,,
B3,乙,指标二,要求三,base,50,,
P1,特别项,特别加分项,加分一,bonus,3,,
P2,特别项,特别加分项,加分二,bonus,3,,
M1,特别项,特别减分项,减分一,deduction,5,,
M2,特别项,特别减分项,减分二,deduction,5,,
Z1,特别项,直接归零项,弄虚作假,zero,0,,
"""
EDGE_CAPS = ("2.5", "4")

# (name, score_decimals, typed scores, zeroed, 基础得分 and 最终得分 as the form shows them)
BOUNDARIES = [
    ("89.995 shows 90.00", 2, {"B1": "39.995", "B2": "10", "B3": "40"}, False, "90.00", "90.00"),
    ("59.995 shows 60.00", 2, {"B1": "9.995", "B2": "10", "B3": "40"}, False, "60.00", "60.00"),
    ("89.625 is half up, not half even", 2, {"B1": "39.625", "B2": "10", "B3": "40"}, False, "89.63", "89.63"),
    ("0.625", 2, {"B1": "0.625", "B2": "0", "B3": "0"}, False, "0.63", "0.63"),
    ("2.125", 2, {"B1": "2.125", "B2": "0", "B3": "0"}, False, "2.13", "2.13"),
    ("a final of 0.005 rounds up", 2, {"B1": "0", "B2": "0", "B3": "0", "P1": "0.005"}, False, "0.00", "0.01"),
    ("a final of 0.005 at three places", 3, {"B1": "1", "B2": "0", "B3": "0", "M1": "0.995"}, False, "1.000", "0.005"),
    ("89.995 at three places stays", 3, {"B1": "39.995", "B2": "10", "B3": "40"}, False, "89.995", "89.995"),
    ("60.195 summed in binary is 60.19499…", 3, {"B1": "20.065", "B2": "0.13", "B3": "40"}, False, "60.195", "60.195"),
    ("both caps", 2, {"B1": "40", "B2": "10", "B3": "50", "P1": "3", "P2": "2.999", "M1": "5", "M2": "5"},
     False, "100.00", "98.50"),
    ("the floor at 0", 2, {"B1": "1", "B2": "0", "B3": "0", "M1": "5"}, False, "1.00", "0.00"),
    ("zero-out", 2, {"B1": "40", "B2": "10", "B3": "50", "P1": "3"}, True, "100.00", "0.00"),
    ("a tie at two places, 0.1 + 0.2", 2, {"B1": "30.1", "B2": "0.2", "B3": "29.99"}, False, "60.29", "60.29"),
    ("the same tie, other lines", 2, {"B1": "30.15", "B2": "0.15", "B3": "29.99"}, False, "60.29", "60.29"),
]


def edge_rubric() -> Rubric:
    rubric, report = parse_rubric(EDGE_RUBRIC)
    assert rubric is not None, report.issues
    return rubric


def edge_settings(decimals: int) -> Settings:
    return Settings(bonus_cap=float(EDGE_CAPS[0]), deduction_cap=float(EDGE_CAPS[1]), score_decimals=decimals)


def as_held(typed: dict[str, str | None]) -> dict[str, float | None]:
    """What a spreadsheet stores for the typed scores: the nearest double."""
    return {k: None if v is None else float(v) for k, v in typed.items()}


def python_totals(sc: scoring.Scores) -> dict[str, Fraction]:
    out = {f"{c}小计": Fraction(repr(v)) for c, v in sc.subtotals.items()}
    return out | {k: Fraction(repr(v)) for k, v in sc.totals.items()}


# -- the exact rule -------------------------------------------------------------------------------

@st.composite
def rubrics(draw) -> Rubric:
    """2–4 categories of base lines with points summing to 100, plus optional special lines."""
    n = draw(st.integers(min_value=2, max_value=12))
    cuts = sorted(draw(st.lists(st.integers(min_value=1, max_value=399), min_size=n - 1, max_size=n - 1,
                                unique=True)))
    quarters = [b - a for a, b in zip([0, *cuts], [*cuts, 400])]
    cats = draw(st.integers(min_value=1, max_value=min(4, n)))
    items = []
    for k, q in enumerate(quarters):
        cat = f"类{min(k * cats // n, cats - 1)}"
        items.append(Item(f"B{k:02d}", cat, f"{cat}指标{k // 2}", f"要求{k}", "base", q / 4))
    for k in range(draw(st.integers(0, 3))):
        items.append(Item(f"P{k}", "特别项", "特别加分项", f"加分{k}", "bonus", draw(quarter)))
    for k in range(draw(st.integers(0, 3))):
        items.append(Item(f"M{k}", "特别项", "特别减分项", f"减分{k}", "deduction", draw(quarter)))
    if draw(st.booleans()):
        items.append(Item("Z1", "特别项", "直接归零项", "弄虚作假", "zero", 0.0))
    return Rubric(tuple(items))


@st.composite
def filled(draw):
    rubric = draw(rubrics())
    values = {}
    for item in rubric.items:
        if item.kind == "zero":
            continue
        steps = int(item.points * 4)
        values[item.id] = draw(st.one_of(st.none(), st.integers(0, steps).map(lambda s: s / 4)))
    zeroed = draw(st.booleans()) if rubric.zero else False
    caps = draw(st.sampled_from([(5.0, 10.0), (2.5, 1.0), (0.0, 0.0)]))
    return rubric, values, zeroed, caps


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filled())
def test_round_trip_scores_equal_the_oracle(case):
    rubric, values, zeroed, (bonus_cap, deduction_cap) = case
    s = Settings(bonus_cap=bonus_cap, deduction_cap=deduction_cap)
    ctx = Context(rubric, s, [TOWN])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_filled(ctx, TOWN, Path(tmp), values, zeroed if rubric.zero else None, phone="0393-1234567")
        res = check_returned(read_returned(path), ctx)
    assert res.scores is not None, [i.render() for i in res.report]
    assert res.entries.values == values
    typed = {k: None if v is None else repr(v) for k, v in values.items()}
    assert python_totals(res.scores) == oracle(rubric, typed, zeroed, repr(bonus_cap), repr(deduction_cap), 2)
    blanks = sum(1 for i in rubric.base if values[i.id] is None)
    codes = {i.code for i in res.report}
    assert codes <= {"V401", "V413", "V417"}            # the cached totals agree: no V408
    assert ("V401" in codes) == (blanks > 0)
    missing = tuple(i.id for i in rubric.base if values[i.id] is None)
    assert res.scores.completion == scoring.completion_text(missing, scoring.required_lines(rubric))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2 ** 32), st.integers(0, 4), st.booleans())
def test_scoring_equals_the_oracle_on_typed_scores(seed, decimals, zeroed):
    """Typed with up to two places more than allowed: every total is the oracle's, to the last digit."""
    rng = random.Random(seed)
    rubric = edge_rubric()
    caps = (f"{rng.randint(0, 6 * 10 ** decimals) / 10 ** decimals:.{decimals}f}",
            f"{rng.randint(0, 10 * 10 ** decimals) / 10 ** decimals:.{decimals}f}")
    s = Settings(bonus_cap=float(caps[0]), deduction_cap=float(caps[1]), score_decimals=decimals)
    typed = random_typed(rubric, rng, decimals, extra=2)
    sc = scoring.score(rubric, as_held(typed), zeroed, s)
    assert python_totals(sc) == oracle(rubric, typed, zeroed, *caps, decimals)


@pytest.mark.parametrize("name, decimals, typed, zeroed, base, final", BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_boundaries(name, decimals, typed, zeroed, base, final):
    rubric = edge_rubric()
    sc = scoring.score(rubric, as_held(typed), zeroed, edge_settings(decimals))
    expected = oracle(rubric, typed, zeroed, *EDGE_CAPS, decimals)
    assert (shown(expected["基础得分"], decimals), shown(expected["最终得分"], decimals)) == (base, final)
    assert python_totals(sc) == expected
    assert (scoring.show(sc.base, decimals), scoring.show(sc.final, decimals)) == (base, final)


def test_grades_follow_the_final_the_form_shows():
    rubric, s = edge_rubric(), edge_settings(2)
    top = scoring.score(rubric, as_held({"B1": "39.995", "B2": "10", "B3": "40"}), False, s)
    below = scoring.score(rubric, as_held({"B1": "39.99", "B2": "10", "B3": "40"}), False, s)
    assert (top.final, s.grade(top.final)) == (90.0, "优秀")
    assert (below.final, s.grade(below.final)) == (89.99, "良好")


@given(st.integers(0, 10 ** 9), st.integers(0, 6), st.integers(0, 4))
def test_round_half_up_is_the_spreadsheets_round(n, k, decimals):
    value = Decimal(n).scaleb(-k)
    assert Fraction(scoring.round_half_up(value, decimals)) == half_up(Fraction(value), decimals)
    assert scoring.has_more_decimals(value, decimals) == (places(f"{value:f}") > decimals)


def test_caps_and_zero_rule():
    r = Rubric((Item("B1", "类", "指标", "", "base", 100.0), Item("P1", "特", "加", "", "bonus", 9.0),
                Item("M1", "特", "减", "", "deduction", 20.0), Item("Z", "特", "零", "", "zero", 0.0)))
    s = Settings(bonus_cap=5, deduction_cap=10)
    sc = scoring.score(r, {"B1": 3.0, "P1": 9.0, "M1": 20.0}, False, s)
    assert (sc.bonus, sc.deduction, sc.final) == (5, 10, 0.0)          # never below 0
    sc = scoring.score(r, {"B1": 90.0, "P1": 9.0, "M1": 1.0}, False, s)
    assert sc.final == 94.0
    assert scoring.score(r, {"B1": 90.0}, True, s).final == 0.0


# -- numbers as a person typed them -----------------------------------------------------------------

@pytest.fixture
def small(small_ctx):
    return small_ctx


def typed_into_a01(ctx, folder: Path, raw) -> object:
    """A file whose A01 score (G5, 0 to 40) holds `raw` as it stands (text stays text), the rest valid."""
    town = ctx.townships[0]
    lay = form_layout(ctx.rubric, town, ctx.settings)
    entries = {lay.score_cell("A02"): 10.0, lay.score_cell("B01"): 45.5, lay.score_cell("S03"): scoring.NO,
               lay.reporter_cell: "张三", lay.phone_cell: "0393-1234567", lay.score_cell("A01"): raw,
               lay.note_cell("A01"): "扣分原因", lay.note_cell("B01"): "扣分原因"}
    path = build_workbook(ctx.rubric, town, ctx.settings, folder / "f.xlsx", entries=entries)
    return check_returned(read_returned(path), ctx)


@pytest.mark.parametrize("raw", ["0_5", "¹", "١", "1,5", "1.5分", "1e1", "inf", "nan", "+1", "-1", "1.2.3", ".",
                                 "١٢", "½", "1 5", "0x10", "Infinity", "12\u00a0", "𝟏𝟐"])
def test_text_that_is_not_a_plain_number_is_v402_at_its_cell(small, tmp_path, raw):
    res = typed_into_a01(small, tmp_path, raw)
    assert [c for c in codes_of(res) if c[2] == "G5"] == [("V402", FORM_SHEET, "G5")]
    assert res.entries.values["A01"] is None and not res.report.ok


@pytest.mark.parametrize("raw, code, value", [
    ("12.5", "V404", 12.5), (" 12.5 ", "V404", 12.5), ("12.", "V404", 12.0), (".5", "V404", 0.5),
    ("\t7\n", "V404", 7.0), ("040", "V404", 40.0), ("１２．５", "V405", 12.5), ("12。5", "V405", 12.5),
    ("\u300012.5\u3000", "V405", 12.5),
])
def test_plain_and_full_width_numbers_typed_as_text_are_read_with_a_warning(small, tmp_path, raw, code, value):
    res = typed_into_a01(small, tmp_path, raw)
    assert [c for c in codes_of(res) if c[0] != "V408"] == [(code, FORM_SHEET, "G5")]
    assert res.entries.values["A01"] == value and res.report.ok     # V408: the form's SUM leaves text out


@pytest.mark.parametrize("raw", [12.505, "12.505", 0.001, "0.0001"])
def test_a_score_with_more_places_than_allowed_is_an_error_at_its_cell(small, tmp_path, raw):
    res = typed_into_a01(small, tmp_path, raw)
    assert ("V415", FORM_SHEET, "G5") in codes_of(res) and not res.report.ok
    assert res.entries.values["A01"] == float(raw)                   # still counted: the totals agree
    assert isinstance(raw, str) or "V408" not in {c for c, *_ in codes_of(res)}
    [v415] = [i for i in res.report if i.code == "V415"]
    assert "听取专题汇报" in v415.message and "两位小数" in v415.message


def test_three_places_are_fine_when_the_county_allows_them(small, tmp_path):
    ctx = replace(small, settings=replace(small.settings, score_decimals=3))
    res = typed_into_a01(ctx, tmp_path, 12.505)
    assert codes_of(res) == [] and res.scores.base == 68.005


# -- the county's setting and the form's rule ------------------------------------------------------

@pytest.mark.parametrize("line", ["score_decimals = 5", "score_decimals = -1", "score_decimals = 2.5",
                                  "score_decimals = true", 'score_decimals = "2"', "bonus_cap = 2.555"])
def test_score_decimals_is_a_whole_number_from_0_to_4(tmp_path, line):
    path = tmp_path / "settings.toml"
    path.write_text(f'title = "考核"\n\n{line}\n', encoding="utf-8")
    with pytest.raises(AssessError) as exc:
        load_settings(path)
    [bad] = exc.value.report.issues
    assert (bad.code, bad.file, bad.line, bad.column) == ("R201", "settings.toml", 3, line.split(" =")[0])


def test_the_bundled_settings_allow_two_places():
    assert load_settings().score_decimals == 2
    assert load_settings(Path(__file__).parent.parent / "templates" / "settings.toml").score_decimals == 2


@pytest.mark.parametrize("decimals", [2, 3, 0])
def test_the_form_refuses_more_places_and_rounds_its_totals(small, tmp_path, decimals):
    """Read back from the file: each score cell's rule is 0..points with at most d places, with a
    Chinese message; every total is ROUND(…, d) and shown with d places."""
    ctx = replace(small, settings=replace(small.settings, score_decimals=decimals))
    town = ctx.townships[0]
    lay = form_layout(ctx.rubric, town, ctx.settings)
    path = build_workbook(ctx.rubric, town, ctx.settings, tmp_path / "f.xlsx")
    ws = openpyxl.load_workbook(path)[FORM_SHEET]
    for item in ctx.rubric.items:
        if item.kind == "zero":
            continue
        [dv] = [dv for dv in ws.data_validations.dataValidation if lay.score_cell(item.id) in dv.sqref]
        top = min((str(r.coord).split(":")[0] for r in dv.sqref.ranges), key=lambda ref: int(ref[1:]))
        assert (dv.type, dv.errorStyle in (None, "stop"), dv.allow_blank) == ("custom", True, True)
        assert f"ROUND({top},{decimals})={top}" in dv.formula1 and f"{top}<=" in dv.formula1
        assert ("之间的整数" if decimals == 0 else f"之间、最多{scoring.PLACES_ZH[decimals]}的数") in dv.error
    number_format = "0." + "0" * decimals if decimals else "0"
    for ref in [*lay.total_cells.values(), *(lay.subtotal_cell(c) for c in lay.subtotal_rows)]:
        assert ws[ref].value.startswith(("=ROUND(", "=IF(")) and f",{decimals})" in ws[ref].value, ref
        assert ws[ref].number_format == number_format, ref


def test_a_note_of_a_full_width_space_is_a_note_as_trim_sees_it():
    """The form's TRIM takes ASCII spaces only; check must agree (no V417 the form does not show)."""
    assert scoring.note_missing("base", 1.0, 2.0, "  ") and not scoring.note_missing("base", 1.0, 2.0, "\u3000")
