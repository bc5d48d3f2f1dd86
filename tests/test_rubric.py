"""The rubric loader: the bundled rubric, encodings, every problem located, the fingerprint."""

from __future__ import annotations

import csv
import re

import pytest

from conftest import ROOT, SMALL_RUBRIC
from xlsx_assess.issues import AssessError
from xlsx_assess.rubric import load_rubric, parse_rubric, read_rubric


def rubric_problems(text: str) -> list[tuple[str, int | None, str]]:
    """Codes, lines and columns of a rubric's problems: what these tests assert on."""
    _, report = parse_rubric(text)
    return [(i.code, i.line, i.column) for i in report.issues]
from xlsx_assess.settings import DEFAULTS

BUNDLED = DEFAULTS / "rubric.csv"


def small(*edits: tuple[str, str]) -> str:
    """SMALL_RUBRIC with each (old, new) replaced exactly once: the old text must be there."""
    text = SMALL_RUBRIC
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def lines(*rows: str) -> str:
    """A rubric from the SMALL_RUBRIC header and the given data lines."""
    return "\n".join([SMALL_RUBRIC.splitlines()[0], *rows]) + "\n"


def parsed(text: str):
    rubric, report = parse_rubric(text)
    assert rubric is not None, [(i.code, i.line, i.column) for i in report]
    return rubric


# -- the bundled rubric ---------------------------------------------------------------------------

def test_bundled_rubric_loads_with_the_forms_shape():
    rubric, report = read_rubric()
    assert rubric is not None and len(report) == 0
    assert len(rubric.items) == 67
    assert (len(rubric.base), len(rubric.bonus), len(rubric.deduction)) == (59, 3, 4)
    assert len(rubric.of_kind("zero")) == 1 and rubric.zero.id == "S08"
    assert sum(i.points for i in rubric.base) == 100  # exactly, not merely close
    ids = [i.id for i in rubric.items]
    assert len(set(ids)) == len(ids)


def test_bundled_rubric_keeps_the_forms_order():
    rubric = load_rubric()
    first, last = rubric.items[0], rubric.items[-1]
    assert (first.id, first.category) == ("A01", "组织领导")
    assert (last.id, last.kind) == ("S08", "zero")
    # Same order as the file itself, read independently of the loader.
    with BUNDLED.open(encoding="utf-8-sig", newline="") as f:
        assert [i.id for i in rubric.items] == [row["id"] for row in csv.DictReader(f)]


def test_bundled_rubric_line_without_criterion():
    [item] = [i for i in load_rubric().items if i.indicator == "加强经费保障"]
    assert item.criterion == ""
    assert item.label == f"{item.id} 加强经费保障"


@pytest.mark.parametrize("copy, bundled", [
    ("rubric.csv", "rubric.csv"),
    ("templates/townships.csv", "townships.csv"),
    ("templates/settings.toml", "settings.toml"),
])
def test_top_level_copies_match_the_bundled_defaults(copy, bundled):
    assert (ROOT / copy).read_bytes() == (DEFAULTS / bundled).read_bytes(), \
        f"{copy} and xlsx_assess/defaults/{bundled} have drifted apart"


# -- encodings and line endings -------------------------------------------------------------------

ENCODED = {
    "gb18030": lambda t: t.encode("gb18030"),
    "gbk": lambda t: t.encode("gbk"),
    "utf-8-bom": lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
    "utf-8-crlf": lambda t: t.replace("\n", "\r\n").encode("utf-8"),
    "gbk-crlf": lambda t: t.replace("\n", "\r\n").encode("gbk"),
}


@pytest.mark.parametrize("how", ENCODED)
@pytest.mark.parametrize("source", ["bundled", "small"])
def test_rubric_saved_by_excel_or_wps_loads_the_same(tmp_path, how, source):
    text = BUNDLED.read_text(encoding="utf-8-sig") if source == "bundled" else SMALL_RUBRIC
    expected = parsed(text)
    path = tmp_path / "rubric.csv"
    path.write_bytes(ENCODED[how](text))
    rubric, report = read_rubric(path)
    assert len(report) == 0
    assert rubric == expected
    assert rubric.fingerprint == expected.fingerprint


def test_bundled_rubric_saved_as_utf8_bytes_matches_load_rubric(tmp_path):
    path = tmp_path / "rubric.csv"
    path.write_bytes(BUNDLED.read_bytes())
    assert load_rubric(path).fingerprint == load_rubric().fingerprint


def test_header_case_and_spaces_are_forgiven():
    header = SMALL_RUBRIC.splitlines()[0]
    loose = SMALL_RUBRIC.replace(header, " ID , Category,INDICATOR,criterion,Kind ,points,guide,note", 1)
    assert parsed(loose) == parsed(SMALL_RUBRIC)


