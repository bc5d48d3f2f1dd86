"""Aggregate the accepted files with pandas into the county ranking, and write the ranking workbook."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .clock import local_text
from .collect import Collection
from .checks import Context
from .issues import SEVERITY_ZH
from .rubric import format_points, shown_points
from .scoring import PLACES_ZH, number_format

if TYPE_CHECKING:
    import pandas as pd

    from .settings import Settings

RANKING_COLUMNS = ["排名", "乡镇代码", "乡镇", "基础得分", "加分", "减分", "最终得分", "等次", "备注"]
MAX_CELL_TEXT = 32767       # what a cell holds; XlsxWriter would cut longer text silently
ROW_HEIGHT = 21.0           # a table row holding one line of text (points), as writer.row_height gives
DETAIL_TOWNSHIPS = 200      # beyond this, 明细 keeps the county figures only (a sheet has 16,384 columns)
KIND_ZH = {"base": "基础项", "bonus": "加分项", "deduction": "减分项", "zero": "归零项（1=是）"}
ROLE_ZH = {"used": "采用", "superseded": "未采用：有更新的文件", "duplicate": "未采用：重复文件"}


@dataclass(frozen=True)
class Heading:
    """What every sheet of the ranking is titled with: the county, the year, the assessment and who made it."""
    county: str = ""
    year: int = 0
    subject: str = "考核"          # the assessment's name without county, "表" or its parenthesis
    office: str = ""

    def title(self, what: str) -> str:
        """E.g. "台前县 2026 年度政务公开工作考核排名"."""
        return f"{self.county} {self.year} 年度{self.subject}{what}".strip()


def heading_of(settings: "Settings") -> Heading:
    """The heading from the county's settings: "台前县政务公开工作考核表（适用乡﹝镇﹞政府）" gives the subject
    "政务公开工作考核"."""
    subject = settings.title.strip()
    if settings.county and subject.startswith(settings.county):
        subject = subject[len(settings.county):]
    for mark in ("（", "("):
        subject = subject.split(mark, 1)[0]
    subject = subject.strip().removesuffix("表").strip()
    return Heading(settings.county.strip(), settings.year, subject or "考核", settings.issuing_office.strip())


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
    heading: Heading = field(default_factory=Heading)
    notes: "pd.DataFrame | None" = None  # every 扣分说明 a township wrote, one a row (明细 holds them joined)
    coverage: str = ""                 # 共 10 个乡镇，4 个未纳入排名：… (on 排名, under the title)
    left_out: int = 0                  # how many roster townships it does not rank
    adjustments: "pd.DataFrame | None" = None   # 核定调整: every line whose 核定分 differs (None: no 核定 yet)
    unverified: tuple[str, ...] = ()     # townships ranked on 自评分 while others are on 核定分 (初步排名)
    grades: tuple[str, ...] = ()       # the county's grades, best first (the 考核结果通报 counts each)

    @property
    def preliminary(self) -> bool:
        """初步排名: the round has 核定表s and some township ranked is not verified yet."""
        return self.adjustments is not None and bool(self.unverified)


def rank_townships(coll: Collection, ctx: Context, now: dt.datetime | None = None,
                   reviews: dict | None = None) -> Ranking:
    """Rank the accepted files: equal final scores (as the forms show them, rounded by `scoring`) share a
    rank, the next rank is skipped. With `reviews` (township code -> its valid, signed `review.ReviewResult`;
    {} once the round has 核定表s but none is done) a township is ranked on its 核定分 where it has one,
    on its 自评分 otherwise (marked 未核定), and 排名 shows both with the difference."""
    import pandas as pd

    now = now or dt.datetime.now().astimezone()
    s = ctx.settings
    heads = coll.heads
    accepted = sorted((k for k, h in enumerate(heads) if h.accepted), key=lambda k: heads[k].township.code)
    cats = list(ctx.rubric.scored_categories)
    rows, cat_rows, compared, adjusted = [], [], [], []
    details = _Details(ctx, len(accepted))
    for k in accepted:                   # each verdict read once (a province's are read back from disk)
        r = coll.results[k]
        rev = (reviews or {}).get(heads[k].township.code)
        sc = rev.scores if rev is not None else r.scores
        compared.append(_compared(r.scores, rev, s.score_decimals))
        if rev is not None:
            adjusted += [(heads[k].township.code, heads[k].township.name, item.id, item.criterion or item.indicator,
                          own, new, why, rev.decided.reviewer) for item, own, new, why in rev.changes]
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
        details.add(r, town, rev)
    ranking = pd.DataFrame.from_records(rows, columns=RANKING_COLUMNS[1:] + ["归零"])
    if reviews is not None:
        for at, name in enumerate(COMPARED, start=2):
            ranking.insert(at, name, [c[at - 2] for c in compared])
    if len(ranking):
        ranking.insert(0, "排名", ranking["最终得分"].rank(method="min", ascending=False).astype(int))
        ranking = ranking.sort_values(["排名", "乡镇代码"], kind="stable").reset_index(drop=True)
    else:
        ranking.insert(0, "排名", pd.Series(dtype=int))

    categories = _in_rank_order(pd.DataFrame.from_records(cat_rows, columns=["乡镇代码", "乡镇", *cats]), ranking)
    stats = {"满分": {c: ctx.rubric.category_max(c) for c in cats}}
    if len(categories):
        stats.update({"县平均": categories[cats].mean().to_dict(), "最高": categories[cats].max().to_dict(),
                      "最低": categories[cats].min().to_dict()})
    categories = pd.concat([categories, pd.DataFrame([{"排名": None, "乡镇代码": "", "乡镇": k, **v}
                                                      for k, v in stats.items()])], ignore_index=True)

    issues, files = _issue_tables(coll)
    bad: dict[str, list[str]] = {}
    for h in heads:
        if h.township and h.role == "used":
            bad.setdefault(h.township.code, []).append(h.name)
    missing = pd.DataFrame([{"乡镇代码": t.code, "乡镇": t.name,
                             "原因": f"文件有错误，未采用：{'、'.join(bad[t.code])}" if t.code in bad else "未收到文件"}
                            for t in coll.missing], columns=["乡镇代码", "乡镇", "原因"])
    adjustments = None if reviews is None else pd.DataFrame.from_records(adjusted, columns=ADJUSTMENT_COLUMNS)
    unverified = tuple(row[1] for row, c in zip(rows, compared) if c[1] is None) if reviews is not None else ()
    explained = explanation(ctx, coll, now)
    if reviews is not None:
        explained.insert(-1, ("核定", f"{len(rows) - len(unverified)} 个乡镇按县考核组的核定分排名（核定表中每处改动均有核定说明，"
                                     f"见“核定调整”）" + (f"；{len(unverified)} 个尚未核定，暂按自评分排名，本排名为初步排名："
                                                       + "、".join(unverified) if unverified else "") + "。"))
    return Ranking(ranking, categories, details.frame(), issues, files, missing, explained, now,
                   s.score_decimals, heading_of(s), details.notes_frame(), adjustments=adjustments,
                   unverified=unverified, grades=tuple(g.name for g in s.grades))


COMPARED = ("自评得分", "核定得分", "核定差额", "核定情况")     # 排名's columns once the round has 核定表s
ADJUSTMENT_COLUMNS = ["乡镇代码", "乡镇", "编号", "指标", "自评", "核定", "核定说明", "核查人"]


def _compared(own, rev, decimals: int) -> tuple:
    """(自评得分, 核定得分, 核定差额, 核定情况) of a township: the difference exact at the shown places."""
    from .scoring import exact, round_half_up

    if rev is None:
        return own.final, None, None, "未核定"
    diff = round_half_up(exact(rev.scores.final) - exact(own.final), decimals)
    return own.final, rev.scores.final, float(diff), "已核定"


def _in_rank_order(categories: "pd.DataFrame", ranking: "pd.DataFrame") -> "pd.DataFrame":
    """The category subtotals with each township's rank first, in the ranking's order."""
    ranks = ranking.set_index("乡镇代码")["排名"]
    order = {code: k for k, code in enumerate(ranking["乡镇代码"])}
    categories = categories.assign(_at=categories["乡镇代码"].map(order)).sort_values("_at", kind="stable")
    categories.insert(0, "排名", categories["乡镇代码"].map(ranks))
    return categories.drop(columns="_at").reset_index(drop=True)


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
        self.changes: dict[tuple[str, str], str] = {}          # (line, township code) -> 自评→核定（说明）

    def add(self, r, town, rev=None) -> None:
        """A township's scores per line: its 核定分 where `rev` (its 核定表) holds them, else its 自评分."""
        self.count += 1
        values, zeroed = (rev.decided.values, rev.decided.zeroed) if rev is not None else (r.entries.values, r.scores.zeroed)
        if rev is not None:
            self.changes.update({(item.id, town.code): f"{town.name}：{shown_points(own)}→{shown_points(new)}（{why}）"
                                 for item, own, new, why in rev.changes})
        for k, item in enumerate(self.items):
            if item.kind == "zero":
                v = 1.0 if zeroed else 0.0
            else:
                v = values.get(item.id) or 0.0
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
                if self.changes:
                    row["核定调整"] = "；".join(self.changes[item.id, t.code] for t in self.towns
                                              if (item.id, t.code) in self.changes)
            rows.append(row)
        columns = ["编号", "内容", "一级指标", "二级指标", "类型", "分值", *(names if self.wide else [])]
        df = pd.DataFrame(rows, columns=columns + (["扣分说明"] if self.wide else [])
                          + (["核定调整"] if self.wide and self.changes else []))
        if self.count:
            at = len(columns)
            avg = pd.Series([(total + carry) / self.count for total, carry in zip(self.sums, self.carry)])
            base = df["类型"] == KIND_ZH["base"]
            df.insert(at, "县平均", avg)
            df.insert(at + 1, "平均失分", (df["分值"] - avg).where(base))
            df.insert(at + 2, "失分率", (df["平均失分"] / df["分值"].where(df["分值"] > 0)).where(base))
        return df

    def notes_frame(self) -> "pd.DataFrame":
        """Each township's 扣分说明, a row each, in the rubric's order."""
        import pandas as pd

        rows = [(item.id, item.indicator, item.criterion, t.name, self.matrix[k][j], item.points, n[item.id])
                for k, item in enumerate(self.items)
                for j, (t, n) in enumerate(zip(self.towns, self.notes)) if item.id in n]
        return pd.DataFrame.from_records(rows, columns=["编号", "一级指标", "二级指标", "乡镇", "得分", "分值", "扣分说明"])


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
    return local_text(t) if t else ""


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
        ("生成时间", local_text(now)),
    ]


