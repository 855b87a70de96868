"""Map subscriptions (Centrifugo 6.8's keyed state) on the Redis engine: two `hub run` nodes on one throwaway Redis
share a map channel's entries, its stream, its key expiry and its map clients presence."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from bench.redis_server import REDIS_SERVER

from .cluster import Node, SdkConn, start_node, write_config

pytestmark = [
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (make test installs it)"),
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

MAPS = """
[projects.development.namespaces.m]
presence = false
join_leave = false
map_mode = "ephemeral"
map_key_ttl = 60
map_presence_prefix = "who:"

[projects.development.namespaces.who]
presence = false
join_leave = false
map_mode = "ephemeral"
map_type = 2
map_key_ttl = 60

[projects.development.namespaces.pm]
presence = false
join_leave = false
map_mode = "persistent"
history_size = 1000
history_lifetime = 300
delta_fossil = true

[projects.development.namespaces.short]
presence = false
join_leave = false
map_mode = "recoverable"
map_key_ttl = 1
history_size = 100
history_lifetime = 300
"""


@pytest.fixture
def nodes(tmp_path: Path):
    started: list[Node] = []
    config = write_config(tmp_path, MAPS)

    def start(redis_url: str, name: str) -> Node:
        node = start_node(tmp_path, redis_url, name, config=config)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


async def state(conn: SdkConn, channel: str, kind: int = 1, **params: Any) -> dict[str, Any]:
    """Subscribe to a map channel through its STATE pages (1000 entries a page): the phase-0 reply, entries of every
    page in `state`."""
    entries: list[dict[str, Any]] = []
    cursor = ""
    while True:
        reply = await conn.call("subscribe", {"channel": channel, "type": kind, "phase": 2, "limit": 1000,
                                              **({"cursor": cursor} if cursor else {}), **params})
        assert "result" in reply, reply
        result = reply["result"]
        entries += result.get("state", [])
        if result.get("phase") != 2:
            return {**result, "state": entries}
        cursor = result.get("cursor", "")
        params = {"offset": result.get("offset", 0), "epoch": result["epoch"]} if "epoch" in result else {}


def changes(conn: SdkConn, channel: str) -> list[tuple[str, Any]]:
    return [(p["key"], "removed" if p.get("removed") else p.get("data")) for p in conn.pubs(channel)]


async def test_entries_stream_and_deltas_are_shared_by_the_nodes(redis, nodes):
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    for key in ("c", "a", "b"):
        assert (await a.api("map_publish", {"channel": "m:room", "key": key, "data": {"v": key}})) == {"result": {}}
    on_b = await SdkConn.open(b.ws)
    live = await state(on_b, "m:room")
    assert [(e["key"], e["data"]) for e in live["state"]] == [("a", {"v": "a"}), ("b", {"v": "b"}), ("c", {"v": "c"})]
    assert "offset" not in live and "epoch" not in live  # an ephemeral map has no stream
    await a.api("map_publish", {"channel": "m:room", "key": "a", "data": {"v": 2}})
    await a.api("map_remove", {"channel": "m:room", "key": "b"})
    assert (await a.api("map_remove", {"channel": "m:room", "key": "nope"})) == {  # suppressed, as Centrifugo says
        "result": {"suppressed": True, "suppress_reason": "key_not_found"}}
    await a.api("map_publish", {"channel": "m:room", "key": "z", "data": "end"})
    await on_b.until(lambda: len(on_b.pubs("m:room")) == 3)
    assert changes(on_b, "m:room") == [("a", {"v": 2}), ("b", "removed"), ("z", "end")]
    assert all("offset" not in p for p in on_b.pubs("m:room"))

    # A persistent map: offsets from one stream whichever node publishes; a delta subscriber on B gets per-key
    # deltas of A's changes (the key's previous entry travels with the change).
    replies = [await node.api("map_publish", {"channel": "pm:game", "key": f"p{i % 2}", "data": {"score": i, "pad": "x" * 200}})
               for i, node in enumerate((a, b, a))]
    assert [r["result"]["offset"] for r in replies] == [1, 2, 3]
    epoch = replies[0]["result"]["epoch"]
    assert {r["result"]["epoch"] for r in replies} == {epoch}
    delta = await SdkConn.open(b.ws)
    live = await state(delta, "pm:game", delta="fossil")
    assert (live["offset"], live["epoch"], live["delta"]) == (3, epoch, True)
    assert [(e["key"], json.loads(e["data"]), e["offset"]) for e in live["state"]] == [  # strings for delta clients
        ("p0", {"score": 2, "pad": "x" * 200}, 3), ("p1", {"score": 1, "pad": "x" * 200}, 2)]
    await a.api("map_publish", {"channel": "pm:game", "key": "p0", "data": {"score": 4, "pad": "x" * 200}})
    await delta.until(lambda: delta.pubs("pm:game"))
    pub = delta.pubs("pm:game")[0]
    assert (pub["key"], pub["offset"], pub["delta"]) == ("p0", 4, True) and len(pub["data"]) < 50
    # Away, then back on the other node from its offset: recovered from the shared stream.
    back = await SdkConn.open(a.ws)
    rec = (await back.call("subscribe", {"channel": "pm:game", "type": 1, "phase": 1, "recover": True, "offset": 2,
                                         "epoch": epoch}))["result"]
    assert (rec["recovered"], rec["offset"]) == (True, 4)
    assert [(p["key"], p["offset"]) for p in rec["publications"]] == [("p0", 3), ("p0", 4)]


@pytest.mark.parametrize("channel", ["m:busy", "pm:busy"])
async def test_subscribing_during_updates_misses_nothing_and_gets_nothing_twice(redis, nodes, channel):
    """Node A's API sets 5 keys round-robin (key k<i % 5> = i) while clients subscribe on node B: for every client and
    key, the value in its snapshot and then the values pushed to it are consecutive (steps of 5) up to the last."""
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    total = 300
    clients: list[tuple[SdkConn, dict[str, Any]]] = []
    done = trio.Event()

    async def writer() -> None:
        for i in range(total):
            reply = await a.api("map_publish", {"channel": channel, "key": f"k{i % 5}", "data": i})
            assert "result" in reply, reply
        done.set()

    async def subscriber() -> None:
        while not done.is_set() and len(clients) < 12:
            conn = await SdkConn.open(b.ws)
            clients.append((conn, await state(conn, channel)))
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        nursery.start_soon(subscriber)
    assert len(clients) >= 3
    final = {f"k{j}": total - 5 + j for j in range(5)}

    def seen(conn: SdkConn, live: dict[str, Any]) -> dict[str, list[int]]:
        values: dict[str, list[int]] = {e["key"]: [e["data"]] for e in live["state"]}
        for pub in live.get("publications", []) + conn.pubs(channel):  # the catch-up in the reply, then pushes
            values.setdefault(pub["key"], []).append(pub["data"])
        return values

    for conn, live in clients:
        await conn.until(lambda conn=conn, live=live: {k: v[-1] for k, v in seen(conn, live).items()} == final)
        for key, values in seen(conn, live).items():
            assert values == list(range(values[0], final[key] + 1, 5)), (key, values)
        if channel.startswith("pm:"):
            offsets = [p["offset"] for p in live.get("publications", []) + conn.pubs(channel)]
            assert offsets == list(range(max((e["offset"] for e in live["state"]), default=0) + 1, total + 1))


async def test_key_ttl_removes_a_key_once_and_tells_both_nodes(redis, nodes):
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    on_a, on_b = await SdkConn.open(a.ws), await SdkConn.open(b.ws)
    for conn in (on_a, on_b):
        await state(conn, "short:s")
    set_at = time.monotonic()
    first = (await a.api("map_publish", {"channel": "short:s", "key": "k", "data": "v"}))["result"]
    for conn in (on_a, on_b):
        await conn.until(lambda conn=conn: len(conn.pubs("short:s")) == 2)
    assert time.monotonic() - set_at >= 0.9  # after its 1 s TTL
    # One removal in the stream (both nodes sweep): a marker published after it comes right behind it.
    await b.api("map_publish", {"channel": "short:s", "key": "marker", "data": 1})
    for conn in (on_a, on_b):
        await conn.until(lambda conn=conn: len(conn.pubs("short:s")) == 3)
        assert changes(conn, "short:s") == [("k", "v"), ("k", "removed"), ("marker", 1)]
        assert [p["offset"] for p in conn.pubs("short:s")] == [1, 2, 3]
    history = (await b.api("history", {"channel": "short:s", "limit": -1}))["result"]
    assert (history["offset"], history["epoch"]) == (3, first["epoch"])
    assert [p.get("removed", False) for p in history["publications"]] == [False, True, False]
    fresh = await SdkConn.open(a.ws)
    assert [e["key"] for e in (await state(fresh, "short:s"))["state"]] == ["marker"]


def current(live: dict[str, Any], conn: SdkConn, channel: str) -> dict[str, dict[str, Any]]:
    """A map subscriber's entries: its state, then the changes pushed to it."""
    entries = {e["key"]: e for e in live["state"]}
    for pub in live.get("publications", []) + conn.pubs(channel):
        if pub.get("removed"):
            entries.pop(pub["key"], None)
        else:
            entries[pub["key"]] = pub
    return entries


