"""MQTT-broker-style stats (NanoMQ HTTP API v1) and Prometheus metrics, on their own port (8081)."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, parse_settings
from hub.net.http import Request, Response, Route

from . import api
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


async def api_v1(ctx: AdapterContext, request: Request) -> Response:
    """POST /api/v1: Basic auth, then the `{"req", "seq"}` request; every error in the API's shape."""
    settings: StatsSettings = ctx.settings
    if request.method != "POST":
        return error(404, "")
    try:
        api.check_auth(request.header("authorization"), settings.app_id, settings.app_secret)
        body = api.parse_request(request.body)
        return Response.json(api.answer(ctx.hub, body, partial(restart, ctx), partial(control, ctx)))
    except api.ApiError as exc:
        log.debug("POST /api/v1 from %s: %d/%d %s", request.client, exc.status, exc.code, exc.message)
        return error_response(exc)


def control(ctx: AdapterContext, action: str) -> None:
    """req 10 `action`: "stop" shuts the hub down cleanly (clients told, drained; `hub run` exits 0);
    "restart" does the same, then `hub run` starts again with the same arguments. The answer is
    already on its way: the shutdown lets requests in flight finish."""
    log.warning("%s requested over the stats API", action)
    ctx.runtime.shutdown(restart=action == "restart")


def restart(ctx: AdapterContext, config: str | None) -> dict[str, Any]:
    """Reload hub.toml (or the posted TOML text) in place; connections stay."""
    try:
        if config is None:
            return ctx.runtime.reload_from_file()
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
        try:
            api.check_auth(request.header("authorization"), settings.app_id, settings.app_secret)
        except api.ApiError as exc:
            return Response.json(exc.body(), exc.status)
    registry = ctx.state.get("registry")
    if registry is None:
        registry = ctx.state["registry"] = registry_for(ctx.hub, ctx.metrics)
    return Response(200, render(registry), "text/plain; version=0.0.4; charset=utf-8")


def routes(ctx: AdapterContext) -> list[Route]:
    """/api/v1 (any method reaches the handler, which answers non-POST with 404) and /metrics."""
    return [Route("/api/v1", partial(api_v1, ctx)), Route("/metrics", partial(metrics, ctx), methods=["GET"])]


def warn_if_default(settings: StatsSettings) -> bool:
    """Log a warning (and return True) while the reference's default credentials are in use."""
    if settings.app_id == DEFAULT_APP_ID and settings.app_secret == DEFAULT_APP_SECRET:
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
    return changed


ADAPTER = Adapter(
    name="stats",
    title="stats API",
    settings=StatsSettings,
    routes=routes,
    error=error,
    run=run,
    reload=reload,
)
