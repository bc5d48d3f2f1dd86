"""The command line: parse options, call one library function, render the result.

Heavy imports happen inside the commands, so `xlsx-assess --help` is instant.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

app = typer.Typer(
    help="xlsx-assess：由评分细则生成乡镇考核表，核查收回的表格，生成全县排名。\n\n"
         "Rubric → locked township workbooks → checked returns → county ranking.",
    add_completion=False, no_args_is_help=True, rich_markup_mode=None,
)

RubricOpt = typer.Option(None, "--rubric", help="评分细则 rubric.csv（默认：内置台前县细则）", show_default=False)
TownshipsOpt = typer.Option(None, "--townships", help="乡镇名单 townships.csv（默认：内置台前县名单）", show_default=False)
SettingsOpt = typer.Option(None, "--settings", help="参数设置 settings.toml（默认：内置设置）", show_default=False)
YearOpt = typer.Option(None, "--year", help="考核年度（默认：设置文件中的年度）", show_default=False)
RoundOpt = typer.Option(None, "--round", help="考核轮次文件夹（默认：当前文件夹或其上级中的轮次）", show_default=False)
JsonOpt = typer.Option(False, "--json", help="以 JSON 输出结果（供程序使用）")
WorkersOpt = typer.Option(None, "--workers", help="并行进程数（默认：CPU 核数；文件少时不并行）", show_default=False)
STATUS_ZH = {"ok": ("✔ 合格", "green"), "warning": ("⚠ 有警告", "yellow"), "error": ("✖ 有错误", "red")}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}
SHOWN_ISSUES = 40                  # issues listed per file; the rest are in --json and the ranking workbook
# Characters that would act on the terminal rather than show (controls, ESC, and the bidirectional
# overrides that reorder what is read): a file name, a sheet name or a cell's text shows them as \x1b.
UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# Plain stand-ins for the symbols a console's encoding may lack (GBK has no ✔ ✖ ⚠ › −), best first.
FALLBACKS = {"✔": ("√", "OK"), "✖": ("×", "X"), "⚠": ("!",), "›": (">",), "−": ("-",), "–": ("-",), "—": ("-",),
             "…": ("...",), "·": ("*",), "→": ("->",), "“": ('"',), "”": ('"',)}


def main() -> None:
    for stream in (sys.stdout, sys.stderr):       # whatever else writes (click's usage errors) never crashes
        if stream is not None and not _carries_all(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    app()


def _console(stderr: bool = False):
    """A rich console on stdout or stderr; when the stream's encoding cannot carry every character, the
    symbols become their plain stand-ins and any other character an escape (\\u5408), never an error."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if _carries_all(stream):
        return Console(stderr=stderr, highlight=False)
    return Console(file=_PlainStream(stream), highlight=False)


def _carries_all(stream) -> bool:
    """Whether the stream's encoding can encode any text (UTF-8/16/32, GB18030)."""
    import codecs

    try:
        name = codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name
    except LookupError:
        return False
    return name.startswith("utf") or name == "gb18030"


class _PlainStream:
    """A text stream that writes only what its encoding can carry: symbols by FALLBACKS, the rest escaped."""

    def __init__(self, stream):
        import codecs

        self._stream = stream
        self.encoding = codecs.lookup(getattr(stream, "encoding", None) or "ascii").name
        self._table = str.maketrans({s: next((c for c in (s, *alts) if _encodes(c, self.encoding)), alts[-1])
                                     for s, alts in FALLBACKS.items()})

    def write(self, text: str) -> int:
        plain = text.translate(self._table).encode(self.encoding, "backslashreplace").decode(self.encoding)
        return self._stream.write(plain)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _print_json(data) -> None:
    """JSON for programs: plain ASCII (\\u escapes) unless stdout carries any text, so it parses whatever the
    console's encoding."""
    print(json.dumps(data, ensure_ascii=not _carries_all(sys.stdout), indent=2))


@contextmanager
def _guard() -> Iterator[None]:
    """Render a fatal AssessError (a broken rubric, roster or settings file) and exit 2."""
    from .issues import AssessError

    try:
        yield
    except AssessError as exc:
        err = _console(stderr=True)
        err.print("[red]无法继续：以下文件有误，请修改后重试。[/]")
        for i in exc.report.issues:
            err.print(f"  [{SEVERITY_STYLE[i.severity]}]{i.code}[/] {_esc(i.render())}")
        raise typer.Exit(2)


