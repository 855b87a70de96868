"""The dashboard's real pages in headless Chromium: log in, watch a client connect, publish to a real client,
run an action, read a chat room live, disconnect a client, reload the config, log out; refusals; no console errors."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from protocols.dashboard.auth import COOKIE
from tests.legacy_client import LegacyClient, legacy_client

from .browser import open_browser, require_chromium
from .conftest import PASSWORD, config_file

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


class Clients:
    """Real websocket clients (original protocol) that the browser thread opens and reads through trio.from_thread."""

    def __init__(self, nursery: trio.Nursery, base_url: str) -> None:
        self.nursery, self.base_url = nursery, base_url
        self.clients: dict[str, LegacyClient] = {}

    async def open(self, user: str, *channels: str) -> str:
        client = await self.nursery.start(self._hold, user, channels)
        return client.client_id

    async def _hold(self, user: str, channels: tuple[str, ...], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with legacy_client(self.base_url) as client:
            await client.connect(user)
            for channel in channels:
                await client.subscribe(channel)
            self.clients[user] = client
            task_status.started(client)
            await trio.sleep_forever()

    async def next_push(self, user: str, method: str) -> dict[str, Any]:
        return await self.clients[user].next_push(method, timeout=10)


class ChatUser:
    """A chat user on the chat adapter's Rocket.Chat REST API (registered, logged in, posting)."""

    def __init__(self, url: str) -> None:
        self.url, self.headers = url, {}

    async def register(self, username: str) -> ChatUser:
        async with httpx.AsyncClient(base_url=self.url) as http:
            r = await http.post("/api/v1/users.register", json={"username": username, "email": f"{username}@example.org",
                                                                "pass": PASSWORD, "name": username})
            assert r.status_code == 200, r.text
            r = await http.post("/api/v1/login", json={"user": username, "password": PASSWORD})
            data = r.json()["data"]
            self.headers = {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"]}
            r = await http.post("/api/v1/channels.join", json={"roomId": "GENERAL"}, headers=self.headers)
            assert r.status_code == 200, r.text
        return self

    async def post(self, text: str, room: str = "GENERAL") -> None:
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers) as http:
            r = await http.post("/api/v1/chat.postMessage", json={"roomId": room, "text": text})
            assert r.status_code == 200 and r.json()["success"], r.text


async def start(start_hub: Any, tmp_path: Path) -> Any:
    import tomllib

    path = config_file(tmp_path)
    running = await start_hub(data=tomllib.loads(path.read_text()))
    running.config_path = str(path)
    return running


async def publish(running: Any, channel: str, data: Any) -> None:
    await running.publish(channel, data)