# -- the ranking workbook ---------------------------------------------------------------------------

# The sheets, in order, each with what its title calls it.
RANK_SHEET = "排名"
SHEETS = (("排名", "排名"), ("分类得分", "分类得分"), ("明细", "得分明细"), ("扣分说明", "扣分说明"),
          ("问题清单", "问题清单"), ("文件处理结果", "收到文件处理结果"), ("未提交", "未提交乡镇"), ("排名说明", "排名说明"),
          ("考核结果通报", "结果通报"))
RANKING_SHEETS = tuple(name for name, _ in SHEETS)          # as `_write_ranking` writes them
ISSUE12_SHEETS = RANKING_SHEETS[:-1]                         # rankings written before the 考核结果通报
ADJUSTMENT_SHEET = "核定调整"                               # after 扣分说明, once the round has 核定表s
REVIEWED_SHEETS = (*RANKING_SHEETS[:4], ADJUSTMENT_SHEET, *RANKING_SHEETS[4:])
SHEET_NAMES = RANKING_SHEETS
EARLIER_SHEETS = ("排名", "分类得分", "明细", "问题清单", "未提交", "排名说明")   # rankings written before issue 12
WORKBOOK_PART_LIMIT = 1 << 20       # bytes of xl/workbook.xml read to tell a ranking: ours is under 2 KB