@contextmanager
def _progress(label: str, enabled: bool = True):
    """A progress bar on stderr for long work; a no-op callback when not on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=_console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _esc(text: str) -> str:
    """`text` for rich markup: shown as it is, whatever it holds."""
    from rich.markup import escape

    return escape(_plain(text))


def _plain(text: str) -> str:
    """`text` with every character that would act on the terminal shown as an escape (ESC as \\x1b)."""
    return UNSHOWABLE.sub(_shown_char, text) if UNSHOWABLE.search(text) else text


def _shown_char(m: re.Match) -> str:
    c = ord(m[0])
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


@app.command()
def generate(
    out: Optional[Path] = typer.Option(None, "--out", help="输出目录，每个乡镇一个 .xlsx（不写：在考核轮次中写入 下发/）",
                                       show_default=False),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
    year: Optional[int] = YearOpt,
    only: Optional[list[str]] = typer.Option(None, "--only", help="只生成这些乡镇（代码或名称，可重复）"),
    password: Optional[str] = typer.Option(None, "--password", help="工作表保护密码（默认不设密码）"),
    round_dir: Optional[Path] = RoundOpt,
    force: bool = typer.Option(False, "--force", help="考核轮次中：覆盖按另一版评分细则生成的考核表"),
) -> None:
    """生成各乡镇考核表 Generate one locked, validated workbook per township.

    在考核轮次中（当前文件夹或 --round）不带 --out：按 考核设置.xlsx 写入 下发/。
    """
    from .workflow import generate_workbooks, load_context

    with _guard():
        if out is None:
            ctx, done = _generate_in_round(round_dir, force, only, password, (rubric, townships, settings, year))
        else:
            ctx = load_context(rubric, townships, settings, year)
            with _progress("生成考核表") as progress:
                done = generate_workbooks(out, ctx, only, password, progress)
    con = _console()
    for g in done:
        con.print(f"[green]✔[/] {_esc(g.township)}（{g.code}） → {_esc(str(g.path))}")
    con.print(f"已生成 {len(done)} 个考核表，{ctx.settings.year} 年度，评分细则 {ctx.rubric.fingerprint[:12]}，"
              f"共 {len(ctx.rubric.items)} 项（基础项 {len(ctx.rubric.base)} 项）。")


@app.command()
def check(
    paths: Optional[list[Path]] = typer.Argument(None, help="收回的文件、文件夹（含子文件夹）或 .zip 压缩包"
                                                           "（在考核轮次文件夹内可省略：核查 收回/）", show_default=False),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
    year: Optional[int] = YearOpt,
    as_json: bool = JsonOpt,
    workers: Optional[int] = WorkersOpt,
    round_dir: Optional[Path] = RoundOpt,
) -> None:
    """核查收回的考核表 Check returned workbooks, file by file and cell by cell.

    退出码 exit code: 0 没有错误 no errors · 1 有文件有错误 some file has errors · 2 用法或配置错误 usage.
    在考核轮次中 in a round: 0 各乡镇均已合格 every township ok · 1 否则 otherwise.
    """
    from .workflow import check_files, load_context

    if not paths:
        _check_in_round(round_dir, as_json, workers)
    with _guard():
        ctx = load_context(rubric, townships, settings, year)
        with _progress("核查文件", not as_json) as progress:
            coll = check_files(paths, ctx, progress, workers)
    if as_json:
        from .report import collection_json

        _print_json(collection_json(coll))
    else:
        _render_collection(coll, ctx.settings.score_decimals)
    raise typer.Exit(1 if coll.has_errors else 0)


@app.command()
def rank(
    paths: list[Path] = typer.Argument(..., help="收回的文件、文件夹（含子文件夹）或 .zip 压缩包"),
    out: Path = typer.Option(..., "--out", help="排名工作簿 .xlsx"),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
    year: Optional[int] = YearOpt,
    as_json: bool = JsonOpt,
    workers: Optional[int] = WorkersOpt,
) -> None:
    """核查并排名 Check the returned workbooks and write the county ranking workbook.

    退出码 exit code: 0 排名已生成 written · 2 用法或配置错误 usage.
    """
    from .workflow import load_context, rank_files

    with _guard():
        ctx = load_context(rubric, townships, settings, year)
        with _progress("核查并排名", not as_json) as progress:
            coll, ranking = rank_files(paths, out, ctx, progress, workers)
    if as_json:
        from .report import ranking_json

        _print_json(ranking_json(ranking, coll))
        return
    _render_collection(coll, ctx.settings.score_decimals, brief=True)
    _render_ranking(ranking)
    _console().print(f"排名工作簿已写入 {_esc(str(out))}")


@app.command("rubric")
def rubric_cmd(path: Optional[Path] = typer.Argument(None, help="评分细则 rubric.csv 或 考核设置.xlsx（默认：内置台前县细则）"),
               versions: Optional[list[Path]] = typer.Argument(None, help="rubric diff OLD NEW：两个版本", show_default=False),
               ) -> None:
    """检查评分细则 Validate a rubric and show its lines, points and fingerprint.

    xlsx-assess rubric diff OLD NEW：列出两个版本的改动（CSV、考核设置.xlsx 或考核轮次文件夹）；
    退出码 exit code: 0 相同 same · 1 有改动 differ · 2 无法读取 unreadable.
    """
    if (path is not None and str(path) == "diff") or versions:
        _rubric_diff((versions or []) if str(path) == "diff" else [])
    from rich.table import Table

    from .round import read_any_rubric
    from .rubric import format_points, read_rubric

    with _guard():
        rub, report = read_any_rubric(path) if path else read_rubric(None)
    con = _console()
    for i in report.issues:
        con.print(f"[{SEVERITY_STYLE[i.severity]}]{i.code}[/] {_esc(i.render())}")
    if rub is None:
        con.print(f"[red]评分细则有 {len(report.errors)} 处错误，请修改后重试。[/]")
        raise typer.Exit(1)
    table = Table("内容", "项数", "分值")
    for c in rub.categories:
        items = [i for i in rub.items if i.category == c]
        table.add_row(c, str(len(items)), format_points(rub.category_max(c)) if c in rub.scored_categories else "特别项")
    con.print(table)
    con.print(f"共 {len(rub.items)} 项：基础项 {len(rub.base)}，加分项 {len(rub.bonus)}，减分项 {len(rub.deduction)}，"
              f"归零项 {1 if rub.zero else 0}。指纹 sha256 {rub.fingerprint}")


@app.command()
def codes(as_json: bool = JsonOpt) -> None:
    """列出全部问题代码 List every issue code the checks can report."""
    from .issues import CATALOGUE

    if as_json:
        _print_json([{"code": c.code, "severity": c.severity, "title": c.meaning, "message": c.template}
                     for c in CATALOGUE.values()])
        return
    from rich.table import Table

    table = Table("代码", "级别", "含义", "提示")
    for c in CATALOGUE.values():
        table.add_row(c.code, c.severity, c.meaning, _esc(c.template))
    _console().print(table)


def _render_collection(coll, decimals: int, brief: bool = False) -> None:
    """A line per file (with errors only, when brief) and its issues, printed at once: a rich Table per
    file would cost more than checking the file."""
    from rich.text import Text

    from .collect import missing_issue
    from .scoring import show

    out = Text()
    for k, h in enumerate(coll.heads):
        if brief and h.status == "ok":
            continue                              # not read back from disk
        r = coll.results[k]
        town = f"{r.township.name}（{r.township.code}）" if r.township else "身份不明"
        role = {"superseded": " · 未采用（有更新的文件）", "duplicate": " · 重复文件"}.get(r.role, "")
        out.append_text(Text.assemble(STATUS_ZH[r.status], f"  {_plain(r.name)}  ", (_plain(town), "bold"), role,
                                      f"  最终得分 {show(r.scores.final, decimals)}" if r.accepted else "", "\n"))
        shown = [i for i in r.report if not brief or i.severity == "error"]
        if shown:
            out.append_text(_grid(("代码", "工作表", "单元格", "说明"), [
                [(i.code, SEVERITY_STYLE[i.severity]), i.sheet, i.cell, i.message] for i in shown[:SHOWN_ISSUES]],
                indent="    "))
            if len(shown) > SHOWN_ISSUES:
                out.append(f"    … 另有 {len(shown) - SHOWN_ISSUES} 条，完整清单见 --json 或排名工作簿的“问题清单”。\n")
    for s in coll.skipped:
        out.append(f"· {_plain(s.issue.render())}\n", "dim")
    for t in coll.missing:
        out.append_text(Text.assemble(("✖", "red"), f" {_plain(missing_issue(t).render())}\n"))
    s = coll.summary()
    out.append(f"收到 {s['received']} 个文件：合格 {s['ok']}，有警告 {s['warning']}，有错误 {s['error']}，"
               f"重复 {s['duplicate']}，被替代 {s['superseded']}，跳过 {s['skipped']}；"
               f"采用 {s['accepted']}，未提交乡镇 {s['missing']} 个。")
    _console().print(out, soft_wrap=True)


def _render_ranking(rk) -> None:
    shown = rk.ranking.drop(columns=["归零", "乡镇代码"])
    from .scoring import show

    rows = [[show(v, rk.decimals) if isinstance(v, float) else str(v) for v in row]
            for row in shown.itertuples(index=False)]
    numeric = {k for k, dtype in enumerate(shown.dtypes) if dtype.kind in "iuf"}
    table = _grid(list(shown.columns), rows, right=numeric)
    table.rstrip()
    _console().print("排名", table, sep="\n", soft_wrap=True)


def _grid(header, rows, indent: str = "", right: frozenset[int] | set[int] = frozenset()):
    """Rows in aligned columns (by display width: a Chinese character is two), a bold header first, as
    one rich Text; a cell is a string or (string, style). What a rich Table shows, in a hundredth of
    its time for a thousand rows."""
    from rich.cells import cell_len
    from rich.text import Text

    cells = [[(_plain(c[0]), c[1]) if isinstance(c, tuple) else (_plain(str(c)), "") for c in row]
             for row in [header, *rows]]
    widths = [max(cell_len(row[k][0]) for row in cells) for k in range(len(header))]
    out = Text()
    for n, row in enumerate(cells):
        while len(row) > 1 and not row[-1][0]:      # no trailing blanks
            row.pop()
        out.append(indent)
        for k, (text, style) in enumerate(row):
            pad = " " * (widths[k] - cell_len(text))
            last = k == len(row) - 1
            out.append(pad if k in right else "")
            out.append(text, "bold" if n == 0 else style)
            out.append("" if k in right or last else pad)
            out.append("\n" if last else "  ")
    return out


# -- a round: check and status with no options --------------------------------------------------------

STATE_STYLE = {"ok": ("✔", "green"), "fix": ("✖", "red"), "missing": ("…", "yellow")}
ROLE_ZH = {"used": "最新", "superseded": "已被更新文件替代", "duplicate": "重复", "other_version": "用了旧表"}


def _round_or_exit(round_dir: Optional[Path]):
    """The round named by --round, or the one holding the current folder; exit 2 outside any round."""
    from .round import find_round

    rnd = find_round(round_dir) if round_dir else find_round()
    if rnd is None:
        where = f"“{round_dir}”不是考核轮次文件夹" if round_dir else "当前文件夹不在考核轮次中"
        _console(stderr=True).print(f"[red]{_esc(where)}：请给出要核查的文件或文件夹，或用 --round 指定轮次文件夹"
                                    "（由 xlsx-assess init 创建）。[/]")
        raise typer.Exit(2)
    return rnd


def _check_in_round(round_dir: Optional[Path], as_json: bool, workers: Optional[int]) -> None:
    """`check` inside a round: 收回/ checked, every file kept and recorded, the board printed."""
    from .workflow import check_round, load_round_context

    rnd = _round_or_exit(round_dir)
    with _guard():
        ctx = load_round_context(rnd)
        with _progress("核查文件", not as_json) as progress:
            coll, board = check_round(rnd, ctx, progress, workers)
    if as_json:
        from .report import collection_json

        _print_json(dict(collection_json(coll), townships=[line.as_dict() for line in board.lines],
                         setup_suspect=board.setup_suspect.as_dict() if board.setup_suspect else None))
    else:
        _render_board(board, skipped=coll.skipped)
    raise typer.Exit(0 if board.complete else 1)


@app.command()
def status(round_dir: Optional[Path] = RoundOpt, as_json: bool = JsonOpt) -> None:
    """查看本轮收件情况 Show the round's board and, per township, every file received (from the ledger).

    退出码 exit code: 0 各乡镇均已合格 every township ok · 1 否则 otherwise · 2 不在考核轮次中 usage.
    """
    from .workflow import load_round_context, round_status

    rnd = _round_or_exit(round_dir)
    with _guard():
        board = round_status(rnd, load_round_context(rnd))
    if as_json:
        _print_json({"townships": [dict(line.as_dict(), history=[f.as_dict() for f in line.history])
                                   for line in board.lines],
                     "unassigned": [f.as_dict() for f in board.unassigned],
                     "setup_suspect": board.setup_suspect.as_dict() if board.setup_suspect else None})
    else:
        _render_board(board, history=True)
    raise typer.Exit(0 if board.complete else 1)


def _render_board(board, skipped=(), history: bool = False) -> None:
    """One line per township (state, file, score or what is wrong, 填报人 电话); its files when `history`."""
    from rich.text import Text

    out = Text()
    if board.setup_suspect is not None:
        out.append(f"✖ {board.setup_suspect.code} {_plain(board.setup_suspect.message)}\n", "bold red")
    for line in board.lines:
        _render_line(out, line, detail=board.setup_suspect is None, history=history)
    for f in board.unassigned:
        out.append(f"? 无法确定所属乡镇：{_plain(f.name)}（{' '.join(f.issue_codes)}）\n", "yellow")
    for s in skipped:
        out.append(f"· {_plain(s.issue.render())}\n", "dim")
    out.append(f"共 {len(board.lines)} 个乡镇：已合格 {board.count('ok')}，需改正 {board.count('fix')}，"
               f"未收到 {board.count('missing')}。")
    _console().print(out, soft_wrap=True)


def _render_history(out, line) -> None:
    for f in line.history:
        score = f"  {f.score}" if f.score is not None and f.status != "error" else ""
        also = f"  （又名 {_plain('、'.join(f.names[1:]))}）" if len(f.names) > 1 else ""
        out.append(f"      {_when_text(f.first_seen)}  {_plain(f.name)}  {STATUS_ZH[f.status][0]}"
                   f" · {ROLE_ZH.get(f.role, f.role)}{score}{also}\n", "dim")


def _render_line(out, line, detail: bool = True, history: bool = False) -> None:
    from rich.text import Text

    mark, style = STATE_STYLE[line.state]
    contact = "  ".join(x for x in (line.reporter and f"填报人 {line.reporter}", line.phone and f"电话 {line.phone}") if x)
    old = line.state == "fix" and line.history and line.history[-1].role == "other_version"
    what = (f"最终得分 {line.score} {line.grade}" if line.state == "ok" else "用了旧表" if old
            else f"{len(line.issues)} 处问题" if line.state == "fix" else "请催报")
    out.append_text(Text.assemble((f"{mark} {line.state_zh}", style), "  ", (_plain(f"{line.township}（{line.code}）"), "bold"),
                                  f"  {_plain(line.file)}  " if line.file else "  ", what,
                                  f"  {_plain(contact)}" if contact else "", "\n"))
    if history:
        _render_history(out, line)
    if detail and line.state == "fix":
        shown = [i for i in line.issues if i.severity != "info"] or list(line.issues)
        out.append_text(_grid(("代码", "工作表", "单元格", "说明"), [
            [(i.code, SEVERITY_STYLE[i.severity]), i.sheet, i.cell, i.message] for i in shown[:SHOWN_ISSUES]],
            indent="    "))


def _when_text(t) -> str:
    """A local time with its UTC offset: 2026-11-30 20:15（UTC+08:00）."""
    if t is None:
        return "时间不详"
    t = t.astimezone()
    off = t.strftime("%z")
    return f"{t:%Y-%m-%d %H:%M}（UTC{off[:3]}:{off[3:]}）"
# -- a round: init, generate inside one, rubric diff ----------------------------------------------

@app.command()
def init(
    folder: Path = typer.Argument(..., help="新考核轮次的文件夹"),
    year: Optional[int] = typer.Option(None, "--year", help="考核年度（默认：设置中的年度；--from 时为上一轮 +1）",
                                       show_default=False),
    from_round: Optional[Path] = typer.Option(None, "--from", help="以上一轮考核轮次的设置为基础", show_default=False),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
) -> None:
    """创建考核轮次 Make a round folder: 考核设置.xlsx, 下发/, 收回/, 结果/.

    退出码 exit code: 0 已创建 made · 2 无法创建（已存在、文件有误）refused.
    """
    from .round import RETURNED, SENT, SETUP_BOOK, init_round, load_round_context

    with _guard():
        rnd = init_round(folder, year, from_round, rubric, townships, settings)
        ctx = load_round_context(rnd)
    _console().print(
        f"[green]✔[/] 已创建考核轮次 {_esc(str(rnd.root))}：{ctx.settings.year} 年度，评分细则 {len(ctx.rubric.items)} 项，"
        f"乡镇 {len(ctx.townships)} 个。\n下一步：用 WPS 或 Excel 检查 {SETUP_BOOK}，然后在该文件夹中运行 "
        f"xlsx-assess generate（考核表写入 {SENT}/），收回的文件放入 {RETURNED}/。")


def _generate_in_round(round_dir, force: bool, only, password, given: tuple):
    """`generate` without --out: the round's setup, into its 下发/."""
    from .round import generate_round, load_round_context, open_round

    if any(v is not None for v in given):
        _console(stderr=True).print("[red]在考核轮次中生成考核表不用 --rubric、--townships、--settings、--year："
                                    "请修改 考核设置.xlsx；或用 --out 指定输出目录。[/]")
        raise typer.Exit(2)
    rnd = open_round(round_dir)
    with _progress("生成考核表") as progress:
        done = generate_round(rnd, force, only, password, progress)
    return load_round_context(rnd), done


