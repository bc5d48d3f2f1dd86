"""Issues and reports: every problem xlsx-assess finds is data, never a traceback.

The catalogue below is the one place where issue codes live. Each code has a severity, a short
Chinese meaning (what `xlsx-assess codes` and the README list) and a Chinese message template for the
people who fix the problem.
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
    the code), with its severity, a short Chinese meaning and the Chinese template.
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

    RUBRIC_UNREADABLE = ("R101", "error", "评分细则文件无法读取",
                         "评分细则文件无法读取：{detail}。请检查文件路径，并用 Excel 或 WPS 另存为 CSV（UTF-8 或 GBK）。")
    RUBRIC_COLUMN_MISSING = ("R102", "error", "评分细则缺少列",
                             "缺少列“{column}”。第一行应为：编号,内容,一级指标,二级指标,类型,分值,评分标准,备注"
                             "（或 id,category,indicator,criterion,kind,points,guide,note）。")
    RUBRIC_COLUMN_UNKNOWN = ("R103", "warning", "评分细则有不认识的列",
                             "列“{column}”不认识，已忽略。")
    RUBRIC_KIND_UNKNOWN = ("R104", "error", "类型不认识",
                           "类型“{value}”不认识，应为 base（基础项）、bonus（加分项）、deduction（减分项）或 zero（归零项）。")
    RUBRIC_POINTS_NOT_NUMBER = ("R105", "error", "分值不是数字",
                                "分值“{value}”不是数字，请填写数字，例如 1.5。")
    RUBRIC_POINTS_NEGATIVE = ("R106", "error", "分值为负数",
                              "分值 {value} 为负数；减分项也请填写正数的上限，例如 5。")
    RUBRIC_ID_DUPLICATE = ("R107", "error", "编号重复",
                           "编号“{value}”与第 {other} 行重复，每行编号必须唯一。")
    RUBRIC_CATEGORY_EMPTY = ("R108", "error", "“内容”为空",
                             "“内容”（category）为空，请填写。")
    RUBRIC_INDICATOR_EMPTY = ("R109", "error", "“一级指标”为空",
                              "“一级指标”（indicator）为空，请填写。")
    RUBRIC_BASE_NOT_100 = ("R110", "error", "基础项分值合计不是 100",
                           "基础项分值合计为 {value}，应为 100，请调整各项分值。")
    RUBRIC_MANY_ZERO_LINES = ("R111", "error", "归零项多于一行",
                              "归零项（zero）有 {value} 行，最多只能有 1 行。")
    RUBRIC_ID_EMPTY = ("R112", "error", "编号为空",
                       "编号（id）为空，请填写唯一编号，例如 A01。")
    RUBRIC_NOT_CONTIGUOUS = ("R113", "error", "同一内容或一级指标的行不相邻",
                             "“{value}”的各行不相邻，同一内容、同一一级指标的行必须连续排列。")
    RUBRIC_EMPTY = ("R114", "error", "评分细则没有评分项",
                    "评分细则中没有任何评分项。")
    RUBRIC_ZERO_LINE_POINTS = ("R115", "warning", "归零项填了分值",
                               "归零项的分值应为 0，已按 0 处理。")
    RUBRIC_TEXT_TOO_LONG = ("R116", "error", "文字过长",
                            "文字超过 {value} 个字符，请精简。")
    RUBRIC_COLUMN_DUPLICATE = ("R117", "error", "列重复",
                               "列“{column}”出现了不止一次，请删除多余的列。")
    SETTINGS_INVALID = ("R201", "error", "参数设置文件有误",
                        "参数设置文件有误：{detail}。")
    ROSTER_INVALID = ("R202", "error", "乡镇名单有误",
                      "乡镇名单有误：{detail}。")
    ROSTER_TOWNSHIP_UNKNOWN = ("R203", "error", "乡镇不在名单中",
                               "乡镇“{value}”不在乡镇名单中，请检查代码或名称。名单中的乡镇：{detail}。")
    SETUP_UNREADABLE = ("R204", "error", "考核设置工作簿无法读取",
                        "考核设置工作簿无法读取：{detail}。请用 WPS 或 Excel 打开检查，另存为 Excel 工作簿（.xlsx）后重试。")
    SETUP_SHEET_MISSING = ("R205", "error", "考核设置缺少工作表",
                           "缺少工作表“{value}”。考核设置.xlsx 应有“评分细则”“乡镇名单”“考核参数”三个工作表，请不要删除或改名。")
    ROUND_EXISTS = ("R206", "error", "考核轮次已存在",
                    "这里已经有考核轮次（{detail}），没有覆盖。请换一个新文件夹，或用 --from 以它为基础开始新的一轮。")
    NOT_A_ROUND = ("R207", "error", "不是考核轮次文件夹",
                   "“{value}”不在考核轮次中（找不到 .xlsx-assess/round.json）。{detail}")
    FORMS_FROM_OTHER_RUBRIC = ("R208", "error", "下发的考核表来自另一版评分细则",
                               "下发/ 中已有 {value} 个考核表按另一版评分细则生成，与当前评分细则相比：{detail}。"
                               "没有覆盖。确需按当前细则重新生成，请加 --force（已收回的旧表仍按其原版本核对）。")
    SETTINGS_CHANGED_AFTER_SENT = ("R209", "error", "考核表下发后考核参数有改动",
                                   "下发/ 中已有 {value} 个考核表按原来的考核参数生成，之后考核参数有改动：{detail}。"
                                   "没有覆盖。这些参数印在考核表上，已按原表填回的文件会与新表不符：若确需重新下发，"
                                   "请加 --force，并通知乡镇改用新表；否则请把考核设置.xlsx 改回原值。")
    OUTPUT_IS_INPUT = ("R301", "error", "输出文件会覆盖收回的文件或被当作收回的文件",
                       "输出文件{detail}“{value}”。收回的文件从不改动：请用 --out 另选收回文件夹以外的文件名，例如 排名.xlsx。")
    OUTPUT_UNWRITABLE = ("R302", "error", "输出文件无法写入",
                         "无法写入：{detail}。")

    FILE_UNREADABLE = ("F101", "error", "文件无法读取",
                       "文件无法读取：{detail}。请让乡镇重新发送。")
    FILE_EMPTY = ("F102", "error", "空文件",
                  "文件是空的（0 字节），可能下载未完成，请让乡镇重新发送。")
    NOT_A_WORKBOOK = ("F103", "error", "不是 Excel 表格",
                      "这不是 Excel 表格，而是{detail}。请让乡镇发送填好的 .xlsx 考核表。")
    DAMAGED = ("F104", "error", "文件已损坏",
               "文件已损坏或不完整（{detail}），可能传输中断，请让乡镇重新发送。")
    PASSWORD_PROTECTED = ("F105", "error", "文件设置了打开密码",
                          "文件设置了打开密码，无法读取。请让乡镇取消打开密码（文件 › 文档加密 / 信息 › 保护工作簿），另存为 .xlsx 后重新发送。")
    FILE_TOO_LARGE = ("F106", "error", "文件过大",
                      "文件大小 {value}，超过上限 {limit}，未读取（正常的考核表约 20 KB）。请让乡镇重新发送原表。")
    DECOMPRESSION_BOMB = ("F107", "error", "解压后异常巨大（压缩炸弹）",
                          "文件解压后异常巨大（{detail}），疑似恶意文件，未读取。请让乡镇重新发送原表。")
    XML_DTD = ("F108", "error", "XML 含 DTD 或实体声明",
               "文件内部含有不允许的 XML 声明（DTD/实体），疑似恶意文件，未读取。")
    UNSUPPORTED_FORMAT = ("F109", "error", "不支持的文件格式",
                          "不支持的文件格式（{detail}）。请让乡镇用 WPS 或 Excel 打开后“另存为” Excel 工作簿（.xlsx）再发送。")
    OLD_FORMAT = ("F110", "warning", "旧格式，只能部分核查",
                  "文件为 {detail} 格式，只能核对数值，无法核对锁定、公式和数据有效性。建议让乡镇另存为 .xlsx 重新发送。")
    ACTIVE_CONTENT = ("F111", "warning", "含有宏等活动内容",
                      "文件含有{detail}，已忽略，不会运行。考核表不需要这些内容，请让乡镇使用原表填写。")
    SKIPPED = ("F112", "info", "已跳过的文件",
               "已跳过：{detail}。")
    ARCHIVE_TOO_DEEP = ("F113", "error", "压缩包嵌套过深",
                        "压缩包内又有多层压缩包，未展开。请解压后再检查。")
    SHEET_TOO_LARGE = ("F114", "error", "工作表范围过大",
                       "工作表“{value}”的内容一直延伸到 {detail}，远超考核表的范围，未读取。请让乡镇删除表格范围以外的内容，或使用下发的原表重新填写后发送。")

    NO_IDENTITY = ("I201", "error", "没有身份信息",
                   "找不到考核表身份信息，这不是本系统生成的考核表，或身份信息被删除。请让乡镇使用下发的原表填写。")
    IDENTITY_TOWNSHIP_UNKNOWN = ("I202", "error", "表中乡镇不在名单中",
                                 "表中记录的乡镇“{value}”不在乡镇名单中。请核对名单，或让乡镇使用下发的原表。")
    WRONG_YEAR = ("I203", "error", "年度不符",
                  "这是 {value} 年度的考核表，本次考核为 {expected} 年度。请让乡镇使用本年度下发的表格。")
    WRONG_RUBRIC = ("I204", "error", "评分细则版本不符",
                    "考核表是按另一版评分细则生成的（{detail}），可能使用了旧表。请让乡镇使用最新下发的表格。")
    FILE_NAME_DISAGREES = ("I205", "warning", "文件名与表内身份不符",
                           "文件名看起来是“{value}”的，但表内身份是“{expected}”。已按表内身份处理，请确认没有发错文件。")
    IDENTITY_ALTERED = ("I206", "error", "身份信息被改动",
                        "考核表身份信息被改动（{detail}），请让乡镇使用下发的原表重新填写。")
    TOWNSHIP_NAME_MISMATCH = ("I207", "error", "乡镇名称与代码不符",
                              "表中乡镇代码 {value} 对应“{expected}”，但名称写的是“{detail}”，身份信息被改动。")
    OLD_WORDING = ("I208", "info", "按旧版评分细则核对（只有文字不同）",
                   "考核表按上一版评分细则生成，与当前版本只有文字不同（{detail}），编号、类型和分值一致，已按原版本核对并采用。")

    SHEET_MISSING = ("S301", "error", "缺少工作表",
                     "缺少工作表“{value}”（可能被删除或改名），请让乡镇使用下发的原表重新填写。")
    SHEET_ADDED = ("S302", "warning", "多出工作表",
                   "多出工作表“{value}”，已忽略。")
    LOCKED_CELL_CHANGED = ("S303", "error", "锁定单元格被改动",
                           "此单元格不应改动：应为“{expected}”，实际为“{value}”。请让乡镇使用下发的原表，只填写浅黄色单元格。")
    FORMULA_CHANGED = ("S304", "error", "公式被删除或改动",
                       "此处的计算公式被删除或改动（应为 {expected}）。请让乡镇使用下发的原表重新填写。")
    PROTECTION_REMOVED = ("S305", "warning", "工作表保护被取消",
                          "工作表保护被取消。数值已重新核算，但请提醒乡镇不要取消保护。")
    VALIDATION_REMOVED = ("S306", "warning", "数据有效性被删除",
                          "数据有效性被删除（{detail}）。数值已逐项核对，但请提醒乡镇不要粘贴整列数据。")
    LOCKED_CELL_UNLOCKED = ("S307", "warning", "锁定单元格被解除锁定",
                            "此单元格本应锁定，却被解除锁定。")
    IDENTITY_SHEET_VISIBLE = ("S308", "warning", "身份工作表被显示",
                              "隐藏的身份工作表被显示出来。")
    MANY_LOCKED_CELLS_CHANGED = ("S309", "error", "大量锁定单元格被改动",
                                 "另有 {value} 处锁定单元格被改动，可能插入、删除或移动了行。请让乡镇使用下发的原表重新填写。")
    SHEET_NAME_TWICE = ("S310", "error", "工作表重名",
                        "工作簿中不止一个工作表名为“{value}”，不同软件会读到不同的表，无法核对。请让乡镇使用下发的原表重新填写。")
    CELL_TWICE = ("S311", "error", "单元格重复写入",
                  "此单元格在文件中写了不止一次，不同软件显示的内容可能不同，无法核对。请让乡镇使用下发的原表重新填写。")
    ROW_TWICE = ("S312", "warning", "行重复写入",
                 "第 {value} 行在文件中写了不止一次，已按其中每个单元格核对。请提醒乡镇使用下发的原表。")

    SCORE_MISSING = ("V401", "error", "必填得分未填写",
                     "“{label}”未填写得分。请填写 0 到 {limit} 之间的数；不得分请填 0。")
    SCORE_NOT_NUMBER = ("V402", "error", "得分不是数字",
                        "“{label}”的得分“{value}”不是数字。请填写 0 到 {limit} 之间的数。")
    SCORE_OUT_OF_RANGE = ("V403", "error", "得分超出范围",
                          "“{label}”的得分 {value} 超出 0–{limit}，请填写 0 到 {limit} 之间的数。此分未计入，表内的小计和总分以重新核算（不含此分）为准。")
    NUMBER_AS_TEXT = ("V404", "warning", "数字以文本形式填写",
                      "“{label}”的得分“{value}”是以文本形式填写的数字，已按 {detail} 读取。")
    FULL_WIDTH_DIGITS = ("V405", "warning", "使用了全角数字",
                         "“{label}”的得分“{value}”使用了全角字符，已按 {detail} 读取。")
    FORMULA_IN_INPUT = ("V406", "error", "得分单元格中有公式",
                        "“{label}”的得分单元格中填写了公式（{value}），请直接填写数字。此分未计入，表内的小计和总分以重新核算（不含此分）为准。")
    ZERO_ANSWER_INVALID = ("V407", "error", "直接归零项填写无效",
                           "直接归零项“{label}”应选择“是”或“否”，实际为“{value}”。")
    CACHED_TOTAL_DIFFERS = ("V408", "warning", "表内显示的合计与核算不符",
                            "表内显示的{label}为 {value}，按填写内容重新计算为 {expected}。以重新计算的结果为准。")
    REPORTER_MISSING = ("V409", "warning", "未填写填报人",
                        "未填写填报人，请补充，便于联系。")
    PHONE_MISSING = ("V410", "warning", "未填写联系电话",
                     "未填写联系电话，请补充，便于联系。")
    TEXT_TOO_LONG = ("V411", "warning", "文字过长",
                     "“{label}”的文字长度 {value} 个字符，超过 {limit}，只保留前 {limit} 个字符。")
    ERROR_VALUE = ("V412", "error", "单元格为错误值",
                   "“{label}”的得分单元格显示错误值 {value}，请改为 0 到 {limit} 之间的数。")
    ZERO_OUT_MARKED = ("V413", "warning", "选择了直接归零",
                       "直接归零项“{label}”选择了“是”，最终得分记 0 分。请核实。")
    TEXT_LIKE_FORMULA = ("V414", "info", "文字像公式",
                         "“{label}”的文字以“{value}”开头，已作为普通文字处理。")
    SCORE_TOO_MANY_DECIMALS = ("V415", "error", "得分小数位数过多",
                               "“{label}”的得分 {value} 小数位数过多：本次考核得分{limit}。请改为 {expected} 这样的数后重新填写。")
    VALUE_AND_TEXT = ("V416", "error", "一个单元格里既有数值又有文字",
                      "此单元格同时写有数值和文字（或同一内容写了两次），不同软件显示不一（LibreOffice 显示为空），无法核对。请让乡镇清除此单元格后重新填写。")
    NOTE_MISSING = ("V417", "warning", "有扣分（或加分、减分）而未写扣分说明（级别由设置 missing_note_severity 决定）",
                    "编号 {value} 一行{detail}，但“扣分说明”为空。请在此单元格写明{expected}。")
    ZERO_ANSWER_BLANK = ("V418", "warning", "直接归零项未选择",
                         "编号 {value}（直接归零项）未选择“是”或“否”，已按“否”计分。请在此单元格选择“是”或“否”。")
    FEEDBACK_NOT_OURS = ("V430", "error", "反馈单身份不明或被改动",
                         "这不是本轮下发的反馈单，或其身份信息被改动（{detail}）。请让乡镇在下发的反馈单上填写后报回。")
    FEEDBACK_STALE = ("V431", "error", "反馈单已过期",
                      "这份反馈单是按较早的考核结果生成的，之后已重新下发。请让乡镇在最新下发的反馈单上填写。")
    FEEDBACK_LOCKED_CHANGED = ("V432", "error", "反馈单的锁定内容被改动",
                               "此单元格应为“{expected}”，实际为“{value}”。反馈单中只能填写浅黄色单元格，请让乡镇在下发的反馈单上重新填写。")
    FEEDBACK_PROTECTION_REMOVED = ("V433", "error", "反馈单的保护或有效性被取消",
                                   "{detail}。请让乡镇在下发的反馈单上重新填写。")
    FEEDBACK_MEASURE_MISSING = ("V434", "error", "未填写整改措施",
                                "“{label}”失分，未填写整改措施，请补充。")
    FEEDBACK_DEADLINE_MISSING = ("V435", "error", "未填写整改时限",
                                 "“{label}”失分，未填写整改时限，请填写完成整改的日期，如 {expected}。")
    FEEDBACK_DEADLINE_INVALID = ("V436", "error", "整改时限不是有效日期",
                                 "“{label}”的整改时限“{value}”不是有效日期，请填写 {expected} 这样的日期。")
    FEEDBACK_OWNER_MISSING = ("V437", "error", "未填写整改责任人",
                              "“{label}”失分，未填写整改责任人，请补充。")
    FEEDBACK_AMONG_RETURNS = ("V439", "error", "反馈单放进了收回文件夹",
                              "这是{value}的考核结果反馈单，不是考核表：请把它放入本轮的 反馈/ 文件夹，再运行 xlsx-assess check。")

    REVIEW_REASON_MISSING = ("V420", "error", "核定分改动而未写核定说明",
                             "编号 {value} 的核定分为 {detail}，与自评分 {expected} 不同，但“核定说明”为空。请写明核定理由（扣分原因）。")
    REVIEW_SCORE_INVALID = ("V421", "error", "核定分无效",
                            "编号 {value} 的核定分“{detail}”无效：{expected}。")
    REVIEW_UNSIGNED = ("V422", "warning", "核定表未签署",
                       "核定表尚未填写{value}，视为尚未核定完成。请填写后保存。")

    SUPERSEDED = ("C501", "warning", "被同一乡镇更新的文件替代",
                  "同一乡镇有更新的文件“{value}”，本文件未采用。")
    IDENTICAL_COPY = ("C502", "info", "完全相同的副本",
                      "与“{value}”内容完全相同，已合并。")
    TOWNSHIP_MISSING = ("C503", "error", "乡镇未提交",
                        "未提交：没有收到可用的考核表，请催报。")
    SAME_ENTRIES = ("C504", "error", "与另一乡镇填写内容相同",
                    "填写内容与“{value}”（{detail}）的文件完全相同，疑似照抄或发错文件，请核实。")
    SETUP_YEAR_SUSPECT = ("C505", "error", "考核设置的年度可能有误",
                          "收到的 {value} 个考核表都是 {detail} 年度的，而考核设置为 {expected} 年度：很可能是考核设置中的"
                          "考核年度填错了。请先核对考核设置，不要逐一通知乡镇。")
    SETUP_RUBRIC_SUSPECT = ("C506", "error", "考核设置的评分细则可能有误",
                            "收到的 {value} 个考核表都是用同一份另一版本的评分细则生成的，与考核设置中的评分细则不一致："
                            "很可能是考核设置中的评分细则被改动过或选错了。请先核对评分细则，不要逐一通知乡镇。")
    LEDGER_UNREADABLE = ("C507", "error", "本轮收件记录无法打开",
                         "本轮的收件记录无法打开：{detail}。")
    LEDGER_BUSY = ("C510", "error", "本轮收件记录被占用",
                   "本轮的收件记录在 {value} 秒内一直被另一个 xlsx-assess 命令或网页占用，本次结果未能记录。"
                   "收到的文件都还在，没有丢失：请等另一个命令结束后重新运行。")
    NOTHING_TO_RANK = ("C508", "error", "没有可排名的乡镇",
                       "没有一个乡镇的考核表已合格，未生成排名。{detail}")
    REVIEW_STALE = ("C509", "warning", "核定表已过期",
                    "本核定表依据{value}的自评文件（SHA-256 前 12 位 {detail}）制作，而该乡镇现在采用的是{expected}。"
                    "请运行 xlsx-assess review --refresh 重新生成核定表。")


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
