"""The three jobs end to end, as the CLI runs them: generate, check, rank.

Each takes the user's files (or None for the bundled Taiqian defaults) and returns data; the CLI
renders it. Bad inputs come back as issues; only a broken rubric, roster or settings file raises
`AssessError`, because nothing can be checked against it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .checks import Context
from .collect import Collection, check_paths
from .ranking import Ranking, rank_townships, write_ranking
from .rubric import load_rubric
from .settings import load_settings, load_townships, select_townships
from .writer import Mover, build_workbook, file_name

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
    coll = check_paths(paths, ctx, _importing_pandas(progress), workers, output=out)
    ranking = rank_townships(coll, ctx, now)
    write_ranking(ranking, out)
    return coll, ranking


def _importing_pandas(progress: Progress | None) -> Progress:
    """`progress`, which also imports pandas (half a second) when the first files are checked: the
    ranking needs it, and while a process pool checks the other files this process only waits."""
    def tick(done: int, total: int) -> None:
        import pandas  # noqa: F401  (costs only the first time)

        if progress:
            progress(done, total)

    return tick
