"""Aggregate the accepted files with pandas into the county ranking, and write the ranking workbook."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .collect import Collection
from .checks import Context
from .issues import SEVERITY_ZH
from .rubric import format_points
from .scoring import PLACES_ZH, number_format

if TYPE_CHECKING:
    import pandas as pd

RANKING_COLUMNS = ["排名", "乡镇代码", "乡镇", "基础得分", "加分", "减分", "最终得分", "等次", "备注"]
SHEET_NAMES = ("排名", "分类得分", "明细", "问题清单", "未提交", "排名说明")
MAX_CELL_TEXT = 32767       # what a cell holds; XlsxWriter would cut longer text silently
ROW_HEIGHT = 21.0           # a table row holding one line of text (points), as writer.row_height gives
DETAIL_TOWNSHIPS = 200      # beyond this, 明细 keeps the county figures only (a sheet has 16,384 columns)
KIND_ZH = {"base": "基础项", "bonus": "加分项", "deduction": "减分项", "zero": "归零项（1=是）"}
ROLE_ZH = {"used": "采用", "superseded": "未采用：有更新的文件", "duplicate": "未采用：重复文件"}


@dataclass
class Ranking:
    ranking: "pd.DataFrame"
    categories: "pd.DataFrame"
    details: "pd.DataFrame"
    issues: "pd.DataFrame"
    files: "pd.DataFrame"
    missing: "pd.DataFrame"
    explanation: list[tuple[str, str]] = field(default_factory=list)
    made: dt.datetime | None = None
    decimals: int = 2                  # places the scores are shown with (the county's score_decimals)


def rank_townships(coll: Collection, ctx: Context, now: dt.datetime | None = None) -> Ranking:
    """Rank the accepted files: equal final scores (as the forms show them, rounded by `scoring`) share a
    rank, the next rank is skipped."""
    import pandas as pd

    now = now or dt.datetime.now().astimezone()
    s = ctx.settings
    heads = coll.heads
    accepted = sorted((k for k, h in enumerate(heads) if h.accepted), key=lambda k: heads[k].township.code)
    cats = list(ctx.rubric.scored_categories)
    rows, cat_rows = [], []
    details = _Details(ctx, len(accepted))
    for k in accepted:                   # each verdict read once (a province's are read back from disk)
        r = coll.results[k]
        sc = r.scores
        notes = []
        if sc.zeroed:
            notes.append("归零")
        if sc.bonus_raw > s.bonus_cap:
            notes.append(f"加分 {format_points(sc.bonus_raw)} 超上限，按 {format_points(s.bonus_cap)} 计")
        if sc.deduction_raw > s.deduction_cap:
            notes.append(f"减分 {format_points(sc.deduction_raw)} 超上限，按 {format_points(s.deduction_cap)} 计")
        town = heads[k].township                # shared by every table, not a copy read back per file
        rows.append((town.code, town.name, sc.base, sc.bonus, sc.deduction, sc.final,
                     s.lowest_grade if sc.zeroed else s.grade(sc.final), "；".join(notes), sc.zeroed))
        cat_rows.append((town.code, town.name, *(sc.subtotals[c] for c in cats)))
        details.add(r, town)
    ranking = pd.DataFrame.from_records(rows, columns=RANKING_COLUMNS[1:] + ["归零"])
    if len(ranking):
        ranking.insert(0, "排名", ranking["最终得分"].rank(method="min", ascending=False).astype(int))
        ranking = ranking.sort_values(["排名", "乡镇代码"], kind="stable").reset_index(drop=True)
    else:
        ranking.insert(0, "排名", pd.Series(dtype=int))

    categories = pd.DataFrame.from_records(cat_rows, columns=["乡镇代码", "乡镇", *cats])
    stats = {"满分": {c: ctx.rubric.category_max(c) for c in cats}}
    if len(categories):
        stats.update({"县平均": categories[cats].mean().to_dict(), "最高": categories[cats].max().to_dict(),
                      "最低": categories[cats].min().to_dict()})
    categories = pd.concat([categories, pd.DataFrame([{"乡镇代码": "", "乡镇": k, **v} for k, v in stats.items()])],
                           ignore_index=True)

    issues, files = _issue_tables(coll)
    bad: dict[str, list[str]] = {}
    for h in heads:
        if h.township and h.role == "used":
            bad.setdefault(h.township.code, []).append(h.name)
    missing = pd.DataFrame([{"乡镇代码": t.code, "乡镇": t.name,
                             "原因": f"文件有错误，未采用：{'、'.join(bad[t.code])}" if t.code in bad else "未收到文件"}
                            for t in coll.missing], columns=["乡镇代码", "乡镇", "原因"])
    return Ranking(ranking, categories, details.frame(), issues, files, missing, explanation(ctx, coll, now), now,
                   s.score_decimals)


class _Details:
    """Every rubric line with each township's score (up to DETAIL_TOWNSHIPS of them), the county average
    and the average loss: where the county as a whole loses points. Fed one verdict at a time; beyond
    DETAIL_TOWNSHIPS only the sums are kept."""

    def __init__(self, ctx: Context, count: int):
        self.items = ctx.rubric.items
        self.wide = count <= DETAIL_TOWNSHIPS
        self.count = 0
        self.sums = [0.0] * len(self.items)
        self.carry = [0.0] * len(self.items)                    # Neumaier: the sums as exact as fsum's
        self.towns: list = []                                   # wide: each township, its scores, its notes
        self.matrix: list[list[float]] = [[] for _ in self.items]
        self.notes: list[dict[str, str]] = []

    def add(self, r, town) -> None:
        self.count += 1
        for k, item in enumerate(self.items):
            if item.kind == "zero":
                v = 1.0 if r.scores.zeroed else 0.0
            else:
                v = r.entries.values.get(item.id) or 0.0
            total = self.sums[k] + v
            self.carry[k] += (self.sums[k] - total) + v if abs(self.sums[k]) >= abs(v) else (v - total) + self.sums[k]
            self.sums[k] = total
            if self.wide:
                self.matrix[k].append(v)
        if self.wide:
            self.towns.append(town)
            self.notes.append(r.entries.notes)

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        names = [t.name for t in self.towns]
        if len(set(names)) < len(names):
            names = [f"{t.name}（{t.code}）" for t in self.towns]
        rows = []
        for k, item in enumerate(self.items):
            row = {"编号": item.id, "内容": item.category, "一级指标": item.indicator, "二级指标": item.criterion,
                   "类型": KIND_ZH[item.kind], "分值": item.points}
            if self.wide:
                row.update(zip(names, self.matrix[k]))
                noted = [(t, n[item.id]) for t, n in zip(self.towns, self.notes) if item.id in n]
                room = max(20, MAX_CELL_TEXT // max(1, len(noted)) - 20)     # every township's note gets its share
                row["扣分说明"] = "；".join(f"{t.name}：{_clip(text, room)}" for t, text in noted)
            rows.append(row)
        columns = ["编号", "内容", "一级指标", "二级指标", "类型", "分值", *(names if self.wide else [])]
        df = pd.DataFrame(rows, columns=columns + (["扣分说明"] if self.wide else []))
        if self.count:
            at = len(columns)
            avg = pd.Series([(total + carry) / self.count for total, carry in zip(self.sums, self.carry)])
            base = df["类型"] == KIND_ZH["base"]
            df.insert(at, "县平均", avg)
            df.insert(at + 1, "平均失分", (df["分值"] - avg).where(base))
            df.insert(at + 2, "失分率", (df["平均失分"] / df["分值"].where(df["分值"] > 0)).where(base))
        return df


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[:room - 1] + "…"


def _issue_tables(coll: Collection) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Every issue, and every file with what became of it: from the heads, reading back only the
    verdicts that have issues to list."""
    import pandas as pd

    issue_rows, file_rows = [], []
    for k, h in enumerate(coll.heads):
        town = h.township.name if h.township else ""
        report = coll.results[k].report if h.issues else ()
        for i in report:
            issue_rows.append((h.name, town, SEVERITY_ZH[i.severity], i.code, i.sheet, i.cell, i.message))
        if h.accepted:
            outcome = "采用"
        elif h.role != "used":
            outcome = ROLE_ZH[h.role]
        else:
            outcome = "未采用：有错误（" + "、".join(sorted({i.code for i in report if i.severity == "error"})) + "）"
        file_rows.append((h.name, h.township.code if h.township else "", town, outcome, _when(h.when), h.sha256))
    for sk in coll.skipped:
        file_rows.append((sk.name, "", "", "跳过：" + sk.reason, "", ""))
    issues = pd.DataFrame.from_records(issue_rows, columns=["文件", "乡镇", "级别", "代码", "工作表", "单元格", "说明"])
    files = pd.DataFrame.from_records(file_rows, columns=["文件", "乡镇代码", "乡镇", "处理结果", "保存时间", "SHA-256"])
    return issues, files


