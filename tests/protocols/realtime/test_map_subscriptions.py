"""Centrifugo 6.8's map subscriptions end to end: a hub on a Centrifugo config.json with map namespaces, driven by
raw websocket JSON frames (the subscribe phases, pagination, recovery, per-key deltas, key TTL, map clients
presence) and the server API's map_publish / map_remove."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bench.redis_server import REDIS_SERVER, RedisServer
from hub.config import load_settings
from hub.runtime import serve
from protocols.realtime import fossil
from tests.rawws import RawWebSocket

API_KEY = "map-api-key"


def config() -> dict[str, Any]:
    ns = [
        {"name": "eph", "subscription_type": "map", "allow_subscribe_for_client": True,
         "map_clients_presence_channel_prefix": "who:",
         "map": {"mode": "ephemeral", "key_ttl": "60s", "allow_publish_for_client": True,
                 "allow_remove_for_client": True}},
        {"name": "pos", "subscription_type": "map", "allow_subscribe_for_client": True,
         "allowed_delta_types": ["fossil"],
         "map": {"mode": "persistent", "stream_size": 3, "stream_ttl": "60s", "allow_publish_for_client": True}},
        {"name": "short", "subscription_type": "map", "allow_subscribe_for_client": True,
         "map": {"mode": "ephemeral", "key_ttl": "1s"}},
        {"name": "who", "subscription_type": "map_clients", "allow_subscribe_for_client": True,
         "map": {"mode": "ephemeral", "key_ttl": "60s"}},
        {"name": "plain", "allow_subscribe_for_client": True},
    ]
    return {"client": {"insecure": True}, "http_server": {"port": 0}, "http_api": {"key": API_KEY},
            "log": {"level": "error"}, "map_broker": {}, "channel": {"namespaces": ns}}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server is not installed (make test installs it)"))])
async def hub(request: pytest.FixtureRequest, nursery: trio.Nursery, tmp_path: Path) -> Any:
    """One hub on the memory engine, and the same on the Redis engine (its own throwaway redis-server)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config()))
    settings = load_settings(path)
    settings.adapters["realtime"].port = settings.adapters["command_api"].port = 0
    settings.hub.housekeeping_interval = 0.05  # key TTLs are enforced by housekeeping
    server = None
    if request.param == "redis":
        server = RedisServer(tmp_path / "redis")
        server.start()
        settings.engine.type, settings.engine.url = "redis", server.url
    running = await nursery.start(serve, settings)
    assert running.hub.engine.name == request.param
    yield running
    running.shutdown()
    if server is not None:
        server.kill()


class Conn:
    """A raw Centrifugo v6 JSON connection: commands with ids, replies by id, pushes in order."""

    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.ids = 0
        self.pushes: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.client = ""

    @classmethod
    async def open(cls, running: Any) -> Conn:
        url = running.url("realtime").replace("http://", "ws://") + "/connection/websocket"
        conn = cls(await RawWebSocket.connect(url))
        conn.client = (await conn.call("connect", {}))["connect"]["client"]
        return conn

    async def _read(self) -> None:
        opcode, payload = await self.ws.recv()
        assert opcode == 1, (opcode, payload)
        for line in payload.decode().splitlines():
            msg = json.loads(line)
            if "push" in msg:
                self.pushes.append(msg["push"])
            elif "id" in msg:
                self.replies[msg["id"]] = msg

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.ids += 1
        cid = self.ids
        await self.ws.send_json({"id": cid, method: params})
        with trio.fail_after(5):
            while cid not in self.replies:
                await self._read()
        return self.replies.pop(cid)

    async def push(self) -> dict[str, Any]:
        with trio.fail_after(5):
            while not self.pushes:
                await self._read()
        return self.pushes.pop(0)


async def api(running: Any, method: str, params: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{running.url('command_api')}/api/{method}", json=params,
                               headers={"X-API-Key": API_KEY})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_config_json_map_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config()))
    project = next(p for p in load_settings(path).projects if p.key == "centrifugo")
    eph, pos, who = project.namespaces["eph"], project.namespaces["pos"], project.namespaces["who"]
    assert (eph.map_mode, eph.map_key_ttl, eph.keeps_history, eph.map_publish_for_client) == ("ephemeral", 60.0, False, True)
    assert eph.map_presence_prefix == "who:"
    assert (pos.map_mode, pos.history_size, pos.history_lifetime, pos.delta_fossil) == ("persistent", 3, 60.0, True)
    assert (who.map_type, who.is_map) == (2, True)
    assert not project.namespaces["plain"].is_map


