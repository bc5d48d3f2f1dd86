"""How a total is computed: once in Python, once as spreadsheet formulas, side by side.

Rules (county decisions, see `settings.toml`):
- 基础得分 = the sum of the base lines' scores (each 0 to its points);
- 加分 / 减分 = the sums of the bonus / deduction lines, counted up to bonus_cap / deduction_cap;
- 最终得分 = 0 if the zero-out line is 是, else round(max(0, 基础得分 + min(加分, cap) − min(减分, cap)), 2);
- the completion line counts the base lines that hold a number.

Tests hold the Python functions and the formulas equal by recalculating generated workbooks in
LibreOffice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Mapping

from .rubric import Rubric, format_points

YES, NO = "是", "否"


def round2(value: float) -> float:
    """Round half away from zero to two decimals, as the spreadsheet's ROUND does."""
    if not math.isfinite(value) or abs(value) >= 1e15:       # beyond any score: nothing to round
        return value
    return float(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


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


def score(rubric: Rubric, values: Mapping[str, float | None], zeroed: bool, bonus_cap: float,
          deduction_cap: float) -> Scores:
    """Score one township. `values` maps item ids to numbers; None or absent is blank (0)."""

    def total(items) -> float:
        return sum(values.get(i.id) or 0.0 for i in items)

    subtotals = dict.fromkeys(rubric.scored_categories, 0.0)
    for i in rubric.base:
        subtotals[i.category] += values.get(i.id) or 0.0
    base = sum(subtotals.values())
    bonus_raw, deduction_raw = total(rubric.bonus), total(rubric.deduction)
    bonus, deduction = min(bonus_raw, bonus_cap), min(deduction_raw, deduction_cap)
    final = 0.0 if zeroed else round2(max(0.0, base + bonus - deduction))
    filled = sum(1 for i in rubric.base if values.get(i.id) is not None)
    return Scores(subtotals, base, bonus_raw, deduction_raw, bonus, deduction, final, zeroed, filled,
                  len(rubric.base))


# -- the same rules as formulas -------------------------------------------------------------------

def sum_formula(cells: list[str]) -> str:
    return f"SUM({','.join(cells)})" if cells else "0"


def final_formula(base: str, bonus: str, deduction: str, zero: str | None, bonus_cap: float,
                  deduction_cap: float) -> str:
    core = (f"ROUND(MAX(0,{base}+MIN({bonus},{format_points(bonus_cap)})"
            f"-MIN({deduction},{format_points(deduction_cap)})),2)")
    return f'IF({zero}="{YES}",0,{core})' if zero else core


def completion_formula(ranges: list[str], n: int) -> str:
    """`ranges` hold the `n` required cells; COUNT counts the ones that hold a number."""
    count = f"COUNT({','.join(ranges)})" if ranges else "0"
    done, todo = completion_text(n, n), completion_text(0, n)
    return f'IF({count}={n},"{done}","已填 "&{count}&"/{n} 项 · {todo.split(" · ")[1]}")'
