"""Per-channel publication streams: offsets, an epoch, bounded size and a lifetime."""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Publication:
    """One published message; `offset` and `epoch` place it in its channel's stream."""

    uid: str
    project: str
    channel: str
    data: Any
    info: Any
    client: str | None
    timestamp: float
    offset: int
    epoch: str
    # What the publishing protocol attaches for subscribers of its own kind (MQTT: an MqttMessage with
    # the exact payload bytes, QoS, retain flag and properties); other protocols ignore it.
    meta: Any = None
    # Centrifugo publication tags (string → string), delivered with the publication.
    tags: dict[str, str] | None = None
    # The exact payload bytes when the publisher sent bytes (a Protobuf client, the API's b64data);
    # binary wire formats send these unchanged, the others send `data`.
    raw: bytes | None = None


def new_epoch() -> str:
    return secrets.token_hex(4)


class Stream:
    """The publications of one channel, newest kept up to `size`, dropped `lifetime` s after the last publish;
    its offset and epoch outlive them (the engine's `history_meta_ttl`)."""

    __slots__ = ("epoch", "offset", "items", "expires_at", "meta_expires_at")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.offset = 0
        self.items: deque[Publication] = deque(maxlen=max(size, 0) or None)
        self.expires_at = 0.0  # the publications go then; offset and epoch stay until meta_expires_at
        self.meta_expires_at = 0.0

    def resize(self, size: int) -> None:
        if self.items.maxlen != size:
            self.items = deque(self.items, maxlen=size)

    def next_offset(self) -> int:
        self.offset += 1
        return self.offset


@dataclass(slots=True)
class HistoryResult:
    """A history read: the publications asked for, and the stream position a client can recover from."""

    publications: list[Publication]
    offset: int
    epoch: str


def read(stream: Stream | None, *, limit: int | None, since: int | None, newest_first: bool,
         before: int | None = None) -> HistoryResult:
    """Select from a stream: after offset `since` (or before offset `before`), at most `limit`, in the order asked."""
    if stream is None:
        return HistoryResult([], 0, "")
    items = list(stream.items)
    if since is not None:
        items = [p for p in items if p.offset > since]
    if before is not None:
        items = [p for p in items if p.offset < before]
    if newest_first:
        items.reverse()
    if limit is not None and limit >= 0:
        items = items[:limit]
    return HistoryResult(items, stream.offset, stream.epoch)