async def test_state_pages_then_live_updates_and_removals(hub: Any) -> None:
    for key in ("c", "a", "b"):
        assert await api(hub, "map_publish", {"channel": "eph:room", "key": key, "data": {"v": key}}) == {"result": {}}
    conn = await Conn.open(hub)
    first = await conn.call("subscribe", {"channel": "eph:room", "type": 1, "phase": 2, "limit": 2})
    page = first["subscribe"]
    assert (page["type"], page["phase"], page["cursor"]) == (1, 2, "b")
    assert [(e["key"], e["data"]) for e in page["state"]] == [("a", {"v": "a"}), ("b", {"v": "b"})]
    # The last page of an ephemeral map goes LIVE at once: phase 0 (omitted), the rest of the state.
    last = (await conn.call("subscribe", {"channel": "eph:room", "type": 1, "phase": 2, "limit": 2, "cursor": "b"}))["subscribe"]
    assert "phase" not in last and "recoverable" not in last
    assert [(e["key"], e["data"]) for e in last["state"]] == [("c", {"v": "c"})]
    await api(hub, "map_publish", {"channel": "eph:room", "key": "a", "data": {"v": 2}})
    assert await conn.push() == {"channel": "eph:room", "pub": {"data": {"v": 2}, "key": "a"}}
    # A client's own publish (type 1) and removal (allowed by map.allow_*_for_client).
    assert (await conn.call("publish", {"channel": "eph:room", "type": 1, "key": "d", "data": 1}))["publish"] == {}
    pub = (await conn.push())["pub"]
    assert (pub["key"], pub["data"], pub["info"]["client"]) == ("d", 1, conn.client)
    assert (await conn.call("publish", {"channel": "eph:room", "type": 1, "key": "d", "removed": True}))["publish"] == {}
    pub = (await conn.push())["pub"]
    assert (pub["key"], pub["removed"], "data" in pub) == ("d", True, False)
    await api(hub, "map_remove", {"channel": "eph:room", "key": "b"})
    assert await conn.push() == {"channel": "eph:room", "pub": {"key": "b", "removed": True}}
    assert await api(hub, "map_remove", {"channel": "eph:room", "key": "b"}) == {  # gone already: as Centrifugo
        "result": {"suppressed": True, "suppress_reason": "key_not_found"}}
    # What a new subscriber gets: the state as it is now.
    other = await Conn.open(hub)
    state = (await other.call("subscribe", {"channel": "eph:room", "type": 1, "phase": 2}))["subscribe"]["state"]
    assert [(e["key"], e["data"]) for e in state] == [("a", {"v": 2}), ("c", {"v": "c"})]


async def test_map_refusals(hub: Any) -> None:
    conn = await Conn.open(hub)
    code = lambda reply: reply["error"]["code"]  # noqa: E731
    assert code(await conn.call("subscribe", {"channel": "plain:x", "type": 1, "phase": 2})) == 107  # not a map
    assert code(await conn.call("subscribe", {"channel": "eph:x"})) == 107  # a map subscribed as a stream
    assert code(await conn.call("subscribe", {"channel": "plain:x", "type": 4})) == 108  # shared poll: not here
    assert code(await conn.call("subscribe", {"channel": "eph:x", "type": 1, "phase": 2, "cursor": "k"})) == 103
    assert code(await conn.call("subscribe", {"channel": "eph:x", "type": 1, "phase": 1, "recover": True})) == 107
    assert code(await conn.call("publish", {"channel": "short:x", "type": 1, "data": 1})) == 107  # no key
    # Centrifugo's API: a map method on a namespace that is not a map is a bad request
    assert (await api(hub, "map_publish", {"channel": "plain:x", "key": "k", "data": 1}))["error"] == {
        "code": 107, "message": "bad request"}
    assert (await api(hub, "map_remove", {"channel": "plain:x", "key": "k"}))["error"]["code"] == 107


