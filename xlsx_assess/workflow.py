"""The three jobs end to end, as the CLI runs them: generate, check, rank.

Each takes the user's files (or None for the bundled Taiqian defaults) and returns data; the CLI
renders it. Bad inputs come back as issues; only a broken rubric, roster or settings file raises
`AssessError`, because nothing can be checked against it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .board import Board, build_board
from .checks import Context
from .collect import Collection, check_paths
from .issues import AssessError, Code, Report, issue
from .feedback import add_last_year, last_year_results, record_results
from .round import RANKING_BOOK
from .ranking import Ranking, is_ranking_workbook, rank_townships, write_ranking, write_ranking_csv
from .rubric import load_rubric
from .settings import load_settings, load_townships, select_townships
from .writer import Mover, build_workbook, check_writable, file_name

Progress = Callable[[int, int], None]


def load_context(rubric: str | Path | None = None, townships: str | Path | None = None,
                 settings: str | Path | None = None, year: int | None = None) -> Context:
    return Context(load_rubric(rubric), load_settings(settings, year), load_townships(townships))


@dataclass(frozen=True)
class Generated:
    path: Path
    code: str
    township: str


def generate_workbooks(out: str | Path, ctx: Context, only: list[str] | None = None, password: str | None = None,
                       progress: Progress | None = None) -> list[Generated]:
    """Write one workbook per township into `out`."""
    chosen = select_townships(ctx.townships, only)
    check_writable(out, folder=True)
    out = Path(out)
    done = []
    with Mover() as mover:
        for k, t in enumerate(chosen, start=1):
            path = build_workbook(ctx.rubric, t, ctx.settings, out / file_name(t, ctx.settings.year), password,
                                  mover=mover)
            done.append(Generated(path, t.code, t.name))
            if progress:
                progress(k, len(chosen))
    return done


def check_files(paths: Iterable[str | Path], ctx: Context, progress: Progress | None = None,
                workers: int | None = None) -> Collection:
    return check_paths(paths, ctx, progress, workers)


def rank_files(paths: Iterable[str | Path], out: str | Path, ctx: Context, progress: Progress | None = None,
               workers: int | None = None, now: dt.datetime | None = None) -> tuple[Collection, Ranking]:
    paths = list(paths)
    check_output(paths, out)
    coll = check_paths(paths, ctx, _importing_pandas(progress), workers, output=out)
    ranking = _honest(coll, build_board(coll, ctx), ctx, now, where=", ".join(map(str, paths)))
    write_ranking(ranking, out)
    return coll, ranking


def _honest(coll: Collection, board: Board, ctx: Context, now, where: str, reviews: dict | None = None) -> Ranking:
    """The ranking of a batch, saying which townships it leaves out; nothing accepted: AssessError (C508),
    before anything is written. `reviews`: see `rank_townships`."""
    if not board.count("ok"):
        raise AssessError(Report([issue(Code.NOTHING_TO_RANK, file=where, detail=board.unranked_text())]))
    ranking = rank_townships(coll, ctx, now, reviews=reviews)
    ranking.coverage, ranking.left_out = board.unranked_text(), len(board.unranked)
    return ranking


def check_output(paths: Iterable[str | Path], out: str | Path) -> None:
    """Refuse, before anything is read or written, a ranking `out` that cannot be written or would touch
    an input (AssessError, R302 or R301 naming both files).

    The rule: the ranking is never an input, nor a link (symbolic or hard) to one. Inside an input folder
    it may be a new file or a ranking workbook written before, told by its content (`is_ranking_workbook`),
    which `gather` skips as our own, so `rank` can be run again with the same `--out`; any other file
    there is a return, and a return is never overwritten."""
    check_writable(out)
    out = Path(out)
    try:
        st = os.stat(out)
    except OSError:
        return                                       # nothing there yet: nothing to overwrite
    for given in map(Path, paths):
        for found in _input_files(given):
            detail = _same_file(found, st) and _clash(out, given, st)
            if detail:
                raise AssessError(Report([issue(Code.OUTPUT_IS_INPUT, file=str(out), value=str(found),
                                                detail=detail)]))


def _input_files(given: Path) -> Iterator[Path]:
    """Every file `rank` could read under `given`: symbolic links followed, each folder once."""
    if not given.is_dir():
        yield given
        return
    seen: set[tuple[int, int]] = set()
    for top, dirs, files in os.walk(given, followlinks=True):
        try:
            st = os.stat(top)
        except OSError:
            dirs.clear()
            continue
        if (st.st_dev, st.st_ino) in seen:           # a link back up: walked already
            dirs.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        yield from (Path(top) / name for name in files)


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _clash(out: Path, given: Path, st: os.stat_result) -> str:
    """Why writing `out`, the same file as an input found under `given`, is refused; "" if it is not."""
    if not given.is_dir():
        return "就是收回的压缩包" if given.suffix.lower() == ".zip" else "就是收回的文件"
    if out.is_symlink():
        return "是一个链接，指向收回的文件"
    if st.st_nlink > 1:
        return "与收回的文件是同一文件（硬链接）："
    if is_ranking_workbook(out):
        return ""
    return "不是本程序生成的排名，而是收回文件夹中的文件"


def _importing_pandas(progress: Progress | None) -> Progress:
    """`progress`, which also imports pandas (half a second) when the first files are checked: the
    ranking needs it, and while a process pool checks the other files this process only waits."""
    def tick(done: int, total: int) -> None:
        import pandas  # noqa: F401  (costs only the first time)

        if progress:
            progress(done, total)

    return tick


# -- a round ----------------------------------------------------------------------------------------

def load_round_context(rnd) -> Context:
    """The round's setup, read from its 考核设置.xlsx (the one name the CLI asks, so tests can stand in)."""
    from .round import load_round_context as from_setup

    return from_setup(rnd)


