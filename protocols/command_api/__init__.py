"""The command APIs under /api: the original signed API and today's API-key API (port 8000, with the websocket clients)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from hub.adapters import Adapter, AdapterContext
from hub.config import ListenerSettings
from hub.net.http import Route

from .server import error_response, handle


@dataclass
class CommandApiSettings(ListenerSettings):
    """[command_api]: backends publish and manage clients over HTTP."""

    port: int = field(default=8000, metadata={"min": 0, "max": 65535})
    max_commands: int = field(default=100, metadata={"min": 1})


def routes(ctx: AdapterContext) -> list[Route]:
    handler = partial(handle, ctx)
    return [Route("/api", handler), Route("/api/", handler), Route("/api/{name:path}", handler)]


ADAPTER = Adapter(
    name="command_api",
    title="command API",
    settings=CommandApiSettings,
    routes=routes,
    error=error_response,
    group="api",
)
