"""The 反馈单 workbook: its layout, writing it, and checking the one a township sends back.

A 反馈单 is locked like the form: only 整改措施, 整改时限 (a validated date) and 责任人 of each lost line
are inputs. Its identity (custom document properties and a very hidden sheet, xa_form = "feedback")
names the township, the year and the 反馈单 itself (xa_feedback_id, a digest of its locked content).
When it is written, the round records what it holds (.xlsx-assess/feedback/<id>.json): a returned
反馈单 is checked against that record, not against results computed again, so it stays checkable
whatever happens to the ranking after it was sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .scoring import number_format
from .feedback import TownshipFeedback
from .checks import cell_text, check_sheets, read_identity, removed_validations, same_value   # as for the form
from .issues import Code, Issue, issue
from .layout import FEEDBACK_MARK, FEEDBACK_SHEET, META_SHEET, CellSpec, Validation, a1, position

if TYPE_CHECKING:
    from .reader import Returned
    from .round import Round
    from .settings import Settings

SHEET = FEEDBACK_SHEET                 # "反馈单": the reader reads it (layout.READ_SHEETS)
SHEETS = (SHEET, META_SHEET)
IDENTITY_KEYS = ("xa_form", "xa_township_code", "xa_township", "xa_year", "xa_feedback_id", "xa_tool_version")
HEADERS = ("编号", "失分指标", "分值", "自评", "核定", "扣分", "失分原因", "整改措施", "整改时限", "责任人")
WIDTHS = (7, 34, 7, 7, 7, 7, 30, 30, 12, 10)
COL_MEASURE, COL_DEADLINE, COL_OWNER = 7, 8, 9
LAST_COL = len(HEADERS) - 1
TEXT_MAX = 500
REGISTRY = "feedback"                  # .xlsx-assess/feedback/: <id>.json per 反馈单 written, latest.json
KEPT_FOLDER = "报回"                   # 反馈/报回/: returned 反馈单s moved aside before a new one takes their name


@dataclass
class FeedbackLayout:
    """Every cell of a 反馈单, where its inputs are, and its identity."""

    cells: list[CellSpec] = field(default_factory=list)
    lines: list[tuple[str, str, str, str, str]] = field(default_factory=list)   # item id, label, 3 input cells
    header_row: int = 0
    last_row: int = 0
    identity: dict[str, str] = field(default_factory=dict)

    def locked(self) -> dict[str, Any]:
        """A1 -> value of every locked cell with a value on the 反馈单 sheet."""
        return {c.ref: c.value for c in self.cells if c.sheet == SHEET and not c.is_input and c.value is not None}


def feedback_layout(fb: TownshipFeedback, s: "Settings") -> FeedbackLayout:
    lay = FeedbackLayout()
    d = s.score_decimals
    cells = lay.cells

    def put(row, col, value=None, style="text", merge_to=None, validation=None):
        cells.append(CellSpec(SHEET, row, col, value, None, style, merge_to, validation))

    def num(v) -> Any:
        return "" if v is None else round(float(v), d)

    put(0, 0, f"{s.county}{s.year}年度考核结果反馈单", "title", merge_to=(0, LAST_COL))
    put(1, 0, s.title, "hint_center", merge_to=(1, LAST_COL))
    put(2, 0, "乡镇", "label")
    put(2, 1, f"{fb.township}（{fb.code}）", "info")
    put(2, 2, "下发单位", "label", merge_to=(2, 3))
    put(2, 4, s.issuing_office, "info", merge_to=(2, 6))
    put(2, 7, "考核年度", "label")
    put(2, 8, f"{s.year}年度", "info", merge_to=(2, LAST_COL))
    # The result, and last year's beside it.
    row = 4
    for col, head, to in ((0, "最终得分", 1), (2, "名次", 3), (4, "等次", 5), (6, "上年度", 6), (7, "变化", LAST_COL)):
        put(row, col, head, "head", merge_to=(row, to) if to != col else None)
    put(row + 1, 0, num(fb.score), "final_value", merge_to=(row + 1, 1))
    put(row + 1, 2, f"第 {fb.rank} 名（共 {fb.of} 个）", "text_center", merge_to=(row + 1, 3))
    put(row + 1, 4, fb.grade, "text_center", merge_to=(row + 1, 5))
    past, change = _last_year_text(fb, d)
    put(row + 1, 6, past, "text_center")
    put(row + 1, 7, change, "text_center", merge_to=(row + 1, LAST_COL))
    # Per category.
    row += 3
    put(row, 0, "分类得分", "section", merge_to=(row, LAST_COL))
    row += 1
    for col, head in ((0, "类别"), (2, "满分"), (3, "自评"), (4, "核定"), (5, "县平均"), (6, "县最高")):
        put(row, col, head, "head", merge_to=(row, 1) if col == 0 else None)
    put(row, 7, "说明", "head", merge_to=(row, LAST_COL))
    note = "核定：县考核组核定后的得分" + (f"（{fb.adjusted} 项有调整，见下表失分原因）" if fb.adjusted
                                     else "（核定未作调整）" if fb.verified else "（尚未核定，按自评分）")
    first = row + 1
    for c in fb.categories:
        row += 1
        put(row, 0, c.category, "text", merge_to=(row, 1))
        for col, v in ((2, c.full), (3, c.self_score), (4, c.final_score), (5, c.average), (6, c.best)):
            put(row, col, num(v), "total_value")
    if fb.categories:
        put(first, 7, note, "small", merge_to=(row, LAST_COL))
    # The lines lost, with what the township will do about each.
    row += 2
    put(row, 0, "失分项目及整改（请在浅黄色单元格中填写整改措施、整改时限和责任人）", "section", merge_to=(row, LAST_COL))
    row += 1
    lay.header_row = row
    for col, head in enumerate(HEADERS):
        put(row, col, head, "head")
    for line in fb.lost:
        row += 1
        put(row, 0, line.item_id, "text_center")
        put(row, 1, line.label, "text")
        if line.zero:
            put(row, 2, "是/否", "text_center")
            put(row, 3, "是", "text_center")
            put(row, 4, "是", "text_center")
            put(row, 5, "归零", "text_center")
        else:
            put(row, 2, float(line.points), "points")
            put(row, 3, num(line.self_score), "total_value")
            put(row, 4, num(line.final_score), "total_value")
            put(row, 5, float(line.lost), "total_value")
        put(row, 6, line.reason or "（未说明）", "small")
        put(row, COL_MEASURE, None, "input_text", validation=_text_rule("整改措施"))
        put(row, COL_DEADLINE, None, "input_date", validation=_date_rule(s.year))
        put(row, COL_OWNER, None, "input_text", validation=_text_rule("责任人", 50))
        lay.lines.append((line.item_id, line.label, a1(row, COL_MEASURE), a1(row, COL_DEADLINE), a1(row, COL_OWNER)))
    if not fb.lost:
        row += 1
        put(row, 0, "本年度没有失分项目，无需整改。", "text_center", merge_to=(row, LAST_COL))
    row += 2
    put(row, 0, "乡（镇）政府（盖章）：                        主要负责人（签字）：                        "
        "填报日期：", "sign", merge_to=(row, LAST_COL))
    lay.last_row = row
    locked = lay.locked()
    digest = hashlib.sha256(json.dumps({**{k: str(v) for k, v in locked.items()}, "_": fb.code, "year": s.year},
                                       ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    lay.identity = {"xa_form": FEEDBACK_MARK, "xa_township_code": fb.code, "xa_township": fb.township,
                    "xa_year": str(s.year), "xa_feedback_id": digest, "xa_tool_version": __version__}
    return lay


def _last_year_text(fb: TownshipFeedback, d: int) -> tuple[str, str]:
    from .feedback import change_of

    if fb.last is None:
        return "—", "（无上年度考核结果）"
    score, rank, grade, delta, moved = change_of(fb.score, fb.rank, fb.last)
    return f"{score} 分 · 第 {fb.last.rank} 名 · {grade}", f"得分 {delta}，名次 {moved}"


def _text_rule(what: str, top: int = TEXT_MAX) -> Validation:
    return Validation("length", 1, top, title=what, prompt=f"请填写{what}，{top} 字以内。",
                      error=f"{what}请控制在 {top} 字以内。")


def _date_rule(year: int) -> Validation:
    return Validation("date", float(year), float(year + 3), title="整改时限",
                      prompt=f"请填写完成整改的日期，如 {year + 1}-03-31。",
                      error=f"请填写 {year}-01-01 到 {year + 3}-12-31 之间的日期，如 {year + 1}-03-31。")


# -- writing --------------------------------------------------------------------------------------

FEEDBACK_STYLES = {
    "hint_center": {"font_size": 10, "align": "center", "valign": "vcenter"},
    "section": {"bold": True, "font_size": 11, "valign": "vcenter", "bottom": 1},
}


def feedback_file_name(fb: TownshipFeedback, year: int) -> str:
    """`2026_410927100_城关镇_反馈单.xlsx`, as `review.review_file_name` names a 核定表."""
    from .settings import Township
    from .writer import file_name

    return file_name(Township(fb.code, fb.township), year)[:-len(".xlsx")] + "_反馈单.xlsx"


def write_feedback(fb: TownshipFeedback, s: "Settings", path: Path, made: dt.datetime | None = None) -> FeedbackLayout:
    """Write one 反馈单 atomically; its layout (what `record_feedback` keeps) is returned."""
    from .writer import atomic_path

    lay = feedback_layout(fb, s)
    with atomic_path(Path(path)) as staged:
        _write(lay, fb, s, staged.file, made)
    return lay


def _write(lay: FeedbackLayout, fb: TownshipFeedback, s: "Settings", target, made: dt.datetime | None) -> None:
    import xlsxwriter

    from .writer import (FONT, FORMATS, PROTECT_OPTIONS, WORKBOOK_OPTIONS, print_setup, row_height, validation_options,
                         write_cell)

    wb = xlsxwriter.Workbook(target, WORKBOOK_OPTIONS)
    wb.set_properties({"title": f"{s.county}{s.year}年度考核结果反馈单 — {fb.township}", "subject": s.title,
                       "author": s.issuing_office, "company": s.issuing_office,
                       "created": made or dt.datetime(s.year + 1, 1, 1, tzinfo=dt.timezone.utc),
                       "comments": "由 xlsx-assess 生成，请只填写浅黄色单元格。"})
    for key, value in lay.identity.items():
        wb.set_custom_property(key, value)
    number = number_format(s.score_decimals)
    styles = {**FORMATS, **{k: {"font_name": FONT, "font_size": 10.5, **v} for k, v in FEEDBACK_STYLES.items()}}
    formats = {k: wb.add_format({**v, "num_format": number} if k in ("total_value", "final_value") else v)
               for k, v in styles.items()}
    ws, meta = wb.add_worksheet(SHEET), wb.add_worksheet(META_SHEET)
    for cell in lay.cells:
        write_cell(ws, cell, formats[cell.style], {})
        if cell.validation is not None:
            ws.data_validation(cell.row, cell.col, cell.row, cell.col, validation_options(cell.validation, cell.ref))
    for col, width in enumerate(WIDTHS):
        ws.set_column(col, col, width)
    ws.set_row(0, 30)
    heights: dict[int, float] = {}
    for cell in lay.cells:
        if isinstance(cell.value, str) and not cell.merge_to and cell.row > lay.header_row:
            heights[cell.row] = max(heights.get(cell.row, 30.0), row_height(cell.value, WIDTHS[cell.col]))
    for row, h in heights.items():
        ws.set_row(row, h)
    ws.set_row(lay.last_row, 30)
    ws.repeat_rows(lay.header_row)
    print_setup(ws, [], lay.last_row, LAST_COL, s.issuing_office, fb.township)     # as the form prints
    meta.write_string(0, 0, "key")
    meta.write_string(0, 1, "value")
    for r, key in enumerate(IDENTITY_KEYS, start=1):
        meta.write_string(r, 0, key)
        meta.write_string(r, 1, lay.identity[key])
    meta.very_hidden()
    for sheet in (ws, meta):
        sheet.protect("", PROTECT_OPTIONS)
    ws.activate()
    wb.close()


# -- the round's record of what it sent -------------------------------------------------------------

def record_feedback(rnd: "Round", lay: FeedbackLayout, path: Path) -> None:
    """Keep what a 反馈单 holds (its locked cells, its input cells) by its id, and that it is its
    township's latest; the sha256 of the file as written tells a 反馈单 sent back untouched."""
    from .writer import atomic_path

    folder = rnd.state / REGISTRY
    folder.mkdir(parents=True, exist_ok=True)
    ident = lay.identity
    record = {"code": ident["xa_township_code"], "township": ident["xa_township"], "year": ident["xa_year"],
              "id": ident["xa_feedback_id"], "file": path.name,
              "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "locked": {ref: v for ref, v in lay.locked().items()}, "lines": lay.lines}
    with atomic_path(folder / f"{record['id']}.json") as staged:
        staged.file.write(json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))


