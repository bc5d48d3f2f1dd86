"""Check one returned workbook against what the generator wrote for its township.

Never trust a returned file: the identity is verified, every locked cell is compared with the
layout, every input is validated and every total is recomputed in Python (`scoring`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from . import scoring
from .scoring import cell_text
from .changes import compatible, describe, diff_rubrics
from .issues import Code, Issue, Report, issue, status_of
from .layout import (COL_EVIDENCE, COL_NOTE, COL_SCORE, FEEDBACK_MARK, FORM_MARK, FORM_SHEET, GUIDE_SHEET, IDENTITY_KEYS, META_SHEET, SHEETS, CellSpec,
                     FormLayout, a1, computed_cells, form_id, form_layout, position)
from .reader import Returned
from .rubric import Rubric, format_points
from .settings import Settings, Township

NAME_MATCH_ROSTER = 200   # above this many townships names repeat (many 城关镇): match file names by code only
MAX_CHANGED = 20          # locked-cell differences listed one by one before they are summed up
MAX_NOTE = 32767          # what a spreadsheet cell can hold
ERROR_VALUES = ("#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!", "#GETTING_DATA", "#SPILL!",
                "#CALC!")
INJECTION_START = ("=", "+", "-", "@", "\t", "\r")
# A score typed as text counts when it reads as a person means it: ASCII digits, at most one point,
# spaces around. Full-width digits, point and space (and 。, typed for a point in a Chinese input
# method) are read as their ASCII twins, with a warning; anything else is not a number.
FULL_WIDTH = str.maketrans({**{chr(0xFF10 + k): str(k) for k in range(10)}, "．": ".", "。": ".", "\u3000": " "})
TYPED_NUMBER = re.compile(r"[ \t\r\n]*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t\r\n]*")


@dataclass
class Context:
    """What returned files are checked against: the current rubric, settings and roster."""

    rubric: Rubric
    settings: Settings
    townships: list[Township]
    # Other rubric versions forms of this round were made from (a round keeps them), by fingerprint: a
    # return made from one that differs in wording only is checked against it; any other is told by its
    # changes, not its hash.
    versions: dict[str, Rubric] = field(default_factory=dict)

    @cached_property
    def roster(self) -> dict[str, Township]:
        return {t.code: t for t in self.townships}

    def layout(self, code: str, rubric: Rubric | None = None) -> FormLayout:
        """The township's layout (from `rubric`, default the current one): cheap to make from the rubric's
        template, so it is not kept."""
        return form_layout(rubric or self.rubric, self.roster[code], self.settings)


class ItemScores(Mapping[str, "float | None"]):
    """Item id -> score (None: blank) of one file, held as a tuple in the rubric's order beside an index
    shared by every file: a dict per file would cost four times the memory at a province's scale."""

    __slots__ = ("_index", "_scores")
    # rubric ids -> their index. Memory bound: keyed by the county's rubrics (a few hundred ids each, under
    # 64 KB with the index), at most `MAX_INDEXES` of them: 0.5 MB. Files never add a key.
    _INDEXES: dict[tuple[str, ...], dict[str, int]] = {}
    MAX_INDEXES = 8

    def __init__(self, ids: tuple[str, ...], scores: tuple) -> None:
        index = self._INDEXES.get(ids)
        if index is None:
            if len(self._INDEXES) >= self.MAX_INDEXES:
                self._INDEXES.clear()          # earlier files keep their own index object
            index = self._INDEXES[ids] = {item_id: k for k, item_id in enumerate(ids)}
        self._index, self._scores = index, scores

    @classmethod
    def of(cls, ids: tuple[str, ...], values: Mapping[str, float | None]) -> "ItemScores":
        """From a mapping whose keys are among `ids` (absent ones stay absent)."""
        return cls(ids, tuple(values.get(i, ...) for i in ids))      # ... (Ellipsis) marks an absent id

    def __getitem__(self, item_id: str) -> float | None:
        value = self._scores[self._index[item_id]]
        if value is ...:
            raise KeyError(item_id)
        return value

    def get(self, item_id: str, default=None):     # what scoring asks for every item: spared Mapping's try/except
        k = self._index.get(item_id)
        if k is None:
            return default
        value = self._scores[k]
        return default if value is ... else value

    def __iter__(self) -> Iterator[str]:
        return (i for i, v in zip(self._index, self._scores) if v is not ...)

    def __len__(self) -> int:
        return sum(v is not ... for v in self._scores)

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self):
        return ItemScores, (tuple(self._index), self._scores)


