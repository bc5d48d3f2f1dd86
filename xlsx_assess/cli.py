"""The command line: parse options, call one library function, render the result.

Heavy imports happen inside the commands, so `xlsx-assess --help` is instant.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from typer.core import TyperCommand, TyperGroup

# The click this typer uses (its own copy since typer 0.22, click itself before): its exceptions, reached
# through the one typer exports, so the usage errors below are caught whichever it is.
CLICK_ERRORS = sys.modules[typer.BadParameter.__module__]
HELP_ZH = "显示本帮助并退出 Show this message and exit."
ABORTS = (typer.Abort, getattr(CLICK_ERRORS, "Abort", typer.Abort))    # click's own, where typer uses click


CLICK_CORE = sys.modules[CLICK_ERRORS.__name__.rsplit(".", 1)[0] + ".core"]
# click's help words, which come through gettext and so stay English, said in Chinese beside them
HELP_WORDS = {"Arguments": "参数 Arguments", "Options": "选项 Options", "Commands": "命令 Commands"}
HELP_MARKS = (("[required]", "[必填 required]"), ("[default: ", "[默认 default: "), ("; required]", "; 必填 required]"))


class _Formatter(CLICK_CORE.HelpFormatter):
    """click's help layout with its headings and marks in Chinese and English."""

    def write_heading(self, heading: str) -> None:
        super().write_heading(HELP_WORDS.get(heading, heading))

    def write_dl(self, rows, *args, **kwargs) -> None:
        super().write_dl([(_metavar(first), _marked(second)) for first, second in rows], *args, **kwargs)


def _metavar(first: str) -> str:
    """typer's `<list[Path]>` for a repeated value as `<path>...` (once: `versions...` has its dots already)."""
    return re.sub(r"(\.\.\.)? <list\[(\w+)\]>", lambda m: (m.group(1) or "") + f" <{m.group(2).lower()}>" + ("" if m.group(1) else "..."),
                  first)


def _marked(text: str) -> str:
    for english, both in HELP_MARKS:
        text = text.replace(english, both)
    return text


class _Context(CLICK_CORE.Context):
    formatter_class = _Formatter


class _Help:
    """The help in Chinese beside click's English: the usage line, the section headings, the required and
    default marks, and the --help option's own text."""

    context_class = _Context

    def format_usage(self, ctx, formatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), "用法 Usage: ")

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = HELP_ZH
        return option


class _Command(_Help, TyperCommand):
    def get_short_help_str(self, limit: int = 45) -> str:
        """The command's line in the top help: its Chinese name only (the English is cut there; its own --help
        has both)."""
        first = super().get_short_help_str(limit=1000)
        chinese = first.split(" ", 1)[0]
        return chinese if chinese and not chinese.isascii() else super().get_short_help_str(limit)

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except CLICK_ERRORS.UsageError as exc:     # the parser's own (an option without its value) lack it
            exc.ctx = exc.ctx or ctx
            raise


class _Group(_Help, TyperGroup):
    """The top command: a usage error (a missing option, an unknown option or command, a bad value, a path
    that does not exist) is told in Chinese with what to do, and exits 2. Its help lists the commands in
    the order a round uses them."""

    ORDER = ("init", "generate", "check", "status", "review", "rank", "feedback", "serve", "rubric", "codes")

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else len(self.ORDER))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except CLICK_ERRORS.UsageError as exc:
            code = _usage_error(exc)
        except CLICK_ERRORS.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except ABORTS:
            _console(stderr=True).print("已中止。")
            code = 1
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code

    def resolve_command(self, ctx, args):
        if args and not ctx.resilient_parsing and self.get_command(ctx, args[0]) is None:
            import difflib

            near = difflib.get_close_matches(args[0], self.list_commands(ctx), 1)
            raise Usage(f"没有“{args[0]}”这个命令。" + (f"是不是要用 {near[0]}？" if near else "")
                        + f"可用的命令：{'、'.join(self.list_commands(ctx))}。", ctx=ctx)
        return super().resolve_command(ctx, args)


class Usage(typer.BadParameter):
    """A usage error whose message is ours (Chinese) and shown as it is."""


app = typer.Typer(
    help="xlsx-assess：由评分细则生成乡镇考核表，核查收回的表格，生成全县排名。\n\n"
         "Rubric → locked township workbooks → checked returns → county ranking.",
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, cls=_Group,
)


def _existing(value):
    """A path option or argument: one that does not exist is a usage error naming it."""
    for path in value if isinstance(value, (list, tuple)) else [value]:
        if path is not None and not (path.exists() or path.is_symlink()):
            raise Usage(f"找不到“{_plain(str(path))}”：没有这个文件或文件夹。请检查路径是否写对（路径含空格时请加引号）。")
    return value


RubricOpt = typer.Option(None, "--rubric", help="评分细则 rubric.csv（默认：内置台前县细则）", show_default=False,
                         callback=_existing)
TownshipsOpt = typer.Option(None, "--townships", help="乡镇名单 townships.csv（默认：内置台前县名单）", show_default=False,
                            callback=_existing)
SettingsOpt = typer.Option(None, "--settings", help="参数设置 settings.toml（默认：内置设置）", show_default=False,
                           callback=_existing)
PathsArg = typer.Argument(..., help="收回的文件、文件夹（含子文件夹）或 .zip 压缩包", metavar="文件或文件夹",
                          callback=_existing, show_default=False)
