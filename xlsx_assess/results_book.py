"""结果/核查结果.xlsx: the board as the clerk prints it and works from.

Three sheets: 核查情况 (one line per township, coloured by state, with whom to call; once the round has
核定表s or sent 反馈单s, a 核定 and a 整改 column with the board's stage of each), 问题清单 (what is wrong in
each township's latest file, 核定表 and returned 反馈单, located) and 通知 (the ready-to-paste text per
township, see `notices`). Printable on A4 landscape: fitted to the width, headings repeated, pages numbered.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from .board import Board, TownshipLine
from .clock import local_text
from .issues import SEVERITY_ZH
from .notices import item_rows, kind_of, line_ref, listed, location, notices
from .scoring import number_format

if TYPE_CHECKING:
    from .checks import Context

RESULTS_NAME = "核查结果.xlsx"          # in the round's 结果/ folder
SHEETS = ("核查情况", "问题清单", "通知")
ROW = 21.0                             # points: a row holding one line of text
MAX_ROW = 409.0                        # the tallest row a spreadsheet allows
GOOD = {"bg_color": "#C6EFCE", "font_color": "#006100"}
BAD = {"bg_color": "#F8CBAD", "font_color": "#9C0006"}
WAIT = {"bg_color": "#FFEB9C", "font_color": "#9C5700"}
# The colour of each board state (board.STATE_ZH names them): the 核定 and 整改 stages as the page shows them.
STATE_STYLE = {"ok": GOOD, "fix": BAD, "missing": {"bg_color": "#D9D9D9", "font_color": "#404040"},
               "verified": GOOD, "pending": WAIT, "stale": BAD,
               "rectified": GOOD, "rectifying": BAD, "sent": WAIT}


@dataclass(frozen=True)
class Column:
    """One column of a table: its heading, width (characters), cell style, and which value of a line it
    shows (`key`, the board's columns)."""

    head: str
    width: float
    style: str = "text"
    size: float = 10.5                 # font size (points) of its cells
    key: str = ""


BOARD_COLUMNS = (Column("序号", 6, "center", key="n"), Column("乡镇", 12, key="township"),
                 Column("状态", 9, "state", key="state"), Column("核定", 13, "state", key="review"),
                 Column("整改", 12, "state", key="feedback"), Column("使用的文件", 34, key="file"),
                 Column("收到时间", 30, "center", key="received"), Column("得分", 9, "score", key="score"),
                 Column("等次", 7, "center", key="grade"), Column("核定得分", 9, "score", key="reviewed"),
                 Column("填报人", 10, key="reporter"), Column("联系电话", 15, "center", key="phone"),
                 Column("问题数", 8, "center", key="issues"))
REVIEW_KEYS = ("review", "reviewed")   # shown once the round has 核定表s (a line has a 核定 stage)
FEEDBACK_KEYS = ("feedback",)          # shown once 反馈单s were sent
ISSUE_COLUMNS = (Column("乡镇", 12), Column("文件", 31), Column("位置", 14), Column("编号/行", 9, "center"),
                 Column("代码", 7, "center"), Column("严重程度", 9, "center"), Column("说明", 70))
NOTICE_COLUMNS = (Column("乡镇", 12), Column("类型", 7, "center"), Column("联系人", 10),
                  Column("电话", 15, "center"), Column("通知内容（可直接复制发送）", 100, "notice", 9))


def write_results(board: Board, ctx: Context, path: str | Path, now: dt.datetime | None = None) -> Path:
    """Write 核查结果.xlsx atomically (the old file or the new one, never a broken one)."""
    from .writer import atomic_path

    path = Path(path)
    now = now or dt.datetime.now().astimezone()
    with atomic_path(path) as staged:
        _write(board, ctx, now, staged.file)
    return path


def title_of(ctx: Context) -> str:
    """"台前县2026年度…核查结果": county, year and what was assessed."""
    s = ctx.settings
    county = s.county if s.county and s.county not in s.title else ""
    return f"{county}{s.year}年度{s.title}核查结果"


def summary_of(board: Board) -> str:
    text = (f"共 {len(board.lines)} 个乡镇：已合格 {board.count('ok')} 个，需改正 {board.count('fix')} 个，"
            f"未收到 {board.count('missing')} 个。")
    if board.unassigned:
        text += f"另有 {len(board.unassigned)} 个文件对应不到乡镇，见“问题清单”末尾。"
    return text


def board_columns(board: Board) -> tuple[Column, ...]:
    """The 核查情况 columns for this board: 核定 and 核定得分 once a line has a 核定 stage (得分 is then
    自评得分), 整改 once a line has a 反馈单."""
    from dataclasses import replace

    reviewed = any(line.review for line in board.lines)
    told = any(line.feedback for line in board.lines)
    left = (() if reviewed else REVIEW_KEYS) + (() if told else FEEDBACK_KEYS)
    return tuple(replace(c, head="自评得分") if c.key == "score" and reviewed else c
                 for c in BOARD_COLUMNS if c.key not in left)


def _write(board: Board, ctx: Context, now: dt.datetime, target) -> None:
    import xlsxwriter

    from .writer import FONT, WORKBOOK_OPTIONS

    wb = xlsxwriter.Workbook(target, WORKBOOK_OPTIONS)
    wb.set_properties({"title": title_of(ctx), "created": now.replace(tzinfo=None)})
    f = _formats(wb, FONT, ctx.settings.score_decimals)
    items = item_rows(ctx.rubric, ctx.settings)
    title = title_of(ctx)
    made = f"制表单位：{ctx.settings.issuing_office or ctx.settings.county}　　制表日期：{local_text(now)}"
    columns = board_columns(board)
    ws = _sheet(wb, "核查情况", title, made, columns, f)
    top = _board_preamble(ws, board, f, columns)
    rows = [_board_values(n, line, f) for n, line in enumerate(board.lines, start=1)]
    _rows(ws, top, columns, [tuple(row[c.key] for c in columns) for row in rows], f, even=True)
    ws = _sheet(wb, "问题清单", title.removesuffix("核查结果") + "问题清单", made, ISSUE_COLUMNS, f)
    _rows(ws, _head(ws, 3, ISSUE_COLUMNS, f), ISSUE_COLUMNS, _issue_rows(board, items), f)
    ws = _sheet(wb, "通知", title.removesuffix("核查结果") + "退回和催报通知", made, NOTICE_COLUMNS, f)
    rows = [(line.township, kind_of(line), line.reporter, line.phone, text)
            for line, text in notices(board, ctx.settings, items)]
    _rows(ws, _head(ws, 3, NOTICE_COLUMNS, f), NOTICE_COLUMNS, rows, f)
    wb.close()


def _formats(wb, font: str, decimals: int) -> dict:
    base = {"font_name": font, "font_size": 10.5, "valign": "vcenter", "border": 1, "border_color": "#A6A6A6"}
    f = {
        "head": wb.add_format({**base, "bold": True, "bg_color": "#D9E1F2", "align": "center", "text_wrap": True}),
        "text": wb.add_format({**base, "text_wrap": True}),
        "center": wb.add_format({**base, "align": "center", "text_wrap": True}),
        "notice": wb.add_format({**base, "font_size": 9, "text_wrap": True, "valign": "top"}),
        "score": wb.add_format({**base, "align": "center", "num_format": number_format(decimals)}),
        "title": wb.add_format({"font_name": font, "font_size": 16, "bold": True, "valign": "vcenter"}),
        "made": wb.add_format({"font_name": font, "font_size": 10.5, "valign": "vcenter"}),
        "summary": wb.add_format({"font_name": font, "font_size": 12, "bold": True, "valign": "vcenter"}),
        "suspect": wb.add_format({"font_name": font, "font_size": 12, "bold": True, "font_color": "#C00000",
                                  "bg_color": "#FFF2CC", "border": 2, "border_color": "#C00000",
                                  "text_wrap": True, "valign": "vcenter"}),
    }
    for state, style in STATE_STYLE.items():
        f["state_" + state] = wb.add_format({**base, "bold": True, "align": "center", "text_wrap": True, **style})
    return f


def _sheet(wb, name: str, title: str, made: str, columns: tuple[Column, ...], f):
    """A sheet with its title, 制表单位 and 制表日期, columns and print setup (A4 landscape, fitted to
    the width, pages numbered)."""
    ws = wb.add_worksheet(name)
    ws.set_default_row(ROW)
    for c, col in enumerate(columns):
        ws.set_column(c, c, col.width)
    ws.set_row(0, 30)
    ws.merge_range(0, 0, 0, len(columns) - 1, title, f["title"])
    ws.merge_range(1, 0, 1, len(columns) - 1, made, f["made"])
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.5, right=0.5, top=0.7, bottom=0.7)
    ws.set_footer(f"&L{name}&C第 &P 页，共 &N 页&R{title.replace('&', '&&')}", {"margin": 0.3})
    return ws


