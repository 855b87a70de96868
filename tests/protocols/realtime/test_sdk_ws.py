"""The current Centrifugo protocol over real sockets with a bare websocket client: the exact frames a
minimal client sends, pings and pongs, close codes, and the msgpack variant beside JSON and the original protocol."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import msgpack
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from protocols.realtime.tokens import make_token
from tests.conftest import PROJECT, SECRET
from tests.legacy_client import legacy_client

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

FAST_PINGS = """
[realtime]
ping_interval = 2
pong_timeout = 1
stale_close_delay = 1
"""


def ws_url(running: Any) -> str:
    return running.url("realtime").replace("http://", "ws://") + "/connection/websocket"


def token(user: str = "alice", **claims: Any) -> str:
    return make_token(SECRET, {"sub": user, **claims})


async def json_messages(ws: WebSocketConnection, timeout: float = 5) -> list[dict[str, Any]]:
    """The objects of the next text message (newline-delimited JSON)."""
    with trio.fail_after(timeout):
        message = await ws.get_message()
    assert isinstance(message, str)
    return [json.loads(line) for line in message.split("\n")]


async def close_code(ws: WebSocketConnection, timeout: float = 5) -> tuple[int, str]:
    with trio.fail_after(timeout):
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            return exc.reason.code, exc.reason.reason


async def test_minimal_json_client_connects_subscribes_and_receives(start_hub):
    running = await start_hub()
    async with open_websocket_url(ws_url(running)) as ws:
        # what a cheap client sends: connect and subscribe in one message, one command per line
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": token()}}) + "\n"
                              + json.dumps({"id": 2, "subscribe": {"channel": "public:bench"}}))
        (connect,) = await json_messages(ws)
        (subscribe,) = await json_messages(ws)  # no join push: the client did not ask for join/leave
        assert connect["id"] == 1 and len(connect["connect"]["client"]) == 32
        assert connect["connect"]["ping"] == 25 and connect["connect"]["pong"] is True
        assert subscribe == {"id": 2, "subscribe": {"recoverable": True, "positioned": True, "offset": 0,
                                                    "epoch": subscribe["subscribe"]["epoch"]}}
        await running.publish("public:bench", {"n": 1})
        assert await json_messages(ws) == [{"push": {"channel": "public:bench", "pub": {"data": {"n": 1}, "offset": 1}}}]
        # commands answered in order, several replies in one message
        await ws.send_message('{"id":3,"presence_stats":{"channel":"public:bench"}}\n'
                              '{"id":4,"history":{"channel":"public:bench","limit":5}}')
        stats, history = await json_messages(ws)
        assert stats == {"id": 3, "presence_stats": {"num_clients": 1, "num_users": 1}}
        assert [p["data"] for p in history["history"]["publications"]] == [{"n": 1}]
        await ws.send_message('{"id":5,"publish":{"channel":"public:bench","data":{"me":1}}}')
        push, reply = await json_messages(ws), await json_messages(ws)
        assert push[0]["push"]["pub"]["data"] == {"me": 1} and reply == [{"id": 5, "publish": {}}]


async def test_server_pings_and_client_pongs(start_hub):
    running = await start_hub(FAST_PINGS)
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": token()}}))
        (reply,) = await json_messages(ws)
        assert (reply["connect"]["ping"], reply["connect"]["pong"]) == (2, True)
        for _ in range(2):
            assert await json_messages(ws) == [{}]
            await ws.send_message("{}")
        assert len(running.hub.sessions) == 1


async def test_no_pong_closes_with_3012(start_hub):
    running = await start_hub(FAST_PINGS)
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": token()}}))
        await json_messages(ws)
        assert await json_messages(ws) == [{}]
        assert await close_code(ws) == (3012, "no pong")
    with trio.fail_after(2):
        while running.hub.sessions:
            await trio.sleep(0.01)


async def test_close_codes(start_hub):
    running = await start_hub(FAST_PINGS)
    async with open_websocket_url(ws_url(running)) as ws:  # never connects
        await ws.send_message('{"id":1,"connect":{}}')
        assert (await json_messages(ws))[0]["error"] == {"code": 101, "message": "unauthorized"}
        assert await close_code(ws) == (3502, "stale")
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message('{"id":1,"subscribe":{"channel":"news"}}')
        assert await close_code(ws) == (3501, "bad request")
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": token(exp=1)}}))
        assert await json_messages(ws) == [{"id": 1, "error": {"code": 109, "message": "token expired"}}]
        await ws.send_message(json.dumps({"id": 2, "connect": {"token": make_token("wrong", {"sub": "x"})}}))
        assert await close_code(ws) == (3500, "invalid token")
    async with open_websocket_url(ws_url(running)) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": token()}}))
        await json_messages(ws)
        await running.hub.disconnect(PROJECT, "alice", "slow", reconnect=True)
        push = await json_messages(ws)
        assert push == [{"push": {"disconnect": {"code": 3008, "reason": "slow", "reconnect": True}}}]
        assert await close_code(ws) == (3008, "slow")


async def test_subscription_token_expiry_unsubscribes_with_2501(start_hub):
    running = await start_hub("""
    [realtime]
    expired_close_delay = 0
    """)
    async with open_websocket_url(ws_url(running)) as ws:
        # at least a second: int(time.time()) + 1 can be already past at subscribe, and that is a 109
        sub_token = make_token(SECRET, {"sub": "alice", "channel": "$room", "exp": math.ceil(time.time()) + 1})
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": token()}}) + "\n"
                              + json.dumps({"id": 2, "subscribe": {"channel": "$room", "token": sub_token}}))
        messages = [obj for _ in range(2) for obj in await json_messages(ws)]
        assert messages[1]["subscribe"]["expires"] is True
        assert await json_messages(ws, timeout=3) == [
            {"push": {"channel": "$room", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}}]
        assert await running.hub.channels(PROJECT) == {}


async def test_msgpack_variant_beside_json_and_the_original_protocol(start_hub):
    running = await start_hub()
    packer = msgpack.Packer(use_bin_type=True)
    async with open_websocket_url(ws_url(running), subprotocols=["centrifuge-msgpack"]) as mp, \
            open_websocket_url(ws_url(running)) as js, legacy_client(running.url("realtime")) as bob:
        assert mp.subprotocol == "centrifuge-msgpack" and js.subprotocol is None

        async def mp_next() -> list[Any]:
            with trio.fail_after(5):
                message = await mp.get_message()
            assert isinstance(message, bytes)
            return _unpack_all(message)

        await mp.send_message(packer.pack({"id": 1, "connect": {"token": token("mia")}})
                              + packer.pack({"id": 2, "subscribe": {"channel": "public:mixed"}}))
        (connect,), (subscribe,) = await mp_next(), await mp_next()
        assert connect["id"] == 1 and connect["connect"]["pong"] is True
        assert subscribe["id"] == 2 and subscribe["subscribe"]["recoverable"] is True
        await js.send_message(json.dumps({"id": 1, "connect": {"token": token("jay")}}) + "\n"
                              + json.dumps({"id": 2, "subscribe": {"channel": "public:mixed"}}))
        for _ in range(2):  # connect reply, subscribe reply (no join/leave asked for)
            await json_messages(js)
        await bob.connect("bob")
        await bob.subscribe("public:mixed")

        await running.publish("public:mixed", {"via": "core"})
        assert await bob.call("publish", {"channel": "public:mixed", "data": {"via": "legacy"}}) is not None
        await mp.send_message(packer.pack({"id": 3, "publish": {"channel": "public:mixed", "data": {"via": "msgpack"}}}))
        seen_mp = [(await mp_next())[0] for _ in range(3)]
        assert [m["push"]["pub"]["data"] for m in seen_mp] == [{"via": "core"}, {"via": "legacy"}, {"via": "msgpack"}]
        assert seen_mp[1]["push"]["pub"]["info"]["user"] == "bob" and seen_mp[2]["push"]["pub"]["offset"] == 3
        assert await mp_next() == [{"id": 3, "publish": {}}]
        seen_js = [(await json_messages(js))[0] for _ in range(3)]
        assert [m["push"]["pub"] for m in seen_js] == [m["push"]["pub"] for m in seen_mp]
        assert [(await bob.next_push("message"))["body"]["data"] for _ in range(3)] == [
            {"via": "core"}, {"via": "legacy"}, {"via": "msgpack"}]
        # a text message on the msgpack subprotocol is a bad request
        await mp.send_message("{}")
        assert await close_code(mp) == (3501, "bad request")  # Centrifugo sends no detail


def _unpack_all(data: bytes) -> list[Any]:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    return list(unpacker)


async def test_a_lone_surrogate_escape_is_published_as_it_came(start_hub):
    """JSON lets a string hold `\\ud800` (Centrifugo passes it through); it once made every JSON encode of the
    publication fail: the publisher got 100, the subscribers nothing, while history kept it."""
    running = await start_hub()
    async with open_websocket_url(ws_url(running)) as pub, open_websocket_url(ws_url(running)) as sub, \
            legacy_client(running.url("realtime")) as bob:
        for ws, user in ((sub, "sue"), (pub, "pat")):
            await ws.send_message(json.dumps({"id": 1, "connect": {"token": token(user)}}) + "\n"
                                  + json.dumps({"id": 2, "subscribe": {"channel": "public:odd"}}))
            for _ in range(2):
                await json_messages(ws)
        await bob.connect("bob")
        await bob.subscribe("public:odd")
        await pub.send_message('{"id":3,"publish":{"channel":"public:odd","data":{"t":"\\ud800 x","k\\udfff":1}}}')
        data = {"t": "\ud800 x", "k\udfff": 1}
        with trio.fail_after(5):
            text = await sub.get_message()
        assert '"data":{"t":"\\ud800 x","k\\udfff":1}' in text and json.loads(text)["push"]["pub"]["data"] == data
        messages = [obj for _ in range(2) for obj in await json_messages(pub)]
        assert [m["push"]["pub"]["data"] for m in messages if "push" in m] == [data]
        assert {"id": 3, "publish": {}} in messages
        assert (await bob.next_push("message"))["body"]["data"] == data
        await pub.send_message('{"id":4,"history":{"channel":"public:odd","limit":5}}')
        (history,) = await json_messages(pub)
        assert [p["data"] for p in history["history"]["publications"]] == [data]
