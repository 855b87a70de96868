"""The Overview's data from a core without sockets: per-protocol rows, slow disconnects kept after the session is gone."""

from __future__ import annotations

from types import SimpleNamespace

from hub.core import Hub
from hub.core.options import NamespaceOptions, Project
from hub.metrics import RequestMetrics
from protocols.dashboard.monitor import Monitor
from tests.core.wire import connect


async def test_breakdown_by_protocol_counts_slow_disconnects_of_closed_sessions():
    hub = Hub([Project("p", "s", NamespaceOptions())], max_queue_bytes=2048)
    runtime = SimpleNamespace(hub=hub, metrics=RequestMetrics(), contexts={"realtime": None}, served={})
    monitor = Monitor(runtime, lambda: 1.0)
    slow = connect(hub, "slow")
    slow.protocol = "mqtt"
    fast = connect(hub, "fast")
    for session in (slow, fast):
        await hub.subscribe(session, "news")
    for i in range(100):
        await hub.publish("p", "news", "x" * 50 + str(i))
        fast.outbox.take()  # the fast one reads everything
    assert slow.closed and slow.id not in hub.sessions
    monitor.sample()
    rows = monitor.overview()["total"]["protocols"]
    assert rows["mqtt"] == {"sessions": 0, "subscriptions": 0, "delivered": 0, "dropped": slow.dropped, "slow_disconnects": 1}
    assert rows[fast.protocol]["sessions"] == 1 and rows[fast.protocol]["delivered"] == 100
    assert rows[fast.protocol]["slow_disconnects"] == 0
    assert hub.stats_snapshot()["slow_disconnects"] == 1 and "slow_by_protocol" not in hub.stats_snapshot()
