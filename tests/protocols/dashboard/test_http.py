"""The dashboard over real HTTP and websockets (httpx, trio-websocket): login, CSRF, pages, forms, live data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, HandshakeError

from protocols.dashboard.auth import COOKIE
from tests.legacy_client import legacy_client

from .conftest import DASHBOARD, PASSWORD, config_file, live_page, login, page_csrf, session_cookie


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_the_session(dashboard):
    running, url = await dashboard()
    async with httpx.AsyncClient(base_url=url) as http:
        first = await http.get("/channels?q=x")
        assert first.status_code == 303 and first.headers["location"] == "/login?next=/channels?q=x"
        response = await login(http)
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
        attrs = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")[1:]}
        assert "httponly" in attrs and attrs["samesite"].strip().lower() == "samesite=strict" and attrs["path"].strip() == "Path=/"
        page = await http.get("/")
        assert page.status_code == 200 and 'id="connections"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"
        csrf = await page_csrf(http)
        assert (await http.post("/logout", data={"csrf": csrf})).headers["location"] == "/login"
        assert (await http.get("/")).status_code == 303
        # the old cookie is dead on the server, not only in this client
        http.cookies.set(COOKIE, cookie.split(";")[0].split("=", 1)[1])
        assert (await http.get("/")).status_code == 303


async def test_wrong_password_is_refused_generically_then_rate_limited(dashboard):
    running, url = await dashboard('login_attempts = 3\n')
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(3):
            response = await login(http, "wrong")
            assert response.status_code == 200 and response.url.path == "/login"
            assert "Login failed." in response.text and COOKIE + "=" not in response.headers.get("set-cookie", "")
        limited = await login(http, PASSWORD)  # even the right password waits now
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "Too many failed logins" in limited.text
        assert (await http.get("/")).status_code == 303


async def test_missing_or_wrong_csrf_is_refused(dashboard):
    running, url = await dashboard()
    async with httpx.AsyncClient(base_url=url) as http:
        await http.get("/login")
        assert (await http.post("/login", data={"password": PASSWORD})).status_code == 403  # login form without its token
        assert (await http.get("/")).status_code == 303
        await login(http)
        csrf = await page_csrf(http, "/channels")
        for data in ({"channel": "public:x", "data": "1"}, {"channel": "public:x", "data": "1", "csrf": "forged"}):
            response = await http.post("/channels/publish", data=data, headers={"Accept": "application/json"})
            assert response.status_code == 403 and "CSRF" in response.json()["error"]
        assert running.stats()["messages_in"] == 0
        cross = await http.post("/channels/publish", data={"channel": "public:x", "data": "1", "csrf": csrf},
                                headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        ok = await http.post("/channels/publish", data={"channel": "public:x", "data": "1", "csrf": csrf},
                             headers={"Accept": "application/json", "Origin": url})
        assert ok.status_code == 200 and ok.json()["ok"]
        assert running.stats()["messages_in"] == 1


async def test_publish_form_reaches_a_real_client_and_shows_the_core_error(dashboard):
    running, url = await dashboard()
    async with httpx.AsyncClient(base_url=url) as http, legacy_client(running.url("realtime")) as client:
        await client.connect("alice")
        await client.subscribe("news")
        await login(http)
        csrf = await page_csrf(http, "/channels")
        answer = await http.post("/channels/publish", data={"csrf": csrf, "channel": "news", "data": '{"text": "hi"}'},
                                 headers={"Accept": "application/json"})
        assert answer.json()["ok"]
        assert (await client.next_push("message"))["body"]["data"] == {"text": "hi"}
        refused = await http.post("/channels/publish", data={"csrf": csrf, "channel": "nowhere:x", "data": "1"},
                                  headers={"Accept": "application/json"})
        assert refused.json() == {"ok": False, "error": "namespace not found"}
        # without scripts: back to the channel page with the error shown there
        plain = await http.post("/channels/publish", data={"csrf": csrf, "channel": "nowhere:x", "data": "1"})
        assert plain.status_code == 303
        shown = await http.get(plain.headers["location"])
        assert "namespace not found" in shown.text


async def test_actions_clients_config_and_reload(dashboard, tmp_path):
    running, url = await dashboard()
    async with httpx.AsyncClient(base_url=url, headers={"Accept": "application/json"}) as http, \
            legacy_client(running.url("realtime")) as client:
        await client.connect("bob")
        await login(http)
        csrf = await page_csrf(http, "/actions")
        page = (await http.get("/actions")).text
        assert "hub.publish" in page and "chat.rooms" in page
        run = await http.post("/actions/run", data={"csrf": csrf, "action": "hub.channels", "args": '{"pattern": "*"}'})
        assert run.json() == {"ok": True, "result": {}}
        run = await http.post("/actions/run", data={"csrf": csrf, "action": "hub.publish", "arg.channel": "public:a",
                                                    "arg.data": '{"n": 1}'})
        assert run.json()["ok"] and run.json()["result"]["channel"] == "public:a"
        bad = await http.post("/actions/run", data={"csrf": csrf, "action": "hub.publish", "arg.data": "1"})
        assert bad.json()["error"] == "hub.publish: missing argument 'channel'"
        gone = await http.post("/actions/run", data={"csrf": csrf, "action": "no.such"})
        assert gone.json() == {"ok": False, "error": "unknown action 'no.such'", "status": 404}

        (session,) = running.hub.sessions.values()
        out = await http.post("/clients/disconnect", data={"csrf": csrf, "client": session.id})
        assert out.json()["ok"]
        push = await client.next_push("disconnect")
        assert push["body"] == {"reason": "disconnected by an operator"}  # the original protocol's disconnect body
        assert not running.hub.sessions

        config = (await http.get("/config")).text
        assert "[projects.development]" in config and "test-api-key" not in config and PASSWORD not in config
        assert "secret = &#34;********&#34;" in config  # escaped in the page

        path = config_file(tmp_path)  # the file the hub reloads from: what it runs with now, written out
        running.config_path = str(path)
        text = path.read_text().replace("history_size = 10", "history_size = 7")
        path.write_text(text)
        reloaded = await http.post("/config/reload", data={"csrf": csrf})
        assert reloaded.json()["ok"] and reloaded.json()["result"]["changed"] == ["projects"], reloaded.text
        assert "history_size = 7" in reloaded.json()["text"]
        path.write_text(text.replace("history_size = 7", "history_size = -1"))
        refused = await http.post("/config/reload", data={"csrf": csrf})
        assert not refused.json()["ok"] and "history_size: must be at least 0" in refused.json()["error"]


async def test_live_socket_needs_a_session_and_the_same_origin(dashboard):
    running, url = await dashboard()
    async with live_page(url, None, "page=overview") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason.code == 4401  # the page reloads and lands on the login form
    cookie = await session_cookie(url)
    with pytest.raises(HandshakeError):
        async with live_page(url, cookie, "page=overview", origin="http://evil.example"):
            pass
    async with live_page(url, cookie, "page=overview") as ws:
        first = json.loads(await ws.get_message())
    assert first["type"] == "overview" and first["total"]["sessions"] == 0 and "series" in first
    assert set(first["nodes"]) == {first["node"]}


async def test_overview_counts_a_client_and_rates(dashboard):
    running, url = await dashboard()
    async with live_page(url, await session_cookie(url), "page=overview") as ws:
        first = json.loads(await ws.get_message())
        assert first["total"]["sessions"] == 0
        async with legacy_client(running.url("realtime")) as client:
            await client.connect("carol")
            await client.subscribe("news")
            for i in range(20):
                await running.publish("news", i)
            with trio.fail_after(10):
                while True:
                    data = json.loads(await ws.get_message())
                    total = data["total"]
                    if total["sessions"] == 1 and total["messages_in"] == 20 and data["point"][1] > 0:
                        break
            assert total["protocols"]["centrifuge-legacy"] == {"sessions": 1, "subscriptions": 1, "delivered": 20, "dropped": 0,
                                                                "slow_disconnects": 0}
            assert total["subscriptions"] == 1 and total["deliveries_per_s"] > 0


async def test_no_per_publication_work_without_a_watching_page(dashboard):
    """The core's event feed has no dashboard listener unless a channel page is open; then only that channel's
    publications are queued, at most one batch per flush."""
    running, url = await dashboard()
    monitor = running.contexts["dashboard"].state["dashboard"].monitor
    others = list(running.hub.events._listeners)  # other adapters' (the chat's realtime API listens too)
    cookie = await session_cookie(url)
    async with live_page(url, cookie, "page=overview") as ws:
        await ws.get_message()
        for i in range(100):
            await running.publish("public:busy", i)
        assert monitor.event_calls == 0 and running.hub.events._listeners == others
    async with live_page(url, cookie, "page=channel&channel=public:watched") as ws:
        detail = json.loads(await ws.get_message())
        assert detail["type"] == "channel" and detail["history"]["publications"] == []
        assert len(running.hub.events._listeners) == len(others) + 1  # listening now
        for i in range(500):
            await running.publish("public:busy", i)
        for i in range(120):
            await running.publish("public:watched", {"n": i})
        got, skipped = [], 0
        with trio.fail_after(10):
            while len(got) + skipped < 120:
                message = json.loads(await ws.get_message())
                if message["type"] == "publications":
                    got += message["items"]
                    skipped += message["skipped"]
        assert len(got) <= 50 and skipped == 120 - len(got)  # one bounded batch, the rest counted
        assert json.loads(got[-1]["data"]) == {"n": 119}
    with trio.fail_after(5):
        while running.hub.events._listeners != others:  # the page closed: the listener is gone again
            await trio.sleep(0.01)
    calls = monitor.event_calls
    await running.publish("public:watched", "after")
    assert monitor.event_calls == calls


def test_cli_refuses_the_default_password_off_loopback(tmp_path: Path):
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[projects.p]\nsecret = "s"\n[dashboard]\nhost = "0.0.0.0"\npassword = "admin"\n')
    proc = subprocess.run([sys.executable, "-m", "hub", "run", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"hub: config error: {cfg}: dashboard.password: is the default 'admin' while host '0.0.0.0' is not loopback: "
        "set a strong password (or password_env)"]


async def test_shutdown_closes_live_pages_and_the_server(tmp_path):
    """The hub's shutdown is hypercorn's shutdown trigger: an open page gets 1001 and serve() returns promptly."""
    from hub.config import parse_settings
    from hub.runtime import serve
    from tests.conftest import hub_config, with_tmp_files

    settings = parse_settings(with_tmp_files(hub_config(DASHBOARD), tmp_path), "<test>")
    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve, settings)
        url = running.url("dashboard")
        async with live_page(url, await session_cookie(url), "page=clients") as ws:
            await ws.get_message()
            started = trio.current_time()
            running.shutdown()
            with pytest.raises(ConnectionClosed) as closed:
                with trio.fail_after(5):
                    while True:
                        await ws.get_message()
            assert closed.value.reason.code == 1001
        with trio.fail_after(5):
            await running._stopped.wait()
        assert trio.current_time() - started < 3


async def test_a_new_password_by_reload_logs_everyone_out(dashboard, tmp_path):
    running, url = await dashboard()
    path = config_file(tmp_path, password="a brand new password")
    running.config_path = str(path)
    async with httpx.AsyncClient(base_url=url, headers={"Accept": "application/json"}) as http:
        await login(http)
        csrf = await page_csrf(http, "/config")
        result = (await http.post("/config/reload", data={"csrf": csrf})).json()
        assert result["ok"] and "dashboard.password" in result["result"]["changed"]
        assert (await http.get("/")).status_code == 303  # logged out
        assert "Login failed." in (await login(http)).text  # the old password
        assert (await login(http, "a brand new password")).status_code == 303
        assert (await http.get("/")).status_code == 200


def test_cli_reports_a_taken_port_as_a_config_error(tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = tmp_path / "hub.toml"
        listeners = "".join(f"[{name}]\nenabled = false\n" for name in ("realtime", "command_api", "jsonrpc", "stats", "chat"))
        cfg.write_text(f'[projects.p]\nsecret = "s"\n{listeners}[dashboard]\nport = {port}\npassword = "pw"\n')
        proc = subprocess.run([sys.executable, "-m", "hub", "run", "--config", str(cfg)], capture_output=True, text=True,
                              timeout=30, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"hub: config error: {cfg}: dashboard.port: cannot listen on 127.0.0.1:{port}: Address already in use")