async def test_map_clients_presence_entries_from_every_node(redis, nodes):
    """Each node writes its own subscribers' entries (fire and forget, so the watcher waits for them as changes)."""
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    member_a = await SdkConn.open(a.ws, "alice")
    await state(member_a, "m:room")
    watcher = await SdkConn.open(b.ws, "carol")
    live = await state(watcher, "who:m:room", kind=2)
    who = lambda: current(live, watcher, "who:m:room")  # noqa: E731
    await watcher.until(lambda: set(who()) == {member_a.client})
    member_b = await SdkConn.open(b.ws, "bob")
    await state(member_b, "m:room")
    await watcher.until(lambda: set(who()) == {member_a.client, member_b.client})
    assert who()[member_b.client]["info"]["user"] == "bob"
    await member_a.call("unsubscribe", {"channel": "m:room"})
    await watcher.until(lambda: set(who()) == {member_b.client})
    # Subscribing again on A: a new entry; a disconnect on B removes B's.
    await state(member_a, "m:room")
    await member_b.aclose()
    await watcher.until(lambda: set(who()) == {member_a.client})
    pubs = [(p["key"], p.get("removed", False)) for p in watcher.pubs("who:m:room")]
    assert pubs.count((member_b.client, False)) == 1  # announced once ("if new")
    other = await SdkConn.open(a.ws, "dave")
    assert [e["key"] for e in (await state(other, "who:m:room", kind=2))["state"]] == [member_a.client]


