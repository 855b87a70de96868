"""Failed-login blocking on the chat (Rocket.Chat's Block_Multiple_Failed_Logins): REST v1 with the real
rocketchat_API client and httpx, the reference /api/login, and DDP over a real websocket; the hub's login
limiter runs on an injected clock so the block's end comes without waiting."""

from __future__ import annotations

import pytest
import trio
from httpx import AsyncClient
from trio_websocket import open_websocket_url

from .conftest import PASSWORD
from .test_realtime import ddp_login, ws_url

rocketchat_API = pytest.importorskip("rocketchat_API.rocketchat")
from rocketchat_API.APIExceptions.RocketExceptions import RocketAuthenticationException  # noqa: E402

from tests.login_helpers import Clock, metric  # noqa: E402

RocketChat = rocketchat_API.RocketChat
DETAILS = {"function": "Accounts.validateLoginAttempt"}



def rc_login(url: str, user: str, password: str) -> str:
    """A login with the real client: its user id, or "refused" for RocketAuthenticationException (a 401)."""
    try:
        return RocketChat(user, password, server_url=url, timeout=10).headers["X-User-Id"]
    except RocketAuthenticationException:
        return "refused"


async def ddp_try(url: str, username: str, password: str) -> dict:
    async with open_websocket_url(ws_url(url)) as ws:
        _, result = await ddp_login(ws, username, password)
        return result



async def test_eleven_wrong_passwords_block_the_user_until_the_block_ends(chat_hub):
    hub = await chat_hub(extra="[login_limit]\nmax_failures_per_ip = 1000\n")
    clock = Clock()
    hub.running.login_limiter.clock = clock
    uid = await hub.add_user("alice")
    await hub.add_user("bob")
    for _ in range(11):
        assert await trio.to_thread.run_sync(rc_login, hub.url, "alice", "wrong password") == "refused"
        clock.now += 1
    # the right password is refused now, by every way in
    assert await trio.to_thread.run_sync(rc_login, hub.url, "alice", PASSWORD) == "refused"
    async with AsyncClient() as http:
        r = await http.post(f"{hub.url}/api/v1/login", json={"user": "alice", "password": PASSWORD})
        assert r.status_code == 401
        assert r.json() == {"success": False, "error": "error-login-blocked-for-user", "status": "error",
                            "details": DETAILS, "message": "Login has been temporarily blocked For User"}
        r = await http.post(f"{hub.url}/api/login", data={"user": "alice", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["error"] == "error-login-blocked-for-user"
    result = await ddp_try(hub.url, "alice", PASSWORD)
    assert result["error"] == {"isClientSafe": True, "error": "error-login-blocked-for-user",
                               "reason": "Login has been temporarily blocked For User", "details": DETAILS,
                               "message": "Login has been temporarily blocked For User [error-login-blocked-for-user]",
                               "errorType": "Meteor.Error"}
    # another user from the same address is not held back
    assert await trio.to_thread.run_sync(rc_login, hub.url, "bob", PASSWORD) != "refused"
    # the block lasts 5 minutes from the 10th failure, at t=9 (the 11th, refused, did not lengthen it)
    clock.now = 308.5
    assert await trio.to_thread.run_sync(rc_login, hub.url, "alice", PASSWORD) == "refused"
    clock.now = 309
    assert await trio.to_thread.run_sync(rc_login, hub.url, "alice", PASSWORD) == uid
    assert "result" in await ddp_try(hub.url, "alice", PASSWORD)

    async with AsyncClient() as http:
        text = (await http.get(hub.running.url("stats") + "/metrics")).text
    assert metric(text, "hub_login_failures_total", adapter="chat") == 10
    assert metric(text, "hub_login_refused_total", adapter="chat", reason="user") == 6  # the 11th wrong one and five right ones
    assert metric(text, "hub_login_blocks_total", reason="user") == 1
    assert metric(text, "hub_login_blocked", reason="user") == 0


async def test_failures_from_one_address_block_it_for_every_user(chat_hub):
    hub = await chat_hub()
    clock = Clock()
    hub.running.login_limiter.clock = clock
    await hub.add_user("alice")
    for i in range(10):  # ten different (unknown) users from 127.0.0.1
        result = await ddp_try(hub.url, f"guess{i}", "nope")
        assert result["error"]["reason"] == "User not found"
    result = await ddp_try(hub.url, "alice", PASSWORD)
    assert result["error"]["error"] == "error-login-blocked-for-ip"
    assert result["error"]["reason"] == "Login has been temporarily blocked For IP"
    async with AsyncClient() as http:
        r = await http.post(f"{hub.url}/api/v1/login", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["error"] == "error-login-blocked-for-ip"
        text = (await http.get(hub.running.url("stats") + "/metrics")).text
        assert metric(text, "hub_login_blocked", reason="ip") == 1
    clock.now += 301
    assert await trio.to_thread.run_sync(rc_login, hub.url, "alice", PASSWORD) != "refused"
