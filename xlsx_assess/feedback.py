"""What each township is told after the ranking (反馈单), what the county is told (考核结果通报), and last
year beside this year.

The scores come from the ranking whatever it rests on: the final score, rank, grade and category
scores from `Ranking` (核定分 where the township's 核定表 is done, else 自评分), each line's
self-assessed score and 扣分说明 from the township's accepted file, and, where the county verified it,
its `LineVerdict` (自评分, 核定分, 核定说明, 核查人): `Verdicts` = {township code: {item id: LineVerdict}},
made from the round's 核定表s by `verdicts_of`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .rubric import format_points

if TYPE_CHECKING:
    from .checks import Context
    from .collect import Collection
    from .ranking import Ranking
    from .round import Round


@dataclass(frozen=True)
class LineVerdict:
    """The county's verdict on one line of one township's return (the review step's 核定表)."""

    item_id: str
    self_score: float | None           # 自评分, as the township entered it (None: blank)
    verified_score: float | None       # 核定分 (None: not verified, the self score stands)
    reason: str = ""                   # 核定说明: why the verified score differs
    reviewer: str = ""                 # 核查人


Verdicts = Mapping[str, Mapping[str, LineVerdict]]      # township code -> item id -> verdict


@dataclass(frozen=True)
class PastResult:
    """A township's result in the previous round."""

    code: str
    township: str
    score: Decimal
    rank: int
    of: int
    grade: str


@dataclass(frozen=True)
class LostLine:
    """A line where the township lost points (or was deducted)."""

    item_id: str
    label: str                         # 一级指标 · 二级指标
    points: float
    self_score: float | None
    final_score: float | None          # 核定分 where verified, else the self score
    lost: Decimal
    reason: str
    zero: bool = False                 # the zero-out line, answered 是


@dataclass(frozen=True)
class CategoryLine:
    category: str
    full: float
    self_score: float
    final_score: float                 # as the ranking counts it
    average: float
    best: float


@dataclass(frozen=True)
class TownshipFeedback:
    """Everything one 反馈单 says."""

    code: str
    township: str
    score: float
    rank: int
    of: int
    grade: str
    categories: tuple[CategoryLine, ...]
    lost: tuple[LostLine, ...]
    last: PastResult | None = None
    verified: bool = False             # the county verified it (a done 核定表: its lines' LineVerdicts)
    adjusted: int = 0                  # lines whose 核定分 differs from the 自评分


# -- per township ---------------------------------------------------------------------------------

def township_feedback(ranking: "Ranking", coll: "Collection", ctx: "Context", verdicts: Verdicts | None = None,
                      last: Mapping[str, PastResult] | None = None) -> list[TownshipFeedback]:
    """One `TownshipFeedback` per ranked township, in rank order."""
    verdicts, last = verdicts or {}, last or {}
    accepted = {h.township.code: k for k, h in enumerate(coll.heads) if h.accepted}
    cats = _category_rows(ranking)
    stats = {name: cats.get(name, {}) for name in ("满分", "县平均", "最高")}
    n = len(ranking.ranking)
    out = []
    for row in ranking.ranking.itertuples(index=False):
        code = str(row.乡镇代码)
        res = coll.results[accepted[code]]
        mine = verdicts.get(code, {})
        own = res.scores.subtotals                   # the accepted return's, which every verdict's 自评分 is
        categories = tuple(CategoryLine(c, float(stats["满分"].get(c, 0)), own.get(c, 0.0),
                                        float(cats.get(code, {}).get(c, 0)), float(stats["县平均"].get(c, 0)),
                                        float(stats["最高"].get(c, 0)))
                           for c in ctx.rubric.scored_categories)
        out.append(TownshipFeedback(code, str(row.乡镇), float(row.最终得分), int(row.排名), n, str(row.等次),
                                    categories, tuple(lost_lines(ctx, res.entries, res.entries.zeroed, mine)),
                                    last.get(code), bool(mine), sum(map(_changed, mine.values()))))
    return out


def _changed(v: LineVerdict) -> bool:
    """The 核定分 differs from the 自评分 (a blank counts as 0, as `review.changed` has it)."""
    from .scoring import exact

    return exact(v.verified_score or 0.0) != exact(v.self_score or 0.0)


def _category_rows(ranking: "Ranking") -> dict[str, dict]:
    """The 分类得分 frame by township code, and its county rows (满分, 县平均, 最高) by name."""
    out = {}
    for rec in ranking.categories.to_dict("records"):
        out[str(rec["乡镇代码"]) or str(rec["乡镇"])] = rec
    return out


def lost_lines(ctx: "Context", entries, zeroed: bool, verdicts: Mapping[str, LineVerdict]) -> list[LostLine]:
    """The lines a township lost points on: a base line below its points, a deduction line above 0, the
    zero-out line answered 是; with the reason (核定说明, else the township's own 扣分说明)."""
    from .scoring import exact

    out = []
    for item in ctx.rubric.items:
        if item.kind == "bonus":
            continue
        v = verdicts.get(item.id)
        own = None if item.kind == "zero" else v.self_score if v is not None else entries.values.get(item.id)
        final = v.verified_score if v is not None and v.verified_score is not None else own
        reason = (v.reason if v is not None and v.reason else "") or entries.notes.get(item.id, "")
        label = line_label(item.indicator, item.criterion)
        if item.kind == "zero":
            if (v.verified_score == 1 if v is not None and v.verified_score is not None else zeroed):
                out.append(LostLine(item.id, label, 0.0, None, None, Decimal(0), reason, zero=True))
            continue
        got = exact(final or 0)
        lost = exact(item.points) - got if item.kind == "base" else got
        if lost > 0:
            out.append(LostLine(item.id, label, item.points, own, final, lost, reason))
    return out


def line_label(indicator, criterion) -> str:
    """一级指标 · 二级指标, or the one of them there is."""
    return " · ".join(str(p) for p in (indicator, criterion) if p and str(p) != "nan")


# -- the 考核结果通报 -----------------------------------------------------------------------------

NOTICE_SHEET = "考核结果通报"
TOP_LOST = 5


@dataclass(frozen=True)
class Notice:
    """The draft of the county's notice: (heading, text) paragraphs, the lines lost most among them."""

    paragraphs: tuple[tuple[str, str], ...]


def draft_notice(rk: "Ranking", grades: tuple[str, ...] | None = None) -> Notice:
    """How many townships in each grade and which, the TOP_LOST lines where the county as a whole lost
    most points, and the townships not ranked: from the ranking alone."""
    df = rk.ranking
    order = grades or tuple(dict.fromkeys(df["等次"]))
    paragraphs = []
    n = len(df)
    counts = []
    for g in order:
        names = [str(x) for x in df.loc[df["等次"] == g, "乡镇"]]
        counts.append(f"{g} {len(names)} 个")
        paragraphs.append((f"{g}（{len(names)} 个）", "、".join(names) if names else "无"))
    head = f"本次考核共 {n + len(rk.missing)} 个乡镇，纳入排名 {n} 个：" + "，".join(counts) + "。"
    paragraphs.insert(0, ("总体情况", head))
    if len(rk.missing):
        left = "、".join(f"{r['乡镇']}（{r['原因']}）" for r in rk.missing.to_dict("records"))
        paragraphs.append(("未纳入排名", f"{len(rk.missing)} 个：{left}"))
    else:
        paragraphs.append(("未纳入排名", "无"))
    rows = county_losses(rk)
    if rows:
        shown = "\n".join(f"{k}. {r[0]} {r[1]} · {r[2]}（分值 {r[3]}）：全县合计失分 {r[4]}，"
                          f"{r[5]} 个乡镇失分" for k, r in enumerate(rows, start=1))
        paragraphs.insert(len(order) + 1, ("主要失分项目", f"全县失分最多的 {len(rows)} 项：\n{shown}"))
    paragraphs.append(("整改要求", "请各乡镇对照考核结果反馈单逐项整改，在反馈单中填写每个失分项目的整改措施、整改时限和责任人，"
                                "盖章后报回县政务公开办。"))
    return Notice(tuple(paragraphs))


def county_losses(rk: "Ranking", top: int = TOP_LOST) -> list[tuple]:
    """The lines where the ranked townships together lost most: (编号, 内容, 指标, 分值, 合计失分 as
    text, 失分乡镇数), most first; base lines lose what they fall short of, deduction lines what they take."""
    from .ranking import KIND_ZH
    from .scoring import show

    d = rk.details
    n = len(rk.ranking)
    if not n or "县平均" not in d.columns:
        return []
    towns = [c for c in d.columns[d.columns.get_loc("分值") + 1:d.columns.get_loc("县平均")]]
    rows = []
    for rec in d.to_dict("records"):
        kind = rec["类型"]
        if kind == KIND_ZH["base"]:
            total = (Decimal(repr(float(rec["分值"]))) - Decimal(repr(float(rec["县平均"])))) * n
            hit = sum(1 for t in towns if float(rec[t]) < float(rec["分值"]))
        elif kind == KIND_ZH["deduction"]:
            total = Decimal(repr(float(rec["县平均"]))) * n
            hit = sum(1 for t in towns if float(rec[t]) > 0)
        else:
            continue
        total = Decimal(show(total, rk.decimals))
        if total > 0:
            rows.append((str(rec["编号"]), str(rec["内容"]), line_label(rec["一级指标"], rec["二级指标"]),
                         format_points(rec["分值"]), total, hit if towns else ""))
    rows.sort(key=lambda r: (-r[4], r[0]))
    return [(*r[:4], show(r[4], rk.decimals), r[5]) for r in rows[:top]]


# -- last year ------------------------------------------------------------------------------------

RESULTS_FILE = "results.json"          # in the round's .xlsx-assess/: the results its feedback told


def previous_round(rnd: "Round") -> "Round | None":
    """The round this one was made `--from` (round.json's "from", tried relative to this round first, so
    rounds moved together still find each other); None if it was not, or is gone."""
    from .round import find_round, read_marker

    marker = read_marker(rnd)
    for key in ("from_relative", "from"):
        where = marker.get(key)
        if isinstance(where, str) and where:
            path = (rnd.root / where) if key == "from_relative" else Path(where)
            found = find_round(path) if path.is_dir() else None
            if found is not None and found.root != rnd.root:
                return found
    return None


def last_year_results(rnd: "Round") -> dict[str, PastResult] | None:
    """The previous round's results by township code; None when there is no previous round.

    Read from what the previous round's last `rank` or `feedback` recorded (`record_results`: the results as
    ranked and told), else from its ledger: the board's 已合格 files, ranked by the same rule. Never from
    排名.xlsx, which the clerk opens, edits and re-saves (and whose columns change between versions)."""
    prev = previous_round(rnd)
    if prev is None:
        return None
    recorded = read_results(prev)
    return recorded if recorded is not None else _results_from_ledger(prev)


def read_results(rnd: "Round") -> dict[str, PastResult] | None:
    import json

    try:
        data = json.loads((rnd.state / RESULTS_FILE).read_text(encoding="utf-8"))
        return {r["code"]: PastResult(r["code"], r["township"], Decimal(r["score"]), int(r["rank"]), int(r["of"]),
                                      r["grade"]) for r in data["townships"]}
    except (OSError, ValueError, KeyError, TypeError, ArithmeticError):
        return None


def record_results(rnd: "Round", ranking: "Ranking") -> Path:
    """Keep the round's results as ranked (.xlsx-assess/results.json): what next year's round shows as last
    year. Written by `rank` and `feedback` in a round, whatever the ranking rests on."""
    import json

    from .scoring import show
    from .writer import atomic_path

    df = ranking.ranking
    data = {"townships": [{"code": str(code), "township": str(name), "score": show(float(score), ranking.decimals),
                           "rank": int(rank), "of": len(df), "grade": str(grade)}
                          for code, name, score, rank, grade in zip(df["乡镇代码"], df["乡镇"], df["最终得分"],
                                                                    df["排名"], df["等次"])]}
    path = rnd.state / RESULTS_FILE
    with atomic_path(path) as staged:
        staged.file.write(json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8"))
    return path


def _results_from_ledger(prev: "Round") -> dict[str, PastResult] | None:
    from .issues import AssessError
    from .round import load_round_context
    from .workflow import round_status

    try:
        board = round_status(prev, load_round_context(prev))
    except (AssessError, OSError):
        return None
    ok = [line for line in board.lines if line.state == "ok" and line.score is not None]
    return {line.code: PastResult(line.code, line.township, line.score, 1 + sum(o.score > line.score for o in ok),
                                  len(ok), line.grade) for line in ok}


LAST_YEAR_COLUMNS = ("上年得分", "上年名次", "上年等次", "得分变化", "名次变化")


def add_last_year(rk: "Ranking", last: Mapping[str, PastResult] | None) -> None:
    """Add last year's score, rank and grade and the change to the ranking's 排名 table (nothing when
    there is no previous round). A township without last year's result shows blanks."""
    if last is None or not len(rk.ranking):
        return
    df = rk.ranking
    rows = [change_of(float(score), int(rank), last.get(str(code)))
            for code, score, rank in zip(df["乡镇代码"], df["最终得分"], df["排名"])]
    rows = [(float(r[0]) if r[0] else None, *r[1:]) for r in rows]          # last year's score as a number
    at = list(df.columns).index("备注")
    for k, name in enumerate(LAST_YEAR_COLUMNS):
        df.insert(at + k, name, [r[k] for r in rows])


def change_of(score: float, rank: int, past: PastResult | None) -> tuple:
    """(上年得分, 上年名次 "3/9", 上年等次, 得分变化 "+2.50", 名次变化 "↑2") — text, blank without last year."""
    from .scoring import exact

    if past is None:
        return ("", "", "", "", "")
    delta = exact(score) - past.score
    places = max(0, -past.score.as_tuple().exponent)
    moved = past.rank - rank
    return (f"{past.score:.{places}f}", f"{past.rank}/{past.of}", past.grade, f"{delta:+.{places}f}",
            "持平" if moved == 0 else f"↑{moved}" if moved > 0 else f"↓{-moved}")


# -- the round's jobs: write the 反馈单s, collect the ones sent back ---------------------------------

def verdicts_of(reviews, rubric) -> Verdicts:
    """The county's verdicts per township and line from the round's 核定表s (`board.Reviews`: the valid,
    signed one of each township, `review.ReviewResult`, beside the return it was made from): every line's
    自评分 and 核定分, with the 核定说明 and the 核查人. The zero-out line's answer is 1.0 (是) or 0.0 (否)."""
    out: dict[str, dict[str, LineVerdict]] = {}
    for code, rev in (reviews.done if reviews is not None else {}).items():
        own, dec = reviews.accepted.get(code), rev.decided
        if own is None or dec is None:
            continue
        lines = {}
        for item in rubric.items:
            if item.kind == "zero":
                mine, theirs = float(own.zeroed), float(dec.zeroed)
            else:
                mine, theirs = own.values.get(item.id), dec.values.get(item.id)
            lines[item.id] = LineVerdict(item.id, mine, theirs, dec.reasons.get(item.id, ""), dec.reviewer)
        out[code] = lines
    return out


@dataclass
class FeedbackRun:
    written: list[tuple[TownshipFeedback, Path]]
    ranking: "Ranking"
    board: object
    last: dict[str, PastResult] | None
    kept: list[Path] = field(default_factory=list)      # returns found under a 反馈单's name, moved to 反馈/报回/


def feedback_round(rnd: "Round", ctx: "Context", progress=None, workers: int | None = None) -> FeedbackRun:
    """Rank the round as `rank` does (its ranking, whatever it rests on) and write a 反馈单 per ranked
    township into 反馈/, recording each (for `check`) and the results told (for next year's round)."""
    from .feedback_book import (feedback_file_name, issued_sha256s, keep_aside, read_latest, record_feedback,
                                record_latest, write_feedback)
    from .issues import AssessError, Code, Report, issue
    from .ranking import rank_townships
    from .workflow import align_collection, check_round
    from .writer import check_writable

    coll, board = check_round(rnd, ctx, progress, workers, every_file=True)
    if not board.count("ok"):
        raise AssessError(Report([issue(Code.NOTHING_TO_RANK, file=str(rnd.returned), detail=board.unranked_text())]))
    align_collection(coll, board, ctx)
    ranking = rank_townships(coll, ctx, reviews=board.reviews.done if board.reviews else None)   # as `rank` ranks
    last = last_year_results(rnd)
    told = township_feedback(ranking, coll, ctx, verdicts_of(board.reviews, ctx.rubric), last)
    check_writable(rnd.feedback, folder=True)
    paths = [rnd.feedback / feedback_file_name(fb, ctx.settings.year) for fb in told]
    for path in paths:
        check_writable(path)                           # every one, before any is written
    rnd.feedback.mkdir(parents=True, exist_ok=True)
    written, latest, kept = [], {}, []
    issued = issued_sha256s(rnd)
    try:
        for fb, path in zip(told, paths):
            moved = keep_aside(rnd, path, issued)      # a township's return put over the one sent: kept
            if moved is not None:
                kept.append(moved)
            lay = write_feedback(fb, ctx.settings, path)
            record_feedback(rnd, lay, path)
            latest[fb.code] = lay.identity["xa_feedback_id"]
            written.append((fb, path))
    finally:                                           # stopped part way (a file held open): the ones written
        record_latest(rnd, latest if len(written) == len(told) else {**read_latest(rnd), **latest})   # count
    record_results(rnd, ranking)
    return FeedbackRun(written, ranking, board, last, kept)


WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls")       # what 反馈/ is searched for (a 反馈单 saved again by WPS…)


def collect_feedback(rnd: "Round", ctx: "Context", board):
    """The board with what 反馈/ holds: per township 已整改 (a 反馈单 returned complete), 整改未完成 (the
    latest returned one, what is missing, located) or 待整改 (sent, not back yet); and the files in 反馈/
    that are 反馈单s of no township (their issues)."""
    import os
    from dataclasses import replace

    from .collect import skip_reason
    from .feedback_book import check_feedback, read_latest

    latest = read_latest(rnd)
    if not latest or not rnd.feedback.is_dir():
        return board, []
    found: dict[str, list] = {}
    strays = []
    for top, _, files in os.walk(rnd.feedback):
        for f in sorted(files):
            path = Path(top) / f
            if skip_reason(f) or path.suffix.lower() not in WORKBOOK_SUFFIXES:
                continue
            got = check_feedback(rnd, path, str(path.relative_to(rnd.root)), ctx.settings.year, latest,
                                 data=_keep(rnd, path))
            (found.setdefault(got.code, []) if got.code else strays).append(got)
    lines = []
    for line in board.lines:
        if line.code not in latest:
            lines.append(line)
            continue
        lines.append(replace(line, **_feedback_state(found.get(line.code, []))))
    return replace(board, lines=lines), strays


def _keep(rnd: "Round", path: Path) -> bytes | None:
    """Keep a returned 反馈单 by content in the round, as every file received is kept; its bytes, for its check
    (best effort: None for one that cannot be read, or is larger than any workbook we read, which its check
    then reads and reports)."""
    from .container import MAX_FILE_BYTES
    from .ledger import keep_bytes

    try:
        if path.stat().st_size <= MAX_FILE_BYTES:
            data = path.read_bytes()
            keep_bytes(rnd.files, data)
            return data
    except OSError:
        pass
    return None


def _feedback_state(checks: list) -> dict:
    returned = [c for c in checks if not c.untouched]
    done = sorted((c for c in returned if c.complete), key=lambda c: (c.mtime, c.name))
    if done:
        return {"feedback": "rectified", "feedback_file": done[-1].name}
    if returned:
        last = max(returned, key=lambda c: (c.mtime, c.name))
        return {"feedback": "rectifying", "feedback_file": last.name, "feedback_issues": tuple(last.issues)}
    return {"feedback": "sent", "feedback_file": checks[0].name if checks else ""}
