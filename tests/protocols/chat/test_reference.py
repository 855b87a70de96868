"""The reference REST API on a running hub: its curl flow as written, bulk methods, errors, tokens, realtime."""

from __future__ import annotations

import json
import shutil
from typing import Any

import httpx
import pytest
import trio

from hub.core.events import HubEvent
from tests.legacy_client import legacy_client

from .conftest import PASSWORD

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


async def curl(*args: str) -> Any:
    """Run the real curl (silenced progress meter) and parse its JSON output."""
    proc = await trio.run_process(["curl", "-s", "-S", *args], capture_stdout=True, capture_stderr=True)
    return json.loads(proc.stdout)


async def test_reference_curl_flow(chat_hub):
    hub = await chat_hub()
    await hub.add_user("sing", password="MySECRET")
    url = hub.url

    assert await curl(f"{url}/api/version") == {"status": "success",
                                                "versions": {"api": "0.1", "rocketchat": "8.5.0", "hub": "0.1.0"}}

    login = await curl(f"{url}/api/login", "-d", "password=MySECRET&user=sing")
    assert login["status"] == "success" and set(login["data"]) == {"authToken", "userId"}
    token, uid = login["data"]["authToken"], login["data"]["userId"]
    auth = ["-H", f"X-Auth-Token: {token}", "-H", f"X-User-Id: {uid}"]

    rooms = await curl(*auth, f"{url}/api/publicRooms")
    assert rooms["status"] == "success"
    general = next(r for r in rooms["rooms"] if r["_id"] == "GENERAL")
    # New users are in GENERAL from the start, as on Rocket.Chat.
    assert general["t"] == "c" and general["usernames"] == ["sing"] and general["ts"].endswith("Z")

    assert await curl(*auth, f"{url}/api/rooms/GENERAL/join", "-d", "{}") == {"status": "success"}
    rooms = await curl(*auth, f"{url}/api/publicRooms")
    assert next(r for r in rooms["rooms"] if r["_id"] == "GENERAL")["usernames"] == ["sing"]

    sent = await curl("-H", f"X-Auth-Token: {token}", "-H", "Content-Type: application/json", "-X", "POST",
                      "-H", f"X-User-Id: {uid}", f"{url}/api/rooms/GENERAL/send", "-d", '{ "msg" : "OK" }')
    assert sent == {"status": "success"}

    unread = await curl(*auth, f"{url}/api/rooms/GENERAL/messages")
    assert unread["status"] == "success"
    (message,) = unread["messages"]
    assert message["rid"] == "GENERAL" and message["msg"] == "OK" and message["u"]["_id"] == uid
    assert message["u"]["username"] == "sing"  # the document's fields, then Rocket.Chat's "other fields"
    assert {"_id", "rid", "msg", "ts", "u"} <= set(message) and message["ts"][10] == "T" and message["ts"].endswith("Z")
    # Reading marked them read.
    assert (await curl(*auth, f"{url}/api/rooms/GENERAL/messages"))["messages"] == []

    assert await curl(*auth, f"{url}/api/rooms/GENERAL/leave", "-d", "{}") == {"status": "success"}
    rooms = await curl(*auth, f"{url}/api/publicRooms")
    assert next(r for r in rooms["rooms"] if r["_id"] == "GENERAL")["usernames"] == []

    assert await curl(*auth, f"{url}/api/logout") == {"status": "success", "data": {"message": "You've been logged out!"}}
    assert await curl(*auth, f"{url}/api/publicRooms") == {"status": "error", "message": "You must be logged in to do this."}


