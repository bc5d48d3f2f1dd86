"""考核设置.xlsx: a round's rubric, roster and settings as one workbook the clerk edits in WPS or Excel.

Sheets 评分细则 (one row per line of the form, Chinese headers, a dropdown for 类型, validated 分值),
乡镇名单 (代码, 名称, 类别), 考核参数 (one row per setting: 参数, 值, 说明) and 说明 (how to edit it).
Reading it back turns each sheet into a table of text, as a CSV is, and hands it to the same
validators the CSV and TOML loaders use (`rubric_from_table`, `townships_from_table`,
`settings_from_data`): a problem is located at 考核设置.xlsx › sheet › 第 N 行 › column.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .issues import AssessError, Code, Refused, Report, issue
from .rubric import KIND_ZH, RUBRIC_COLUMNS, Column, Headers, Rubric, Table, format_points, parse_points
from .scoring import MAX_DECIMALS
from .settings import (MAX_CAP, MAX_ROSTER_TEXT, ROSTER_COLUMNS, TEXT_LIMITS, WHOLE_LIMITS, YEARS, Settings, Township,
                       settings_from_data, townships_from_table)

RUBRIC_SHEET, ROSTER_SHEET, SETTINGS_SHEET, HELP_SHEET = "评分细则", "乡镇名单", "考核参数", "说明"
MAX_BOOK_BYTES = 20 * 1024 * 1024     # a setup workbook is some 20 KB; far more is not one
SPARE_ROWS = 200                      # rows below the last line that keep the dropdowns and checks
FONT = "宋体"


@dataclass(frozen=True)
class SettingRow:
    """One row of 考核参数: the setting's key, how the clerk names it, what it means, and what it holds."""

    key: str
    label: str
    note: str
    kind: str = "text"                # text | int | number | grades | severity


SETTING_ROWS: tuple[SettingRow, ...] = (
    SettingRow("title", "考核表标题", "每个乡镇考核表顶部的大标题"),
    SettingRow("county", "县（市、区）", "考核单位所在县的名称"),
    SettingRow("year", "考核年度", f"{YEARS[0]} 到 {YEARS[1]} 之间的年份；考核表、文件名都带年度", "int"),
    SettingRow("issuing_office", "下发单位", "印在考核表上的下发单位"),
    SettingRow("deadline", "报送截止时间", "印在考核表和催报通知中，如 2027年1月15日"),
    SettingRow("contact_person", "联系人", "乡镇有疑问时联系的人或科室"),
    SettingRow("contact_phone", "联系电话", "联系人的电话"),
    SettingRow("bonus_cap", "加分上限", "特别加分项合计最多计入的分数", "number"),
    SettingRow("deduction_cap", "减分上限", "特别减分项合计最多扣除的分数", "number"),
    SettingRow("score_decimals", "得分小数位数", "0 到 4：得分最多几位小数，各项合计四舍五入到同样位数", "int"),
    SettingRow("missing_note_severity", "缺扣分说明时", "有扣分（或加分、减分）却没写扣分说明时，核查报“警告”还是“错误”"
               "（错误的表不予采用）", "severity"),
    SettingRow("upload_max_files", "网页上传文件数上限", "在网页上一次最多上传几个文件（超过时请分几次上传）", "int"),
    SettingRow("upload_max_mb", "网页上传大小上限", "在网页上一次上传的文件合计最多多少 MB", "int"),
    SettingRow("grades", "等次划分", "从高到低写“等次 分数线”，用分号隔开，如：优秀 90；良好 80；一般 60；较差 0。"
                                   "最后一个等次收其余分数", "grades"),
    SettingRow("instructions", "填表说明", "印在考核表“填报说明”页，每条一行"),
)
SEVERITY_KEYS = {"警告": "warning", "错误": "error"}
SEVERITY_ZH = {v: k for k, v in SEVERITY_KEYS.items()}
SETTINGS_COLUMNS: tuple[Column, ...] = (Column("name", "参数", width=14), Column("value", "值", width=46, wrap=True),
                                        Column("note", "说明", width=36, wrap=True))

