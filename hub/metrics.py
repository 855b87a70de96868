"""Per-adapter request counts, latency histograms and disconnects by reason, filled by the HTTP server."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


class RequestMetrics:
    """Counts keyed by (adapter, status class), one latency histogram per adapter, and websocket
    disconnects keyed by (adapter, reason): slow, write timeout, protocol error, client closed, ..."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.disconnects: dict[tuple[str, str], int] = {}
        # Refusals by a limit, keyed by (adapter, limit): origin, connections per ip, connections per user,
        # http rate, command rate, command rate disconnect, tls handshake.
        self.refusals: dict[tuple[str, str], int] = {}

    def refused(self, adapter: str, limit: str) -> None:
        key = (adapter or "http", limit)
        self.refusals[key] = self.refusals.get(key, 0) + 1

    def disconnected(self, adapter: str, reason: str) -> None:
        key = (adapter or "http", reason)
        self.disconnects[key] = self.disconnects.get(key, 0) + 1

    def disconnects_by_reason(self) -> dict[str, int]:
        """Disconnects of every adapter, summed per reason."""
        out: dict[str, int] = {}
        for (_, reason), n in self.disconnects.items():
            out[reason] = out.get(reason, 0) + n
        return out

    def observe(self, adapter: str, status: int, seconds: float) -> None:
        key = (adapter, f"{status // 100}xx")
        self.requests[key] = self.requests.get(key, 0) + 1
        hist = self.latency.get(adapter)
        if hist is None:
            hist = self.latency[adapter] = Histogram()
        hist.observe(seconds)