DetailOpt = typer.Option(False, "--detail", help="逐条列出每个问题（文件多于 20 个时默认按乡镇汇总）")
YearOpt = typer.Option(None, "--year", help="考核年度（默认：设置文件中的年度）", show_default=False)
RoundOpt = typer.Option(None, "--round", help="考核轮次文件夹（默认：当前文件夹或其上级中的轮次）", show_default=False)
JsonOpt = typer.Option(False, "--json", help="以 JSON 输出结果（供程序使用）")
WorkersOpt = typer.Option(None, "--workers", help="并行进程数（默认：CPU 核数；文件少时不并行）", show_default=False)
STATUS_ZH = {"ok": ("✔ 合格", "green"), "warning": ("⚠ 有警告", "yellow"), "error": ("✖ 有错误", "red")}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}
SHOWN_ISSUES = 40                  # issues listed per file; the rest are in --json and the ranking workbook
SUMMARY_FROM = 21                  # from this many files on, `check` and `rank` print a line per township
SHOWN_NAMES = 5                    # names listed in a summary line (files of no township, townships missing)
MIN_WRAP = 24                      # a message column narrower than this is not wrapped (the terminal folds it)
# Characters that would act on the terminal rather than show (controls, ESC, and the bidirectional
# overrides that reorder what is read): a file name, a sheet name or a cell's text shows them as \x1b.
UNSHOWABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# Plain stand-ins for the symbols a console's encoding may lack (GBK has no ✔ ✖ ⚠ › −), best first.
FALLBACKS = {"✔": ("√", "OK"), "✖": ("×", "X"), "⚠": ("!",), "›": (">",), "−": ("-",), "–": ("-",), "—": ("-",),
             "…": ("...",), "·": ("*",), "→": ("->",), "“": ('"',), "”": ('"',)}