HELP = (
    "考核设置说明",
    "本工作簿是本轮考核的全部设置。请在 WPS 或 Excel 中修改，保存时保持 Excel 工作簿（.xlsx）格式；"
    "改完后在本轮文件夹中运行 xlsx-assess generate，按新设置生成各乡镇考核表（放在“下发”文件夹）。",
    "一、评分细则：每行是考核表的一个评分项，按考核表中的顺序排列。",
    "  · 编号：每行唯一，如 A01；考核表、问题清单都用它指明是哪一项。",
    "  · 内容、一级指标、二级指标：同一内容、同一一级指标的各行必须相邻。",
    "  · 类型：从下拉列表选择 基础项、加分项、减分项 或 归零项。归零项最多 1 行，分值填 0。",
    "  · 分值：填数字，如 1.5。基础项分值合计必须为 100；加分项、减分项填该项最多加（减）的分数。",
    "  · 评分标准、备注：可不填，会印在考核表上。",
    "二、乡镇名单：每行一个乡镇。代码每行唯一，且一经下发不要再改；名称与代码对应；类别可不填。",
    "三、考核参数：只改“值”一列，不要改“参数”一列。等次写成“优秀 90；良好 80；一般 60；较差 0”。",
    "四、请不要修改工作表名称，不要删除各表第一行的表头。程序读取时会逐项检查，"
    "有误会指明“工作表 › 第几行 › 哪一列”。",
    "五、考核表下发后又修改评分细则：generate 会列出改动（如“A01 分值 1.5 → 2”）并且不覆盖已下发的表，"
    "确需重新下发时加 --force。已收回的表仍按它当初的版本核对。",
)


def write_setup_book(rubric: Rubric, townships: list[Township], settings: Settings, path: str | Path) -> Path:
    """Write 考核设置.xlsx atomically (the old file or the new one, never half of one)."""
    from .writer import atomic_path

    path = Path(path)
    with atomic_path(path) as staged:
        _write(rubric, townships, settings, staged.file)
    return path


def _write(rubric: Rubric, townships: list[Township], settings: Settings, target) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(target, {"strings_to_formulas": False, "strings_to_urls": False,
                                      "strings_to_numbers": False, "in_memory": True})
    wb.set_properties({"title": f"{settings.title}（{settings.year}年度）考核设置", "author": settings.issuing_office,
                       "created": dt.datetime(settings.year, 1, 1, tzinfo=dt.timezone.utc),
                       "comments": "由 xlsx-assess 生成：本轮考核的评分细则、乡镇名单和考核参数。"})
    fmt = _formats(wb)
    _write_rubric(wb.add_worksheet(RUBRIC_SHEET), rubric, fmt)
    _write_roster(wb.add_worksheet(ROSTER_SHEET), townships, fmt)
    _write_settings(wb.add_worksheet(SETTINGS_SHEET), settings, fmt)
    _write_help(wb.add_worksheet(HELP_SHEET), rubric, fmt)
    wb.close()


def _formats(wb) -> dict:
    border = {"border": 1, "border_color": "#808080", "font_name": FONT, "font_size": 10.5, "valign": "vcenter"}
    return {
        "head": wb.add_format({**border, "bold": True, "align": "center", "bg_color": "#D9E1F2", "text_wrap": True}),
        "text": wb.add_format({**border, "num_format": "@"}),
        "wrap": wb.add_format({**border, "num_format": "@", "text_wrap": True}),
        "center": wb.add_format({**border, "num_format": "@", "align": "center"}),
        "number": wb.add_format({**border, "align": "center", "num_format": "General"}),
        "label": wb.add_format({**border, "bold": True, "bg_color": "#F2F2F2", "text_wrap": True}),
        "note": wb.add_format({**border, "font_size": 9, "font_color": "#595959", "text_wrap": True}),
        "title": wb.add_format({"font_name": FONT, "font_size": 14, "bold": True}),
        "para": wb.add_format({"font_name": FONT, "font_size": 10.5, "text_wrap": True, "valign": "top"}),
        "sum": wb.add_format({"font_name": FONT, "font_size": 10.5, "bold": True, "font_color": "#C00000"}),
    }


def _page(ws, columns: tuple[Column, ...], fmt: dict, landscape: bool = True) -> None:
    """Header row, widths and print setup shared by the table sheets."""
    for k, c in enumerate(columns):
        ws.set_column(k, k, c.width)
        ws.write_string(0, k, c.zh, fmt["head"])
    ws.set_row(0, 22)
    ws.freeze_panes(1, 0)
    ws.repeat_rows(0)
    ws.set_paper(9)
    if landscape:
        ws.set_landscape()
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.5, right=0.5, top=0.6, bottom=0.6)
    ws.set_footer("&C&A 第 &P 页，共 &N 页")


