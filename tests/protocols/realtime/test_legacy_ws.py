"""The original client protocol over real sockets with real websocket clients."""

import json
import time

import httpx
import trio

from tests.conftest import PROJECT, connect_params, sign
from tests.legacy_client import legacy_client
from tests.rawws import RawWebSocket, client_frame

EXPIRING = """
[projects.expiring]
secret = "secret2"
connection_lifetime = 2
"""
QUICK_CLOSE = """
[realtime]
port = 0
legacy_expired_close_delay = {}
"""


def ws_url(running) -> str:
    return running.url("realtime").replace("http://", "ws://") + "/connection/websocket"


async def test_every_command_over_a_real_socket(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as a, legacy_client(running.url("realtime")) as b:
        assert (await a.call("subscribe", {"channel": "news"}))["error"] == "unauthorized"
        body = (await a.connect("alice", info='{"name":"Alice"}'))["body"]
        assert body["expired"] is False and body["ttl"] is None and len(body["client"]) == 32
        await b.connect("bob")
        await a.subscribe("public:room")
        join = await a.next_push("join")
        assert join == {"method": "join", "error": None, "body": {"channel": "public:room", "data": {
            "user": "alice", "client": a.client_id, "default_info": {"name": "Alice"}, "channel_info": None}}}
        await b.subscribe("public:room")
        assert (await a.next_push("join"))["body"]["data"]["user"] == "bob"
        reply = await a.call("publish", {"channel": "public:room", "data": {"text": "hi"}})
        assert reply == {"method": "publish", "error": None, "body": {"channel": "public:room", "status": True}}
        assert a.pushes[-1]["method"] == "message"  # the publisher's own copy came before the reply
        msg = await b.next_push("message")
        assert msg["body"]["data"] == {"text": "hi"} and "client" not in msg["body"]
        assert msg["body"]["info"] == {"user": "alice", "client": a.client_id, "default_info": {"name": "Alice"}, "channel_info": None}
        presence = (await a.call("presence", {"channel": "public:room"}))["body"]
        assert presence["channel"] == "public:room" and set(presence["data"]) == {a.client_id, b.client_id}
        history = (await a.call("history", {"channel": "public:room"}))["body"]["data"]
        assert [m["data"] for m in history] == [{"text": "hi"}] and isinstance(history[0]["timestamp"], int)
        assert (await a.call("ping"))["body"] == "pong"
        assert (await b.call("unsubscribe", {"channel": "public:room"}))["error"] is None
        leave = await a.next_push("leave")
        assert leave["body"]["data"]["client"] == b.client_id
        assert (await a.call("frobnicate"))["error"] == "unknown method frobnicate"
        errors = await a.batch([
            {"method": "subscribe", "params": {"channel": ""}},
            {"method": "subscribe", "params": {"channel": "x" * 300}},
            {"method": "subscribe", "params": {"channel": "nope:x"}},
            {"method": "publish", "params": {"channel": "news", "data": 1}},
            {"method": "presence", "params": {"channel": "nohist:x"}},
            {"method": "subscribe", "params": {"channel": "nohist:x"}},
            {"method": "presence", "params": {"channel": "nohist:x"}},
            {"method": "subscribe", "params": {"channel": 5}},
            {"method": "ping", "params": {}},
        ])
        assert [e["error"] for e in errors[:7]] == [
            "channel required", "maximum channel length exceeded", "namespace not found", "permission denied",
            "permission denied", None, "not available"]
        assert errors[7]["error"].startswith("5 is not of type 'string'") and len(errors) == 8  # the batch stops there
        assert (await a.call("ping"))["body"] == "pong"


async def test_connect_errors_keep_connection_open(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c:
        bad = connect_params("alice")
        assert (await c.call("connect", {**bad, "token": "f" * 64}))["error"] == "invalid token"
        assert (await c.call("connect", {**bad, "project": "nope"}))["error"] == "project not found"
        ts = "soon"
        p = {"project": PROJECT, "user": "alice", "timestamp": ts, "info": "", "token": sign(PROJECT, "alice", ts, "")}
        assert (await c.call("connect", p))["error"] == "invalid timestamp"
        assert (await c.call("connect", {**bad, "user": 7}))["error"].startswith("7 is not of type 'string'")
        assert (await c.connect("alice"))["error"] is None


async def test_private_and_user_limited_channels(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c:
        await c.connect("alice")
        cid = c.client_id
        params = {"channel": "$vip", "client": cid, "info": "", "sign": sign(cid, "$vip", "")}
        assert (await c.call("subscribe", {**params, "sign": "0" * 64}))["error"] == "unauthorized"
        assert (await c.call("subscribe", params))["error"] is None
        assert (await c.call("subscribe", {"channel": "dm#bob,carol"}))["error"] == "permission denied"
        assert (await c.call("subscribe", {"channel": "dm#alice,bob"}))["error"] is None
        await running.publish("$vip", "secret news")
        assert (await c.next_push("message"))["body"]["data"] == "secret news"


async def test_bad_frames_close_a_second_later_without_status(start_hub):
    running = await start_hub()
    for frame in ["{nope", "[1, 2", '"text"', json.dumps([{"method": "ping", "params": {}}] * 101)]:
        ws = await RawWebSocket.connect(ws_url(running))
        await ws.send_json({"method": "connect", "params": connect_params("alice")})
        await ws.recv_reply()
        started = trio.current_time()
        await ws.stream.send_all(client_frame(frame))
        with trio.fail_after(5):
            opcode, payload = await ws.recv()
        assert (opcode, payload) == (8, b"")  # a close frame with no status code, as the original sends
        assert 0.9 < trio.current_time() - started < 2.5
        await ws.aclose()


async def test_plain_get_of_the_websocket_url(start_hub):
    running = await start_hub()
    async with httpx.AsyncClient() as http:
        response = await http.get(running.url("realtime") + "/connection/websocket")
    assert response.status_code == 400 and response.text == 'Can "Upgrade" only to "WebSocket".'


async def test_expired_connection_refresh_and_lifetime(start_hub):
    running = await start_hub(EXPIRING + QUICK_CLOSE.format(0.5))
    project, secret = "expiring", "secret2"

    def params(ts: int) -> dict:
        return {"project": project, "user": "alice", "timestamp": str(ts), "info": "",
                "token": sign(project, "alice", str(ts), "", secret=secret)}

    async with legacy_client(running.url("realtime")) as c:
        reply = await c.call("connect", params(int(time.time()) - 100))
        assert reply["body"] == {"client": None, "expired": True, "ttl": 2}
        assert (await c.call("subscribe", {"channel": "news"}))["error"] == "unauthorized"
        assert (await c.connect(user="alice", project=project, secret=secret))["body"]["ttl"] == 2
        connected = trio.current_time()
        assert (await c.call("subscribe", {"channel": "news"}))["error"] is None
        # Whole-second timestamps: a refresh every 0.5 s keeps it open past the lifetime.
        for _ in range(6):
            await trio.sleep(0.5)
            assert (await c.call("refresh", params(int(time.time()))))["error"] is None
        assert (await c.call("ping"))["body"] == "pong"
        assert trio.current_time() - connected > 3
        reason = await c.closed(timeout=6)
        assert reason.code == 1005  # closed with no message and no status code
        assert not [p for p in c.pushes if p["method"] == "disconnect"]
    assert "alice" not in {s.user for s in running.hub.sessions.values()}


async def test_expiry_closes_at_connect_plus_lifetime_plus_delay(start_hub):
    running = await start_hub(EXPIRING + QUICK_CLOSE.format(1.0))
    ws = await RawWebSocket.connect(ws_url(running))
    ts = str(int(time.time()) - 1)
    await ws.send_json({"method": "connect", "params": {"project": "expiring", "user": "u", "timestamp": ts, "info": "",
                                                       "token": sign("expiring", "u", ts, "", secret="secret2")}})
    await ws.recv_reply()
    started = trio.current_time()
    with trio.fail_after(6):
        opcode, payload = await ws.recv()
    assert (opcode, payload) == (8, b"")
    assert 2.9 < trio.current_time() - started < 3.6  # lifetime 2 s from connect (not from the timestamp), then 1 s
    await ws.aclose()


async def test_server_disconnect_sends_push_then_close(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c:
        await c.connect("alice")
        await c.subscribe("news")
        assert await running.hub.disconnect(PROJECT, "alice", "banned") == 1
        reason = await c.closed()
        assert (await c.next_push("disconnect")) == {"method": "disconnect", "error": None, "body": {"reason": "banned"}}
        assert reason.code == 1005
    assert await running.hub.channels(PROJECT) == {}


async def test_server_unsubscribe_tells_others_not_the_client(start_hub):
    running = await start_hub()
    async with legacy_client(running.url("realtime")) as c, legacy_client(running.url("realtime")) as other:
        await c.connect("alice")
        await other.connect("bob")
        await c.subscribe("news")
        await other.subscribe("news")
        await running.hub.unsubscribe(PROJECT, "alice", "news")
        assert (await other.next_push("leave"))["body"]["data"]["user"] == "alice"
        await running.publish("news", 1)
        assert (await c.call("ping"))["body"] == "pong"
        assert [p["method"] for p in c.pushes] == ["join", "join"]


async def test_slow_client_disconnected_others_get_everything(start_hub):
    running = await start_hub("[hub]\nmax_queue_bytes = 262144\n")
    url = ws_url(running)
    slow = await RawWebSocket.connect(url)
    fast = await RawWebSocket.connect(url)
    for ws, user in ((slow, "slow"), (fast, "fast")):
        await ws.send_json({"method": "connect", "params": connect_params(user)})
        await ws.recv_reply()
        await ws.send_json({"method": "subscribe", "params": {"channel": "news"}})
        assert (await ws.recv_reply())[0]["error"] is None
    payload = "x" * 8000
    count = 1500
    got = []

    async def read_fast():
        while len(got) < count:
            frame = await fast.recv_json()
            if isinstance(frame, dict) and frame["method"] == "message":
                got.append(frame["body"]["data"]["i"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_fast)
        for i in range(count):
            await running.publish("news", {"i": i, "pad": payload})
            # The fast reader keeps within a few messages; the slow one never reads.
            while len(got) < i - 10:
                await trio.sleep(0.001)
            await trio.sleep(0)
    assert got == list(range(count))
    stats = running.stats()
    assert stats["slow_disconnects"] == 1 and stats["messages_dropped"] > 0
    seen, last, close = 0, None, None
    with trio.fail_after(15):
        while True:
            try:
                opcode, data = await slow.recv()
            except EOFError:
                break
            if opcode == 8:
                close = data
                break
            last = json.loads(data)
            seen += last["method"] == "message"
    assert last["method"] == "message"  # no disconnect push: the client reconnects, as after any server close
    assert close == b""
    # It read exactly what was written for it before it fell behind; the rest of its queue was counted as dropped.
    assert seen == stats["messages_delivered"] - count
    assert seen + stats["messages_dropped"] < count
    await slow.aclose()
    await fast.aclose()


async def test_publication_through_core_reaches_1000_clients(start_hub):
    running = await start_hub()
    url = ws_url(running)
    clients = []

    async def open_one(i):
        ws = await RawWebSocket.connect(url)
        await ws.send_json([{"method": "connect", "params": connect_params(f"u{i}")},
                            {"method": "subscribe", "params": {"channel": "nohist:news"}}])
        replies = await ws.recv_reply()
        assert replies[1]["error"] is None, replies
        clients.append(ws)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(1000):
                nursery.start_soon(open_one, i)
    assert (await running.hub.channels(PROJECT))["nohist:news"] == 1000
    await running.publish("nohist:news", {"hello": "everyone"})
    received = 0

    async def read(ws):
        nonlocal received
        while True:
            frame = await ws.recv_json()
            if isinstance(frame, dict) and frame["method"] == "message":
                assert frame["body"]["data"] == {"hello": "everyone"}
                received += 1
                return

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for ws in clients:
                nursery.start_soon(read, ws)
    assert received == 1000
    assert running.stats()["messages_delivered"] == 1000
    for ws in clients:
        await ws.aclose()