def browse(url: str, clients: Clients, chat: ChatUser, running: Any) -> list[str]:
    """The whole visit, in the browser thread. Returns the console errors seen."""
    from playwright.sync_api import expect

    def trio_run(fn: Any, *args: Any) -> Any:
        return trio.from_thread.run(fn, *args)

    with open_browser(url) as browser:
        page = browser.page

        # -- login: a wrong password is refused without detail, the right one lands on the Overview
        page.goto("/")
        expect(page).to_have_url(f"{url}/login?next=/")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        expect(page.locator("#login-error")).to_have_text("Login failed.")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{url}/")
        expect(page.locator("#live-state")).to_have_text("live")
        expect(page.locator("#connections")).to_have_text("0")

        # -- a websocket client connects: the count changes without a reload
        trio_run(clients.open, "alice", "news")
        expect(page.locator("#connections")).to_have_text("1")
        expect(page.locator("#subscriptions")).to_have_text("1")
        expect(page.locator("#protocols tbody")).to_contain_text("centrifuge-legacy")

        # -- channels: the list, then the publish form reaches the real client; the core's error shows in place
        page.click("nav >> text=Channels")
        expect(page.locator("#channel-list tbody")).to_contain_text("news")
        form = page.locator("#publish-form")
        form.locator("input[name=channel]").fill("news")
        form.locator("textarea[name=data]").fill('{"text": "from the browser"}')
        form.get_by_role("button", name="Publish").click()
        expect(form.locator("[data-result]")).to_have_text("published to news")
        push = trio_run(clients.next_push, "alice", "message")
        assert push["body"]["data"] == {"text": "from the browser"}
        form.locator("input[name=channel]").fill("nowhere:thing")
        form.get_by_role("button", name="Publish").click()
        expect(form.locator("[data-result]")).to_have_text("namespace not found")

        # -- one channel: presence, history, live publications
        page.click("#channel-list >> text=news")
        expect(page.locator("#presence tbody")).to_contain_text("alice")
        expect(page.locator("#history tbody")).to_contain_text("from the browser")
        expect(page.locator("#live-state")).to_have_text("live")
        trio_run(publish, running, "news", {"text": "live one"})
        expect(page.locator("#live-publications")).to_contain_text("live one")

        # -- clients: the session with its user and protocol
        page.click("nav >> text=Clients")
        row = page.locator("#client-list tbody tr", has_text="alice")
        expect(row).to_contain_text("centrifuge-legacy")
        expect(row).to_contain_text("websocket")

        # -- actions: run one, as Platypush's Execute tab does
        page.click("nav >> text=Actions")
        page.click("#action-list >> text=hub.presence")
        expect(page.locator("#action-doc")).to_contain_text("Clients subscribed")
        page.fill("input[name='arg.channel']", "news")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#action-result")).to_contain_text('"user": "alice"')
        page.fill("input[name='arg.channel']", "nowhere:x")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#action-result")).to_have_text("hub.presence: namespace not found")

        # -- chat: rooms with counts; a room read live while a chat user posts over the REST API
        page.click("nav >> text=Chat")
        room_row = page.locator("#room-list tbody tr", has_text="general")
        expect(room_row.locator("td").nth(1)).to_have_text("1")  # members: dora
        expect(room_row.locator("td").nth(2)).to_have_text("1")  # messages: her first post
        room_row.locator("a").click()
        expect(page.locator("#messages")).to_contain_text("first post")
        expect(page.locator("#live-state")).to_have_text("live")
        trio_run(chat.post, "posted while you watch")
        expect(page.locator("#messages")).to_contain_text("posted while you watch")

        # -- disconnect the client from the Clients page
        page.click("nav >> text=Clients")
        row = page.locator("#client-list tbody tr", has_text="alice")
        row.get_by_role("button", name="Disconnect").click()
        push = trio_run(clients.next_push, "alice", "disconnect")
        assert push["body"]["reason"] == "disconnected by an operator"
        expect(page.locator("#no-clients")).to_be_visible()

        # -- config: secrets masked; Reload re-reads the file as SIGHUP does
        page.click("nav >> text=Config")
        text = page.locator("#config-text")
        expect(text).to_contain_text('secret = "********"')
        assert PASSWORD not in text.inner_text() and "test-api-key" not in text.inner_text()
        page.get_by_role("button", name="Reload").click()
        expect(page.locator("#reload-form [data-result]")).to_contain_text("changed nothing")

        # -- a post with the session cookie but without the CSRF token is refused
        refused = page.context.request.post(f"{url}/channels/publish", form={"channel": "news", "data": "1"},
                                            headers={"Accept": "application/json"})
        assert refused.status == 403 and "CSRF" in refused.json()["error"]

        # -- log out: back to the login form, and the pages are closed
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(f"{url}/login")
        page.goto("/clients")
        expect(page).to_have_url(f"{url}/login?next=/clients")
        assert not [c for c in page.context.cookies() if c["name"] == COOKIE]
        return browser.console_errors()


async def test_dashboard_in_a_browser(start_hub, nursery, tmp_path):
    require_chromium()
    running = await start(start_hub, tmp_path)
    chat = await ChatUser(running.url("chat")).register("dora")
    await chat.post("first post")
    clients = Clients(nursery, running.url("realtime"))
    errors = await trio.to_thread.run_sync(browse, running.url("dashboard"), clients, chat, running)
    assert errors == []


