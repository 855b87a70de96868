"""A bare websocket client on a Trio socket: cheap enough to open a thousand of in one test."""

from __future__ import annotations

import base64
import json
import os
import struct
from typing import Any

import trio

from bench.wsclient import parse_frame  # noqa: F401  (the tests' server-frame parser, shared with the bench)


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame (masked, as a client must send it)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    if n:
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return head + mask + payload


def client_frame(text: str, opcode: int = 1) -> bytes:
    return mask_frame(opcode, text.encode())


class RawWebSocket:
    """Text frames in and out; `messages()` yields complete server frames as (opcode, payload)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    @classmethod
    async def connect(cls, url: str, subprotocol: str | None = None) -> RawWebSocket:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host, port = hostport.rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
        await stream.send_all((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                               f"{extra}\r\n").encode())
        ws = cls(stream)
        while b"\r\n\r\n" not in ws.buf:
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError("closed during handshake")
            ws.buf += data
        head, _, rest_bytes = bytes(ws.buf).partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        ws.buf = bytearray(rest_bytes)
        return ws

    async def send_json(self, obj: Any) -> None:
        await self.stream.send_all(client_frame(json.dumps(obj)))

    def _frame(self) -> tuple[int, bytes] | None:
        parsed = parse_frame(self.buf)
        if parsed is None:
            return None
        opcode, payload, used = parsed
        del self.buf[:used]
        return opcode, payload

    async def recv(self) -> tuple[int, bytes]:
        """The next frame; (8, payload) is a close frame; raises EOFError if the socket closes first."""
        while True:
            frame = self._frame()
            if frame is not None:
                return frame
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buf += data

    async def recv_json(self) -> Any:
        opcode, payload = await self.recv()
        if opcode == 8:
            raise EOFError(payload)
        return json.loads(payload)

    async def recv_reply(self) -> list[Any]:
        """The next reply array of the original protocol, skipping pushes."""
        while True:
            frame = await self.recv_json()
            if isinstance(frame, list):
                return frame

    async def aclose(self) -> None:
        await self.stream.aclose()