def _when(t: dt.datetime | None) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if t else ""


def explanation(ctx: Context, coll: Collection, now: dt.datetime) -> list[tuple[str, str]]:
    s, rubric = ctx.settings, ctx.rubric
    places = PLACES_ZH[s.score_decimals]
    bands = "；".join(f"{g.name} ≥ {format_points(g.min)}" for g in s.grades[:-1]) + f"；其余为{s.lowest_grade}"
    summary = coll.summary()
    return [
        ("考核", f"{s.title}（{s.year}年度）"),
        ("基础得分", f"{len(rubric.base)} 个基础项得分之和，满分 {format_points(sum(i.points for i in rubric.base))} 分；"
                  "每项得分由县里按乡镇报送的表格逐项重新核算，不采用表内公式的结果。"),
        ("加分、减分", f"特别加分项合计计入最多 {format_points(s.bonus_cap)} 分，特别减分项合计扣除最多 "
                   f"{format_points(s.deduction_cap)} 分。"),
        ("最终得分", f"基础得分＋加分−减分，最低 0 分；各类小计、基础得分、加分、减分和最终得分均四舍五入保留"
                  f"{places}，与各乡镇表内显示的一致。"),
        ("直接归零", f"直接归零项为“是”的，最终得分记 0 分，等次为{s.lowest_grade}。"),
        ("排名规则", f"按最终得分（{places}）从高到低排名；得分相同名次相同，其后名次顺延（如 1、2、2、4）。"),
        ("等次划分", bands),
        ("采用规则", "只采用没有错误的文件；同一乡镇有多个文件时采用最后保存的一个；内容完全相同的文件合并。"),
        ("评分细则版本", f"sha256 {rubric.fingerprint}"),
        ("收到文件", "共 {received} 个：采用 {accepted}，未采用 {excluded}，跳过 {skipped}；未提交乡镇 {missing} 个。"
                 .format(**summary)),
        ("生成时间", now.strftime("%Y-%m-%d %H:%M:%S %z")),
    ]


