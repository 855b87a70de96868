"""Websocket clients: the original Centrifuge client protocol at /connection/websocket."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from hub.adapters import Adapter, AdapterContext
from hub.config import ListenerSettings
from hub.net.http import Route, WebSocketRoute

from .server import websocket_endpoint


@dataclass
class RealtimeSettings(ListenerSettings):
    """[realtime]: websocket clients (shares its port with the command API by default)."""

    port: int = field(default=8000, metadata={"min": 0, "max": 65535})
    path: str = "/connection/websocket"
    max_message_bytes: int = field(default=65536, metadata={"min": 256})


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    s: RealtimeSettings = ctx.settings
    handler = partial(websocket_endpoint, ctx)
    return [WebSocketRoute(s.path, handler, max_message=s.max_message_bytes)]


ADAPTER = Adapter(
    name="realtime",
    title="websocket clients",
    settings=RealtimeSettings,
    routes=routes,
    group="api",
)