def record_latest(rnd: "Round", latest: dict[str, str]) -> None:
    from .writer import atomic_path

    folder = rnd.state / REGISTRY
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "latest.json") as staged:
        staged.file.write(json.dumps(latest, ensure_ascii=False, indent=1).encode("utf-8"))


def issued_sha256s(rnd: "Round") -> set[str]:
    """The sha256 of every 反馈单 the round wrote, as written."""
    found = set()
    for path in (rnd.state / REGISTRY).glob("*.json"):
        try:
            found.add(json.loads(path.read_text(encoding="utf-8"))["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def keep_aside(rnd: "Round", path: Path, issued: set[str]) -> Path | None:
    """Before a 反馈单 is written to `path`: a file there that the round did not write (a township's
    filled-in 反馈单, put back over the one sent) is moved to 反馈/报回/, never overwritten. Where it went,
    or None when there was nothing to keep."""
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() in issued:
        return None
    from .writer import unwritable

    folder = rnd.feedback / KEPT_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target, n = folder / path.name, 1
        while target.exists():
            n += 1
            target = folder / f"{path.stem}（{n}）{path.suffix}"
        path.rename(target)                          # held open in WPS, say: R302, nothing overwritten
    except OSError as exc:
        raise unwritable(path, exc) from None
    return target


def read_record(rnd: "Round", feedback_id: str) -> dict | None:
    if not re.fullmatch(r"[0-9a-f]{16}", feedback_id or ""):
        return None
    try:
        return json.loads((rnd.state / REGISTRY / f"{feedback_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_latest(rnd: "Round") -> dict[str, str]:
    try:
        data = json.loads((rnd.state / REGISTRY / "latest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- checking a returned 反馈单 -----------------------------------------------------------------------

@dataclass
class FeedbackCheck:
    """What a file in 反馈/ turned out to be."""

    name: str
    code: str = ""                      # the township it belongs to ("" if it cannot tell)
    feedback_id: str = ""
    untouched: bool = False             # the very file that was sent, not filled in yet
    issues: list[Issue] = field(default_factory=list)
    mtime: float = 0.0

    @property
    def complete(self) -> bool:
        return bool(self.code) and not self.untouched and not any(i.severity == "error" for i in self.issues)


def is_feedback(ret: "Returned") -> bool:
    return read_feedback_identity(ret).get("xa_form") == FEEDBACK_MARK


def read_feedback_identity(ret: "Returned") -> dict[str, str]:
    props, sheet = read_identity(ret, IDENTITY_KEYS)
    return sheet or props


def check_feedback(rnd: "Round", path: Path, name: str, year: int, latest: dict[str, str] | None = None,
                   data: bytes | None = None) -> FeedbackCheck:
    """Check one file of 反馈/: a 反馈单 of a township (its `code`), or a file of no township with what
    is wrong with it (unreadable: the reader's issues; another workbook: V430). `latest`: the round's latest
    反馈单 per township (`read_latest`, read here if not given); `data`: the file's bytes, if read already."""
    from .reader import read_returned

    ret = read_returned(path, name, data)            # the reader's limits hold: size, zip bombs, encryption
    out = FeedbackCheck(name, mtime=path.stat().st_mtime)
    if not ret.readable:
        out.issues += ret.issues
        return out
    if not is_feedback(ret):
        out.issues.append(issue(Code.FEEDBACK_NOT_OURS, file=name, detail="这不是反馈单，而是考核表或其他工作簿"))
        return out
    props, sheet = read_identity(ret, IDENTITY_KEYS)
    ident = sheet or props
    out.feedback_id = ident.get("xa_feedback_id", "")
    record = read_record(rnd, out.feedback_id)
    differ = [k for k in IDENTITY_KEYS[:-1] if props and props.get(k) != ident.get(k)]
    if record is None or differ or ident.get("xa_township_code") != record["code"] or ident.get("xa_year") != str(year):
        why = "文档属性与隐藏表不一致：" + "、".join(differ) if differ else "本轮没有下发过编号为 " + (out.feedback_id or "（空）") + " 的反馈单"
        if record is not None and not differ:
            why = "乡镇或年度与下发时不同"
        out.issues.append(issue(Code.FEEDBACK_NOT_OURS, file=name, sheet=META_SHEET, detail=why))
        return out
    out.code = record["code"]
    if ret.sha256 == record["sha256"]:
        out.untouched = True
        return out
    if (latest if latest is not None else read_latest(rnd)).get(out.code) != out.feedback_id:
        out.issues.append(issue(Code.FEEDBACK_STALE, file=name, sheet=SHEET))
    if check_sheets(ret, lambda code, **fields: out.issues.append(issue(code, file=name, **fields)), SHEETS, SHEET):
        out.issues += _structure(ret, record, name) + _inputs(ret, record, name, year)
    return out


def _structure(ret: "Returned", record: dict, name: str) -> list[Issue]:
    found = []
    for ref, expected in record["locked"].items():
        actual = ret.value(SHEET, *position(ref))
        if not same_value(expected, actual):
            found.append(issue(Code.FEEDBACK_LOCKED_CHANGED, file=name, sheet=SHEET, cell=ref, expected=cell_text(expected),
                               value=cell_text(actual) or "（空）"))
        elif ret.is_locked(SHEET, ref) is False:
            found.append(issue(Code.FEEDBACK_LOCKED_CHANGED, file=name, sheet=SHEET, cell=ref, expected=cell_text(expected),
                               value=cell_text(actual) + "（已解除锁定）"))
    xml = (ret.xml or {}).get(SHEET)
    if xml is not None:
        if not xml.protected:
            found.append(issue(Code.FEEDBACK_PROTECTION_REMOVED, file=name, sheet=SHEET, detail="工作表保护已被取消"))
        inputs = {position(ref): ref for line in record["lines"] for ref in line[2:]}
        missing = sorted(removed_validations(xml, inputs))
        if missing:
            found.append(issue(Code.FEEDBACK_PROTECTION_REMOVED, file=name, sheet=SHEET, cell=missing[0],
                               detail="这些单元格的数据有效性已被删除：" + "、".join(missing[:5])))
    return found[:20]


def _inputs(ret: "Returned", record: dict, name: str, year: int) -> list[Issue]:
    found = []
    example = f"{year + 1}-03-31"
    for item_id, label, measure, deadline, owner in record["lines"]:
        where = {"file": name, "sheet": SHEET, "label": f"{item_id} {label}"}
        if not cell_text(ret.value(SHEET, *position(measure))).strip():
            found.append(issue(Code.FEEDBACK_MEASURE_MISSING, cell=measure, **where))
        when = ret.value(SHEET, *position(deadline))
        if cell_text(when).strip() == "":
            found.append(issue(Code.FEEDBACK_DEADLINE_MISSING, cell=deadline, expected=example, **where))
        elif not dt.date(year, 1, 1) <= (as_date(when) or dt.date.min) <= dt.date(year + 3, 12, 31):   # as validated
            found.append(issue(Code.FEEDBACK_DEADLINE_INVALID, cell=deadline, value=cell_text(when)[:40], expected=example,
                               **where))
        if not cell_text(ret.value(SHEET, *position(owner))).strip():
            found.append(issue(Code.FEEDBACK_OWNER_MISSING, cell=owner, **where))
    return found


DATE_TEXT = re.compile(r"\s*(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?\s*")


def as_date(value: Any) -> dt.date | None:
    """A 整改时限 as a date: a date cell, or text a person wrote as one (2027-03-31, 2027年3月31日)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    m = DATE_TEXT.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return None
    try:
        return dt.date(*map(int, m.groups()))
    except ValueError:
        return None
