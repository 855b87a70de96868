"""Map channels' state (Centrifugo's map subscriptions): the latest entry of each key, and key expiry."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from .history import Publication


@dataclass(slots=True)
class MapSnapshot:
    """A channel's entries sorted by key, and the stream position they are as of (0, "" without a stream)."""

    entries: list[Publication]
    offset: int
    epoch: str

    def page(self, cursor: str, limit: int, max_offset: int | None = None) -> tuple[list[Publication], str]:
        """Entries after key `cursor`, at most `limit`, and the next cursor ("" on the last page). With
        `max_offset`, entries changed since that offset are left out (the client reads them from the stream)."""
        rest = [p for p in self.entries if p.key > cursor] if cursor else self.entries  # type: ignore[operator]
        chosen, more = rest[:limit], len(rest) > limit
        nxt = chosen[-1].key if more and chosen else ""
        if max_offset is not None:
            chosen = [p for p in chosen if p.offset <= max_offset]
        return chosen, nxt or ""


class MapStates:
    """Every map channel's entries on this node (the memory engine's), with per-key expiry."""

    def __init__(self) -> None:
        self._maps: dict[tuple[str, str], dict[str, Publication]] = {}
        self._expiry: dict[tuple[str, str, str], float] = {}
        self._heap: list[tuple[float, str, str, str]] = []

    def get(self, project: str, channel: str, key: str) -> Publication | None:
        entries = self._maps.get((project, channel))
        return None if entries is None else entries.get(key)

    def apply(self, pub: Publication, ttl: float, now: float) -> None:
        """Store `pub` as its key's entry (or remove the key); a positive `ttl` expires the key that long after."""
        where = (pub.project, pub.channel)
        key = pub.key
        assert key is not None
        if pub.removed:
            entries = self._maps.get(where)
            if entries is not None:
                entries.pop(key, None)
                if not entries:
                    del self._maps[where]
            self._expiry.pop((*where, key), None)
            return
        self._maps.setdefault(where, {})[key] = pub
        if ttl > 0:
            when = now + ttl
            self._expiry[(*where, key)] = when
            heapq.heappush(self._heap, (when, *where, key))

    def count(self, project: str, channel: str) -> int:
        return len(self._maps.get((project, channel), ()))

    def clear(self, project: str, channel: str) -> None:
        """Forget every key of the channel (their deadlines in the heap are then stale and skipped)."""
        entries = self._maps.pop((project, channel), None)
        for key in entries or ():
            self._expiry.pop((project, channel, key), None)

    def entries(self, project: str, channel: str) -> list[Publication]:
        entries = self._maps.get((project, channel), {})
        return [entries[k] for k in sorted(entries)]

    def expired(self, now: float) -> list[tuple[str, str, str]]:
        """Keys whose time has come, as (project, channel, key); the caller removes them."""
        out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, project, channel, key = heapq.heappop(heap)
            if self._expiry.get((project, channel, key)) == when:
                out.append((project, channel, key))
        return out
