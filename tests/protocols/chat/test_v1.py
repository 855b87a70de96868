"""Rocket.Chat REST v1 behaviour beyond rocketchat_API's own suite, with the real client: private rooms,
who may edit and delete, unread counters, incoming webhooks, start-up as Rocket.Chat starts."""

from __future__ import annotations

import httpx
import pytest

from protocols.chat import rcdata

from .conftest import PASSWORD
from .test_rocketchat_client import RocketApiException, RocketChat, sync


async def test_startup_as_rocketchat(chat_hub):
    hub = await chat_hub()
    anon = RocketChat(server_url=hub.url, timeout=10)
    first = await sync(anon.users_register, email="a@example.com", name="A", password="pw-a", username="first")
    second = await sync(anon.users_register, email="b@example.com", name="B", password="pw-b", username="second")
    assert first["user"]["roles"] == ["admin", "user"] and second["user"]["roles"] == ["user"]
    admin = await sync(RocketChat, "first", "pw-a", server_url=hub.url, timeout=10)
    members = [m["username"] for m in await sync(admin.channels_members, room_id="GENERAL")]
    assert sorted(members) == ["first", "second"]
    perms = {p["_id"]: p["roles"] for p in (await sync(admin.permissions_list_all))["update"]}
    assert set(rcdata.PERMISSIONS) <= set(perms) and perms["message-impersonate"] == ["bot", "app"]
    # A permission the hub does not enforce is accepted and kept.
    await sync(admin.permissions_update, [{"_id": "message-impersonate", "roles": ["admin", "bot", "app"]}])
    perms = {p["_id"]: p["roles"] for p in (await sync(admin.permissions_list_all))["update"]}
    assert perms["message-impersonate"] == ["admin", "bot", "app"]
    assert {"admin", "moderator", "owner", "leader", "user", "bot", "guest", "app", "anonymous"} <= {
        r["_id"] for r in (await sync(admin.roles_list))["roles"]}
    lic = await sync(admin.licenses_info)
    assert "license" in lic and "license" not in lic["license"]  # Community: no license
    async with httpx.AsyncClient() as client:
        version = (await client.get(f"{hub.url}/api/version")).json()
        assert version["versions"]["rocketchat"] == rcdata.ROCKETCHAT_VERSION and version["versions"]["hub"]
        assert (await client.get(f"{hub.url}/api/v1/info")).json()["info"]["version"] == rcdata.ROCKETCHAT_VERSION


async def test_private_rooms_edits_deletes_and_unread(chat_hub):
    hub = await chat_hub()
    await hub.add_user("owner", "admin")
    await hub.add_user("alice")
    await hub.add_user("bob")
    owner = await sync(RocketChat, "owner", PASSWORD, server_url=hub.url, timeout=10)
    alice = await sync(RocketChat, "alice", PASSWORD, server_url=hub.url, timeout=10)
    bob = await sync(RocketChat, "bob", PASSWORD, server_url=hub.url, timeout=10)

    group = (await sync(alice.groups_create, "secret", members=["owner"]))["group"]
    assert group["t"] == "p"
    for call in (lambda: bob.groups_info(room_id=group["_id"]), lambda: bob.groups_history(group["_id"]),
                 lambda: bob.rooms_info(room_id=group["_id"])):
        with pytest.raises(RocketApiException) as exc:
            await sync(call)
        assert exc.value.error_type == "error-room-not-found"
    assert group["_id"] not in [r["_id"] for r in (await sync(bob.spotlight, "secret"))["rooms"]]
    with pytest.raises(RocketApiException):
        await sync(bob.chat_post_message, "x", room_id=group["_id"])

    sent = (await sync(alice.chat_post_message, "hello @bob", room_id="GENERAL"))["message"]
    assert sent["mentions"] == [{"_id": bob.headers["X-User-Id"], "username": "bob", "type": "user"}]
    sub = (await sync(bob.subscriptions_get_one, "GENERAL"))["subscription"]
    assert sub["unread"] == 1 and sub["userMentions"] == 1 and sub["alert"] is True
    await sync(bob.subscriptions_read, rid="GENERAL")
    assert (await sync(bob.subscriptions_get_one, "GENERAL"))["subscription"]["unread"] == 0

    # Only the author (or a role that may) edits or deletes.
    with pytest.raises(RocketApiException) as exc:
        await sync(bob.chat_update, "GENERAL", sent["_id"], "hijacked")
    assert exc.value.error_type == "error-action-not-allowed"
    with pytest.raises(RocketApiException):
        await sync(bob.chat_delete, "GENERAL", sent["_id"])
    assert (await sync(alice.chat_update, "GENERAL", sent["_id"], "edited"))["message"]["editedBy"]["username"] == "alice"
    assert (await sync(owner.chat_delete, "GENERAL", sent["_id"]))["_id"] == sent["_id"]  # admin: delete-message
    with pytest.raises(RocketApiException):
        await sync(bob.chat_get_message, sent["_id"])

    # Rocket.Chat's edit time limit (Message_AllowEditing_BlockEditInMinutes) binds authors without edit-message.
    old = (await sync(alice.chat_post_message, "old news", room_id="GENERAL"))["message"]
    await sync(owner.settings_update, "Message_AllowEditing_BlockEditInMinutes", 1)
    await hub.service.db.call(lambda c: c.execute("UPDATE messages SET ts = ts - 120000 WHERE id = ?", (old["_id"],)))
    with pytest.raises(RocketApiException) as exc:
        await sync(alice.chat_update, "GENERAL", old["_id"], "too late")
    assert exc.value.error_type == "error-message-editing-blocked"
    await sync(owner.settings_update, "Message_AllowEditing_BlockEditInMinutes", 0)
    assert (await sync(alice.chat_update, "GENERAL", old["_id"], "in time"))["message"]["msg"] == "in time"

    # Threads and reactions.
    parent = (await sync(alice.chat_post_message, "parent", room_id="GENERAL"))["message"]
    await sync(bob.chat_post_message, "reply", room_id="GENERAL", tmid=parent["_id"])
    assert [m["msg"] for m in await sync(alice.chat_get_thread_messages, parent["_id"])] == ["reply"]
    got = (await sync(alice.chat_get_message, parent["_id"]))["message"]
    assert got["tcount"] == 1 and got["replies"] == [bob.headers["X-User-Id"]]
    await sync(bob.chat_react, parent["_id"], "tada")
    assert (await sync(alice.chat_get_message, parent["_id"]))["message"]["reactions"] == {":tada:": {"usernames": ["bob"]}}
    await sync(bob.chat_react, parent["_id"], "tada")  # toggles off
    assert "reactions" not in (await sync(alice.chat_get_message, parent["_id"]))["message"]

    # Channel settings: topic, purpose, description need edit-room (the creator is the owner).
    room = (await sync(alice.channels_create, "plans"))["channel"]
    assert (await sync(alice.channels_set_topic, room["_id"], "the topic"))["topic"] == "the topic"
    r = await sync(alice.call_api_post, "channels.setPurpose", roomId=room["_id"], purpose="why")
    assert r["purpose"] == "why"
    with pytest.raises(RocketApiException) as exc:
        await sync(bob.channels_set_topic, room["_id"], "mine")
    assert exc.value.status_code == 403
    info = (await sync(bob.channels_info, room_id=room["_id"]))["channel"]
    assert info["topic"] == "the topic" and info["description"] == "why"


