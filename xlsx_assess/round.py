"""A round (考核轮次) on disk: the folder `init` makes and every command inside it finds.

    DIR/
      考核设置.xlsx        the setup the clerk edits: 评分细则, 乡镇名单, 考核参数, 说明
      下发/               the forms `generate` writes
      收回/               where the clerk puts what townships send (files, folders, zips)
      结果/               核查结果.xlsx, 排名.xlsx, 排名.csv
      核定/               the 核定表s `review` writes, filled in by the county's 考核组
      反馈/               the 反馈单s `feedback` writes; those townships send back are put here too
      .xlsx-assess/       the round's own: round.json (its marker), ledger.sqlite, files/ (every file
                          received, by content), rubrics/ (every rubric version forms were made from)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

SETUP_BOOK = "考核设置.xlsx"
SENT, RETURNED, RESULTS = "下发", "收回", "结果"
REVIEWS = "核定"                      # the 核定表s (review.py)
FEEDBACK = "反馈"                     # the 反馈单s `feedback` writes, and where the clerk puts those sent back
RANKING_BOOK = "排名.xlsx"            # in 结果/
STATE_DIR = ".xlsx-assess"
MARKER = "round.json"


@dataclass(frozen=True)
class Round:
    root: Path

    @property
    def setup(self) -> Path:
        return self.root / SETUP_BOOK

    @property
    def sent(self) -> Path:
        return self.root / SENT

    @property
    def returned(self) -> Path:
        return self.root / RETURNED

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def reviews(self) -> Path:
        return self.root / REVIEWS

    @property
    def feedback(self) -> Path:
        return self.root / FEEDBACK

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def marker(self) -> Path:
        return self.state / MARKER

    @property
    def ledger(self) -> Path:
        return self.state / "ledger.sqlite"

    @property
    def files(self) -> Path:
        return self.state / "files"

    @property
    def rubrics(self) -> Path:
        return self.state / "rubrics"


def find_round(start: str | Path | None = None) -> Round | None:
    """The round holding `start` (default: the current folder): that folder or its nearest parent with
    a round's marker; None outside any round, or where `start` does not exist (a mistyped --round inside
    a round is not that round)."""
    here = Path(start or Path.cwd()).resolve()
    if not here.exists():
        return None
    for folder in (here, *here.parents):
        if (folder / STATE_DIR / MARKER).is_file():
            return Round(folder)
    return None


# -- making a round and working in it -------------------------------------------------------------
# Heavy modules are imported inside the functions: `find_round` runs before every command.

def open_round(path: str | Path | None = None) -> Round:
    """The round at `path` (a round folder or a folder inside one; default: the current folder), or
    AssessError (R207) saying how to make one."""
    found = find_round(path)
    if found is None:
        from .issues import AssessError, Code, Report, issue

        detail = ("没有这个文件夹，请检查路径是否写对。" if path is not None and not Path(path).exists() else
                  "请先用 xlsx-assess init 创建考核轮次并在其中运行，或用 --round 指定考核轮次文件夹。")
        raise AssessError(Report([issue(Code.NOT_A_ROUND, value=str(Path(path or Path.cwd())), detail=detail)]))
    return found


def init_round(folder: str | Path, year: int | None = None, from_round: str | Path | None = None,
               rubric: str | Path | None = None, townships: str | Path | None = None,
               settings: str | Path | None = None):
    """Make a round in `folder`: 考核设置.xlsx from the given files (each, when None, from the previous round
    `from_round` with its year + 1, or else the bundled default), the folders 下发/ 收回/ 结果/, and the
    marker .xlsx-assess/round.json last. Refuses (R206) a folder that already holds a round or a setup."""
    from .settings import check_year

    rnd = Round(Path(folder).resolve())
    _refuse_existing(rnd)
    check_year(year)
    ctx = _starting_context(from_round, rubric, townships, settings)
    ctx = replace(ctx, settings=ctx.settings.with_year(year if year is not None else
                                                       ctx.settings.year + (from_round is not None)))
    check_year(ctx.settings.year)
    from .setup_book import write_setup_book
    from .writer import check_writable

    check_writable(rnd.root, folder=True)
    for sub in (rnd.sent, rnd.returned, rnd.results, rnd.rubrics):
        sub.mkdir(parents=True, exist_ok=True)
    write_setup_book(ctx.rubric, ctx.townships, ctx.settings, rnd.setup)
    _write_marker(rnd, ctx.settings.year, from_round)
    return rnd


def _refuse_existing(rnd: Round) -> None:
    there = [p for p in (rnd.marker, rnd.setup) if p.exists()]
    if there:
        from .issues import AssessError, Code, Report, issue

        raise AssessError(Report([issue(Code.ROUND_EXISTS, file=str(rnd.root),
                                        detail="已有 " + "、".join(str(p.relative_to(rnd.root)) for p in there))]))


def _starting_context(from_round, rubric, townships, settings):
    """The rubric, roster and settings a new round starts from: the given files first, then the previous
    round's setup, then the bundled defaults."""
    from .checks import Context
    from .rubric import load_rubric
    from .settings import load_settings, load_townships

    if from_round is None:
        return Context(load_rubric(rubric), load_settings(settings), load_townships(townships))
    prev = load_round_context(open_round(from_round))
    return Context(load_rubric(rubric) if rubric else prev.rubric,
                   load_settings(settings) if settings else prev.settings,
                   load_townships(townships) if townships else prev.townships)


