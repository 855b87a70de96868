"""Floods for the pressure tests (issue 27): a client sends many commands and reads the replies slowly
(at once, or only after everything is stuck); every reply must arrive, or the connection must be closed
with the protocol's slow-client code. Nothing may go missing while the connection stays open."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

import trio
import trio.testing

from ..rawws import RawWebSocket

SEND_CHUNK = 200  # frames per write: a client that writes as fast as it can


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


async def flood(ws: RawWebSocket, frame: bytes, frames: int, *, late: bool, is_reply: Callable[[bytes], int],
                expected: int, timeout: float = 60) -> tuple[int, int | None]:
    """Send `frames` copies of `frame` as fast as the socket takes them and count replies (`is_reply(payload)`
    replies in each server frame) until `expected`, a close frame or EOF: (replies, close code or None).

    `late`: read nothing until the hub and the sender are both stuck (backpressure both ways), then read;
    otherwise read while sending (the issue's "reads the replies as fast as it can")."""
    replies, closed = 0, None
    data = frame * SEND_CHUNK

    async def send() -> None:
        try:
            for first in range(0, frames, SEND_CHUNK):
                n = min(SEND_CHUNK, frames - first)
                await ws.stream.send_all(data if n == SEND_CHUNK else frame * n)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        if late:
            with trio.fail_after(timeout):
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)  # housekeeping wakes every 50 ms
        with trio.fail_after(timeout):
            while replies < expected:
                try:
                    opcode, payload = await ws.recv()
                except (EOFError, trio.BrokenResourceError):
                    break
                if opcode == 8:
                    closed = close_code(payload)
                    break
                replies += is_reply(payload)
        nursery.cancel_scope.cancel()
    return replies, closed


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    """Wait (polling the hub's own counters) until `condition()` holds."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


Check = Callable[[], Awaitable[None]]