@dataclass(slots=True)
class Entries:
    """What a township entered, as read and cleaned."""

    values: Mapping[str, float | None] = field(default_factory=dict)    # item id -> score
    zeroed: bool = False
    notes: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    reporter: str = ""
    phone: str = ""
    invalid: frozenset[str] = frozenset()   # lines whose entry the form does not accept (scoring.line_state)
    zero_blank: bool = False                # the zero-out line left blank (read as 否)

    def fingerprint(self) -> bytes:
        """What two files must share to count as copies of each other: a digest of everything entered
        (repr keeps every float exactly), so a province's worth of them stays small."""
        entered = (tuple(sorted(self.values.items(), key=lambda kv: kv[0])), self.zeroed,
                   tuple(sorted(self.notes.items())), tuple(sorted(self.evidence.items())))
        return hashlib.sha256(repr(entered).encode("utf-8")).digest()

    def distinctive(self, rubric: Rubric) -> bool:
        """Enough of its own to make an identical second file suspicious (not just all 0 or full marks)."""
        partial = sum(1 for i in rubric.items if (v := self.values.get(i.id)) is not None and 0 < v < i.points)
        return partial + len(self.notes) + len(self.evidence) >= 3


@dataclass(slots=True)
class Head:
    """A file's outcome, as the collection rules, the counts and the ranking need it: which file, whose,
    when, what became of it. Its status, role and acceptance live here and only here: a verdict answers
    from its head, and a batch keeps every head in memory while most verdicts wait on disk
    (`collect.Results`), so the two cannot disagree."""

    name: str
    sha256: str = ""
    township: Township | None = None
    saved: dt.datetime | None = None
    mtime: dt.datetime | None = None
    scored: bool = False
    role: str = "used"                # used | superseded | duplicate
    errors: int = 0                   # how many issues of each severity its report holds, the rules' included
    warnings: int = 0
    issues: int = 0
    copy_key: bytes | None = None     # digest of the entries, if distinctive enough to flag a copy
    other_version: str = ""           # made for another setup: "year:2027" or "rubric:<sha256>" ("" if not)
    added: list[Issue] | None = None  # issues the collection rules added to a verdict kept on disk

    def count(self, item: Issue) -> None:
        """Count an issue added to the file's report (only `FileReport` and `collect.Results` call this)."""
        self.issues += 1
        if item.severity == "error":
            self.errors += 1
        elif item.severity == "warning":
            self.warnings += 1

    @property
    def status(self) -> str:
        return status_of(self.errors, self.warnings)

    @property
    def accepted(self) -> bool:
        return self.role == "used" and not self.errors and self.scored

    @property
    def when(self) -> dt.datetime | None:
        return self.saved or self.mtime


class FileReport(Report):
    """A file's report: every issue added to it is counted in the file's head as it comes."""

    __slots__ = ("head",)

    def __init__(self, head: Head, issues: Iterable[Issue] = ()) -> None:
        Report.__init__(self)
        self.head = head
        self.extend(issues)

    def add(self, item: Issue) -> None:
        self.issues.append(item)
        self.head.count(item)

    def extend(self, items: Iterable[Issue]) -> None:
        for item in items:
            self.add(item)

    @property
    def status(self) -> str:
        return self.head.status


