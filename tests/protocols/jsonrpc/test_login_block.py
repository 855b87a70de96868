"""Failed-login blocking on JSON-RPC /auth (Platypush's login): 429 in Platypush's auth-status shape with
Retry-After while the user or the address is blocked; the hub's login limiter runs on an injected clock."""

from __future__ import annotations

import httpx
import trio

from tests.login_helpers import Clock, metric

PASSWORD = "s3cret pass"




async def test_eleven_wrong_passwords_then_the_right_one_is_refused_until_the_block_ends(start_hub):
    running = await start_hub("[login_limit]\nmax_failures_per_ip = 1000\nblock = 600\n")
    clock = Clock()
    running.login_limiter.clock = clock
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        registered = await http.post("/register", json={"username": "alice", "password": PASSWORD})
        token = registered.json()["token"]
        for i in range(11):
            r = await http.post("/auth", json={"username": "alice", "password": f"wrong {i}"})
            if i < 10:
                assert r.status_code == 401 and r.json()["error"] == "INVALID_CREDENTIALS"
            else:
                assert r.status_code == 429
            clock.now += 1
        r = await http.post("/auth", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 429
        assert r.json() == {"code": 429, "error": "error-login-blocked-for-user",
                            "message": "Login has been temporarily blocked For User"}
        assert r.headers["retry-after"] == str(600 - 2)  # blocked at t=9, now t=11
        # a token issued before keeps working: only logins are refused
        who = await http.get("/auth", headers={"Authorization": f"Bearer {token}"})
        assert who.status_code == 200 and who.json()["username"] == "alice"
        clock.now = 608.9
        assert (await http.post("/auth", json={"username": "alice", "password": PASSWORD})).status_code == 429
        clock.now = 609
        r = await http.post("/auth", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 200 and r.json()["token"]
        text = (await http.get(running.url("stats") + "/metrics")).text
    assert metric(text, "hub_login_failures_total", adapter="jsonrpc") == 10
    assert metric(text, "hub_login_refused_total", adapter="jsonrpc", reason="user") == 3


async def test_address_block(start_hub):
    running = await start_hub()
    clock = Clock()
    running.login_limiter.clock = clock
    async with httpx.AsyncClient(base_url=running.url("jsonrpc")) as http:
        assert (await http.post("/register", json={"username": "alice", "password": PASSWORD})).status_code == 200
        for i in range(10):
            assert (await http.post("/auth", json={"username": f"user{i}", "password": "x"})).status_code == 401
        r = await http.post("/auth", json={"username": "alice", "password": PASSWORD})
        assert r.status_code == 429 and r.json()["error"] == "error-login-blocked-for-ip"
        assert r.headers["retry-after"] == "300"
        clock.now += 300
        assert (await http.post("/auth", json={"username": "alice", "password": PASSWORD})).status_code == 200


async def test_parallel_guesses_cannot_go_past_the_limit(start_hub):
    """Thirty wrong passwords sent at once (all in flight before the first argon2 check ends): ten are checked."""
    running = await start_hub("[login_limit]\nmax_failures_per_ip = 1000\n")
    running.login_limiter.clock = Clock()
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=running.url("jsonrpc"), limits=httpx.Limits(max_connections=40), timeout=60) as http:
        assert (await http.post("/register", json={"username": "alice", "password": PASSWORD})).status_code == 200

        async def guess(i: int) -> None:
            statuses.append((await http.post("/auth", json={"username": "alice", "password": f"wrong {i}"})).status_code)

        async with trio.open_nursery() as nursery:
            for i in range(30):
                nursery.start_soon(guess, i)
        assert statuses.count(401) == 10 and statuses.count(429) == 20, statuses
        assert (await http.post("/auth", json={"username": "alice", "password": PASSWORD})).status_code == 429