async def test_positioned_recovery_and_per_key_deltas(hub: Any) -> None:
    conn = await Conn.open(hub)
    sub = {"channel": "pos:game", "type": 1, "delta": "fossil"}
    live = (await conn.call("subscribe", {**sub, "phase": 2}))["subscribe"]
    assert (live["recoverable"], live["delta"], live.get("offset", 0)) == (True, True, 0)
    epoch = live["epoch"]
    big = "x" * 300
    await api(hub, "map_publish", {"channel": "pos:game", "key": "p1", "data": {"score": 1, "pad": big}})
    first = (await conn.push())["pub"]
    assert (first["key"], first["offset"], "delta" not in first) == ("p1", 1, True)
    assert json.loads(first["data"]) == {"score": 1, "pad": big}  # delta subscribers get the payload as a string
    await api(hub, "map_publish", {"channel": "pos:game", "key": "p2", "data": {"score": 7, "pad": big}})
    assert "delta" not in (await conn.push())["pub"]  # a new key: whole
    await api(hub, "map_publish", {"channel": "pos:game", "key": "p1", "data": {"score": 2, "pad": big}})
    second = (await conn.push())["pub"]
    assert second["delta"] is True and len(second["data"]) < 100  # from p1's previous entry, not from p2
    patched = fossil.apply(first["data"].encode(), second["data"].encode())
    assert json.loads(patched) == {"score": 2, "pad": big}
    # Away for two changes, then back from offset 3: recovered from the stream, straight to LIVE.
    await conn.ws.aclose()
    await api(hub, "map_publish", {"channel": "pos:game", "key": "p2", "data": {"score": 8}})
    await api(hub, "map_remove", {"channel": "pos:game", "key": "p1"})
    back = await Conn.open(hub)
    rec = (await back.call("subscribe", {"channel": "pos:game", "type": 1, "phase": 1, "recover": True,
                                          "offset": 3, "epoch": epoch}))["subscribe"]
    assert (rec["recovered"], rec["was_recovering"], rec["offset"], rec["epoch"]) == (True, True, 5, epoch)
    assert [(p["key"], p.get("removed", False), p["offset"]) for p in rec["publications"]] == [("p2", False, 4), ("p1", True, 5)]
    # The stream keeps 3 changes: from offset 1 the client cannot catch up (112), and starts over from the state.
    again = await Conn.open(hub)
    lost = await again.call("subscribe", {"channel": "pos:game", "type": 1, "phase": 1, "recover": True,
                                           "offset": 1, "epoch": epoch})
    assert lost["error"]["code"] == 112
    wrong = await again.call("subscribe", {"channel": "pos:game", "type": 1, "phase": 1, "recover": True,
                                            "offset": 5, "epoch": "other"})
    assert wrong["error"]["code"] == 112
    fresh = (await again.call("subscribe", {"channel": "pos:game", "type": 1, "phase": 2}))["subscribe"]
    assert [(e["key"], e["data"], e["offset"]) for e in fresh["state"]] == [("p2", {"score": 8}, 4)]
    assert (fresh["offset"], fresh["epoch"]) == (5, epoch)


async def test_key_ttl_removes_the_key(hub: Any) -> None:
    conn = await Conn.open(hub)
    assert "error" not in await conn.call("subscribe", {"channel": "short:s", "type": 1, "phase": 2})
    await api(hub, "map_publish", {"channel": "short:s", "key": "k", "data": "v"})
    assert (await conn.push())["pub"] == {"key": "k", "data": "v"}
    assert await conn.push() == {"channel": "short:s", "pub": {"key": "k", "removed": True}}  # after its 1 s TTL
    state = (await conn.call("subscribe", {"channel": "short:t", "type": 1, "phase": 2}))["subscribe"]
    assert "state" not in state


async def test_map_clients_presence(hub: Any) -> None:
    watcher = await Conn.open(hub)
    assert "error" not in await watcher.call("subscribe", {"channel": "who:eph:room", "type": 2, "phase": 2})
    member = await Conn.open(hub)
    assert "error" not in await member.call("subscribe", {"channel": "eph:room", "type": 1, "phase": 2})
    added = (await watcher.push())["pub"]
    assert (added["key"], added["info"]["client"], "data" not in added) == (member.client, member.client, True)
    await member.call("unsubscribe", {"channel": "eph:room"})
    assert (await watcher.push())["pub"] == {"key": member.client, "removed": True}
    await member.call("subscribe", {"channel": "eph:room", "type": 1, "phase": 2})
    assert (await watcher.push())["pub"]["key"] == member.client
    await member.ws.aclose()  # a disconnect removes the entry too
    assert (await watcher.push())["pub"] == {"key": member.client, "removed": True}