def _board_preamble(ws, board: Board, f, columns: tuple[Column, ...]) -> int:
    """The counts (and the 核定 and 整改 counts once they began), and the setup warning if every file
    disagrees with the setup; returns the table's heading row."""
    last = len(columns) - 1
    row = 2
    for text in (summary_of(board), *board.stage_counts()):
        ws.set_row(row, 24)
        ws.merge_range(row, 0, row, last, text, f["summary"])
        row += 1
    if board.setup_suspect is not None:
        text = "请先检查考核设置：" + board.setup_suspect.message
        ws.set_row(row, max(2 * ROW, _height(text, sum(c.width for c in columns))))
        ws.merge_range(row, 0, row, last, text, f["suspect"])
        row += 1
    return _head(ws, row + 1, columns, f)


def _head(ws, row: int, columns: tuple[Column, ...], f) -> int:
    """Write the headings at `row`, repeated on every printed page; returns the first data row."""
    for c, col in enumerate(columns):
        ws.write_string(row, c, col.head, f["head"])
    ws.repeat_rows(row)
    ws.freeze_panes(row + 1, 0)
    return row + 1


def _board_values(n: int, line: TownshipLine, f) -> dict:
    """A township's values on 核查情况, by column key: each state in the board's words and colour."""
    ok = line.state == "ok"
    errors = sum(i.severity == "error" for i in line.review_issues)
    left = len(line.feedback_issues)
    return {"n": n, "township": line.township, "state": (line.state_zh, f["state_" + line.state]),
            "review": (line.review_zh + (f"\n（{errors} 处错误）" if errors else ""), f["state_" + line.review])
            if line.review else "",
            "feedback": (line.feedback_zh + (f"\n（{left} 处未完成）" if left else ""), f["state_" + line.feedback])
            if line.feedback else "",
            "file": line.file, "received": local_text(line.received) if line.received else "",
            "score": float(line.score) if line.score is not None and ok else None,
            "grade": line.grade if ok else "",
            "reviewed": float(line.reviewed_score) if line.reviewed_score is not None else None,
            "reporter": line.reporter, "phone": line.phone,
            "issues": None if line.state == "missing" else sum(len(listed(issues)) for _, issues in _sources(line))}


