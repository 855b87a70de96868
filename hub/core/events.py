"""The event feed: synchronous observers of what happens in the core (never awaited)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("hub.events")


@dataclass(frozen=True, slots=True)
class HubEvent:
    """`type` is one of publication, join, leave, connect, disconnect."""

    type: str
    project: str
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[HubEvent], None]


class EventFeed:
    """Adapters register listeners; a listener that raises is logged, never breaks the core."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        # Called when the feed gains its first listener or loses its last (the core then asks the
        # engine for every publication, so listeners see those of other nodes too).
        self.on_change: Callable[[], None] | None = None

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if len(self._listeners) == 1 and self.on_change is not None:
            self.on_change()

    def remove(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
            if not self._listeners and self.on_change is not None:
                self.on_change()

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: HubEvent) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.type)