async def test_unread_messages_per_user_and_limit(chat_hub):
    hub = await chat_hub("unread_limit = 3")
    await hub.add_user("alice")
    await hub.add_user("bob")
    async with httpx.AsyncClient() as client:
        alice, bob = await hub.login(client, "alice"), await hub.login(client, "bob")
        for who in (alice, bob):
            assert (await client.post(f"{hub.url}/api/rooms/GENERAL/join", headers=who)).json() == {"status": "success"}
        for i in range(5):
            r = await client.post(f"{hub.url}/api/rooms/GENERAL/send", headers=alice, json={"msg": f"m{i}"})
            assert r.json() == {"status": "success"}
        first = (await client.get(f"{hub.url}/api/rooms/GENERAL/messages", headers=bob)).json()["messages"]
        assert [m["msg"] for m in first] == ["m0", "m1", "m2"]
        second = (await client.get(f"{hub.url}/api/rooms/GENERAL/messages", headers=bob)).json()["messages"]
        assert [m["msg"] for m in second] == ["m3", "m4"]
        # alice's markers are her own.
        assert [m["msg"] for m in (await client.get(f"{hub.url}/api/rooms/GENERAL/messages", headers=alice)).json()["messages"]] \
            == ["m0", "m1", "m2"]


async def test_errors(chat_hub):
    hub = await chat_hub("max_message_length = 10")
    await hub.add_user("alice")
    url = hub.url
    async with httpx.AsyncClient() as client:
        # 401: no token, bad token, wrong user id, bad password.
        for headers in ({}, {"X-Auth-Token": "nope", "X-User-Id": "x"}):
            r = await client.get(f"{url}/api/publicRooms", headers=headers)
            assert (r.status_code, r.json()) == (401, {"status": "error", "message": "You must be logged in to do this."})
        auth = await hub.login(client, "alice")
        r = await client.get(f"{url}/api/publicRooms", headers={**auth, "X-User-Id": "someone-else"})
        assert r.status_code == 401
        r = await client.post(f"{url}/api/login", data={"user": "alice", "password": "wrong"})
        assert (r.status_code, r.json()["status"]) == (401, "error")
        r = await client.post(f"{url}/api/login", data={"user": "nobody", "password": "wrong"})
        assert r.status_code == 401
        # 400: bad payloads.
        r = await client.post(f"{url}/api/login", data={"user": "alice"})
        assert (r.status_code, r.json()) == (400, {"status": "error", "message": "'password' is required"})
        await client.post(f"{url}/api/rooms/GENERAL/join", headers=auth)
        for body in (b"{not json", b"[1]", b'{"msg": 5}', b'{"msg": ""}', b'{"msg": "far too long here"}', b"\xff"):
            r = await client.post(f"{url}/api/rooms/GENERAL/send", headers={**auth, "Content-Type": "application/json"}, content=body)
            assert r.status_code == 400 and r.json()["status"] == "error" and r.json()["message"], body
        # 404: unknown room; 403: sending to a room one has not joined.
        for method, path in (("GET", "rooms/nope/messages"), ("POST", "rooms/nope/join"), ("POST", "rooms/nope/send")):
            r = await client.request(method, f"{url}/api/{path}", headers=auth, json={"msg": "x"} if method == "POST" else None)
            assert (r.status_code, r.json()["status"]) == (404, "error"), path
        await client.post(f"{url}/api/rooms/GENERAL/leave", headers=auth)
        r = await client.post(f"{url}/api/rooms/GENERAL/send", headers=auth, json={"msg": "hi"})
        assert (r.status_code, r.json()) == (403, {"status": "error", "message": "You must join the room before sending to it"})
        # The server's own errors on the chat port keep the shape.
        r = await client.get(f"{url}/nothing/here")
        assert (r.status_code, r.json()) == (404, {"status": "error", "message": "not found"})
        r = await client.get(f"{url}/api/login")
        assert (r.status_code, r.json()["status"], r.headers["allow"]) == (405, "error", "POST")
        r = await client.post(f"{url}/api/login", content=b"x" * (2 << 20))
        assert (r.status_code, r.json()["status"]) == (413, "error")