def check_round(rnd, ctx: Context, progress: Progress | None = None, workers: int | None = None,
                every_file: bool = False) -> tuple[Collection, Board]:
    """Check everything in the round's 收回/, keep every file by content and record its verdict in the
    ledger (files first, rows after), and build the board from the ledger and this batch.

    Files the round kept that are no longer in 收回/ are checked again from their kept copy when their
    verdict was made under another setup (or always, with `every_file`: what a ranking needs)."""
    from .collect import check_gathered, gather
    from .ledger import Ledger, now

    cands, skipped = gather([rnd.returned]) if rnd.returned.is_dir() else ([], [])
    cands = [_relative(c, rnd) for c in cands]
    skipped = [dataclasses.replace(s, name=_round_name(s.name, rnd)) for s in skipped]
    with Ledger.of_round(rnd) as ledger:
        kept = [_keep(c, ledger) for c in cands]
        again = _kept_again(ledger, ctx, {k[0] for k in kept if k is not None}, every_file)
        cands += [c for c, _ in again]
        kept += [k for _, k in again]
        seen = now()
        coll = check_gathered(list(cands), skipped, ctx, progress, workers)
        ledger.record(_sightings(coll, kept, ctx, seen), seen)
        board = build_board(coll, ctx, ledger)
        if rnd.reviews.is_dir():
            board = _with_round_reviews(rnd, ctx, coll, board, ledger)
    coll.missing = [ctx.roster[line.code] for line in board.lines if line.state == "missing"]
    return coll, board


def rank_round(rnd, ctx: Context, progress: Progress | None = None, workers: int | None = None,
               now: dt.datetime | None = None) -> tuple[Collection, Board, Ranking]:
    """Check the round (every file it holds, 收回/ or kept), rank the file of each township the board
    accepts and write the ranking to 结果/排名.xlsx and 结果/排名.csv. A township with a valid, signed
    核定表 is ranked on its 核定分, the others on their 自评分 (the ranking is then 初步排名). Nothing
    accepted: AssessError (C508), nothing written. The townships not ranked are `board.unranked`."""
    out = rnd.results / RANKING_BOOK
    check_writable(out)
    check_writable(out.with_suffix(".csv"))             # both, before either is written
    coll, board = check_round(rnd, ctx, _importing_pandas(progress), workers, every_file=True)
    if board.count("ok"):
        align_collection(coll, board, ctx)
    ranking = _honest(coll, board, ctx, now, where=str(rnd.returned),
                      reviews=board.reviews.done if board.reviews else None)
    add_last_year(ranking, last_year_results(rnd))      # when the round was made --from the previous one
    write_ranking(ranking, out)
    write_ranking_csv(ranking, out.with_suffix(".csv"))
    record_results(rnd, ranking)                        # next year's "last year"
    return coll, board, ranking


# -- 核定: the county's verification -------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewAction:
    """What `review` did for one township: written, refreshed, kept (already made for its return),
    filled (stale but filled in: kept, needs --refresh), or waiting (no accepted return yet)."""

    code: str
    township: str
    action: str
    path: Path | None = None


