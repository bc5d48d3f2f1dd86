"""How a total is computed: once in Python, once as spreadsheet formulas, side by side.

Rules (county decisions, see `settings.toml`; d = score_decimals, 2 unless the county says otherwise):
- a score is a number from 0 to its line's points with at most d decimals;
- every total the form shows is rounded half up (四舍五入) to d decimals, as the spreadsheet's ROUND
  does, and is computed from what the form shows: each category's 小计 from its lines, 基础得分 from
  the 小计, 加分 / 减分 from their lines;
- 最终得分 = 0 if the zero-out line is 是, else ROUND(max(0, 基础得分 + min(加分, cap) − min(减分, cap)), d);
- an entry is valid when it is a number from 0 to its line's points with at most d places (a blank
  bonus or deduction line is valid, a blank base line is missing), or, on the zero-out line, 是 or 否;
- a total over an invalid entry is not final: the form shows PENDING (待完善) instead of a number
  (最终得分 too, unless the zero-out line is 是); the numbers Python keeps stay as they are computed;
- the completion line says 可以提交 only when every entry is valid and every required line (each base
  line, the zero-out line) is answered, and else names the first lines still missing or invalid.

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
from typing import TYPE_CHECKING, Any, Mapping

from .rubric import Rubric, format_points

if TYPE_CHECKING:
    from .settings import Settings

YES, NO = "是", "否"
PENDING = "待完善"                    # what a total over an invalid entry shows instead of a number
LISTED = 3                           # lines the completion line names (then "…")
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
    lines: int = 0                       # lines to answer: the base lines and the zero-out line
    problems: tuple[str, ...] = ()       # ids of the lines missing or invalid, in the form's order
    pending: frozenset[str] = frozenset()   # labels (categories, 基础得分, …) the form shows as PENDING
    invalid: frozenset[str] = frozenset()   # ids of the lines whose entry the form does not accept

    def state(self, item_id: str) -> int:
        """The line's state as the form's helper column shows it: 0 valid, 1 missing, 2 invalid."""
        return 2 if item_id in self.invalid else 1 if item_id in self.problems else 0

    @property
    def complete(self) -> bool:
        return self.filled == self.required

    @property
    def completion(self) -> str:
        return completion_text(self.problems, self.lines)

    @property
    def totals(self) -> dict[str, float]:
        """The four totals by their labels in the workbook (raw bonus and deduction, as shown)."""
        return {"基础得分": self.base, "加分": self.bonus_raw, "减分": self.deduction_raw, "最终得分": self.final}


def completion_text(problems: tuple[str, ...] | list[str], required: int) -> str:
    """What the completion line shows: 可以提交, or how many lines are missing or invalid and the first ones."""
    if not problems:
        return f"已填 {required}/{required} 项 · 可以提交"
    more = "…" if len(problems) > LISTED else ""
    return f"还有 {len(problems)} 项未填或有误：{'、'.join(problems[:LISTED])}{more}"


def score(rubric: Rubric, values: Mapping[str, float | None], zeroed: bool | None, settings: "Settings",
          invalid: frozenset[str] | set[str] | tuple = ()) -> Scores:
    """Score one township under the county's rule (`settings`: caps and score_decimals).

    `values` maps item ids to numbers as the file holds them; None or absent is blank (0). Exact for
    every sum whose digits fit EXACT's precision: any score from 1e-40 to 1e40. `invalid` names the
    lines whose entry the form does not accept (see `line_state`); `zeroed` None is a zero-out line
    left blank (not zeroed, but not answered either).
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
    problems = tuple(i.id for i in rubric.items
                     if i.id in invalid or (values.get(i.id) is None if i.kind == "base" else i.kind == "zero" and zeroed is None))
    return Scores(dict(zip(rubric.scored_categories, map(float, subtotals))), float(base_total), float(bonus_raw),
                  float(deduction_raw), float(bonus), float(deduction), float(final), bool(zeroed), filled,
                  len(rubric.base), required_lines(rubric), problems, pending_totals(rubric, invalid, bool(zeroed)), frozenset(invalid))


def required_lines(rubric: Rubric) -> int:
    """Lines that must be answered: every base line and the zero-out line."""
    return len(rubric.base) + (rubric.zero is not None)


def pending_totals(rubric: Rubric, invalid, zeroed: bool) -> frozenset[str]:
    """The totals (by label; a category's 小计 by the category) that sum over an invalid entry."""
    if not invalid:
        return frozenset()
    bad = [i for i in rubric.items if i.id in invalid]
    out = {i.category for i in bad if i.kind == "base"}
    if out:
        out.add("基础得分")
    out.update(label for kind, label in (("bonus", "加分"), ("deduction", "减分")) if any(i.kind == kind for i in bad))
    if not zeroed:
        out.add("最终得分")
    return frozenset(out)