async def test_state_outlives_the_nodes(redis, nodes):
    a = nodes(redis.url, "a")
    await a.api("map_publish", {"channel": "m:keep", "key": "k", "data": 1})
    epoch = (await a.api("map_publish", {"channel": "pm:keep", "key": "k", "data": 1}))["result"]["epoch"]
    a.stop()
    b = nodes(redis.url, "b")
    conn = await SdkConn.open(b.ws)
    assert [(e["key"], e["data"]) for e in (await state(conn, "m:keep"))["state"]] == [("k", 1)]
    live = await state(conn, "pm:keep")
    assert (live["offset"], live["epoch"], [e["key"] for e in live["state"]]) == (1, epoch, ["k"])
    assert (await b.api("map_publish", {"channel": "pm:keep", "key": "j", "data": 2}))["result"] == {"offset": 2, "epoch": epoch}


async def test_redis_slow_or_down_map_calls_fail_like_publishes(redis, nodes):
    """A stopped Redis (SIGSTOP: commands time out after engine.timeout, 0.5 s here) and a dead one: map writes and
    map subscribes get the error a publish gets, in bounded time."""
    a = nodes(redis.url, "a")
    conn = await SdkConn.open(a.ws)
    await state(conn, "m:r")
    for stop in (lambda: redis.proc.send_signal(signal.SIGSTOP), redis.kill):
        stop()
        started = time.monotonic()
        publish = await a.api("publish", {"channel": "public:x", "data": 1})
        assert publish["error"]["code"] == 100
        for channel in ("m:r", "pm:r"):
            assert (await a.api("map_publish", {"channel": channel, "key": "k", "data": 1})) == publish
            assert (await a.api("map_remove", {"channel": channel, "key": "k"})) == publish
        other = await SdkConn.open(a.ws)
        for channel in ("m:r2", "pm:r2"):
            reply = await other.call("subscribe", {"channel": channel, "type": 1, "phase": 2})
            assert reply["error"]["code"] == 100, reply
        assert time.monotonic() - started < 5  # nothing hangs (about 1 s stopped, 0.01 s dead, on a quiet machine)
        if redis.proc is not None:
            redis.proc.send_signal(signal.SIGCONT)
            while "result" not in await a.api("map_publish", {"channel": "m:r", "key": "k", "data": 2}):
                await trio.sleep(0.05)  # back once Redis answers again