def _row_height(texts: list[tuple[str, float]]) -> float:
    from .writer import row_height

    return max([18.0, *(row_height(t, w) for t, w in texts if t)])


def _write_rubric(ws, rubric: Rubric, fmt: dict) -> None:
    _page(ws, RUBRIC_COLUMNS, fmt)
    for r, item in enumerate(rubric.items, start=1):
        for k, c in enumerate(RUBRIC_COLUMNS):
            if c.key == "points":
                ws.write_number(r, k, item.points, fmt["number"])
            elif c.key == "kind":
                ws.write_string(r, k, KIND_ZH[item.kind], fmt["center"])
            else:
                ws.write_string(r, k, getattr(item, c.key), fmt["wrap" if c.wrap else "center"])
        ws.set_row(r, _row_height([(getattr(item, c.key), c.width) for c in RUBRIC_COLUMNS if c.wrap]))
    last = len(rubric.items) + SPARE_ROWS
    col = {c.key: k for k, c in enumerate(RUBRIC_COLUMNS)}
    ws.data_validation(1, col["kind"], last, col["kind"], {
        "validate": "list", "source": list(KIND_ZH.values()), "error_title": "类型",
        "error_message": "请从下拉列表选择：基础项、加分项、减分项或归零项。"})
    ws.data_validation(1, col["points"], last, col["points"], {
        "validate": "decimal", "criteria": "between", "minimum": 0, "maximum": MAX_CAP, "error_title": "分值",
        "error_message": f"分值请填 0 到 {MAX_CAP:g} 之间的数字，如 1.5（减分项也填正数）。"})


def _write_roster(ws, townships: list[Township], fmt: dict) -> None:
    _page(ws, ROSTER_COLUMNS, fmt, landscape=False)
    for r, t in enumerate(townships, start=1):
        for k, value in enumerate((t.code, t.name, t.kind)):
            ws.write_string(r, k, value, fmt["center"])
    for k in range(len(ROSTER_COLUMNS)):
        ws.set_column(k, k, ROSTER_COLUMNS[k].width, fmt["text"])      # new rows typed in stay text (codes keep 0s)
    ws.data_validation(1, 0, len(townships) + SPARE_ROWS, len(ROSTER_COLUMNS) - 1, {
        "validate": "length", "criteria": "<=", "value": MAX_ROSTER_TEXT, "error_title": "乡镇名单",
        "error_message": f"代码、名称、类别都不超过 {MAX_ROSTER_TEXT} 个字。"})


def _write_settings(ws, settings: Settings, fmt: dict) -> None:
    _page(ws, SETTINGS_COLUMNS, fmt, landscape=False)
    widths = [c.width for c in SETTINGS_COLUMNS]
    for r, row in enumerate(SETTING_ROWS, start=1):
        value = getattr(settings, row.key)
        ws.write_string(r, 0, row.label, fmt["label"])
        if row.kind in ("int", "number"):
            ws.write_number(r, 1, value, fmt["number"])
        else:
            ws.write_string(r, 1, show_setting(row, value), fmt["wrap"])
        ws.write_string(r, 2, row.note, fmt["note"])
        ws.set_row(r, _row_height([(show_setting(row, value), widths[1]), (row.note, widths[2] * 1.15)]))
        if rule := _setting_rule(row):
            ws.data_validation(r, 1, r, 1, rule)


def show_setting(row: SettingRow, value: Any) -> str:
    """A setting's value as the 值 cell shows it."""
    if row.kind == "grades":
        return "；".join(f"{g.name} {format_points(g.min)}" for g in value)
    if row.kind == "severity":
        return SEVERITY_ZH.get(value, value)
    return value if isinstance(value, str) else format_points(value)


