"""Live data for the pages, at human rates, without slowing the hub.

- The core's counters are sampled once per `update_interval` (O(1): a few integers), kept for the
  chart; a breakdown per protocol and per adapter (O(sessions)) is computed at most once per tick, and
  only while an Overview page is open.
- A page that shows a channel (or a chat room) registers a watch; the Monitor listens to the core's
  event feed only while at least one watch exists, so with no such page open a publication costs the
  dashboard nothing. With one open, each publication costs a dict lookup, plus a bounded append for a
  watched channel; pages are sent at most WATCH_BATCH items per flush, the rest are counted as skipped.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from hub.core import HubEvent, Publication

if TYPE_CHECKING:
    from hub.runtime import RunningHub

log = logging.getLogger("hub.dashboard")

SERIES = 300  # samples kept for the chart (5 minutes at the default interval)
WATCH_BATCH = 50  # publications a page is sent per flush; more are counted as skipped
MAX_PAGES = 32  # live sockets at once; more are refused (each one is a little work per tick)
DATA_PREVIEW = 2000  # characters of a publication's JSON shown on a page

Key = tuple[str, str]


def node_id() -> str:
    """This process as a node: host name and pid (the Redis engine's nodes will sit beside it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(eq=False)
class Page:
    """One open page socket: woken every tick and whenever a watched channel gets a publication."""

    kind: str
    wake: trio.Event = field(default_factory=trio.Event)
    pending: deque[Publication] = field(default_factory=lambda: deque(maxlen=WATCH_BATCH))
    skipped: int = 0
    watching: Key | None = None
    filters: dict[str, str] = field(default_factory=dict)
    refilter: bool = False  # the filters changed: send the list again now

    def push(self, pub: Publication) -> None:
        if len(self.pending) == WATCH_BATCH:
            self.skipped += 1
        self.pending.append(pub)
        self.wake.set()

    def take(self) -> tuple[list[Publication], int]:
        pubs, skipped = list(self.pending), self.skipped
        self.pending.clear()
        self.skipped = 0
        return pubs, skipped


class Monitor:
    """Samples the core on a timer, wakes the open pages, and feeds watched channels' publications to them."""

    def __init__(self, runtime: RunningHub, interval: Callable[[], float], clock: Callable[[], float] | None = None) -> None:
        self.runtime = runtime
        self.hub = runtime.hub
        self.interval = interval
        self.clock = clock or (lambda: self.hub.clock())
        self.node = node_id()
        self.samples: deque[dict[str, Any]] = deque(maxlen=SERIES)
        self.pages: set[Page] = set()
        self.watches: dict[Key, set[Page]] = {}
        self.tick = 0
        self._listening = False
        self._breakdown: tuple[int, dict[str, Any]] | None = None
        self._last_requests: dict[str, int] = {}
        self.event_calls = 0  # publications the listener looked at (tests read it: zero while nobody watches)

    # -- sampling -----------------------------------------------------------------------------
    def sample(self) -> dict[str, Any]:
        """One point of the series: counters, gauges and rates since the previous point."""
        snap = self.hub.stats_snapshot()
        now = self.clock()
        point = {"t": now, **snap}
        prev = self.samples[-1] if self.samples else None
        dt = (now - prev["t"]) if prev else 0.0
        for key, rate in (("messages_in", "publications_per_s"), ("messages_delivered", "deliveries_per_s")):
            point[rate] = round((snap[key] - prev[key]) / dt, 2) if prev and dt > 0 else 0.0
        requests = self._requests_by_adapter()
        point["requests_per_s"] = {
            name: round((count - self._last_requests.get(name, count)) / dt, 2) if dt > 0 else 0.0
            for name, count in requests.items()}
        self._last_requests = requests
        self.samples.append(point)
        return point

    def _requests_by_adapter(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (adapter, _), count in tuple(self.runtime.metrics.requests.items()):
            out[adapter] = out.get(adapter, 0) + count
        return out

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Sample every interval and wake every open page (until cancelled)."""
        self.sample()
        task_status.started()
        while True:
            await trio.sleep(self.interval())
            self.sample()
            self.tick += 1
            for page in tuple(self.pages):
                page.wake.set()

    def breakdown(self) -> dict[str, Any]:
        """By session protocol: live sessions, their subscriptions and copies received, and since start the copies
        lost to slow-client disconnects and how many there were. Computed once per tick at most."""
        if self._breakdown is not None and self._breakdown[0] == self.tick:
            return self._breakdown[1]
        stats = self.hub.stats
        protocols: dict[str, dict[str, int]] = {}

        def row(protocol: str) -> dict[str, int]:
            found = protocols.get(protocol)
            if found is None:
                found = protocols[protocol] = {"sessions": 0, "subscriptions": 0, "delivered": 0,
                                               "dropped": stats.dropped_by_protocol.get(protocol, 0),
                                               "slow_disconnects": stats.slow_by_protocol.get(protocol, 0)}
            return found

        for session in tuple(self.hub.sessions.values()):
            r = row(session.protocol)
            r["sessions"] += 1
            r["subscriptions"] += len(session.channels)
            r["delivered"] += session.received
        for protocol in tuple(stats.slow_by_protocol):  # protocols whose every session is gone still show their drops
            row(protocol)
        out = {"protocols": dict(sorted(protocols.items()))}
        self._breakdown = (self.tick, out)
        return out

    def overview(self, with_series: bool = False) -> dict[str, Any]:
        """What the Overview page shows, per node (this one now; the Redis engine's other nodes later)."""
        point = self.samples[-1] if self.samples else self.sample()
        adapters = {}
        for name in self.runtime.contexts:
            if name in self.runtime.served:  # served on its own (the dashboard): not on the HTTP layer's counters
                continue
            adapters[name] = {"requests": self._last_requests.get(name, 0),
                              "requests_per_s": point["requests_per_s"].get(name, 0.0)}
        node = {k: point[k] for k in ("sessions", "subscriptions", "channels", "messages_in", "messages_delivered",
                                      "messages_dropped", "slow_disconnects", "connections_total", "uptime",
                                      "publications_per_s", "deliveries_per_s")}
        node.update(self.breakdown())
        node["adapters"] = adapters
        data: dict[str, Any] = {"type": "overview", "node": self.node, "nodes": {self.node: node}, "total": node}
        if with_series:
            data["series"] = [self._series_point(p) for p in self.samples]
        else:
            data["point"] = self._series_point(point)
        return data

    @staticmethod
    def _series_point(p: dict[str, Any]) -> list[float]:
        return [p["t"], p["publications_per_s"], p["deliveries_per_s"]]

    # -- pages and watches --------------------------------------------------------------------
    def open_page(self, kind: str) -> Page | None:
        if len(self.pages) >= MAX_PAGES:
            return None
        page = Page(kind)
        self.pages.add(page)
        return page

    def close_page(self, page: Page) -> None:
        self.unwatch(page)
        self.pages.discard(page)

    def watch(self, page: Page, project: str, channel: str) -> None:
        self.unwatch(page)
        key = (project, channel)
        page.watching = key
        self.watches.setdefault(key, set()).add(page)
        if not self._listening:
            self.hub.events.add(self.on_event)
            self._listening = True

    def unwatch(self, page: Page) -> None:
        key, page.watching = page.watching, None
        if key is None:
            return
        pages = self.watches.get(key)
        if pages is not None:
            pages.discard(page)
            if not pages:
                del self.watches[key]
        if not self.watches and self._listening:
            self.hub.events.remove(self.on_event)
            self._listening = False

    def on_event(self, event: HubEvent) -> None:
        """Core event listener (synchronous, inside publish): O(1) unless the channel is watched."""
        if event.type != "publication":
            return
        self.event_calls += 1
        pub = event.data["publication"]
        pages = self.watches.get((event.project, pub.channel))
        if pages:
            for page in pages:
                page.push(pub)

    def stop(self) -> None:
        for page in tuple(self.pages):
            self.close_page(page)
