"""Several `hub run` processes on one Redis (started by the test on a free port): one channel space."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from bench.redis_server import REDIS_SERVER, RedisServer

from .cluster import Node, SdkConn, start_node

pytestmark = [
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (make test installs it)"),
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]


@pytest.fixture
def nodes(tmp_path: Path):
    started: list[Node] = []

    def start(redis_url: str, name: str, *sets: str, **kw) -> Node:
        node = start_node(tmp_path, redis_url, name, *sets, **kw)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


async def publish_many(node: Node, channel: str, values: range, *, retry_for: float = 0.0) -> list[dict]:
    """Publish each value through `node`'s API (retrying an error for `retry_for` s, as a backend would)."""
    replies = []
    deadline = time.monotonic() + retry_for
    for i in values:
        while True:
            reply = await node.api("publish", {"channel": channel, "data": {"n": i}})
            if "result" in reply or time.monotonic() > deadline:
                break
            await trio.sleep(0.05)
        assert "result" in reply, reply
        replies.append(reply)
    return replies


async def test_cross_node_delivery_presence_history_and_channels(redis, nodes):
    a, b, c = (nodes(redis.url, name) for name in ("a", "b", "c"))
    alice = await SdkConn.open(a.ws, "alice")
    bob = await SdkConn.open(c.ws, "bob")
    for conn in (alice, bob):
        reply = await conn.call("subscribe", {"channel": "public:feed"})
        assert reply["result"]["offset"] == 0 and reply["result"]["epoch"]
    replies = await publish_many(b, "public:feed", range(200))
    assert [r["result"]["offset"] for r in replies] == list(range(1, 201))
    epoch = replies[0]["result"]["epoch"]
    for conn in (alice, bob):
        await conn.until(lambda conn=conn: len(conn.pubs("public:feed")) >= 200)
    await trio.sleep(0.2)  # nothing more arrives: exactly once
    for conn in (alice, bob):
        pubs = conn.pubs("public:feed")
        assert [p["data"]["n"] for p in pubs] == list(range(200))
        assert [p["offset"] for p in pubs] == list(range(1, 201))

    # presence and history are global: every node answers the same
    for node in (a, b, c):
        presence = (await node.api("presence", {"channel": "public:feed"}))["result"]["presence"]
        assert {v["user"] for v in presence.values()} == {"alice", "bob"} and set(presence) == {alice.client, bob.client}
        history = (await node.api("history", {"channel": "public:feed", "limit": 3, "reverse": True}))["result"]
        assert history["epoch"] == epoch and history["offset"] == 200
        assert [p["offset"] for p in history["publications"]] == [200, 199, 198]
    # channels: other nodes' subscribers come with their heartbeats
    deadline = time.monotonic() + 5
    while True:
        found = (await b.api("channels", {}))["result"]["channels"]
        if found.get("public:feed", {}).get("num_clients") == 2 or time.monotonic() > deadline:
            break
        await trio.sleep(0.1)
    assert found["public:feed"]["num_clients"] == 2
    # a client leaving is gone from presence everywhere
    await bob.aclose()
    deadline = time.monotonic() + 5
    while len((await a.api("presence", {"channel": "public:feed"}))["result"]["presence"]) != 1:
        assert time.monotonic() < deadline
        await trio.sleep(0.05)
    await alice.aclose()


