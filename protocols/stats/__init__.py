"""MQTT-broker-style stats (NanoMQ HTTP API v1) and Prometheus metrics, on their own port (8081)."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings, parse_settings
from hub.loginlimit import address_of
from hub.net.http import Request, Response, Route
from hub.security import is_loopback

from . import api
from . import v4 as v4api
from .metrics import registry_for, render

log = logging.getLogger("hub.stats")

DEFAULT_APP_ID, DEFAULT_APP_SECRET = "admin", "public"


@dataclass
class StatsSettings(ListenerSettings):
    """[stats]: the broker-style HTTP API and /metrics."""

    port: int = field(default=8081, metadata={"min": 0, "max": 65535})
    app_id: str = DEFAULT_APP_ID
    app_secret: str = DEFAULT_APP_SECRET
    metrics_auth: bool = False
    # req 10 with `data` (a whole new config posted over HTTP) is refused unless this is true; a reload of the file stays.
    allow_config_upload: bool = False


def error_response(exc: api.ApiError) -> Response:
    """NanoMQ's error body `{"code", "seq"[, "rep"]}`; what went wrong goes in the `X-Error` header."""
    text = " ".join(exc.message.split()).encode("ascii", "replace").decode()
    return Response.json(exc.body(), exc.status, [("X-Error", text)])


def error(status: int, message: str) -> Response:
    """Errors the server makes itself, in the API's shape (never HTML)."""
    if status == 413:
        return error_response(api.ApiError(400, api.BAD_PARAMETER, "request parameter error: body too large"))
    if status in (404, 405):
        return error_response(api.ApiError(404, api.UNKNOWN, "the requested path cannot be found"))
    if status == 500:
        return error_response(api.ApiError(500, api.UNKNOWN, "internal error"))
    return error_response(api.ApiError(status, api.BAD_PARAMETER, message))


def authenticate(ctx: AdapterContext, request: Request, v4: bool = False) -> Response | None:
    """Basic auth through the shared login limiter: None if the credentials are right, else the answer.

    A wrong AppID/AppSecret (103) counts as a failed login; while the client's address or the AppID it
    tries is blocked, the answer is 429 with NanoMQ's wrong-credentials body (`{"code": 103, "seq": 0}`;
    `{"code": 103}` on v4), `Retry-After`, and the reason (Rocket.Chat's error type) in `X-Error`.
    `v4`: credentials read as NanoMQ 0.8+'s `basic_authorize` reads them, errors in the v4 shape."""
    settings: StatsSettings = ctx.settings
    header = request.header("authorization")
    limiter, user, ip = ctx.runtime.login_limiter, api.basic_user(header), address_of(request.client)
    blocked = limiter.check("stats", user, ip)
    if blocked is not None:
        log.debug("stats API login refused for %s: blocked for %s", request.client, blocked.kind)
        message = (f"login has been temporarily blocked for {blocked.kind} "
                   f"(error-login-blocked-for-{blocked.kind}): try again in {blocked.retry_after} s")
        response = (v4_error(v4api.V4Error(429, api.WRONG_CREDENTIALS, message)) if v4
                    else error_response(api.ApiError(429, api.WRONG_CREDENTIALS, message)))
        response.headers.append(("Retry-After", str(blocked.retry_after)))
        return response
    try:
        if v4:
            v4api.check_auth(header, settings.app_id, settings.app_secret)
        else:
            api.check_auth(header, settings.app_id, settings.app_secret)
    except (api.ApiError, v4api.V4Error) as exc:
        if exc.code in (api.WRONG_CREDENTIALS, api.BAD_PARAMETER):  # a wrong or undecodable guess
            limiter.failed("stats", user, ip)
        else:  # no or empty credentials: not a guess
            limiter.release("stats", user, ip)
        log.debug("%s %s from %s: %d/%d %s", request.method, request.path, request.client, exc.status, exc.code, exc.message)
        return v4_error(exc) if isinstance(exc, v4api.V4Error) else error_response(exc)
    limiter.succeeded("stats", user, ip)
    return None


def v4_error(exc: v4api.V4Error) -> Response:
    """NanoMQ v4's error body `{"code": N}`; what went wrong goes in the `X-Error` header."""
    text = " ".join(exc.message.split()).encode("ascii", "replace").decode()
    return Response.json(exc.body(), exc.status, [("X-Error", text)])


async def api_v4(ctx: AdapterContext, request: Request) -> Response:
    """/api/v4/...: NanoMQ 0.8+'s REST API (`process_request`): Basic auth first, then the route by method and
    path segments; every error `{"code": N}`. Any method reaches it, as nng's tree handler takes them all."""
    refused = authenticate(ctx, request, v4=True)
    if refused is not None:
        return refused
    try:
        target = v4api.parse_target(request.target)
        state = ctx.state.get("v4")
        if state is None:
            state = ctx.state["v4"] = v4api.State()
        answer = await v4api.route(ctx.hub, request.method.upper(), target, request.body, state)
        if isinstance(answer, str):  # /prometheus
            return Response(200, answer.encode(), "text/plain")
        return Response.json(answer)
    except v4api.V4Error as exc:
        log.debug("%s %s from %s: %d/%d %s", request.method, request.path, request.client, exc.status, exc.code, exc.message)
        return v4_error(exc)


