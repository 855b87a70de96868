"""Retained publications: the last publication kept per channel for subscribers that arrive later.

An adapter keeps a publication (MQTT: a PUBLISH with the RETAIN flag) with `keep`, and removes it
with `clear` (MQTT: an empty retained PUBLISH). New subscribers read it with `get` (one channel)
or `matching` (a topic filter, see patterns.py). Nothing expires here: a protocol with its own
expiry (MQTT's message expiry interval) checks it when it reads and calls `clear`.
"""

from __future__ import annotations

from collections.abc import Iterator

from .history import Publication
from .patterns import has_wildcards, matches


class RetainedStore:
    """The retained publication of each (project, channel), bounded by `limit` channels per project (0 = none)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self._by_project: dict[str, dict[str, Publication]] = {}

    def __len__(self) -> int:
        return sum(len(m) for m in self._by_project.values())

    def keep(self, pub: Publication) -> bool:
        """Make `pub` its channel's retained publication; False if the project is at its limit."""
        kept = self._by_project.setdefault(pub.project, {})
        if self.limit and pub.channel not in kept and len(kept) >= self.limit:
            return False
        kept[pub.channel] = pub
        return True

    def clear(self, project: str, channel: str) -> bool:
        """Forget `channel`'s retained publication; False if there was none."""
        kept = self._by_project.get(project)
        if not kept or kept.pop(channel, None) is None:
            return False
        if not kept:
            del self._by_project[project]
        return True

    def get(self, project: str, channel: str) -> Publication | None:
        return self._by_project.get(project, {}).get(channel)

    def matching(self, project: str, topic_filter: str) -> list[Publication]:
        """Retained publications of the channels `topic_filter` matches, by channel name."""
        kept = self._by_project.get(project)
        if not kept:
            return []
        if not has_wildcards(topic_filter):
            pub = kept.get(topic_filter)
            return [pub] if pub is not None else []
        return [kept[ch] for ch in sorted(kept) if matches(topic_filter, ch)]

    def __iter__(self) -> Iterator[Publication]:
        for kept in self._by_project.values():
            yield from kept.values()
