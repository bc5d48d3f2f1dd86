"""The office's page over one round: Starlette routes, Jinja2 pages, htmx for the live parts.

Every rule is the library's: the board is `workflow.round_status`/`check_round`, uploads go through
`web.uploads` (kept by content, placed in 收回/, checked by `check_round`), the forms are
`round.generate_round`, the ranking `workflow.rank_round`, the 通知 texts `notices.notices`, the 核定表s
`workflow.review_round` (returned ones placed by `web.uploads` in 核定/网页上传/ and judged by `check_round`), the
反馈单s `feedback.feedback_round` (returned ones placed in 反馈/网页上传/, judged by `feedback.collect_feedback`).

Safety: requests must name this server (Host 127.0.0.1/localhost:port) unless a token is set (any
other listening host), in which case every request needs the token (?token=… once, then a cookie);
state-changing requests need htmx's HX-Request header and, when the browser sends one, an Origin or
Referer of this server (a cross-site form or fetch can set neither).
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..clock import local_text
from ..issues import AssessError, Code
from ..results_book import RESULTS_NAME as RESULTS_BOOK
from ..round import RANKING_BOOK, RESULTS as RESULTS_DIR, Round
from ..settings import WHOLE_LIMITS, Settings
from . import uploads as up

HERE = Path(__file__).parent
TOKEN_COOKIE = "xa_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PAGES = (("board", "/", "本轮概况"), ("send", "/send", "下发"), ("receive", "/receive", "收回"),
         ("review", "/review", "核定"), ("rank", "/rank", "排名"), ("feedback", "/feedback", "反馈"))
ROLE_ZH = {"used": "最新", "superseded": "已被更新的文件替代", "duplicate": "重复", "other_version": "用了旧表"}
# Every response: only this server's own scripts and styles (htmx adds one style element), never framed by
# another site (a framed page could be clicked through), no guessing of types.
HEADERS = ((b"content-security-policy", b"default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                        b"img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"),
           (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"same-origin"))
MB = 1024 * 1024
# Uploaded files stay in memory up to the highest limit the settings allow (never spooled to the system's temp
# folder): a request over the round's own limit is refused before its body is read.
MultiPartParser.spool_max_size = WHOLE_LIMITS["upload_max_mb"][2] * MB


@dataclass(frozen=True)
class Limits:
    """What one upload may hold: files, and their bytes together (the round's settings, `Limits.of`)."""

    files: int
    bytes: int

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        return cls(settings.upload_max_files, settings.upload_max_mb * MB)


class _Web:
    """What the routes share: the round, the limits, the token, one lock for the work that checks files
    (two uploads at once wait for each other; the ledger also guards against the CLI running alongside)."""

    def __init__(self, rnd: Round, token: str | None, limits: Limits | None, port: int | None, workers: int | None):
        self.rnd, self.token, self.fixed_limits, self.port, self.workers = rnd, token, limits, port, workers
        self.lock = threading.Lock()
        self.last_ranking = None
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))

    def context(self):
        from ..workflow import load_round_context

        return load_round_context(self.rnd)

    def limits(self, ctx) -> Limits:
        """The upload limits: the round's settings (考核参数, `ctx` as just loaded), unless the app was given its own."""
        return self.fixed_limits or Limits.of(ctx.settings)

    def page(self, request: Request, name: str, status: int = 200, **values) -> HTMLResponse:
        html = self.env.get_template(name).render(pages=PAGES, here=request.url.path, version=__version__,
                                                  round_name=self.rnd.root.name, **values)
        return HTMLResponse(html, status)