def is_ranking_workbook(path: str | Path) -> bool:
    """Whether `path` is a ranking workbook (ours, perhaps saved again by WPS or Excel), told by its content:
    its sheets are the ranking's, in order (today's or an earlier version's). A returned form never is; its
    name does not matter."""
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
    return tuple(re.findall(r'<(?:\w+:)?sheet\b[^>]*?\bname="([^"]*)"', text)) in (RANKING_SHEETS, REVIEWED_SHEETS,
                                                                                  ISSUE12_SHEETS, EARLIER_SHEETS)


def write_ranking(ranking: Ranking, path: str | Path) -> Path:
    """Write the ranking workbook atomically; township text always stays inert text."""
    from .writer import atomic_path

    path = Path(path)
    with atomic_path(path) as staged:
        _write_ranking(ranking, staged.file, staged.scratch())
    return path


CSV_COLUMNS = ("排名", "乡镇代码", "乡镇", "基础得分", "加分", "减分", "最终得分", "等次")


def write_ranking_csv(ranking: Ranking, path: str | Path) -> Path:
    """The 排名 table as CSV, atomically: UTF-8 with a BOM (so Excel on Chinese Windows opens it right),
    scores as the forms show them (90.00), a line per ranked township."""
    import csv
    import io

    from .scoring import show
    from .writer import atomic_path

    text = io.StringIO(newline="")
    out = csv.writer(text, lineterminator="\r\n")
    at = CSV_COLUMNS.index("乡镇") + 1                   # 自评得分, 核定得分, … beside the name once 核定 began
    columns = [*CSV_COLUMNS[:at], *(c for c in COMPARED if c in ranking.ranking.columns), *CSV_COLUMNS[at:]]
    out.writerow(columns)
    scores = {"基础得分", "加分", "减分", "最终得分", "自评得分", "核定得分", "核定差额"}
    for row in ranking.ranking.to_dict("records"):
        out.writerow(["" if row[c] is None or row[c] != row[c] else show(row[c], ranking.decimals) if c in scores
                      else row[c] for c in columns])
    path = Path(path)
    with atomic_path(path) as staged:
        staged.file.write(text.getvalue().encode("utf-8-sig"))
    return path