class FileResult:
    """The verdict on one file: its head (the outcome, see `Head`), what was read and scored, and the
    report of its issues. Status, role and acceptance are its head's."""

    __slots__ = ("head", "format", "entries", "_scores", "report")

    def __init__(self, name: str, sha256: str = "", format: str = "", township: Township | None = None,
                 entries: Entries | None = None, scores: scoring.Scores | None = None,
                 saved: dt.datetime | None = None, mtime: dt.datetime | None = None, role: str = "used",
                 report: Iterable[Issue] = ()) -> None:
        self.head = Head(name, sha256, township, saved, mtime, role=role)
        self.format, self.entries = format, entries
        self.report = FileReport(self.head, report)
        self.scores = scores

    @property
    def scores(self) -> scoring.Scores | None:
        return self._scores

    @scores.setter
    def scores(self, scores: scoring.Scores | None) -> None:
        self._scores = scores
        self.head.scored = scores is not None

    @property
    def township(self) -> Township | None:
        return self.head.township

    @township.setter
    def township(self, township: Township | None) -> None:
        self.head.township = township

    name = property(lambda self: self.head.name)
    sha256 = property(lambda self: self.head.sha256)
    saved = property(lambda self: self.head.saved)
    mtime = property(lambda self: self.head.mtime)
    when = property(lambda self: self.head.when)
    role = property(lambda self: self.head.role)
    status = property(lambda self: self.head.status)
    accepted = property(lambda self: self.head.accepted)

    def add(self, code: str, **fields) -> None:
        self.report.add(issue(code, file=self.name, **fields))

    def with_head(self, head: Head) -> "FileResult":
        """This verdict (read back from disk) under `head`, the one the batch kept in memory: a copy of
        it, with the issues the collection rules added since."""
        self.head = self.report.head = dataclasses.replace(head, added=None)
        self.report.issues.extend(head.added or ())
        return self

    def __repr__(self) -> str:
        return f"FileResult({self.head!r}, format={self.format!r}, scores={self._scores!r}, report={self.report!r})"


def check_returned(ret: Returned, ctx: Context) -> FileResult:
    """Check one file; every problem lands in the result's report, nothing raises."""
    res = FileResult(ret.name, ret.sha256, ret.format, saved=ret.saved, mtime=ret.mtime)
    res.report.extend(ret.issues)
    if not ret.readable:
        return res
    found = _check_identity(ret, ctx, res)
    if found is None:
        return res
    township, made = found
    res.township = township
    lay = ctx.layout(township.code, made)
    if not _check_sheets(ret, res):
        return res
    _check_locked(ret, lay, res)
    _check_structure(ret, lay, res)
    res.entries = _read_entries(ret, lay, res)
    s = ctx.settings
    zeroed = None if res.entries.zero_blank else res.entries.zeroed
    res.scores = scoring.score(ctx.rubric, res.entries.values, zeroed, s, res.entries.invalid)
    _check_cached(ret, lay, res, _explained(lay, res))
    return res


# -- identity -------------------------------------------------------------------------------------

def read_identity(ret: Returned, keys: tuple[str, ...] = IDENTITY_KEYS) -> tuple[dict[str, str], dict[str, str]]:
    """Identity from the document properties and from the hidden sheet (either may be missing)."""
    props = {k: v for k, v in ret.properties.items() if k in keys}
    sheet: dict[str, str] = {}
    for row in ret.values.get(META_SHEET, [])[1:]:
        if len(row) >= 2 and str(row[0]) in keys:
            sheet[str(row[0])] = cell_text(row[1])
    return props, sheet


def claimed_township(ret: Returned, ctx: Context, add, mark: str = FORM_MARK,
                     keys: tuple[str, ...] = IDENTITY_KEYS) -> tuple[dict[str, str], Township | None]:
    """The identity a workbook of ours claims (the hidden sheet's, else the properties') and the roster
    township it names; None (with the issue given to `add(code, **fields)`) when it is not one made as
    `mark` (a form, a 核定表) or names no township on the roster. Properties and sheet must agree."""
    props, sheet = read_identity(ret, keys)
    ident = sheet or props
    if ident.get("xa_form") == FEEDBACK_MARK and mark != FEEDBACK_MARK:   # a 反馈单 (feedback_book) in the wrong folder
        add(Code.FEEDBACK_AMONG_RETURNS, value=ident.get("xa_township", ""))
        return ident, None
    if ident.get("xa_form") != mark:
        add(Code.NO_IDENTITY)
        return ident, None
    if props and sheet:
        differ = [k for k in keys if props.get(k) != sheet.get(k) and k != "xa_tool_version"]
        if differ:
            add(Code.IDENTITY_ALTERED, sheet=META_SHEET, detail="文档属性与隐藏表不一致：" + "、".join(differ))
    code, name = ident.get("xa_township_code", ""), ident.get("xa_township", "")
    township = ctx.roster.get(code)
    if township is None:
        add(Code.IDENTITY_TOWNSHIP_UNKNOWN, sheet=META_SHEET, value=f"{name}（{code}）")
        return ident, None
    if name != township.name:
        add(Code.TOWNSHIP_NAME_MISMATCH, sheet=META_SHEET, value=code, expected=township.name, detail=name)
    return ident, township