def create_app(rnd: Round, token: str | None = None, limits: Limits | None = None, port: int | None = None,
               workers: int | None = None) -> Starlette:
    """The app for `rnd`. `token`: required on every request (use for any host but 127.0.0.1);
    `limits`: an upload's (None: the round's settings); `port`: the port served on, for the Host check (None:
    any port of 127.0.0.1/localhost)."""
    web = _Web(rnd, token, limits, port, workers)
    routes = [
        Route("/", _endpoint(board_page, web)),
        Route("/send", _endpoint(send_page, web)),
        Route("/send/generate", _endpoint(generate, web), methods=["POST"]),
        Route("/send/forms.zip", _endpoint(forms_zip, web)),
        Route("/receive", _endpoint(receive_page, web)),
        Route("/receive/check", _endpoint(check_again, web), methods=["POST"]),
        Route(f"/results/{RESULTS_BOOK}", _endpoint(results_book, web)),
        Route("/rank", _endpoint(rank_page, web)),
        Route("/rank/run", _endpoint(rank_run, web), methods=["POST"]),
        Route(f"/rank/{RANKING_BOOK}", _endpoint(ranking_book, web)),
        Route("/review", _endpoint(review_page, web)),
        Route("/review/generate", _endpoint(review_generate, web), methods=["POST"]),
        Route("/review/reviews.zip", _endpoint(reviews_zip, web)),
        Route("/review/upload", _endpoint(review_upload, web), methods=["POST"]),
        Route("/feedback", _endpoint(feedback_page, web)),
        Route("/feedback/generate", _endpoint(feedback_generate, web), methods=["POST"]),
        Route("/feedback/feedback.zip", _endpoint(feedback_zip, web)),
        Route("/feedback/upload", _endpoint(feedback_upload, web), methods=["POST"]),
        Route("/api/status", _endpoint(api_status, web)),
        Route("/api/upload", _endpoint(api_upload, web), methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, web=web)],
                    exception_handlers={AssessError: lambda r, e: _assess_error(web, r, e),
                                        HTTPException: lambda r, e: _http_error(web, r, e)})
    app.state.web = web
    return app


def _endpoint(fn, web: _Web):
    """A route's endpoint (a plain function, as Starlette wants): `fn(web, request)`."""
    import inspect

    if inspect.iscoroutinefunction(fn):
        async def endpoint(request: Request) -> Response:
            return await fn(web, request)
    else:
        def endpoint(request: Request) -> Response:
            return fn(web, request)
    return endpoint


# -- the guard: host, token, cross-site requests -------------------------------------------------------

class _Guard:
    """ASGI middleware refusing (403, in Chinese) what this server must not answer."""

    def __init__(self, app, web: _Web):
        self.app, self.web = app, web

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        refused, cookie = self.refusal(request)
        extra = list(HEADERS)
        if cookie:
            extra.append((b"set-cookie", f"{TOKEN_COOKIE}={self.web.token}; Path=/; HttpOnly; SameSite=Strict"
                          .encode("latin-1")))

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        if refused:
            return await PlainTextResponse(refused, 403)(scope, receive, with_headers)
        return await self.app(scope, receive, with_headers)

    def refusal(self, request: Request) -> tuple[str, bool]:
        """(why the request is refused or "", whether to set the token cookie)."""
        token, cookie = self.web.token, False
        if token is None:
            if not _local_host(request.headers.get("host", ""), self.web.port):
                return "拒绝访问：本页面只接受本机地址（127.0.0.1）的访问。", False
        else:
            given = request.query_params.get("token")
            if given is not None and hmac.compare_digest(given.encode(), token.encode()):
                cookie = True
            elif not hmac.compare_digest(request.cookies.get(TOKEN_COOKIE, "").encode(), token.encode()):
                return "拒绝访问：缺少或错误的访问令牌。请使用启动时显示的完整网址（含 token=…）。", False
        if request.method not in SAFE_METHODS:
            why = _cross_site(request)
            if why:
                return why, False
        return "", cookie


def _local_host(host: str, port: int | None) -> bool:
    name, _, given_port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name:
        name, given_port = given_port, ""
    if name not in ("127.0.0.1", "localhost", "[::1]"):
        return False
    return port is None or given_port in ("", str(port)) and (given_port != "" or port == 80)


def _cross_site(request: Request) -> str:
    if request.headers.get("hx-request") != "true" and request.headers.get("x-requested-with") != "XMLHttpRequest":
        return "拒绝操作：请在本页面上操作（请求缺少 HX-Request 或 X-Requested-With 标头）。"
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin:
        parts = urlsplit(origin)
        if f"{parts.scheme}://{parts.netloc}" != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return "拒绝操作：请求来自其他网站。"
    return ""


HTTP_ZH = {404: ("找不到这个页面", "网址可能输错了，或这个页面已不存在。请从上方的菜单进入。"),
           405: ("不能这样打开这个网址", "这个网址只在页面上点按钮时使用。请从上方的菜单进入。")}