def main() -> None:
    for stream in (sys.stdout, sys.stderr):       # whatever else writes (click's help) never crashes
        if stream is not None and not _carries_all(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    app(prog_name="xlsx-assess")                  # as the clerk types it, also when run as python -m xlsx_assess


# What to do when an option or argument is missing, by (command, its option or argument's name).
MISSING_HINTS = {
    ("rank", "--out"): "请用 --out 指定排名工作簿的保存位置，如 --out 排名.xlsx",
    ("generate", "--out"): "请用 --out 指定考核表的输出文件夹，如 --out 考核表",
    ("check", "paths"): "请在命令后写上收回的文件或文件夹，如 xlsx-assess check 收回的表格",
    ("rank", "paths"): "请在命令后写上收回的文件或文件夹，如 xlsx-assess rank 收回的表格 --out 排名.xlsx",
    ("init", "folder"): "请在命令后写上新考核轮次的文件夹名，如 xlsx-assess init 考核2026",
}
MISSING_WHAT = {("init", "folder"): "缺少新考核轮次的文件夹"}     # else: a missing option or files
VALUE_HINTS = {"--workers": "应为正整数，如 --workers 2", "--year": "应为四位数的年份，如 --year 2026"}


def _usage_error(exc) -> int:
    """Tell a usage error in Chinese on stderr, with where to read the usage; the exit code (2)."""
    if type(exc).__name__ == "NoArgsIsHelpError":          # the bare command: its help, as click shows it
        exc.show()
        return exc.exit_code
    ctx = exc.ctx
    command = ctx.info_name if ctx is not None and ctx.parent is not None else ""
    err = _console(stderr=True)
    _say(err, ("✖ 用法错误：", "red"), _usage_text(exc, command))
    _say(err, ("  查看用法：", ""), f"xlsx-assess {command + ' ' if command else ''}--help")
    return 2


def _say(con, prefix: tuple[str, str], text: str, indent: int = 2) -> None:
    """A styled prefix and a message wrapped to the console's width under it, never cut."""
    from rich.cells import cell_len
    from rich.text import Text

    con.print(Text.assemble(prefix, _wrapped(_plain(text), con.width, cell_len(prefix[0]), indent)[2:]),
              soft_wrap=True, highlight=False)


def _usage_text(exc, command: str) -> str:
    """The Chinese for a click usage error: what is wrong and what to do."""
    param = getattr(exc, "param", None)
    name = _param_name(param) if param is not None else ""
    if isinstance(exc, Usage):
        return f"选项 {name}：{exc.message}" if name.startswith("-") else exc.message
    if isinstance(exc, CLICK_ERRORS.MissingParameter):
        hint = MISSING_HINTS.get((command, name)) or MISSING_HINTS.get((command, param.name if param else ""))
        what = f"缺少必填选项 {name}" if name.startswith("-") else MISSING_WHAT.get(
            (command, param.name if param else ""), "缺少要处理的文件或文件夹")
        return f"{what}：{hint or '请补上后重试'}。"
    if isinstance(exc, CLICK_ERRORS.NoSuchOption):
        maybe = f"是不是要用 {'、'.join(sorted(exc.possibilities))}？" if exc.possibilities else ""
        return f"没有 {exc.option_name} 这个选项。{maybe}"
    if isinstance(exc, CLICK_ERRORS.BadOptionUsage) and "requires" in exc.message:
        return f"选项 {exc.option_name} 后面要写上它的值，如 {exc.option_name} 值。"
    if isinstance(exc, CLICK_ERRORS.BadParameter):
        hint = VALUE_HINTS.get(name)
        return f"{name or '参数'} 的值不对" + (f"：{hint}。" if hint else f"（{exc.message}）。")
    extra = re.match(r"Got unexpected extra arguments? \((.*)\)", exc.message)
    if extra:
        return f"多出了参数：{extra[1]}。路径含空格时请加引号；选项请写在“--”开头的名字之后。"
    return f"命令用法不对（{exc.message}）。"


def _param_name(param) -> str:
    opts = getattr(param, "opts", None) or []
    return opts[0] if getattr(param, "param_type_name", "") == "option" and opts else param.name or ""


def _version(value: bool) -> None:
    if value:
        from . import __version__

        _console().print(f"xlsx-assess {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="显示版本号并退出 Show the version and exit.")) -> None:
    pass


ONLY_SEPARATORS = re.compile(r"[,，、;；\s]+")


def _names(values: Optional[list[str]]) -> Optional[list[str]]:
    """--only's values, each a name or code or a list of them (侯庙镇,孙口镇 / 侯庙镇，孙口镇 / 侯庙镇、孙口镇)."""
    names = [n for v in values or [] for n in ONLY_SEPARATORS.split(v) if n]
    return names or None


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
        err.print("[red]无法继续：请按以下提示修改后重试。[/]")
        for i in exc.report.issues:
            _say(err, (f"  {i.code} ", SEVERITY_STYLE[i.severity]), i.render(), 7)
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


@app.command(cls=_Command)
def generate(
    out: Optional[Path] = typer.Option(None, "--out", help="输出目录，每个乡镇一个 .xlsx（不写：在考核轮次中写入 下发/）",
                                       show_default=False),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
    year: Optional[int] = YearOpt,
    only: Optional[list[str]] = typer.Option(None, "--only", help="只生成这些乡镇：代码或名称，用逗号或顿号分隔，"
                                             "或重复 --only（如 --only 侯庙镇,孙口镇）"),
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
            ctx, done = _generate_in_round(round_dir, force, _names(only), password, (rubric, townships, settings, year))
        else:
            ctx = load_context(rubric, townships, settings, year)
            with _progress("生成考核表") as progress:
                done = generate_workbooks(out, ctx, _names(only), password, progress)
    con = _console()
    for g in done:
        con.print(f"[green]✔[/] {_esc(g.township)}（{g.code}） → {_esc(str(g.path))}")
    con.print(f"已生成 {len(done)} 个考核表，{ctx.settings.year} 年度，评分细则 {ctx.rubric.fingerprint[:12]}，"
              f"共 {len(ctx.rubric.items)} 项（基础项 {len(ctx.rubric.base)} 项）。")


@app.command(cls=_Command)
def check(
    paths: Optional[list[Path]] = typer.Argument(None, help="收回的文件、文件夹（含子文件夹）或 .zip 压缩包"
                                                           "（在考核轮次文件夹内可省略：核查 收回/）",
                                                 metavar="文件或文件夹", callback=_existing, show_default=False),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
    year: Optional[int] = YearOpt,
    as_json: bool = JsonOpt,
    workers: Optional[int] = WorkersOpt,
    round_dir: Optional[Path] = RoundOpt,
    detail: bool = DetailOpt,
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
        _render_collection(coll, ctx, detail)
    raise typer.Exit(1 if coll.has_errors else 0)


@app.command(cls=_Command)
def rank(
    paths: Optional[list[Path]] = typer.Argument(None, help="收回的文件、文件夹（含子文件夹）或 .zip 压缩包"
                                                           "（在考核轮次文件夹内可省略：排名 收回/ 和本轮收到过的文件）",
                                                 metavar="文件或文件夹", callback=_existing, show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", help="排名工作簿 .xlsx（在考核轮次中不写：结果/排名.xlsx）",
                                       show_default=False),
    rubric: Optional[Path] = RubricOpt,
    townships: Optional[Path] = TownshipsOpt,
    settings: Optional[Path] = SettingsOpt,
    year: Optional[int] = YearOpt,
    as_json: bool = JsonOpt,
    workers: Optional[int] = WorkersOpt,
    detail: bool = DetailOpt,
    round_dir: Optional[Path] = RoundOpt,
) -> None:
    """核查并排名 Check the returned workbooks and write the county ranking workbook.

    在考核轮次中（当前文件夹或 --round）不带文件：写入 结果/排名.xlsx 和 结果/排名.csv。
    退出码 exit code: 0 全部乡镇已排名 every township ranked · 1 排名已生成但有乡镇未纳入 written, some left out ·
    2 用法或配置错误、没有可排名的乡镇 usage, nothing to rank.
    """
    from .round import RANKING_BOOK
    from .workflow import load_context, load_round_context, rank_files, rank_round

    if not paths and out is not None:
        raise Usage("用 --out 时请给出收回的文件或文件夹；在考核轮次中不写 --out，排名写入 结果/排名.xlsx。")
    if paths and out is None:
        raise Usage("缺少必填选项 --out：请用 --out 指定排名工作簿的保存位置，如 --out 排名.xlsx。")
    with _guard():
        if paths:
            ctx = load_context(rubric, townships, settings, year)
        else:
            rnd = _round_or_exit(round_dir)
            ctx = load_round_context(rnd)
        with _progress("核查并排名", not as_json) as progress:
            if paths:
                coll, ranking = rank_files(paths, out, ctx, progress, workers)
            else:
                coll, _, ranking = rank_round(rnd, ctx, progress, workers)
                out = rnd.results / RANKING_BOOK
    if as_json:
        from .report import ranking_json

        _print_json(dict(ranking_json(ranking, coll), coverage=ranking.coverage, summary=coll.summary()))
    else:
        _render_collection(coll, ctx, detail, brief=True)
        _render_ranking(ranking)
        con = _console()
        if ranking.preliminary:
            con.print(f"初步排名：{len(ranking.unverified)}个乡镇尚未核定，暂按自评分排名（{_esc('、'.join(ranking.unverified))}）。",
                      style="yellow")
        con.print(f"排名工作簿已写入 {_esc(str(out))}" + ("（另有同名 .csv）" if not paths else ""))
        con.print(_esc(ranking.coverage), style="yellow" if ranking.left_out else None)
    raise typer.Exit(1 if ranking.left_out else 0)


@app.command("rubric", cls=_Command)
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
    table.columns[0].overflow = "fold"
    for c in rub.categories:
        items = [i for i in rub.items if i.category == c]
        table.add_row(c, str(len(items)), format_points(rub.category_max(c)) if c in rub.scored_categories else "特别项")
    con.print(table)
    con.print(f"共 {len(rub.items)} 项：基础项 {len(rub.base)}，加分项 {len(rub.bonus)}，减分项 {len(rub.deduction)}，"
              f"归零项 {1 if rub.zero else 0}。指纹 sha256 {rub.fingerprint}")


@app.command(cls=_Command)
def codes(as_json: bool = JsonOpt) -> None:
    """列出全部问题代码 List every issue code the checks can report."""
    from .issues import CATALOGUE, SEVERITY_ZH

    if as_json:
        _print_json([{"code": c.code, "severity": c.severity, "title": c.meaning, "message": c.template}
                     for c in CATALOGUE.values()])
        return
    from rich.table import Table

    table = Table("代码", "级别", "含义", "提示")
    for column in table.columns:
        column.overflow = "fold"                  # Chinese has no spaces to wrap at: fold, never cut with …
    for c in CATALOGUE.values():
        table.add_row(c.code, SEVERITY_ZH[c.severity], c.meaning, _esc(c.template))
    _console().print(table)


def _render_collection(coll, ctx, detail: bool = False, brief: bool = False) -> None:
    """What became of every file, printed at once: a line per file with its issues (with errors only, when
    brief), or for a large batch (SUMMARY_FROM files, unless `detail`) a line per township with its
    issues counted by code. A rich Table per file would cost more than checking the file."""
    from rich.text import Text

    con = _console()
    out = Text()
    summary = not detail and len(coll.heads) >= SUMMARY_FROM
    if summary:
        _township_lines(out, coll, ctx, con.width, brief)
    else:
        _file_lines(out, coll, ctx.settings.score_decimals, con.width, brief)
    s = coll.summary()
    out.append(f"收到 {s['received']} 个文件：合格 {s['ok']}，有警告 {s['warning']}，有错误 {s['error']}，"
               f"重复 {s['duplicate']}，被替代 {s['superseded']}，跳过 {s['skipped']}；"
               f"采用 {s['accepted']}，未提交乡镇 {s['missing']} 个。")
    if summary:
        out.append("\n文件较多，已按乡镇汇总；加 --detail 逐条列出每个问题（或用 --json）。", "dim")
    con.print(out, soft_wrap=True)


def _file_lines(out, coll, decimals: int, width: int, brief: bool) -> None:
    """A line per file (with errors only, when brief) and its issues, then what was skipped and missing."""
    from rich.text import Text

    from .collect import missing_issue
    from .scoring import show

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
            out.append_text(_issue_grid(shown, "    ", width))
            if len(shown) > SHOWN_ISSUES:
                out.append(f"    … 另有 {len(shown) - SHOWN_ISSUES} 条，完整清单见 --json 或排名工作簿的“问题清单”。\n")
    for s in coll.skipped:
        out.append(f"· {_plain(s.issue.render())}\n", "dim")
    for t in coll.missing:
        out.append_text(Text.assemble(("✖", "red"), f" {_plain(missing_issue(t).render())}\n"))


def _township_lines(out, coll, ctx, width: int, brief: bool) -> None:
    """A line per township (roster order; files of no township last): its files, its final score, and the
    issues of the file used counted by code; then what was skipped and the townships missing, each in one line."""
    from collections import Counter

    from .issues import CATALOGUE
    from .scoring import show

    groups: dict[str, list[int]] = {}
    for k, h in enumerate(coll.heads):
        groups.setdefault(h.township.code if h.township else "", []).append(k)
    rank = {t.code: n for n, t in enumerate(ctx.townships)}
    for code in sorted(groups, key=lambda c: (c == "", rank.get(c, len(rank)), c)):
        heads = [coll.heads[k] for k in groups[code]]
        counted = [k for k in groups[code] if coll.heads[k].role == "used"]      # not the copies, not the older
        used = next((k for k in groups[code] if coll.heads[k].accepted), None)
        status = coll.heads[used].status if used is not None else max((coll.heads[k].status for k in counted),
                                                           key=("ok", "warning", "error").index, default="ok")
        if brief and status == "ok":
            continue
        found = Counter(i.code for k in counted if coll.heads[k].issues for i in coll.results[k].report)
        roles = Counter(h.role for h in heads if h.role != "used")
        line = (f"{_plain(f'{heads[0].township.name}（{code}）') if code else '身份不明的文件'}  {len(heads)} 个文件"
                + (f"（{'，'.join(f'{ROLES_ZH[r]} {n}' for r, n in roles.items())}）" if roles else "")
                + (f"  最终得分 {show(coll.results[used].scores.final, ctx.settings.score_decimals)}" if used is not None else "")
                + ("：" + _some([_plain(h.name) for h in heads]) if not code else "")
                + ("  " + "；".join(f"{CATALOGUE[c].meaning}（{c}）{n} 处" for c, n in sorted(found.items(), key=_by_severity))
                   if found else ""))
        label, style = STATUS_ZH[status]
        out.append(label, style)
        out.append(_wrapped(line, width, len(label) + 3, 4) + "\n")
    if coll.skipped:
        out.append(f"· 跳过 {len(coll.skipped)} 个不是考核表的文件：{_some([_plain(s.name) for s in coll.skipped])}\n", "dim")
    if coll.missing:
        out.append("✖", "red")
        out.append(_wrapped(f"未提交的乡镇 {len(coll.missing)} 个：{_some([t.name for t in coll.missing], 30)}，请催报。",
                            width, 1, 4)[1:] + "\n")


ROLES_ZH = {"duplicate": "重复", "superseded": "被替代"}


def _by_severity(item: tuple[str, int]) -> tuple[int, str]:
    from .issues import CATALOGUE

    return ("error", "warning", "info").index(CATALOGUE[item[0]].severity), item[0]


def _some(names: list[str], most: int = SHOWN_NAMES) -> str:
    return "、".join(names[:most]) + (f" 等 {len(names)} 个" if len(names) > most else "")


@functools.lru_cache(maxsize=4096)          # a batch repeats its messages file after file
def _wrapped(text: str, width: int, first: int, indent: int) -> str:
    """`text` after `first` columns already used, wrapped to `width` with `indent` spaces on the lines after."""
    if width - max(first, indent) < MIN_WRAP:
        return "  " + text
    lines = _wrap("  " + text, width - first, width - indent)
    return ("\n" + " " * indent).join(lines)


# Where a line may break: after spaces, after a run of Latin letters, digits and signs (a word, a path, a
# code, kept whole; a number with its unit, 59 处), or after any other character; punctuation stays with
# what it opens or closes.
_PIECE = re.compile(r"\s+|[“‘（《「『【]*(?:[0-9]+ ?[处个项分]|[!-~]+|.)[，。、；：？！”’）》」』】]*", re.S)


def _wrap(text: str, width: int, rest: int | None = None) -> list[str]:
    """`text` in lines of at most `width` display columns (`rest` for the lines after the first; a Chinese
    character is two), broken between words or beside a Chinese character, never cut."""
    from rich.cells import cell_len

    lines, line, used = [], "", 0
    limit = width
    for piece in _PIECE.findall(text):
        size = cell_len(piece)
        if used + size > limit and line.strip():
            lines.append(line.rstrip())
            line, used, limit = "", 0, rest or width
            if piece.isspace():
                continue
        while size > limit:                       # a word wider than a whole line: folded
            cut = _fitting(piece, limit - used)
            lines.append(line + piece[:cut])
            piece, line, used, limit = piece[cut:], "", 0, rest or width
            size = cell_len(piece)
        line += piece
        used += size
    lines.append(line.rstrip())
    return lines


def _fitting(text: str, width: int) -> int:
    """How many of `text`'s first characters fit `width` columns (one at least)."""
    from rich.cells import cell_len

    n = 1
    while n < len(text) and cell_len(text[:n + 1]) <= width:
        n += 1
    return n


def _render_ranking(rk) -> None:
    shown = rk.ranking.drop(columns=["归零", "乡镇代码"])
    from .scoring import show

    rows = [["" if v is None or v != v else show(v, rk.decimals) if isinstance(v, float) else str(v) for v in row]
            for row in shown.itertuples(index=False)]
    numeric = {k for k, dtype in enumerate(shown.dtypes) if dtype.kind in "iuf"}
    table = _grid(list(shown.columns), rows, right=numeric)
    table.rstrip()
    _console().print("排名", table, sep="\n", soft_wrap=True)


def _issue_grid(issues, indent: str, width: int):
    """Located issues as a table under a line (at most SHOWN_ISSUES), the 说明 wrapped to `width`."""
    return _grid(("代码", "工作表", "单元格", "说明"), [
        [(i.code, SEVERITY_STYLE[i.severity]), i.sheet, i.cell, i.message] for i in list(issues)[:SHOWN_ISSUES]],
        indent=indent, width=width)


def _grid(header, rows, indent: str = "", right: frozenset[int] | set[int] = frozenset(), width: int = 0):
    """Rows in aligned columns (by display width: a Chinese character is two), a bold header first, as
    one rich Text; a cell is a string or (string, style). What a rich Table shows, in a hundredth of
    its time for a thousand rows. Given a `width`, the last column wraps under itself to fit it."""
    from rich.cells import cell_len
    from rich.text import Span, Text

    cells = [[(_plain(c[0]), c[1]) if isinstance(c, tuple) else (_plain(str(c)), "") for c in row]
             for row in [header, *rows]]
    widths = [max(cell_len(row[k][0]) for row in cells) for k in range(len(header))]
    parts: list[str] = []                           # the text and its styles, made into one Text at the end:
    spans: list[Span] = []                          # a Text.append per cell costs more than the rest
    at = 0
    for n, row in enumerate(cells):
        while len(row) > 1 and not row[-1][0]:      # no trailing blanks
            row.pop()
        line = [indent]
        for k, (text, style) in enumerate(row):
            pad = " " * (widths[k] - cell_len(text))
            last = k == len(row) - 1
            line.append(pad if k in right else "")
            if last and width and k == len(header) - 1:
                text = _wrapped(text, width, cell_len(indent) + sum(widths[:k]) + 2 * k - 2,
                                cell_len(indent) + sum(widths[:k]) + 2 * k)[2:]
            style = "bold" if n == 0 else style
            if style and text:
                start = at + sum(map(len, line))
                spans.append(Span(start, start + len(text), style))
            line += [text, "" if k in right or last else pad, "\n" if last else "  "]
        piece = "".join(line)
        parts.append(piece)
        at += len(piece)
    return Text("".join(parts), spans=spans)


# -- a round: check and status with no options --------------------------------------------------------

STATE_STYLE = {"ok": ("✔", "green"), "fix": ("✖", "red"), "missing": ("…", "yellow")}
ROLE_ZH = {"used": "最新", "superseded": "已被更新文件替代", "duplicate": "重复", "other_version": "用了旧表"}


def _round_or_exit(round_dir: Optional[Path], takes_files: bool = True):
    """The round named by --round, or the one holding the current folder; a usage error (exit 2) outside
    any round, or where --round names a folder that does not exist. `takes_files`: the command also works
    on files given outside a round (the message says so)."""
    from .round import find_round

    rnd = find_round(round_dir) if round_dir else find_round()
    if rnd is None:
        if round_dir and not Path(round_dir).exists():
            where = f"找不到“{_plain(str(round_dir))}”这个文件夹"
        else:
            where = f"“{_plain(str(round_dir))}”不是考核轮次文件夹" if round_dir else "当前文件夹不在考核轮次中"
        files = "请给出要核查的文件或文件夹，或" if takes_files else "请"
        raise Usage(f"{where}：{files}在考核轮次文件夹（由 xlsx-assess init 创建）中运行，或用 --round 指定。")
    return rnd


def _check_in_round(round_dir: Optional[Path], as_json: bool, workers: Optional[int]) -> None:
    """`check` inside a round: 收回/ checked, every file kept and recorded, the board printed, and
    结果/核查结果.xlsx written (the board with contacts, the issues, the 退回 and 催报 texts)."""
    from .feedback import collect_feedback
    from .issues import AssessError
    from .results_book import RESULTS_NAME, write_results
    from .workflow import check_round, load_round_context

    rnd = _round_or_exit(round_dir)
    with _guard():
        ctx = load_round_context(rnd)
        with _progress("核查文件", not as_json) as progress:
            coll, board = check_round(rnd, ctx, progress, workers)
            board, strays = collect_feedback(rnd, ctx, board)        # the 反馈单s sent back into 反馈/
    results = rnd.results / RESULTS_NAME
    try:
        write_results(board, ctx, results)
        written = None
    except AssessError as exc:                  # held open in WPS, say: the board is still shown
        written = exc.report.issues[0]
    if as_json:
        from .report import collection_json

        _print_json(dict(collection_json(coll), townships=[line.as_dict() for line in board.lines],
                         setup_suspect=board.setup_suspect.as_dict() if board.setup_suspect else None,
                         results=None if written else str(results),
                         **({"feedback_unassigned": [dict(i.as_dict(), file=i.file) for s in strays for i in s.issues]}
                            if strays else {})))
    else:
        _render_board(board, skipped=coll.skipped, strays=strays)
        con = _console()
        if written is None:
            con.print(f"核查结果（含退回、催报通知文字）已写入 {_esc(str(results))}")
        else:
            con.print(f"[yellow]⚠ {written.code} 核查结果未能写入：{_esc(written.render())}[/]")
    raise typer.Exit(0 if board.complete else 1)


@app.command(cls=_Command)
def status(round_dir: Optional[Path] = RoundOpt, as_json: bool = JsonOpt) -> None:
    """查看本轮收件情况 Show the round's board and, per township, every file received (from the ledger).

    退出码 exit code: 0 各乡镇均已合格 every township ok · 1 否则 otherwise · 2 不在考核轮次中 usage.
    """
    from .workflow import load_round_context, round_board

    rnd = _round_or_exit(round_dir, takes_files=False)
    with _guard():
        ctx = load_round_context(rnd)
        board, strays = round_board(rnd, ctx)                              # with the 反馈单s in 反馈/
    if as_json:
        _print_json({"townships": [dict(line.as_dict(), history=[f.as_dict() for f in line.history])
                                   for line in board.lines],
                     "unassigned": [f.as_dict() for f in board.unassigned],
                     "setup_suspect": board.setup_suspect.as_dict() if board.setup_suspect else None})
    else:
        _render_board(board, history=True, strays=strays)
    raise typer.Exit(0 if board.complete else 1)


def _render_board(board, skipped=(), history: bool = False, strays=()) -> None:
    """One line per township (state, file, score or what is wrong, 填报人 电话); its files when `history`."""
    from rich.text import Text

    out, width = Text(), _console().width
    if board.setup_suspect is not None:
        out.append(f"✖ {board.setup_suspect.code} {_plain(board.setup_suspect.message)}\n", "bold red")
    for line in board.lines:
        _render_line(out, line, width, detail=board.setup_suspect is None, history=history)
    for f in board.unassigned:
        out.append(f"? 无法确定所属乡镇：{_plain(f.name)}（{' '.join(f.issue_codes)}）\n", "yellow")
    for s in skipped:
        out.append(f"· {_plain(s.issue.render())}\n", "dim")
    for stray in strays:
        for i in stray.issues:
            out.append(f"? {i.code} {_plain(i.render())}\n", "yellow")
    for r in (board.reviews.stray if board.reviews else ()):
        out.append(f"? 核定/ 中无法使用的文件：{_plain(r.name)}（{' '.join(i.code for i in r.issues)}）\n", "yellow")
    out.append(f"共 {len(board.lines)} 个乡镇：已合格 {board.count('ok')}，需改正 {board.count('fix')}，"
               f"未收到 {board.count('missing')}。")
    for counts in board.stage_counts():                   # 核定 and 反馈单, once each began
        out.append("\n" + counts)
    _console().print(out, soft_wrap=True)


def _render_history(out, line) -> None:
    for f in line.history:
        score = f"  {f.score}" if f.score is not None and f.status != "error" else ""
        also = f"  （又名 {_plain('、'.join(f.names[1:]))}）" if len(f.names) > 1 else ""
        out.append(f"      {_when_text(f.first_seen)}  {_plain(f.name)}  {STATUS_ZH[f.status][0]}"
                   f" · {ROLE_ZH.get(f.role, f.role)}{score}{also}\n", "dim")


def _render_line(out, line, width: int, detail: bool = True, history: bool = False) -> None:
    from rich.text import Text

    mark, style = STATE_STYLE[line.state]
    contact = "  ".join(x for x in (line.reporter and f"填报人 {line.reporter}", line.phone and f"电话 {line.phone}") if x)
    old = line.state == "fix" and line.history and line.history[-1].role == "other_version"
    what = (f"最终得分 {line.score} {line.grade}" if line.state == "ok" else "用了旧表" if old
            else f"{len(line.issues)} 处问题" if line.state == "fix" else "请催报")
    out.append_text(Text.assemble((f"{mark} {line.state_zh}", style), "  ", (_plain(f"{line.township}（{line.code}）"), "bold"),
                                  f"  {_plain(line.file)}  " if line.file else "  ", what,
                                  f"  {_plain(contact)}" if contact else "", "\n"))
    if line.review:
        _render_review(out, line, width, detail)
    if history:
        _render_history(out, line)
    if line.feedback:
        _render_feedback(out, line, width)
    if detail and line.state == "fix":
        shown = [i for i in line.issues if i.severity != "info"] or list(line.issues)
        out.append_text(_issue_grid(shown, "    ", width))


def _render_feedback(out, line, width: int) -> None:
    """The township's 反馈单 under its line: 已整改, 待整改, or 整改未完成 with what is missing, located."""
    style = {"rectified": "green", "rectifying": "red", "sent": "yellow"}[line.feedback]
    what = f"，{len(line.feedback_issues)} 处未完成" if line.feedback == "rectifying" else ""
    out.append(f"    反馈单 {line.feedback_zh}{what}  {_plain(line.feedback_file)}\n", style)
    if line.feedback_issues:
        out.append_text(_issue_grid(line.feedback_issues, "      ", width))


REVIEW_STYLE = {"pending": ("…", "yellow"), "verified": ("✔", "green"), "stale": ("✖", "red")}


def _render_review(out, line, width: int, detail: bool) -> None:
    """The 核定 stage under an 已合格 line: 已核定 with the score on 核定分, 待核定, or 核定表已过期."""
    mark, style = REVIEW_STYLE[line.review]
    errors = sum(i.severity == "error" for i in line.review_issues)
    what = (f"核定后最终得分 {line.reviewed_score}" + (f"  核查人 {_plain(line.reviewer)}" if line.reviewer else "")
            if line.review == "verified" else "请运行 xlsx-assess review --refresh" if line.review == "stale"
            else f"{errors} 处错误" if errors else "请核定（填写核查人、核定日期）" if line.review_file
            else "请运行 xlsx-assess review 生成核定表")
    out.append(f"    {mark} {line.review_zh}  {_plain(line.review_file)}  {what}\n", style)
    from .issues import Code

    shown = [i for i in line.review_issues if i.code not in (Code.REVIEW_STALE, Code.REVIEW_UNSIGNED)]
    if detail and shown:
        out.append_text(_issue_grid(shown, "      ", width))


def _when_text(t) -> str:
    """A local time with its UTC offset: 2026-11-30 20:15（UTC+08:00）."""
    from .clock import local_text

    return "时间不详" if t is None else local_text(t)


# -- a round: init, generate inside one, rubric diff ----------------------------------------------

@app.command(cls=_Command)
def feedback(round_dir: Optional[Path] = RoundOpt, workers: Optional[int] = WorkersOpt) -> None:
    """写考核结果反馈单 Write each ranked township's 反馈单 into the round's 反馈/ (score, rank, grade, lost lines, 整改).

    退出码 exit code: 0 每个乡镇都有反馈单 every township has one · 1 有乡镇未纳入排名 some not ranked ·
    2 不在考核轮次中或没有可排名的乡镇 usage or nothing ranked.
    """
    from .feedback import feedback_round
    from .round import FEEDBACK
    from .workflow import load_round_context

    rnd = _round_or_exit(round_dir, takes_files=False)
    with _guard():
        ctx = load_round_context(rnd)
        with _progress("生成反馈单") as progress:
            run = feedback_round(rnd, ctx, progress, workers)
    con = _console()
    for fb, path in run.written:
        last = f"  上年 {fb.last.score} 第 {fb.last.rank} 名" if fb.last else ""
        con.print(f"  {_esc(fb.township)}  第 {fb.rank} 名  {fb.grade}  失分 {len(fb.lost)} 项{last}  "
                  f"{_esc(FEEDBACK + '/' + path.name)}", soft_wrap=True)
    for moved in run.kept:
        con.print(f"  [yellow]已报回的反馈单移到 {_esc(str(moved.relative_to(rnd.root)))}，未被覆盖[/]", soft_wrap=True)
    con.print(f"[green]✔[/] 已写入 {len(run.written)} 份反馈单到 {FEEDBACK}/。{_esc(run.board.unranked_text())}"
              f"\n乡镇填好整改措施、整改时限和责任人后，把报回的反馈单放入 {FEEDBACK}/（可覆盖原文件），再运行 xlsx-assess check。",
              soft_wrap=True)
    raise typer.Exit(0 if not run.board.unranked else 1)


@app.command(cls=_Command)
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
        raise Usage("在考核轮次中生成考核表不用 --rubric、--townships、--settings、--year：请修改 考核设置.xlsx；"
                    "或用 --out 指定输出目录。")
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
        raise Usage("请写成 xlsx-assess rubric diff 旧版本 新版本（CSV、考核设置.xlsx 或考核轮次文件夹）。")
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


# -- a round: 核定 ---------------------------------------------------------------------------------------

ACTION_ZH = {"written": ("✔", "green", "已生成"), "refreshed": ("✔", "green", "已重新生成（自评文件已更新）"),
             "kept": ("·", "dim", "已有，未改动"), "filled": ("✖", "red", "已过期但已填写，未覆盖：确认后用 --refresh 重新生成"),
             "waiting": ("…", "yellow", "尚无合格的自评文件，暂不生成")}


@app.command(cls=_Command)
def review(
    round_dir: Optional[Path] = RoundOpt,
    refresh: bool = typer.Option(False, "--refresh", help="重新生成已过期（乡镇又报送了新文件）的核定表，即使已填写"
                                                         "（原文件保留在本轮收件记录中）"),
    workers: Optional[int] = WorkersOpt,
) -> None:
    """生成核定表 Write a 核定表 into 核定/ for every township whose return is accepted (in a round).

    核定分已按自评分预填；改动核定分须写核定说明。填好后运行 check 查看，rank 按核定分排名。
    退出码 exit code: 0 已完成 done · 1 有已过期但已填写的核定表未覆盖 stale ones kept · 2 用法 usage.
    """
    from .workflow import load_round_context, review_round

    rnd = _round_or_exit(round_dir, takes_files=False)
    with _guard():
        ctx = load_round_context(rnd)
        with _progress("核查文件") as progress:
            board, done = review_round(rnd, ctx, refresh, progress, workers)
    con = _console()
    for d in done:
        mark, style, what = ACTION_ZH[d.action]
        where = f" → {_esc(str(d.path.relative_to(rnd.root)))}" if d.path else ""
        con.print(f"[{style}]{mark}[/] {_esc(d.township)}（{d.code}） {what}{where}")
    counts = {a: sum(d.action == a for d in done) for a in ACTION_ZH}
    con.print(f"核定表：新生成 {counts['written']}，重新生成 {counts['refreshed']}，已有 {counts['kept']}，"
              f"已过期未覆盖 {counts['filled']}，暂不生成 {counts['waiting']}。"
              f"核定：已核定 {board.count('verified')}，待核定 {board.count('pending')}。")
    raise typer.Exit(1 if counts["filled"] else 0)

# -- a round in the browser -----------------------------------------------------------------------------

@app.command(cls=_Command)
def serve(
    round_dir: Optional[Path] = RoundOpt,
    port: int = typer.Option(8765, "--port", help="端口"),
    host: str = typer.Option("127.0.0.1", "--host", help="监听地址（默认只允许本机访问；其他地址需使用启动时显示的令牌网址）"),
    no_browser: bool = typer.Option(False, "--no-browser", help="不自动打开浏览器"),
) -> None:
    """在浏览器中操作本轮考核 Serve the round's page (needs: pip install .[web]); Ctrl+C to stop."""
    rnd = _round_or_exit(round_dir, takes_files=False)
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
        try:
            run(rnd, host, port, not no_browser, announce)
        except OSError as exc:
            _console(stderr=True).print(f"[red]无法在 {_esc(host)}:{port} 上启动网页（{_esc(exc.strerror or str(exc))}）："
                                        "端口可能已被占用，请用 --port 换一个端口，例如 --port 8766。[/]")
            raise typer.Exit(2)
