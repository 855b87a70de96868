"""A long HTTP response as a bidirectional connection (HTTP-streaming, Server-Sent Events).

The server writes to the client in one streaming response; what the client sends arrives in separate
requests that the application hands to `deliver()`. To the application the connection has the surface of
a hub WebSocket: `outbox`, `receive()`, `send_frame()`, `close(code, reason)`, `close_hook`, `closing`,
`spawn()`; `body()` is the response's chunks (each a batch of what was queued, written at once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from hub.core.outbox import Outbox

Spawn = Callable[[Callable[[], Awaitable[None]]], None]
MESSAGE_OVERHEAD = 64  # what one queued client message costs beyond its bytes


class StreamConnection:
    """One client on a streaming response. `closing_frame(code, reason)` is the notice queued when the
    application closes it (a response has no close frame: the client learns why from that notice)."""

    def __init__(self, outbox_bytes: int, spawn: Spawn,
                 closing_frame: Callable[[int, str], bytes | None] | None = None) -> None:
        self.outbox = Outbox(outbox_bytes, on_overflow=self._on_overflow)
        self.close_hook: Callable[[], tuple[int, str]] | None = None
        self.close_args: tuple[int, str] | None = None
        self.ended = False  # the client went away: receive() gives None
        self._incoming: deque[str | bytes] = deque()
        self._incoming_bytes = 0
        self.inbox_limit = outbox_bytes  # what the client sent and the application has not taken
        self._sender_waiting = False
        self._arrived = trio.Event()
        self._taken = trio.Event()
        self._spawn = spawn
        self._closing_frame = closing_frame

    @property
    def closing(self) -> bool:
        return self.outbox.closed

    async def receive(self) -> str | bytes | None:
        while not self._incoming:
            if self.ended or self.outbox.closed:
                return None
            await self._arrived.wait()
            self._arrived = trio.Event()
        data = self._incoming.popleft()
        self._incoming_bytes -= len(data) + MESSAGE_OVERHEAD
        self._taken.set()
        self._taken = trio.Event()
        return data

    def send_frame(self, frame: bytes) -> bool:
        return self.outbox.send(frame)

    def close(self, code: int = 3000, reason: str = "") -> None:
        """Queue the closing notice (unless the core already queued its own) and end the response once drained."""
        if self.close_args is None:
            self.close_args = (code, reason)
            if not self.outbox.closed and self._closing_frame is not None:
                frame = self._closing_frame(code, reason)
                if frame:
                    self.outbox.force(frame)
        self.outbox.close()
        self._arrived.set()
        self._taken.set()

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._spawn(fn)

    def _on_overflow(self, messages: int) -> None:
        if self.close_args is None:
            self.close_args = (3008, "slow")
        self._arrived.set()
        self._taken.set()

    # -- the transport's side ---------------------------------------------------------------
    async def deliver(self, data: str | bytes, timeout: float) -> bool:
        """A message the client sent through another request; False if the connection is closed (nothing queued).

        Backpressure, as a websocket's unread socket gives it: while what is queued would pass `inbox_limit`,
        the request waits (up to `timeout`) for the application to take messages. One that cannot be queued in
        time, or a second one while one waits, closes the connection as slow (counted as the outbox's overflow
        is). A message into an empty queue always fits."""
        if self.ended or self.outbox.closed:
            return False
        if self._sender_waiting:
            self.outbox.overflow()
            return False
        size = len(data) + MESSAGE_OVERHEAD
        self._sender_waiting = True
        try:
            with trio.move_on_after(timeout):
                while self._incoming and self._incoming_bytes + size > self.inbox_limit:
                    if self.ended or self.outbox.closed:
                        return False
                    await self._taken.wait()
        finally:
            self._sender_waiting = False
        if self.ended or self.outbox.closed:
            return False
        if self._incoming and self._incoming_bytes + size > self.inbox_limit:
            self.outbox.overflow()
            return False
        self._incoming.append(data)
        self._incoming_bytes += size
        self._arrived.set()
        return True

    def end(self) -> None:
        """The client went away (the response was dropped): the application's receive() returns None."""
        self.ended = True
        self.outbox.close()
        self._arrived.set()
        self._taken.set()

    async def body(self, prelude: bytes = b"") -> AsyncIterator[bytes]:
        """The response's chunks: `prelude`, then what is queued, as it is queued, until closed and drained."""
        try:
            if prelude:
                yield prelude
            while True:
                data = await self.outbox.next_batch()
                if data is None:
                    return
                yield data
        finally:
            self.end()


def serve_stream(conn: StreamConnection, prelude: bytes = b"") -> Callable[[], Any]:
    """`Response.stream` for `conn`."""
    return lambda: conn.body(prelude)