# -- the ranking workbook ---------------------------------------------------------------------------

RANKING_SHEETS = ("排名", "分类得分", "明细", "问题清单", "未提交", "排名说明")   # as `_write_ranking` writes them
WORKBOOK_PART_LIMIT = 1 << 20       # bytes of xl/workbook.xml read to tell a ranking: ours is under 2 KB


def is_ranking_workbook(path: str | Path) -> bool:
    """Whether `path` is a ranking workbook (ours, perhaps saved again by WPS or Excel), told by its content:
    its sheets are the ranking's six, in order. A returned form never is; its name does not matter."""
    import re
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("xl/workbook.xml")
            if info.file_size > WORKBOOK_PART_LIMIT:
                return False
            text = zf.read(info).decode("utf-8", "replace")
    except Exception:             # not a zip, no workbook part, encrypted, damaged: not a ranking of ours
        return False
    return tuple(re.findall(r'<(?:\w+:)?sheet\b[^>]*?\bname="([^"]*)"', text)) == RANKING_SHEETS


def write_ranking(ranking: Ranking, path: str | Path) -> Path:
    """Write the six-sheet ranking workbook atomically; township text always stays inert text."""
    from .writer import atomic_path

    path = Path(path)
    with atomic_path(path) as staged:
        _write_ranking(ranking, staged.file, staged.scratch())
    return path


def _write_ranking(rk: Ranking, target, scratch: Path) -> None:
    import xlsxwriter

    from .writer import FONT, WORKBOOK_OPTIONS

    # Rows go to temporary files as they are written, so a province's ranking needs no more memory
    # than a county's (and the strings are written in place: no shared-string table to hold). Those
    # files go to `scratch`, beside the ranking and removed with it: never to $TMPDIR, where a kill
    # would leave them.
    wb = xlsxwriter.Workbook(target, {**WORKBOOK_OPTIONS, "in_memory": False, "constant_memory": True,
                                      "tmpdir": str(scratch)})
    if rk.made:
        wb.set_properties({"created": rk.made.replace(tzinfo=None)})
    base = {"font_name": FONT, "font_size": 10.5, "valign": "vcenter", "border": 1, "border_color": "#A6A6A6"}
    f = {
        "head": wb.add_format({**base, "bold": True, "bg_color": "#D9E1F2", "align": "center", "text_wrap": True}),
        "text": wb.add_format({**base, "text_wrap": True}),
        "num": wb.add_format({**base, "num_format": number_format(rk.decimals), "align": "center"}),
        "int": wb.add_format({**base, "num_format": "0", "align": "center"}),
        "pct": wb.add_format({**base, "num_format": "0.0%", "align": "center"}),
        "title": wb.add_format({"font_name": FONT, "font_size": 16, "bold": True}),
    }
    _table(wb, "排名", rk.ranking, f, {"排名": "int"}, hide=("归零",),
           widths={"乡镇": 12, "备注": 36}, title=rk.explanation[0][1] + " 排名")
    _ranking_visuals(wb, rk, f)
    _table(wb, "分类得分", rk.categories, f, widths={"乡镇": 12})
    _table(wb, "明细", rk.details, f, {"失分率": "pct"},
           widths={"二级指标": 40, "一级指标": 14, "扣分说明": 50, "内容": 10})
    _table(wb, "问题清单", rk.issues, f, widths={"文件": 36, "说明": 70}, below=("文件处理结果", rk.files))
    _table(wb, "未提交", rk.missing, f, widths={"原因": 50})
    ws = wb.add_worksheet("排名说明")
    ws.set_column(0, 0, 14)
    ws.set_column(1, 1, 100)
    for r, (k, v) in enumerate(rk.explanation):
        ws.write_string(r, 0, k, f["head"])
        ws.write_string(r, 1, v, f["text"])
    wb.close()