def line_state(kind: str, raw, points: float, decimals: int) -> int:
    """What the form's helper column says of a line's entry (`state_formula`): 0 valid, 1 missing, 2 invalid.

    `raw` is the cell as a spreadsheet holds it: a number, text, or None for an empty cell."""
    if kind == "zero":
        text = cell_text(raw).strip(" ")
        return 0 if text in (YES, NO) else 1 if text == "" else 2
    if type(raw) in (int, float):
        return 0 if 0 <= raw <= points and fits(float(raw), decimals) else 2
    if raw is None or (isinstance(raw, str) and raw.strip(" ") == ""):
        return 1 if kind == "base" else 0
    return 2


def cell_text(value: Any) -> str:
    """A cell's value as its text: blank for none, 2.0 as "2" (what a returned file is compared and shown by)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the same rules as formulas -------------------------------------------------------------------

def total_formula(cells: list[str], decimals: int) -> str:
    """A total as the form shows it: the sum of its cells, rounded like `score`'s totals."""
    return f"ROUND(SUM({','.join(cells)}),{decimals})" if cells else "0"


def final_formula(base: str, bonus: str, deduction: str, zero: str | None, bonus_cap: float,
                  deduction_cap: float, decimals: int, states: list[str] | None = None) -> str:
    """最终得分; PENDING when any state cell (`states`) says invalid, 0 when the zero-out line says 是."""
    core = (f"ROUND(MAX(0,{base}+MIN({bonus},{format_points(bonus_cap)})"
            f"-MIN({deduction},{format_points(deduction_cap)})),{decimals})")
    core = pending_formula(states or [], core)
    return f'IF(TRIM({zero})="{YES}",0,{core})' if zero else core


def state_formula(kind: str, cell: str, points: str, decimals: int) -> str:
    """A line's state as `line_state` computes it: 0 valid, 1 missing, 2 invalid (`points`: its cell)."""
    if kind == "zero":
        return f'IF(ISERROR({cell}),2,IF(OR(TRIM({cell})="{YES}",TRIM({cell})="{NO}"),0,IF(TRIM({cell})="",1,2)))'
    blank = 1 if kind == "base" else 0
    return (f"IF(ISNUMBER({cell}),IF(AND({cell}>=0,{cell}<={points},ROUND({cell},{decimals})={cell}),0,2),"
            f'IF(ISERROR({cell}),2,IF(TRIM({cell})="",{blank},2)))')


def running_formula(state: str, previous: str | None) -> str:
    """How many lines up to this one are missing or invalid (the helper column beside the states)."""
    return f"{previous}+IF({state}>0,1,0)" if previous else f"IF({state}>0,1,0)"


def invalid_count(states: list[str]) -> str:
    """How many of the state cells (ranges) say invalid."""
    return "+".join(f"COUNTIF({r},2)" for r in states)


def pending_formula(states: list[str], total: str) -> str:
    """A total, or PENDING when one of the lines it adds up is invalid."""
    return f'IF({invalid_count(states)}>0,"{PENDING}",{total})' if states else total


def completion_formula(ids: str, running: str, last: str, required: int) -> str:
    """可以提交, or how many lines are missing or invalid and the first LISTED of them, by their 编号:
    `ids` the column of ids and `running` the running counts beside them (same rows), `last` the final count."""
    def nth(k: int) -> str:
        return f"INDEX({ids},MATCH({k},{running},0))"
    listed = "&".join([nth(1)] + [f'IF({last}>{k - 1},"、"&{nth(k)},"")' for k in range(2, LISTED + 1)])
    done = completion_text((), required)
    return f'IF({last}=0,"{done}","还有 "&{last}&" 项未填或有误："&{listed}&IF({last}>{LISTED},"…",""))'


def score_rule_formula(cell: str, top: float, decimals: int) -> str:
    """What a score cell accepts, as a validation formula relative to `cell`: a number from 0 to `top`
    with at most `decimals` places (the spreadsheet's ROUND leaves it as it is)."""
    return f"AND(ISNUMBER({cell}),{cell}>=0,{cell}<={format_points(top)},ROUND({cell},{decimals})={cell})"


def note_missing_formula(kind: str, score: str, points: str, note: str) -> str:
    """True where a line claims a deduction (a base line below its points) or a bonus or deduction (such
    a line above 0) and its 扣分说明 (`note`) is blank: what `check` reports as V417."""
    claim = f"{score}<{points}" if kind == "base" else f"{score}>0"
    return f'AND(ISNUMBER({score}),{claim},TRIM({note})="")'


def note_missing(kind: str, value: float | None, points: float, note: str) -> bool:
    """`note_missing_formula` in Python, on a score as read (None: blank or unusable)."""
    if value is None or note.strip(" "):            # TRIM takes ASCII spaces only: a full-width one is text
        return False
    return value < points if kind == "base" else value > 0


def bad_score_formula(cell: str, top: str, decimals: int) -> str:
    """True where a score cell holds something `score_rule_formula` refuses (text, out of range, too many
    places): the form colours it; `top` is the reference of the line's points."""
    return (f"OR(AND(ISNUMBER({cell}),OR({cell}<0,{cell}>{top},ROUND({cell},{decimals})<>{cell})),"
            f"ISTEXT({cell}))")