async def test_recovery_after_reconnecting_to_another_node(redis, nodes):
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    conn = await SdkConn.open(a.ws)
    first = (await conn.call("subscribe", {"channel": "public:r"}))["result"]
    await publish_many(b, "public:r", range(5))
    await conn.until(lambda: len(conn.pubs("public:r")) == 5)
    last = conn.pubs("public:r")[-1]["offset"]
    await conn.aclose()
    await publish_many(a, "public:r", range(5, 12))  # missed while away
    other = await SdkConn.open(b.ws)
    reply = (await other.call("subscribe", {"channel": "public:r", "recover": True, "offset": last,
                                            "epoch": first["epoch"]}))["result"]
    assert reply["recovered"] and reply["epoch"] == first["epoch"] and reply["offset"] == 12
    assert [p["data"]["n"] for p in reply["publications"]] == list(range(5, 12))
    # and from an epoch that is not the stream's: recovered false, positioned at the top
    third = await SdkConn.open(a.ws)
    reply = (await third.call("subscribe", {"channel": "public:r", "recover": True, "offset": 3, "epoch": "nope"}))["result"]
    assert not reply.get("recovered") and reply["offset"] == 12
    await publish_many(b, "public:r", range(12, 14))
    for c in (other, third):
        await c.until(lambda c=c: len(c.pubs("public:r")) == 2)
        assert [p["offset"] for p in c.pubs("public:r")] == [13, 14]


async def test_user_operations_act_on_every_node(redis, nodes):
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    on_a, on_b, carol = await SdkConn.open(a.ws, "alice"), await SdkConn.open(b.ws, "alice"), await SdkConn.open(b.ws, "carol")
    for conn in (on_a, on_b):
        await conn.call("subscribe", {"channel": "news"})
    # server-side subscribe and unsubscribe of a user, sent to node B, reach her session on node A
    assert "result" in await b.api("subscribe", {"user": "alice", "channel": "public:extra"})
    await on_a.until(lambda: any(p.get("channel") == "public:extra" and "subscribe" in p for p in on_a.pushes))
    assert "result" in await b.api("unsubscribe", {"user": "alice", "channel": "news"})
    await on_a.until(lambda: any(p.get("channel") == "news" and "unsubscribe" in p for p in on_a.pushes))
    # per-client disconnect with a whitelist: only the named client goes
    assert "result" in await b.api("disconnect", {"user": "alice", "client": on_a.client,
                                                  "disconnect": {"code": 4000, "reason": "moved"}})
    with pytest.raises(EOFError):
        await on_a.until(lambda: False)
    # disconnect of a user on every node, except the whitelisted client
    carol_b = await SdkConn.open(a.ws, "carol")
    assert "result" in await a.api("disconnect", {"user": "carol", "whitelist": [carol_b.client]})
    with pytest.raises(EOFError):
        await carol.until(lambda: False)
    assert (await carol_b.call("presence_stats", {"channel": "public:extra"}))  # still connected
    await b.api("disconnect", {"user": "alice"})
    with pytest.raises(EOFError):
        await on_b.until(lambda: False)


async def test_pubsub_connection_killed_mid_stream_loses_nothing(redis, nodes):
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    conn = await SdkConn.open(a.ws)
    await conn.call("subscribe", {"channel": "public:s"})
    total = 900

    async def publisher() -> None:
        for i in range(total):
            reply = await b.api("publish", {"channel": "public:s", "data": {"n": i}})
            assert "result" in reply, reply

    async with trio.open_nursery() as nursery:
        nursery.start_soon(publisher)
        for k in range(1, 4):
            await conn.until(lambda k=k: len(conn.pubs("public:s")) > 200 * k)
            assert int(redis.cli("CLIENT", "KILL", "TYPE", "pubsub").strip(":\r\n")) >= 2
    await conn.until(lambda: len(conn.pubs("public:s")) >= total, timeout=20)
    await trio.sleep(0.3)
    pubs = conn.pubs("public:s")
    assert [p["offset"] for p in pubs] == list(range(1, total + 1))
    assert "restored" in a.log.read_text()


