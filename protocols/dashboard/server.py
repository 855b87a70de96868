"""The dashboard's quart-trio app and its hypercorn server, run as one task in the hub's nursery."""

from __future__ import annotations

import json
import logging
import secrets
import socket
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart import Response, redirect, render_template, request, websocket
from quart_trio import QuartTrio

from hub.config import ConfigError
from hub.net.tls import ServerTLS, TLSFileError

from . import views
from .auth import COOKIE, LOGIN_COOKIE, BrowserSession, LoginLimiter, SessionStore, check_password, is_hash, same_token
from .guard import Guard, error_body
from .monitor import Monitor, Page

if TYPE_CHECKING:
    from hub.adapters import AdapterContext

    from . import DashboardSettings

log = logging.getLogger("hub.dashboard")

HERE = Path(__file__).parent
PAGES = ("overview", "channels", "clients", "actions", "chat", "config")  # the navigation bar
LIVE_PAGES = ("overview", "channels", "channel", "clients", "chat", "room")  # pages with a live socket
LOGIN_REQUIRED = 4401  # live socket close code: the page reloads and lands on the login form
TRY_AGAIN_LATER = 1013
ACCOUNT = "dashboard"  # the dashboard's one login, as the user the shared login limiter counts failures for
FLUSH_PAUSE = 0.25  # a page gets watched publications at most 4 times a second
SLOW_CLOSE = (1008, "slow")  # live socket close code: the browser did not read its updates (write timeout)


class SlowPage(Exception):
    """A live page's socket did not take an update within the write timeout (the browser does not read)."""
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Chromium send `Origin: null` on form posts
    "Cross-Origin-Opener-Policy": "same-origin",
}


