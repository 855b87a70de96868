"""The real `rocketchat_API` client (PyPI) against the hub's REST API v1, unchanged; run in threads (it is synchronous)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from protocols.chat import rcdata
from tests.legacy_client import legacy_client

from .conftest import PASSWORD

rocketchat_API = pytest.importorskip("rocketchat_API.rocketchat")
RocketChat = rocketchat_API.RocketChat
from rocketchat_API.APIExceptions.RocketExceptions import (  # noqa: E402
    RocketApiException,
    RocketAuthenticationException,
    RocketBadStatusCodeException,
)


async def sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking client call in a thread; generators (paginated calls) are drained there too."""
    def call() -> Any:
        result = fn(*args, **kwargs)
        return list(result) if hasattr(result, "__next__") else result

    return await trio.to_thread.run_sync(call)


async def test_client_session(chat_hub):
    hub = await chat_hub()
    uid = await hub.add_user("alice")
    await hub.add_user("bob")
    rc = await sync(RocketChat, "alice", PASSWORD, server_url=hub.url, timeout=10)
    assert rc.headers["X-User-Id"] == uid

    me = await sync(rc.me)
    assert me["success"] is True and me["_id"] == uid and me["username"] == "alice" and me["roles"] == ["user"]
    info = await sync(rc.info)
    # The Rocket.Chat release whose API the hub follows (version-gated client code takes its newer paths).
    assert info["success"] is True and info["version"] == info["info"]["version"] == "8.5.0"

    channels = await sync(rc.channels_list)
    assert [c["_id"] for c in channels] == ["GENERAL"]
    assert (await sync(rc.channels_info, room_id="GENERAL"))["channel"]["name"] == "general"
    assert (await sync(rc.channels_info, channel="general"))["channel"]["_id"] == "GENERAL"

    created = await sync(rc.channels_create, "dev", members=["bob"])
    dev = created["channel"]
    assert created["success"] is True and dev["name"] == "dev" and dev["t"] == "c"
    assert sorted(dev["usernames"]) == ["alice", "bob"] and dev["u"]["username"] == "alice"
    assert sorted(c["name"] for c in await sync(rc.channels_list)) == ["dev", "general"]

    joined = await sync(rc.channels_join, "GENERAL", None)
    assert joined["success"] is True and "alice" in joined["channel"]["usernames"]

    async with legacy_client(hub.running.url("realtime")) as ws:
        await ws.connect("watcher")
        await ws.subscribe(f"chat.{dev['_id']}")
        posted = await sync(rc.chat_post_message, "hello from rocketchat_API", room_id=dev["_id"])
        assert posted["success"] is True and posted["message"]["msg"] == "hello from rocketchat_API"
        assert posted["message"]["rid"] == dev["_id"] and isinstance(posted["ts"], int)
        push = (await ws.next_push("message"))["body"]["data"]
        assert push["_id"] == posted["message"]["_id"] and push["msg"] == "hello from rocketchat_API"
    by_name = await sync(rc.chat_post_message, "by name", channel="#general")
    assert by_name["success"] is True and by_name["channel"] == "#general" and by_name["message"]["rid"] == "GENERAL"

    for i in range(3):
        await sync(rc.chat_post_message, f"n{i}", room_id=dev["_id"])
    history = await sync(rc.channels_history, dev["_id"], count=2)
    assert [m["msg"] for m in history] == ["n2", "n1", "n0", "hello from rocketchat_API"]
    assert all(m["u"]["username"] == "alice" for m in history)

    left = await sync(rc.channels_leave, "GENERAL")
    assert left["success"] is True and "alice" not in left["channel"]["usernames"]
    with pytest.raises(RocketApiException) as exc:
        await sync(rc.channels_leave, "GENERAL")
    assert exc.value.error_type == "error-user-not-in-room"
    with pytest.raises(RocketApiException) as exc:
        await sync(rc.chat_post_message, "not a member", room_id="GENERAL")
    assert exc.value.status_code == 403
    with pytest.raises(RocketApiException) as exc:
        await sync(rc.channels_create, "dev")
    assert exc.value.error_type == "error-duplicate-channel-name"

    out = await sync(rc.logout)
    assert out["status"] == "success"
    with pytest.raises(RocketBadStatusCodeException) as bad:
        await sync(rc.me)
    assert bad.value.status_code == 401


