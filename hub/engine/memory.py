"""The default engine: streams and presence in this process; every call completes without suspending."""

from __future__ import annotations

import sys
from typing import Any

from hub.core import history as _history
from hub.core.errors import HubError
from hub.core.history import HistoryResult, Publication, Stream
from hub.core.mapstate import MapSnapshot, MapStates
from hub.core.options import NamespaceOptions
from hub.core.timers import Slicer, TimerWheel

from .base import Engine, StreamPosition

SHARDS = 1024
MASK = SHARDS - 1
CHUNK = 32  # streams processed between two looks at the clock in a housekeeping slice
COMPACT_AFTER = 10000  # streams dropped before the shards are checked for empty space

class MemoryEngine(Engine):
    """One process: publications are delivered synchronously inside `publish`.

    A stream's publications go `history_lifetime` after its last publish; its offset and epoch stay
    `history_meta_ttl` longer (at least as long as the publications), so an idle channel keeps its
    epoch and a caught-up client recovers without a spurious `recovered: false`.

    Expiry is scheduled: each stream sits in one bucket of a timer wheel at its next deadline, so a
    housekeeping pass touches only what is due, in slices (`expire_some`). Reads check deadlines
    themselves, so nothing expired is ever served between passes.
    """

    name = "memory"

    def __init__(self, *, history_meta_ttl: float = 30 * 86400.0) -> None:
        self.history_meta_ttl = history_meta_ttl
        # project -> SHARDS dicts of channel -> stream (by the name's hash): with a million channels no
        # single dict's resize (on insert) or release (when a mass expiry empties it) holds the loop long.
        self._streams: dict[str, list[dict[str, Stream]]] = {}
        self._count = 0
        self._wheel = TimerWheel(1.0)
        self._due: list[list[Stream]] = []  # buckets taken from the wheel, not yet processed
        self._freed = 0  # streams dropped since the last trim of the C heap
        self._unpacked = 0  # streams dropped since the shards were last compacted
        self._compacting: list[tuple[list[dict[str, Stream]], int]] = []  # shards still to look at
        self.examined = 0  # wheel entries housekeeping has looked at (what a pass costs)
        self.trim_after = 20000  # return freed memory to the OS after a sweep dropped this many streams
        self.maps = MapStates()
        # Map channels cleared (with a stream): the local subscribers that followed the old epoch, told
        # insufficient state by the next change (Centrifugo: the epoch mismatch of that change tells them).
        self._cleared: dict[tuple[str, str], set[str]] = {}

    def __len__(self) -> int:
        return self._count

    # -- streams -----------------------------------------------------------------------------
    def _get(self, project: str, channel: str) -> Stream | None:
        shards = self._streams.get(project)
        return None if shards is None else shards[hash(channel) & MASK].get(channel)

    def _live(self, project: str, channel: str, now: float) -> Stream | None:
        stream = self._get(project, channel)
        if stream is None:
            return None
        if stream.meta_expires_at(self.history_meta_ttl) <= now:
            self._drop(stream)
            return None
        if stream.items is not None and stream.expires_at <= now:
            stream.items = None
        return stream

    def _drop(self, stream: Stream) -> None:
        stream.ticket = None
        channel = stream.channel
        del self._streams[stream.project][hash(channel) & MASK][channel]
        self._count -= 1
        self._freed += 1
        self._unpacked += 1

    def _schedule(self, stream: Stream, now: float) -> None:
        when = stream.expires_at if stream.items is not None else stream.meta_expires_at(self.history_meta_ttl)
        stream.ticket = self._wheel.add(when, stream, now)

    def _touch(self, stream: Stream, options: NamespaceOptions, now: float, had_items: bool) -> None:
        """A publish: both deadlines move to `now` plus the lifetimes."""
        stream.touched = now
        if stream.options is not options or not had_items or stream.ticket is None:
            # new, idle (scheduled at its later meta deadline) or reloaded options (maybe shorter lifetimes)
            stream.options = options
            self._schedule(stream, now)
        # else it stays in its earlier bucket; when that comes due it is put back at its new deadline

    def _stream(self, project: str, channel: str, options: NamespaceOptions, now: float) -> Stream:
        """The live stream, or a new one (unscheduled: the caller touches or schedules it)."""
        stream = self._live(project, channel, now)
        if stream is None:
            shards = self._streams.get(project)
            if shards is None:
                shards = self._streams[project] = [{} for _ in range(SHARDS)]
            stream = shards[hash(channel) & MASK][channel] = Stream(project, channel, options, now)
            self._count += 1
        elif stream.options is not options:
            stream.trim(options.history_size)
        return stream

    def _position_stream(self, project: str, channel: str, options: NamespaceOptions) -> Stream:
        now = self.hub.clock()
        stream = self._stream(project, channel, options, now)
        if stream.ticket is None:
            self._schedule(stream, now)
        return stream

    async def publish(self, project: str, channel: str, options: NamespaceOptions,
                      pubs: list[Publication]) -> list[Publication]:
        self._publish(project, channel, options, pubs)
        return pubs

    async def publish_batch(self, project: str, batch: list[tuple[str, NamespaceOptions, list[Publication]]]) -> None:
        publish, deliver = self._publish, self.hub.deliver
        for channel, options, pubs in batch:
            if options.history_size > 0 and options.history_lifetime > 0:  # options.keeps_history
                publish(project, channel, options, pubs)
            elif pubs:
                deliver(project, channel, pubs)  # all `_publish` does then

    def _publish(self, project: str, channel: str, options: NamespaceOptions, pubs: list[Publication]) -> None:
        if options.keeps_history and pubs:
            now = pubs[-1].timestamp  # the publish time: stored once, shared with the publication
            stream = self._stream(project, channel, options, now)
            had_items = stream.items is not None
            epoch, name, proj = stream.epoch, stream.channel, stream.project
            for pub in pubs:
                pub.offset = stream.next_offset()
                pub.epoch = epoch
                pub.channel = name  # one copy of the name per channel, not one per kept publication
                pub.project = proj
            stream.append(pubs, options.history_size)
            self._touch(stream, options, now, had_items)
        self.hub.deliver(project, channel, pubs)

    async def map_update(self, project: str, channel: str, options: NamespaceOptions,
                         pub: Publication) -> Publication | None:
        return self._map_apply(project, channel, options, pub)

    def _map_apply(self, project: str, channel: str, options: NamespaceOptions, pub: Publication) -> Publication | None:
        maps = self.maps
        assert pub.key is not None
        prev = maps.get(project, channel, pub.key)
        if pub.removed and prev is None:
            return None  # Centrifugo: suppressed, nothing streamed or delivered
        if options.keeps_history:
            now = pub.timestamp
            stream = self._stream(project, channel, options, now)
            had_items = stream.items is not None
            pub.offset = stream.next_offset()
            pub.epoch = stream.epoch
            stream.append([pub], options.history_size)
            self._touch(stream, options, now, had_items)
        maps.apply(pub, options.map_key_ttl, pub.timestamp)
        if self._cleared:
            stale = self._cleared.pop((project, channel), None)
            if stale:
                self.hub.insufficient_state(project, channel, only=stale)
        pub.base = prev
        try:
            self.hub.deliver(project, channel, [pub])
        finally:
            pub.base = None
        return pub

    def map_presence(self, project: str, channel: str, options: NamespaceOptions, pub: Publication) -> None:
        assert pub.key is not None
        if not pub.removed and self.maps.get(project, channel, pub.key) is not None:
            return  # Centrifugo's KeyModeIfNew: an entry already there is not announced again
        self._map_apply(project, channel, options, pub)

    async def map_snapshot(self, project: str, channel: str, options: NamespaceOptions, cursor: str = "",
                           limit: int | None = None) -> MapSnapshot:
        offset, epoch = 0, ""
        if options.keeps_history:
            stream = self._position_stream(project, channel, options)
            offset, epoch = stream.offset, stream.epoch
        return MapSnapshot(self.maps.entries(project, channel), offset, epoch)

    async def map_stats(self, project: str, channel: str, options: NamespaceOptions) -> int:
        return self.maps.count(project, channel)

    async def map_clear(self, project: str, channel: str, options: NamespaceOptions) -> None:
        self.maps.clear(project, channel)
        stream = self._get(project, channel)
        if stream is not None:  # offsets and epoch go too: the next read or change starts a new epoch
            self._drop(stream)
            subscribers = self.hub.local_subscribers(project, channel)
            if subscribers:
                self._cleared[(project, channel)] = subscribers

    def _expire_keys(self, now: float) -> None:
        """Remove the map keys whose TTL is over, telling their subscribers (a removal, as Centrifugo's cleanup)."""
        hub = self.hub
        for project, channel, key in self.maps.expired(now):
            try:
                options = hub.channel(project, channel).options
            except HubError:  # its project or namespace went with a reload: forget the key quietly
                options = NamespaceOptions()
            pub = Publication(hub.new_uid(), project, channel, None, None, None, now, 0, "", key=key, removed=True)
            self._map_apply(project, channel, options, pub)

    async def history(self, project: str, channel: str, options: NamespaceOptions, *, limit: int | None,
                      since: int | None, newest_first: bool, before: int | None = None) -> HistoryResult:
        stream = self._live(project, channel, self.hub.clock())
        return _history.read(stream, limit=limit, since=since, newest_first=newest_first, before=before)

    async def stream_position(self, project: str, channel: str, options: NamespaceOptions) -> tuple[int, str]:
        stream = self._position_stream(project, channel, options)
        return stream.offset, stream.epoch

    async def remove_history(self, project: str, channel: str) -> None:
        stream = self._get(project, channel)
        if stream is not None:
            stream.items = None

    async def position(self, project: str, channel: str, options: NamespaceOptions,
                       since: tuple[int, str] | None) -> StreamPosition:
        stream = self._position_stream(project, channel, options)
        pos = StreamPosition(stream.offset, stream.epoch, since=since)
        if since is not None:
            pos.publications, pos.recovered = recover(stream.publications(), since, stream.offset, stream.epoch)
        return pos

    # -- presence, join/leave: the local subscriber map is the whole truth -----------------------
    async def presence(self, project: str, channel: str) -> dict[str, dict[str, Any]]:
        return self.hub.local_presence(project, channel)

    def join(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self.hub.deliver_join(project, channel, record)

    def leave(self, project: str, channel: str, record: dict[str, Any]) -> None:
        self.hub.deliver_leave(project, channel, record)

    # -- housekeeping ------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        while self.expire_some(now, None):
            pass

    def expire_some(self, now: float, budget: float | None) -> bool:
        """Process what is due by `now` for about `budget` seconds; True if some is left for the next slice."""
        due = self._due
        if not due:  # a new pass (what a slice puts back is for the next pass, so a pass always ends)
            self._expire_keys(now)
            due.extend(self._wheel.take_due(now))
        slicer = Slicer(budget, every=1)
        meta_ttl = self.history_meta_ttl
        examined = 0
        try:
            while due:
                bucket = due[-1]
                while bucket:
                    if not slicer.more():
                        return True
                    for _ in range(min(CHUNK, len(bucket))):  # a chunk between two looks at the clock
                        stream = bucket.pop()
                        examined += 1
                        if stream.ticket is not bucket:
                            continue  # rescheduled or dropped since
                        stream.ticket = None
                        touched, options = stream.touched, stream.options
                        lifetime = options.history_lifetime
                        if stream.items is not None and touched + lifetime <= now:
                            stream.items = None
                        if touched + (meta_ttl if meta_ttl > lifetime else lifetime) <= now:
                            self._drop(stream)
                        else:
                            self._schedule(stream, now)
                due.pop()
        finally:
            self.examined += examined
        return self._compact_some(slicer)

    def _compact_some(self, slicer: Slicer) -> bool:
        """A dict never shrinks when entries go: after a large sweep, rebuild the shards that are mostly
        empty space, one at a time (each is small). True if some are left for the next slice."""
        todo = self._compacting
        if not todo:
            if self._unpacked < COMPACT_AFTER:
                return False
            self._unpacked = 0
            todo.extend((shards, i) for shards in self._streams.values() for i in range(SHARDS))
        while todo:
            if not slicer.more_now():
                return True
            shards, i = todo.pop()
            shard = shards[i]
            if sys.getsizeof(shard) > 128 * len(shard) + 1024:
                shards[i] = dict(shard)
        return False

    def trim_due(self) -> bool:
        if self._freed < self.trim_after:
            return False
        self._freed = 0
        return _libc() is not None

    def trim_memory(self) -> None:
        """Give the C heap's free pages back to the OS (glibc `malloc_trim`; ctypes releases the GIL)."""
        _malloc_trim()


def _malloc_trim() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


_LIBC: list[Any] = []


def _libc() -> Any:
    if not _LIBC:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim  # noqa: B018 (glibc only)
        except (OSError, AttributeError):
            libc = None
        _LIBC.append(libc)
    return _LIBC[0]


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