class _NoBanner(logging.Filter):
    """Hypercorn's "Running on ... (CTRL + C to quit)": the runtime logs the listener line itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on ")


SERVER_LOG = logging.getLogger("hub.dashboard.server")
SERVER_LOG.addFilter(_NoBanner())


class Dashboard:
    """The app's state: the hub it shows, the browsers logged in, the live-data monitor."""

    def __init__(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.runtime = ctx.runtime
        self.sessions = SessionStore()
        self.limiter = LoginLimiter()
        self.monitor = Monitor(ctx.runtime, lambda: self.settings.update_interval)
        self.app = build_app(self)
        self.guard: Guard | None = None  # the per-IP limits and Origin check in front of `app` (set when serving)

    @property
    def settings(self) -> DashboardSettings:
        return self.ctx.settings

    def session(self, cookies: Any = None) -> BrowserSession | None:
        """The logged-in session of this request (or of the websocket handshake's `cookies`)."""
        cookies = request.cookies if cookies is None else cookies
        return self.sessions.get(cookies.get(COOKIE), self.settings.session_ttl)


def wants_json() -> bool:
    return "application/json" in request.headers.get("Accept", "")


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def build_app(dash: Dashboard) -> QuartTrio:
    app = QuartTrio(__name__, static_folder=str(HERE / "static"), template_folder=str(HERE / "templates"))
    app.config.update(MAX_CONTENT_LENGTH=dash.settings.max_body_bytes, SEND_FILE_MAX_AGE_DEFAULT=0,
                      TEMPLATES_AUTO_RELOAD=False, PROPAGATE_EXCEPTIONS=False)
    runtime = dash.runtime

    @app.after_request
    async def headers(response: Response) -> Response:
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    async def page(name: str, session: BrowserSession, status: int = 200, **context: Any) -> Response:
        flash, session.flash = session.flash, []
        html = await render_template(f"{name}.html", page=name, pages=PAGES, csrf=session.csrf, flash=flash, live=name in LIVE_PAGES,
                                     node=dash.monitor.node, **context)
        return Response(html, status, content_type="text/html; charset=utf-8")

    def login_required(view: Any) -> Any:
        @wraps(view)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            session = dash.session()
            if session is None:
                if request.method == "GET":
                    return redirect("/login?next=" + quote(request.full_path.rstrip("?"), safe="/?=&"), 303)
                return refuse(401, "not logged in (or the session expired): log in again")
            if request.method == "POST":
                form = await request.form
                if not same_token(session.csrf, form.get("csrf")):  # the Origin: checked by the Guard
                    return refuse(403, "missing or wrong CSRF token: reload the page and try again")
            return await view(session, *args, **kwargs)
        return wrapper

    def refuse(status: int, message: str) -> Response:
        body, content_type = error_body(status, message, wants_json())
        return Response(body, status, content_type=content_type)

    def answer(session: BrowserSession, result: dict[str, Any], back: str) -> Response:
        """The result of a form post: JSON for the page's script, else a message on the page it came from."""
        if wants_json():
            # 200 either way: the request was handled and the page shows the refusal in place (a 4xx would
            # also put a "Failed to load resource" line in the browser's console for an ordinary mistake)
            return Response(json.dumps(result, default=str), 200, content_type="application/json")
        text = result.get("message") or result.get("error") or json.dumps(result.get("result"), default=str)
        session.flash.append(("ok" if result.get("ok") else "error", text))
        return redirect(back, 303)

    # -- login ----------------------------------------------------------------------------------
    async def login_page(status: int = 200, error: str = "", retry_after: int = 0) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        html = await render_template("login.html", csrf=token, error=error, next=safe_next(request.args.get("next")))
        response = Response(html, status, content_type="text/html; charset=utf-8")
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", path="/login")
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.get("/login")
    async def login_form() -> Any:
        if dash.session() is not None:
            return redirect(safe_next(request.args.get("next")), 303)
        return await login_page()

    @app.post("/login")
    async def login() -> Any:
        form = await request.form
        client = request.remote_addr or ""
        wait = dash.limiter.retry_after(client, dash.settings.login_attempts)
        if wait:
            return await login_page(429, f"Too many failed logins: try again in {wait} s.", wait)
        if not same_token(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")):
            return await login_page(403, "The login form expired: please try again.")
        # The hub's shared limiter ([login_limit]): the dashboard's one account counts as the user.
        shared = runtime.login_limiter
        blocked = shared.check("dashboard", ACCOUNT, client)
        if blocked is not None:
            log.debug("dashboard: login refused for %s: blocked for %s", client, blocked.kind)
            whom = "this address" if blocked.kind == "ip" else "the dashboard account"
            return await login_page(429, f"Login has been temporarily blocked for {whom} after too many failed logins: "
                                         f"try again in {blocked.retry_after} s.", blocked.retry_after)
        password, given = dash.settings.password, form.get("password", "")
        if is_hash(password):
            ok = await trio.to_thread.run_sync(check_password, password, given)
        else:
            ok = check_password(password, given)
        if not ok:
            dash.limiter.failed(client)
            shared.failed("dashboard", ACCOUNT, client)
            log.info("dashboard: failed login from %s", client)
            return await login_page(200, "Login failed.")  # the form again, as after any mistake in a form
        dash.limiter.succeeded(client)
        shared.succeeded("dashboard", ACCOUNT, client)
        session = dash.sessions.create()
        response = redirect(safe_next(request.args.get("next") or form.get("next")), 303)
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        log.info("dashboard: login from %s", client)
        return response

    @app.post("/logout")
    @login_required
    async def logout(session: BrowserSession) -> Any:
        dash.sessions.drop(session.id)
        response = redirect("/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- pages ----------------------------------------------------------------------------------
    @app.get("/")
    @login_required
    async def overview(session: BrowserSession) -> Any:
        return await page("overview", session, data=dash.monitor.overview())

    def project_arg(source: Any) -> str:
        project = source.get("project") or runtime.default_project
        return project if project in runtime.hub.projects else runtime.default_project

    @app.get("/channels")
    @login_required
    async def channels(session: BrowserSession) -> Any:
        channel = request.args.get("channel", "")
        project = project_arg(request.args)
        projects = list(runtime.hub.projects)
        if channel:
            return await page("channel", session, project=project, projects=projects, channel=channel,
                              detail=await views.channel_detail(runtime, project, channel))
        return await page("channels", session, project=project, projects=projects, q=request.args.get("q", ""))

    @app.post("/channels/publish")
    @login_required
    async def publish(session: BrowserSession) -> Any:
        form = await request.form
        project = project_arg(form)
        result = await views.publish(runtime, project, form.get("channel", "").strip(), form.get("data", ""))
        back = "/channels?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in (("project", project), ("channel", form.get("channel", ""))))
        return answer(session, result, back)

    @app.get("/clients")
    @login_required
    async def clients(session: BrowserSession) -> Any:
        return await page("clients", session, q=request.args.get("q", ""))

    @app.post("/clients/disconnect")
    @login_required
    async def disconnect(session: BrowserSession) -> Any:
        form = await request.form
        return answer(session, views.disconnect(runtime, form.get("client", "")), "/clients")

    @app.get("/actions")
    @login_required
    async def actions(session: BrowserSession) -> Any:
        return await page("actions", session, actions=views.action_list(runtime), selected=request.args.get("action", ""))

    @app.post("/actions/run")
    @login_required
    async def run_action(session: BrowserSession) -> Any:
        form = await request.form
        name = form.get("action", "")
        result = await views.run_action(runtime, name, dict(form))
        if not wants_json() and result.get("ok"):
            result["message"] = f"{name}: " + json.dumps(result["result"], default=str)[:2000]
        return answer(session, result, "/actions?action=" + quote(name, safe=""))

    @app.get("/chat")
    @login_required
    async def chat(session: BrowserSession) -> Any:
        room = request.args.get("room", "")
        if room:
            rooms = (await views.chat_rooms(runtime))["rooms"]
            name = next((r["name"] for r in rooms if room in (r["id"], r["name"])), room)
            return await page("room", session, room=room, room_name=name, messages=await views.chat_room(runtime, room),
                              watching=views.chat_channel(runtime, room) is not None)
        return await page("chat", session, rooms=await views.chat_rooms(runtime))

    @app.get("/config")
    @login_required
    async def config(session: BrowserSession) -> Any:
        return await page("config", session, text=views.toml_text(views.effective_config(runtime)),
                          source=runtime.config_path)

    @app.post("/config/reload")
    @login_required
    async def reload(session: BrowserSession) -> Any:
        result = views.reload_config(runtime)
        result["text"] = views.toml_text(views.effective_config(runtime))
        return answer(session, result, "/config")

    # -- live data ------------------------------------------------------------------------------
    @app.websocket("/ws")
    async def live() -> Any:
        kind = websocket.args.get("page", "")
        if kind not in LIVE_PAGES:
            return "unknown page", 404
        await websocket.accept()
        if dash.session(websocket.cookies) is None:
            await websocket.close(LOGIN_REQUIRED, "log in again")  # the page reloads and lands on the login form
            return None
        page = dash.monitor.open_page(kind)
        if page is None:
            await websocket.close(TRY_AGAIN_LATER, "too many dashboard pages open")
            return None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_read_filters, page)
                nursery.start_soon(_close_on_shutdown, dash, nursery.cancel_scope)
                try:
                    await _send_updates(dash, page, dict(websocket.args))
                except SlowPage:
                    # Send or disconnect: a browser that does not read its updates is closed, not buffered for.
                    log.info("closing a dashboard page that does not read its updates")
                    dash.runtime.metrics.disconnected("dashboard", "slow")
                    nursery.cancel_scope.cancel()
                    with trio.move_on_after(1):
                        await websocket.close(*SLOW_CLOSE)
        finally:
            dash.monitor.close_page(page)

    @app.errorhandler(413)
    async def too_large(_: Any) -> Response:
        return refuse(413, "request too large")

    return app



async def _read_filters(page: Page) -> None:
    """The page may change what it shows (the search box): `{"q": "..."}`; anything else is ignored."""
    while True:
        message = await websocket.receive()
        try:
            data = json.loads(message)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("q"), str):
            page.filters["q"] = data["q"][:200]
            page.refilter = True
            page.wake.set()


async def _close_on_shutdown(dash: Dashboard, scope: trio.CancelScope) -> None:
    await dash.runtime.stopping.wait()
    await websocket.close(1001, "hub shutting down")
    scope.cancel()


async def _send_updates(dash: Dashboard, page: Page, args: dict[str, str]) -> None:
    """Send what the page shows now, then on every tick (lists, counters) and watched publication (channel, room)."""
    runtime, monitor = dash.runtime, dash.monitor
    page.filters.setdefault("q", args.get("q", ""))
    project = args.get("project") or runtime.default_project
    if project not in runtime.hub.projects:
        project = runtime.default_project
    if page.kind == "channel":
        monitor.watch(page, project, args.get("channel", ""))
    elif page.kind == "room":
        key = views.chat_channel(runtime, args.get("room", ""))
        if key is not None:
            monitor.watch(page, *key)
    last: dict[str, str] = {}
    first, seen_tick = True, -1
    write_timeout = dash.ctx.config.hub.write_timeout

    async def send(message: dict[str, Any]) -> None:
        text = json.dumps(message, default=str, separators=(",", ":"))
        kind = message["type"]
        if kind in ("publications", "messages") or last.get(kind) != text:
            last[kind] = text
            started = trio.current_time()
            await websocket.send(text)  # hypercorn shields the socket write: the kernel ends a stuck one (TCP_USER_TIMEOUT)
            if trio.current_time() - started >= 0.9 * write_timeout:
                raise SlowPage

    while True:
        if page.pending or page.skipped:
            pubs, skipped = page.take()
            if page.kind == "room":
                msgs = [m for m in (views.chat_message(p.data) for p in pubs) if m is not None]
                await send({"type": "messages", "messages": msgs, "skipped": skipped})
            else:
                await send({"type": "publications", "items": [views.publication_row(p) for p in pubs], "skipped": skipped})
        if first or monitor.tick != seen_tick or page.refilter:
            seen_tick, page.refilter = monitor.tick, False
            if page.kind == "overview":
                await send(monitor.overview(with_series=first))
            elif page.kind == "channels":
                await send(await views.channel_list(runtime, project, page.filters["q"]))
            elif page.kind == "channel" and (first or monitor.tick % 2 == 0):
                await send(await views.channel_detail(runtime, project, args.get("channel", "")))
            elif page.kind == "clients":
                await send(views.client_list(runtime, page.filters["q"]))
            elif page.kind == "chat" and (first or monitor.tick % 3 == 0):
                await send(await views.chat_rooms(runtime))
            first = False
        if page.pending:
            await trio.sleep(FLUSH_PAUSE)
            continue
        await page.wake.wait()
        page.wake = trio.Event()
        if page.watching is not None:
            await trio.sleep(FLUSH_PAUSE)  # gather a burst of publications into one message


def user_timeout(sock: socket.socket, seconds: float) -> None:
    """Send or disconnect for hypercorn's connections (accepted sockets inherit it): the kernel resets a connection
    whose sent data stays unacknowledged (a browser that stops reading: zero window) for `seconds`. Hypercorn shields
    its socket writes from cancellation, so without this one stuck page would hold a task, and the shutdown, forever."""
    if hasattr(socket, "TCP_USER_TIMEOUT") and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, int(seconds * 1000)))