def _setting_rule(row: SettingRow) -> dict | None:
    if row.key == "year":
        return {"validate": "integer", "criteria": "between", "minimum": YEARS[0], "maximum": YEARS[1],
                "error_title": row.label, "error_message": f"请填 {YEARS[0]} 到 {YEARS[1]} 之间的年份，如 2026。"}
    if row.key == "score_decimals" or row.key in WHOLE_LIMITS:
        low, high = (0, MAX_DECIMALS) if row.key == "score_decimals" else WHOLE_LIMITS[row.key][1:]
        return {"validate": "integer", "criteria": "between", "minimum": low, "maximum": high,
                "error_title": row.label, "error_message": f"请填 {low} 到 {high} 之间的整数。"}
    if row.kind == "severity":
        return {"validate": "list", "source": list(SEVERITY_KEYS), "error_title": row.label,
                "error_message": "请从下拉列表选择" + "或".join(f"“{k}”" for k in SEVERITY_KEYS) + "。"}
    if row.kind == "number":
        return {"validate": "decimal", "criteria": "between", "minimum": 0, "maximum": MAX_CAP,
                "error_title": row.label, "error_message": f"请填 0 到 {MAX_CAP:g} 之间的数。"}
    if row.key in TEXT_LIMITS and TEXT_LIMITS[row.key] <= 255:
        return {"validate": "length", "criteria": "<=", "value": TEXT_LIMITS[row.key], "error_title": row.label,
                "error_message": f"不超过 {TEXT_LIMITS[row.key]} 个字。"}
    return None


def _write_help(ws, rubric: Rubric, fmt: dict) -> None:
    ws.set_column(0, 0, 66)
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.hide_gridlines(2)
    ws.write_string(0, 0, HELP[0], fmt["title"])
    ws.set_row(0, 26)
    for r, text in enumerate(HELP[1:], start=1):
        ws.write_string(r, 0, text, fmt["para"])
        ws.set_row(r, _row_height([(text, 66)]))
    r = len(HELP) + 1
    kind, points = (chr(ord("A") + [c.key for c in RUBRIC_COLUMNS].index(k)) for k in ("kind", "points"))
    total = sum(i.points for i in rubric.base)
    sheet = f"'{RUBRIC_SHEET}'"
    ws.write_formula(r, 0, f'="评分细则中基础项分值合计："&SUMIF({sheet}!{kind}:{kind},"基础项",{sheet}!{points}:{points})'
                           '&"（应为 100）"', fmt["sum"], f"评分细则中基础项分值合计：{format_points(total)}（应为 100）")


# -- reading it back ------------------------------------------------------------------------------

@dataclass
class Setup:
    """What 考核设置.xlsx holds, each part None where it cannot be used; every problem in `report`."""

    rubric: Rubric | None
    townships: list[Township] | None
    settings: Settings | None
    report: Report

    def context(self):
        """The Context to check against; raises AssessError with every problem if any part is unusable."""
        from .checks import Context

        if not self.report.ok or None in (self.rubric, self.townships, self.settings):
            raise AssessError(self.report)
        return Context(self.rubric, self.settings, self.townships)


def load_setup_book(path: str | Path):
    """The Context a setup workbook holds; AssessError if unusable."""
    return read_setup_book(path).context()


def read_setup_book(path: str | Path) -> Setup:
    """Read 考核设置.xlsx with python-calamine and validate each sheet as its CSV or TOML would be."""
    path = Path(path)
    report = Report()
    sheets = _read_sheets(path, report)
    if sheets is None:
        return Setup(None, None, None, report)
    found = {}
    for name in (RUBRIC_SHEET, ROSTER_SHEET, SETTINGS_SHEET):
        if name not in sheets:
            report.add(issue(Code.SETUP_SHEET_MISSING, file=path.name, value=name))
        found[name] = sheets.get(name)
    from .rubric import rubric_from_table

    rubric = rubric_from_table(found[RUBRIC_SHEET], report, path.name, RUBRIC_SHEET) \
        if found[RUBRIC_SHEET] is not None else None
    roster = townships_from_table(found[ROSTER_SHEET], report, path.name, ROSTER_SHEET) \
        if found[ROSTER_SHEET] is not None else None
    settings = _settings_from_table(found[SETTINGS_SHEET], report, path.name) \
        if found[SETTINGS_SHEET] is not None else None
    return Setup(rubric, roster, settings, report)


def read_setup_rubric(path: str | Path) -> tuple[Rubric | None, Report]:
    """Only the rubric of a setup workbook (what `rubric diff` compares), with its problems."""
    from .rubric import rubric_from_table

    path = Path(path)
    report = Report()
    sheets = _read_sheets(path, report)
    if sheets is None:
        return None, report
    if RUBRIC_SHEET not in sheets:
        report.add(issue(Code.SETUP_SHEET_MISSING, file=path.name, value=RUBRIC_SHEET))
        return None, report
    return rubric_from_table(sheets[RUBRIC_SHEET], report, path.name, RUBRIC_SHEET), report


