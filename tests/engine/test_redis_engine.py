"""The Redis engine in process: two hubs (two `serve` calls) sharing one throwaway Redis."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from bench.redis_server import REDIS_SERVER
from hub.config import parse_settings
from hub.core import NotAvailable, Unavailable
from hub.runtime import RunningHub, serve
from tests.conftest import hub_config, with_tmp_files
from tests.core.wire import LineWire

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (make test installs it)")
P = "development"


async def two_hubs(nursery: trio.Nursery, tmp_path: Path, url: str) -> tuple[RunningHub, RunningHub]:
    out = []
    for name in ("a", "b"):
        data = hub_config(f'[engine]\ntype = "redis"\nurl = "{url}"\nheartbeat = 0.2\nlinger = 0.1\ntimeout = 0.5\n'
                          'connect_timeout = 0.5\nping_interval = 0.2\n[chat]\nenabled = false\n[jsonrpc]\nenabled = false\n')
        (tmp_path / name).mkdir()
        out.append(await nursery.start(serve, parse_settings(with_tmp_files(data, tmp_path / name), "<test>")))
    return out[0], out[1]


def pending(session) -> bytes:
    return b"".join(session.outbox._frames)


async def wait_for(predicate, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_events_joins_channels_and_stats_across_nodes(nursery, tmp_path, redis):
    a, b = await two_hubs(nursery, tmp_path, redis.url)
    events = []
    b.hub.events.add(lambda e: events.append(e) if e.type == "publication" else None)  # node B watches everything
    await trio.sleep(0.1)
    pub = await a.hub.publish(P, "public:nobody-on-b", {"x": 1})
    await wait_for(lambda: events)
    assert events[0].data["publication"].data == {"x": 1} and events[0].data["publication"].offset == pub.offset

    wire = LineWire()
    sa = a.hub.connect(P, "alice", "test", wire)
    sb = b.hub.connect(P, "bob", "test", wire)
    await a.hub.subscribe(sa, "room")  # the project's default options: join_leave and presence on
    await b.hub.subscribe(sb, "room")
    await wait_for(lambda: b'"join", "channel": "room", "client": "%s"' % sb.id.encode() in pending(sa))
    assert set(await a.hub.presence(P, "room")) == {sa.id, sb.id}
    assert await b.hub.presence_stats(P, "room") == {"num_clients": 2, "num_users": 2}
    await wait_for(lambda: a.hub.engine.nodes() and b.hub.engine.nodes())
    await wait_for(lambda: a.hub.cluster_stats()["sessions"] == 2)
    assert a.hub.cluster_stats()["nodes"] == 2
    assert len(a.hub.nodes()) == 2
    chans = await a.hub.channels(P)
    assert chans["room"] in (1, 2)  # the other node's count arrives with its next heartbeat
    await wait_for(lambda: a.hub.engine.nodes().get(b.hub.node_id, {}).get("channels", {}).get(P, {}).get("room") == 1)
    assert (await a.hub.channels(P))["room"] == 2
    b.hub.release(sb)
    await wait_for(lambda: b'"leave", "channel": "room", "client": "%s"' % sb.id.encode() in pending(sa))
    await wait_for(lambda: len(b.hub.engine._presence) == 0)
    assert set(await a.hub.presence(P, "room")) == {sa.id}
    with pytest.raises(NotAvailable):
        await a.hub.presence(P, "nohist:x")  # presence off in that namespace


async def test_history_remove_and_positions_are_shared(nursery, tmp_path, redis):
    a, b = await two_hubs(nursery, tmp_path, redis.url)
    pubs = [await a.hub.publish(P, "public:h", i) for i in range(3)]
    assert await b.hub.stream_position(P, "public:h") == (3, pubs[0].epoch)
    assert [p.data for p in (await b.hub.history(P, "public:h", since=1)).publications] == [1, 2]
    await b.hub.history_remove(P, "public:h")
    gone = await a.hub.history(P, "public:h")
    assert gone.publications == [] and (gone.offset, gone.epoch) == (3, pubs[0].epoch)
    assert (await a.hub.publish(P, "public:h", 3)).offset == 4


async def test_lingering_channel_is_unsubscribed_and_redis_down_fails_fast(nursery, tmp_path, redis):
    a, b = await two_hubs(nursery, tmp_path, redis.url)
    s = a.hub.connect(P, "alice", "test", LineWire())
    await a.hub.subscribe(s, "public:l")
    assert (P, "public:l") in a.hub.engine._subs
    a.hub.unsubscribe_session(s, "public:l")
    await wait_for(lambda: (P, "public:l") not in a.hub.engine._subs)
    # the UNSUBSCRIBE goes out on the PUB/SUB connection after the local state is gone: wait for Redis to see it
    await wait_for(lambda: redis.cli("PUBSUB", "NUMSUB", "hub.ch.{development:public:l}").endswith(":0\r\n"))
    redis.kill()
    with trio.fail_after(2):
        with pytest.raises(Unavailable):
            await b.hub.publish(P, "public:l", 1)
        with pytest.raises(Unavailable):
            await a.hub.subscribe(s, "public:other")
    assert not s.closed  # the client stays connected


async def test_housekeeping_looks_only_at_lingering_channels_in_slices(nursery, tmp_path, redis):
    """Unsubscribing is decided from the touches past the linger, a budget at a time: channels still subscribed
    here, or subscribed again within the linger, stay; the others go; nothing is kept once they are decided."""
    a, _ = await two_hubs(nursery, tmp_path, redis.url)
    eng = a.hub.engine
    s = a.hub.connect(P, "alice", "test", LineWire())
    for i in range(200):
        await a.hub.subscribe(s, f"public:c{i}")
    a.hub.unsubscribe_session(s, "public:c1")
    await a.hub.subscribe(s, "public:c1")  # back within the linger
    for i in range(2, 200):
        a.hub.unsubscribe_session(s, f"public:c{i}")
    later = time.time() + 10
    slices = 1
    while eng.expire_some(later, 0.0):  # a zero budget: one look at the clock's worth (64 touches) per slice
        slices += 1
    assert slices > 3
    assert {c for (_, c) in eng._subs if c.startswith("public:c")} == {"public:c0", "public:c1"}
    assert not eng._touches


async def test_legacy_sessions_are_disconnected_on_insufficient_state(nursery, tmp_path, redis):
    a, b = await two_hubs(nursery, tmp_path, redis.url)
    s = a.hub.connect(P, "alice", "test", LineWire())  # a wire with no insufficient_state notice
    await a.hub.subscribe(s, "public:i")
    await b.hub.publish(P, "public:i", 1)
    redis.restart(empty=True)
    await wait_for(lambda: s.closed, timeout=10)
    assert s.close_reason == "insufficient state" and s.reconnect


async def test_a_gap_is_filled_from_the_stream_in_order(nursery, tmp_path, redis):
    a, b = await two_hubs(nursery, tmp_path, redis.url)
    s = a.hub.connect(P, "alice", "test", LineWire())
    pos = await a.hub.subscribe_at(s, "public:g")
    await b.hub.publish(P, "public:g", 1)
    await wait_for(lambda: b'"offset": 1' in pending(s))
    # two publications stored in the stream whose PUB/SUB messages never reach node A (sent elsewhere)
    eng = b.hub.engine
    name, meta, stream = eng._keys(P, "public:g")
    body = b"\x95\xa1u\x02\xc0\xc0\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
    await eng.cmd.execute("EVALSHA", eng.shas["publish"], 3, meta, stream, b"elsewhere", 100, 60000, 600, "x", body, body)
    await b.hub.publish(P, "public:g", 4)
    await wait_for(lambda: b'"offset": 4' in pending(s))
    offsets = [json.loads(line)["offset"] for line in pending(s).splitlines() if b'"pub"' in line]
    assert offsets == [1, 2, 3, 4] and pos.offset == 0


async def test_mqtt_wildcards_and_exact_payloads_across_nodes(nursery, tmp_path, redis):
    """An MQTT wildcard subscriber on node A gets what an MQTT client publishes on node B, byte for byte
    (the topic filter makes node A receive every channel; Publication.meta crosses Redis whole)."""
    pytest.importorskip("protocols.mqtt")
    from tests.protocols.mqtt.clients import Paho, mqtt_port

    out = []
    for name in ("a", "b"):
        data = hub_config(f'[engine]\ntype = "redis"\nurl = "{redis.url}"\n[mqtt]\nport = 0\nallow_anonymous = true\n'
                          '[chat]\nenabled = false\n[jsonrpc]\nenabled = false\n')
        (tmp_path / name).mkdir()
        out.append(await nursery.start(serve, parse_settings(with_tmp_files(data, tmp_path / name), "<test>")))
    a, b = out
    sub, pub = Paho(mqtt_port(a), "sub-a", version=5), Paho(mqtt_port(b), "pub-b", version=5)
    try:
        await sub.connect()
        await pub.connect()
        await sub.subscribe("sensors/+/temp", 1)
        await wait_for(lambda: a.hub.engine._watch_all)
        await trio.sleep(0.1)  # the pattern subscription reaches Redis
        await pub.publish("sensors/garage/temp", b"\x00\xff21.5", 1)
        msg = await sub.message()
        assert (msg.topic, msg.payload, msg.qos) == ("sensors/garage/temp", b"\x00\xff21.5", 1)
        await pub.publish("sensors/garage/humidity", b"55", 1)
        await sub.nothing()
    finally:
        sub.stop()
        pub.stop()


async def test_map_updates_share_one_stream_and_state(nursery, tmp_path, redis):
    """Map writes on either node: one stream of offsets, one set of entries; a removal of a key that is not there
    takes no offset and reaches nobody (Centrifugo: suppressed)."""
    import dataclasses

    from hub.core.options import NamespaceOptions

    a, b = await two_hubs(nursery, tmp_path, redis.url)
    for running in (a, b):
        project = running.hub.projects[P]
        maps = {**project.namespaces, "m": NamespaceOptions(map_mode="persistent", history_size=10, history_lifetime=60),
                "e": NamespaceOptions(map_mode="ephemeral")}
        running.hub.set_projects([dataclasses.replace(project, namespaces=maps)])
    assert await a.hub.map_publish(P, "m:x", "gone", None, removed=True) is None
    first = await a.hub.map_publish(P, "m:x", "k1", {"v": 1})
    second = await b.hub.map_publish(P, "m:x", "k2", {"v": 2}, tags={"t": "1"})
    third = await a.hub.map_publish(P, "m:x", "k1", None, removed=True)
    assert (first.offset, second.offset, third.offset) == (1, 2, 3) and first.epoch == second.epoch == third.epoch
    snap = await b.hub.map_snapshot(P, "m:x")
    assert (snap.offset, snap.epoch) == (3, first.epoch)
    assert [(p.key, p.data, p.offset, p.tags) for p in snap.entries] == [("k2", {"v": 2}, 2, {"t": "1"})]
    history = await a.hub.history(P, "m:x", limit=None, since=0)
    assert [(p.key, p.removed, p.offset) for p in history.publications] == [("k1", False, 1), ("k2", False, 2), ("k1", True, 3)]
    eph = await b.hub.map_publish(P, "e:x", "k", [1, 2])
    assert (eph.offset, eph.epoch) == (0, "")  # no stream
    snap = await a.hub.map_snapshot(P, "e:x")
    assert (snap.offset, snap.epoch, [(p.key, p.data, p.offset) for p in snap.entries]) == (0, "", [("k", [1, 2], 0)])