def timed(reply: dict[str, Any]) -> dict[str, Any]:
    """`reply` with each entry's `time` (milliseconds, now-ish) checked and taken out, to compare the rest exactly."""
    import time as _time

    now = _time.time() * 1000
    for entry in reply.get("result", {}).get("entries", []):
        assert isinstance(entry["time"], int) and now - 60000 < entry.pop("time") <= now + 1000
    return reply


async def test_api_map_read_state(hub: Any) -> None:
    """Centrifugo's map_read_state (internal/api MapReadState over the MapBroker's ReadState): key order, `cursor` the
    last key of a page when more follow, `limit` 0/unset only the position, -1 everything, `key` one entry."""
    for key in ("c", "a", "b"):
        await api(hub, "map_publish", {"channel": "eph:s", "key": key, "data": {"v": key}, "tags": {"t": key}})
    entry = {k: {"key": k, "data": {"v": k}, "tags": {"t": k}} for k in "abc"}
    read = lambda **p: api(hub, "map_read_state", {"channel": "eph:s", **p})  # noqa: E731
    assert timed(await read(limit=2)) == {"result": {"entries": [entry["a"], entry["b"]], "cursor": "b"}}
    assert timed(await read(limit=2, cursor="b")) == {"result": {"entries": [entry["c"]]}}
    assert timed(await read(limit=1, cursor="a")) == {"result": {"entries": [entry["b"]], "cursor": "b"}}
    assert await read() == {"result": {}}  # limit 0: the position only (none without a stream: all omitted)
    assert timed(await read(limit=-1)) == {"result": {"entries": [entry["a"], entry["b"], entry["c"]]}}
    assert timed(await read(key="b", limit=1, cursor="b")) == {"result": {"entries": [entry["b"]]}}
    assert await read(key="zz", limit=-1) == {"result": {}}
    assert timed(await read(limit=-1, asc=True, revision_offset=3)) == {  # no stream: the revision's epoch is ""
        "result": {"entries": [entry["a"], entry["b"], entry["c"]]}}
    assert await read(limit=-1, revision_epoch="x") == {"error": {"code": 112, "message": "unrecoverable position"}}
    # With a stream: each entry's offset, and the stream position the entries are as of.
    await api(hub, "map_publish", {"channel": "pos:s", "key": "b", "data": 2})
    await api(hub, "map_publish", {"channel": "pos:s", "key": "a", "data": 1})
    first = await api(hub, "map_read_state", {"channel": "pos:s"})
    epoch = first["result"]["epoch"]
    assert first == {"result": {"offset": 2, "epoch": epoch}}
    state = {"entries": [{"key": "a", "data": 1, "offset": 2}, {"key": "b", "data": 2, "offset": 1}],
             "offset": 2, "epoch": epoch}
    assert timed(await api(hub, "map_read_state", {"channel": "pos:s", "limit": 5, "revision_offset": 2,
                                                   "revision_epoch": epoch})) == {"result": state}
    assert timed(await api(hub, "map_read_state", {"channel": "pos:s", "limit": 1})) == {
        "result": {"entries": state["entries"][:1], "offset": 2, "epoch": epoch, "cursor": "a"}}
    for revision in ({"revision_offset": 1}, {"revision_offset": 1, "revision_epoch": "other"}):
        assert (await api(hub, "map_read_state", {"channel": "pos:s", "limit": -1, **revision}))["error"]["code"] == 112