async def test_redis_restarted_empty_map_subscribers_start_over(redis, nodes):
    """The state is gone with Redis: subscribers of a streamless map (the node checks the sequence when its PUB/SUB
    connection is back) and of a map with a stream (a new epoch) get an insufficient-state unsubscribe (2500), and
    subscribing again gives the state as it is now."""
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    member = await SdkConn.open(a.ws, "bob")
    await state(member, "m:quiet")  # an entry in who:m:quiet
    conn = await SdkConn.open(a.ws)
    for channel in ("m:lost", "pm:lost"):
        await state(conn, channel)
        await b.api("map_publish", {"channel": channel, "key": "old", "data": 1})
    await conn.until(lambda: conn.pubs("m:lost") and conn.pubs("pm:lost"))
    redis.restart(empty=True)

    def told(channel: str) -> bool:
        return any(p.get("channel") == channel and p.get("unsubscribe", {}).get("code") == 2500 for p in conn.pushes)

    await conn.until(lambda: told("m:lost") and told("pm:lost"), timeout=15)
    for channel in ("m:lost", "pm:lost"):
        while "result" not in (await b.api("map_publish", {"channel": channel, "key": "new", "data": 2})):
            await trio.sleep(0.05)  # B reconnecting
        while "result" not in (await a.api("map_stats", {"channel": channel})):
            await trio.sleep(0.05)  # A's command connection reconnecting (its PUB/SUB one is back: it told 2500)
        assert [(e["key"], e["data"]) for e in (await state(conn, channel))["state"]] == [("new", 2)]
    # Node A added its subscriber's map clients entry again when it reconnected.
    watcher = await SdkConn.open(b.ws)
    live = await state(watcher, "who:m:quiet", kind=2)
    if not live["state"]:  # not written yet: it comes as a change
        await watcher.until(lambda: watcher.pubs("who:m:quiet"))
    keys = [e["key"] for e in live["state"]] + [p["key"] for p in watcher.pubs("who:m:quiet")]
    assert keys == [member.client]


async def test_map_clear_through_one_node_and_the_other_follows_the_new_epoch(redis, nodes):
    """map_clear on node A (one Lua call): node B's subscriber of the old stream gets nothing from the clear and an
    insufficient-state unsubscribe (2500) with the next change; one subscribing on B right after the clear starts from
    the new epoch and gets that change at offset 1."""
    a, b = nodes(redis.url, "a"), nodes(redis.url, "b")
    old = await SdkConn.open(b.ws)
    first = await state(old, "pm:clr")
    await a.api("map_publish", {"channel": "pm:clr", "key": "k", "data": 1})
    await old.until(lambda: old.pubs("pm:clr"))
    assert await a.api("map_clear", {"channel": "pm:clr"}) == {"result": {}}
    assert await b.api("map_stats", {"channel": "pm:clr"}) == {"result": {}}
    fresh = await SdkConn.open(b.ws)
    live = await state(fresh, "pm:clr")
    assert live["state"] == [] and "offset" not in live and live["epoch"] != first["epoch"]
    assert await b.api("map_read_state", {"channel": "pm:clr", "limit": -1}) == {"result": {"epoch": live["epoch"]}}
    await a.api("map_publish", {"channel": "pm:clr", "key": "j", "data": 2})
    await fresh.until(lambda: fresh.pubs("pm:clr"))
    assert [(p["key"], p["data"], p["offset"]) for p in fresh.pubs("pm:clr")] == [("j", 2, 1)]
    await old.until(lambda: any(p.get("unsubscribe", {}).get("code") == 2500 for p in old.pushes))
    assert len(old.pubs("pm:clr")) == 1  # only the change before the clear
    assert await b.api("map_stats", {"channel": "pm:clr"}) == {"result": {"num_keys": 1}}
