"""The command APIs under /api: the original signed API and today's API-key API (port 8000, with the websocket clients)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings
from hub.net.http import Route

from .redis_api import run as run_redis_api
from .server import error_response, handle


@dataclass
class CommandApiSettings(ListenerSettings):
    """[command_api]: backends publish and manage clients over HTTP."""

    port: int = field(default=8000, metadata={"min": 0, "max": 65535})
    max_commands: int = field(default=100, metadata={"min": 1})
    # The Redis API (see redis_api.py): every node consumes this list in the engine's Redis.
    redis_api: bool = False
    redis_api_key: str = "centrifuge.api"
    redis_api_url: str = ""  # default: [engine] url
    redis_api_shards: int = field(default=0, metadata={"min": 0, "max": 1024})
    redis_api_dead_max: int = field(default=1000, metadata={"min": 1})
    redis_api_project: str = ""  # for the bare {method, params} form; default: the first project
    # Centrifugo's http_api.error_mode: "transport" answers a method's error with its HTTP status and
    # {"code", "message"} (per request: header X-Centrifugo-Error-Mode: transport); "" keeps 200 + {"error"}.
    error_mode: str = ""


def validate(settings: CommandApiSettings, config: Any) -> None:
    if settings.error_mode not in ("", "transport"):
        raise ConfigError(config.source, "command_api.error_mode", f'expected "transport" or "", got {settings.error_mode!r}')
    if not settings.redis_api:
        return
    if not settings.redis_api_url and config.engine.type != "redis":
        raise ConfigError(config.source, "command_api.redis_api_url",
                          "the Redis API needs a Redis: set [engine] type = \"redis\" or redis_api_url")
    from hub.engine.resp import parse_url

    try:
        parse_url(settings.redis_api_url or config.engine.url)
    except ValueError as exc:
        raise ConfigError(config.source, "command_api.redis_api_url", str(exc)) from None
    if settings.redis_api_project and settings.redis_api_project not in {p.key for p in config.projects}:
        raise ConfigError(config.source, "command_api.redis_api_project", "no such project")


def routes(ctx: AdapterContext) -> list[Route]:
    handler = partial(handle, ctx)
    return [Route("/api", handler), Route("/api/", handler), Route("/api/{name:path}", handler)]


ADAPTER = Adapter(
    name="command_api",
    title="command API",
    settings=CommandApiSettings,
    routes=routes,
    error=error_response,
    run=run_redis_api,
    validate=validate,
    group="api",
)