async def test_api_map_read_stream(hub: Any) -> None:
    """map_read_stream (MapBroker.ReadStream, Node.MapStreamRead): the stream's changes, removals among them."""
    for key, data in (("a", 1), ("b", 2), ("a", None), ("c", 3)):
        if data is None:
            await api(hub, "map_remove", {"channel": "pos:r", "key": key})
        else:
            await api(hub, "map_publish", {"channel": "pos:r", "key": key, "data": data})
    read = lambda **p: api(hub, "map_read_stream", {"channel": "pos:r", **p})  # noqa: E731
    epoch = (await read())["result"]["epoch"]
    top = {"offset": 4, "epoch": epoch}
    assert await read() == {"result": top}  # limit 0: the position only
    b2, a3, c4 = {"key": "b", "data": 2, "offset": 2}, {"key": "a", "offset": 3, "removed": True}, \
        {"key": "c", "data": 3, "offset": 4}
    assert timed(await read(limit=-1)) == {"result": {"entries": [b2, a3, c4], **top}}  # the stream keeps 3
    assert timed(await read(limit=2, reverse=True)) == {"result": {"entries": [c4, a3], **top}}
    assert timed(await read(since_offset=2, since_epoch=epoch, limit=-1)) == {"result": {"entries": [a3, c4], **top}}
    assert timed(await read(since_offset=1, limit=1)) == {"result": {"entries": [b2], **top}}
    assert await read(since_offset=4, since_epoch=epoch, limit=10) == {"result": top}
    assert timed(await read(since_offset=4, reverse=True, limit=-1)) == {"result": {"entries": [a3, b2], **top}}
    assert await read(since_offset=4, since_epoch=epoch) == {"result": top}
    # 112: another epoch, or a position the stream no longer reaches (offset 2 is the oldest kept)
    assert await read(since_offset=3, since_epoch="other", limit=-1) == {
        "error": {"code": 112, "message": "unrecoverable position"}}
    await api(hub, "map_publish", {"channel": "pos:r", "key": "d", "data": 4})
    assert (await read(since_offset=1, since_epoch=epoch, limit=-1))["error"]["code"] == 112
    # A map without a stream: nothing, at position 0 without an epoch.
    await api(hub, "map_publish", {"channel": "eph:r", "key": "k", "data": 1})
    assert await api(hub, "map_read_stream", {"channel": "eph:r", "limit": -1}) == {"result": {}}
    assert (await api(hub, "map_read_stream", {"channel": "eph:r", "since_epoch": "x"}))["error"]["code"] == 112
    # A stream not started yet starts with the read (its epoch is the one later changes carry).
    fresh = (await api(hub, "map_read_stream", {"channel": "pos:new", "limit": -1}))["result"]
    assert list(fresh) == ["epoch"]
    pub = await api(hub, "map_publish", {"channel": "pos:new", "key": "k", "data": 1})
    assert pub == {"result": {"offset": 1, "epoch": fresh["epoch"]}}


async def test_api_map_stats_and_clear(hub: Any) -> None:
    """map_stats counts keys (num_keys omitted at 0); map_clear deletes state and stream and sends nothing: a
    subscriber that followed the stream learns it from the next change (insufficient state, as Centrifugo's epoch
    check does), one that subscribes after the clear follows the new epoch."""
    for key in ("a", "b", "c"):
        await api(hub, "map_publish", {"channel": "eph:st", "key": key, "data": 1})
    assert await api(hub, "map_stats", {"channel": "eph:st"}) == {"result": {"num_keys": 3}}
    await api(hub, "map_remove", {"channel": "eph:st", "key": "b"})
    assert await api(hub, "map_stats", {"channel": "eph:st"}) == {"result": {"num_keys": 2}}
    assert await api(hub, "map_stats", {"channel": "eph:none"}) == {"result": {}}
    assert await api(hub, "map_clear", {"channel": "eph:st"}) == {"result": {}}
    assert await api(hub, "map_stats", {"channel": "eph:st"}) == {"result": {}}
    assert await api(hub, "map_read_state", {"channel": "eph:st", "limit": -1}) == {"result": {}}

    old = await Conn.open(hub)
    first = (await old.call("subscribe", {"channel": "pos:c", "type": 1, "phase": 2}))["subscribe"]
    await api(hub, "map_publish", {"channel": "pos:c", "key": "k", "data": 1})
    assert await old.push() == {"channel": "pos:c", "pub": {"data": 1, "key": "k", "offset": 1}}
    assert await api(hub, "map_clear", {"channel": "pos:c"}) == {"result": {}}
    after = (await api(hub, "map_read_state", {"channel": "pos:c", "limit": -1}))["result"]
    assert list(after) == ["epoch"] and after["epoch"] != first["epoch"]  # no entries, offset 0, a new epoch
    assert await api(hub, "map_read_stream", {"channel": "pos:c", "limit": -1}) == {"result": after}
    fresh = await Conn.open(hub)
    sub = (await fresh.call("subscribe", {"channel": "pos:c", "type": 1, "phase": 2}))["subscribe"]
    assert sub == {"type": 1, "epoch": after["epoch"], "recoverable": True}
    assert "error" not in await old.call("subscribe", {"channel": "eph:other", "type": 1, "phase": 2})
    assert old.pushes == []  # the clear itself sent nothing
    await api(hub, "map_publish", {"channel": "pos:c", "key": "j", "data": 2})
    assert await old.push() == {"channel": "pos:c", "unsubscribe": {"code": 2500, "reason": "insufficient state"}}
    assert await fresh.push() == {"channel": "pos:c", "pub": {"data": 2, "key": "j", "offset": 1}}
    await api(hub, "map_publish", {"channel": "pos:c", "key": "j", "data": 3})
    assert await fresh.push() == {"channel": "pos:c", "pub": {"data": 3, "key": "j", "offset": 2}}
    # The old position is gone with its epoch: 112, then the state again.
    back = await old.call("subscribe", {"channel": "pos:c", "type": 1, "phase": 1, "recover": True, "offset": 1,
                                        "epoch": first["epoch"]})
    assert back["error"]["code"] == 112


