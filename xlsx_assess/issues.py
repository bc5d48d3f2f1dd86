"""Issues and reports: every problem xlsx-assess finds is data, never a traceback.

The catalogue below is the one place where issue codes live. Each code has a severity, a short
English title for developers and a Chinese message template for the people who fix the problem.
Codes are grouped by stage:

- R: the rubric, roster and settings (the county's own files), and where the output goes
- F: a returned file as a file (format, size, encryption, safety)
- I: the identity a workbook carries (township, year, rubric version)
- S: the structure of a workbook (sheets, locked cells, formulas, protection)
- V: the values a township entered
- C: the collection of files as a whole (duplicates, missing townships)

The README's table of codes is rendered from this catalogue (`catalogue_markdown`), and a test
keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, Literal

Severity = Literal["error", "warning", "info"]


class Code(StrEnum):
    """Every issue code, by name: `Code.DAMAGED` is "F104" (a str, so it prints, compares and serialises as
    the code), with its severity, a short English meaning for developers and the Chinese template.
    A misspelt name fails where it is used, and tests/test_issues.py holds every name used in the
    package to the catalogue and every catalogued code to a place that emits it."""

    severity: Severity
    meaning: str
    template: str

    def __new__(cls, code: str, severity: Severity, meaning: str, template: str) -> "Code":
        member = str.__new__(cls, code)
        member._value_ = code
        member.severity, member.meaning, member.template = severity, meaning, template
        return member

    @property
    def code(self) -> str:
        return self.value

    RUBRIC_UNREADABLE = ("R101", "error", "rubric file cannot be read",
                         "评分细则文件无法读取：{detail}。请检查文件路径，并用 Excel 或 WPS 另存为 CSV（UTF-8 或 GBK）。")
    RUBRIC_COLUMN_MISSING = ("R102", "error", "rubric column missing",
                             "缺少列“{column}”。第一行应为：id,category,indicator,criterion,kind,points,guide,note。")
    RUBRIC_COLUMN_UNKNOWN = ("R103", "warning", "rubric column unknown",
                             "列“{column}”不认识，已忽略。")
    RUBRIC_KIND_UNKNOWN = ("R104", "error", "unknown kind",
                           "类型“{value}”不认识，应为 base（基础项）、bonus（加分项）、deduction（减分项）或 zero（归零项）。")
    RUBRIC_POINTS_NOT_NUMBER = ("R105", "error", "points not a number",
                                "分值“{value}”不是数字，请填写数字，例如 1.5。")
    RUBRIC_POINTS_NEGATIVE = ("R106", "error", "points negative",
                              "分值 {value} 为负数；减分项也请填写正数的上限，例如 5。")
    RUBRIC_ID_DUPLICATE = ("R107", "error", "duplicate id",
                           "编号“{value}”与第 {other} 行重复，每行编号必须唯一。")
    RUBRIC_CATEGORY_EMPTY = ("R108", "error", "empty category",
                             "“内容”（category）为空，请填写。")
    RUBRIC_INDICATOR_EMPTY = ("R109", "error", "empty indicator",
                              "“一级指标”（indicator）为空，请填写。")
    RUBRIC_BASE_NOT_100 = ("R110", "error", "base points do not sum to 100",
                           "基础项分值合计为 {value}，应为 100，请调整各项分值。")
    RUBRIC_MANY_ZERO_LINES = ("R111", "error", "more than one zero line",
                              "归零项（zero）有 {value} 行，最多只能有 1 行。")
    RUBRIC_ID_EMPTY = ("R112", "error", "empty id",
                       "编号（id）为空，请填写唯一编号，例如 A01。")
    RUBRIC_NOT_CONTIGUOUS = ("R113", "error", "category or indicator not contiguous",
                             "“{value}”的各行不相邻，同一内容、同一一级指标的行必须连续排列。")
    RUBRIC_EMPTY = ("R114", "error", "rubric has no lines",
                    "评分细则中没有任何评分项。")
    RUBRIC_ZERO_LINE_POINTS = ("R115", "warning", "zero line has points",
                               "归零项的分值应为 0，已按 0 处理。")
    RUBRIC_TEXT_TOO_LONG = ("R116", "error", "text too long",
                            "文字超过 {value} 个字符，请精简。")
    RUBRIC_COLUMN_DUPLICATE = ("R117", "error", "duplicate column",
                               "列“{column}”出现了不止一次，请删除多余的列。")
    SETTINGS_INVALID = ("R201", "error", "settings file invalid",
                        "参数设置文件有误：{detail}。")
    ROSTER_INVALID = ("R202", "error", "roster file invalid",
                      "乡镇名单有误：{detail}。")
    ROSTER_TOWNSHIP_UNKNOWN = ("R203", "error", "township not on roster",
                               "乡镇“{value}”不在乡镇名单中，请检查代码或名称。")
    OUTPUT_IS_INPUT = ("R301", "error", "output would overwrite or be read as an input",
                       "输出文件{detail}“{value}”。收回的文件从不改动：请用 --out 另选收回文件夹以外的文件名，例如 排名.xlsx。")
    OUTPUT_UNWRITABLE = ("R302", "error", "output cannot be written",
                         "无法写入：{detail}。")

    FILE_UNREADABLE = ("F101", "error", "file cannot be read",
                       "文件无法读取：{detail}。请让乡镇重新发送。")
    FILE_EMPTY = ("F102", "error", "empty file",
                  "文件是空的（0 字节），可能下载未完成，请让乡镇重新发送。")
    NOT_A_WORKBOOK = ("F103", "error", "not a workbook",
                      "这不是 Excel 表格，而是{detail}。请让乡镇发送填好的 .xlsx 考核表。")
    DAMAGED = ("F104", "error", "damaged workbook",
               "文件已损坏或不完整（{detail}），可能传输中断，请让乡镇重新发送。")
    PASSWORD_PROTECTED = ("F105", "error", "password-protected workbook",
                          "文件设置了打开密码，无法读取。请让乡镇取消打开密码（文件 › 文档加密 / 信息 › 保护工作簿），另存为 .xlsx 后重新发送。")
    FILE_TOO_LARGE = ("F106", "error", "file too large",
                      "文件大小 {value}，超过上限 {limit}，未读取（正常的考核表约 20 KB）。请让乡镇重新发送原表。")
    DECOMPRESSION_BOMB = ("F107", "error", "decompression bomb",
                          "文件解压后异常巨大（{detail}），疑似恶意文件，未读取。请让乡镇重新发送原表。")
    XML_DTD = ("F108", "error", "XML with DTD or entities",
               "文件内部含有不允许的 XML 声明（DTD/实体），疑似恶意文件，未读取。")
    UNSUPPORTED_FORMAT = ("F109", "error", "unsupported format",
                          "不支持的文件格式（{detail}）。请让乡镇用 WPS 或 Excel 打开后“另存为” Excel 工作簿（.xlsx）再发送。")
    OLD_FORMAT = ("F110", "warning", "reduced checks for old format",
                  "文件为 {detail} 格式，只能核对数值，无法核对锁定、公式和数据有效性。建议让乡镇另存为 .xlsx 重新发送。")
    ACTIVE_CONTENT = ("F111", "warning", "active content",
                      "文件含有{detail}，已忽略，不会运行。考核表不需要这些内容，请让乡镇使用原表填写。")
    SKIPPED = ("F112", "info", "skipped file",
               "已跳过：{detail}。")
    ARCHIVE_TOO_DEEP = ("F113", "error", "nested archive too deep",
                        "压缩包内又有多层压缩包，未展开。请解压后再检查。")
    SHEET_TOO_LARGE = ("F114", "error", "sheet area too large",
                       "工作表“{value}”的内容一直延伸到 {detail}，远超考核表的范围，未读取。请让乡镇删除表格范围以外的内容，或使用下发的原表重新填写后发送。")

    NO_IDENTITY = ("I201", "error", "no identity",
                   "找不到考核表身份信息，这不是本系统生成的考核表，或身份信息被删除。请让乡镇使用下发的原表填写。")
    IDENTITY_TOWNSHIP_UNKNOWN = ("I202", "error", "township not on roster",
                                 "表中记录的乡镇“{value}”不在乡镇名单中。请核对名单，或让乡镇使用下发的原表。")
    WRONG_YEAR = ("I203", "error", "wrong year",
                  "这是 {value} 年度的考核表，本次考核为 {expected} 年度。请让乡镇使用本年度下发的表格。")
    WRONG_RUBRIC = ("I204", "error", "wrong rubric version",
                    "考核表的评分细则版本（{value}）与本次考核（{expected}）不一致，可能使用了旧表。请让乡镇使用最新下发的表格。")
    FILE_NAME_DISAGREES = ("I205", "warning", "file name disagrees with identity",
                           "文件名看起来是“{value}”的，但表内身份是“{expected}”。已按表内身份处理，请确认没有发错文件。")
    IDENTITY_ALTERED = ("I206", "error", "identity altered",
                        "考核表身份信息被改动（{detail}），请让乡镇使用下发的原表重新填写。")
    TOWNSHIP_NAME_MISMATCH = ("I207", "error", "township name does not match code",
                              "表中乡镇代码 {value} 对应“{expected}”，但名称写的是“{detail}”，身份信息被改动。")

    SHEET_MISSING = ("S301", "error", "sheet missing",
                     "缺少工作表“{value}”（可能被删除或改名），请让乡镇使用下发的原表重新填写。")
    SHEET_ADDED = ("S302", "warning", "sheet added",
                   "多出工作表“{value}”，已忽略。")
    LOCKED_CELL_CHANGED = ("S303", "error", "locked cell changed",
                           "此单元格不应改动：应为“{expected}”，实际为“{value}”。请让乡镇使用下发的原表，只填写浅黄色单元格。")
    FORMULA_CHANGED = ("S304", "error", "formula removed or changed",
                       "此处的计算公式被删除或改动（应为 {expected}）。请让乡镇使用下发的原表重新填写。")
    PROTECTION_REMOVED = ("S305", "warning", "protection removed",
                          "工作表保护被取消。数值已重新核算，但请提醒乡镇不要取消保护。")
    VALIDATION_REMOVED = ("S306", "warning", "validation removed",
                          "数据有效性被删除（{detail}）。数值已逐项核对，但请提醒乡镇不要粘贴整列数据。")
    LOCKED_CELL_UNLOCKED = ("S307", "warning", "locked cell unlocked",
                            "此单元格本应锁定，却被解除锁定。")
    IDENTITY_SHEET_VISIBLE = ("S308", "warning", "identity sheet visible",
                              "隐藏的身份工作表被显示出来。")
    MANY_LOCKED_CELLS_CHANGED = ("S309", "error", "many locked cells changed",
                                 "另有 {value} 处锁定单元格被改动，可能插入、删除或移动了行。请让乡镇使用下发的原表重新填写。")
    SHEET_NAME_TWICE = ("S310", "error", "sheet name used twice",
                        "工作簿中不止一个工作表名为“{value}”，不同软件会读到不同的表，无法核对。请让乡镇使用下发的原表重新填写。")
    CELL_TWICE = ("S311", "error", "cell written twice",
                  "此单元格在文件中写了不止一次，不同软件显示的内容可能不同，无法核对。请让乡镇使用下发的原表重新填写。")
    ROW_TWICE = ("S312", "warning", "row written twice",
                 "第 {value} 行在文件中写了不止一次，已按其中每个单元格核对。请提醒乡镇使用下发的原表。")

    SCORE_MISSING = ("V401", "error", "required score missing",
                     "“{label}”未填写得分。请填写 0 到 {limit} 之间的数；不得分请填 0。")
    SCORE_NOT_NUMBER = ("V402", "error", "score not a number",
                        "得分“{value}”不是数字。请填写 0 到 {limit} 之间的数。")
    SCORE_OUT_OF_RANGE = ("V403", "error", "score out of range",
                          "得分 {value} 超出 0–{limit}，请填写 0 到 {limit} 之间的数。")
    NUMBER_AS_TEXT = ("V404", "warning", "number entered as text",
                      "得分“{value}”是以文本形式填写的数字，已按 {detail} 读取。")
    FULL_WIDTH_DIGITS = ("V405", "warning", "full-width digits",
                         "得分“{value}”使用了全角字符，已按 {detail} 读取。")
    FORMULA_IN_INPUT = ("V406", "error", "formula in an input cell",
                        "得分单元格中填写了公式（{value}），请直接填写数字。")
    ZERO_ANSWER_INVALID = ("V407", "error", "zero-out answer invalid",
                           "直接归零项应选择“是”或“否”，实际为“{value}”。")
    CACHED_TOTAL_DIFFERS = ("V408", "warning", "cached total differs",
                            "表内显示的{label}为 {value}，按填写内容重新计算为 {expected}。以重新计算的结果为准。")
    REPORTER_MISSING = ("V409", "warning", "reporter missing",
                        "未填写填报人，请补充，便于联系。")
    PHONE_MISSING = ("V410", "warning", "phone missing",
                     "未填写联系电话，请补充，便于联系。")
    TEXT_TOO_LONG = ("V411", "warning", "text too long",
                     "文字长度 {value} 个字符，超过 {limit}，只保留前 {limit} 个字符。")
    ERROR_VALUE = ("V412", "error", "error value",
                   "单元格显示错误值 {value}，请改为 0 到 {limit} 之间的数。")
    ZERO_OUT_MARKED = ("V413", "warning", "zero-out marked",
                       "直接归零项选择了“是”，最终得分记 0 分。请核实。")
    TEXT_LIKE_FORMULA = ("V414", "info", "text looks like a formula",
                         "文字以“{value}”开头，已作为普通文字处理。")
    SCORE_TOO_MANY_DECIMALS = ("V415", "error", "score has too many decimals",
                               "“{label}”的得分 {value} 小数位数过多：本次考核得分{limit}。请改为 {expected} 这样的数后重新填写。")
    VALUE_AND_TEXT = ("V416", "error", "value and text in one cell",
                      "此单元格同时写有数值和文字（或同一内容写了两次），不同软件显示不一（LibreOffice 显示为空），无法核对。请让乡镇清除此单元格后重新填写。")
    NOTE_MISSING = ("V417", "warning", "有扣分（或加分、减分）而未写扣分说明（级别由设置 missing_note_severity 决定）",
                    "编号 {value} 一行{detail}，但“扣分说明”为空。请在此单元格写明{expected}。")
    ZERO_ANSWER_BLANK = ("V418", "warning", "直接归零项未选择",
                         "编号 {value}（直接归零项）未选择“是”或“否”，已按“否”计分。请在此单元格选择“是”或“否”。")

    SUPERSEDED = ("C501", "warning", "superseded by a newer file",
                  "同一乡镇有更新的文件“{value}”，本文件未采用。")
    IDENTICAL_COPY = ("C502", "info", "identical copy",
                      "与“{value}”内容完全相同，已合并。")
    TOWNSHIP_MISSING = ("C503", "error", "township missing",
                        "未提交：没有收到可用的考核表，请催报。")
    SAME_ENTRIES = ("C504", "error", "same entries as another township",
                    "填写内容与“{value}”（{detail}）的文件完全相同，疑似照抄或发错文件，请核实。")


CATALOGUE: dict[str, Code] = {c.value: c for c in Code}

SEVERITY_ZH = {"error": "错误", "warning": "警告", "info": "提示"}


@dataclass(frozen=True, slots=True)
class Issue:
    """One located problem. `sheet` and `cell` are empty where the problem concerns the whole file."""

    code: str
    severity: Severity
    message: str
    file: str = ""
    sheet: str = ""
    cell: str = ""
    line: int | None = None
    column: str = ""

    @property
    def where(self) -> str:
        parts = [p for p in (self.file, self.sheet, self.cell) if p]
        if self.line is not None:
            parts.append(f"第 {self.line} 行")
        if self.column:
            parts.append(self.column)
        return " › ".join(parts)

    def render(self) -> str:
        return f"[{self.where}] {self.message}" if self.where else self.message

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "sheet": self.sheet,
            "cell": self.cell,
            "message": self.message,
        }


def issue(code: Code, *, file: str = "", sheet: str = "", cell: str = "", line: int | None = None,
          column: str = "", severity: Severity | None = None, **fields) -> Issue:
    """Make an issue from the catalogue; `fields` fill the Chinese template; `severity` overrides the
    catalogue's where a county setting decides it (V417)."""
    entry = CATALOGUE[code]
    fields.setdefault("column", column)
    message = entry.template.format_map(_Blank(fields))
    return Issue(entry.value, severity or entry.severity, message, file, sheet, cell, line, column)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def status_of(errors: int, warnings: int) -> str:
    """The status of a report or a file, from how many errors and warnings it holds: error over warning
    over ok. The one place this rule lives."""
    return "error" if errors else "warning" if warnings else "ok"


