"""A small original-protocol client on trio-websocket, for tests across adapters."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from .conftest import connect_params, sign


class LegacyClient:
    """Sends commands, separates reply arrays from push objects."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []
        self.client_id: str | None = None

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One command; returns its reply entry (pushes that arrive first are kept in `pushes`)."""
        (reply,) = await self.batch([{"method": method, "params": params or {}}])
        return reply

    async def batch(self, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        await self.ws.send_message(json.dumps(commands))
        while True:
            frame = json.loads(await self.ws.get_message())
            if isinstance(frame, list):
                return frame
            self.pushes.append(frame)

    async def connect(self, user: str = "alice", info: str = "", secret: str | None = None, **kw: Any) -> dict[str, Any]:
        params = connect_params(user, info, **kw)
        if secret is not None:
            params["token"] = sign(params["project"], user, params["timestamp"], info, secret=secret)
        reply = await self.call("connect", params)
        self.client_id = (reply.get("body") or {}).get("client")
        return reply

    async def subscribe(self, channel: str) -> dict[str, Any]:
        reply = await self.call("subscribe", {"channel": channel})
        assert reply["error"] is None, reply
        return reply

    async def next_push(self, method: str | None = None, timeout: float = 5) -> dict[str, Any]:
        """The next push (of `method`, skipping others), from those kept or from the socket."""
        with trio.fail_after(timeout):
            while True:
                while self.pushes:
                    push = self.pushes.pop(0)
                    if method is None or push.get("method") == method:
                        return push
                frame = json.loads(await self.ws.get_message())
                if isinstance(frame, list):
                    raise AssertionError(f"unexpected reply {frame}")
                self.pushes.append(frame)

    async def closed(self, timeout: float = 5) -> Any:
        """Read until the server closes; return the close reason object."""
        with trio.fail_after(timeout):
            try:
                while True:
                    frame = json.loads(await self.ws.get_message())
                    if not isinstance(frame, list):
                        self.pushes.append(frame)
            except ConnectionClosed as exc:
                return exc.reason


@asynccontextmanager
async def legacy_client(base_url: str, path: str = "/connection/websocket"):
    """`async with legacy_client(running.url("realtime")) as c:` (an http:// base URL is fine)."""
    url = base_url.replace("http://", "ws://") + path
    async with open_websocket_url(url) as ws:
        yield LegacyClient(ws)