def _check_identity(ret: Returned, ctx: Context, res: FileResult) -> tuple[Township, Rubric] | None:
    """The township a return is from and the rubric it is checked against (`_made_from`); None for a file
    of no township, or of another year or rubric (its issues added)."""
    ident, township = claimed_township(ret, ctx, res.add)
    if township is None:
        return None
    code = township.code
    if ident.get("xa_year") != str(ctx.settings.year):
        res.add(Code.WRONG_YEAR, sheet=META_SHEET, value=ident.get("xa_year", "?"), expected=ctx.settings.year)
        return _other_version(res, township, "year:" + ident.get("xa_year", "?"))
    made = _made_from(ident, ctx)
    if made is None:
        sha = ident.get("xa_rubric_sha256", "?")
        old = ctx.versions.get(sha)
        detail = ("与本次考核的评分细则相比：" + describe(diff_rubrics(old, ctx.rubric)) if old is not None
                  else "不是本次考核下发时用的任何一版")
        res.add(Code.WRONG_RUBRIC, sheet=META_SHEET, detail=detail)
        return _other_version(res, township, "rubric:" + sha)
    if made is not ctx.rubric:
        res.add(Code.OLD_WORDING, sheet=META_SHEET, detail=describe(diff_rubrics(made, ctx.rubric), limit=3))
    if ident.get("xa_form_id") != form_id(made, township, ctx.settings.year):
        res.add(Code.IDENTITY_ALTERED, sheet=META_SHEET, detail="表单编号不符")
    other = _named_in_file_name(ret.name, ctx)
    if other is not None and other.code != code:
        res.add(Code.FILE_NAME_DISAGREES, value=other.name, expected=township.name)
    return township, made


def _made_from(ident: dict[str, str], ctx: Context) -> Rubric | None:
    """The rubric a return (its identity `ident`) is checked against: the current one, or the version it was
    made from where that differs in wording only; None for any other."""
    sha = ident.get("xa_rubric_sha256")
    if sha == ctx.rubric.fingerprint:
        return ctx.rubric
    old = ctx.versions.get(sha or "")
    return old if old is not None and compatible(old, ctx.rubric) else None


def _other_version(res: FileResult, township: Township, version: str) -> None:
    """A form made for another year or rubric is still its township's (需改正：用了旧表), but not checked
    further: None, so that nothing is read against the wrong layout."""
    res.township = township
    res.head.other_version = version
    return None


def name_unread(res: FileResult, ctx: Context) -> FileResult:
    """A file that could not be read at all is put down to the township its name points to, if any: the
    township then has a file with errors (名单上显示“文件有错误，未采用”), not none received."""
    if res.township is None and not res.format:
        res.township = _named_in_file_name(res.name, ctx)
    return res


def _named_in_file_name(name: str, ctx: Context) -> Township | None:
    """The township a file name points to, if it names exactly one: by a code in it, or (for a roster
    small enough that names are unique, like a county's) by a name in it."""
    base = re.split(r"[/\\›]", name)[-1]
    hits = {ctx.roster[d].code: ctx.roster[d] for d in re.findall(r"\d+", base) if d in ctx.roster}
    if not hits and len(ctx.townships) <= NAME_MATCH_ROSTER:
        named = sorted((t for t in ctx.townships if t.name in base), key=lambda t: -len(t.name))
        hits = {t.code: t for t in named[:1]}
    return next(iter(hits.values())) if len(hits) == 1 else None


# -- structure ------------------------------------------------------------------------------------

def _check_sheets(ret: Returned, res: FileResult) -> bool:
    return check_sheets(ret, res.add)


def check_sheets(ret: Returned, add, sheets: tuple[str, ...] = SHEETS, main: str = FORM_SHEET) -> bool:
    """Every sheet of ours there (a form's `sheets` by default), none added, the identity sheet hidden:
    issues to `add(code, **fields)`; whether the `main` sheet, the one read, is there."""
    for name in sheets:               # the identity sheet too: deleting a very hidden sheet is deliberate
        if name not in ret.sheets:
            add(Code.SHEET_MISSING, sheet=name, value=name)
    for name in ret.sheets:
        if name not in sheets:
            add(Code.SHEET_ADDED, sheet=name, value=name)
    if ret.sheets.get(META_SHEET) == "visible":
        add(Code.IDENTITY_SHEET_VISIBLE, sheet=META_SHEET)
    return main in ret.sheets