async def test_bulk_methods_need_their_permissions(chat_hub):
    hub = await chat_hub()
    await hub.add_user("root", "admin")
    await hub.add_user("plain")
    await hub.add_user("registrar")
    url = hub.url
    users = {"users": [{"email": "a1@example.com", "name": "bulk1", "pass": "pw-1"},
                       {"email": "a2@example.com", "name": "bulk2", "pass": "pw-2"}]}
    rooms = {"rooms": [{"name": "junk-1", "members": ["plain"]}, {"name": "junk-2", "members": []}]}
    async with httpx.AsyncClient(timeout=30) as client:
        plain, root, registrar = (await hub.login(client, "plain"), await hub.login(client, "root"),
                                  await hub.login(client, "registrar"))
        # Without the permission: 403, nothing created.
        for path, body in (("bulk/register", users), ("bulk/createRoom", rooms)):
            r = await client.post(f"{url}/api/{path}", headers=plain, json=body)
            assert r.status_code == 403 and r.json()["status"] == "error", r.text
        assert (await client.post(f"{url}/api/login", data={"user": "bulk1", "password": "pw-1"})).status_code == 401

        # Grant bulk-register-user to a new role of `registrar` with the admin-only API: now it may.
        r = await client.post(f"{url}/api/v1/roles.create", headers=root, json={"name": "registrars"})
        assert r.json()["success"] is True
        r = await client.post(f"{url}/api/v1/permissions.update", headers=root,
                              json={"permissions": [{"_id": "bulk-register-user", "roles": ["registrars"]}]})
        # As Rocket.Chat: the answer lists every permission; this one has exactly the roles given.
        assert {p["_id"]: p["roles"] for p in r.json()["permissions"]}["bulk-register-user"] == ["registrars"]
        r = await client.post(f"{url}/api/v1/roles.addUserToRole", headers=root, json={"roleId": "registrars", "username": "registrar"})
        assert r.json()["success"] is True
        r = await client.post(f"{url}/api/bulk/register", headers=registrar, json=users)
        assert r.status_code == 200 and r.json()["status"] == "success" and len(r.json()["ids"]) == 2
        assert all(set(i) == {"uid"} for i in r.json()["ids"])
        login = await client.post(f"{url}/api/login", data={"user": "bulk2", "password": "pw-2"})
        assert login.json()["data"]["userId"] == r.json()["ids"][1]["uid"]
        # registrar still may not create rooms; admin may (admin has every permission).
        assert (await client.post(f"{url}/api/bulk/createRoom", headers=registrar, json=rooms)).status_code == 403
        r = await client.post(f"{url}/api/bulk/createRoom", headers=root, json=rooms)
        assert r.status_code == 200 and r.json()["status"] == "success" and len(r.json()["ids"]) == 2
        listed = {room["_id"]: room for room in (await client.get(f"{url}/api/publicRooms", headers=plain)).json()["rooms"]}
        assert listed[r.json()["ids"][0]["rid"]]["name"] == "junk-1"
        assert sorted(listed[r.json()["ids"][0]["rid"]]["usernames"]) == ["plain", "root"]

        # All or nothing: a taken name or bad payload fails the whole call with 400.
        r = await client.post(f"{url}/api/bulk/register", headers=root,
                              json={"users": [{"name": "fresh", "pass": "x"}, {"name": "bulk1", "pass": "x"}]})
        assert r.status_code == 400 and "bulk1" in r.json()["message"]
        assert (await client.post(f"{url}/api/login", data={"user": "fresh", "password": "x"})).status_code == 401
        for body in ({}, {"users": []}, {"users": [{"name": "x y", "pass": "p"}]}, {"users": [{"name": "ok"}]}, {"users": "no"}):
            r = await client.post(f"{url}/api/bulk/register", headers=root, json=body)
            assert r.status_code == 400 and r.json()["status"] == "error", body
        r = await client.post(f"{url}/api/bulk/createRoom", headers=root, json={"rooms": [{"name": "junk-3", "members": ["ghost"]}]})
        assert r.status_code == 400