def _write_marker(rnd: Round, year: int, from_round: str | Path | None = None) -> None:
    import datetime as dt
    import json
    import os

    from . import __version__
    from .writer import atomic_path

    marker = {"tool": "xlsx-assess", "version": __version__, "year": year,
              "created": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    if from_round is not None:                  # the previous round: by path, and relative to this one
        prev = open_round(from_round).root
        marker["from"] = str(prev)
        try:
            marker["from_relative"] = os.path.relpath(prev, rnd.root)
        except ValueError:                      # another drive (Windows): the path alone
            pass
    with atomic_path(rnd.marker) as staged:
        staged.file.write(json.dumps(marker, ensure_ascii=False, indent=2).encode("utf-8"))


def read_marker(rnd: Round) -> dict:
    """What round.json says (tool, version, year, created); {} where it cannot be read."""
    import json

    try:
        data = json.loads(rnd.marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_round_context(rnd: Round):
    """The round's Context, from its 考核设置.xlsx, with every other rubric version its forms were made from;
    AssessError with every problem, located, if unusable."""
    from .setup_book import load_setup_book

    ctx = load_setup_book(rnd.setup)
    ctx.versions = {sha: r for sha, r in stored_rubrics(rnd).items() if sha != ctx.rubric.fingerprint}
    return ctx


# -- the rubric versions forms were made from -----------------------------------------------------

def store_rubric(rnd: Round, rubric) -> Path:
    """Keep `rubric` as .xlsx-assess/rubrics/<sha256>.csv (written atomically; kept if already there)."""
    from .rubric import rubric_csv
    from .writer import atomic_path

    path = rnd.rubrics / f"{rubric.fingerprint}.csv"
    if stored_rubric(rnd, rubric.fingerprint) is None:
        with atomic_path(path) as staged:
            staged.file.write(rubric_csv(rubric))
    return path


def stored_rubric(rnd: Round, sha256: str):
    """The rubric version `sha256` the round made forms from; None if it does not keep it."""
    from .rubric import read_rubric

    path = rnd.rubrics / f"{sha256}.csv"
    if not path.is_file():
        return None
    rubric, _ = read_rubric(path)
    return rubric if rubric is not None and rubric.fingerprint == sha256 else None


def stored_rubrics(rnd: Round) -> dict:
    """Every rubric version the round keeps, by fingerprint."""
    found = {p.stem: stored_rubric(rnd, p.stem) for p in sorted(rnd.rubrics.glob("*.csv"))}
    return {sha: r for sha, r in found.items() if r is not None}


def read_any_rubric(path: str | Path):
    """(Rubric or None, Report) from a rubric CSV, a setup workbook (.xlsx) or a round folder's setup."""
    from .rubric import read_rubric
    from .setup_book import read_setup_rubric

    path = Path(path)
    if path.is_dir():
        return read_setup_rubric(open_round(path).setup)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return read_setup_rubric(path)
    return read_rubric(path)


# -- generating the forms -------------------------------------------------------------------------

def generate_round(rnd: Round, force: bool = False, only: list[str] | None = None, password: str | None = None,
                   progress=None):
    """Write the round's forms into 下发/ from its setup, keeping the rubric version they are made from.

    A form already in 下发/ made from another rubric version is not overwritten without `force`:
    AssessError (R208) saying what changed (against the stored version the form names)."""
    from .settings import select_townships
    from .workflow import generate_workbooks

    ctx = load_round_context(rnd)
    chosen = select_townships(ctx.townships, only)
    others = _forms_of_other_versions(rnd, ctx, chosen)
    if others and not force:
        raise _other_version_error(rnd, ctx.rubric, others)
    changed = _settings_changed(rnd, ctx, chosen)
    if changed and not force:
        raise changed
    store_rubric(rnd, ctx.rubric)
    done = generate_workbooks(rnd.sent, ctx, only, password, progress)
    _record_settings(rnd, ctx.settings)
    return done


SENT_SETTINGS = "sent-settings.json"     # in .xlsx-assess/: the settings the forms in 下发/ were made with
NOT_ON_THE_FORM = ("missing_note_severity", "upload_max_files", "upload_max_mb")


def _shown_settings(settings) -> dict[str, tuple[str, str]]:
    """Every setting printed on a form: key -> (its 考核参数 label, its value as the sheet shows it)."""
    from .setup_book import SETTING_ROWS, show_setting

    return {r.key: (r.label, show_setting(r, getattr(settings, r.key))) for r in SETTING_ROWS
            if r.key not in NOT_ON_THE_FORM}


def _settings_changed(rnd: Round, ctx, chosen):
    """AssessError (R209) naming every setting changed since forms now in 下发/ were made; None if none."""
    import json

    from .writer import file_name

    sent = [t for t in chosen if (rnd.sent / file_name(t, ctx.settings.year)).is_file()]
    try:
        before = json.loads((rnd.state / SENT_SETTINGS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    now = _shown_settings(ctx.settings)
    diffs = [f"{label} {_short(str(before.get(key, '')))} → {_short(value)}" for key, (label, value) in now.items()
             if key in before and before[key] != value]
    if not sent or not diffs:
        return None
    from .issues import AssessError, Code, Report, issue

    return AssessError(Report([issue(Code.SETTINGS_CHANGED_AFTER_SENT, file=str(rnd.setup), value=len(sent),
                                     detail="；".join(diffs))]))


def _short(text: str, most: int = 24) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most - 1] + "…"


def _record_settings(rnd: Round, settings) -> None:
    import json

    from .writer import atomic_path

    shown = {key: value for key, (_, value) in _shown_settings(settings).items()}
    with atomic_path(rnd.state / SENT_SETTINGS) as staged:
        staged.file.write(json.dumps(shown, ensure_ascii=False, indent=1).encode("utf-8"))


def _forms_of_other_versions(rnd: Round, ctx, chosen) -> dict[str, list[Path]]:
    """Forms in 下发/ that generating `chosen` would overwrite and that name another rubric version, by it."""
    from .writer import file_name

    found: dict[str, list[Path]] = {}
    for t in chosen:
        path = rnd.sent / file_name(t, ctx.settings.year)
        sha = form_rubric_sha256(path) if path.is_file() else None
        if sha and sha != ctx.rubric.fingerprint:
            found.setdefault(sha, []).append(path)
    return found


def form_rubric_sha256(path: Path) -> str | None:
    """The rubric version a generated form names (xa_rubric_sha256 of its identity), None if it names none."""
    from .checks import read_identity
    from .reader import read_returned

    props, sheet = read_identity(read_returned(path))
    return (sheet or props).get("xa_rubric_sha256") or None


def _other_version_error(rnd: Round, rubric, others: dict[str, list[Path]]):
    from .changes import compatible, describe, diff_rubrics
    from .issues import AssessError, Code, Report, issue

    report = Report()
    for sha, paths in others.items():
        old = stored_rubric(rnd, sha)
        if old is None:
            detail = "那一版评分细则没有保存在本轮中，无法列出具体改动"
        else:
            detail = describe(diff_rubrics(old, rubric)) + ("（只改了文字，分值、类型未变）" if compatible(old, rubric) else "")
        report.add(issue(Code.FORMS_FROM_OTHER_RUBRIC, file=str(rnd.sent), value=len(paths), detail=detail))
    return AssessError(report)
