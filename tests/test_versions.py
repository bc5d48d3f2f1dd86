"""A return checked against the rubric version it was made from (issue 13, item 6): a version that differs
in wording only is accepted with a note (I208); any other is told by what changed, never by two hashes."""

from __future__ import annotations

from dataclasses import replace

from fills import full_marks, write_filled

from xlsx_assess.issues import Code
from xlsx_assess.round import generate_round, init_round
from xlsx_assess.rubric import Rubric
from xlsx_assess.setup_book import write_setup_book
from xlsx_assess.workflow import check_round, load_round_context


def _round_with_a_return(small_ctx, tmp_path):
    """A round whose forms were made from the small rubric, and 城关镇's return filled on one of them."""
    rnd = init_round(tmp_path / "r")
    write_setup_book(small_ctx.rubric, small_ctx.townships, small_ctx.settings, rnd.setup)
    generate_round(rnd)
    township = small_ctx.townships[0]
    notes = {i.id: "说明" for i in small_ctx.rubric.items}
    write_filled(small_ctx, township, rnd.returned, values=full_marks(small_ctx.rubric), notes=notes)
    return rnd, township


def _reset_to(rnd, small_ctx, rubric: Rubric) -> None:
    write_setup_book(rubric, small_ctx.townships, small_ctx.settings, rnd.setup)
    generate_round(rnd, force=True)


def test_a_return_of_a_version_differing_in_wording_only_is_accepted_with_a_note(small_ctx, tmp_path):
    rnd, township = _round_with_a_return(small_ctx, tmp_path)
    worded = Rubric(tuple(replace(i, criterion=i.criterion + "（修订）") if i.id == "A01" else i
                          for i in small_ctx.rubric.items))
    _reset_to(rnd, small_ctx, worded)
    ctx = load_round_context(rnd)
    assert ctx.rubric == worded and small_ctx.rubric.fingerprint in ctx.versions
    coll, board = check_round(rnd, ctx)
    line = next(x for x in board.lines if x.code == township.code)
    assert line.state == "ok", line.issues
    [res] = list(coll.results)
    codes = [i.code for i in res.report.issues]
    assert Code.OLD_WORDING in codes and Code.WRONG_RUBRIC not in codes
    note = next(i for i in res.report.issues if i.code == Code.OLD_WORDING)
    assert "A01" in note.message and small_ctx.rubric.fingerprint[:12] not in note.message


def test_a_return_of_a_version_with_other_points_is_told_by_its_changes(small_ctx, tmp_path):
    rnd, township = _round_with_a_return(small_ctx, tmp_path)
    points = {"A01": 35.0, "A02": 15.0}
    changed = Rubric(tuple(replace(i, points=points[i.id]) if i.id in points else i for i in small_ctx.rubric.items))
    _reset_to(rnd, small_ctx, changed)
    coll, board = check_round(rnd, load_round_context(rnd))
    line = next(x for x in board.lines if x.code == township.code)
    assert line.state == "fix"
    [wrong] = [i for i in line.issues if i.code == Code.WRONG_RUBRIC]
    assert "A01 分值 40 → 35" in wrong.message
    assert small_ctx.rubric.fingerprint[:12] not in wrong.message and changed.fingerprint[:12] not in wrong.message
