"""Topic-filter subscriptions and retained publications in the core, and the hook in Hub.publish."""

from __future__ import annotations

import pytest

from hub.core import Hub, NamespaceOptions, Outbox, Project
from hub.core.patterns import FilterError, TopicFilters, matches, validate_filter
from hub.core.retained import RetainedStore

from .wire import LineWire


@pytest.mark.parametrize(("topic_filter", "channel", "expected"), [
    ("sensors/+/temp", "sensors/garage/temp", True),
    ("sensors/+/temp", "sensors/garage/hum", False),
    ("sensors/+/temp", "sensors/a/b/temp", False),
    ("sensors/#", "sensors", True),
    ("sensors/#", "sensors/a/b", True),
    ("#", "anything/at/all", True),
    ("#", "$private", False),
    ("+/x", "$private/x", False),
    ("$private/#", "$private/x", True),
    ("+", "a", True),
    ("+", "a/b", False),
    ("+/+", "/x", True),
    ("a//b", "a//b", True),
    ("#", "news#alice", False),   # user-limited channels are not topics
    ("public:sensors/+", "public:sensors/x", True),
    ("+/x", "public:y/x", True),
])
def test_matches(topic_filter: str, channel: str, expected: bool) -> None:
    assert matches(topic_filter, channel) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a/b", "a/\x00"])
def test_bad_filters(bad: str) -> None:
    with pytest.raises(FilterError):
        validate_filter(bad)


def _hub() -> Hub:
    opts = NamespaceOptions(publish=True, anonymous=True, history_size=10, history_lifetime=60)
    return Hub([Project("p", "s", options=opts, namespaces={"public": opts})])


def test_index_add_remove_match() -> None:
    hub = _hub()
    a, b = hub.connect("p", "a", "t", LineWire()), hub.connect("p", "b", "t", LineWire())
    idx = TopicFilters()
    assert not idx
    assert idx.add(a, "s/+/t") and idx.add(b, "s/#") and idx.add(a, "s/#")
    assert not idx.add(a, "s/#")
    assert len(idx) == 3
    assert set(idx.match("p", "s/1/t") or {}) == {a.id, b.id}
    assert set(idx.match("p", "s") or {}) == {a.id, b.id}
    assert idx.match("p", "other") is None
    assert idx.match("q", "s/1/t") is None
    assert set(idx.match("p", "s/1/t", exclude={a.id: a}) or {}) == {b.id}
    assert idx.remove(a, "s/#") and not idx.remove(a, "s/#")
    assert idx.discard_session(a) == 1
    assert set(idx.match("p", "s/1/t") or {}) == {b.id}
    idx.discard_session(b)
    assert not idx and idx._roots == {}


def test_shared_group_takes_turns() -> None:
    hub = _hub()
    members = [hub.connect("p", f"u{i}", "t", LineWire()) for i in range(3)]
    idx = TopicFilters()
    for m in members:
        idx.add(m, "jobs/+", group="workers")
    got = [next(iter(idx.match("p", "jobs/1") or {})) for _ in range(6)]
    assert sorted(got) == sorted([m.id for m in members] * 2)


async def test_publish_reaches_filter_subscribers_once_and_counts() -> None:
    hub = _hub()
    wire = LineWire()
    exact = hub.connect("p", "e", "t", wire, outbox=Outbox(1 << 20))
    both = hub.connect("p", "b", "t", wire, outbox=Outbox(1 << 20))
    pattern = hub.connect("p", "f", "t", wire, outbox=Outbox(1 << 20))
    await hub.subscribe(exact, "s/1/t")
    await hub.subscribe(both, "s/1/t")
    hub.filters.add(both, "s/+/t")
    hub.filters.add(pattern, "s/#")
    await hub.publish("p", "s/1/t", {"v": 1})
    assert [s.received for s in (exact, both, pattern)] == [1, 1, 1]
    assert hub.stats.messages_delivered == 3 and hub.stats.messages_dropped == 0
    await hub.publish("p", "s/2/t", {"v": 2})
    assert [s.received for s in (exact, both, pattern)] == [1, 2, 2]
    await hub.publish("p", "nobody", 1)
    assert hub.stats.messages_dropped == 1
    assert hub.stats_snapshot()["subscriptions"] == 4
    hub.release(pattern)
    hub.release(both)
    assert not hub.filters


async def test_publish_meta_travels_with_the_publication() -> None:
    hub = _hub()
    pub = await hub.publish("p", "x", 1, meta={"k": "v"})
    assert pub.meta == {"k": "v"}
    assert (await hub.history("p", "x")).publications[0].meta == {"k": "v"}


async def test_authorized_subscription_skips_the_anonymous_rule() -> None:
    closed = NamespaceOptions(anonymous=False)
    hub = Hub([Project("p", "s", options=closed)])
    anon = hub.connect("p", "", "t", LineWire())
    with pytest.raises(Exception, match="permission denied"):
        await hub.subscribe(anon, "room")
    await hub.subscribe(anon, "room", authorized=True)
    with pytest.raises(Exception, match="permission denied"):
        await hub.subscribe(anon, "$secret", authorized=True)


async def test_retained_store() -> None:
    hub = _hub()
    store = RetainedStore(limit=2)
    p1 = await hub.publish("p", "a/1", 1)
    p2 = await hub.publish("p", "a/2", 2)
    p3 = await hub.publish("p", "b", 3)
    assert store.keep(p1) and store.keep(p2) and not store.keep(p3)
    assert store.keep(await hub.publish("p", "a/1", 4))
    assert [p.data for p in store.matching("p", "a/+")] == [4, 2]
    assert [p.data for p in store.matching("p", "a/2")] == [2]
    assert store.get("p", "a/2") is p2
    assert store.clear("p", "a/2") and not store.clear("p", "a/2")
    assert len(store) == 1
