"""Websocket glue for the client protocols: read frames, hand them to the protocol, queue replies."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import urllib.request
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import trio

from hub.adapters import AdapterContext
from hub.net.deadlines import Deadlines
from hub.net.framing import WS_TEXT, Framing
from hub.net.http import Request
from hub.net.limits import command_limiter
from hub.net.websocket import WebSocket
from protocols.centrifuge import close_for

from .legacy import CODEC, LegacyClient, legacy_wire
from .proxy import ConnectionProxy, ProxySource
from .sdk import (
    JSON_WIRE,
    MSGPACK_SUBPROTOCOL,
    MSGPACK_WIRE,
    NO_PONG,
    PROTOBUF_SUBPROTOCOL,
    PROTOBUF_WIRE,
    RpcCall,
    SdkClient,
    SdkWire,
    speaks_sdk,
)
from .tokens import PublicKeys

log = logging.getLogger("hub.realtime")

RPC_TIMEOUT = 30.0


async def legacy_connection(ctx: AdapterContext, conn: Any, first: str | bytes | None, framing: Framing, family: str) -> None:
    """Serve one original-protocol client until it or the server closes.

    `conn` is a hub WebSocket or a SockJS session (same surface); `framing` frames payloads for it and
    `family` ("websocket" or "sockjs") picks the close codes from the protocol's one table."""
    wire = legacy_wire(framing)
    settings = ctx.settings
    client = _LegacyConnection(conn, family, ctx.hub, conn.outbox, wire,
                               expired_close_delay=settings.legacy_expired_close_delay,
                               max_commands=settings.legacy_max_commands,
                               limiter=command_limiter(settings.command_rate_limit, settings.command_burst,
                                                       settings.command_abuse),
                               on_limit=_on_limit(ctx))
    conn.close_hook = client  # callable: its close_args (an object kept rather than a bound method made for it)
    try:
        message = first if first is not None else await conn.receive()
        first = None
        while message is not None:
            batch = await client.handle(message)
            message = None  # an idle connection keeps neither its last message nor its last reply
            if batch.reply is not None and not conn.closing:
                conn.send_frame(wire.frame(batch.reply))
            if client.next_expiry_check() is not None:
                client.expiry_changed()
            if batch.close is not None:
                await trio.sleep(batch.close_delay)
                client.close(batch.close)
                return
            batch = None
            message = await conn.receive()
    finally:
        if client.expiry_scope is not None:
            client.expiry_scope.cancel()
        client.release()


def _on_limit(ctx: AdapterContext) -> Callable[[str], None]:
    """The adapter's "refused by a limit" counter, made once rather than per connection."""
    counter = ctx.state.get("on_limit")
    if counter is None:
        counter = ctx.state["on_limit"] = partial(ctx.metrics.refused, ctx.name)
    return counter