def _read_sheets(path: Path, report: Report) -> dict[str, Table] | None:
    """Every sheet of the workbook as a table of text (row numbers as the sheet shows them, blank rows
    left out); None, with an R204, where it cannot be read."""
    try:
        data = path.read_bytes()
        if len(data) > MAX_BOOK_BYTES:
            raise ValueError(f"文件有 {len(data) // 1024 // 1024} MB，不像考核设置工作簿")
        import python_calamine as pc

        from .reader import ZIP_MAGIC, check_worksheets

        if data[:4] in ZIP_MAGIC:
            check_worksheets(data)          # zip limits and sheet sizes first: python-calamine runs here
        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        return {name: [(n, cells) for n, row in enumerate(wb.get_sheet_by_name(name).to_python(skip_empty_area=False),
                                                          start=1)
                       if any(cells := [cell_text(v) for v in row])]
                for name in wb.sheet_names}
    except (KeyboardInterrupt, SystemExit):
        raise
    except Refused as exc:
        f = exc.fields
        detail = (f"工作表“{f.get('value')}”的内容延伸到 {f.get('detail')}，请删除表格范围以外的内容"
                  if exc.code == Code.SHEET_TOO_LARGE else f.get("detail") or exc.code.meaning)
        report.add(issue(Code.SETUP_UNREADABLE, file=path.name, detail=detail))
        return None
    except BaseException as exc:        # python-calamine raises several types; all mean the same here
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:120] or type(exc).__name__
        report.add(issue(Code.SETUP_UNREADABLE, file=path.name, detail=detail))
        return None


def cell_text(value: Any) -> str:
    """A cell's value as text, as a CSV would hold it: 2.0 -> "2", 1.5 -> "1.5", a date -> 2027年1月15日."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.15g}"
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        value = value.date()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, (dt.datetime, dt.time, dt.timedelta)):
        return str(value)
    return str(value).replace("\r\n", "\n").strip()


def _settings_from_table(records: Table, report: Report, file: str) -> Settings | None:
    head = Headers(records[0][1] if records else [], SETTINGS_COLUMNS)
    by_label = {n: row for row in SETTING_ROWS for n in (row.label, row.key)}
    data: dict[str, Any] = {}
    rows: dict[str, tuple[int, str]] = {}
    for line, cells in records[1:]:
        rec = head.record(cells)
        label = rec.get("name", "")
        row = by_label.get(label)
        key = row.key if row else label
        data[key] = setting_value(row, rec.get("value", "")) if row else rec.get("value", "")
        rows[key] = (line, head.shown("value") if row else head.shown("name"))
    for row in SETTING_ROWS:            # written complete: a row gone is an accident, not "use the default"
        if row.key not in data:
            report.add(issue(Code.SETTINGS_INVALID, file=file, sheet=SETTINGS_SHEET, column=row.label,
                             detail=f"缺少“{row.label}”这一行，请补上（参数写“{row.label}”，值写在右边）"))
    return settings_from_data(data, report, lambda key: {"file": file, "sheet": SETTINGS_SHEET,
                                                         "line": rows.get(key, (None, ""))[0],
                                                         "column": rows.get(key, (None, ""))[1]},
                              named=lambda key: by_label[key].label if key in by_label else key)


def setting_value(row: SettingRow, text: str) -> Any:
    """A 值 cell's text as the setting holds it; left as text where it cannot be read, for the validator
    to refuse with its own message."""
    if row.kind == "int":
        number = parse_points(re.sub(r"[年位]$", "", text.strip()))
        return int(number) if number is not None and number.is_integer() else (number if number is not None else text)
    if row.kind == "number":
        number = parse_points(text)
        return number if number is not None else text
    if row.kind == "grades":
        return parse_grades(text)
    if row.kind == "severity":
        return SEVERITY_KEYS.get(text.strip(), text.strip())
    return text


GRADE_PART = re.compile(r"(.+?)\s*(?:[≥>]=?|:|：)?\s*([-+]?\d+(?:\.\d+)?)\s*分?(?:以上)?")


def parse_grades(text: str) -> list[dict]:
    """"优秀 90；良好 80；一般 60；较差 0" -> [{name, min}, …]; a part that is not "name number" is kept
    without its min, for the validator to name."""
    import unicodedata

    grades: list[dict] = []
    for part in re.split(r"[；;，,、\n]+", unicodedata.normalize("NFKC", text)):
        if not part.strip():
            continue
        m = GRADE_PART.fullmatch(part.strip())
        grades.append({"name": m[1].strip(), "min": float(m[2])} if m else {"name": part.strip()})
    return grades