@dataclass(frozen=True)
class Column:
    """How a column of the ranking is shown: its width (characters) and its cells' format."""
    width: float
    kind: str = "text"          # text (wraps) | code (one line, never broken) | num | int | pct


# Every column the ranking's tables have, by heading: declared once, whichever sheet shows it.
COLUMNS = {
    "排名": Column(6, "int"), "乡镇代码": Column(11, "code"), "乡镇": Column(10), "基础得分": Column(9, "num"),
    "加分": Column(7, "num"), "减分": Column(7, "num"), "最终得分": Column(9, "num"), "等次": Column(6),
    "备注": Column(36),
    "编号": Column(5, "code"), "内容": Column(10), "一级指标": Column(12), "二级指标": Column(30),
    "类型": Column(7), "分值": Column(6, "num"), "县平均": Column(7, "num"), "平均失分": Column(7, "num"),
    "失分率": Column(7, "pct"), "扣分说明": Column(40),
    "文件": Column(48), "级别": Column(6), "代码": Column(7, "code"), "工作表": Column(10), "单元格": Column(8, "code"),
    "说明": Column(60), "处理结果": Column(20), "保存时间": Column(28, "code"),
    "自评得分": Column(9, "num"), "核定得分": Column(9, "num"), "核定差额": Column(8, "num"), "核定情况": Column(11),
    "指标": Column(36), "自评": Column(6, "num"), "核定": Column(6, "num"), "核定说明": Column(40), "核查人": Column(10),
    "核定调整": Column(40),
    "得分": Column(6, "num"), "SHA-256（前12位）": Column(15, "code"), "SHA-256": Column(70, "code"), "原因": Column(50),
    "上年得分": Column(9, "num"), "上年名次": Column(8, "code"), "上年等次": Column(8), "得分变化": Column(8, "code"),
    "名次变化": Column(8, "code"),           # feedback.LAST_YEAR_COLUMNS: a round made --from the previous one
}
SHORT_HASH = 12                 # hex characters of a file's SHA-256 shown; the whole value stays, hidden
MAX_ROW_HEIGHT = 409.0          # points: the tallest row Excel allows
TITLE_ROWS = 3                  # title, 制表单位 and 制表日期, a gap: the table's header row is the fourth
PORTRAIT_WIDTH = 96             # characters of columns an A4 portrait page holds at about full size
RANK_ROW_HEIGHT = 18.0          # 排名's rows: 30 townships and their chart on one page
CHART_WIDTH = 59.3              # characters: the column beside 排名 that holds the chart (420 pixels)
FOOTER = "&C第 &P 页，共 &N 页"
WIDEST_FIT = 210                # characters of columns fit to an A4 landscape page's width still legible (70 %)
WIDE_SCALE = 70                 # per cent: a wider table (明细 of many townships) prints over several pages