def review_round(rnd, ctx: Context, refresh: bool = False, progress: Progress | None = None,
                 workers: int | None = None) -> tuple["Board", list[ReviewAction]]:
    """Write a 核定表 into 核定/ for every township whose line is 已合格: pre-filled from its accepted
    return. One already made for that return is kept; one made from an earlier return (核定表已过期) is
    rewritten if nobody filled it in, else only with `refresh` (its bytes stay kept in the ledger), its
    核定分 and 核定说明 carried over on the lines whose 自评分 did not change (`review.carried`)."""
    from .review import carried, review_file_name, review_layout, write_review

    rnd.reviews.mkdir(parents=True, exist_ok=True)
    check_writable(rnd.reviews, folder=True)
    coll, board = check_round(rnd, ctx, progress, workers)
    found = {r.name: r for r in board.reviews.results}
    done = []
    for line in board.lines:
        own = board.reviews.accepted.get(line.code)
        t = ctx.roster[line.code]
        if line.state != "ok" or own is None:
            done.append(ReviewAction(t.code, t.name, "waiting"))
            continue
        path = rnd.reviews / review_file_name(t, ctx.settings.year)
        there = found.get(_round_name(str(path), rnd))
        action = "written" if not path.exists() else _review_action(there, refresh)
        if action in ("written", "refreshed"):
            lay = review_layout(ctx.rubric, t, ctx.settings, own)
            if there is not None and there.earlier:           # what still applies is carried over
                lay = review_layout(ctx.rubric, t, ctx.settings, own, carried(lay, there.earlier))
            write_review(lay, path)
        done.append(ReviewAction(t.code, t.name, action, path))
    from .ledger import Ledger

    with Ledger.of_round(rnd) as ledger:                          # the 核定表s as now written: read again,
        board = _with_round_reviews(rnd, ctx, coll, board, ledger)  # the returns' checks stand
    return board, done


def _review_action(there, refresh: bool) -> str:
    """What to do with the 核定表 already at a township's path (`there`: its check, None if not read)."""
    if there is not None and there.township is not None and not there.stale and there.decided is not None:
        return "kept"
    if refresh:
        return "refreshed"
    if there is not None and there.stale and not there.touched:
        return "refreshed"
    return "filled" if there is not None and there.stale else "kept"


def _with_round_reviews(rnd, ctx: Context, coll: Collection, board: "Board", ledger) -> "Board":
    """Check every 核定表 in 核定/ against the returns the board accepts, keep each by content in the
    ledger, and give each 已合格 line its 核定 stage."""
    from .board import Reviews, with_reviews
    from .reader import read_returned
    from .review import check_review, chosen_reviews, review_files

    accepted = accepted_returns(coll, board, ctx, ledger)
    results = []
    for path in review_files(rnd.reviews):
        name = _round_name(str(path), rnd)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        sha = ledger.keep(data) if data else ""
        res = check_review(read_returned(path, name, data=data), ctx, accepted)
        res.sha256 = res.sha256 or sha
        if sha:
            stage = "verified" if res.done else "stale" if res.stale else "pending" if res.valid else "error"
            ledger.record_review(sha, name, res.township.code if res.township else "", res.return_sha256, stage)
        results.append(res)
    return with_reviews(board, Reviews(accepted, results, chosen_reviews(results)), ctx.settings.score_decimals)


def accepted_returns(coll: Collection, board: "Board", ctx: Context, ledger) -> dict:
    """Township code -> `review.SelfAssessed` of the return its 已合格 line rests on: from this batch, or
    read again from the ledger's copy when the batch did not check it."""
    from .checks import check_returned
    from .ledger import kept_path
    from .reader import read_returned
    from .review import SelfAssessed

    wanted = {line.sha256: line.code for line in board.lines if line.state == "ok" and line.sha256}
    out = {}
    for k, h in enumerate(coll.heads):
        if h.sha256 in wanted and h.scored and wanted[h.sha256] not in out:
            out[wanted[h.sha256]] = SelfAssessed.of(h.sha256, coll.results[k].entries)
    for sha, code in wanted.items():
        if code not in out:
            path = kept_path(ledger.files, sha)
            res = check_returned(read_returned(path, str(path)), ctx)
            if res.entries is not None:
                out[code] = SelfAssessed.of(sha, res.entries)
    return out


def align_collection(coll: Collection, board: Board, ctx: Context) -> None:
    """Make the batch accept exactly the files the board's 已合格 lines rest on (the board orders a
    township's files by when the round first saw them; the batch alone cannot), and list as missing
    (未纳入排名) every township the board does not accept."""
    used = {line.code: line.sha256 for line in board.lines if line.state == "ok"}
    for k, h in enumerate(coll.heads):
        if h.township is None or h.role == "duplicate":
            continue
        mine = used.get(h.township.code) == h.sha256 and h.sha256
        if mine and h.role == "superseded":
            coll.results.set_role(k, "used")
        elif not mine and h.role == "used" and h.accepted:
            coll.results.set_role(k, "superseded")
    first: set[str] = set()
    for k, h in enumerate(coll.heads):                 # the same content under two names: one is used
        if h.accepted:
            if h.sha256 in first:
                coll.results.set_role(k, "duplicate")
            first.add(h.sha256)
    coll.missing = [ctx.roster[line.code] for line in board.unranked]