def _rubric_diff(paths: list[Path]) -> None:
    """`rubric diff OLD NEW`: the changes in Chinese; exit 0 same, 1 differ, 2 unreadable."""
    from .changes import compatible, diff_rubrics
    from .round import read_any_rubric

    con = _console()
    if len(paths) != 2:
        _console(stderr=True).print("[red]用法：xlsx-assess rubric diff 旧版本 新版本（CSV、考核设置.xlsx 或考核轮次文件夹）[/]")
        raise typer.Exit(2)
    with _guard():
        read = [read_any_rubric(p) for p in paths]
    for _, report in read:
        for i in report.issues:
            con.print(f"[{SEVERITY_STYLE[i.severity]}]{i.code}[/] {_esc(i.render())}")
    (old, _), (new, _) = read
    if old is None or new is None:
        con.print("[red]评分细则有误，无法比较，请修改后重试。[/]")
        raise typer.Exit(2)
    changes = diff_rubrics(old, new)
    for c in changes:
        con.print(f"  {_esc(c.text)}")
    if not changes:
        con.print("两个版本相同。")
        raise typer.Exit(0)
    con.print(f"共 {len(changes)} 处改动。" + ("只改了文字（编号、类型、分值未变），按旧版填写的表仍可核对。"
                                            if compatible(old, new) else "编号、类型或分值有变化，按旧版填写的表需要重新下发。"))
    raise typer.Exit(1)


