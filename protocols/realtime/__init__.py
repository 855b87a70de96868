"""Websocket clients at /connection/websocket: the original Centrifuge client protocol and the
current Centrifugo protocol of today's SDKs (JSON, or msgpack with the `centrifuge-msgpack` subprotocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.net.http import Route, WebSocketRoute

from .server import Keepalive, select_subprotocol, websocket_endpoint


@dataclass
class RealtimeSettings(ListenerSettings):
    """[realtime]: websocket clients (shares its port with the command API by default)."""

    port: int = field(default=8000, metadata={"min": 0, "max": 65535})
    path: str = "/connection/websocket"
    max_message_bytes: int = field(default=65536, metadata={"min": 256})
    # Current (SDK) protocol only:
    ping_interval: int = field(default=25, metadata={"min": 0, "max": 3600})
    pong_timeout: int = field(default=8, metadata={"min": 0, "max": 3600})
    expired_close_delay: float = field(default=25.0, metadata={"min": 0.0})
    allow_anonymous: bool = False
    rpc_methods: list[str] = field(default_factory=list)


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    s: RealtimeSettings = ctx.settings
    handler = partial(websocket_endpoint, ctx)
    return [WebSocketRoute(s.path, handler, select=select_subprotocol, max_message=s.max_message_bytes,
                           slow_close=(3008, "slow"))]


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The shared keepalive of SDK connections (none when ping_interval = 0)."""
    s: RealtimeSettings = ctx.settings
    if s.ping_interval > 0:
        keepalive = ctx.state["keepalive"] = Keepalive(s.ping_interval, s.pong_timeout)
        task_status.started()
        await keepalive.run()
    else:
        task_status.started()


def validate(settings: RealtimeSettings, config: Settings) -> None:
    if settings.ping_interval and settings.pong_timeout >= settings.ping_interval:
        raise ConfigError(config.source, "realtime.pong_timeout", "must be less than realtime.ping_interval")


ADAPTER = Adapter(
    name="realtime",
    title="websocket clients",
    settings=RealtimeSettings,
    routes=routes,
    validate=validate,
    run=run,
    group="api",
)
