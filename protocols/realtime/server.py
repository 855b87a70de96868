"""Websocket glue for the client protocols: read frames, hand them to the protocol, queue replies."""

from __future__ import annotations

from hub.adapters import AdapterContext
from hub.net.http import Request
from hub.net.websocket import WebSocket

from .legacy import BadFrame, LegacyClient, close_args


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


async def websocket_endpoint(ctx: AdapterContext, request: Request, ws: WebSocket) -> None:
    """One URL for every client protocol: the first frame tells which one the client speaks."""
    first = await ws.receive()
    if first is None:
        return
    await legacy_connection(ctx, ws, first)
