"""Centrifugo 6.8's shared poll end to end: a hub on a Centrifugo config.json with shared poll namespaces, a real
HTTP backend (the hub's own h11 server) answering the refresh requests, and raw websocket JSON clients tracking
signed keys."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from hub.config import ConfigError, load_settings
from hub.net.http import HTTPServer, Request, Response, Route
from hub.runtime import serve
from tests.protocols.realtime.test_map_subscriptions import Conn

SECRET = "shared-poll-secret-long-enough-for-the-hub-0123456789"


def sign(channel: str, keys: list[str], user: str = "", ttl: int = 3600) -> str:
    now = int(time.time())
    keys_hash = hashlib.sha256("\x00".join(keys).encode()).hexdigest()
    payload = f"{now}\x00{now + ttl}\x00{user}\x00{channel}\x00{keys_hash}".encode()
    return f"{now}:{now + ttl}:{hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()}"


class Backend:
    """The application's refresh endpoint: the items it holds, and the requests it got."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.asked = trio.Event()

    async def refresh(self, request: Request) -> Response:
        body = request.json()
        self.requests.append(body)
        self.asked.set()
        found = [{"key": i["key"], **self.items[i["key"]]} for i in body["items"] if i["key"] in self.items]
        return Response.json({"result": {"items": found}})


@pytest.fixture
async def backend(nursery: trio.Nursery) -> tuple[Backend, str]:
    app = Backend()
    http = HTTPServer([Route("/refresh", app.refresh, methods=["POST"])])
    http.tasks = nursery
    nursery.start_soon(http.flusher.run)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, http.handle, listeners)
    return app, f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/refresh"


def config(endpoint: str) -> dict[str, Any]:
    def ns(name: str, mode: str | None) -> dict[str, Any]:
        poll = {"proxy_name": "backend", "refresh_interval": "50ms", "refresh_batch_size": 2, "max_keys_per_connection": 3}
        return {"name": name, "subscription_type": "shared_poll", "allow_subscribe_for_client": True,
                "shared_poll": {**poll, **({"mode": mode} if mode else {})}}

    return {"client": {"insecure": True}, "http_server": {"port": 0}, "log": {"level": "error"},
            "shared_poll": {"hmac_secret_key": SECRET},
            "proxies": [{"name": "backend", "endpoint": endpoint, "timeout": "2s"}],
            "channel": {"namespaces": [ns("v", "versioned"), ns("vl", None)]}}


@pytest.fixture
async def hub(nursery: trio.Nursery, tmp_path: Path, backend: tuple[Backend, str]) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(backend[1])))
    settings = load_settings(path)
    settings.adapters["realtime"].port = 0
    running = await nursery.start(serve, settings)
    yield running
    running.shutdown()


def track(channel: str, items: list[tuple[str, int]], signature: str | None = None, **extra: Any) -> dict[str, Any]:
    keys = [k for k, _ in items]
    batch = {"signature": signature or sign(channel, keys), "items": [{"key": k, "version": v} for k, v in items]}
    return {"channel": channel, "type": 1, "track": [batch], **extra}