async def api_v1(ctx: AdapterContext, request: Request) -> Response:
    """/api/v1: Basic auth, then the `{"req", "seq"}` request; every error in the API's shape. Any method, as
    NanoMQ's handler is registered for all (`nng_http_handler_set_method(handler, NULL)`): its docs send GET."""
    refused = authenticate(ctx, request)
    if refused is not None:
        return refused
    try:
        body = api.parse_request(request.body)
        return Response.json(api.answer(ctx.hub, body, partial(restart, ctx), partial(control, ctx)))
    except api.ApiError as exc:
        log.debug("%s /api/v1 from %s: %d/%d %s", request.method, request.client, exc.status, exc.code, exc.message)
        return error_response(exc)


def control(ctx: AdapterContext, action: str) -> None:
    """req 10 `action`: "stop" shuts the hub down cleanly (clients told, drained; `hub run` exits 0);
    "restart" does the same, then `hub run` starts again with the same arguments. The answer is
    already on its way: the shutdown lets requests in flight finish."""
    log.warning("%s requested over the stats API", action)
    ctx.runtime.shutdown(restart=action == "restart")


def restart(ctx: AdapterContext, config: str | None) -> dict[str, Any]:
    """Reload hub.toml (or the posted TOML text, only with `allow_config_upload = true`) in place; connections stay."""
    try:
        if config is None:
            return ctx.runtime.reload_from_file()
        if not ctx.settings.allow_config_upload:
            log.warning("req 10 with a posted config refused: [stats] allow_config_upload is false")
            raise api.ApiError(403, api.BAD_PARAMETER, "request parameter error: replacing the configuration through "
                               "`data` is off ([stats] allow_config_upload = false); req 10 without data reloads the file")
        source = "<posted config>"
        try:
            data = tomllib.loads(config)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"not valid TOML: {exc}") from None
        return ctx.runtime.reload(parse_settings(data, source))
    except ConfigError as exc:
        raise api.ApiError(400, api.BAD_PARAMETER, f"config error: {exc}") from None


async def metrics(ctx: AdapterContext, request: Request) -> Response:
    """GET /metrics: the Prometheus text format, read live at scrape time."""
    settings: StatsSettings = ctx.settings
    if settings.metrics_auth:
        refused = authenticate(ctx, request)
        if refused is not None:
            return refused
    registry = ctx.state.get("registry")
    if registry is None:
        registry = ctx.state["registry"] = registry_for(ctx.hub, ctx.metrics, ctx.runtime.login_limiter)
    return Response(200, render(registry), "text/plain; version=0.0.4; charset=utf-8")


def routes(ctx: AdapterContext) -> list[Route]:
    """/api/v1 (any method, as NanoMQ 0.6; nng's handler matches `/api/v1/` too), /api/v4/... (NanoMQ 0.8+) and /metrics."""
    return [Route("/api/v1", partial(api_v1, ctx)), Route("/api/v1/", partial(api_v1, ctx)),  # nng: one trailing /
            Route("/api/v4", partial(api_v4, ctx)), Route("/api/v4/{rest:path}", partial(api_v4, ctx)),
            Route("/api/v4/", partial(api_v4, ctx)),
            Route("/metrics", partial(metrics, ctx), methods=["GET"])]


def uses_defaults(settings: StatsSettings) -> bool:
    return settings.app_id == DEFAULT_APP_ID and settings.app_secret == DEFAULT_APP_SECRET


def validate(settings: StatsSettings, config: Settings) -> None:
    """With NanoMQ's default admin/public the API is served on loopback only (as Mosquitto 2 listens locally
    until configured): any other host is a config error at start."""
    if settings.enabled and uses_defaults(settings) and not is_loopback(settings.host):
        raise ConfigError(config.source, "stats.app_secret", f"app_id/app_secret are the defaults {DEFAULT_APP_ID}/"
                          f"{DEFAULT_APP_SECRET} while host {settings.host!r} is not loopback: set your own "
                          "(app_id_env/app_secret_env) or serve on 127.0.0.1")


def audit(settings: StatsSettings, config: Settings) -> list[str]:
    """`hub check-config --production`: default credentials, and config upload left on."""
    problems = []
    if uses_defaults(settings):
        problems.append(f"stats.app_id/app_secret: the default credentials {DEFAULT_APP_ID}/{DEFAULT_APP_SECRET}")
    if settings.allow_config_upload:
        problems.append("stats.allow_config_upload: anyone with the stats credentials can replace the configuration")
    return problems


def warn_if_default(settings: StatsSettings) -> bool:
    """Log a warning (and return True) while the reference's default credentials are in use."""
    if uses_defaults(settings):
        log.warning("stats API uses the default credentials admin/public: set [stats] app_id and app_secret")
        return True
    return False


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Warn at start while the default credentials are in use."""
    warn_if_default(ctx.settings)
    task_status.started()


def reload(ctx: AdapterContext, new: StatsSettings) -> list[str]:
    """Credentials and metrics_auth apply to the next request (the runtime swaps ctx.settings after this)."""
    old: StatsSettings = ctx.settings
    changed = []
    if (old.app_id, old.app_secret) != (new.app_id, new.app_secret):
        changed.append("stats.credentials")
        warn_if_default(new)
    if old.metrics_auth != new.metrics_auth:
        changed.append("stats.metrics_auth")
    if old.allow_config_upload != new.allow_config_upload:
        changed.append("stats.allow_config_upload")
    return changed


ADAPTER = Adapter(
    name="stats",
    title="stats API",
    settings=StatsSettings,
    routes=routes,
    error=error,
    run=run,
    reload=reload,
    validate=validate,
    audit=audit,
)
