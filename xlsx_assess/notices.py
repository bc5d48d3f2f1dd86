"""What the clerk sends: a ready-to-paste text per township, from its line on the board.

需改正 gets a 退回 notice (what to fix and where, errors first, how to resend, the deadline, whom to ask),
未收到 a 催报 notice, 已合格 a short receipt. The texts are plain (WeChat shows no markdown), in short
lines, and addressed to the township: the catalogue's messages speak to the clerk ("请让乡镇…"), so
they are turned to the township here (`_to_township`).
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Mapping

from .board import Board, TownshipLine
from .issues import Issue
from .layout import FORM_SHEET, META_SHEET, form_layout, position
from .rubric import Rubric
from .settings import Settings, Township

MAX_ITEMS = 10                     # items listed in a 退回 notice; the rest are counted
KIND_ZH = {"fix": "退回", "missing": "催报", "ok": "回执"}
SEVERITY_HEAD = {"error": "须改正", "warning": "请核实"}
# The catalogue speaks to the clerk; a notice speaks to the township.
_TO_TOWNSHIP = (("请让乡镇", "请"), ("请提醒乡镇", "请"))
_CELL = re.compile(r"^[A-Z]{1,3}[0-9]{1,7}$")

ItemRows = Mapping[int, str]       # 0-based row of 评分表 -> the rubric line's 编号 (see `item_rows`)


def kind_of(line: TownshipLine) -> str:
    """退回, 催报 or 回执: what a notice for this line is."""
    return KIND_ZH[line.state]


def notices(board: Board, settings: Settings, items: ItemRows | None = None,
            receipts: bool = False) -> list[tuple[TownshipLine, str]]:
    """(line, text) for every township that needs a message (需改正, 未收到), in the board's order;
    with `receipts`, also a receipt for each 已合格."""
    wanted = ("fix", "missing", "ok") if receipts else ("fix", "missing")
    return [(line, notice_for(line, settings, items)) for line in board.lines if line.state in wanted]


def notice_for(line: TownshipLine, settings: Settings, items: ItemRows | None = None) -> str:
    """The text for one township; `items` names the rubric line (编号) of a 评分表 cell."""
    body = {"fix": _return_notice, "missing": _chase_notice, "ok": _receipt}[line.state](line, settings, items)
    return "\n".join(body)


def item_rows(rubric: Rubric, settings: Settings) -> dict[int, str]:
    """0-based row of 评分表 -> 编号, as every township's form lays it out."""
    lay = form_layout(rubric, Township("-", "-"), settings)
    return {row: item_id for item_id, row in lay.item_rows.items()}


def location(i: Issue) -> str:
    """Where in its file an issue is: sheet › cell ("" for the whole file, and for the hidden identity
    sheet, which the township never sees)."""
    if i.sheet == META_SHEET:
        return ""
    return " › ".join(p for p in (i.sheet, i.cell) if p)


def item_of(i: Issue, items: ItemRows | None = None) -> str:
    """The rubric line (编号) an issue's 评分表 cell is on, "" if none."""
    if items and i.sheet == FORM_SHEET and _CELL.match(i.cell or ""):
        return items.get(position(i.cell)[0], "")
    return ""


def line_ref(i: Issue, items: ItemRows | None = None) -> str:
    """编号 of the rubric line, or 第 N 行 of a text file, or ""."""
    return item_of(i, items) or (f"第 {i.line} 行" if i.line is not None else "")


def listed(issues: tuple[Issue, ...]) -> list[Issue]:
    """The issues a township is told about, errors first, then warnings, each in sheet and row order
    (notes for the county alone, severity "info", are left out)."""
    rank = {"error": 0, "warning": 1}
    shown = [i for i in issues if i.severity in rank]
    return sorted(shown, key=lambda i: (rank[i.severity], i.sheet != FORM_SHEET, i.sheet, _row(i.cell), i.cell))


def _row(cell: str) -> int:
    return position(cell)[0] if _CELL.match(cell or "") else -1


def _form_name(settings: Settings) -> str:
    return f"《{settings.title}》（{settings.year}年度）"


def _greeting(line: TownshipLine) -> str:
    return f"{line.township}{' ' + line.reporter if line.reporter else ''}：您好！"


def _closing(settings: Settings) -> list[str]:
    out = []
    if settings.deadline:
        out.append(f"报送截止：{settings.deadline}。")
    contact = "，".join(p for p in (settings.contact_person, settings.contact_phone) if p)
    if contact:
        out.append(f"如有疑问请联系：{contact}。")
    return out


def _return_notice(line: TownshipLine, settings: Settings, items: ItemRows | None) -> list[str]:
    shown = listed(line.issues)
    out = [_greeting(line),
           f"你单位报送的{_form_name(settings)}",
           f"（文件：{PurePath(line.file).name}）" if line.file else "",     # their name, not our folders
           "经核查需改正，请修改后重新报送。"]
    out = [x for x in out if x]
    head = None
    for n, i in enumerate(shown[:MAX_ITEMS], start=1):
        if SEVERITY_HEAD[i.severity] != head:
            head = SEVERITY_HEAD[i.severity]
            out.append(f"【{head}】")
        out.append(f"{n}. {_item_text(i, items)}")
    if len(shown) > MAX_ITEMS:
        out.append(f"……等 {len(shown)} 项（以上列出前 {MAX_ITEMS} 项），请对照全表逐项检查。")
    if not shown:
        out.append("文件有误，请使用下发的原表重新填写。")
    if needs_new_form(line.issues):
        out += ["请用县里下发的本年度原表重新填写（只填浅黄色单元格），",
                "保存为 .xlsx 文件后发送给我们。"]
    else:
        out += ["改好后请直接保存（仍为 .xlsx 格式，不要另存为其他格式），",
                "把同一个文件重新发送给我们。"]
    return out + _closing(settings)


def needs_new_form(issues: tuple[Issue, ...]) -> bool:
    """Whether the file itself is unusable (an error of the file, its identity or its structure: damaged,
    another year's form, cells or sheets changed), so the township refills the form it was sent rather
    than mending this file. Errors of values only (V) are mended in the same file."""
    return any(i.severity == "error" and i.code[:1] in "FIS" for i in issues)


def _item_text(i: Issue, items: ItemRows | None) -> str:
    where, item = location(i), item_of(i, items)
    if item and item in i.message:           # the message names its line already ("A01 …未填写得分")
        item = ""
    place = f"{where}（编号 {item}）" if where and item else where or line_ref(i, items)
    return f"{place}：{_to_township(i.message)}" if place else _to_township(i.message)


def _to_township(message: str) -> str:
    for old, new in _TO_TOWNSHIP:
        message = message.replace(old, new)
    return message


def _chase_notice(line: TownshipLine, settings: Settings, items: ItemRows | None) -> list[str]:
    return [_greeting(line),
            f"截至目前，尚未收到你单位的{_form_name(settings)}。",
            "请使用县里下发的表格，只在浅黄色单元格中填写，",
            "保存为 .xlsx 文件后发送给我们。",
            *(_closing(settings) if settings.deadline else ["请尽快报送。", *_closing(settings)])]


def _receipt(line: TownshipLine, settings: Settings, items: ItemRows | None) -> list[str]:
    score = "" if line.score is None else f"，得分 {line.score:.{settings.score_decimals}f}"
    grade = f"（{line.grade}）" if line.grade and score else ""
    return [_greeting(line),
            f"你单位报送的{_form_name(settings)}已收到并核查合格{score}{grade}。",
            "谢谢！"]
