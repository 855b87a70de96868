"""Rocket.Chat's realtime API (DDP at /websocket): the real `rocketchat-async` client, and raw DDP frames."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.legacy_client import legacy_client

from .conftest import PASSWORD

rocketchat_async = pytest.importorskip("rocketchat_async")


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/websocket"


class DDP:
    """Raw DDP frames over a trio websocket: send, and receive skipping pings unless asked."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []
        self.n = 0

    async def send(self, **msg: Any) -> None:
        await self.ws.send_message(json.dumps(msg))

    async def recv(self) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        with trio.fail_after(5):
            return json.loads(await self.ws.get_message())

    async def expect(self, pred: Any) -> dict[str, Any]:
        """The next frame matching `pred`; frames skipped on the way stay queued for later."""
        skipped = []
        while True:
            msg = json.loads(await self.ws.get_message()) if not self.pending else self.pending.pop(0)
            if pred(msg):
                self.pending = skipped + self.pending
                return msg
            skipped.append(msg)

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        self.n += 1
        mid = f"m{self.n}"
        await self.send(msg="method", method=method, params=list(params), id=mid)
        with trio.fail_after(5):
            result = await self.expect(lambda m: m.get("msg") == "result" and m.get("id") == mid)
            await self.expect(lambda m: m.get("msg") == "updated" and mid in m.get("methods", []))
        return result

    async def sub(self, name: str, *params: Any) -> dict[str, Any]:
        self.n += 1
        sid = f"s{self.n}"
        await self.send(msg="sub", id=sid, name=name, params=list(params))
        with trio.fail_after(5):
            return await self.expect(lambda m: m.get("id") == sid or sid in m.get("subs", []))

    async def event(self, stream: str, name: str | None = None) -> dict[str, Any]:
        with trio.fail_after(5):
            return await self.expect(lambda m: m.get("msg") == "changed" and m.get("collection") == stream
                                     and (name is None or m["fields"]["eventName"] == name))


async def ddp_login(ws: Any, username: str, password: str = PASSWORD) -> tuple[DDP, dict[str, Any]]:
    ddp = DDP(ws)
    assert await ddp.recv() == {"server_id": "0"}
    await ddp.send(msg="connect", version="1", support=["1"])
    connected = await ddp.recv()
    assert connected["msg"] == "connected" and connected["session"]
    digest = hashlib.sha256(password.encode()).hexdigest()
    result = await ddp.call("login", {"user": {"username": username}, "password": {"digest": digest, "algorithm": "sha-256"}})
    return ddp, result


