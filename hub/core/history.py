"""Per-channel publication streams: offsets, an epoch, bounded size and a lifetime."""

from __future__ import annotations

import secrets
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
    # Map channels (Centrifugo's map subscriptions): the entry's key, and whether this removes it.
    key: str | None = None
    removed: bool = False
    # The key's previous entry while the publication is being delivered (the base of a per-key delta), else None.
    base: Publication | None = None


def new_epoch() -> str:
    return secrets.token_hex(4)


class Stream:
    """The publications of one channel, newest kept up to `history_size`, dropped `history_lifetime` s after
    the last publish; its offset and epoch outlive them (the engine's `history_meta_ttl`).

    Kept compact, as a hub may hold a million of them: slots, no container for a single publication (`items`
    is None, one Publication, or a list trimmed to `history_size`), the namespace's shared options object
    instead of per-stream sizes and lifetimes, and one timestamp (`touched`, the last publish, which is the
    last publication's own timestamp object) from which both deadlines follow. `ticket` is the engine's
    expiry bucket (see hub/core/timers.py).
    """

    __slots__ = ("project", "channel", "epoch", "offset", "items", "options", "touched", "ticket")

    def __init__(self, project: str, channel: str, options: Any, now: float) -> None:
        self.project = project
        self.channel = channel
        self.epoch = new_epoch()
        self.offset = 0
        self.items: Publication | list[Publication] | None = None
        self.options = options  # the NamespaceOptions in force at the last touch (shared, never copied)
        self.touched = now
        self.ticket: list[Any] | None = None

    @property
    def expires_at(self) -> float:
        """When the publications go."""
        return self.touched + self.options.history_lifetime

    def meta_expires_at(self, meta_ttl: float) -> float:
        """When offset and epoch go (never before the publications)."""
        return self.touched + max(meta_ttl, self.options.history_lifetime)

    def __len__(self) -> int:
        items = self.items
        return 0 if items is None else len(items) if type(items) is list else 1

    def publications(self) -> list[Publication]:
        """The kept publications, oldest first (a new list)."""
        items = self.items
        if items is None:
            return []
        return list(items) if type(items) is list else [items]

    def append(self, pubs: list[Publication], size: int) -> None:
        """Keep `pubs` (offsets already assigned), then only the newest `size`."""
        items = self.items
        if items is None and len(pubs) == 1:
            self.items = pubs[0]
            return
        kept = [] if items is None else items if type(items) is list else [items]
        kept.extend(pubs)
        self.items = kept
        self.trim(size)

    def trim(self, size: int) -> None:
        items = self.items
        if type(items) is list:
            if len(items) > size:
                del items[:len(items) - size]
            if len(items) <= 1:
                self.items = items[0] if items else None
        elif items is not None and size <= 0:
            self.items = None

    def clear(self) -> None:
        self.items = None

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
    items = stream.publications()
    if since is not None:
        items = [p for p in items if p.offset > since]
    if before is not None:
        items = [p for p in items if p.offset < before]
    if newest_first:
        items.reverse()
    if limit is not None and limit >= 0:
        items = items[:limit]
    return HistoryResult(items, stream.offset, stream.epoch)