def _sources(line: TownshipLine) -> list[tuple[str, tuple]]:
    """What is wrong for a township, by the file it is in: its latest return, its 核定表, the 反馈单 it sent
    back (the file each rests on, and its issues)."""
    return [(line.file, line.issues), (line.review_file, line.review_issues), (line.feedback_file, line.feedback_issues)]


def _issue_rows(board: Board, items) -> list[tuple]:
    rows = []
    for line in board.lines:
        for file, issues in _sources(line):
            for i in listed(issues) + [i for i in issues if i.severity == "info"]:
                rows.append((line.township, i.file or file, location(i) or "整个文件", line_ref(i, items),
                             i.code, SEVERITY_ZH[i.severity], i.message))
    for entry in board.unassigned:
        rows.append(("（对应不到乡镇）", entry.name, "整个文件", "", "", SEVERITY_ZH.get(entry.status, ""),
                     (f"首次收到 {local_text(entry.first_seen)}" if entry.first_seen else "未能保存（过大或无法读取）")
                     + "；表内身份不明，无法确定是哪个乡镇的文件。"))
    return rows


def _rows(ws, top: int, columns: tuple[Column, ...], rows: list[tuple], f, even: bool = False) -> None:
    """Write the table's rows from `top`; a row is as tall as its longest wrapped text (`even`: every row
    as tall as the tallest, as a board is read across)."""
    heights = [max((_height(_text(v), columns[c].width, columns[c].size) for c, v in enumerate(row)
                    if isinstance(_text(v), str)), default=ROW) for row in rows]
    if even and heights:
        heights = [max(heights)] * len(heights)
    for r, (row, height) in enumerate(zip(rows, heights), start=top):
        for c, value in enumerate(row):
            style = f[columns[c].style] if columns[c].style in f else f["text"]
            if isinstance(value, tuple):
                value, style = value
            if value is None or value == "":
                ws.write_blank(r, c, None, style)
            elif isinstance(value, (int, float)):
                ws.write_number(r, c, value, style)
            else:
                ws.write_string(r, c, str(value), style)
        if height > ROW:
            ws.set_row(r, height)


def _text(value):
    """A cell's value without its own style (a state is written as (text, format))."""
    return value[0] if isinstance(value, tuple) else value


def _height(text: str, width: float, size: float = 10.5) -> float:
    """Points a row needs to show `text` wrapped in a column `width` characters wide (a smaller font fits
    more on a line), at most the tallest row allowed."""
    from .layout import text_lines

    lines = text_lines(text, width, size)
    return ROW if lines == 1 else min(MAX_ROW, lines * size * 1.45 + 6)
