import pytest
import trio

from hub.core import Hub, NamespaceNotFound, NamespaceOptions, NotAvailable, PermissionDenied, Project, ProjectNotFound

from .wire import LineWire, connect, drain


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hub(clock=None, **kw) -> Hub:
    options = NamespaceOptions(presence=True, join_leave=False, history_size=3, history_lifetime=10)
    namespaces = {
        "chat": NamespaceOptions(join_leave=True, presence=True),
        "anon": NamespaceOptions(anonymous=True, presence=False),
    }
    return Hub([Project("p", "secret", options, namespaces)], clock=clock or Clock(), **kw)


async def test_fanout_to_1000_subscribers_encodes_once():
    hub = make_hub()
    wire = LineWire()
    sessions = [connect(hub, f"u{i}", wire) for i in range(1000)]
    for s in sessions:
        await hub.subscribe(s, "news")
    pub = await hub.publish("p", "news", {"n": 1})
    assert wire.encoded == 1
    for s in sessions:
        assert await drain(s) == [{"type": "pub", "channel": "news", "data": {"n": 1}, "offset": pub.offset}]
        assert s.received == 1
    stats = hub.stats_snapshot()
    assert stats["messages_in"] == 1 and stats["messages_delivered"] == 1000 and stats["messages_dropped"] == 0
    assert stats["sessions"] == 1000 and stats["subscriptions"] == 1000


async def test_one_encoding_per_wire_format():
    hub = make_hub()
    a, b = LineWire(), LineWire()
    for i in range(10):
        await hub.subscribe(connect(hub, f"u{i}", a if i % 2 else b), "news")
    await hub.publish("p", "news", 1)
    assert (a.encoded, b.encoded) == (1, 1)


async def test_publish_without_subscribers_counts_a_drop():
    hub = make_hub()
    await hub.publish("p", "news", 1)
    assert hub.stats.messages_in == 1 and hub.stats.messages_dropped == 1


async def test_unknown_project_and_namespace():
    hub = make_hub()
    with pytest.raises(ProjectNotFound):
        await hub.publish("nope", "news", 1)
    with pytest.raises(NamespaceNotFound):
        await hub.publish("p", "nope:x", 1)
    s = connect(hub)
    with pytest.raises(NamespaceNotFound):
        await hub.subscribe(s, "nope:x")
    assert hub.stats.messages_in == 0


async def test_history_size_order_offsets_and_since():
    hub = make_hub()
    pubs = [await hub.publish("p", "news", i) for i in range(5)]
    assert [p.offset for p in pubs] == [1, 2, 3, 4, 5]
    assert len({p.epoch for p in pubs}) == 1
    newest = await hub.history("p", "news", newest_first=True)
    assert [p.data for p in newest.publications] == [4, 3, 2]
    assert newest.offset == 5 and newest.epoch == pubs[0].epoch
    assert [p.data for p in (await hub.history("p", "news")).publications] == [2, 3, 4]
    assert [p.data for p in (await hub.history("p", "news", since=3)).publications] == [3, 4]
    assert [p.data for p in (await hub.history("p", "news", limit=1, newest_first=True)).publications] == [4]


async def test_history_lifetime_expires_but_position_stays():
    """Publications go after their lifetime; offset and epoch stay for history_meta_ttl, so an idle
    channel keeps its epoch and a caught-up client still recovers."""
    clock = Clock()
    hub = make_hub(clock)
    first = await hub.publish("p", "news", 1)
    clock.now += 9
    await hub.publish("p", "news", 2)
    clock.now += 9
    assert [p.data for p in (await hub.history("p", "news")).publications] == [1, 2]
    clock.now += 2
    gone = await hub.history("p", "news")
    assert gone.publications == [] and (gone.offset, gone.epoch) == (2, first.epoch)
    hub.expire()
    assert await hub.stream_position("p", "news") == (2, first.epoch)
    s = connect(hub, "a")
    pos = await hub.subscribe_at(s, "news", recover=(2, first.epoch))
    assert pos.recovered and (pos.offset, pos.epoch) == (2, first.epoch)
    again = await hub.publish("p", "news", 3)
    assert again.offset == 3 and again.epoch == first.epoch


async def test_history_meta_ttl_then_new_epoch():
    from hub.engine import MemoryEngine

    clock = Clock()
    hub = make_hub(clock, engine=MemoryEngine(history_meta_ttl=100))
    first = await hub.publish("p", "news", 1)
    clock.now += 50
    hub.expire()
    assert await hub.stream_position("p", "news") == (1, first.epoch)
    clock.now += 101
    hub.expire()
    again = await hub.publish("p", "news", 2)
    assert again.offset == 1 and again.epoch != first.epoch


async def test_subscribe_at_recovers_from_a_position():
    hub = make_hub()
    pubs = [await hub.publish("p", "news", i) for i in range(4)]  # history_size 3: offsets 2-4 kept
    epoch = pubs[0].epoch
    s = connect(hub, "a")
    pos = await hub.subscribe_at(s, "news", recover=(1, epoch))
    assert pos.recovered and [p.data for p in pos.publications] == [1, 2, 3] and pos.offset == 4
    t = connect(hub, "b")
    pos = await hub.subscribe_at(t, "news", recover=(1, "other"))
    assert not pos.recovered and pos.publications == [] and "news" in t.channels
    u = connect(hub, "c")
    from hub.core import Unrecoverable
    with pytest.raises(Unrecoverable):
        await hub.subscribe_at(u, "news", recover=(0, epoch), strict=True)
    assert "news" not in u.channels


