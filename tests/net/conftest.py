"""A bare HTTPServer (hub.net only, no adapters) on a loopback port, and raw-socket helpers."""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import trio

from hub.net.accept import accept_loop
from hub.net.http import HTTPServer, Limits, Request, Response, Route, WebSocketRoute
from hub.net.websocket import WebSocket

Serve = Callable[..., Awaitable[tuple[HTTPServer, int]]]


async def echo_params(request: Request) -> Response:
    return Response.json({"params": request.params, "path": request.path, "method": request.method,
                          "body": len(request.body)})


async def echo_ws(request: Request, ws: WebSocket) -> None:
    while (message := await ws.receive()) is not None:
        ws.send(message)


DEFAULT_ROUTES: list[Route | WebSocketRoute] = [
    Route("/items/{name}", echo_params, ["GET", "POST"]),
    Route("/files/{rest:path}", echo_params),
    WebSocketRoute("/ws", echo_ws),
]


@pytest.fixture
async def serve(nursery: trio.Nursery) -> Serve:
    """`server, port = await serve(routes=None, limits=Limits(...), **server_kwargs)`."""

    async def start(routes: Sequence[Route | WebSocketRoute] | None = None, limits: Limits | None = None,
                    **kwargs: Any) -> tuple[HTTPServer, int]:
        server = HTTPServer(routes if routes is not None else DEFAULT_ROUTES, limits=limits, **kwargs)
        server.tasks = nursery
        nursery.start_soon(server.flusher.run)
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        await nursery.start(lambda task_status: accept_loop(listener, server.handle, nursery, open_connections=lambda: server.connections,
                                                            freed=server.closed_lot, task_status=task_status))
        return server, listener.socket.getsockname()[1]

    return start


async def read_all(stream: trio.SocketStream, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes (fails the test if it does not close in time)."""
    out = bytearray()
    with trio.fail_after(timeout):
        while data := await stream.receive_some(65536):
            out += data
    return bytes(out)


async def read_response(stream: trio.SocketStream, timeout: float = 5.0, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One response (status, headers, body by Content-Length; none to a HEAD) without waiting for the close."""
    buf = bytearray()
    with trio.fail_after(timeout):
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some(65536)
            assert data, f"connection closed before a response: {bytes(buf)!r}"
            buf += data
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        size = 0 if head else int(headers.get("content-length", "0"))
        body = bytearray(rest)
        while len(body) < size:
            data = await stream.receive_some(65536)
            assert data
            body += data
    return status, headers, bytes(body)


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def upgrade_request(path: str = "/ws", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
