"""The county's scoring rule written out a second time, independently of `xlsx_assess.scoring`, in exact
rational arithmetic (fractions.Fraction) from the scores as typed; and random typed fills.

The rule, as the README and the form's guide publish it: every total the form shows is the sum of what
it adds up, as shown, rounded half up (四舍五入) to `decimals` places — each category's 小计 from its
lines, 基础得分 from the 小计, 加分 and 减分 from their lines — and 最终得分 is
max(0, 基础得分 + min(加分, bonus cap) − min(减分, deduction cap)) rounded the same way, or 0 when the
zero-out line says 是.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Mapping


def half_up(q: Fraction, decimals: int) -> Fraction:
    """q ≥ 0 rounded half up to `decimals` places."""
    scale = 10 ** decimals
    return Fraction(math.floor(q * scale + Fraction(1, 2)), scale)


def shown(q: Fraction, decimals: int) -> str:
    """A total as a spreadsheet shows it with `decimals` places (number format 0.00 for 2)."""
    n = half_up(q, decimals) * 10 ** decimals
    assert n.denominator == 1
    whole, part = divmod(int(n), 10 ** decimals)
    return f"{whole}.{part:0{decimals}d}" if decimals else str(whole)


def oracle(rubric, typed: Mapping[str, str | None], zeroed: bool, bonus_cap: str, deduction_cap: str,
           decimals: int) -> dict[str, Fraction]:
    """Every total the form shows, by label ('基础得分', …, and '<category>小计'), from the typed scores."""
    def line(item) -> Fraction:
        text = typed.get(item.id)
        return Fraction(text.strip()) if text is not None and text.strip() else Fraction(0)

    def total(items) -> Fraction:
        return half_up(sum((line(i) for i in items), Fraction(0)), decimals)

    out: dict[str, Fraction] = {}
    categories = dict.fromkeys(i.category for i in rubric.items if i.kind == "base")
    for c in categories:
        out[f"{c}小计"] = total([i for i in rubric.items if i.kind == "base" and i.category == c])
    base = half_up(sum((out[f"{c}小计"] for c in categories), Fraction(0)), decimals)
    bonus = total([i for i in rubric.items if i.kind == "bonus"])
    deduction = total([i for i in rubric.items if i.kind == "deduction"])
    final = max(Fraction(0), base + min(bonus, Fraction(bonus_cap)) - min(deduction, Fraction(deduction_cap)))
    out.update({"基础得分": base, "加分": bonus, "减分": deduction,
                "最终得分": Fraction(0) if zeroed else half_up(final, decimals)})
    return out


PENDING = "待完善"


def pending(rubric, typed: Mapping[str, str | None], zeroed: bool, decimals: int) -> set[str]:
    """The totals (labels as `oracle` names them) the form shows as 待完善: those that add up a line
    typed with more than `decimals` places (the form's rule refuses it), and 最终得分 unless zeroed."""
    bad = [i for i in rubric.items if (t := typed.get(i.id)) is not None and t.strip() and places(t) > decimals]
    out = {f"{i.category}小计" for i in bad if i.kind == "base"}
    out |= {"基础得分"} if out else set()
    out |= {label for kind, label in (("bonus", "加分"), ("deduction", "减分")) if any(i.kind == kind for i in bad)}
    return out | ({"最终得分"} if bad and not zeroed else set())


def places(text: str) -> int:
    """Decimal places of a typed number ('1.50' has 1: trailing zeros say nothing)."""
    text = text.strip()
    return len(text.split(".")[1].rstrip("0")) if "." in text else 0


def random_typed(rubric, rng: random.Random, decimals: int, extra: int = 0,
                 blanks: float = 0.05) -> dict[str, str | None]:
    """Scores a person might type: 0 to each line's points with up to `decimals` places (`extra` more on
    a few lines), sometimes the full points, 0, blank, or a trailing zero ('1.50')."""
    out: dict[str, str | None] = {}
    for item in rubric.items:
        if item.kind == "zero":
            continue
        roll = rng.random()
        if roll < blanks:
            out[item.id] = None
            continue
        if roll < 0.2:
            out[item.id] = f"{item.points:g}"
            continue
        if roll < 0.25:
            out[item.id] = "0"
            continue
        k = rng.randint(0, decimals + (extra if rng.random() < 0.2 else 0))
        n = rng.randint(0, int(Fraction(repr(item.points)) * 10 ** k))
        whole, part = divmod(n, 10 ** k)
        text = f"{whole}.{part:0{k}d}" if k else str(whole)
        out[item.id] = text + ("0" if k and rng.random() < 0.05 else "")
    return out