async def test_history_not_available_without_history():
    hub = make_hub()
    with pytest.raises(NotAvailable):
        await hub.history("p", "chat:x")


async def test_presence_and_stats():
    hub = make_hub()
    a = connect(hub, "alice", info={"name": "A"})
    b = connect(hub, "bob")
    c = connect(hub, "alice")
    for s in (a, b, c):
        await hub.subscribe(s, "chat:room", {"seat": s.user})
    presence = await hub.presence("p", "chat:room")
    assert set(presence) == {a.id, b.id, c.id}
    assert presence[a.id] == {"user": "alice", "client": a.id, "default_info": {"name": "A"}, "channel_info": {"seat": "alice"}}
    assert await hub.presence_stats("p", "chat:room") == {"num_clients": 3, "num_users": 2}
    with pytest.raises(NotAvailable):
        await hub.presence("p", "anon:x")


async def test_join_and_leave_pushes():
    hub = make_hub()
    a, b = connect(hub, "a"), connect(hub, "b")
    await hub.subscribe(a, "chat:r")
    await hub.subscribe(b, "chat:r")
    assert await drain(a) == [{"type": "join", "channel": "chat:r", "client": a.id},
                              {"type": "join", "channel": "chat:r", "client": b.id}]
    await drain(b)
    assert hub.unsubscribe_session(b, "chat:r")
    assert await drain(a) == [{"type": "leave", "channel": "chat:r", "client": b.id}]
    assert not hub.unsubscribe_session(b, "chat:r")
    assert await drain(a) == []
    await hub.subscribe(a, "news")
    assert await drain(a) == []


async def test_forced_unsubscribe_one_channel_and_all():
    hub = make_hub()
    a1, a2, b = connect(hub, "alice"), connect(hub, "alice"), connect(hub, "bob")
    for s in (a1, a2, b):
        for ch in ("news", "sport", "chat:x"):
            await hub.subscribe(s, ch)
    for s in (a1, a2, b):
        await drain(s)
    assert await hub.unsubscribe("p", "alice", "news") == 2
    assert set(a1.channels) == {"sport", "chat:x"}
    assert {"type": "unsubscribe", "channel": "news"} in await drain(a1)
    assert await hub.unsubscribe("p", "alice") == 4
    assert a1.channels == {} and a2.channels == {}
    assert set(b.channels) == {"news", "sport", "chat:x"}
    assert await hub.channels("p") == {"news": 1, "sport": 1, "chat:x": 1}


async def test_disconnect_user():
    hub = make_hub()
    a1, a2, b = connect(hub, "alice"), connect(hub, "alice"), connect(hub, "bob")
    await hub.subscribe(a1, "news")
    assert await hub.disconnect("p", "alice", "bye") == 2
    assert a1.closed and a2.closed and not b.closed
    assert (await drain(a1))[-1] == {"type": "disconnect", "reason": "bye"}
    assert await a1.outbox.next_batch() is None
    assert set(hub.sessions) == {b.id}
    assert await hub.channels("p") == {}


async def test_slow_session_disconnected_and_others_get_everything():
    hub = make_hub(max_queue_bytes=2048)
    slow = connect(hub, "slow")
    fast = [connect(hub, f"f{i}") for i in range(3)]
    for s in (slow, *fast):
        await hub.subscribe(s, "news")
    received = {s.id: [] for s in fast}
    for i in range(200):
        await hub.publish("p", "news", "x" * 50 + str(i))
        for s in fast:
            received[s.id].extend(m["data"] for m in await drain(s) if m["type"] == "pub")
    assert slow.closed and slow.close_reason == "slow"
    for s in fast:
        assert received[s.id] == ["x" * 50 + str(i) for i in range(200)]
    stats = hub.stats
    assert slow.dropped > 0 and stats.slow_disconnects == 1
    assert stats.messages_dropped == slow.dropped
    assert stats.messages_delivered == 600 + slow.received
    assert slow.received + slow.dropped <= 200
    assert slow.id not in hub.sessions


async def test_channel_rules_on_subscribe():
    hub = make_hub()
    alice = connect(hub, "alice")
    anon = connect(hub, "")
    await hub.subscribe(alice, "room#alice,bob")
    with pytest.raises(PermissionDenied):
        await hub.subscribe(connect(hub, "carol"), "room#alice,bob")
    with pytest.raises(PermissionDenied):
        await hub.subscribe(alice, "$secret")
    await hub.subscribe(alice, "$secret", private_ok=True)
    with pytest.raises(PermissionDenied):
        await hub.subscribe(anon, "news")
    await hub.subscribe(anon, "anon:x")


def test_connection_lifetime_expiry():
    clock = Clock()
    hub = make_hub(clock)
    s = connect(hub, "a", expires_at=clock.now + 5)
    hub.expire()
    assert not s.closed
    clock.now += 6
    hub.expire()
    assert s.closed and s.close_reason == "connection expired"


async def test_event_feed():
    hub = make_hub()
    events = []
    hub.events.add(lambda e: events.append((e.type, e.data.get("channel"))))
    hub.events.add(lambda e: 1 / 0)
    s = connect(hub, "a")
    await hub.subscribe(s, "news")
    await hub.publish("p", "news", 1)
    hub.release(s)
    assert [t for t, _ in events] == ["connect", "join", "publication", "leave", "disconnect"]


async def test_housekeeping_task_expires():
    clock = Clock()
    hub = make_hub(clock)
    s = connect(hub, "a", expires_at=clock.now + 1)
    clock.now += 2
    with trio.move_on_after(0.2):
        await hub.housekeeping(0.01)
    assert s.closed