async def test_redis_restarted_empty_clients_are_told(redis, nodes):
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    conn = await SdkConn.open(a.ws)
    first = (await conn.call("subscribe", {"channel": "public:e"}))["result"]
    await publish_many(b, "public:e", range(5))
    await conn.until(lambda: len(conn.pubs("public:e")) == 5)
    redis.kill()
    started = time.monotonic()
    reply = await b.api("publish", {"channel": "public:e", "data": {"n": 99}})
    assert reply["error"]["code"] == 100 and time.monotonic() - started < 2  # fails fast, no hang
    assert (await conn.call("presence_stats", {"channel": "public:e"}))["error"]["code"] == 100
    redis.restart(empty=True)
    # the node resyncs, finds a new stream: the client gets an insufficient-state unsubscribe (2500)
    await conn.until(lambda: any(p.get("unsubscribe", {}).get("code") == 2500 for p in conn.pushes), timeout=15)
    # the SDK then resubscribes with recover: not recovered, new epoch, never a silent gap
    reply = (await conn.call("subscribe", {"channel": "public:e", "recover": True, "offset": 5,
                                           "epoch": first["epoch"]}))["result"]
    assert not reply.get("recovered") and reply["epoch"] != first["epoch"]
    await publish_many(b, "public:e", range(100, 103), retry_for=5)
    await conn.until(lambda: len(conn.pubs("public:e")) == 8)
    assert [p["data"]["n"] for p in conn.pubs("public:e")[5:]] == [100, 101, 102]


async def test_redis_with_aof_always_loses_no_acknowledged_publication(tmp_path, nodes):
    redis = RedisServer(tmp_path / "aof", aof=True)
    redis.start()
    try:
        a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
        conn = await SdkConn.open(a.ws)
        first = (await conn.call("subscribe", {"channel": "public:aof"}))["result"]
        acked: list[int] = []
        errors = 0

        async def publisher() -> None:
            nonlocal errors
            i = 0
            deadline = time.monotonic() + 15
            while len(acked) < 400 and time.monotonic() < deadline:
                reply = await b.api("publish", {"channel": "public:aof", "data": {"n": i}})
                if "result" in reply:
                    acked.append(i)
                else:
                    errors += 1
                    await trio.sleep(0.01)
                i += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publisher)
            await conn.until(lambda: len(conn.pubs("public:aof")) > 100)
            redis.kill()
            await trio.sleep(0.3)
            redis.start()
        try:
            await conn.until(lambda: {p["data"]["n"] for p in conn.pubs("public:aof")} >= set(acked), timeout=15)
        except trio.TooSlowError:
            got = {p["data"]["n"] for p in conn.pubs("public:aof")}
            raise AssertionError(f"missing {sorted(set(acked) - got)[:20]} of {len(acked)}; pushes {conn.pushes[-3:]}\n"
                                 f"{a.log.read_text()[-3000:]}") from None
        pubs = conn.pubs("public:aof")
        offsets = [p["offset"] for p in pubs]
        assert offsets == list(range(1, len(offsets) + 1))  # in order, no gap, no duplicate
        assert not any(p.get("unsubscribe") for p in conn.pushes)  # same epoch: nothing to tell
        history = (await a.api("history", {"channel": "public:aof", "limit": 1}))["result"]
        assert history["epoch"] == first["epoch"]
        assert errors > 0  # publishes failed (fast) while Redis was down, and were not acknowledged
    finally:
        redis.kill()


