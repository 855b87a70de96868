"""A line-per-event wire format for core tests: frames are JSON lines, easy to read back."""

from __future__ import annotations

import json
from typing import Any

import trio

from hub.core import Hub, Publication, Session


class LineWire:
    name = "lines"

    def __init__(self) -> None:
        self.encoded = 0

    def _line(self, obj: Any) -> bytes:
        return (json.dumps(obj) + "\n").encode()

    def publication(self, pub: Publication) -> bytes:
        self.encoded += 1
        return self._line({"type": "pub", "channel": pub.channel, "data": pub.data, "offset": pub.offset})

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return self._line({"type": "join", "channel": channel, "client": client["client"]})

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return self._line({"type": "leave", "channel": channel, "client": client["client"]})

    def unsubscribe(self, channel: str) -> bytes:
        return self._line({"type": "unsubscribe", "channel": channel})

    def subscribe(self, channel: str) -> bytes:
        return self._line({"type": "subscribe", "channel": channel})

    def disconnect(self, reason: str, reconnect: bool) -> bytes:
        return self._line({"type": "disconnect", "reason": reason})


async def drain(session: Session) -> list[dict[str, Any]]:
    """Everything queued for `session` right now, decoded."""
    out: list[dict[str, Any]] = []
    while session.outbox.pending_bytes:
        with trio.move_on_after(0.1):
            batch = await session.outbox.next_batch()
            if batch is None:
                break
            out.extend(json.loads(line) for line in batch.decode().splitlines())
    return out


def connect(hub: Hub, user: str = "u", wire: LineWire | None = None, project: str = "p", **kw: Any) -> Session:
    return hub.connect(project, user, "test", wire or LineWire(), **kw)