async def test_raw_ddp_session(chat_hub):
    hub = await chat_hub()
    alice = await hub.add_user("alice", "admin")
    bob = await hub.add_user("bob")
    async with open_websocket_url(ws_url(hub.url)) as ws_a, open_websocket_url(ws_url(hub.url)) as ws_b, \
            httpx.AsyncClient() as client:
        a, login = await ddp_login(ws_a, "alice")
        assert login["result"]["id"] == alice and login["result"]["type"] == "password"
        assert isinstance(login["result"]["tokenExpires"]["$date"], int) and login["result"]["token"]
        await a.send(msg="ping", id="p1")
        assert await a.expect(lambda m: m.get("msg") == "pong") == {"msg": "pong", "id": "p1"}

        # A wrong password is Meteor's 403; the connection stays usable.
        b = DDP(ws_b)
        await b.recv()
        await b.send(msg="connect", version="1", support=["1"])
        await b.recv()
        bad = await b.call("login", {"user": {"username": "bob"}, "password": {"digest": "0" * 64, "algorithm": "sha-256"}})
        assert bad["error"]["error"] == 403 and bad["error"]["errorType"] == "Meteor.Error"
        assert (await b.sub("stream-room-messages", "GENERAL", False))["msg"] == "nosub"  # not logged in
        # resume with a token from a REST login
        auth = await hub.login(client, "bob")
        resumed = await b.call("login", {"resume": auth["X-Auth-Token"]})
        assert resumed["result"]["id"] == bob and resumed["result"]["type"] == "resume"

        assert (await a.sub("stream-room-messages", "GENERAL", False))["msg"] == "ready"
        assert (await b.sub("stream-room-messages", "GENERAL", False))["msg"] == "ready"
        assert (await b.sub("stream-notify-room", "GENERAL/deleteMessage", False))["msg"] == "ready"
        assert (await b.sub("stream-notify-room", "GENERAL/user-activity", False))["msg"] == "ready"
        assert (await b.sub("stream-notify-user", f"{bob}/subscriptions-changed", False))["msg"] == "ready"
        assert (await b.sub("stream-notify-user", f"{bob}/rooms-changed", False))["msg"] == "ready"
        assert (await b.sub("stream-notify-user", f"{alice}/rooms-changed", False))["msg"] == "nosub"  # not yours

        # sendMessage: acknowledged with the stored message, and on both users' stream-room-messages.
        sent = await a.call("sendMessage", {"_id": "ddp-msg-1", "rid": "GENERAL", "msg": "hello over ddp"})
        message = sent["result"]
        assert message["_id"] == "ddp-msg-1" and message["msg"] == "hello over ddp" and isinstance(message["ts"]["$date"], int)
        for ddp in (a, b):
            event = await ddp.event("stream-room-messages", "GENERAL")
            assert event["id"] == "id" and event["fields"]["args"][0]["_id"] == "ddp-msg-1"
        changed = await b.event("stream-notify-user", f"{bob}/rooms-changed")
        assert changed["fields"]["args"][0] == "updated" and changed["fields"]["args"][1]["_id"] == "GENERAL"

        # updateMessage, setReaction: the changed message comes again on the stream.
        assert "error" not in await a.call("updateMessage", {"_id": "ddp-msg-1", "rid": "GENERAL", "msg": "edited"})
        edited = (await b.event("stream-room-messages", "GENERAL"))["fields"]["args"][0]
        assert edited["msg"] == "edited" and edited["editedBy"]["username"] == "alice" and "$date" in edited["editedAt"]
        assert (await a.event("stream-room-messages", "GENERAL"))["fields"]["args"][0]["msg"] == "edited"
        assert "error" not in await b.call("setReaction", ":+1:", "ddp-msg-1")
        reacted = (await a.event("stream-room-messages", "GENERAL"))["fields"]["args"][0]
        assert reacted["reactions"] == {":+1:": {"usernames": ["bob"]}}
        # bob may not edit alice's message (Rocket.Chat's error, as a Meteor error).
        denied = await b.call("updateMessage", {"_id": "ddp-msg-1", "rid": "GENERAL", "msg": "hijack"})
        assert denied["error"]["error"] == "error-action-not-allowed"

        # typing (stream-notify-room as a method) reaches the other listener.
        await a.call("stream-notify-room", "GENERAL/user-activity", "alice", ["user-typing"], {})
        typing = await b.event("stream-notify-room", "GENERAL/user-activity")
        assert typing["fields"]["args"] == ["alice", ["user-typing"], {}]

        # deleteMessage: stream-notify-room deleteMessage.
        assert "error" not in await a.call("deleteMessage", {"_id": "ddp-msg-1"})
        deleted = await b.event("stream-notify-room", "GENERAL/deleteMessage")
        assert deleted["fields"]["args"] == [{"_id": "ddp-msg-1"}]

        # rooms/get and subscriptions/get, readMessages resets the unread counter.
        rooms = (await b.call("rooms/get"))["result"]
        assert [r["_id"] for r in rooms] == ["GENERAL"] and rooms[0]["t"] == "c"
        subs = (await b.call("subscriptions/get"))["result"]
        assert subs[0]["rid"] == "GENERAL" and subs[0]["unread"] >= 1
        since = (await b.call("rooms/get", {"$date": 0}))["result"]
        assert set(since) == {"update", "remove"}
        assert "error" not in await b.call("readMessages", "GENERAL")
        assert (await b.call("subscriptions/get"))["result"][0]["unread"] == 0

        # A private group: invisible on the streams to non-members; a new DM shows in subscriptions-changed.
        r = await client.post(f"{hub.url}/api/v1/groups.create", headers=await hub.login(client, "alice"), json={"name": "secret"})
        gid = r.json()["group"]["_id"]
        assert (await b.sub("stream-room-messages", gid, False))["msg"] == "nosub"
        dm = await a.call("createDirectMessage", "bob")
        assert dm["result"]["rid"] == "".join(sorted([alice, bob]))
        inserted = await b.expect(lambda m: m.get("collection") == "stream-notify-user"
                                  and m["fields"]["eventName"] == f"{bob}/subscriptions-changed" and m["fields"]["args"][0] == "inserted")
        assert inserted["fields"]["args"][1]["rid"] == dm["result"]["rid"]

        # Mentioning someone who is not in the room: an ephemeral note to the author only (<uid>/message).
        assert (await a.sub("stream-notify-user", f"{alice}/message", False))["msg"] == "ready"
        await a.call("sendMessage", {"rid": gid, "msg": "hey @bob"})
        note = await a.event("stream-notify-user", f"{alice}/message")
        assert note["fields"]["args"][0]["msg"] == "You mentioned @bob, but they're not in this room."
        assert note["fields"]["args"][0]["private"] is True and note["fields"]["args"][0]["rid"] == gid

        # A message sent over REST appears on DDP.
        await client.post(f"{hub.url}/api/v1/chat.postMessage", headers=auth, json={"roomId": "GENERAL", "text": "from rest"})
        assert (await a.event("stream-room-messages", "GENERAL"))["fields"]["args"][0]["msg"] == "from rest"

        # unsub answers nosub; nothing more arrives for it.
        await a.send(msg="unsub", id="s1")
        assert (await a.expect(lambda m: m.get("msg") == "nosub"))["id"] == "s1"
        unknown = await a.call("noSuchMethod")
        assert unknown["error"]["error"] == 404


