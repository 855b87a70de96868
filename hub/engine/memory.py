"""The default engine: streams and presence in this process; every call completes without suspending."""

from __future__ import annotations

from typing import Any

from hub.core import history as _history
from hub.core.history import HistoryResult, Publication, Stream
from hub.core.options import NamespaceOptions

from .base import Engine, StreamPosition

Key = tuple[str, str]


class MemoryEngine(Engine):
    """One process: publications are delivered synchronously inside `publish`.

    A stream's publications go `history_lifetime` after its last publish; its offset and epoch stay
    `history_meta_ttl` longer (at least as long as the publications), so an idle channel keeps its
    epoch and a caught-up client recovers without a spurious `recovered: false`.
    """

    name = "memory"

    def __init__(self, *, history_meta_ttl: float = 30 * 86400.0) -> None:
        self.history_meta_ttl = history_meta_ttl
        self._streams: dict[Key, Stream] = {}

    # -- streams -----------------------------------------------------------------------------
    def _live(self, key: Key, now: float) -> Stream | None:
        stream = self._streams.get(key)
        if stream is None:
            return None
        if stream.meta_expires_at <= now:
            del self._streams[key]
            return None
        if stream.expires_at <= now and stream.items:
            stream.items.clear()
        return stream

    def _touch(self, stream: Stream, options: NamespaceOptions, now: float) -> None:
        stream.expires_at = now + options.history_lifetime
        stream.meta_expires_at = now + max(self.history_meta_ttl, options.history_lifetime)

    def _stream(self, key: Key, options: NamespaceOptions, now: float) -> Stream:
        stream = self._live(key, now)
        if stream is None:
            stream = self._streams[key] = Stream(options.history_size)
            self._touch(stream, options, now)
        else:
            stream.resize(options.history_size)
        return stream

    async def publish(self, project: str, channel: str, options: NamespaceOptions,
                      pubs: list[Publication]) -> list[Publication]:
        if options.keeps_history:
            now = self.hub.clock()
            stream = self._stream((project, channel), options, now)
            epoch = stream.epoch
            for pub in pubs:
                pub.offset = stream.next_offset()
                pub.epoch = epoch
            stream.items.extend(pubs)
            self._touch(stream, options, now)
        self.hub.deliver(project, channel, pubs)
        return pubs

    async def history(self, project: str, channel: str, options: NamespaceOptions, *, limit: int | None,
                      since: int | None, newest_first: bool, before: int | None = None) -> HistoryResult:
        stream = self._live((project, channel), self.hub.clock())
        return _history.read(stream, limit=limit, since=since, newest_first=newest_first, before=before)

    async def stream_position(self, project: str, channel: str, options: NamespaceOptions) -> tuple[int, str]:
        stream = self._stream((project, channel), options, self.hub.clock())
        return stream.offset, stream.epoch

    async def remove_history(self, project: str, channel: str) -> None:
        stream = self._streams.get((project, channel))
        if stream is not None:
            stream.items.clear()

    async def position(self, project: str, channel: str, options: NamespaceOptions,
                       since: tuple[int, str] | None) -> StreamPosition:
        stream = self._stream((project, channel), options, self.hub.clock())
        pos = StreamPosition(stream.offset, stream.epoch, since=since)
        if since is not None:
            pos.publications, pos.recovered = recover(stream.items, since, stream.offset, stream.epoch)
        return pos

    # -- presence, join/leave: the local subscriber map is the whole truth -----------------------
    async def presence(self, project: str, channel: str) -> dict[str, dict[str, Any]]:
        return self.hub.local_presence(project, channel)

    def join(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self.hub.deliver_join(project, channel, record)

    def leave(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self.hub.deliver_leave(project, channel, record)

    def expire(self, now: float) -> None:
        for key in [k for k, s in self._streams.items() if s.expires_at <= now]:
            stream = self._streams[key]
            if stream.meta_expires_at <= now:
                del self._streams[key]
            else:
                stream.items.clear()


def recover(items: Any, since: tuple[int, str], top: int, epoch: str) -> tuple[list[Publication], bool]:
    """Centrifugo's rule: recovered iff the epoch is the same (an empty one matches any) and `items` hold every
    offset in (offset, top]."""
    offset, client_epoch = since
    if (client_epoch and client_epoch != epoch) or not isinstance(offset, int) or offset < 0 or offset > top:
        return [], False
    if offset == top:
        return [], True
    pubs = [p for p in items if p.offset > offset]
    if pubs and pubs[0].offset == offset + 1 and pubs[-1].offset == top:
        return pubs, True
    return [], False
