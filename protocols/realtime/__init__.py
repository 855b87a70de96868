"""Websocket clients at /connection/websocket: the original Centrifuge client protocol and the
current Centrifugo protocol of today's SDKs (JSON, or msgpack with the `centrifuge-msgpack` subprotocol)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.net.http import Request, Response, Route, WebSocketRoute
from hub.net.sockjs import SockJSServer

from .server import Keepalive, select_subprotocol, sockjs_endpoint, websocket_endpoint


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
    # Original protocol only: SockJS endpoints under this prefix (websocket, xhr, xhr_streaming, xhr_send,
    # info), as Centrifuge 0.8 serves them ("" turns SockJS off); commands per message; seconds an expired
    # connection stays open for a refresh before it is closed.
    sockjs_path: str = "/connection"
    legacy_max_commands: int = field(default=100, metadata={"min": 1})
    legacy_expired_close_delay: float = field(default=10.0, metadata={"min": 0.0})
    sockjs_heartbeat: float = field(default=25.0, metadata={"min": 1.0})
    sockjs_disconnect_delay: float = field(default=5.0, metadata={"min": 1.0})


async def _not_upgraded(request: Request) -> Response:
    return Response(400, b'Can "Upgrade" only to "WebSocket".', "text/plain; charset=UTF-8")


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    s: RealtimeSettings = ctx.settings
    handler = partial(websocket_endpoint, ctx)
    out: list[Route | WebSocketRoute] = [
        WebSocketRoute(s.path, handler, select=select_subprotocol, max_message=s.max_message_bytes,
                       slow_close=(3008, "slow")),
        Route(s.path, _not_upgraded),
    ]
    if s.sockjs_path:
        sockjs = SockJSServer(s.sockjs_path, partial(sockjs_endpoint, ctx), outbox_bytes=ctx.hub.max_queue_bytes,
                              heartbeat=s.sockjs_heartbeat, disconnect_delay=s.sockjs_disconnect_delay,
                              max_message=s.max_message_bytes)
        sockjs.nursery = ctx.state["sessions"]
        out += sockjs.routes()
    return out


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The shared keepalive of SDK connections (none when ping_interval = 0), and the SockJS XHR sessions' tasks."""
    s: RealtimeSettings = ctx.settings
    async with trio.open_nursery() as nursery:
        ctx.state["sessions"] = nursery
        if s.ping_interval > 0:
            keepalive = ctx.state["keepalive"] = Keepalive(s.ping_interval, s.pong_timeout)
            nursery.start_soon(keepalive.run)
        task_status.started()
        await trio.sleep_forever()


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
