"""Returned workbooks as a township fills them: the tests' and the benchmark's one source of them.

Plain functions over the library, with no test framework, so that `bench/run.py` runs after
`pip install .` alone (it puts this folder on `sys.path`, as the tests' conftest does).
"""

from __future__ import annotations

import random
from pathlib import Path

from xlsx_assess.checks import Context
from xlsx_assess.layout import entry_cells, form_layout
from xlsx_assess.rubric import Rubric
from xlsx_assess.settings import Township
from xlsx_assess.writer import build_workbook, file_name


def random_values(rubric: Rubric, rng: random.Random, blanks: float = 0.0) -> dict[str, float | None]:
    """Valid random scores: halves and quarters between 0 and each line's points, some at the cap."""
    values: dict[str, float | None] = {}
    for item in rubric.items:
        if item.kind == "zero":
            continue
        if rng.random() < blanks:
            values[item.id] = None
            continue
        choice = rng.random()
        if choice < 0.2:
            values[item.id] = item.points
        elif choice < 0.3:
            values[item.id] = 0.0
        else:
            values[item.id] = round(rng.uniform(0, item.points) * 4) / 4
    return values


def full_marks(rubric: Rubric) -> dict[str, float]:
    return {i.id: (i.points if i.kind == "base" else 0.0) for i in rubric.items if i.kind != "zero"}


def filled_entries(ctx: Context, township: Township, values=None, zeroed=None, notes=None,
                   reporter="张三", phone="13800000000") -> dict:
    """What `build_workbook(entries=...)` takes to write a form filled with these values."""
    lay = form_layout(ctx.rubric, township, ctx.settings)
    return entry_cells(lay, values, zeroed, notes, None, reporter, phone)


def write_filled(ctx: Context, township: Township, folder: Path, values=None, zeroed=None, notes=None,
                 reporter="张三", phone="13800000000", name: str | None = None) -> Path:
    """A returned workbook as our writer would fill it (cached totals correct)."""
    entries = filled_entries(ctx, township, values, zeroed, notes, reporter, phone)
    path = folder / (name or file_name(township, ctx.settings.year))
    return build_workbook(ctx.rubric, township, ctx.settings, path, entries=entries)


def write_roster(townships: list[Township], path: str | Path) -> Path:
    """A roster CSV (code, name, kind) for `--townships`."""
    path = Path(path)
    path.write_text("code,name,kind\n" + "".join(f"{t.code},{t.name},{t.kind}\n" for t in townships),
                    encoding="utf-8")
    return path


def filled_review(rnd, code: str, tmp: Path, changes: dict | None = None, reasons: dict | None = None,
                  signed: bool = True) -> Path:
    """A round's township's 核定表 filled in as the 考核组 would (tests/test_review.py's approach: rewritten
    with its inputs set), written to `tmp`; `changes`: item id -> 核定分 (default: the first item, 0.5 off, with a reason)."""
    import datetime as dt

    from xlsx_assess.review import review_file_name, review_layout, write_review
    from xlsx_assess.workflow import check_round, load_round_context

    ctx = load_round_context(rnd)
    _, board = check_round(rnd, ctx, workers=1)
    own = board.reviews.accepted[code]
    t = ctx.roster[code]
    lay = review_layout(ctx.rubric, t, ctx.settings, own)
    if changes is None:
        first = next(i for i in ctx.rubric.base if own.values.get(i.id))
        changes, reasons = {first.id: own.values[first.id] - 0.5}, {first.id: "台账缺少第四季度记录"}
    decided = {lay.score_cell(i): v for i, v in changes.items()}
    decided.update({lay.reason_cell(i): text for i, text in (reasons or {}).items()})
    if signed:
        decided.update({lay.reviewer_cell: "王核查", lay.date_cell: dt.date(2027, 1, 15)})
    return write_review(review_layout(ctx.rubric, t, ctx.settings, own, decided), tmp / review_file_name(t, ctx.settings.year))