@dataclass
class _Plan:
    """What the checks need of a layout, derived once per rubric and settings (not per township)."""

    values: list[tuple[str, list[tuple[int, int]], list[Any]]]   # per sheet: locked value cells, their values
    formulas: list[tuple[str, str, str]]                          # (sheet, A1, formula) of locked formula cells
    locked: dict[str, frozenset[str]]                             # sheet -> A1 of the locked value cells
    form_inputs: dict[tuple[int, int], str]                       # (row, col) -> A1 of the form sheet's inputs
    items: list[tuple[Any, int, str, str, str]]                   # (item, row, score, note, evidence A1)


def _plan(lay: FormLayout) -> _Plan:
    plan = lay.shared.get("check")
    if plan is None:
        personal = set(lay.personal)
        values: dict[str, tuple[list, list]] = {}
        formulas, locked, inputs = [], {}, {}
        for k, cell in enumerate(lay.cells):
            if cell.is_input:
                if cell.sheet == FORM_SHEET:
                    inputs[cell.row, cell.col] = cell.ref
            elif cell.sheet == META_SHEET:
                continue
            elif cell.formula is not None:
                formulas.append((cell.sheet, cell.ref, cell.formula))
            elif cell.value is not None:
                locked.setdefault(cell.sheet, set()).add(cell.ref)
                if k not in personal:
                    coords, expected = values.setdefault(cell.sheet, ([], []))
                    coords.append((cell.row, cell.col))
                    expected.append(cell.value)
        items = [(i, row, a1(row, COL_SCORE), lay.note_cell(i.id), lay.evidence_cell(i.id))
                 for i in lay.rubric.items for row in (lay.item_rows[i.id],)]
        plan = lay.shared["check"] = _Plan([(sheet, *v) for sheet, v in values.items()], formulas,
                                           {sheet: frozenset(refs) for sheet, refs in locked.items()}, inputs, items)
    return plan


def _locked_intact(ret: Returned, lay: FormLayout) -> bool:
    """True when every locked cell is as written and still locked: the common case, told apart from the
    rest in bulk. False means "look cell by cell", not that something is wrong."""
    plan = _plan(lay)
    for sheet, coords, expected in plan.values:
        if sheet in ret.sheets:
            rows = ret.values.get(sheet, [])
            try:
                actual = [rows[r][c] for r, c in coords]
            except IndexError:
                return False
            if actual != expected or bool in map(type, actual):     # True == 1 for a list, not for us
                return False
    for k in lay.personal:
        cell = lay.cells[k]
        if cell.sheet != META_SHEET and cell.sheet in ret.sheets and not same_value(
                cell.value, ret.value(cell.sheet, cell.row, cell.col)):
            return False
    if ret.xml is not None:
        for sheet, ref, formula in plan.formulas:
            if sheet in ret.sheets and sheet in ret.xml and ret.xml[sheet].formulas.get(ref) != formula:
                return False
        for sheet, refs in plan.locked.items():
            if sheet in ret.sheets and sheet in ret.xml and not refs.isdisjoint(ret.xml[sheet].unlocked):
                return False
    return True


def _check_locked(ret: Returned, lay: FormLayout, res: FileResult) -> None:
    if _locked_intact(ret, lay):
        return
    changed = locked_changes(ret, lay.locked(), res.name)
    res.report.extend(changed[:MAX_CHANGED])
    if len(changed) > MAX_CHANGED:
        res.add(Code.MANY_LOCKED_CELLS_CHANGED, sheet=FORM_SHEET, value=len(changed) - MAX_CHANGED)