# -- screenshots (`make screenshots` writes them to docs/dashboard/) ------------------------------------------
PAGES = [("login", "/login"), ("overview", "/"), ("channels", "/channels"), ("channel", "/channels?channel=news"),
         ("clients", "/clients"), ("actions", "/actions?action=hub.channels"), ("chat", "/chat"),
         ("room", "/chat?room=GENERAL"), ("config", "/config")]


async def sdk_client(running: Any, user: str, channels: list[str], *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A client of today's protocol (JSON), subscribed, reading until cancelled."""
    from trio_websocket import open_websocket_url

    from protocols.realtime.tokens import make_token
    from tests.conftest import SECRET

    url = running.url("realtime").replace("http://", "ws://") + "/connection/websocket"
    async with open_websocket_url(url) as ws:
        await ws.send_message(json.dumps({"id": 1, "connect": {"token": make_token(SECRET, {"sub": user})}}))
        for i, channel in enumerate(channels, 2):
            await ws.send_message(json.dumps({"id": i, "subscribe": {"channel": channel}}))
        task_status.started()
        while True:
            message = await ws.get_message()
            if message == "{}":  # the server's ping: answer, or it closes us (3012) on a slow machine
                await ws.send_message("{}")


async def traffic(running: Any) -> None:
    """Publications at a rate that rises and falls, so the chart has a shape."""
    import math

    for step in itertools.count():
        for _ in range(int(20 + 18 * math.sin(step / 4))):
            await running.publish("news", {"headline": f"story {step}"})
        await running.publish("public:chat", {"text": f"hello {step}"})
        await trio.sleep(0.1)


def shoot(url: str, shots: Path) -> list[str]:
    from playwright.sync_api import expect

    with open_browser(url) as browser:
        page = browser.page
        for name, path in PAGES:
            if name == "login":
                page.goto(path)
                page.screenshot(path=shots / "login.png")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                expect(page).to_have_url(f"{url}/")
                continue
            page.goto(path)
            if name == "overview":
                expect(page.locator("#rate-chart polyline")).to_have_count(2)  # (wait_for_function would need eval: CSP)
                page.wait_for_timeout(1500)  # a few more seconds of the chart
            elif name == "actions":
                page.fill("input[name='arg.pattern']", "*")
                page.get_by_role("button", name="Run").click()
                expect(page.locator("#action-result")).to_contain_text("news")
            elif name in ("channels", "clients", "chat"):
                page.wait_for_selector("tbody tr")
            elif name == "channel":
                expect(page.locator("#live-publications li").first).to_be_visible()
                page.wait_for_timeout(500)
            page.screenshot(path=shots / f"{name}.png", full_page=name in ("overview", "config"))
        return browser.console_errors()


async def test_screenshots_of_every_page(start_hub, nursery, tmp_path):
    require_chromium()
    running = await start(start_hub, tmp_path)
    for user, channels in (("alice", ["news", "sport"]), ("bob", ["news"]), ("carol", ["public:chat", "news"])):
        await nursery.start(Clients(nursery, running.url("realtime"))._hold, user, tuple(channels))
    for user, channels in (("dave", ["news", "public:chat"]), ("erin", ["weather"])):
        await nursery.start(sdk_client, running, user, channels)
    dora = await ChatUser(running.url("chat")).register("dora")
    frank = await ChatUser(running.url("chat")).register("frank")
    for who, text in ((dora, "Morning! Is the new hub up?"), (frank, "Yes, running since 9:00."), (dora, "The dashboard looks good.")):
        await who.post(text)
    await running.actions.run("chat.create_room", {"name": "ops", "members": ["dora", "frank"]})
    nursery.start_soon(traffic, running)
    shots = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    errors = await trio.to_thread.run_sync(shoot, running.url("dashboard"), shots)
    assert errors == []
    for name, _ in PAGES:
        assert (shots / f"{name}.png").stat().st_size > 5000, name
