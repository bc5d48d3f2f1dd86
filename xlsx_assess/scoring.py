"""How a total is computed: once in Python, once as spreadsheet formulas, side by side.

Rules (county decisions, see `settings.toml`; d = score_decimals, 2 unless the county says otherwise):
- a score is a number from 0 to its line's points with at most d decimals;
- every total the form shows is rounded half up (四舍五入) to d decimals, as the spreadsheet's ROUND
  does, and is computed from what the form shows: each category's 小计 from its lines, 基础得分 from
  the 小计, 加分 / 减分 from their lines;
- 最终得分 = 0 if the zero-out line is 是, else ROUND(max(0, 基础得分 + min(加分, cap) − min(减分, cap)), d);
- the completion line counts the base lines that hold a number.

Python computes in `decimal`, exactly, from the value the file holds: the typed text, or the shortest
text that reads back as the stored number (`exact`). The results are kept as floats (the nearest
double to a d-decimal value, which reads back as that value), so a verdict stays small.

Tests hold the Python functions and the formulas equal by recalculating generated workbooks in
LibreOffice, against an exact oracle written independently.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import TYPE_CHECKING, Mapping

from .rubric import Rubric, format_points

if TYPE_CHECKING:
    from .settings import Settings

YES, NO = "是", "否"
MAX_DECIMALS = 4                     # what score_decimals may be (a spreadsheet shows 15 digits in all)
EXACT = Context(prec=80)             # enough digits that no sum of scores is ever rounded on the way
PLACES_ZH = ("整数", "一位小数", "两位小数", "三位小数", "四位小数")    # "保留两位小数"; index: decimals
EXACT_CACHE = 4096    # floats remembered by `exact` and by `fits`: ~410 bytes a float in both, 1.7 MB at most


@functools.lru_cache(maxsize=EXACT_CACHE, typed=True)      # typed: 1 and 1.0 read as their own texts
def exact(value: float | int) -> Decimal:
    """The decimal a stored number means: the shortest text that reads back as it (1.5, 60.195)."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))


def round_half_up(value: Decimal, decimals: int) -> Decimal:
    """Round half away from zero to `decimals` places, as the spreadsheet's ROUND does."""
    if not value.is_finite() or value.adjusted() >= 60:        # beyond any score: nothing to round
        return value
    return value.quantize(_QUANTA[decimals], rounding=ROUND_HALF_UP, context=EXACT)


_QUANTA = [Decimal(1).scaleb(-k) for k in range(MAX_DECIMALS + 1)]     # 1, 0.1, 0.01, …


@functools.lru_cache(maxsize=EXACT_CACHE)
def fits(value: float, decimals: int) -> bool:
    """True when a stored number is a score of at most `decimals` places (remembered: the usual case)."""
    return not has_more_decimals(exact(value), decimals)


def has_more_decimals(value: Decimal, decimals: int) -> bool:
    """True when `value` cannot be written with `decimals` places (1.50 fits 1, 0.305 does not fit 2)."""
    return value.is_finite() and value != round_half_up(value, decimals)


def show(value: float | Decimal, decimals: int) -> str:
    """A score as the form shows it: with exactly `decimals` places (90.00)."""
    return f"{round_half_up(value if isinstance(value, Decimal) else exact(value), decimals):.{decimals}f}"


def number_format(decimals: int) -> str:
    """The spreadsheet number format that shows `decimals` places: 0.00 for 2."""
    return "0." + "0" * decimals if decimals else "0"


@dataclass(frozen=True, slots=True)
class Scores:
    subtotals: dict[str, float]
    base: float
    bonus_raw: float
    deduction_raw: float
    bonus: float          # counted towards the final score (capped)
    deduction: float      # counted towards the final score (capped)
    final: float
    zeroed: bool
    filled: int
    required: int

    @property
    def complete(self) -> bool:
        return self.filled == self.required

    @property
    def completion(self) -> str:
        return completion_text(self.filled, self.required)

    @property
    def totals(self) -> dict[str, float]:
        """The four totals by their labels in the workbook (raw bonus and deduction, as shown)."""
        return {"基础得分": self.base, "加分": self.bonus_raw, "减分": self.deduction_raw, "最终得分": self.final}