def locked_changes(ret: Returned, cells: Iterable[CellSpec], name: str) -> list[Issue]:
    """Every locked cell of `cells` (the identity sheet's aside) whose value or formula is not as written,
    or that was unlocked: the seal of a form or of a 核定表, cell by cell."""
    changed: list[Issue] = []
    for cell in cells:
        if cell.sheet == META_SHEET or cell.sheet not in ret.sheets:
            continue
        if cell.formula is not None:
            problem = _formula_problem(ret, cell)
            if problem:
                changed.append(issue(Code.FORMULA_CHANGED, file=name, sheet=cell.sheet, cell=cell.ref, expected=problem))
            continue
        if cell.value is None:
            continue
        actual = ret.value(cell.sheet, cell.row, cell.col)
        if not same_value(cell.value, actual):
            changed.append(issue(Code.LOCKED_CELL_CHANGED, file=name, sheet=cell.sheet, cell=cell.ref,
                                 expected=_show(cell.value), value=_show(actual)))
        elif ret.is_locked(cell.sheet, cell.ref) is False:
            changed.append(issue(Code.LOCKED_CELL_UNLOCKED, file=name, sheet=cell.sheet, cell=cell.ref))
    return changed


def _formula_problem(ret: Returned, cell: CellSpec) -> str:
    """'' when the formula is intact (or the format cannot tell), else the expected formula."""
    if ret.xml is None or cell.sheet not in ret.xml:
        return ""
    actual = ret.xml[cell.sheet].formulas.get(cell.ref)
    if actual is None:
        return "=" + cell.formula
    if actual == "":                      # a shared formula's follower: the text lives elsewhere
        return ""
    return "" if normalize_formula(actual) == normalize_formula(cell.formula) else "=" + cell.formula


def normalize_formula(text: str) -> str:
    text = re.sub(r"_xlfn\.|_xlws\.|\$|\s", "", text.lstrip("="))
    return text.upper()


def _check_structure(ret: Returned, lay: FormLayout, res: FileResult) -> None:
    if ret.xml is None:
        return
    for sheet in (GUIDE_SHEET, FORM_SHEET):
        if sheet in ret.xml and not ret.xml[sheet].protected:
            res.add(Code.PROTECTION_REMOVED, sheet=sheet)
    form = ret.xml.get(FORM_SHEET)
    if form is None:
        return
    check_validations(form, FORM_SHEET, _plan(lay).form_inputs, res.add)


def removed_validations(sheet_xml, inputs: Mapping[tuple[int, int], str]) -> list[str]:
    """The input cells (position -> ref, in their order) whose data validation is gone from `sheet_xml`."""
    unvalidated = sheet_xml.unvalidated(inputs.keys())
    return [ref for cell, ref in inputs.items() if cell in unvalidated]


def check_validations(sheet_xml, sheet: str, inputs: Mapping[tuple[int, int], str], add) -> None:
    """VALIDATION_REMOVED, at the first input cell of `sheet` whose data validation is gone, naming them."""
    missing = removed_validations(sheet_xml, inputs)
    if missing:
        shown = "、".join(missing[:5]) + (f" 等 {len(missing)} 个单元格" if len(missing) > 5 else "")
        add(Code.VALIDATION_REMOVED, sheet=sheet, cell=missing[0], detail=shown)


# -- values ---------------------------------------------------------------------------------------

def _read_entries(ret: Returned, lay: FormLayout, res: FileResult) -> Entries:
    entries = Entries()
    formulas = ret.xml.get(FORM_SHEET).formulas if ret.xml and FORM_SHEET in ret.xml else {}
    rows = ret.values.get(FORM_SHEET, [])
    invalid: set[str] = set()
    d = lay.settings.score_decimals
    for item, row, ref, note, evidence in _plan(lay).items:
        line = rows[row] if row < len(rows) else ()
        raw = line[COL_SCORE] if COL_SCORE < len(line) else ""
        where = {"sheet": FORM_SHEET, "cell": ref, "label": item.label}
        if formulas and ref in formulas:
            res.add(Code.FORMULA_IN_INPUT, value="=" + formulas[ref][:40], **where)
            entries.values[item.id] = None
            invalid.add(item.id)
            continue
        if scoring.line_state(item.kind, raw, item.points, d) == 2:
            invalid.add(item.id)
        if item.kind == "zero":
            answer = cell_text(raw).strip()
            if answer not in ("", scoring.YES, scoring.NO):
                res.add(Code.ZERO_ANSWER_INVALID, value=_show(raw), **where)
            elif answer == "":
                entries.zero_blank = True
                res.add(Code.ZERO_ANSWER_BLANK, value=item.id, **where)
            entries.zeroed = answer == scoring.YES
            if entries.zeroed:
                res.add(Code.ZERO_OUT_MARKED, **where)
            continue
        value = _number(raw, item.points, res, where, lay.settings.score_decimals)
        if value is None and item.kind == "base" and cell_text(raw).strip() == "":
            res.add(Code.SCORE_MISSING, limit=format_points(item.points), **where)
        entries.values[item.id] = value
        for col, ref, texts in ((COL_NOTE, note, entries.notes), (COL_EVIDENCE, evidence, entries.evidence)):
            if col < len(line) and line[col] != "":
                _note(line[col], ref, res, item, texts)
        if scoring.note_missing(item.kind, value, item.points, entries.notes.get(item.id, "")):
            _note_missing(item, value, note, res, lay.settings.missing_note_severity)
    entries.invalid = frozenset(invalid)
    entries.reporter = cell_text(ret.value(FORM_SHEET, *position(lay.reporter_cell))).strip()
    entries.phone = cell_text(ret.value(FORM_SHEET, *position(lay.phone_cell))).strip()
    entries.values = ItemScores.of(lay.rubric.ids, entries.values)
    if not entries.reporter:
        res.add(Code.REPORTER_MISSING, sheet=FORM_SHEET, cell=lay.reporter_cell)
    if not entries.phone:
        res.add(Code.PHONE_MISSING, sheet=FORM_SHEET, cell=lay.phone_cell)
    return entries


