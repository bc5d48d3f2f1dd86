"""Three judges of every total agree to the last digit: the exact oracle (tests/oracle.py), the Python
scoring (through `check` on the file LibreOffice saved) and LibreOffice's own recalculation of the form,
as it shows it. On random fills of the bundled rubric and on the boundary fills of test_scoring.

Scores are typed into generated forms through UNO (`setFormula`, as a person types them; UNO does not
apply the validation, so scores with too many places get in, as pasted ones would). LibreOffice's
detective then marks what the form's own validation refuses. One LibreOffice session for the module;
30 random fills by default, 300 with XLSX_ASSESS_FULL=1.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import needs_libreoffice
from oracle import PENDING, oracle, pending, places, random_typed, shown
from test_scoring import BOUNDARIES, EDGE_CAPS, edge_rubric, edge_settings

import lo
from xlsx_assess import scoring
from xlsx_assess.checks import Context
from xlsx_assess.collect import check_paths
from xlsx_assess.layout import FORM_SHEET, form_layout
from xlsx_assess.ranking import rank_townships
from xlsx_assess.settings import Township
from xlsx_assess.writer import build_workbook, file_name

pytestmark = pytest.mark.libreoffice

RANDOM_FILLS = 300 if os.environ.get("XLSX_ASSESS_FULL") else 30
SEED = 20261130


class Fill:
    """One form filled in LibreOffice: what was typed, and what the three judges say."""

    def __init__(self, ctx: Context, township: Township, typed: dict[str, str | None], zeroed: bool | None,
                 folder: Path):
        self.ctx, self.township, self.typed, self.zeroed = ctx, township, typed, zeroed
        self.lay = form_layout(ctx.rubric, township, ctx.settings)
        self.src = build_workbook(ctx.rubric, township, ctx.settings, folder / "blank" / file_name(
            township, ctx.settings.year))
        self.out = folder / "filled" / self.src.name
        s = ctx.settings
        self.expected = oracle(ctx.rubric, typed, bool(zeroed), repr(s.bonus_cap), repr(s.deduction_cap),
                               s.score_decimals)
        self.pending = pending(ctx.rubric, typed, bool(zeroed), s.score_decimals)
        self.shown_by_lo: dict[str, str] = {}
        self.value_by_lo: dict[str, float] = {}
        self.refused_by_lo: list[str] = []

    @property
    def decimals(self) -> int:
        return self.ctx.settings.score_decimals

    def cells(self) -> dict[str, str]:
        """Label -> cell of every total the form shows."""
        out = {f"{c}小计": self.lay.subtotal_cell(c) for c in self.lay.subtotal_rows}
        return out | dict(self.lay.total_cells)

    def over_precise(self) -> list[str]:
        """The score cells typed with more places than the county allows, in sheet order."""
        refs = [self.lay.score_cell(k) for k, v in self.typed.items() if v is not None and places(v) > self.decimals]
        return sorted(refs, key=lambda ref: int(ref[1:]))

    def acceptable(self) -> bool:
        """Every base line filled, none with too many places: the file is ranked."""
        base = {i.id for i in self.ctx.rubric.base}
        return not self.over_precise() and all(self.typed.get(k) is not None for k in base)

    def job(self) -> dict:
        sets = [[FORM_SHEET, self.lay.score_cell(k), {"formula": v}] for k, v in self.typed.items() if v is not None]
        if self.zeroed is not None:
            sets.append([FORM_SHEET, self.lay.score_cell(self.ctx.rubric.zero.id), scoring.YES if self.zeroed else scoring.NO])
        sets += [[FORM_SHEET, self.lay.reporter_cell, "李四"], [FORM_SHEET, self.lay.phone_cell, "0393-1234567"]]
        return {"in": str(self.src), "out": str(self.out), "format": "xlsx", "set": sets,
                "read": [[FORM_SHEET, ref] for ref in self.cells().values()], "invalid": [FORM_SHEET]}

    def take(self, result: dict) -> None:
        assert result["ok"], result.get("error")
        by_cell = {r["cell"]: r for r in result["read"]}
        for label, ref in self.cells().items():
            assert by_cell[ref]["type"] == "FORMULA" and by_cell[ref]["error"] == 0, (label, by_cell[ref])
            self.shown_by_lo[label] = by_cell[ref]["string"]
            self.value_by_lo[label] = by_cell[ref]["value"]
        self.refused_by_lo = result["invalid"][FORM_SHEET]


def _towns(prefix: str, n: int) -> list[Township]:
    return [Township(f"{prefix}{k:04d}", f"测试{prefix[-2:]}{k:04d}镇") for k in range(n)]


@pytest.fixture(scope="module")
def fills(ctx, tmp_path_factory) -> dict[str, list[Fill]]:
    """Groups of fills, each group one context (rubric, settings, roster) in its own folder."""
    needs_libreoffice()
    rng = random.Random(SEED)
    groups: dict[str, list[Fill]] = {}

    def group(name: str, base_ctx: Context, cases: list[tuple[dict, bool | None]]) -> None:
        folder = tmp_path_factory.mktemp(name)
        towns = _towns("4109" + str(len(groups) + 10), len(cases))
        gctx = Context(base_ctx.rubric, base_ctx.settings, towns)
        groups[name] = [Fill(gctx, t, typed, zeroed, folder) for t, (typed, zeroed) in zip(towns, cases)]

    def zeroed() -> bool | None:
        return rng.choice([None, False, False, False, True])

    # A third with two places, a third with two and now and then a third place (refused), a third with
    # three; each half under the bundled caps and half under small ones.
    kinds = [(d, extra, caps) for d, extra in ((2, 0), (2, 1), (3, 0)) for caps in ((5.0, 10.0), (1.5, 2.25))]
    for k, (decimals, extra, (bonus_cap, deduction_cap)) in enumerate(kinds):
        s = replace(ctx.settings, score_decimals=decimals, bonus_cap=bonus_cap, deduction_cap=deduction_cap)
        n = RANDOM_FILLS // len(kinds) + (k < RANDOM_FILLS % len(kinds))
        cases = [(random_typed(ctx.rubric, rng, decimals, extra, blanks=rng.choice((0, 0, 0, 0.02))), zeroed())
                 for _ in range(n)]
        group(f"random{k}", Context(ctx.rubric, s, []), cases)
    for decimals in (2, 3):
        cases = [(typed, z) for _, d, typed, z, *_ in BOUNDARIES if d == decimals]
        group(f"edge{decimals}", Context(edge_rubric(), edge_settings(decimals), []), cases)
    everything = [f for g in groups.values() for f in g]
    for f, result in zip(everything, lo.run_jobs([f.job() for f in everything], timeout=1800)):
        f.take(result)
    return groups


def _all(fills):
    return [f for g in fills.values() for f in g]


def test_the_fills_cover_what_they_should(fills):
    every = _all(fills)
    assert len([f for name, g in fills.items() if name.startswith("random") for f in g]) == RANDOM_FILLS
    finals = [f.expected for f in every]
    assert any(f.over_precise() for f in every) and any(not f.over_precise() for f in every)
    assert any(f.zeroed for f in every) and any(e["最终得分"] == 0 and not f.zeroed for f, e in zip(every, finals))
    s = [(f.expected, f.ctx.settings) for f in every]
    assert any(e["加分"] > Fraction(repr(st.bonus_cap)) for e, st in s)
    assert any(e["减分"] > Fraction(repr(st.deduction_cap)) for e, st in s)


def test_libreoffice_shows_what_the_oracle_computes(fills):
    """Every total as the oracle computes it, or 待完善 where it adds up a line the form refuses."""
    for f in _all(fills):
        for label, q in f.expected.items():
            if label in f.pending:
                assert f.shown_by_lo[label] == PENDING, (f.township.name, label, f.typed)
                continue
            assert f.shown_by_lo[label] == shown(q, f.decimals), (f.township.name, label, f.typed)
            assert f.value_by_lo[label] == float(q), (f.township.name, label)
    assert any(f.pending for f in _all(fills)) and any(not f.pending for f in _all(fills))


def test_check_scores_the_saved_file_as_the_oracle_does(fills):
    for name, group in fills.items():
        ctx = group[0].ctx
        coll = check_paths([group[0].out.parent], ctx, workers=1)
        by_code = {r.township.code: r for r in coll.results}
        for f in group:
            res = by_code[f.township.code]
            sc = res.scores
            ours = {f"{c}小计": v for c, v in sc.subtotals.items()} | sc.totals
            assert {k: Fraction(repr(v)) for k, v in ours.items()} == f.expected, (name, f.typed)
            assert not [i for i in res.report if i.code == "V408"], (name, [i.render() for i in res.report])
            v415 = [i.cell for i in res.report if i.code == "V415"]
            assert v415 == f.over_precise(), name


def test_the_forms_validation_refuses_exactly_the_over_precise_scores(fills):
    """LibreOffice judges the form's own rule: with 2 places allowed, a third is refused, at its cell."""
    refused = 0
    for f in _all(fills):
        assert f.refused_by_lo == f.over_precise(), (f.township.name, f.typed)
        refused += len(f.refused_by_lo)
    assert refused > 0


