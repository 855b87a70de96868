"""The engine interface the core calls (see hub/engine/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from hub.core.history import HistoryResult, Publication
    from hub.core.hub import Hub
    from hub.core.mapstate import MapSnapshot
    from hub.core.options import NamespaceOptions


@dataclass(slots=True)
class StreamPosition:
    """Where a subscriber starts: the node's top offset and epoch of a channel, and, when it asked to
    recover from `since`, the publications it missed and whether they are all there."""

    offset: int
    epoch: str
    publications: list[Publication] = field(default_factory=list)
    recovered: bool = False
    since: tuple[int, str] | None = None
    # Engine bookkeeping between `position` and `catch_up` (Redis: the top offset the read saw).
    read_top: int = 0


class Engine:
    """Shared state behind the core. Methods that may wait on another process are coroutines; with
    the memory engine none of them suspends. The engine hands every publication back to the core
    (`Hub.deliver`), also on the publishing node, in offset order per channel."""

    name = "engine"
    hub: Hub
    # Whether a publication that reaches no local subscriber counts as dropped (one process: it reached
    # nobody). With several nodes another node may have delivered it.
    local_drops = True

    def bind(self, hub: Hub) -> None:
        self.hub = hub

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Background work (connections, heartbeats); started in the runtime's nursery."""
        task_status.started()

    # -- publications and streams --------------------------------------------------------------
    async def publish(self, project: str, channel: str, options: NamespaceOptions,
                      pubs: list[Publication]) -> list[Publication]:
        """Assign offsets and epoch (if the namespace keeps history), store, and deliver everywhere."""
        raise NotImplementedError

    async def publish_batch(self, project: str, batch: list[tuple[str, NamespaceOptions, list[Publication]]]) -> None:
        """`publish` for several channels at once, each channel's publications in order (the memory engine does
        the whole batch without an await per channel)."""
        for channel, options, pubs in batch:
            await self.publish(project, channel, options, pubs)

    async def history(self, project: str, channel: str, options: NamespaceOptions, *, limit: int | None,
                      since: int | None, newest_first: bool, before: int | None = None) -> HistoryResult:
        """Publications after offset `since` and/or before offset `before`, at most `limit`, in the order asked."""
        raise NotImplementedError

    async def stream_position(self, project: str, channel: str, options: NamespaceOptions) -> tuple[int, str]:
        """Top offset and epoch, starting an empty stream (a new epoch) if there is none."""
        raise NotImplementedError

    async def remove_history(self, project: str, channel: str) -> None:
        raise NotImplementedError

    async def position(self, project: str, channel: str, options: NamespaceOptions,
                       since: tuple[int, str] | None) -> StreamPosition:
        """The position a new subscriber of this node starts from (and its missed publications)."""
        raise NotImplementedError

    def catch_up(self, project: str, channel: str, pos: StreamPosition) -> StreamPosition:
        """Synchronously, right before the session is attached: account for what the node delivered
        while `position` was waiting, so the subscriber misses nothing and gets nothing twice."""
        return pos

    # -- map channels (Centrifugo's map subscriptions) ----------------------------------------------
    async def map_update(self, project: str, channel: str, options: NamespaceOptions,
                         pub: Publication) -> Publication | None:
        """Set (or, `pub.removed`, remove) the key `pub.key`: offset it into the stream if the namespace keeps one,
        store it as the key's entry and deliver it with `base` its previous entry. None: removing a key not there."""
        from hub.core.errors import NotAvailable

        raise NotAvailable()

    def map_presence(self, project: str, channel: str, options: NamespaceOptions, pub: Publication) -> None:
        """A subscriber's entry in a map clients channel, added if new (or removed): fire and forget, in order."""

    async def map_snapshot(self, project: str, channel: str, options: NamespaceOptions, cursor: str = "",
                           limit: int | None = None) -> MapSnapshot:
        """The channel's entries and the stream position they are as of. With a stream the subscriber recovers
        from that position; without, the entries are as of what this node has delivered when this returns, so a
        subscriber attached right after (without suspending) misses nothing and gets nothing twice. An engine may
        return only the entries after key `cursor`, `limit` + 1 of them (what `MapSnapshot.page` needs)."""
        from hub.core.errors import NotAvailable

        raise NotAvailable()

    async def map_stats(self, project: str, channel: str, options: NamespaceOptions) -> int:
        """How many keys the channel's state holds (Centrifugo's MapBroker.Stats)."""
        from hub.core.errors import NotAvailable

        raise NotAvailable()

    async def map_clear(self, project: str, channel: str, options: NamespaceOptions) -> None:
        """Delete the channel's state and stream, atomically and telling nobody (Centrifugo's MapBroker.Clear): the
        next stream starts a new epoch, so a subscriber that followed the old one learns it from the next change."""
        from hub.core.errors import NotAvailable

        raise NotAvailable()

    # -- node-level subscriptions, presence, join/leave ------------------------------------------
    async def subscribe(self, project: str, channel: str, options: NamespaceOptions) -> None:
        """Make sure this node receives `channel`'s publications (a local session is about to join)."""

    def unsubscribe(self, project: str, channel: str) -> None:
        """The last local session left `channel`."""

    def presence_add(self, project: str, channel: str, client: str, record: dict[str, Any]) -> None:
        """A local session joined (fire and forget)."""

    def presence_remove(self, project: str, channel: str, client: str) -> None:
        """A local session left (fire and forget)."""

    async def presence(self, project: str, channel: str) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def join(self, project: str, channel: str, record: dict[str, Any]) -> None:
        """Send a join push to the channel's subscribers on every node."""
        raise NotImplementedError

    def leave(self, project: str, channel: str, record: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- cluster ---------------------------------------------------------------------------------
    def control(self, message: dict[str, Any]) -> None:
        """Send a control message to every other node (`Hub.on_control` runs it there)."""

    def nodes(self) -> dict[str, dict[str, Any]]:
        """The other nodes' last heartbeats, by node id (empty for a single process)."""
        return {}

    def watch_all(self, on: bool) -> None:
        """Receive every publication of every channel (event feed listeners, topic filters), not
        only those of channels with local subscribers."""

    def expire(self, now: float) -> None:
        """Housekeeping, every `hub.housekeeping_interval` seconds."""

    def expire_some(self, now: float, budget: float | None) -> bool:
        """Housekeeping in slices: work for about `budget` seconds (None: all of it); True if some is left,
        and the core calls again after a checkpoint. By default, all of `expire` at once."""
        self.expire(now)
        return False

    def trim_due(self) -> bool:
        """Whether housekeeping freed enough that `trim_memory` is worth it (checked after each pass)."""
        return False

    def trim_memory(self) -> None:
        """Return freed memory to the OS; run in a worker thread."""

    async def close(self) -> None:
        """Stop background work."""