def _note_missing(item, value: float, ref: str, res: FileResult, severity: str) -> None:
    """V417 at the 扣分说明 cell: the line claims a deduction, a bonus or a deduction, and says not why."""
    if item.kind == "base":
        detail, why = f"得分 {format_points(value)}，低于分值 {format_points(item.points)}", "扣分原因"
    else:
        what = "加分" if item.kind == "bonus" else "减分"
        detail, why = f"填了{what} {format_points(value)} 分", f"{what}依据"
    res.add(Code.NOTE_MISSING, sheet=FORM_SHEET, cell=ref, value=item.id, detail=detail, expected=why,
            severity=severity)


def _number(raw: Any, top: float, res: FileResult, where: dict, decimals: int) -> float | None:
    """A score as the file holds it, or None (blank or unusable, with an issue for the latter).

    More places than the county allows is an error (V415), but the score still counts in the totals,
    so the totals agree with the ones the form shows.
    """
    if type(raw) is float and 0 <= raw <= top and scoring.fits(raw, decimals):    # the usual case
        return _SCORES.setdefault(raw, raw) if len(_SCORES) < MAX_SHARED_SCORES else _SCORES.get(raw, raw)
    value = _held(raw, top, res, where)
    if value is None:
        return None
    if not value.is_finite() or value < 0 or value > scoring.exact(top):
        res.add(Code.SCORE_OUT_OF_RANGE, value=format_points(value), limit=format_points(top), **where)
        return None
    if scoring.has_more_decimals(value, decimals):
        res.add(Code.SCORE_TOO_MANY_DECIMALS, value=_show(raw) if isinstance(raw, str) else _plain(value),
                limit=f"最多保留{scoring.PLACES_ZH[decimals]}" if decimals else "只能填整数",
                expected=scoring.show(value, decimals), **where)
    return float(value)


def _held(raw: Any, top: float, res: FileResult, where: dict) -> Decimal | None:
    """The number a score cell holds, exactly: a stored number, or text a person typed as one."""
    if isinstance(raw, bool) or isinstance(raw, (dt.date, dt.time, dt.timedelta)):
        res.add(Code.SCORE_NOT_NUMBER, value=_show(raw), limit=format_points(top), **where)
        return None
    if isinstance(raw, (float, int)):
        return scoring.exact(raw)
    text = str(raw)
    if text.strip() == "":
        return None
    if text.strip().upper() in ERROR_VALUES:
        res.add(Code.ERROR_VALUE, value=text.strip(), limit=format_points(top), **where)
        return None
    ascii_text = text.translate(FULL_WIDTH)
    typed = TYPED_NUMBER.fullmatch(ascii_text)
    if typed is None:
        res.add(Code.SCORE_NOT_NUMBER, value=_show(text), limit=format_points(top), **where)
        return None
    value = Decimal(typed.group(1))
    res.add(Code.FULL_WIDTH_DIGITS if ascii_text != text else Code.NUMBER_AS_TEXT, value=text, detail=_plain(value), **where)
    return value


