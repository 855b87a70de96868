"""The core's counters: plain integers, cheap to bump and to read on every stats request."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    """Counters since start.

    messages_in: publications accepted (from any protocol or in-process);
    messages_delivered: publication copies queued to subscribers;
    messages_dropped: publications that reached no subscriber (none, or only sessions that take no pushes),
        plus copies lost to slow clients;
    slow_disconnects: sessions closed because their queue overflowed.
    """

    messages_in: int = 0
    messages_delivered: int = 0
    messages_dropped: int = 0
    slow_disconnects: int = 0
    connections_total: int = 0
    # Slow-client disconnects and the copies they lost, by session protocol (the dashboard's per-adapter rows;
    # not in as_dict, whose flat counters the stats API and /metrics report).
    slow_by_protocol: dict[str, int] = field(default_factory=dict)
    dropped_by_protocol: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"messages_in": self.messages_in, "messages_delivered": self.messages_delivered,
                "messages_dropped": self.messages_dropped, "slow_disconnects": self.slow_disconnects,
                "connections_total": self.connections_total}