async def test_ddp_and_other_adapters_both_ways(chat_hub):
    """A message published to a room's channel by another adapter reaches DDP; a DDP message reaches the others."""
    hub = await chat_hub('channel_prefix = "chat:"', extra="[projects.development.namespaces.chat]\npublish = false")
    await hub.add_user("alice", "admin")
    async with open_websocket_url(ws_url(hub.url)) as ws, legacy_client(hub.running.url("realtime")) as legacy:
        a, _ = await ddp_login(ws, "alice")
        assert (await a.sub("stream-room-messages", "GENERAL", False))["msg"] == "ready"
        await legacy.connect("watcher")
        await legacy.subscribe("chat:GENERAL")

        # in: the embedding API (from hub import run) publishes to the room's channel
        await hub.running.publish("chat:GENERAL", {"text": "from a backend"}, info={"user": "backend"})
        got = (await a.event("stream-room-messages", "GENERAL"))["fields"]["args"][0]
        assert got["rid"] == "GENERAL" and json.loads(got["msg"]) == {"text": "from a backend"}
        assert got["u"]["username"] == "backend" and isinstance(got["ts"]["$date"], int)
        await legacy.next_push("message")

        # out: a DDP message reaches the original-protocol websocket subscriber, with Rocket.Chat's shape
        await a.call("sendMessage", {"rid": "GENERAL", "msg": "from ddp"})
        push = (await legacy.next_push("message"))["body"]
        assert push["channel"] == "chat:GENERAL" and push["data"]["msg"] == "from ddp" and push["data"]["u"]["username"] == "alice"


async def test_rocketchat_async_client(chat_hub):
    """The real asyncio `rocketchat-async` client (run in a thread) against the hub."""
    hub = await chat_hub()
    alice = await hub.add_user("alice", "admin")
    await hub.add_user("bob")
    url = ws_url(hub.url)
    async with httpx.AsyncClient() as client:
        token = (await hub.login(client, "alice"))["X-Auth-Token"]
        bob_auth = await hub.login(client, "bob")
    ready = threading.Event()
    posted = threading.Event()

    async def session() -> dict[str, Any]:
        from rocketchat_async import RocketChat

        out: dict[str, Any] = {"messages": [], "changes": []}
        got_two = asyncio.Event()
        rc = RocketChat()
        await rc.start(url, "alice", PASSWORD)
        out["user_id"] = rc.user_id
        out["channels"] = await rc.get_channels()

        def on_message(channel_id: str, sender_id: str, msg_id: str, thread_id: Any, msg: str, *rest: Any) -> None:
            out["messages"].append((channel_id, sender_id, msg, thread_id))
            if len(out["messages"]) >= 3:
                got_two.set()

        await rc.subscribe_to_channel_messages("GENERAL", on_message)
        await rc.subscribe_to_channel_changes(lambda cid, ctype: out["changes"].append((cid, ctype)))
        await asyncio.sleep(0.2)
        await rc.send_message("hello from rocketchat-async", "GENERAL")
        await rc.send_typing_event("GENERAL")
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, posted.wait, 5)
        await asyncio.wait_for(got_two.wait(), 5)
        first = out["messages"][0]
        await rc.send_message("a reply", "GENERAL", thread_id=None)
        await rc.send_reaction(out["last_id"] if "last_id" in out else first[2], ":smile:")
        # resume with a REST token
        rc2 = RocketChat()
        await rc2.resume(url, "alice", token)
        out["resumed"] = rc2.user_id
        return out

    async with trio.open_nursery() as nursery:
        result: dict[str, Any] = {}

        async def run_client() -> None:
            result.update(await trio.to_thread.run_sync(asyncio.run, session()))

        nursery.start_soon(run_client)
        await trio.to_thread.run_sync(ready.wait, 10)
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{hub.url}/api/v1/chat.postMessage", headers=bob_auth,
                                  json={"channel": "#general", "text": "bob says hi"})
            assert r.json()["success"] is True
        await hub.running.publish("chat.GENERAL", "from another adapter")
        posted.set()
    assert result["user_id"] == alice and result["resumed"] == alice
    assert ("GENERAL", "c") in result["channels"]
    texts = [m[2] for m in result["messages"]]
    assert texts[:3] == ["hello from rocketchat-async", "bob says hi", "from another adapter"]
    assert result["messages"][0][1] == alice


async def test_pipelined_methods_keep_their_order(chat_hub):
    """Methods of one connection run in the order they were sent, as Meteor runs them."""
    hub = await chat_hub()
    await hub.add_user("alice", "admin")
    async with open_websocket_url(ws_url(hub.url)) as ws, httpx.AsyncClient() as client:
        a, _ = await ddp_login(ws, "alice")
        for i in range(40):
            await a.send(msg="method", method="sendMessage", id=f"p{i}", params=[{"rid": "GENERAL", "msg": f"n{i}"}])
        results = []
        with trio.fail_after(10):
            while len(results) < 40:
                m = await a.recv()
                if m.get("msg") == "result":
                    results.append(m["id"])
        assert results == [f"p{i}" for i in range(40)]
        auth = await hub.login(client, "alice")
        r = await client.get(f"{hub.url}/api/v1/channels.history", params={"roomId": "GENERAL", "count": 40}, headers=auth)
        assert [m["msg"] for m in reversed(r.json()["messages"])] == [f"n{i}" for i in range(40)]
