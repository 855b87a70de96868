"""`GET /metrics`: the core's counters and the HTTP servers' request metrics, read live at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hub.core import Hub
from hub.loginlimit import LoginLimiter
from hub.metrics import BUCKETS, RequestMetrics


class HubCollector(Collector):
    """Yields metric families from the live core and request metrics; nothing is counted twice."""

    def __init__(self, hub: Hub, requests: RequestMetrics, logins: LoginLimiter | None = None) -> None:
        self.hub, self.requests, self.logins = hub, requests, logins

    def collect(self) -> Iterator[Metric]:
        stats = self.hub.stats_snapshot()
        for name, doc in (("messages_in", "Publications accepted."),
                          ("messages_delivered", "Publication copies queued to subscribers."),
                          ("messages_dropped", "Publications with no subscriber plus copies lost to slow clients."),
                          ("slow_disconnects", "Sessions closed because their outgoing queue overflowed."),
                          ("connections", "Sessions opened since start.")):
            key = "connections_total" if name == "connections" else name
            yield CounterMetricFamily(f"hub_{name}", doc, value=stats[key])
        sessions = GaugeMetricFamily("hub_sessions", "Connected sessions by protocol.", labels=["protocol"])
        for protocol, n in sorted(Counter(s.protocol for s in self.hub.sessions.values()).items()):
            sessions.add_metric([protocol], n)
        yield sessions
        yield GaugeMetricFamily("hub_subscriptions", "Channel subscriptions of all sessions.", value=stats["subscriptions"])
        yield GaugeMetricFamily("hub_channels", "Channels with at least one subscriber.", value=stats["channels"])
        requests = CounterMetricFamily("hub_http_requests", "HTTP requests by adapter and status class.",
                                       labels=["adapter", "status"])
        for (adapter, status), n in sorted(self.requests.requests.items()):
            requests.add_metric([adapter, status], n)
        yield requests
        disconnects = CounterMetricFamily("hub_disconnects", "Websocket connections ended, by adapter and reason "
                                          "(slow, write timeout, protocol error, client closed, ...).", labels=["adapter", "reason"])
        for (adapter, reason), n in sorted(self.requests.disconnects.items()):
            disconnects.add_metric([adapter, reason], n)
        yield disconnects
        refused = CounterMetricFamily("hub_refused", "Connections, handshakes, requests and commands refused by a limit, "
                                      "by adapter and limit (origin, connections per ip, connections per user, http rate, "
                                      "command rate, command rate disconnect, tls handshake).", labels=["adapter", "limit"])
        for (adapter, limit), n in sorted(self.requests.refusals.items()):
            refused.add_metric([adapter, limit], n)
        yield refused
        latency = HistogramMetricFamily("hub_http_request_duration_seconds", "HTTP request handling time by adapter.",
                                        labels=["adapter"])
        for adapter, hist in sorted(self.requests.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), hist.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([adapter], buckets, hist.total)
        yield latency
        if self.logins is not None:
            yield from login_metrics(self.logins)


def login_metrics(logins: LoginLimiter) -> Iterator[Metric]:
    """The shared login limiter's counters: failures, refusals while blocked, blocks started, blocked now."""
    failures = CounterMetricFamily("hub_login_failures", "Failed logins (wrong password or unknown user), by adapter.",
                                   labels=["adapter"])
    for adapter, n in sorted(logins.failures.items()):
        failures.add_metric([adapter], n)
    yield failures
    refused = CounterMetricFamily("hub_login_refused", "Logins refused because the user or the client address was "
                                  "blocked, by adapter and reason (user, ip).", labels=["adapter", "reason"])
    for (adapter, kind), n in sorted(logins.refused.items()):
        refused.add_metric([adapter, kind], n)
    yield refused
    blocks = CounterMetricFamily("hub_login_blocks", "Blocks started after too many failed logins, by reason (user, ip).",
                                 labels=["reason"])
    for kind, n in sorted(logins.blocks.items()):
        blocks.add_metric([kind], n)
    yield blocks
    blocked = GaugeMetricFamily("hub_login_blocked", "Users and client addresses blocked now, by reason.", labels=["reason"])
    for kind, n in sorted(logins.blocked_now().items()):
        blocked.add_metric([kind], n)
    yield blocked


def registry_for(hub: Hub, requests: RequestMetrics, logins: LoginLimiter | None = None) -> CollectorRegistry:
    """A registry of its own (not the process-global one) holding only the hub's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub, requests, logins))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format (version 0.0.4)."""
    return generate_latest(registry)
