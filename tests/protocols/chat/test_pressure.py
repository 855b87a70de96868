"""Issue 27 through the chat's DDP socket: a method-call flood read slowly gets every result (and its
`updated`) or the slow-consumer close; a subscriber that stops reading a busy room is closed as slow and
counted, after an unbroken run of messages."""

from __future__ import annotations

import hashlib
import json
import socket

import httpx
import trio

from ...rawws import RawWebSocket, client_frame
from ..pressure import flood, wait_for
from .conftest import PASSWORD

SLOW_CONSUMER = 1008
SMALL_QUEUE = "[hub]\nmax_queue_bytes = 65536\n"


async def ddp(url: str, username: str) -> RawWebSocket:
    ws = await RawWebSocket.connect(url.replace("http://", "ws://") + "/websocket")
    assert await ws.recv_json() == {"server_id": "0"}
    await ws.send_json({"msg": "connect", "version": "1", "support": ["1"]})
    assert (await ws.recv_json())["msg"] == "connected"
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    await ws.send_json({"msg": "method", "method": "login", "id": "login",
                        "params": [{"user": {"username": username}, "password": {"digest": digest, "algorithm": "sha-256"}}]})
    with trio.fail_after(10):
        while (msg := await ws.recv_json()).get("msg") != "result":
            pass
    assert "error" not in msg, msg
    return ws


def results(payload: bytes) -> int:
    msg = json.loads(payload)
    if msg.get("msg") == "result":
        assert "error" not in msg, msg
        return 1
    return 0


async def test_method_flood_read_at_once_and_late_gets_every_result(chat_hub):
    hub = await chat_hub(extra=SMALL_QUEUE)
    await hub.add_user("alice", "admin")
    for late in (False, True):
        ws = await ddp(hub.url, "alice")
        n = 1_500
        frame = client_frame(json.dumps({"msg": "method", "method": "rooms/get", "params": [], "id": "m"}))
        replies, closed = await flood(ws, frame, n, late=late, is_reply=results, expected=n)
        assert replies == n or closed == SLOW_CONSUMER, (late, replies, closed)
        await ws.aclose()


async def test_room_subscriber_that_stops_reading_is_closed_as_slow_after_an_unbroken_run(chat_hub):
    hub = await chat_hub(extra=SMALL_QUEUE)
    await hub.add_user("alice", "admin")
    ws = await ddp(hub.url, "alice")
    await ws.send_json({"msg": "sub", "id": "s1", "name": "stream-room-messages", "params": ["GENERAL", False]})
    with trio.fail_after(10):
        while (await ws.recv_json()).get("msg") != "ready":
            pass
    ws.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = hub.running.stats()
    pad = "x" * 1000
    n = 20_000
    for i in range(n):  # published on the room's channel (as any adapter may), in bursts the flusher writes between
        await hub.running.publish(f"{hub.service.settings.channel_prefix}GENERAL", {"i": i, "pad": pad})
        if i % 10 == 9:
            await trio.sleep(0)
        if hub.running.stats()["slow_disconnects"] > before["slow_disconnects"]:
            break
    await wait_for(lambda: hub.running.stats()["slow_disconnects"] == before["slow_disconnects"] + 1)
    seen, closed = [], None
    with trio.fail_after(30):
        while closed is None:
            opcode, payload = await ws.recv()
            if opcode == 8:
                closed = int.from_bytes(payload[:2], "big")
                continue
            msg = json.loads(payload)
            if msg.get("collection") == "stream-room-messages":
                seen.append(json.loads(msg["fields"]["args"][0]["msg"])["i"])
    assert closed == SLOW_CONSUMER and seen == list(range(len(seen))) and len(seen) < n
    after = hub.running.stats()
    assert after["messages_dropped"] > before["messages_dropped"]
    assert hub.running.hub.stats.slow_by_protocol.get("ddp") == 1
    async with httpx.AsyncClient() as client:  # the hub still serves the chat
        assert (await client.get(hub.url + "/api/info")).status_code == 200
