"""Websocket glue for the client protocols: read frames, hand them to the protocol, queue replies."""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from hub.adapters import AdapterContext
from hub.net.http import Request
from hub.net.websocket import WebSocket

from .legacy import BadFrame, LegacyClient, close_args
from .sdk import JSON_WIRE, MSGPACK_SUBPROTOCOL, MSGPACK_WIRE, NO_PONG, STALE, RpcCall, SdkClient, SdkWire, speaks_sdk

log = logging.getLogger("hub.realtime")

RPC_TIMEOUT = 30.0


async def legacy_connection(ctx: AdapterContext, ws: WebSocket, first: str | bytes | None) -> None:
    """Serve one original-protocol client until it or the server closes."""
    client = LegacyClient(ctx.hub, ws.outbox)

    def on_close() -> tuple[int, str]:
        session = client.session
        if session is None or session.close_reason is None:
            return 1000, ""
        return close_args(session.close_reason, session.reconnect)

    ws.close_hook = on_close
    message = first
    try:
        while message is not None:
            try:
                replies = client.handle(message)
            except BadFrame as exc:
                ws.close(exc.code, exc.reason)
                return
            if not ws.closing:
                ws.send_frame(client.reply_frame(replies))
            message = await ws.receive()
    finally:
        client.release()


def _rpc_lookup(ctx: AdapterContext) -> Any:
    def lookup(method: str) -> Any:
        if method not in ctx.settings.rpc_methods:
            return None
        action = ctx.runtime.actions.get(method)
        return action.func if action is not None else None

    return lookup


async def _keepalive(client: SdkClient, ws: WebSocket, state: dict[str, float], interval: float, pong_timeout: float) -> None:
    """Server pings (`{}`) every `interval` s; no message within `pong_timeout` after one closes with 3012.

    A connection that has not sent a valid connect by its first ping is closed as stale (3502).
    """
    while not ws.closing:
        await trio.sleep(max(interval - pong_timeout, 1.0) if pong_timeout else interval)
        if ws.closing:
            return
        if client.session is None:
            ws.close(STALE, "stale")
            return
        sent = trio.current_time()
        ws.send_frame(client.wire.ping_frame)
        if pong_timeout:
            await trio.sleep(pong_timeout)
            if state["seen"] < sent and not ws.closing:
                ws.close(NO_PONG, "no pong")
                return


async def _expirer(client: SdkClient, changed: list[trio.Event]) -> None:
    """Unsubscribe from subscriptions whose token expired (the SDK then subscribes again with a new token)."""
    while True:
        deadline = client.next_expiry()
        wait = math.inf if deadline is None else max(deadline - client.clock(), 0.0)
        with trio.move_on_after(wait):
            await changed[0].wait()
            changed[0] = trio.Event()
            continue
        client.expire()


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


async def sdk_connection(ctx: AdapterContext, ws: WebSocket, first: str | bytes | None, wire: SdkWire) -> None:
    """Serve one client of the current Centrifugo protocol (JSON or msgpack) until it or the server closes."""
    settings = ctx.settings
    client = SdkClient(
        ctx.hub,
        ws.outbox,
        wire,
        default_project=ctx.runtime.default_project,
        ping_interval=settings.ping_interval,
        expired_close_delay=settings.expired_close_delay,
        allow_anonymous=settings.allow_anonymous,
        rpc=_rpc_lookup(ctx),
    )
    ws.close_hook = client.close_args
    changed: list[trio.Event] = []
    state = {"seen": trio.current_time()}
    try:
        async with trio.open_nursery() as nursery:

            def on_change() -> None:  # the expiry task starts with the first subscription token that expires
                if not changed:
                    changed.append(trio.Event())
                    nursery.start_soon(_expirer, client, changed)
                changed[0].set()

            client.on_change = on_change
            if settings.ping_interval > 0:
                nursery.start_soon(_keepalive, client, ws, state, settings.ping_interval, settings.pong_timeout)
            message = first
            while message is not None:
                state["seen"] = trio.current_time()
                batch = client.handle(message)
                for call in batch.calls:
                    nursery.start_soon(_rpc, client, ws, call)
                if batch.close is not None:
                    ws.close(*batch.close)
                    break
                message = await ws.receive()
            nursery.cancel_scope.cancel()
    finally:
        client.release()


def select_subprotocol(offered: list[str]) -> str | None:
    """Accept the msgpack variant when offered; anything else is plain JSON (no subprotocol)."""
    return MSGPACK_SUBPROTOCOL if MSGPACK_SUBPROTOCOL in offered else None


async def websocket_endpoint(ctx: AdapterContext, request: Request, ws: WebSocket) -> None:
    """One URL for every client protocol: the subprotocol, else the first frame, tells which one the client speaks."""
    first = await ws.receive()
    if first is None:
        return
    if ws.subprotocol == MSGPACK_SUBPROTOCOL:
        await sdk_connection(ctx, ws, first, MSGPACK_WIRE)
    elif speaks_sdk(first):
        await sdk_connection(ctx, ws, first, JSON_WIRE)
    else:
        await legacy_connection(ctx, ws, first)