class _LegacyConnection(LegacyClient):
    """The protocol state of one connection with what `legacy_connection` keeps for it (one object, not two): slots
    and methods rather than closures, and the expiry task with its scope only once the connection has a lifetime."""

    __slots__ = ("conn", "family", "expiry_scope", "changed")

    def __init__(self, conn: Any, family: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn, self.family = conn, family
        self.expiry_scope: trio.CancelScope | None = None
        self.changed: list[trio.Event] | None = None

    def close_args(self) -> tuple[int, str]:
        session = self.session
        reason = session.close_reason if session is not None else None
        return getattr(CODEC.close(reason, session.reconnect if session is not None else True), self.family)

    __call__ = close_args

    def close(self, cause: str) -> None:
        self.conn.close(*getattr(close_for(cause), self.family))
        self.release()

    def expire(self) -> bool:
        if not self.expire_due():
            return False
        self.close("connection expired")
        return True

    def expiry_changed(self) -> None:
        """The next expiry check moved: start the expiry task the first time, else wake it."""
        if self.changed is None:
            self.expiry_scope, self.changed = trio.CancelScope(), [trio.Event()]
            self.conn.spawn(self._expirer)
        self.changed[0].set()

    async def _expirer(self) -> None:
        assert self.expiry_scope is not None and self.changed is not None
        with self.expiry_scope:
            await deadline_loop(self.next_expiry_check, self.clock, self.changed, self.expire)


def _rpc_lookup(ctx: AdapterContext) -> Any:
    """RPC methods are the registry's actions listed in `rpc_methods`; a call goes through the registry
    (argument types checked, core refusals mapped) like every other adapter's."""

    def lookup(method: str) -> Any:
        if method not in ctx.settings.rpc_methods:
            return None
        action = ctx.runtime.actions.get(method)
        if action is None:
            return None

        def run(**args: Any) -> Any:
            return ctx.runtime.actions.run(method, args)

        run.__signature__ = action.signature  # type: ignore[attr-defined]
        return run

    return lookup


JWKS_TTL = 3600.0
JWKS_RETRY = 10.0


class KeySource:
    """The token keys of [realtime] (read from the current settings, so a reload applies): PEM keys,
    audience/issuer rules, and a JWKS fetched from a URL or read from a file on first use, cached for an
    hour, fetched again when a token names a key it lacks (at most every 10 s)."""

    def __init__(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        self.settings: Any = None
        self.keys = PublicKeys()
        self.fetched_at = -math.inf
        self.lock = trio.Lock()

    def _load(self, endpoint: str) -> dict[str, Any]:
        if endpoint.startswith(("http://", "https://")):
            with urllib.request.urlopen(endpoint, timeout=10) as response:  # noqa: S310 (configured URL)
                return json.loads(response.read())
        return json.loads(Path(endpoint.removeprefix("file://")).read_text(encoding="utf-8"))

    async def __call__(self, refresh: bool = False) -> PublicKeys:
        s = self.ctx.settings
        if s is not self.settings:
            self.settings = s
            self.fetched_at = -math.inf
            self.keys = PublicKeys(rsa_pem=s.token_rsa_public_key, ecdsa_pem=s.token_ecdsa_public_key,
                                   audience=s.token_audience, issuer=s.token_issuer, user_id_claim=s.token_user_id_claim)
        endpoint = s.token_jwks_public_endpoint
        if not endpoint:
            return self.keys
        async with self.lock:
            now = trio.current_time()
            ttl = JWKS_TTL if self.keys.jwks is not None and not refresh else JWKS_RETRY
            if now - self.fetched_at >= ttl:
                self.fetched_at = now
                try:
                    jwks = await trio.to_thread.run_sync(self._load, endpoint)
                    if not isinstance(jwks, dict):
                        raise ValueError("not a JWKS object")
                    self.keys = dataclasses.replace(self.keys, jwks=jwks, _cache={})
                except Exception as exc:
                    log.warning("cannot load JWKS from %s: %s", endpoint, exc)
        return self.keys


class Keepalive:
    """One task pings every connected SDK client (`{}`) each `interval` s and closes those that stay silent.

    A client that sends nothing within `pong_timeout` after a ping is closed with 3012. Shared by
    all connections so an idle connection costs no task of its own.
    """

    def __init__(self, interval: float, pong_timeout: float) -> None:
        self.interval, self.pong_timeout = interval, pong_timeout
        self.clients: dict[WebSocket, tuple[SdkClient, dict[str, float]]] = {}

    def add(self, ws: WebSocket, client: SdkClient, state: dict[str, float]) -> None:
        self.clients[ws] = (client, state)

    def remove(self, ws: WebSocket) -> None:
        self.clients.pop(ws, None)

    async def run(self) -> None:
        first_wait = max(self.interval - self.pong_timeout, 1.0) if self.pong_timeout else self.interval
        while True:
            await trio.sleep(first_wait)
            sent = trio.current_time()
            pinged = []
            for ws, (client, state) in list(self.clients.items()):
                if ws.closing or client.session is None:
                    continue
                ws.send_frame(client.wire.ping_frame)
                pinged.append((ws, state))
            if self.pong_timeout:
                await trio.sleep(self.pong_timeout)
                for ws, state in pinged:
                    if state["seen"] < sent and not ws.closing:
                        ws.close(NO_PONG, "no pong")


async def deadline_loop(next_deadline: Callable[[], float | None], clock: Callable[[], float], changed: list[trio.Event],
                        due: Callable[[], Any]) -> None:
    """Call `due()` whenever `clock()` reaches `next_deadline()` (read again each time `changed[0]` is set);
    stop once it returns true."""
    while True:
        deadline = next_deadline()
        wait = math.inf if deadline is None else max(deadline - clock(), 0.0)
        with trio.move_on_after(wait):
            await changed[0].wait()
            changed[0] = trio.Event()
            continue
        if due():
            return


async def _expirer(client: SdkClient, changed: list[trio.Event]) -> None:
    """Unsubscribe from subscriptions whose token expired (the SDK then subscribes again with a new token)."""
    await deadline_loop(client.next_expiry, client.clock, changed, client.expire)


async def _rpc(client: SdkClient, ws: WebSocket, call: RpcCall) -> None:
    value, error = None, None
    try:
        with trio.fail_after(RPC_TIMEOUT):
            value = await call.awaitable
    except Exception as exc:
        error = exc
        if not isinstance(exc, trio.TooSlowError):
            log.exception("rpc failed")
    client.rpc_done(call, value, error)


async def sdk_connection(ctx: AdapterContext, ws: Any, first: str | bytes | None, wire: SdkWire,
                         opened: float | None = None, request: Request | None = None, transport: str = "websocket",
                         emulation: str = "") -> None:
    """Serve one client of the current Centrifugo protocol (JSON or msgpack) until it or the server closes.

    `request` (the HTTP request that opened the connection) gives the backend proxy the headers it forwards;
    `emulation` is the session id of an HTTP-streaming or SSE connection."""
    settings = ctx.settings
    pinger: Keepalive | None = ctx.state.get("keepalive")  # what really pings: a reload does not restart it
    client = SdkClient(
        ctx.hub,
        ws.outbox,
        wire,
        default_project=ctx.runtime.default_project,
        ping_interval=int(pinger.interval) if pinger is not None else 0,
        expired_close_delay=settings.expired_close_delay,
        allow_anonymous=settings.allow_anonymous,
        rpc=_rpc_lookup(ctx) if settings.rpc_methods else None,  # none: 108, as Centrifugo without an RPC handler
        keys=ctx.state.get("keys"),
        personal_namespace=settings.personal_channel_namespace if settings.personal_channel else None,
        channel_limit=settings.channel_limit,
        user_connection_limit=settings.user_connection_limit,
        limiter=command_limiter(settings.command_rate_limit, settings.command_burst, settings.command_abuse),
        on_limit=_on_limit(ctx),
        proxy=bind_proxy(ctx, request, transport, wire),
        insecure=settings.insecure,
        personal_single_connection=settings.personal_channel_single_connection,
        emulation=emulation,
    )
    ws.close_hook = client.close_args
    client.shared_poll = ctx.state.get("shared_poll")
    changed: list[trio.Event] = []
    now = trio.current_time()
    opened = now if opened is None else opened
    state = {"seen": now, "opened": opened}
    scopes: list[trio.CancelScope] = []

    def spawn(fn: Any, *args: Any) -> None:
        """Run a helper task for this connection in the server's nursery; cancelled when the connection ends."""
        scope = trio.CancelScope()
        scopes.append(scope)

        async def task() -> None:
            with scope:
                await fn(*args)

        ws.spawn(task)

    def on_change() -> None:  # the expiry task starts with the first subscription token that expires
        if not changed:
            changed.append(trio.Event())
            spawn(_expirer, client, changed)
        changed[0].set()

    client.on_change = on_change
    # Until it has connected (the websocket endpoint's entry, made when the connection opened, or one made here).
    stale: Deadlines = ctx.state["stale"]
    if settings.stale_close_delay > 0 and ws not in stale:
        stale.add(ws, settings.stale_close_delay, opened)
    waiting = ws in stale
    if client.proxy is not None and client.proxy.config.timed:
        spawn(client.proxy.run, client)  # server-side refresh through the refresh / sub_refresh proxies
    keepalive: Keepalive | None = ctx.state.get("keepalive")
    if keepalive is not None:
        keepalive.add(ws, client, state)
    try:
        message = first
        while message is not None:
            state["seen"] = trio.current_time()
            batch = await client.handle(message)
            if waiting and client.session is not None:
                stale.discard(ws)
                waiting = False
            for call in batch.calls:
                spawn(_rpc, client, ws, call)
            if batch.close is not None:
                ws.close(*batch.close)
                break
            message = await ws.receive()
    finally:
        stale.discard(ws)
        if keepalive is not None:
            keepalive.remove(ws)
        for scope in scopes:
            scope.cancel()
        client.release()


def bind_proxy(ctx: AdapterContext, request: Request | None, transport: str, wire: SdkWire) -> ConnectionProxy | None:
    """The backend proxy of one connection ([realtime.proxy]), with the request headers it may forward; None if unused."""
    source: ProxySource | None = ctx.state.get("proxy")
    if source is None or not ctx.settings.proxy:
        return None
    headers = {"-".join(p.capitalize() for p in k.split("-")): v for k, v in request.headers.items()} if request is not None else {}
    return source.bind(ctx.settings.proxy, transport=transport, protocol="protobuf" if wire.binary else "json", headers=headers)


JSON_SUBPROTOCOL = "centrifuge-json"


def select_subprotocol(offered: list[str]) -> str | None:
    """Accept the Protobuf, msgpack or (explicit) JSON variant when offered; otherwise no subprotocol."""
    for name in (PROTOBUF_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL):
        if name in offered:
            return name
    return None


async def websocket_endpoint(ctx: AdapterContext, request: Request, ws: WebSocket) -> Coroutine[Any, Any, None] | None:
    """One URL for every client protocol: the subprotocol, else the first frame, tells which one the client speaks.

    A connection that sends nothing within `stale_close_delay` is closed with 3502 (stale), as Centrifugo does.
    """
    opened = trio.current_time()
    delay = ctx.settings.stale_close_delay
    stale: Deadlines = ctx.state["stale"]
    if delay > 0:
        stale.add(ws, delay, opened)
    try:
        first = await ws.receive()
    except BaseException:  # cancelled (the connection was aborted, or the server stops): no deadline kept for it
        stale.discard(ws)
        raise
    if first is None:
        stale.discard(ws)
        return
    # Centrifugo also takes `?format=protobuf` / `?cf_protocol=protobuf` (SDKs that cannot set a subprotocol).
    query_protobuf = "protobuf" in (request.query.get("format", []) + request.query.get("cf_protocol", []))
    if ws.subprotocol == PROTOBUF_SUBPROTOCOL or (query_protobuf and ws.subprotocol is None):
        return sdk_connection(ctx, ws, first, PROTOBUF_WIRE, opened, request)  # a tail call (see HTTPServer.handle)
    elif ws.subprotocol == MSGPACK_SUBPROTOCOL:
        return sdk_connection(ctx, ws, first, MSGPACK_WIRE, opened, request)  # a tail call (see HTTPServer.handle)
    elif ws.subprotocol == JSON_SUBPROTOCOL or speaks_sdk(first):
        return sdk_connection(ctx, ws, first, JSON_WIRE, opened, request)  # a tail call (see HTTPServer.handle)
    else:
        # The connection keeps neither the request nor its first message (legacy_connection lets it go once read).
        stale.discard(ws)
        return legacy_connection(ctx, ws, first, WS_TEXT, "websocket")  # a tail call (see HTTPServer.handle)


async def sockjs_endpoint(ctx: AdapterContext, request: Request, conn: Any) -> None:
    """A SockJS session (websocket or XHR) speaks the original protocol."""
    await legacy_connection(ctx, conn, None, conn.framing, "sockjs")