async def run_server(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Bind, report the URL, serve until the hub's `stopping` event (hypercorn's shutdown trigger)."""
    dash = ctx.state["dashboard"] = Dashboard(ctx)
    settings: DashboardSettings = ctx.settings
    config = HyperConfig()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = SERVER_LOG
    config.graceful_timeout = ctx.config.hub.shutdown_grace
    config.include_server_header = False
    config.websocket_max_message_size = 64 * 1024
    if settings.tls_cert:  # hypercorn serves TLS with the hub's context (TLS 1.2+), reloaded in place on SIGHUP
        config.certfile, config.keyfile = settings.tls_cert, settings.tls_key
        try:
            tls = ctx.state["tls"] = ServerTLS(settings.tls_cert, settings.tls_key)
        except TLSFileError as exc:
            raise ConfigError(ctx.config.source, f"dashboard.{exc.key}", str(exc)) from None
        config.create_ssl_context = lambda: tls.context  # type: ignore[method-assign]
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        problem = f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        raise ConfigError(ctx.config.source, "dashboard.port", problem) from None
    bound = sockets.secure_sockets or sockets.insecure_sockets
    for sock in bound:
        sock.listen(config.backlog)
        user_timeout(sock, ctx.config.hub.write_timeout)
    port = bound[0].getsockname()[1]
    scheme = "https" if sockets.secure_sockets else "http"
    dash.guard = Guard(dash.app, lambda: dash.settings, refused=partial(ctx.metrics.refused, "dashboard"),
                       headers=SECURITY_HEADERS)
    app = wrap_app(dash.guard, config.wsgi_max_body_size, None)

    async with trio.open_nursery() as nursery:

        async def serve_until_shutdown(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await worker_serve(app, config, sockets=sockets, shutdown_trigger=dash.runtime.stopping.wait,
                                   task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()  # the monitor stops with the server

        await nursery.start(dash.monitor.run)
        await nursery.start(serve_until_shutdown)
        task_status.started(f"{scheme}://{host}:{port}")
    dash.monitor.stop()
