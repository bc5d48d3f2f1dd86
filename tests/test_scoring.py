"""Property tests: any valid rubric and any valid scores survive build → read → check → score unchanged."""

from __future__ import annotations

import tempfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from conftest import write_filled
from hypothesis import strategies as st

from xlsx_assess import scoring
from xlsx_assess.checks import Context, check_returned
from xlsx_assess.reader import read_returned
from xlsx_assess.rubric import Item, Rubric
from xlsx_assess.settings import Settings, Township

TOWN = Township("410927100", "城关镇")
quarter = st.integers(min_value=1, max_value=24).map(lambda q: q / 4)


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


def direct(rubric: Rubric, values, zeroed: bool, bonus_cap: float, deduction_cap: float) -> Decimal:
    """The county's rule, written out independently in decimal arithmetic."""
    d = {k: Decimal(str(v or 0)) for k, v in values.items()}
    base = sum((d[i.id] for i in rubric.items if i.kind == "base"), Decimal(0))
    bonus = min(sum((d[i.id] for i in rubric.items if i.kind == "bonus"), Decimal(0)), Decimal(str(bonus_cap)))
    ded = min(sum((d[i.id] for i in rubric.items if i.kind == "deduction"), Decimal(0)), Decimal(str(deduction_cap)))
    if zeroed:
        return Decimal(0)
    return max(Decimal(0), base + bonus - ded).quantize(Decimal("0.01"), ROUND_HALF_UP)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filled())
def test_round_trip_scores_equal_direct_computation(case):
    rubric, values, zeroed, (bonus_cap, deduction_cap) = case
    s = Settings(bonus_cap=bonus_cap, deduction_cap=deduction_cap)
    ctx = Context(rubric, s, [TOWN])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_filled(ctx, TOWN, Path(tmp), values, zeroed if rubric.zero else None, phone="0393-1234567")
        res = check_returned(read_returned(path), ctx)
    assert res.scores is not None, [i.render() for i in res.report]
    assert res.entries.values == values
    assert Decimal(str(res.scores.final)) == direct(rubric, values, zeroed, bonus_cap, deduction_cap)
    blanks = sum(1 for i in rubric.base if values[i.id] is None)
    codes = {i.code for i in res.report}
    assert codes <= {"V401", "V413"}                    # the cached totals agree: no V408
    assert ("V401" in codes) == (blanks > 0)
    assert res.scores.completion == scoring.completion_text(len(rubric.base) - blanks, len(rubric.base))


@given(st.floats(min_value=0, max_value=1000, allow_nan=False).map(lambda x: round(x, 3)))
def test_round2_is_half_up_like_the_spreadsheet(x):
    assert scoring.round2(x) == float(Decimal(repr(x)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def test_caps_and_zero_rule():
    r = Rubric((Item("B1", "类", "指标", "", "base", 100.0), Item("P1", "特", "加", "", "bonus", 9.0),
                Item("M1", "特", "减", "", "deduction", 20.0), Item("Z", "特", "零", "", "zero", 0.0)))
    sc = scoring.score(r, {"B1": 3.0, "P1": 9.0, "M1": 20.0}, False, 5, 10)
    assert (sc.bonus, sc.deduction, sc.final) == (5, 10, 0.0)          # never below 0
    sc = scoring.score(r, {"B1": 90.0, "P1": 9.0, "M1": 1.0}, False, 5, 10)
    assert sc.final == 94.0
    assert scoring.score(r, {"B1": 90.0}, True, 5, 10).final == 0.0