async def test_token_expiry_and_logout_revoke(chat_hub):
    hub = await chat_hub("token_ttl = 60")
    await hub.add_user("alice")
    async with httpx.AsyncClient() as client:
        first, second = await hub.login(client, "alice"), await hub.login(client, "alice")
        assert first != second
        r = await client.post(f"{hub.url}/api/logout", headers=first)
        assert r.status_code == 200
        assert (await client.get(f"{hub.url}/api/publicRooms", headers=first)).status_code == 401
        assert (await client.get(f"{hub.url}/api/logout", headers=first)).status_code == 401
        assert (await client.get(f"{hub.url}/api/publicRooms", headers=second)).status_code == 200
        real = hub.service.clock
        hub.service.clock = lambda: real() + 60_000
        r = await client.get(f"{hub.url}/api/publicRooms", headers=second)
        assert (r.status_code, r.json()["message"]) == (401, "You must be logged in to do this.")
        hub.service.clock = real
        assert (await client.get(f"{hub.url}/api/publicRooms", headers=second)).status_code == 200


async def test_websocket_subscriber_receives_rest_message(chat_hub):
    hub = await chat_hub('channel_prefix = "chat:"', """
        [projects.development.namespaces.chat]
        history_size = 10
        history_lifetime = 60
    """)
    events: list[HubEvent] = []
    hub.running.hub.events.add(events.append)
    await hub.add_user("alice")
    before = hub.running.stats()["messages_in"]
    async with httpx.AsyncClient() as client, legacy_client(hub.running.url("realtime")) as ws:
        await ws.connect("bob")
        await ws.subscribe("chat:GENERAL")
        auth = await hub.login(client, "alice")
        await client.post(f"{hub.url}/api/rooms/GENERAL/join", headers=auth)
        r = await client.post(f"{hub.url}/api/rooms/GENERAL/send", headers=auth, json={"msg": "hello sockets"})
        assert r.json() == {"status": "success"}
        push = await ws.next_push("message")
        data = push["body"]["data"]
        assert push["body"]["channel"] == "chat:GENERAL"
        assert data["msg"] == "hello sockets" and data["rid"] == "GENERAL" and data["u"]["username"] == "alice"
        stored = (await client.get(f"{hub.url}/api/rooms/GENERAL/messages", headers=auth)).json()["messages"]
        assert stored == [data]
    assert hub.running.stats()["messages_in"] == before + 1
    pubs = [e for e in events if e.type == "publication"]
    assert [e.data["publication"].channel for e in pubs] == ["chat:GENERAL"]
    assert pubs[0].data["publication"].data == data
    assert (await hub.running.history("chat:GENERAL")).publications[0].data == data


async def test_actions_registered(chat_hub):
    hub = await chat_hub()
    await hub.add_user("alice")
    actions = hub.running.actions
    assert {"chat.rooms", "chat.send", "chat.history", "chat.create_room"} <= {a.name for a in actions}
    assert all(actions.get(n).doc for n in ("chat.rooms", "chat.send", "chat.history", "chat.create_room"))
    async with legacy_client(hub.running.url("realtime")) as ws:
        await ws.connect("carol")
        await ws.subscribe("chat.GENERAL")
        sent = await actions.get("chat.send").func(room="general", msg="from a backend", user="alice")
        assert (await ws.next_push("message"))["body"]["data"] == sent
    room = await actions.get("chat.create_room").func(name="ops", members=["alice"])
    assert room["usernames"] == ["alice"]
    assert [r["name"] for r in await actions.get("chat.rooms").func()] == ["general", "ops"]
    assert await actions.get("chat.history").func(room="GENERAL", limit=5) == [sent]
    with pytest.raises(Exception, match="room not found"):
        await actions.get("chat.send").func(room="nope", msg="x", user="alice")
    async with httpx.AsyncClient() as client:
        auth = await hub.login(client, "alice", PASSWORD)
        unread = (await client.get(f"{hub.url}/api/rooms/GENERAL/messages", headers=auth)).json()["messages"]
        assert unread == [sent]