def completion_text(filled: int, required: int) -> str:
    state = "可以提交" if filled == required else "尚有未填项"
    return f"已填 {filled}/{required} 项 · {state}"


def score(rubric: Rubric, values: Mapping[str, float | None], zeroed: bool, settings: "Settings") -> Scores:
    """Score one township under the county's rule (`settings`: caps and score_decimals).

    `values` maps item ids to numbers as the file holds them; None or absent is blank (0). Exact for
    every sum whose digits fit EXACT's precision: any score from 1e-40 to 1e40.
    """
    d = settings.score_decimals
    n = len(rubric.scored_categories)
    sums = [Decimal(0)] * (n + 2)                  # each category's 小计, then 加分, 减分
    filled = 0
    with localcontext(EXACT):
        for item_id, total, base in rubric.scored_lines:
            v = values.get(item_id)
            if v is not None:
                sums[total] += exact(v)
                filled += base
        shown = [round_half_up(s, d) for s in sums]
        subtotals, (bonus_raw, deduction_raw) = shown[:n], shown[n:]
        base_total = round_half_up(sum(subtotals, Decimal(0)), d)
        bonus, deduction = min(bonus_raw, exact(settings.bonus_cap)), min(deduction_raw, exact(settings.deduction_cap))
        final = Decimal(0) if zeroed else round_half_up(max(Decimal(0), base_total + bonus - deduction), d)
    return Scores(dict(zip(rubric.scored_categories, map(float, subtotals))), float(base_total), float(bonus_raw),
                  float(deduction_raw), float(bonus), float(deduction), float(final), zeroed, filled, len(rubric.base))


# -- the same rules as formulas -------------------------------------------------------------------

def total_formula(cells: list[str], decimals: int) -> str:
    """A total as the form shows it: the sum of its cells, rounded like `score`'s totals."""
    return f"ROUND(SUM({','.join(cells)}),{decimals})" if cells else "0"


def final_formula(base: str, bonus: str, deduction: str, zero: str | None, bonus_cap: float,
                  deduction_cap: float, decimals: int) -> str:
    core = (f"ROUND(MAX(0,{base}+MIN({bonus},{format_points(bonus_cap)})"
            f"-MIN({deduction},{format_points(deduction_cap)})),{decimals})")
    return f'IF({zero}="{YES}",0,{core})' if zero else core


def completion_formula(ranges: list[str], n: int) -> str:
    """`ranges` hold the `n` required cells; COUNT counts the ones that hold a number."""
    count = f"COUNT({','.join(ranges)})" if ranges else "0"
    done, todo = completion_text(n, n), completion_text(0, n)
    return f'IF({count}={n},"{done}","已填 "&{count}&"/{n} 项 · {todo.split(" · ")[1]}")'


def score_rule_formula(cell: str, top: float, decimals: int) -> str:
    """What a score cell accepts, as a validation formula relative to `cell`: a number from 0 to `top`
    with at most `decimals` places (the spreadsheet's ROUND leaves it as it is)."""
    return f"AND(ISNUMBER({cell}),{cell}>=0,{cell}<={format_points(top)},ROUND({cell},{decimals})={cell})"


def bad_score_formula(cell: str, top: str, decimals: int) -> str:
    """True where a score cell holds something `score_rule_formula` refuses (text, out of range, too many
    places): the form colours it; `top` is the reference of the line's points."""
    return (f"OR(AND(ISNUMBER({cell}),OR({cell}<0,{cell}>{top},ROUND({cell},{decimals})<>{cell})),"
            f"ISTEXT({cell}))")