async def test_redis_api_bad_message_then_good_ones(redis, nodes, tmp_path):
    sets = ("command_api.redis_api=true", "command_api.redis_api_shards=2", "command_api.redis_api_dead_max=3")
    a, b = nodes(redis.url, "a", *sets), nodes(redis.url, "b", *sets)
    conn = await SdkConn.open(a.ws)
    await conn.call("subscribe", {"channel": "public:api"})
    good = '{"project": "development", "data": {"method": "publish", "params": {"channel": "public:api", "data": {"n": 1}}}}'
    bare = '[{"method": "publish", "params": {"channel": "public:api", "data": {"n": 2}}}]'
    shard = '{"project": "development", "data": [{"method": "publish", "params": {"channel": "public:api", "data": {"n": 3}}}]}'
    bad = ["{not json", '{"project": "nope", "data": {}}', '{"project": "development"}', "42",
           '{"project": "development", "data": {"method": "publish", "params": {"channel": "nope:x", "data": 1}}}']
    for raw in bad[:2]:
        redis.cli("RPUSH", "centrifuge.api", raw)
    redis.cli("RPUSH", "centrifuge.api", good)
    for raw in bad[2:]:
        redis.cli("RPUSH", "centrifuge.api", raw)
    redis.cli("RPUSH", "centrifuge.api", bare)
    redis.cli("RPUSH", "centrifuge.api.1", shard)
    await conn.until(lambda: len(conn.pubs("public:api")) == 3)
    assert sorted(p["data"]["n"] for p in conn.pubs("public:api")) == [1, 2, 3]
    # Two nodes consume the list at once, so the order the five bad messages are dead-lettered in is theirs:
    # wait for all five to be logged and the dead list back at its cap of 3 (each RPUSH is followed by an LTRIM).
    deadline = time.monotonic() + 5
    while True:
        logged = (a.log.read_text() + b.log.read_text()).count("Redis API: invalid message")
        if logged >= 5 and ":3" in redis.cli("LLEN", "centrifuge.api.dead"):
            break
        assert time.monotonic() < deadline, (logged, redis.cli("LRANGE", "centrifuge.api.dead", "0", "-1"))
        await trio.sleep(0.05)
    assert logged == 5
    dead = redis.cli("LRANGE", "centrifuge.api.dead", "0", "-1")
    assert sum(raw in dead for raw in bad) >= 3
    # and the consumers still run
    redis.cli("RPUSH", "centrifuge.api", good.replace('"n": 1', '"n": 4'))
    await conn.until(lambda: len(conn.pubs("public:api")) == 4)


async def test_real_sdk_told_of_lost_state_resubscribes_and_learns_not_recovered(redis, nodes):
    """centrifuge-python on node A, backend publishing on node B, Redis restarted empty in between."""
    from centrifuge import Client

    from tests.protocols.realtime.test_sdk_python import Recorder, Trio, run_asyncio, until

    from .cluster import token

    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")

    async def scenario(tr: Trio) -> None:
        events = Recorder()
        client = Client(a.ws, token=token("alice"), min_reconnect_delay=0.05)
        await client.connect()
        sub = client.new_subscription("public:sdk", events, recoverable=True, min_resubscribe_delay=0.05)
        await sub.subscribe()
        await sub.ready()
        await tr.acall(publish_many, b, "public:sdk", range(3))
        await until(lambda: len(events.data()) == 3)
        await tr.call(lambda: redis.restart(empty=True))
        await until(lambda: len(events.of("subscribed")) == 2, timeout=15)
        second = events.of("subscribed")[1]
        assert second.was_recovering and not second.recovered
        assert [(c.code, c.reason) for c in events.of("subscribing") if c.code >= 2500] == [(2500, "insufficient state")]
        await tr.acall(lambda: publish_many(b, "public:sdk", range(3, 5), retry_for=5))
        await until(lambda: len(events.data()) == 5)
        assert [d["n"] for d in events.data()] == [0, 1, 2, 3, 4]
        assert client.state.value == "connected"  # the client stayed connected throughout
        await client.disconnect()

    await run_asyncio(scenario, timeout=40)


async def test_own_join_push_comes_once(redis, nodes):
    """A subscriber asking for join/leave pushes gets its own join once, after its subscribe reply (the Redis echo of
    a node's own join is not delivered again: centrifuge-python's test_server_side_subs failed on it)."""
    a = nodes(redis.url, "a")
    conn = await SdkConn.open(a.ws)
    assert "result" in await conn.call("subscribe", {"channel": "news", "join_leave": True})
    other = await SdkConn.open(a.ws, "bob")
    await other.call("subscribe", {"channel": "news"})
    assert "result" in await a.api("publish", {"channel": "news", "data": "marker"})  # after both joins in PUB/SUB
    await conn.until(lambda: conn.pubs("news"))
    joins = [p["join"]["info"]["client"] for p in conn.pushes if p.get("channel") == "news" and "join" in p]
    assert joins == [conn.client, other.client]