def _table(wb, name: str, df: "pd.DataFrame", f, kinds: dict | None = None, widths: dict | None = None,
           title: str | None = None, below: tuple[str, "pd.DataFrame"] | None = None, hide: tuple[str, ...] = ()):
    ws = wb.add_worksheet(name)
    ws.set_default_row(ROW_HEIGHT)      # one line of text; only taller rows are set one by one
    top = 0
    if title:
        ws.write_string(0, 0, title, f["title"])
        top = 2
    shown = [col for col in df.columns if col not in hide]
    cols = [(widths or {}).get(col, max(8, min(30, 2 * len(str(col)) + 2))) for col in shown]
    for c, width in enumerate(cols):
        ws.set_column(c, c, width)
    _frame(ws, df, top, f, kinds or {}, cols, hide)
    ws.freeze_panes(top + 1, 0)
    ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(top)
    if below is not None:
        start = top + len(df) + 3
        ws.write_string(start - 1, 0, below[0], f["title"])
        _frame(ws, below[1], start, f, {}, cols)
    return ws


def _frame(ws, df: "pd.DataFrame", top: int, f, kinds: dict, widths: list[float], hide: tuple[str, ...] = ()) -> None:
    import math

    from .writer import row_height

    columns = [col for col in df.columns if col not in hide]
    for c, col in enumerate(columns):
        ws.write_string(top, c, str(col), f["head"])
    head = max((row_height(str(col), widths[c] if c < len(widths) else 10) for c, col in enumerate(columns)),
               default=ROW_HEIGHT)
    if head > ROW_HEIGHT:                   # rows are one line high unless set: a long heading wraps
        ws.set_row(top, head)
    rows = df[columns].itertuples(index=False) if hide else df.itertuples(index=False)
    heights: dict[tuple[str, float], float] = {}    # a table's texts repeat (criteria, messages): measured once
    for r, row in enumerate(rows, start=top + 1):
        for c, value in enumerate(row):
            if isinstance(value, bool):
                ws.write_string(r, c, "是" if value else "否", f["text"])
            elif isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                ws.write_number(r, c, value, f[kinds.get(columns[c], "int" if isinstance(value, int) else "num")])
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                ws.write_blank(r, c, None, f["text"])
            else:
                ws.write_string(r, c, _clip(str(value), MAX_CELL_TEXT), f["text"])   # text stays text
        texts = [(v, widths[c] if c < len(widths) else 10) for c, v in enumerate(row) if isinstance(v, str)]
        height = max((heights.get(tw) or heights.setdefault(tw, row_height(*tw)) for tw in texts), default=ROW_HEIGHT)
        if height > ROW_HEIGHT:
            ws.set_row(r, height)


def _ranking_visuals(wb, rk: Ranking, f) -> None:
    from .writer import FONT as FONT_NAME

    ws = wb.get_worksheet_by_name("排名")
    n = len(rk.ranking)
    if not n:
        return
    top = 2
    col = list(rk.ranking.columns).index("最终得分")
    ws.conditional_format(top + 1, col, top + n, col, {"type": "data_bar", "bar_color": "#5B9BD5",
                                                       "bar_solid": True, "min_type": "num", "min_value": 0,
                                                       "max_type": "max"})
    chart = wb.add_chart({"type": "bar"})
    name_col = list(rk.ranking.columns).index("乡镇")
    chart.add_series({"name": "最终得分", "categories": ["排名", top + 1, name_col, top + n, name_col],
                      "values": ["排名", top + 1, col, top + n, col], "fill": {"color": "#5B9BD5"},
                      "data_labels": {"value": True, "num_format": number_format(rk.decimals)}})
    chart.set_title({"name": "各乡镇最终得分", "name_font": {"name": FONT_NAME, "size": 12}})
    chart.set_y_axis({"reverse": True, "num_font": {"name": FONT_NAME}})
    chart.set_x_axis({"min": 0, "num_font": {"name": FONT_NAME}})
    chart.set_legend({"none": True})
    chart.set_size({"width": 640, "height": max(300, 32 * n + 80)})
    ws.insert_chart(top + n + 2, 0, chart)

