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

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: HubEvent) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.type)