# -- every problem, located -----------------------------------------------------------------------

BAD = {
    "missing column": (small((",kind,points,", ",points,")), [("R102", 1, "kind")]),
    "two missing columns": (small((",criterion,kind,points,", ",criterion,")),
                            [("R102", 1, "kind"), ("R102", 1, "points")]),
    "renamed column": (small((",points,guide", ",score,guide")), [("R102", 1, "points"), ("R103", 1, "score")]),
    "unknown kind": (small(("发布解读,base", "发布解读,basic")), [("R104", 3, "kind")]),
    "empty kind": (small(("发布解读,base", "发布解读,")), [("R104", 3, "kind")]),
    "points not a number": (small(("建立制度,base,50", "建立制度,base,五十")), [("R105", 4, "points")]),
    "points empty": (small(("建立制度,base,50", "建立制度,base,")), [("R105", 4, "points")]),
    "points not finite": (small(("建立制度,base,50", "建立制度,base,nan")), [("R105", 4, "points")]),
    "points negative": (small(("负面报道,deduction,5", "负面报道,deduction,-5")), [("R106", 6, "points")]),
    "duplicate id": (small(("B01,", "A02,")), [("R107", 4, "id")]),
    "empty category": (small(("B01,制度建设,", "B01,,")), [("R108", 4, "category")]),
    "blank category": (small(("B01,制度建设,", "B01,  ,")), [("R108", 4, "category")]),
    "empty indicator": (small(("制度建设,信息公开制度,", "制度建设,,")), [("R109", 4, "indicator")]),
    "base not 100": (small(("建立制度,base,50", "建立制度,base,49.5")), [("R110", None, "points")]),
    "two zero lines": (small(("负面报道,deduction,5", "负面报道,zero,0")), [("R111", None, "")]),
    "empty id": (small(("B01,制度建设", ",制度建设")), [("R112", 4, "id")]),
    "category not contiguous": (
        lines("A01,组织领导,主要负责人亲自抓,听取专题汇报,base,40,,",
              "B01,制度建设,信息公开制度,建立制度,base,50,,",
              "A02,组织领导,分管领导具体抓,发布解读,base,10,,"),
        [("R113", 4, "category")]),
    "indicator not contiguous": (
        lines("A01,组织领导,主要负责人亲自抓,听取专题汇报,base,40,,",
              "A02,组织领导,分管领导具体抓,列入分工,base,5,,",
              "A03,组织领导,主要负责人亲自抓,发布解读,base,5,,",
              "B01,制度建设,信息公开制度,建立制度,base,50,,"),
        [("R113", 4, "indicator")]),
    "empty file": ("", [("R114", None, "")]),
    "only blank lines": ("\n\n,,,\n", [("R114", None, "")]),
    "header only": (SMALL_RUBRIC.splitlines()[0] + "\n", [("R114", None, "")]),
    "text too long": (small(("未听取不得分", "长" * 1001)), [("R116", 2, "guide")]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_rubric_reports_code_line_and_column(case):
    text, expected = BAD[case]
    assert rubric_problems(text) == expected
    rubric, report = parse_rubric(text)
    assert rubric is None and not report.ok


def test_same_indicator_name_in_another_category_is_not_a_repeat():
    text = lines("A01,组织领导,制度,听取专题汇报,base,50,,",
                 "B01,制度建设,制度,建立制度,base,50,,")
    assert rubric_problems(text) == []


def test_unknown_column_is_a_warning_and_the_rubric_still_loads():
    text = small((",guide,note\n", ",guide,note,remarks\n"))
    assert rubric_problems(text) == [("R103", 1, "remarks")]
    rubric, report = parse_rubric(text)
    assert report.ok and report.status == "warning"
    assert rubric == parsed(SMALL_RUBRIC)


def test_trailing_empty_header_columns_are_not_unknown():
    # Excel keeps trailing commas when a sheet once had wider content.
    text = SMALL_RUBRIC.replace("\n", ",,\n")
    assert rubric_problems(text) == []
    assert parsed(text) == parsed(SMALL_RUBRIC)


def test_zero_line_with_points_is_a_warning_and_counts_as_zero():
    text = small(("弄虚作假,zero,0", "弄虚作假,zero,5"))
    assert rubric_problems(text) == [("R115", 7, "points")]
    assert parsed(text).zero.points == 0


def test_duplicate_id_is_reported_on_the_second_line_only():
    text = small(("S02,", "A01,"))
    assert rubric_problems(text) == [("R107", 6, "id")]


def test_several_problems_are_reported_at_once():
    text = small(
        (",guide,note\n", ",guide,note,remarks\n"),        # line 1: unknown column (warning)
        ("发布解读,base", "发布解读,basic"),                 # line 3: unknown kind
        ("建立制度,base,50", "建立制度,base,五十"),          # line 4: points not a number
        ("S01,特别项", "A01,特别项"),                        # line 5: duplicate of A01
        ("特别项,特别减分项,", "特别项,,"),                  # line 6: empty indicator
        ("S03,", ","),                                       # line 7: empty id
    )
    assert rubric_problems(text) == [
        ("R103", 1, "remarks"),
        ("R104", 3, "kind"),
        ("R105", 4, "points"),
        ("R107", 5, "id"),
        ("R109", 6, "indicator"),
        ("R112", 7, "id"),
    ]


def test_several_problems_on_one_line_are_all_reported():
    text = small(("B01,制度建设,信息公开制度,建立制度,base,50", ",,,建立制度,bas,-50"))
    assert rubric_problems(text) == [
        ("R112", 4, "id"), ("R108", 4, "category"), ("R109", 4, "indicator"),
        ("R104", 4, "kind"), ("R106", 4, "points"),
    ]


def test_problems_carry_the_file_name(tmp_path):
    path = tmp_path / "细则.csv"
    path.write_text(small(("B01,", "A01,")), encoding="utf-8")
    _, report = read_rubric(path)
    assert [(i.code, i.file, i.line, i.column) for i in report] == [("R107", "细则.csv", 4, "id")]


def test_line_numbers_count_blank_lines():
    text = lines("A01,组织领导,主要负责人亲自抓,听取专题汇报,base,50,,",
                 "",
                 "A01,组织领导,主要负责人亲自抓,发布解读,base,50,,")
    assert rubric_problems(text) == [("R107", 4, "id")]


def test_line_numbers_count_lines_inside_quoted_cells():
    text = lines('A01,组织领导,主要负责人亲自抓,听取专题汇报,base,50,"第一行\n第二行",',
                 "A01,组织领导,主要负责人亲自抓,发布解读,base,50,,")
    assert rubric_problems(text) == [("R107", 4, "id")]


# -- load_rubric / read_rubric on files -----------------------------------------------------------

def test_load_rubric_raises_with_the_full_report(tmp_path):
    path = tmp_path / "rubric.csv"
    path.write_text(small(("B01,", "A01,"), ("发布解读,base", "发布解读,basic")), encoding="utf-8")
    with pytest.raises(AssessError) as caught:
        load_rubric(path)
    assert [(i.code, i.line, i.column) for i in caught.value.report] == [("R104", 3, "kind"), ("R107", 4, "id")]


def test_load_rubric_accepts_warnings(tmp_path):
    path = tmp_path / "rubric.csv"
    path.write_text(small((",guide,note\n", ",guide,note,remarks\n")), encoding="utf-8")
    assert load_rubric(path) == parsed(SMALL_RUBRIC)


def test_missing_file_is_r101(tmp_path):
    path = tmp_path / "nope.csv"
    rubric, report = read_rubric(path)
    assert rubric is None
    assert [(i.code, i.file) for i in report] == [("R101", "nope.csv")]
    with pytest.raises(AssessError) as caught:
        load_rubric(path)
    assert [i.code for i in caught.value.report] == ["R101"]


def test_undecodable_file_is_r101(tmp_path):
    # Excel's "Unicode text" is UTF-16: neither UTF-8 nor GB18030.
    path = tmp_path / "rubric.csv"
    path.write_bytes(b"\xff\xfe" + SMALL_RUBRIC.encode("utf-16-le"))
    _, report = read_rubric(path)
    assert [i.code for i in report] == ["R101"]


def test_directory_instead_of_file_is_r101(tmp_path):
    _, report = read_rubric(tmp_path)
    assert [i.code for i in report] == ["R101"]


# -- fingerprint ----------------------------------------------------------------------------------

CHANGES = {
    "id": ("B01,", "B02,"),
    "category": ("B01,制度建设", "B01,制度建设工作"),
    "indicator": ("信息公开制度", "信息公开制度建设"),
    "criterion": ("建立制度", "建立健全制度"),
    "kind": ("正面报道,bonus", "正面报道,deduction"),
    "points": ("正面报道,bonus,3", "正面报道,bonus,3.5"),
    "base points": ("听取专题汇报,base,40", "听取专题汇报,base,39.5"),
    "guide": ("缺一项扣10", "缺一项扣5"),
    "note": ("发布解读,base,10,,", "发布解读,base,10,,须有记录"),
    "order": None,
}


@pytest.mark.parametrize("change", CHANGES)
def test_fingerprint_changes_with_any_text_or_points(change):
    if change == "order":
        rows = SMALL_RUBRIC.splitlines()
        text = "\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n"
    elif change == "base points":
        text = small(CHANGES[change], ("发布解读,base,10", "发布解读,base,10.5"))
    else:
        text = small(CHANGES[change])
    assert parsed(text).fingerprint != parsed(SMALL_RUBRIC).fingerprint


def test_fingerprint_ignores_whitespace_around_fields():
    spaced = "\n".join(", ".join(f" {field}\t" for field in row.split(","))
                       for row in SMALL_RUBRIC.splitlines()) + "\n"
    quoted = "\n".join(",".join(f'" {field} "' for field in row.split(","))
                       for row in SMALL_RUBRIC.splitlines()) + "\n"
    for text in (spaced, quoted):
        assert parsed(text) == parsed(SMALL_RUBRIC)
        assert parsed(text).fingerprint == parsed(SMALL_RUBRIC).fingerprint


def test_fingerprint_ignores_how_points_are_written():
    text = small(("听取专题汇报,base,40", "听取专题汇报,base,40.0"), ("正面报道,bonus,3", "正面报道,bonus,+3"))
    assert parsed(text).fingerprint == parsed(SMALL_RUBRIC).fingerprint


def test_fingerprint_is_a_sha256_hex_and_stable():
    fp = parsed(SMALL_RUBRIC).fingerprint
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert fp == parsed(SMALL_RUBRIC).fingerprint


def test_fingerprint_same_for_crlf_with_a_multiline_cell():
    text = small(("未听取不得分", '"未听取\n不得分"'))
    assert parsed(text.replace("\n", "\r\n")).fingerprint == parsed(text).fingerprint


@pytest.mark.parametrize("text, expected", [
    ("id,category,indicator,criterion,kind,points\nA01,a,b," + "长" * 200_000 + ",base,100\n", [("R101", 2, "")]),
    ("id,category,indicator,criterion,kind,points\nA01,a,b,c,base,50\nA02,a,b,\"" + "x" * 200_000 + "\n",
     [("R101", 3, "")]),
    ("id,category,indicator,criterion,kind,points\nA01,a,b," + "长" * 100_000 + ",base,100\n", [("R116", 2, "criterion")]),
], ids=["over the csv field limit", "an unclosed quote to the end", "over MAX_TEXT"])
def test_a_huge_line_is_located_not_a_traceback(text, expected):
    rubric, report = parse_rubric(text)
    assert rubric is None and [(i.code, i.line, i.column) for i in report.issues] == expected


def test_bundled_rubric_has_a_bom_so_excel_on_chinese_windows_opens_it():
    assert BUNDLED.read_bytes().startswith(b"\xef\xbb\xbf")
    assert (ROOT / "rubric.csv").read_bytes().startswith(b"\xef\xbb\xbf")


CHINESE_HEADER = "编号,内容,一级指标,二级指标,类型,分值,评分标准,备注"
KIND_ZH = {"base": "基础项", "bonus": "加分项", "deduction": "减分项", "zero": "归零项"}


def _chinese(text: str) -> str:
    """SMALL_RUBRIC with Chinese headers and kinds, points written "N分" and spaces around, as WPS users type."""
    rows = list(csv.reader(text.splitlines()))
    out = [CHINESE_HEADER]
    for row in rows[1:]:
        row[4] = KIND_ZH[row[4]] + " "
        row[5] = f" {row[5]}分"
        out.append(",".join(f'"{c}"' for c in row))
    return "\n".join(out) + "\n"


def test_chinese_headers_kinds_and_points_with_fen_read_the_same():
    assert parsed(_chinese(SMALL_RUBRIC)) == parsed(SMALL_RUBRIC)


def test_full_width_points_and_kind_aliases_read():
    text = small(("建立制度,base,50", "建立制度,基础项,５０"))
    assert parsed(text) == parsed(SMALL_RUBRIC)


def test_a_problem_in_a_chinese_csv_names_the_chinese_column():
    text = _chinese(SMALL_RUBRIC).replace("加分项 ", "奖励", 1)
    assert [(i.code, i.column) for i in parse_rubric(text)[1].issues] == [("R104", "类型")]
    missing = _chinese(SMALL_RUBRIC).replace(",分值,", ",分数,", 1)
    assert ("R102", "分值") in [(i.code, i.column) for i in parse_rubric(missing)[1].issues]


def test_bom_and_no_bom_read_the_same(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(SMALL_RUBRIC.encode("utf-8-sig"))
    b.write_bytes(SMALL_RUBRIC.encode("utf-8"))
    assert load_rubric(a) == load_rubric(b)
