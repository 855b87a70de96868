"""Engines: what must be the same on every hub process (stream positions, history, presence, control).

`MemoryEngine` (the default) keeps it in this process and never suspends; `RedisEngine` shares it
between processes through Redis. The core (`hub.core.Hub`) keeps what is local: sessions, the
node's subscriber map, encode-once fan-out, outboxes and counters. See README "Running several hubs".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Engine, StreamPosition
from .memory import MemoryEngine

if TYPE_CHECKING:
    from hub.config import EngineSettings

__all__ = ["Engine", "MemoryEngine", "StreamPosition", "make_engine"]


def make_engine(settings: EngineSettings | None, **kwargs: Any) -> Engine:
    """The engine `[engine]` asks for."""
    if settings is None or settings.type == "memory":
        return MemoryEngine(history_meta_ttl=settings.history_meta_ttl if settings else 30 * 86400.0)
    from .redis import RedisEngine

    return RedisEngine(settings, **kwargs)
