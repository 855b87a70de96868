"""Websocket clients at /connection/websocket: the original Centrifuge client protocol and the
current Centrifugo protocol of today's SDKs (JSON, msgpack with `centrifuge-msgpack`, Protobuf with `centrifuge-protobuf`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.net.http import Request, Response, Route, WebSocketRoute
from hub.net.origin import origin_allowed as _origin_allowed
from hub.net.sockjs import SockJSServer

from .emulation import routes as emulation_routes
from .proxy import ProxyConfigError, ProxySource, parse_config
from .server import Keepalive, KeySource, select_subprotocol, sockjs_endpoint, websocket_endpoint
from .sharedpoll import PollConfigError, SharedPoll
from .sharedpoll import parse_config as parse_poll_config
from .stale import stale_watch


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
    # A websocket that has not connected within this many seconds is closed (3502 stale); 0 = never.
    stale_close_delay: float = field(default=10.0, metadata={"min": 0.0})
    # Asymmetric JWT keys (Centrifugo's client.token.*): PEM texts, and a JWKS URL or file.
    token_rsa_public_key: str = ""
    token_ecdsa_public_key: str = ""
    token_jwks_public_endpoint: str = ""
    # Token claims checked as Centrifugo's client.token.audience / issuer; user_id_claim replaces `sub`.
    token_audience: str = ""
    token_issuer: str = ""
    token_user_id_claim: str = ""
    # Channels one SDK connection may subscribe to (106 beyond; 3505 at connect); 0 = no limit.
    channel_limit: int = field(default=128, metadata={"min": 0})
    # Connections one user may hold on this node (3504 beyond); 0 = no limit.
    user_connection_limit: int = field(default=0, metadata={"min": 0})
    # Centrifugo's client.subscribe_to_user_personal_channel: each user's connections join `<namespace>:#<user>`.
    personal_channel: bool = False
    personal_channel_namespace: str = ""
    personal_channel_single_connection: bool = False
    # Centrifugo's client.insecure: connect without a token, subscribe/publish/presence/history anywhere (tests, demos).
    insecure: bool = False
    # Bidirectional emulation (centrifuge-js's http_stream and sse transports; commands arrive at emulation_path).
    http_stream: bool = False
    http_stream_path: str = "/connection/http_stream"
    sse: bool = False
    sse_path: str = "/connection/sse"
    emulation_path: str = "/emulation"
    # allowed_origins (every listener has it): empty = pages of the same host only; with check_origin
    # (as Centrifugo v6 with an empty allowed_origins) no browser Origin at all.
    check_origin: bool = False
    # Commands one connection may send a second, after a burst (both protocols; 0 = no limit): more are
    # answered 111 "too many requests" (the original protocol: that error text); a client that goes on
    # sending past `command_abuse` refused commands is disconnected (3013 "too many requests").
    command_rate_limit: float = field(default=1000.0, metadata={"min": 0})
    command_burst: float = field(default=10000.0, metadata={"min": 0})
    command_abuse: float = field(default=10000.0, metadata={"min": 0})
    # Original protocol only: SockJS endpoints under this prefix (websocket, xhr, xhr_streaming, xhr_send,
    # info), as Centrifuge 0.8 serves them ("" turns SockJS off); commands per message; seconds an expired
    # connection stays open for a refresh before it is closed.
    sockjs_path: str = "/connection"
    legacy_max_commands: int = field(default=100, metadata={"min": 1})
    legacy_expired_close_delay: float = field(default=10.0, metadata={"min": 0.0})
    sockjs_heartbeat: float = field(default=25.0, metadata={"min": 1.0})
    sockjs_disconnect_delay: float = field(default=5.0, metadata={"min": 1.0})
    # Centrifugo's backend proxy (connect, refresh, subscribe, publish, sub_refresh, rpc over HTTP): see proxy.py and
    # the README; config.json's client.proxy / channel.proxy / rpc / proxies translate to this table.
    proxy: dict[str, Any] = field(default_factory=dict)
    # Centrifugo 6.8's shared poll (sharedpoll.py): namespace → {proxy (a name in proxy.named), versioned, interval,
    # batch, max_keys}; the track signatures' HMAC key (config.json's shared_poll.hmac_secret_key).
    shared_poll: dict[str, Any] = field(default_factory=dict)
    shared_poll_secret: str = field(default="", metadata={"secret": True})


async def _not_upgraded(request: Request) -> Response:
    return Response(400, b'Can "Upgrade" only to "WebSocket".', "text/plain; charset=UTF-8")


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    s: RealtimeSettings = ctx.settings
    ctx.state.setdefault("keys", KeySource(ctx))
    ctx.state.setdefault("proxy", ProxySource())
    ctx.state.setdefault("stale", stale_watch())
    handler = partial(websocket_endpoint, ctx)
    out: list[Route | WebSocketRoute] = [
        WebSocketRoute(s.path, handler, select=select_subprotocol, max_message=s.max_message_bytes,
                       slow_close=(3008, "slow"), accept=partial(origin_allowed, ctx)),
        Route(s.path, _not_upgraded),
        *emulation_routes(ctx),  # before SockJS's routes under the same /connection prefix
    ]
    if s.sockjs_path:
        sockjs = SockJSServer(s.sockjs_path, partial(sockjs_endpoint, ctx), outbox_bytes=ctx.hub.max_queue_bytes,
                              heartbeat=s.sockjs_heartbeat, disconnect_delay=s.sockjs_disconnect_delay,
                              max_message=s.max_message_bytes, write_timeout=ctx.config.hub.write_timeout,
                              metrics=ctx.metrics, adapter=ctx.name)
        sockjs.nursery = ctx.state["sessions"]
        for route in sockjs.routes():
            if isinstance(route, WebSocketRoute):
                route.accept = partial(origin_allowed, ctx)
            out.append(route)
    return out


def origin_allowed(ctx: AdapterContext, request: Any) -> bool:
    """Centrifugo's `client.allowed_origins`: a request with an Origin header must match one pattern
    (no patterns: the same host, or with check_origin none)."""
    return _origin_allowed(request.header("origin"), request.header("host"), ctx.settings.allowed_origins,
                           strict=ctx.settings.check_origin, tls=request.tls)


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The shared keepalive of SDK connections (none when ping_interval = 0), and the SockJS XHR sessions' tasks."""
    s: RealtimeSettings = ctx.settings
    async with trio.open_nursery() as nursery:
        ctx.state["sessions"] = nursery
        nursery.start_soon(ctx.state.setdefault("stale", stale_watch()).run)
        if s.shared_poll:  # the node's poller of shared poll backends, before any connection
            source = ctx.state.setdefault("proxy", ProxySource())
            poll = ctx.state["shared_poll"] = SharedPoll(parse_poll_config(s.shared_poll, s.proxy), s.shared_poll_secret,
                                                         source.caller)
            nursery.start_soon(poll.run)
        if s.ping_interval > 0:
            keepalive = ctx.state["keepalive"] = Keepalive(s.ping_interval, s.pong_timeout)
            nursery.start_soon(keepalive.run)
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            source = ctx.state.get("proxy")
            if source is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await source.caller.aclose()


def validate(settings: RealtimeSettings, config: Settings) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    for key, kind in (("token_rsa_public_key", rsa.RSAPublicKey), ("token_ecdsa_public_key", ec.EllipticCurvePublicKey)):
        pem = getattr(settings, key)
        if pem:
            try:
                ok = isinstance(load_pem_public_key(pem.encode()), kind)
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(config.source, f"realtime.{key}", "not a PEM public key of that kind")
    try:
        parse_config(settings.proxy)
    except ProxyConfigError as exc:
        raise ConfigError(config.source, f"realtime.proxy.{exc.key}", exc.problem) from None
    try:
        parse_poll_config(settings.shared_poll, settings.proxy)
    except PollConfigError as exc:
        raise ConfigError(config.source, f"realtime.{exc.key}", exc.problem) from None
    if settings.shared_poll and not settings.shared_poll_secret:
        raise ConfigError(config.source, "realtime.shared_poll_secret", "required with shared poll namespaces")
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