def _column(name: str, df: "pd.DataFrame") -> Column:
    """A declared column, or one sized from its heading (the townships' columns of 明细, the categories)."""
    if name in COLUMNS:
        return COLUMNS[name]
    from .layout import text_width

    if df[name].dtype.kind in "fi":        # a township's scores (明细) or a category's subtotals (分类得分)
        return Column(max(7, min(12, text_width(name) + 1)), "num")
    return Column(max(8, min(30, text_width(name) + 2)))


def _write_ranking(rk: Ranking, target, scratch: Path) -> None:
    import pandas as pd
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
    f = _formats(wb, FONT, rk.decimals)
    table = _Table(wb, f, rk)
    ws, top = table.write("排名", rk.ranking, hide=("归零",), height=RANK_ROW_HEIGHT)
    _ranking_visuals(wb, ws, rk, top, table.points)
    table.write("分类得分", rk.categories)
    table.write("明细", rk.details, hide=("扣分说明",), keep=6)    # the notes have a sheet of their own
    notes = rk.notes if rk.notes is not None else pd.DataFrame(columns=["编号", "乡镇", "扣分说明"])
    table.write("扣分说明", notes, widths={"一级指标": Column(16), "二级指标": Column(40), "扣分说明": Column(50)},
                empty="没有扣分说明。")
    if rk.adjustments is not None:
        table.write(ADJUSTMENT_SHEET, rk.adjustments, empty="核定分与自评分一致，没有调整。")
    table.write("问题清单", rk.issues, empty="没有问题。")
    files = rk.files.assign(**{"SHA-256（前12位）": rk.files["SHA-256"].str[:SHORT_HASH]})
    files = files[[c for c in files.columns if c != "SHA-256"] + ["SHA-256"]]     # the whole value last, hidden
    table.write("文件处理结果", files, hidden=("SHA-256",), empty="没有收到文件。")
    table.write("未提交", rk.missing, empty="各乡镇均已提交。")
    explained = pd.DataFrame(rk.explanation, columns=["项目", "说明"])
    table.write("排名说明", explained, widths={"项目": Column(14, "head"), "说明": Column(80)}, header=False)
    _notice_sheet(table, rk)
    assert tuple(wb.sheetnames) == (RANKING_SHEETS if rk.adjustments is None else REVIEWED_SHEETS)
    wb.close()


def _notice_sheet(table: "_Table", rk: Ranking) -> None:
    """考核结果通报: the draft of the county's notice, a heading and its text a row (see `feedback.draft_notice`)."""
    import pandas as pd

    from .feedback import NOTICE_SHEET, draft_notice

    notice = draft_notice(rk, rk.grades or None)
    table.write(NOTICE_SHEET, pd.DataFrame(list(notice.paragraphs), columns=["项目", "说明"]),
                widths={"项目": Column(16, "head"), "说明": Column(78)}, header=False)


def _formats(wb, font: str, decimals: int) -> dict:
    base = {"font_name": font, "font_size": 10.5, "valign": "vcenter", "border": 1, "border_color": "#A6A6A6"}
    return {
        "head": wb.add_format({**base, "bold": True, "bg_color": "#D9E1F2", "align": "center", "text_wrap": True}),
        "text": wb.add_format({**base, "text_wrap": True}),
        "code": wb.add_format({**base, "align": "center"}),
        "num": wb.add_format({**base, "num_format": number_format(decimals), "align": "center"}),
        "int": wb.add_format({**base, "num_format": "0", "align": "center"}),
        "pct": wb.add_format({**base, "num_format": "0.0%", "align": "center"}),
        "title": wb.add_format({"font_name": font, "font_size": 15, "bold": True, "align": "center",
                                "valign": "vcenter", "text_wrap": True}),
        "byline": wb.add_format({"font_name": font, "font_size": 10.5, "valign": "vcenter", "text_wrap": True}),
        "title_left": wb.add_format({"font_name": font, "font_size": 15, "bold": True, "valign": "vcenter"}),
        "byline_left": wb.add_format({"font_name": font, "font_size": 10.5, "valign": "vcenter"}),
    }