def round_status(rnd, ctx: Context) -> Board:
    """The board from the round's ledger alone: every file ever received, per township its history."""
    from .board import board_from_ledger
    from .ledger import Ledger

    with Ledger.of_round(rnd) as ledger:
        board = board_from_ledger(ledger, ctx)
        return _reviews_from_ledger(board, ledger) if rnd.reviews.is_dir() else board


def round_board(rnd, ctx: Context):
    """(board, strays): `round_status` with the 反馈单s in 反馈/ collected, as `status` and the page show it."""
    from .feedback import collect_feedback

    return collect_feedback(rnd, ctx, round_status(rnd, ctx))


_REVIEW_RANK = {"verified": 3, "pending": 2, "error": 1, "stale": 0}


def _reviews_from_ledger(board: "Board", ledger) -> "Board":
    """The 核定 stage of each 已合格 line as `check` last recorded it: of the 核定表s seen for the return the
    line rests on (each name's latest record), a verified one first, then the latest (待核定 when there is
    none; two 核定表s of one township, 核定/ and one uploaded to 核定/网页上传/, say); 核定表已过期 when only
    older returns have one."""
    from dataclasses import replace

    latest: dict[tuple[str, str, str], str] = {}       # (code, return, name) -> the status last recorded
    any_for: set[str] = set()
    for _sha, name, _seen, code, ret, status in ledger.reviews():
        latest[code, ret, name] = status
        any_for.add(code)
    best: dict[tuple[str, str], tuple[str, str]] = {}  # as `review.chosen_reviews`: a verified one first
    for (code, ret, name), status in latest.items():
        old = best.get((code, ret))
        if old is None or _REVIEW_RANK.get(status, 0) >= _REVIEW_RANK.get(old[0], 0):
            best[code, ret] = (status, name)
    lines = []
    for line in board.lines:
        if line.state != "ok":
            lines.append(line)
            continue
        status, name = best.get((line.code, line.sha256), ("stale" if line.code in any_for else "pending", ""))
        lines.append(replace(line, review=status if status in ("verified", "stale") else "pending", review_file=name))
    return replace(board, lines=lines)


def _round_name(name: str, rnd) -> str:
    """A name as the round shows it: relative to the round's folder (收回/城关镇.xlsx)."""
    prefix = str(rnd.root) + os.sep
    return name[len(prefix):] if name.startswith(prefix) else name


def _relative(cand, rnd):
    return dataclasses.replace(cand, name=_round_name(cand.name, rnd))


def _keep(cand, ledger) -> tuple[str, int] | None:
    """Keep a candidate's bytes by content before it is checked: (sha256, size), or None when there is
    nothing that can be kept (unreadable, or refused before reading: too large, a bomb)."""
    from .collect import ARCHIVE_ERRORS, member_bytes
    from .container import MAX_FILE_BYTES

    if cand.problem is not None and cand.problem[0] not in (Code.PASSWORD_PROTECTED,):
        return None
    try:
        if cand.route:
            data = member_bytes(Path(cand.path), cand.route)
        else:
            with open(cand.path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
    except (*ARCHIVE_ERRORS, MemoryError):
        return None
    if not data or len(data) > MAX_FILE_BYTES:
        return None
    return ledger.keep(data), len(data)


def _kept_again(ledger, ctx: Context, present: set[str], every_file: bool) -> list:
    """Kept files absent from 收回/ to check again from their copies: (candidate, (sha256, size))."""
    from .collect import Candidate
    from .ledger import context_key, kept_path

    key = context_key(ctx)
    return [(Candidate(str(kept_path(ledger.files, k.sha256)), k.name), (k.sha256, k.size, False))
            for k in ledger.kept(key) if k.sha256 not in present
            and (every_file or k.verdict is None or k.verdict.context != key)]


def _sightings(coll: Collection, kept: list, ctx: Context, seen: dt.datetime):
    from .board import verdict_of
    from .ledger import Sighting, context_key

    key = context_key(ctx)
    for k, got in enumerate(kept):
        if got is not None:
            res = coll.results[k]
            same = res.sha256 in ("", got[0])         # not changed on disk between keeping and checking
            yield Sighting(got[0], got[1], res.name, verdict_of(res, ctx, key, seen) if same else None,
                           seen=len(got) < 3)