def _plain(value: Decimal) -> str:
    """A decimal as a person writes it: 1.5, 10, 0.305 (no exponent, no trailing zeros)."""
    if not value.is_finite() or len(value.as_tuple().digits) > 20:
        return format_points(value)
    return format(value.normalize(), "f")


# A province's files hold the same few hundred scores (0, 0.5, 1, ..., the points of each line): one
# float object for each value, shared by every file that holds it, instead of one per file and line.
# Memory bound: a float key and value and a dict slot are under 150 bytes: 10,000 of them, 1.5 MB.
_SCORES: dict[float, float] = {}
MAX_SHARED_SCORES = 10_000


def _note(raw: Any, ref: str, res: FileResult, item, into: dict[str, str]) -> None:
    """A 扣分说明 or 佐证材料 text of the line `item`, kept under its id unless blank."""
    text = cell_text(raw)
    if not text.strip():
        return
    if len(text) > MAX_NOTE:
        res.add(Code.TEXT_TOO_LONG, sheet=FORM_SHEET, cell=ref, label=item.label, value=len(text), limit=MAX_NOTE)
        text = text[:MAX_NOTE]
    if text.startswith(INJECTION_START[:4]):
        res.add(Code.TEXT_LIKE_FORMULA, sheet=FORM_SHEET, cell=ref, label=item.label, value=text[:1])
    into[item.id] = text


def _check_cached(ret: Returned, lay: FormLayout, res: FileResult, explained: frozenset[str] = frozenset()) -> None:
    """Where the file shows totals (a spreadsheet program saved it), they must agree with ours, but for the
    cells in `explained`: totals over a score we did not count, whose issue says so already."""
    labels = {lay.total_cells[k]: k for k in lay.total_cells}
    labels.update({lay.subtotal_cell(c): f"{c}小计" for c in lay.subtotal_rows})
    labels[lay.completion_cell] = "填报进度"
    d = lay.settings.score_decimals
    for ref, expected in computed_cells(lay, res.scores).items():
        if ref not in labels or ref in explained:   # the hidden helper columns; totals a refused line explains
            continue
        actual = ret.value(FORM_SHEET, *position(ref))
        if isinstance(expected, str):
            same = cell_text(actual) == expected
        else:                               # what the cell shows, at d places, is what we computed
            same = isinstance(actual, (int, float)) and not isinstance(actual, bool) and scoring.round_half_up(
                scoring.exact(actual), d) == scoring.exact(expected)
        if not same:
            res.add(Code.CACHED_TOTAL_DIFFERS, sheet=FORM_SHEET, cell=ref, label=labels.get(ref, ""), value=_show(actual),
                    expected=expected if isinstance(expected, str) else scoring.show(expected, d))


# The issues whose score the spreadsheet counts in its totals and we do not: its message says that the
# totals are recomputed without it, so a total that differs for that reason is not reported again (V408).
UNCOUNTED = (Code.SCORE_OUT_OF_RANGE, Code.FORMULA_IN_INPUT)


def _explained(lay: FormLayout, res: FileResult) -> frozenset[str]:
    """The total cells that depend on a line whose score was refused by an UNCOUNTED issue."""
    lines = {score: item for item, _, score, _, _ in _plan(lay).items}
    cells: set[str] = set()
    for i in res.report:
        item = lines.get(i.cell) if i.code in UNCOUNTED and i.sheet == FORM_SHEET else None
        if item is not None:
            cells.update(_totals_over(lay, item))
    return frozenset(cells)


def _totals_over(lay: FormLayout, item) -> list[str]:
    """The cells whose shown value is computed from `item`'s score."""
    total = {"base": "基础得分", "bonus": "加分", "deduction": "减分"}.get(item.kind)
    if total is None:
        return []
    cells = [lay.total_cells[total], lay.total_cells["最终得分"]]
    if item.kind == "base":
        cells += [lay.subtotal_cell(item.category), lay.completion_cell]
    return cells


# -- small helpers --------------------------------------------------------------------------------

def same_value(expected: Any, actual: Any) -> bool:
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and math.isclose(
            float(actual), float(expected), abs_tol=1e-9)
    return cell_text(actual) == str(expected)


def _show(value: Any, width: int = 40) -> str:
    text = ("TRUE" if value else "FALSE") if isinstance(value, bool) else cell_text(value)
    if text == "":
        return "（空）"
    return text if len(text) <= width else text[:width] + "…"