def test_the_ranking_publishes_what_each_form_shows(fills):
    for name, group in fills.items():
        ctx = group[0].ctx
        coll = check_paths([group[0].out.parent], ctx, workers=1)
        rk = rank_townships(coll, ctx)
        by_code = {f.township.code: f for f in group}
        ranked = rk.ranking.to_dict("records")
        assert {r["乡镇代码"] for r in ranked} == {f.township.code for f in group if f.acceptable()}, name
        finals = [by_code[r["乡镇代码"]].expected["最终得分"] for r in ranked]
        for row, final in zip(ranked, finals):
            f = by_code[row["乡镇代码"]]
            assert scoring.show(row["最终得分"], f.decimals) == f.shown_by_lo["最终得分"], (name, row)
            assert scoring.show(row["基础得分"], f.decimals) == f.shown_by_lo["基础得分"], (name, row)
            assert row["排名"] == 1 + sum(q > final for q in finals), (name, row)
            assert row["等次"] == (ctx.settings.lowest_grade if f.zeroed else ctx.settings.grade(float(final)))


def test_ties_at_two_places_share_a_rank(fills):
    group = fills["edge2"]
    coll = check_paths([group[0].out.parent], group[0].ctx, workers=1)
    rk = rank_townships(coll, group[0].ctx)
    tied = rk.ranking[rk.ranking["最终得分"] == 60.29]
    assert len(tied) == 2 and tied["排名"].nunique() == 1


def test_the_rule_survives_a_libreoffice_save(fills):
    """Read back from the files LibreOffice saved: every score cell keeps its rule, written for the
    rule's first cell with the county's places, and its Chinese message."""
    import openpyxl

    for name in ("random0", "random4", "edge2", "edge3"):
        f = fills[name][0]
        ws = openpyxl.load_workbook(f.out)[FORM_SHEET]
        for item in f.ctx.rubric.items:
            if item.kind == "zero":
                continue
            [dv] = [dv for dv in ws.data_validations.dataValidation if f.lay.score_cell(item.id) in dv.sqref]
            top = min((str(r.coord).split(":")[0] for r in dv.sqref.ranges), key=lambda ref: int(ref[1:]))
            assert dv.type == "custom" and dv.showErrorMessage and dv.errorStyle in (None, "stop"), (name, item.id)
            assert dv.formula1 == scoring.score_rule_formula(top, item.points, f.decimals), (name, item.id)
            assert f"最多{scoring.PLACES_ZH[f.decimals]}的数" in dv.error, (name, item.id)