# -- a round in the browser -----------------------------------------------------------------------------

@app.command()
def serve(
    round_dir: Optional[Path] = RoundOpt,
    port: int = typer.Option(8765, "--port", help="端口"),
    host: str = typer.Option("127.0.0.1", "--host", help="监听地址（默认只允许本机访问；其他地址需使用启动时显示的令牌网址）"),
    no_browser: bool = typer.Option(False, "--no-browser", help="不自动打开浏览器"),
) -> None:
    """在浏览器中操作本轮考核 Serve the round's page (needs: pip install .[web]); Ctrl+C to stop."""
    rnd = _round_or_exit(round_dir)
    try:
        from .web import serve as run
    except ImportError as exc:
        _console(stderr=True).print(f"[red]网页功能需要先安装：pip install \"xlsx-assess[web]\"（缺少 {_esc(exc.name or '')}）[/]")
        raise typer.Exit(2)

    def announce(url: str) -> None:
        _console().print(f"考核轮次 {_esc(str(rnd.root))} 的网页已启动：{_esc(url)}")
        if host != "127.0.0.1":
            _console().print("[yellow]其他电脑访问时请使用上面的完整网址（含令牌 token，0.0.0.0 换成本机的 IP 地址），"
                             "不要转发给无关人员。[/]")
        _console().print("按 Ctrl+C 停止。")

    with _guard():
        run(rnd, host, port, not no_browser, announce)
