"""The dashboard's per-IP limits and Origin check (issue 24) over real HTTP and websockets (httpx,
trio-websocket): the [dashboard] keys every listener has, answered as the hub's own HTTP layer does."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

from protocols.dashboard.auth import COOKIE

from .conftest import PASSWORD, form_csrf, live_page, login, session_cookie

# A bucket that refills once in 100 s: the requests after the burst are refused however slow the machine is.
SLOW_RATE = "rate_limit = 0.01\nrate_limit_burst = 3\n"


async def test_over_the_rate_a_client_gets_429_with_retry_after_requests_and_live_sockets(dashboard):
    running, url = await dashboard(SLOW_RATE + "limit_exempt = []\n")
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(3):
            assert (await http.get("/login")).status_code == 200
        refused = await http.get("/login")
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 100
        assert "too many requests" in refused.text and refused.headers["x-frame-options"] == "DENY"
        scripted = await http.post("/channels/publish", data={"channel": "a"}, headers={"Accept": "application/json"})
        assert scripted.status_code == 429 and scripted.json() == {"ok": False, "error": "too many requests"}
    with pytest.raises(ConnectionRejected) as rejected:
        async with live_page(url, None, "page=overview"):
            pass
    assert rejected.value.status_code == 429 and dict(rejected.value.headers)[b"retry-after"].isdigit()
    assert running.metrics.refusals[("dashboard", "http rate")] == 3


async def test_loopback_is_exempt_by_default(dashboard):
    running, url = await dashboard(SLOW_RATE + "max_connections_per_ip = 1\n")
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await login(http)).status_code == 303
        for _ in range(10):
            assert (await http.get("/")).status_code == 200
    cookie = await session_cookie(url)
    async with live_page(url, cookie, "page=overview") as one, live_page(url, cookie, "page=clients") as two:
        assert json.loads(await one.get_message())["type"] == "overview"
        assert json.loads(await two.get_message())["type"] == "clients"
    assert not running.metrics.refusals


async def test_a_foreign_origin_is_refused_403_on_the_live_socket_and_posts_same_host_accepted(dashboard):
    running, url = await dashboard()
    cookie = await session_cookie(url)
    for origin in ("http://evil.example", url.replace("127.0.0.1", "localhost"), "null"):
        with pytest.raises(ConnectionRejected) as rejected:
            async with live_page(url, cookie, "page=overview", origin=origin):
                pass
        assert rejected.value.status_code == 403 and b"request origin not allowed" in rejected.value.body
    async with live_page(url, cookie, "page=overview", origin=url) as ws:
        assert json.loads(await ws.get_message())["type"] == "overview"
    async with httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/login")
        csrf = form_csrf(page.text)
        foreign = await http.post("/login", data={"csrf": csrf, "password": PASSWORD}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "request origin not allowed" in foreign.text
        assert COOKIE + "=" not in foreign.headers.get("set-cookie", "")
        same = await http.post("/login", data={"csrf": csrf, "password": PASSWORD}, headers={"Origin": url})
        assert same.status_code == 303 and same.headers["location"] == "/"
    assert running.metrics.refusals[("dashboard", "origin")] == 4


async def test_allowed_origins_lists_the_sites_and_reload_applies_at_once(dashboard):
    running, url = await dashboard('allowed_origins = ["https://ops.example.com"]\n')
    cookie = await session_cookie(url)
    async with live_page(url, cookie, "page=overview", origin="https://ops.example.com") as ws:
        assert json.loads(await ws.get_message())["type"] == "overview"
    with pytest.raises(ConnectionRejected) as rejected:
        async with live_page(url, cookie, "page=overview", origin=url):  # a list replaces the same-host default
            pass
    assert rejected.value.status_code == 403
    running.contexts["dashboard"].settings.allowed_origins = []  # what a reload sets
    async with live_page(url, cookie, "page=overview", origin=url) as ws:
        assert json.loads(await ws.get_message())["type"] == "overview"


@pytest.mark.parametrize("limit, extra, reason, counted", [
    ("max_connections_per_ip", "limit_exempt = []\n", "too many connections from this address", "connections per ip"),
    ("max_connections", "", "too many connections", "connections"),  # every client, loopback included
])
async def test_over_a_connection_limit_503_and_a_live_socket_closed_1013(dashboard, limit, extra, reason, counted):
    """Requests in progress and live sockets, per address or for the whole listener (the keys every adapter
    table has): over the limit, 503 with Retry-After 1, or a live socket accepted and closed 1013."""
    running, url = await dashboard(extra)
    # Logged in first: with one request at a time, the login's second request could find the first one still
    # counted (the count drops after the response is sent).
    cookie = await session_cookie(url)
    setattr(running.contexts["dashboard"].settings, limit, 1)  # what a reload sets
    guard = running.contexts["dashboard"].state["dashboard"].guard
    async with live_page(url, cookie, "page=overview") as first:
        assert json.loads(await first.get_message())["type"] == "overview"
        async with live_page(url, cookie, "page=clients") as second:
            with pytest.raises(ConnectionClosed) as closed:
                await second.get_message()
            assert (closed.value.reason.code, closed.value.reason.reason) == (1013, reason)
        async with httpx.AsyncClient(base_url=url) as http:
            busy = await http.get("/login", headers={"Accept": "application/json"})
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.json() == {"ok": False, "error": reason}
    with trio.fail_after(10):
        while guard.in_progress:  # the first page's handler ends once its socket has closed
            await trio.sleep(0.01)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/login")).status_code == 200
    assert running.metrics.refusals[("dashboard", counted)] == 2