@dataclass(slots=True)
class Report:
    """An ordered collection of issues with convenience views."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, item: Issue) -> None:
        self.issues.append(item)

    def extend(self, items: Iterable[Issue]) -> None:
        self.issues.extend(items)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def status(self) -> str:
        return status_of(len(self.errors), sum(i.severity == "warning" for i in self.issues))

    def __iter__(self):
        return iter(self.issues)

    def __len__(self) -> int:
        return len(self.issues)


class Refused(Exception):
    """Stop reading this file: report `code` (with `fields` for its message) instead."""

    def __init__(self, code: Code, **fields):
        super().__init__(code)
        self.code = code
        self.fields = fields


class AssessError(Exception):
    """Raised only when the work cannot go on at all (e.g. the rubric itself is broken)."""

    def __init__(self, report: Report):
        super().__init__("; ".join(i.render() for i in report.issues[:5]))
        self.report = report


def catalogue_markdown() -> str:
    """The table of issue codes for the README."""
    lines = ["| 代码 code | 级别 severity | 含义 meaning | 提示 message |", "|---|---|---|---|"]
    for c in CATALOGUE.values():
        text = c.template.replace("|", "\\|")
        lines.append(f"| {c.code} | {SEVERITY_ZH[c.severity]} {c.severity} | {c.meaning} | {text} |")
    return "\n".join(lines)