async def test_api_map_method_errors(hub: Any) -> None:
    """Each map method as Centrifugo checks it: empty channel 107, unknown namespace 102, not a map namespace 107."""
    for method in ("map_read_state", "map_read_stream", "map_stats", "map_clear"):
        assert await api(hub, method, {"channel": ""}) == {"error": {"code": 107, "message": "bad request"}}
        assert await api(hub, method, {}) == {"error": {"code": 107, "message": "bad request"}}
        assert await api(hub, method, {"channel": "missing:x"}) == {"error": {"code": 102, "message": "unknown channel"}}
        assert await api(hub, method, {"channel": "plain:x"}) == {"error": {"code": 107, "message": "bad request"}}
    assert (await api(hub, "map_read_state", {"channel": "eph:x", "limit": "2"}))["error"]["code"] == 107
    assert (await api(hub, "map_read_stream", {"channel": "pos:x", "since_offset": -1}))["error"]["code"] == 107
    # In a batch, by name, as Centrifugo's batch takes them
    reply = await api(hub, "batch", {"commands": [{"map_stats": {"channel": "eph:b"}}, {"map_clear": {"channel": ""}}]})
    assert reply == {"replies": [{"map_stats": {}}, {"error": {"code": 107, "message": "bad request"}}]}


async def test_api_map_read_state_raw_http(hub: Any) -> None:
    """The bytes of POST /api/map_read_state with `Authorization: apikey`, as Centrifugo's encoding/json writes them."""
    await api(hub, "map_publish", {"channel": "eph:raw", "key": "k", "data": {"v": [1, "x"]}})
    url = f"{hub.url('command_api')}/api/map_read_state"
    async with httpx.AsyncClient() as http:
        resp = await http.post(url, content=b'{"channel":"eph:raw","limit":10}',
                               headers={"Authorization": f"apikey {API_KEY}", "Content-Type": "application/json"})
        denied = await http.post(url, content=b'{"channel":"eph:raw"}', headers={"X-API-Key": "wrong"})
        # The old API: method by name or by Centrifugo's number (MAP_STATS 37, MAP_CLEAR 38), one line each
        legacy = await http.post(f"{hub.url('command_api')}/api", headers={"X-API-Key": API_KEY}, content=(
            b'{"id":1,"method":"map_stats","params":{"channel":"eph:raw"}}{"id":2,"method":38,'
            b'"params":{"channel":"eph:raw"}}{"id":3,"method":37,"params":{"channel":"eph:raw"}}'))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    ms = resp.json()["result"]["entries"][0]["time"]
    assert resp.content == b'{"result":{"entries":[{"key":"k","data":{"v":[1,"x"]},"time":%d}]}}' % ms
    assert denied.status_code == 401
    assert legacy.content == b'{"id":1,"result":{"num_keys":1}}\n{"id":2,"result":{}}\n{"id":3,"result":{}}'