async def test_incoming_webhook_posts_into_its_room(chat_hub):
    hub = await chat_hub()
    await hub.add_user("admin", "admin")
    admin = await sync(RocketChat, "admin", PASSWORD, server_url=hub.url, timeout=10)
    created = (await sync(admin.integrations_create, integrations_type="webhook-incoming", name="ci", enabled=True,
                          username="admin", channel="#general", script_enabled=False, alias="CI"))["integration"]
    async with httpx.AsyncClient() as client:
        url = f"{hub.url}/hooks/{created['_id']}/{created['token']}"
        r = await client.post(url, json={"text": "build passed", "attachments": [{"title": "log", "text": "ok"}]})
        assert r.status_code == 200 and r.json() == {"success": True}
        r = await client.post(f"{hub.url}/hooks/{created['_id']}/wrong-token", json={"text": "x"})
        assert r.status_code == 404 and r.json()["success"] is False
    (last,) = list(await sync(admin.channels_history, "GENERAL", count=1, max_count=1))
    assert last["msg"] == "build passed" and last["alias"] == "CI" and last["attachments"][0]["title"] == "log"
    await sync(admin.integrations_update, integrations_type="webhook-incoming", name="ci", enabled=False, username="admin",
               channel="#general", script_enabled=False, integration_id=created["_id"])
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{hub.url}/hooks/{created['_id']}/{created['token']}", json={"text": "nope"})
        assert r.status_code == 400


async def test_users_avatar_presence_and_tokens(chat_hub):
    hub = await chat_hub("create_tokens_secret = \"s3cret\"")
    uid = await hub.add_user("admin", "admin")
    admin = await sync(RocketChat, "admin", PASSWORD, server_url=hub.url, timeout=10)
    await sync(admin.users_set_avatar, "https://example.com/me.png")
    assert (await sync(admin.users_info, user_id=uid))["user"]["avatarUrl"] == "https://example.com/me.png"
    await sync(admin.users_set_status, message="busy day", status="busy")
    presence = await sync(admin.users_get_presence, user_id=uid)
    assert presence["presence"] == "busy" and presence["connectionStatus"] == "online"
    with pytest.raises(RocketApiException) as exc:
        await sync(admin.users_create_token, uid, "wrong")
    assert exc.value.status_code == 403
    token = (await sync(admin.users_create_token, uid, "s3cret"))["data"]
    other = RocketChat(user_id=token["userId"], auth_token=token["authToken"], server_url=hub.url, timeout=10)
    assert (await sync(other.me))["_id"] == uid


async def test_a_message_with_a_lone_surrogate_is_kept_with_a_replacement_character(chat_hub):
    """`"\\ud800"` is valid JSON: Rocket.Chat stores it as U+FFFD (Node's UTF-8); here it once failed with a 500."""
    hub = await chat_hub()
    await hub.add_user("alice", "user")
    async with httpx.AsyncClient() as client:
        auth = await hub.login(client, "alice")
        sent = await client.post(f"{hub.url}/api/v1/chat.postMessage", content=b'{"roomId": "GENERAL", "text": "odd \\ud800 x"}',
                                 headers={**auth, "Content-Type": "application/json"})
        assert sent.status_code == 200 and sent.json()["message"]["msg"] == "odd \ufffd x"
        history = await client.get(f"{hub.url}/api/v1/channels.history", headers=auth, params={"roomId": "GENERAL"})
        assert [m["msg"] for m in history.json()["messages"]] == ["odd \ufffd x"]
