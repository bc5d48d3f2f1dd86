"""What changed between two versions of a rubric, line by line (by 编号), in words a clerk reads:
"A01 分值 1.5 → 2", never two hashes.

Two versions are *compatible* when a form made from one can be checked against the other: the same
lines (ids, in the same order), kinds and points, grouped into the same categories; only wording
(内容, 指标, 评分标准, 备注 texts) differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .rubric import KIND_ZH, Item, Rubric, format_points

FIELD_ZH = {"category": "内容", "indicator": "一级指标", "criterion": "二级指标", "guide": "评分标准", "note": "备注"}
WORDING = tuple(FIELD_ZH)
SHOWN_TEXT = 24                      # characters of a changed text shown on each side of the arrow


@dataclass(frozen=True)
class Change:
    """One difference: `what` is "added", "removed", "order", "points", "kind" or a wording field."""

    id: str
    what: str
    old: str = ""
    new: str = ""

    @property
    def wording(self) -> bool:
        return self.what in WORDING

    @property
    def text(self) -> str:
        if self.what == "added":
            return f"新增 {self.new}"
        if self.what == "removed":
            return f"删除 {self.old}"
        if self.what == "order":
            return f"评分项顺序调整：{self.old} → {self.new}"
        name = {"points": "分值", "kind": "类型", **FIELD_ZH}[self.what]
        if self.wording:
            return f"{self.id} {name}“{_short(self.old)}” → “{_short(self.new)}”"
        return f"{self.id} {name} {self.old} → {self.new}"

    def __str__(self) -> str:
        return self.text


def diff_rubrics(old: Rubric, new: Rubric) -> list[Change]:
    """Every change from `old` to `new`: removed lines, then per line of `new` (in its order) what was added
    or changed, then a change of order among the lines both have."""
    before = {i.id: i for i in old.items}
    after = {i.id: i for i in new.items}
    changes = [Change(i.id, "removed", old=i.label) for i in old.items if i.id not in after]
    for item in new.items:
        if item.id not in before:
            changes.append(Change(item.id, "added", new=f"{item.label}（{KIND_ZH[item.kind]} "
                                                       f"{format_points(item.points)} 分）"))
        else:
            changes.extend(_line_changes(before[item.id], item))
    kept_old = [i for i in old.ids if i in after]
    kept_new = [i for i in new.ids if i in before]
    if kept_old != kept_new:
        changes.append(Change("", "order", old="、".join(_moved(kept_old, kept_new)),
                              new="、".join(_moved(kept_new, kept_old))))
    return changes


def _line_changes(a: Item, b: Item) -> list[Change]:
    out = []
    if a.points != b.points:
        out.append(Change(b.id, "points", format_points(a.points), format_points(b.points)))
    if a.kind != b.kind:
        out.append(Change(b.id, "kind", KIND_ZH[a.kind], KIND_ZH[b.kind]))
    out.extend(Change(b.id, f, getattr(a, f), getattr(b, f)) for f in WORDING if getattr(a, f) != getattr(b, f))
    return out


def _moved(order: list[str], other: list[str]) -> list[str]:
    """The ids of `order` from the first place it departs from `other` (a few, for the message)."""
    start = next(k for k, (x, y) in enumerate(zip(order, other)) if x != y)
    shown = order[start:start + 5]
    return shown + ["…"] if len(order) > start + 5 else shown


def compatible(old: Rubric, new: Rubric) -> bool:
    """A form made from `old` reads the same against `new`: same ids in the same order, kinds and points,
    and the same lines sharing a category (the form's subtotals); only wording differs."""
    return (_shape(old) == _shape(new)) and _groups(old) == _groups(new)


def _shape(rubric: Rubric) -> list[tuple[str, str, float]]:
    return [(i.id, i.kind, i.points) for i in rubric.items]


def _groups(rubric: Rubric) -> list[tuple[str, ...]]:
    return [tuple(i.id for i in rubric.items if i.category == c) for c in rubric.categories]


def describe(changes: list[Change], limit: int = 8) -> str:
    """The changes as one line for a message: the first `limit`, then how many more."""
    if not changes:
        return "没有改动"
    shown = "；".join(c.text for c in changes[:limit])
    return shown + (f"；另有 {len(changes) - limit} 处改动" if len(changes) > limit else "")


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT - 1] + "…"
