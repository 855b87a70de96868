"""A cheap asyncio websocket client for load tests: raw frames, no per-message JSON unless asked."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Callable
from typing import Any


def masked_frame(payload: bytes, opcode: int = 1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    body = (int.from_bytes(payload, "little") ^ key).to_bytes(n, "little") if n else b""
    return head + mask + body


def parse_frame(buf: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """The first whole server frame in `buf` as (opcode, payload, bytes it took), or None if it is not all there."""
    if len(buf) < 2:
        return None
    n, pos = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from("!H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
    if len(buf) < pos + n:
        return None
    return buf[0] & 0x0F, bytes(buf[pos:pos + n]), pos + n


class WSClient(asyncio.Protocol):
    """Handshake, then hands every complete server frame's payload to `on_message`."""

    def __init__(self, host: str, path: str, on_message: Callable[[bytes], None], subprotocol: str | None = None) -> None:
        self.host, self.path, self.subprotocol = host, path, subprotocol
        self.on_message = on_message
        self.buf = bytearray()
        self.handshaken = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n" if self.subprotocol else ""
        transport.write((f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.handshaken.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in bytes(buf[:end]).split(b"\r\n", 1)[0]:
                self.handshaken.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                return
            del buf[:end + 4]
            self.handshaken.set_result(None)
        pos, size = 0, len(buf)
        on_message = self.on_message
        while size - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            if size - start < n:
                break
            opcode = b0 & 0x0F
            payload = bytes(buf[start:start + n])
            pos = start + n
            if opcode == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if n >= 2 else 1005
                if self.transport is not None:
                    self.transport.close()
            elif opcode in (1, 2):
                on_message(payload)
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(self.close_code)
        if not self.handshaken.done():
            self.handshaken.set_exception(ConnectionError("closed"))

    def send_bytes(self, payload: bytes, opcode: int = 1) -> None:
        assert self.transport is not None
        self.transport.write(masked_frame(payload, opcode))

    def send_json(self, obj: Any) -> None:
        self.send_bytes(json.dumps(obj).encode())


async def open_client(url: str, on_message: Callable[[bytes], None], subprotocol: str | None = None) -> WSClient:
    rest = url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, port = hostport.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(lambda: WSClient(hostport, "/" + path, on_message, subprotocol), host, int(port))
    await proto.handshaken
    return proto