async def test_client_login_failure_and_register(chat_hub):
    hub = await chat_hub()
    await hub.add_user("root", "admin")
    await hub.add_user("alice")
    with pytest.raises(RocketAuthenticationException):
        await sync(RocketChat, "alice", "wrong password", server_url=hub.url, timeout=10)

    anon = RocketChat(server_url=hub.url, timeout=10)
    reg = await sync(anon.users_register, email="new@example.com", name="New Person", password="pw-new", username="newbie")
    assert reg["success"] is True and reg["user"]["username"] == "newbie" and reg["user"]["roles"] == ["user"]
    with pytest.raises(RocketApiException) as exc:
        await sync(anon.users_register, email="other@example.com", name="x", password="pw", username="newbie")
    assert exc.value.status_code == 400
    rc = await sync(RocketChat, "newbie", "pw-new", server_url=hub.url, timeout=10)
    assert (await sync(rc.me))["emails"] == [{"address": "new@example.com", "verified": False}]
    # Login by email works too (the client sends it as `user`).
    rc2 = await sync(RocketChat, "new@example.com", "pw-new", server_url=hub.url, timeout=10)
    assert rc2.headers["X-User-Id"] == rc.headers["X-User-Id"]


async def test_registration_can_be_disabled(chat_hub):
    hub = await chat_hub("allow_registration = false")
    anon = RocketChat(server_url=hub.url, timeout=10)
    with pytest.raises(RocketApiException) as exc:
        await sync(anon.users_register, email="n@example.com", name="n", password="pw", username="n")
    assert exc.value.status_code == 403


async def test_client_admin_calls(chat_hub):
    hub = await chat_hub()
    await hub.add_user("root", "admin")
    await hub.add_user("plain")
    admin = await sync(RocketChat, "root", PASSWORD, server_url=hub.url, timeout=10)
    plain = await sync(RocketChat, "plain", PASSWORD, server_url=hub.url, timeout=10)

    # Only holders of the permissions may manage users and roles.
    for call, args in ((plain.users_create, ("x@example.com", "X", "pw", "x")), (plain.roles_create, ("r",)),
                       (plain.roles_add_user_to_role, ("admin", "plain"))):
        with pytest.raises(RocketApiException) as exc:
            await sync(call, *args)
        assert exc.value.status_code == 403

    made = await sync(admin.users_create, "bot@example.com", "Bot", "bot-pw", "bot")
    assert made["success"] is True and made["user"]["username"] == "bot"
    assert (await sync(admin.roles_create, "creators"))["role"]["name"] == "creators"
    assert (await sync(admin.roles_add_user_to_role, "creators", "plain"))["success"] is True
    roles = {r["name"]: r for r in (await sync(admin.roles_list))["roles"]}
    assert set(roles) == {*rcdata.ROLES, "creators"} and roles["admin"]["protected"] is True
    assert roles["owner"]["scope"] == "Subscriptions" and roles["creators"]["protected"] is False

    # `user` may create rooms by default; take create-c from it and give it to `creators` only.
    update = [{"_id": "create-c", "roles": ["creators"]}]
    updated = (await sync(admin.permissions_update, update))["permissions"]
    assert {p["_id"]: p["roles"] for p in updated}["create-c"] == ["creators"]
    perms = {p["_id"]: p["roles"] for p in (await sync(admin.permissions_list_all))["update"]}
    assert perms["create-c"] == ["creators"] and perms["bulk-create-c"] == ["admin"]
    bot = await sync(RocketChat, "bot", "bot-pw", server_url=hub.url, timeout=10)
    with pytest.raises(RocketApiException) as exc:
        await sync(bot.channels_create, "bots")
    assert exc.value.status_code == 403
    assert (await sync(plain.channels_create, "creators-room"))["success"] is True
    await sync(admin.roles_remove_user_from_role, "creators", "plain")
    with pytest.raises(RocketApiException):
        await sync(plain.channels_create, "again")
    with pytest.raises(RocketApiException) as exc:
        await sync(admin.roles_delete, "admin")
    assert exc.value.status_code == 400