async def test_track_poll_push_and_untrack(hub: Any, backend: tuple[Backend, str]) -> None:
    app, _ = backend
    app.items["k1"] = {"data": {"v": "one"}, "version": 1}
    app.items["k2"] = {"data": {"v": "two"}, "version": 5}
    app.items["k3"] = {"data": {"v": "three"}, "version": 1}
    conn = await Conn.open(hub)
    sub = (await conn.call("subscribe", {"channel": "v:a", "type": 4}))["subscribe"]
    assert sub == {"type": 4}  # versioned mode: no epoch
    reply = (await conn.call("sub_refresh", track("v:a", [("k1", 0), ("k2", 5), ("k3", 0)])))["sub_refresh"]
    assert reply["expires"] is True and 3590 < reply["ttl"] <= 3600
    pushes = [await conn.push(), await conn.push()]  # k2: the client already has version 5
    assert sorted((p["pub"]["key"], p["pub"]["data"]["v"], p["pub"]["version"]) for p in pushes) == [
        ("k1", "one", 1), ("k3", "three", 1)]
    assert all(p["channel"] == "v:a" for p in pushes)
    assert all(len(r["items"]) <= 2 for r in app.requests)  # refresh_batch_size
    # A newer version is pushed once; the same version again is not.
    app.items["k1"] = {"data": {"v": "uno"}, "version": 2}
    assert (await conn.push())["pub"] == {"key": "k1", "data": {"v": "uno"}, "version": 2}
    # A second client gets the cached item in its track reply.
    other = await Conn.open(hub)
    await other.call("subscribe", {"channel": "v:a", "type": 4})
    items = (await other.call("sub_refresh", track("v:a", [("k1", 0)])))["sub_refresh"]["items"]
    assert items == [{"key": "k1", "data": {"v": "uno"}, "version": 2}]
    # Untracked keys are no longer pushed; removals are.
    assert (await conn.call("sub_refresh", {"channel": "v:a", "type": 2, "untrack": ["k3"]}))["sub_refresh"] == {}
    app.items["k3"] = {"data": {"v": "tres"}, "version": 2}
    app.items["k1"] = {"removed": True}
    assert (await conn.push())["pub"] == {"key": "k1", "removed": True}
    assert (await other.push())["pub"] == {"key": "k1", "removed": True}
    app.asked = trio.Event()
    await app.asked.wait()
    assert not conn.pushes  # nothing for k3
    # Unsubscribed: the backend is asked for nothing once nobody tracks anything.
    await conn.call("unsubscribe", {"channel": "v:a"})
    await other.ws.aclose()
    app.asked = trio.Event()
    with trio.move_on_after(0.3):
        await app.asked.wait()
        app.asked = trio.Event()
        await app.asked.wait()  # a request already under way may finish; no second one comes
    assert not app.asked.is_set()


async def test_versionless_mode_numbers_versions(hub: Any, backend: tuple[Backend, str]) -> None:
    app, _ = backend
    app.items["x"] = {"data": {"n": 1}}
    conn = await Conn.open(hub)
    epoch = (await conn.call("subscribe", {"channel": "vl:b", "type": 4}))["subscribe"]["epoch"]
    assert len(epoch) == 8
    await conn.call("sub_refresh", track("vl:b", [("x", 0)]))
    assert (await conn.push())["pub"] == {"key": "x", "data": {"n": 1}, "version": 1}
    app.items["x"] = {"data": {"n": 2}}
    assert (await conn.push())["pub"] == {"key": "x", "data": {"n": 2}, "version": 2}


async def test_track_refusals(hub: Any) -> None:
    conn = await Conn.open(hub)
    code = lambda reply: reply["error"]["code"]  # noqa: E731
    assert code(await conn.call("sub_refresh", track("v:c", [("k", 0)]))) == 103  # not subscribed
    await conn.call("subscribe", {"channel": "v:c", "type": 4})
    assert code(await conn.call("subscribe", {"channel": "v:c", "type": 4})) == 105
    assert code(await conn.call("sub_refresh", track("v:c", [("k", 0)], signature="1:2:bad"))) == 103
    assert code(await conn.call("sub_refresh", track("v:c", [("k", 0)], signature=sign("v:other", ["k"])))) == 103
    assert code(await conn.call("sub_refresh", track("v:c", [("k", 0)], signature=sign("v:c", ["k"], ttl=-10)))) == 109
    assert code(await conn.call("sub_refresh", track("v:c", [(k, 0) for k in "abcd"]))) == 106  # max 3 keys
    assert "error" not in await conn.call("sub_refresh", track("v:c", [(k, 0) for k in "abc"]))
    assert code(await conn.call("subscribe", {"channel": "other", "type": 4})) == 108  # not a shared poll namespace


def test_config_json_needs_a_named_proxy_and_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    data = config("http://127.0.0.1:1/refresh")
    data["channel"]["namespaces"][0]["shared_poll"]["proxy_name"] = "missing"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="proxy_name"):
        load_settings(path)
    data = config("http://127.0.0.1:1/refresh")
    del data["shared_poll"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="hmac_secret_key"):
        load_settings(path)