def _http_error(web: _Web, request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no such page, a GET to a button's address) in Chinese, as the page or JSON."""
    title, message = HTTP_ZH.get(exc.status_code, ("无法完成请求", exc.detail or ""))
    if request.url.path.startswith("/api/") or request.method not in SAFE_METHODS:
        return JSONResponse({"error": f"{title}：{message}"}, exc.status_code, headers=exc.headers)
    page = web.page(request, "notfound.html", exc.status_code, title=title, message=message)
    page.headers.update(exc.headers or {})           # a 405's Allow
    return page


def _assess_error(web: _Web, request: Request, exc: AssessError) -> Response:
    issues = [dict(i.as_dict(), where=i.where) for i in exc.report.issues]
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": "无法继续", "issues": issues}, 409)
    return web.page(request, "error.html", 409, issues=issues)


# -- pages ---------------------------------------------------------------------------------------------

def board_page(web: _Web, request: Request) -> Response:
    from ..workflow import round_board

    board, _ = round_board(web.rnd, web.context())
    return web.page(request, "board.html", board=board, counts=_counts(board), when=_when, roles=ROLE_ZH)


def send_page(web: _Web, request: Request) -> Response:
    ctx = web.context()
    return web.page(request, "send.html", ctx=ctx, forms=_workbooks(web.rnd.sent), message=None)


def receive_page(web: _Web, request: Request) -> Response:
    from ..workflow import round_status

    ctx = web.context()
    board = round_status(web.rnd, ctx)
    return web.page(request, "receive.html", limits=web.limits(ctx), notices=_notices(board, ctx),
                    has_results=(web.rnd.results / RESULTS_BOOK).is_file())


def rank_page(web: _Web, request: Request) -> Response:
    return web.page(request, "rank.html", **_ranking_view(web))


def review_page(web: _Web, request: Request) -> Response:
    from ..workflow import check_round

    ctx = web.context()
    with web.lock:                              # what `check` says now, the 核定表s' located issues included
        _, board = check_round(web.rnd, ctx, workers=web.workers)
    return web.page(request, "review.html", limits=web.limits(ctx), **_review_view(web, board))


def feedback_page(web: _Web, request: Request) -> Response:
    from ..feedback import collect_feedback
    from ..workflow import check_round

    ctx = web.context()
    with web.lock:                              # what `check` says now: the 反馈单s sent back included
        _, board = check_round(web.rnd, ctx, workers=web.workers)
        board, strays = collect_feedback(web.rnd, ctx, board)
    return web.page(request, "feedback.html", limits=web.limits(ctx), **_feedback_view(web, board, strays))


# -- actions (POST: the guard has checked where they come from) ----------------------------------------

def generate(web: _Web, request: Request) -> Response:
    from ..round import generate_round

    force = request.query_params.get("force") == "1"
    other_version = False
    with web.lock:
        try:
            done = generate_round(web.rnd, force=force)
            message, ok = f"已生成 {len(done)} 个乡镇的考核表，保存在 下发/ 文件夹。", True
        except AssessError as exc:
            message, ok = _said(exc), False
            other_version = any(i.code == Code.FORMS_FROM_OTHER_RUBRIC for i in exc.report.issues)
    return web.page(request, "_forms.html", forms=_workbooks(web.rnd.sent), message=message, ok=ok,
                    other_version=other_version)


def review_generate(web: _Web, request: Request) -> Response:
    """`review` from the page: a 核定表 in 核定/ for every 已合格 township (`refresh=1`: also rewrite the
    stale ones somebody filled in, their still-valid lines carried over)."""
    from ..workflow import review_round

    refresh = request.query_params.get("refresh") == "1"
    ctx = web.context()
    with web.lock:
        try:
            board, actions = review_round(web.rnd, ctx, refresh=refresh, workers=web.workers)
        except AssessError as exc:
            from ..workflow import round_status

            return web.page(request, "_review.html", **_review_view(web, round_status(web.rnd, ctx)),
                            message=_said(exc), ok=False)
    made = sum(a.action in ("written", "refreshed") for a in actions)
    waiting = sum(a.action == "waiting" for a in actions)
    message = f"已生成 {made} 个核定表，保存在 核定/ 文件夹。" + (f"另有 {waiting} 个乡镇尚无合格的考核表，暂不能核定。"
                                                            if waiting else "")
    return web.page(request, "_review.html", **_review_view(web, board), message=message, ok=True)


def feedback_generate(web: _Web, request: Request) -> Response:
    """`feedback` from the page: rank as `rank` does and write a 反馈单 per ranked township into 反馈/."""
    from ..feedback import collect_feedback, feedback_round
    from ..workflow import round_board

    ctx = web.context()
    with web.lock:
        try:
            run = feedback_round(web.rnd, ctx, workers=web.workers)
        except AssessError as exc:
            board, strays = round_board(web.rnd, ctx)
            return web.page(request, "_feedback.html", **_feedback_view(web, board, strays), message=_said(exc),
                            ok=False)
        board, strays = collect_feedback(web.rnd, ctx, run.board)
    moved = "".join(f"已报回的反馈单 {m.relative_to(web.rnd.root).as_posix()} 已移到旁边，未被覆盖。" for m in run.kept)
    message = f"已生成 {len(run.written)} 份反馈单，保存在 反馈/ 文件夹。{run.board.unranked_text()}{moved}"
    return web.page(request, "_feedback.html", **_feedback_view(web, board, strays), message=message, ok=True)


async def feedback_upload(web: _Web, request: Request) -> Response:
    """反馈单s sent back: kept by content, placed in 反馈/网页上传/…, collected as `check` does, each answered."""
    return await _answer_upload(web, request, up.receive_feedback, "_feedback_verdicts.html",
                                lambda answers, board, strays: _feedback_view(web, board, strays), collected=True)


async def review_upload(web: _Web, request: Request) -> Response:
    """Filled 核定表s: kept by content, placed in 核定/网页上传/…, the round checked again, each answered."""
    return await _answer_upload(web, request, up.receive_reviews, "_review_verdicts.html",
                                lambda answers, board: _review_view(web, board))


async def _answer_upload(web: _Web, request: Request, receive, template: str, view, collected: bool = False
                         ) -> Response:
    """An upload of 核定表s or 反馈单s: `receive` (from web/uploads.py) keeps, places and checks them (its board
    `collected`: with 反馈/ read already); the page gets `template` with `view(*received)`, a script the files,
    counts and board."""
    from starlette.concurrency import run_in_threadpool

    got = await _uploaded(web, request)
    if isinstance(got, Response):
        return got
    try:
        received, _ = await run_in_threadpool(_received, web, *got, receive, collected)
    except AssessError as exc:                                # the round cannot be written (R302)
        return _upload_refused(request, 507, "上传未完成：" + _said(exc))
    if request.headers.get("hx-request") == "true":
        return web.page(request, template, answers=received[0], **view(*received))
    return _upload_json(*received[:2])


async def api_upload(web: _Web, request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    got = await _uploaded(web, request)
    if isinstance(got, Response):
        return got
    try:
        (answers, board), unwritten = await run_in_threadpool(_received, web, *got, up.receive)
    except AssessError as exc:                                # the round cannot be written (R302)
        return _upload_refused(request, 507, "上传未完成：" + _said(exc))
    if request.headers.get("hx-request") == "true":
        return web.page(request, "_verdicts.html", answers=answers, notices=_notices(board, got[0]),
                        counts=_counts(board), unwritten=unwritten)
    return _upload_json(answers, board, results=None if unwritten else f"{RESULTS_DIR}/{RESULTS_BOOK}",
                        results_error=unwritten or None)


def _upload_json(answers, board, **extra) -> JSONResponse:
    return JSONResponse({"files": [a.as_dict() for a in answers], "counts": _counts(board),
                         "townships": [line.as_dict() for line in board.lines], **extra})


async def _uploaded(web: _Web, request: Request) -> "tuple[object, list[up.Upload]] | Response":
    """(the round's context, the request's files: multipart, field `files`) within the limits, or the refusal
    to answer with."""
    size = request.headers.get("content-length")
    if size is None or not size.isdigit():
        return _upload_refused(request, 411, "上传被拒绝：请求未说明大小。")
    try:
        ctx = web.context()
    except AssessError as exc:                                # 考核设置.xlsx unreadable now: one line, as below
        return _upload_refused(request, 507, "上传未完成：" + _said(exc))
    limits = web.limits(ctx)
    if int(size) > limits.bytes:
        return _upload_refused(request, 413, f"上传被拒绝：一次最多上传 {limits.bytes // MB} MB，请分几次上传"
                                             "（上限可在考核设置.xlsx 的考核参数中修改）。")
    try:
        form = await request.form(max_files=limits.files, max_fields=10)
    except (MultiPartException, HTTPException):              # Starlette turns the first into the second
        return _upload_refused(request, 400, f"上传被拒绝：一次最多上传 {limits.files} 个文件，请分几次上传"
                                             "（上限可在考核设置.xlsx 的考核参数中修改）。")
    try:
        files = [f for f in form.getlist("files") if hasattr(f, "read")]
        if not files:
            return _upload_refused(request, 400, "上传被拒绝：没有收到文件（表单字段应为 files）。")
        got = [up.Upload(f.filename or "", await f.read()) for f in files]    # no more than Content-Length said
    finally:
        await form.close()
    return ctx, got


def _received(web: _Web, ctx, got: list, receive, collected: bool = False) -> tuple:
    """`receive` (from web/uploads.py) keeps, places and checks the uploads under the page's lock, and
    核查结果.xlsx is rewritten: (what `receive` gave, what went wrong writing the book)."""
    with web.lock:
        received = receive(web.rnd, ctx, got, web.workers)
        return received, _write_results(web, received[1], ctx, collected)


def _write_results(web: _Web, board, ctx, collected: bool = False) -> str:
    """Rewrite 结果/核查结果.xlsx as `check` does (with the 反馈单s in 反馈/, read here unless the board is
    `collected` already); what went wrong ("" if nothing: held open in WPS, say)."""
    from ..feedback import collect_feedback
    from ..results_book import write_results

    if not collected:
        board, _ = collect_feedback(web.rnd, ctx, board)
    try:
        write_results(board, ctx, web.rnd.results / RESULTS_BOOK)
    except AssessError as exc:
        return _said(exc)
    return ""


def _said(exc: AssessError) -> str:
    """An AssessError as one line for the page: each issue's code and message (its detail included)."""
    return "；".join(f"{i.code} {i.message}" for i in exc.report.issues)


def _upload_refused(request: Request, status: int, message: str) -> Response:
    if request.headers.get("hx-request") == "true":
        return HTMLResponse(f'<p class="refused">{message}</p>', status)
    return JSONResponse({"error": message}, status)


def check_again(web: _Web, request: Request) -> Response:
    from ..workflow import check_round

    ctx = web.context()
    with web.lock:
        _, board = check_round(web.rnd, ctx, workers=web.workers)
        unwritten = _write_results(web, board, ctx)
    return web.page(request, "_notices.html", notices=_notices(board, ctx), unwritten=unwritten)


def rank_run(web: _Web, request: Request) -> Response:
    from ..workflow import rank_round

    ctx = web.context()
    message = ""
    with web.lock:
        try:
            _, board, ranking = rank_round(web.rnd, ctx, workers=web.workers)
            web.last_ranking = (ranking, board.unranked_text())
        except AssessError as exc:
            message = _said(exc)
    return web.page(request, "_ranking.html", **_ranking_view(web), message=message)


# -- downloads -----------------------------------------------------------------------------------------

def forms_zip(web: _Web, request: Request) -> Response:
    return _zip_download(_workbooks(web.rnd.sent), f"{web.context().settings.year}年考核表.zip",
                         "下发/ 中还没有考核表，请先生成。")


def reviews_zip(web: _Web, request: Request) -> Response:
    return _zip_download(_workbooks(web.rnd.reviews), f"{web.context().settings.year}年核定表.zip",
                         "核定/ 中还没有核定表，请先生成。")


def feedback_zip(web: _Web, request: Request) -> Response:
    return _zip_download(_workbooks(web.rnd.feedback), f"{web.context().settings.year}年反馈单.zip",
                         "反馈/ 中还没有反馈单，请先生成。")


def _zip_download(paths: list[Path], name: str, none: str) -> Response:
    """The workbooks of one of the round's folders as one zip named `name` (`none`: what 404 says)."""
    if not paths:
        return PlainTextResponse(none, 404)
    return Response(zip_of(paths), media_type="application/zip", headers={"Content-Disposition": _attachment(name)})


def zip_of(paths: list[Path]) -> bytes:
    """The files as one zip: names in UTF-8 with the language-encoding flag (0x800) set, which Windows 10+
    Explorer, 7-Zip, macOS and Info-ZIP honour (Python's zipfile sets it for every non-ASCII name)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            info = zipfile.ZipInfo(p.name, date_time=dt.datetime.fromtimestamp(p.stat().st_mtime).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.flag_bits |= 0x800
            zf.writestr(info, p.read_bytes())
    return buf.getvalue()


def results_book(web: _Web, request: Request) -> Response:
    path = web.rnd.results / RESULTS_BOOK
    if not path.is_file():
        return PlainTextResponse("还没有核查结果，请先上传或核查收回的文件。", 404)
    return FileResponse(path, headers={"Content-Disposition": _attachment(RESULTS_BOOK)})


def ranking_book(web: _Web, request: Request) -> Response:
    path = web.rnd.results / RANKING_BOOK
    if not path.is_file():
        return PlainTextResponse("还没有排名，请先在本页生成排名。", 404)
    return FileResponse(path, headers={"Content-Disposition": _attachment(RANKING_BOOK)})


def _attachment(name: str) -> str:
    from urllib.parse import quote

    return f"attachment; filename=\"download.{name.rsplit('.', 1)[-1]}\"; filename*=UTF-8''{quote(name)}"


# -- the API -------------------------------------------------------------------------------------------

def api_status(web: _Web, request: Request) -> Response:
    from ..workflow import round_board

    board, _ = round_board(web.rnd, web.context())
    return JSONResponse({"townships": [line.as_dict() for line in board.lines], "counts": _counts(board),
                         "setup_suspect": board.setup_suspect.as_dict() if board.setup_suspect else None})


# -- views ---------------------------------------------------------------------------------------------

def _counts(board) -> dict:
    return {"total": len(board.lines), "ok": board.count("ok"), "fix": board.count("fix"),
            "missing": board.count("missing")}


def _workbooks(folder: Path) -> list[Path]:
    """The .xlsx files directly in `folder` (下发/, 核定/: what was generated there; not the lock files WPS and
    Excel leave, nor the subfolders such as 核定/网页上传/)."""
    if not folder.is_dir():
        return []
    from ..collect import skip_reason

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".xlsx"
                  and not skip_reason(p.name))


def _feedback_view(web: _Web, board, strays) -> dict:
    """The 整改 stage per township (`collect_feedback`'s board), for feedback.html and its parts."""
    from ..board import FEEDBACK_STATES

    stages = {k: board.count(k) for k in FEEDBACK_STATES} | {"none": sum(not line.feedback for line in board.lines)}
    return {"lines": board.lines, "stages": stages, "strays": strays, "sheets": _workbooks(web.rnd.feedback)}


def _review_view(web: _Web, board) -> dict:
    """The 核定 stage per township, for review.html and its parts."""
    from ..board import REVIEW_STAGES

    lines = board.lines
    stages = {k: board.count(k) for k in REVIEW_STAGES}
    chosen = set(map(id, board.reviews.chosen.values())) if board.reviews else set()
    others = [(r.name, r.township.name if r.township else "", [i for i in r.issues if i.severity == "error"])
              for r in (board.reviews.results if board.reviews else []) if id(r) not in chosen and r.errors]
    return {"lines": lines, "stages": stages, "waiting": sum(line.state != "ok" for line in lines),
            "reviews": _workbooks(web.rnd.reviews), "others": others}


def _notices(board, ctx) -> list[tuple]:
    from ..notices import item_rows, kind_of, notices

    items = item_rows(ctx.rubric, ctx.settings)
    return [(line, kind_of(line), text) for line, text in notices(board, ctx.settings, items)]


def _when(t: dt.datetime | None) -> str:
    return "" if t is None else local_text(t)


def _ranking_view(web: _Web) -> dict:
    """The last ranking this server made: rows for the table and bars for the chart."""
    if web.last_ranking is None:
        return {"rows": None, "bars": [], "unranked": "", "has_book": (web.rnd.results / RANKING_BOOK).is_file(),
                "compared": False, "title": "", "unverified": ()}
    rk, unranked = web.last_ranking
    rows = rk.ranking.to_dict("records")
    from ..ranking import COMPARED
    from ..scoring import show

    compared = COMPARED[0] in rk.ranking.columns          # the round has 核定表s: 自评 and 核定 side by side
    for row in rows:
        for col in ("基础得分", "加分", "减分", "最终得分", *(COMPARED[:3] if compared else ())):
            value = row[col]
            row[col] = "" if value is None or value != value else show(value, rk.decimals)   # NaN: not verified
        if compared and row[COMPARED[2]] and not row[COMPARED[2]].startswith("-"):
            row[COMPARED[2]] = "+" + row[COMPARED[2]]
    top = max((float(r["最终得分"]) for r in rows), default=0.0) or 1.0
    bars = [(r["乡镇"], r["最终得分"], float(r["最终得分"]) / top) for r in rows]
    return {"rows": rows, "bars": bars, "unranked": unranked, "has_book": True, "compared": compared,
            "title": "初步排名" if rk.preliminary else "排名", "unverified": rk.unverified if compared else ()}