class _Table:
    """Writes one table on a sheet of its own: title, 制表单位 and 制表日期, the table, and how it prints."""

    def __init__(self, wb, f: dict, rk: Ranking):
        self.wb, self.f, self.rk = wb, f, rk
        self.points = 0.0           # the height of the last table written, header included

    def write(self, name: str, df: "pd.DataFrame", hide: tuple[str, ...] = (), hidden: tuple[str, ...] = (),
              widths: dict | None = None, height: float = ROW_HEIGHT, header: bool = True, empty: str = "",
              keep: int = 0):
        """The sheet `name` holding `df` (without the columns in `hide`; those in `hidden` are written but
        hidden, so they do not print). A table too wide to fit a page's width legibly prints over several
        pages, with its first `keep` columns on each. Returns the sheet and the row of the table's header."""
        ws = self.wb.add_worksheet(name)
        shown = [c for c in df.columns if c not in hide]
        cols = [(widths or {}).get(c) or _column(c, df) for c in shown]
        for c, (col_name, col) in enumerate(zip(shown, cols)):
            ws.set_column(c, c, col.width, None, {"hidden": col_name in hidden})
        printed = sum(col.width for col_name, col in zip(shown, cols) if col_name not in hidden)
        wide = bool(keep) and printed > WIDEST_FIT
        top = self._titles(ws, name, 1 if wide else len(shown) - len(hidden), printed)
        first = top + 1 if header else top
        self.points = _header(ws, top, shown, cols, self.f) if header else 0.0
        self.points += _rows(ws, df[shown], first, cols, self.f, height)
        if df.empty and empty:
            ws.set_row(first, ROW_HEIGHT)
            ws.merge_range(first, 0, first, max(0, len(shown) - len(hidden) - 1), empty, self.f["text"])
        _print_setup(ws, top if header else None, printed, keep if wide else 0)
        return ws, top

    def _titles(self, ws, name: str, span: int, width: float) -> int:
        """Title, then 制表单位 and 制表日期, across the table's printed columns (or, over `span` 1, from the
        first cell to the right, as far as they reach: a table wider than a page); the header's row."""
        from .clock import local_date
        from .layout import text_width

        h = self.rk.heading
        what = "初步排名" if name == "排名" and self.rk.preliminary else {**dict(SHEETS), ADJUSTMENT_SHEET: "核定调整"}[name]
        title = h.title(what)
        byline = "　　".join(x for x in (f"制表单位：{h.office}" if h.office else "",
                                        f"制表日期：{local_date(self.rk.made)}" if self.rk.made else "",
                                        self.rk.coverage if name == RANK_SHEET else "") if x)
        last = max(span - 1, 0)
        title_lines = max(1, -(-text_width(title) * 15 // int(10.5 * max(width - 1, 1)))) if last else 1
        ws.set_row(0, 26.0 * title_lines)
        _span(ws, 0, last, title, self.f["title" if last else "title_left"])
        ws.set_row(1, max(ROW_HEIGHT, _row_height(byline, width)) if last else ROW_HEIGHT)
        _span(ws, 1, last, byline, self.f["byline" if last else "byline_left"])
        ws.set_row(2, 8.0)
        return TITLE_ROWS


def _span(ws, row: int, last: int, text: str, fmt) -> None:
    if last:
        ws.merge_range(row, 0, row, last, text, fmt)
    else:
        ws.write_string(row, 0, text, fmt)


def _row_height(text: str, width: float) -> float:
    """Points a row needs for `text` wrapped in a column of `width` characters (a CJK character counts
    two): one line's height, or 14 points a line and a margin."""
    from .layout import text_lines

    lines = text_lines(text, width + 0.5)
    return ROW_HEIGHT if lines <= 1 else 14.0 * lines + 6


def _header(ws, top: int, shown: list[str], cols: list[Column], f) -> float:
    """The header row; its height."""
    height = max([ROW_HEIGHT] + [_row_height(str(c), col.width) for c, col in zip(shown, cols)])
    ws.set_row(top, height)
    for c, name in enumerate(shown):
        ws.write_string(top, c, str(name), f["head"])
    return height


def _rows(ws, df: "pd.DataFrame", first: int, cols: list[Column], f, height: float) -> float:
    """Every row with its height set: one line, or as many as its longest wrapping text needs. Their
    heights' sum."""
    import math

    total = 0.0
    heights: dict[tuple[str, float], float] = {}    # a table's texts repeat (criteria, messages): measured once
    wrapping = [col.kind == "text" for col in cols]
    for r, row in enumerate(df.itertuples(index=False), start=first):
        texts = [(v, cols[c].width) for c, v in enumerate(row) if wrapping[c] and isinstance(v, str)]
        tall = max((heights.get(tw) or heights.setdefault(tw, _row_height(*tw)) for tw in texts), default=0.0)
        tall = min(tall, MAX_ROW_HEIGHT)
        ws.set_row(r, tall if tall > ROW_HEIGHT else height)
        total += tall if tall > ROW_HEIGHT else height
        for c, value in enumerate(row):
            kind = cols[c].kind
            if isinstance(value, bool):
                ws.write_string(r, c, "是" if value else "否", f["text"])
            elif isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                ws.write_number(r, c, value, f[kind if kind in ("num", "int", "pct") else "num"])
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                ws.write_blank(r, c, None, f["text"])
            else:
                ws.write_string(r, c, _clip(str(value), MAX_CELL_TEXT), f[kind if kind in ("code", "head") else "text"])
    return total


def _print_setup(ws, header_row: int | None, width: float, keep: int = 0) -> None:
    """A4, landscape when the table is wide, fit to the page's width (or, given `keep`, at WIDE_SCALE
    over several pages with the first `keep` columns on each), the header repeated, page numbers."""
    ws.set_paper(9)
    if width > PORTRAIT_WIDTH:
        ws.set_landscape()
    else:
        ws.set_portrait()
    ws.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.7)
    ws.set_footer(FOOTER, {"margin": 0.3})
    if keep:
        ws.set_print_scale(WIDE_SCALE)
        ws.repeat_columns(0, keep - 1)
    else:
        ws.fit_to_pages(1, 0)
    ws.center_horizontally()
    if header_row is not None:
        ws.repeat_rows(header_row)
        ws.freeze_panes(header_row + 1, 0)


def _ranking_visuals(wb, ws, rk: Ranking, top: int, points: float) -> None:
    """The chart beside the table, as tall as the table, and the sheet printed on one page: up to 30
    townships stay legible. (No data bars in the table: the chart shows the scores, the cells stay plain.)"""
    import math

    from .writer import FONT as FONT_NAME

    n = len(rk.ranking)
    if not n:
        return
    columns = [c for c in rk.ranking.columns if c != "归零"]
    col, name_col = columns.index("最终得分"), columns.index("乡镇")
    chart = wb.add_chart({"type": "bar"})
    chart.add_series({"name": "最终得分", "categories": ["排名", top + 1, name_col, top + n, name_col],
                      "values": ["排名", top + 1, col, top + n, col], "fill": {"color": "#5B9BD5"},
                      "gap": 60,
                      "data_labels": {"value": True, "num_format": number_format(rk.decimals),
                                      "font": {"name": FONT_NAME, "size": 8}}})
    chart.set_title({"name": "各乡镇最终得分", "name_font": {"name": FONT_NAME, "size": 11}})
    chart.set_y_axis({"reverse": True, "num_font": {"name": FONT_NAME, "size": 9}})
    chart.set_x_axis({"min": 0, "num_font": {"name": FONT_NAME, "size": 8},
                      "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}})
    chart.set_legend({"none": True})
    gap, at = len(columns), len(columns) + 1
    ws.set_column(gap, gap, 1.5)
    ws.set_column(at, at, CHART_WIDTH)
    ws.set_default_row(RANK_ROW_HEIGHT)       # the rows below a short table, which a chart may reach into
    low = 11 * RANK_ROW_HEIGHT + ROW_HEIGHT      # the chart spans the header and every township's row, or 12 rows
    rows = n + max(0, math.ceil((low - points) / RANK_ROW_HEIGHT))
    points = max(points, low)
    chart.set_size({"width": int(CHART_WIDTH * 7 + 0.5) + 5, "height": round(points * 4 / 3)})
    ws.insert_chart(top, at, chart, {"object_position": 1})
    ws.print_area(0, 0, top + rows, at)
    ws.fit_to_pages(1, 1)
    ws.set_landscape()
