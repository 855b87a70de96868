"""Centrifugo's backend proxy end to end: a hub started from a Centrifugo v6 config.json with connect, refresh,
subscribe, publish, sub_refresh and rpc proxies, a real HTTP backend (the hub's own h11 server on an ephemeral
port) and the real centrifuge-python client. A backend that is down, slow or answers garbage gives the client
Centrifugo's codes within the proxy timeout while other clients keep working."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from centrifuge import Client, ReplyError, SubscriptionState
from trio_websocket import ConnectionClosed, open_websocket_url

from hub.config import ConfigError, load_settings
from hub.net.http import HTTPServer, Request, Response, Route
from hub.runtime import serve
from tests.protocols.realtime.test_sdk_python import Recorder, run_asyncio, until

API_KEY = "proxy-test-api-key"
SLOW_TIMEOUT = 3.0  # long enough that another client is served while a call waits, even on a loaded machine


def expire_at(seconds: int) -> int:
    """A lifetime of at least `seconds`: int(time.time()) + 1 can be a few ms away, and then the hub (like
    Centrifugo) refuses the connect as already expired (110) and the SDK stops for good."""
    return math.ceil(time.time()) + seconds


class Backend:
    """The application backend: answers Centrifugo's proxy requests and records them (body and headers)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.refresh_answers: list[Any] = []  # answers, or callables making one when the call comes

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [body for k, body, _ in self.calls if k == kind]

    def headers(self, kind: str) -> list[dict[str, str]]:
        return [headers for k, _, headers in self.calls if k == kind]

    def routes(self) -> list[Route]:
        return [Route("/{kind}", self.handle, methods=["POST"])]

    async def handle(self, request: Request) -> Response:
        kind = request.params["kind"]
        body = request.json()
        self.calls.append((kind, body, dict(request.headers)))
        answer = await getattr(self, kind)(body)
        if isinstance(answer, Response):
            return answer
        return Response.json(answer)

    async def connect(self, body: dict[str, Any]) -> Any:
        data = body.get("data") or {}
        mode = data.get("mode")
        if mode == "slow":
            await trio.sleep(60)
        if mode == "garbage":
            return Response(200, b"<html>not json", "text/html")
        if mode == "status":
            return Response(503, b"down for maintenance", "text/plain")
        if mode == "disconnect":
            return {"disconnect": {"code": 4501, "reason": "go away"}}
        if mode == "unknown-channel":
            return {"result": {"user": "u", "channels": ["nowhere:x"]}}
        if mode == "forbidden":
            return Response(403, b"forbidden", "text/plain")
        if mode == "error":
            return {"error": {"code": 4000, "message": "custom connect error"}}
        result: dict[str, Any] = {"user": data.get("user", "alice"), "info": {"name": data.get("user", "alice").title()},
                                  "meta": {"plan": "gold"}, "data": {"welcome": True}}
        if data.get("channels"):
            result["channels"] = data["channels"]
        if data.get("subs"):
            result["subs"] = data["subs"]
        if data.get("expire_in"):
            result["expire_at"] = expire_at(data["expire_in"])
        return {"result": result}

    async def refresh(self, body: dict[str, Any]) -> Any:
        if self.refresh_answers:
            answer = self.refresh_answers.pop(0)
            return answer() if callable(answer) else answer
        return {"result": {"expired": True}}

    async def subscribe(self, body: dict[str, Any]) -> Any:
        channel = body["channel"]
        tail = channel.split(":", 1)[-1]
        if tail == "deny":
            return {"error": {"code": 103, "message": "permission denied"}}
        if tail == "custom":
            return {"error": {"code": 4001, "message": "not in this room"}}
        if tail == "kick":
            return {"disconnect": {"code": 4502, "reason": "kicked by backend"}}
        result: dict[str, Any] = {"info": {"role": "reader"}, "data": {"hello": body["user"]}}
        if channel.startswith("refreshed:"):
            result["expire_at"] = expire_at(1)
        return {"result": result}

    async def sub_refresh(self, body: dict[str, Any]) -> Any:
        return {"result": {"expired": True}}

    async def publish(self, body: dict[str, Any]) -> Any:
        data = body.get("data")
        if isinstance(data, dict) and data.get("reject"):
            return {"error": {"code": 4003, "message": "rejected by backend"}}
        return {"result": {"data": {"text": str(data.get("text", "")).upper(), "by": body["user"]}}}

    async def rpc(self, body: dict[str, Any]) -> Any:
        return {"result": {"data": {"method": body["method"], "echo": body.get("data"), "user": body["user"]}}}

    async def slow(self, body: dict[str, Any]) -> Any:
        await trio.sleep(60)
        return {}

    async def garbage(self, body: dict[str, Any]) -> Any:
        return Response(200, b'{"result": "not an object"}', "application/json")


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released): the backend that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def backend(nursery: trio.Nursery) -> tuple[Backend, str]:
    app = Backend()
    http = HTTPServer(app.routes())
    http.tasks = nursery
    nursery.start_soon(http.flusher.run)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, http.handle, listeners)
    return app, f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


def config(base: str, connect: str | None = None, connect_timeout: str = "2s") -> dict[str, Any]:
    down = f"http://127.0.0.1:{free_port()}/nothing"
    return {
        "client": {
            "proxy": {
                "connect": {"enabled": True, "endpoint": connect or f"{base}/connect", "timeout": connect_timeout,
                            "http_headers": ["Authorization", "X-Request-Id"],
                            "http": {"static_headers": {"X-Static": "from-config", "Authorization": "overridden"},
                                     "status_to_code_transforms": [
                                         {"status_code": 403, "to_disconnect": {"code": 4503, "reason": "forbidden"}}]}},
                "refresh": {"enabled": True, "endpoint": f"{base}/refresh", "timeout": "1s", "include_connection_meta": True},
            },
            "allowed_origins": ["http://localhost:*"],
        },
        "channel": {
            "proxy": {
                "subscribe": {"endpoint": f"{base}/subscribe", "include_connection_meta": True},
                "publish": {"endpoint": f"{base}/publish"},
                "sub_refresh": {"endpoint": f"{base}/sub_refresh"},
            },
            "without_namespace": {"allow_subscribe_for_client": True, "allow_publish_for_subscriber": True},
            "namespaces": [
                {"name": "proxied", "subscribe_proxy_enabled": True, "publish_proxy_enabled": True,
                 "history_size": 10, "history_ttl": "60s"},
                {"name": "refreshed", "subscribe_proxy_enabled": True, "sub_refresh_proxy_enabled": True},
                {"name": "slow", "subscribe_proxy_enabled": True, "subscribe_proxy_name": "slow"},
                {"name": "broken", "subscribe_proxy_enabled": True, "subscribe_proxy_name": "garbage",
                 "publish_proxy_enabled": True, "publish_proxy_name": "down"},
            ],
        },
        "rpc": {
            "proxy": {"endpoint": f"{base}/rpc", "http_headers": ["X-Request-Id"]},
            "without_namespace": {"proxy_enabled": True},
            "namespaces": [{"name": "slow", "proxy_enabled": True, "proxy_name": "slow"},
                           {"name": "down", "proxy_enabled": True, "proxy_name": "down"}],
        },
        "proxies": [
            {"name": "slow", "endpoint": f"{base}/slow", "timeout": f"{int(SLOW_TIMEOUT * 1000)}ms"},
            {"name": "garbage", "endpoint": f"{base}/garbage"},
            {"name": "down", "endpoint": down, "timeout": "1s"},
        ],
        "http_server": {"port": 0},
        "http_api": {"key": API_KEY},
        "log": {"level": "error"},
    }


@pytest.fixture
async def hub_with(nursery: trio.Nursery, tmp_path: Path) -> Any:
    started: list[Any] = []

    async def start(data: dict[str, Any]) -> str:
        path = tmp_path / f"config{len(started)}.json"
        path.write_text(json.dumps(data))
        settings = load_settings(path)
        settings.adapters["realtime"].port = settings.adapters["command_api"].port = 0
        running = await nursery.start(serve, settings)
        started.append(running)
        return running.url("realtime").replace("http://", "ws://") + "/connection/websocket"

    yield start
    for running in started:
        running.shutdown()


def connect_errors(events: Recorder) -> list[Any]:
    return [ctx.error for ctx in events.of("error")]


# -- the happy paths ------------------------------------------------------------------------------
async def test_connect_subscribe_publish_rpc_through_the_backend(backend, hub_with) -> None:
    app, base = backend
    url = await hub_with(config(base))

    async def scenario(tr: Any) -> None:
        events, sub_events, deny_events, custom_events = Recorder(), Recorder(), Recorder(), Recorder()
        subs = {"alerts": {"data": {"unread": 3}, "info": {"seat": 1}}}
        client = Client(url, events, data={"user": "alice", "channels": ["news"], "subs": subs}, name="proxy-test",
                        version="1.2.3",
                        headers={"Authorization": "Bearer abc", "X-Request-Id": "r-1", "X-Not-Listed": "secret"})
        await client.connect()
        await client.ready()
        connected = events.of("connected")[0]
        assert connected.data == {"welcome": True}
        # connect proxy's channels: a server-side subscription
        await until(lambda: {ctx.channel for ctx in events.of("subscribed")} == {"news", "alerts"})
        assert [ctx.data for ctx in events.of("subscribed") if ctx.channel == "alerts"] == [{"unread": 3}]

        # connect request: Centrifugo's fields, the listed headers (the client's beat static ones), not the others
        body = app.of("connect")[0]
        assert {k: body[k] for k in ("client", "transport", "protocol", "encoding", "name", "version", "data")} == {
            "client": client.client_id, "transport": "websocket", "protocol": "json", "encoding": "json",
            "name": "proxy-test", "version": "1.2.3", "data": {"user": "alice", "channels": ["news"], "subs": subs}}
        headers = app.headers("connect")[0]
        assert headers["authorization"] == "Bearer abc" and headers["x-request-id"] == "r-1"
        assert headers["x-static"] == "from-config" and "x-not-listed" not in headers
        assert headers["content-type"] == "application/json"

        # subscribe proxy: allowed with its info and data; the request has the user and the connection meta
        sub = client.new_subscription("proxied:open", sub_events)
        await sub.subscribe()
        await sub.ready()
        assert sub_events.of("subscribed")[0].data == {"hello": "alice"}
        request = app.of("subscribe")[-1]
        assert (request["user"], request["channel"], request["meta"]) == ("alice", "proxied:open", {"plan": "gold"})

        # denied, custom error (unsubscribed with the backend's code), disconnect
        deny = client.new_subscription("proxied:deny", deny_events)
        await deny.subscribe()
        await until(lambda: deny.state == SubscriptionState.UNSUBSCRIBED and deny_events.of("unsubscribed"))
        assert deny_events.of("unsubscribed")[-1].code == 103
        custom = client.new_subscription("proxied:custom", custom_events)
        await custom.subscribe()
        await until(lambda: bool(custom_events.of("unsubscribed")))
        assert (custom_events.of("unsubscribed")[-1].code, custom_events.of("unsubscribed")[-1].reason) == (
            4001, "not in this room")

        # publish proxy: the backend's data is what subscribers get; a rejection is the publish's error
        await sub.publish({"text": "hello"})
        await until(lambda: len(sub_events.of("publication")) == 1)
        pub = sub_events.of("publication")[0].pub
        assert pub.data == {"text": "HELLO", "by": "alice"}
        assert (pub.info.user, pub.info.client, pub.info.conn_info, pub.info.chan_info) == (
            "alice", client.client_id, {"name": "Alice"}, {"role": "reader"})  # connect's and subscribe's info
        assert app.of("publish")[-1]["data"] == {"text": "hello"}
        with pytest.raises(ReplyError) as exc:
            await sub.publish({"reject": True})
        assert (exc.value.code, exc.value.message) == (4003, "rejected by backend")

        # rpc proxy returns the backend's data; its own http_headers are forwarded
        result = await client.rpc("echo", {"x": 1})
        assert result.data == {"method": "echo", "echo": {"x": 1}, "user": "alice"}
        assert app.headers("rpc")[-1]["x-request-id"] == "r-1" and "authorization" not in app.headers("rpc")[-1]

        # a subscribe proxy's disconnect closes the connection with its code
        kick = client.new_subscription("proxied:kick", Recorder())
        await kick.subscribe()
        await until(lambda: bool(events.of("disconnected")) or any(c.code == 4502 for c in events.of("connecting")))
        codes = [c.code for c in events.of("disconnected")] + [c.code for c in events.of("connecting")]
        assert 4502 in codes
        await client.disconnect()

    await run_asyncio(scenario, timeout=30)


async def test_protobuf_client_through_the_backend(backend, hub_with) -> None:
    """The same proxies for a Protobuf client: the backend sees JSON, the client gets its payloads as bytes."""
    app, base = backend
    url = await hub_with(config(base))

    async def scenario(tr: Any) -> None:
        events, sub_events = Recorder(), Recorder()
        client = Client(url, events, data=b'{"user": "pat"}', use_protobuf=True)
        await client.connect()
        await client.ready()
        assert json.loads(events.of("connected")[0].data) == {"welcome": True}
        assert app.of("connect")[-1]["protocol"] == "protobuf" and app.of("connect")[-1]["data"] == {"user": "pat"}
        sub = client.new_subscription("proxied:pb", sub_events)
        await sub.subscribe()
        await sub.ready()
        assert json.loads(sub_events.of("subscribed")[0].data) == {"hello": "pat"}
        await sub.publish(b'{"text": "bytes"}')
        await until(lambda: len(sub_events.of("publication")) == 1)
        assert json.loads(sub_events.of("publication")[0].pub.data) == {"text": "BYTES", "by": "pat"}
        result = await client.rpc("echo", b'{"y": 2}')
        assert json.loads(result.data) == {"method": "echo", "echo": {"y": 2}, "user": "pat"}
        await client.disconnect()

    await run_asyncio(scenario, timeout=30)


async def test_connect_refused_by_the_backend(backend, hub_with) -> None:
    app, base = backend
    url = await hub_with(config(base))

    async def scenario(tr: Any) -> None:
        events = Recorder()
        client = Client(url, events, data={"mode": "disconnect"})
        await client.connect()
        await until(lambda: bool(events.of("disconnected")))
        assert (events.of("disconnected")[0].code, events.of("disconnected")[0].reason) == (4501, "go away")

        events = Recorder()
        client = Client(url, events, data={"mode": "error"})
        await client.connect()
        await until(lambda: bool(events.of("disconnected")))
        assert (events.of("disconnected")[0].code, events.of("disconnected")[0].reason) == (4000, "custom connect error")

        events = Recorder()  # a channel in an unknown namespace: 102, not temporary
        client = Client(url, events, data={"mode": "unknown-channel"})
        await client.connect()
        await until(lambda: bool(events.of("disconnected")))
        assert events.of("disconnected")[0].code == 102

        events = Recorder()  # http.status_to_code_transforms: the backend's 403 is a disconnect
        client = Client(url, events, data={"mode": "forbidden"})
        await client.connect()
        await until(lambda: bool(events.of("disconnected")))
        assert (events.of("disconnected")[0].code, events.of("disconnected")[0].reason) == (4503, "forbidden")

    await run_asyncio(scenario, timeout=20)


async def test_refresh_and_sub_refresh_are_server_side(backend, hub_with) -> None:
    app, base = backend
    url = await hub_with(config(base))
    # made when the refresh comes: on a loaded machine the connect can come more than a second after this line,
    # and an expire_at counted from here would already be past (the connection expired before its subscription
    # was refreshed, at every reconnect)
    app.refresh_answers = [lambda: {"result": {"expire_at": expire_at(2), "info": {"name": "Refreshed"},
                                               "meta": {"plan": "platinum"}}}]

    async def scenario(tr: Any) -> None:
        events, sub_events = Recorder(), Recorder()
        client = Client(url, events, data={"user": "bob", "expire_in": 1})
        await client.connect()
        await client.ready()
        sub = client.new_subscription("refreshed:room", sub_events)
        await sub.subscribe()
        await sub.ready()
        # the subscription expires after a second; the sub_refresh proxy says expired: unsubscribe 2501, and the
        # SDK subscribes again (through the subscribe proxy)
        await until(lambda: len(app.of("sub_refresh")) >= 1, timeout=10)
        assert app.of("sub_refresh")[0]["channel"] == "refreshed:room" and app.of("sub_refresh")[0]["user"] == "bob"
        await until(lambda: len(app.of("subscribe")) >= 2, timeout=10)
        # the connection: refreshed once (meta goes along), then expired: 3005, and the SDK reconnects
        await until(lambda: len(app.of("refresh")) >= 2, timeout=15)
        first, second = app.of("refresh")[:2]
        assert first["user"] == "bob" and first["meta"] == {"plan": "gold"} and second["meta"] == {"plan": "platinum"}
        await until(lambda: any(c.code == 3005 for c in events.of("connecting")), timeout=10)
        assert not [m for m in events.of("error") if getattr(m.error, "code", 0) == 109]  # no client-side refresh
        await client.disconnect()

    await run_asyncio(scenario, timeout=40)


async def test_server_side_refresh_on_the_wire(backend, hub_with) -> None:
    """With refresh proxies the replies carry no ttl, and a client's refresh / sub_refresh closes with 3501."""
    app, base = backend
    url = await hub_with(config(base))
    for command in ({"refresh": {"token": "t"}}, {"sub_refresh": {"channel": "refreshed:x", "token": "t"}}):
        async with open_websocket_url(url) as ws:
            await ws.send_message(json.dumps({"id": 1, "connect": {"data": {"user": "zed", "expire_in": 60}}}))
            reply = json.loads(await ws.get_message())
            assert reply["connect"]["client"] and "ttl" not in reply["connect"] and "expires" not in reply["connect"]
            await ws.send_message(json.dumps({"id": 2, "subscribe": {"channel": "refreshed:x"}}))
            reply = json.loads(await ws.get_message())
            assert reply["subscribe"]["data"] == {"hello": "zed"} and "ttl" not in reply["subscribe"]
            await ws.send_message(json.dumps({"id": 3, **command}))
            with pytest.raises(ConnectionClosed) as closed:
                with trio.fail_after(5):
                    await ws.get_message()
            assert closed.value.reason.code == 3501


# -- failures ---------------------------------------------------------------------------------------
async def test_slow_garbage_and_down_backends_give_codes_in_time(backend, hub_with) -> None:
    """Each failing call answers 100 (internal, temporary) within its proxy's timeout; another client is served
    meanwhile, and the failing connection stays usable."""
    app, base = backend
    url = await hub_with(config(base))

    async def scenario(tr: Any) -> None:
        client = Client(url, Recorder(), data={"user": "carol"})
        await client.connect()
        await client.ready()
        other_events, other_sub_events = Recorder(), Recorder()
        other = Client(url, other_events, data={"user": "dave"})
        await other.connect()
        await other.ready()
        other_sub = other.new_subscription("plain", other_sub_events)
        await other_sub.subscribe()
        await other_sub.ready()

        async def timed(coro: Any) -> tuple[Any, float]:
            started = time.monotonic()
            try:
                await coro
            except ReplyError as exc:
                return exc, time.monotonic() - started
            raise AssertionError("no error")

        # rpc to a backend that never answers: 100 after the proxy's timeout, while the other client works
        slow_rpc = asyncio.ensure_future(timed(client.rpc("slow:wait", {})))
        await other_sub.publish({"n": 1})
        await until(lambda: len(other_sub_events.of("publication")) == 1)
        assert not slow_rpc.done()  # served while carol's rpc waits on the backend
        error, elapsed = await slow_rpc
        assert error.code == 100 and error.temporary
        assert SLOW_TIMEOUT * 0.9 <= elapsed < SLOW_TIMEOUT + 5

        # rpc to a backend that is down; subscribe answered with garbage; publish to a backend that is down
        error, elapsed = await timed(client.rpc("down:x", {}))
        assert error.code == 100 and elapsed < 4
        sub_events = Recorder()
        broken = client.new_subscription("broken:room", sub_events)
        await broken.subscribe()
        await until(lambda: bool(sub_events.of("error")))
        assert sub_events.of("error")[0].error.code == 100
        await broken.unsubscribe()
        with pytest.raises(ReplyError) as exc:
            await client.publish("broken:room", {"n": 1})
        assert exc.value.code == 100

        # subscribe to a slow backend: 100 within its timeout, and the SDK retries
        slow_events = Recorder()
        slow = client.new_subscription("slow:room", slow_events)
        started = time.monotonic()
        await slow.subscribe()
        await until(lambda: bool(slow_events.of("error")), timeout=10)
        assert slow_events.of("error")[0].error.code == 100 and time.monotonic() - started < SLOW_TIMEOUT + 5
        await slow.unsubscribe()

        # the failing connection and the other one still work
        assert (await client.rpc("echo", {"ok": 1})).data["echo"] == {"ok": 1}
        await other_sub.publish({"n": 2})
        await until(lambda: len(other_sub_events.of("publication")) == 2)
        await client.disconnect()
        await other.disconnect()

    await run_asyncio(scenario, timeout=40)


@pytest.mark.parametrize("mode", ["slow", "garbage", "status"])
async def test_connect_proxy_failure_is_internal_error(backend, hub_with, mode: str) -> None:
    app, base = backend
    url = await hub_with(config(base, connect_timeout="1s"))

    async def scenario(tr: Any) -> None:
        good_events = Recorder()
        good = Client(url, good_events, data={"user": "erin"})
        events = Recorder()
        client = Client(url, events, data={"mode": mode}, min_reconnect_delay=5, max_reconnect_delay=5)
        started = time.monotonic()
        await client.connect()
        await good.connect()
        await good.ready()  # connected while the other connect waits on the backend
        await until(lambda: bool(events.of("error")), timeout=10)
        elapsed = time.monotonic() - started
        error = events.of("error")[0].error
        assert (error.code, error.temporary) == (100, True)
        assert elapsed < 1 + 3
        if mode == "slow":
            assert elapsed >= 0.9
        assert (await good.rpc("echo", {})).data["user"] == "erin"
        await client.disconnect()
        await good.disconnect()

    await run_asyncio(scenario, timeout=30)


async def test_connect_backend_down(backend, hub_with) -> None:
    app, base = backend
    url = await hub_with(config(base, connect=f"http://127.0.0.1:{free_port()}/connect", connect_timeout="1s"))

    async def scenario(tr: Any) -> None:
        events = Recorder()
        client = Client(url, events, min_reconnect_delay=5, max_reconnect_delay=5)
        started = time.monotonic()
        await client.connect()
        await until(lambda: bool(events.of("error")), timeout=10)
        assert events.of("error")[0].error.code == 100 and time.monotonic() - started < 4
        await client.disconnect()

    await run_asyncio(scenario, timeout=20)


# -- configuration ----------------------------------------------------------------------------------
def test_config_json_proxy_keys(tmp_path: Path) -> None:
    base = "http://backend.example"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(base)))
    settings = load_settings(path)
    proxy = settings.adapters["realtime"].proxy
    assert proxy["connect"]["endpoint"] == f"{base}/connect" and proxy["connect"]["timeout"] == 2.0
    assert proxy["connect"]["static_headers"] == {"X-Static": "from-config", "Authorization": "overridden"}
    assert proxy["named"]["slow"]["timeout"] == SLOW_TIMEOUT
    assert proxy["channels"]["proxied"] == {"subscribe": "default", "publish": "default"}
    assert proxy["channels"]["broken"] == {"subscribe": "garbage", "publish": "down"}
    assert proxy["rpc_namespaces"] == {"": "default", "slow": "slow", "down": "down"}
    assert not [w for w in settings.warnings if "proxy" in w]

    for change, key in (
        (lambda d: d["channel"]["namespaces"][0].update(subscribe_proxy_name="nope"), "channel.namespaces[0].subscribe_proxy_name"),
        (lambda d: d["channel"]["proxy"].pop("publish"), "channel.namespaces[0].publish_proxy_name"),
        (lambda d: d["proxies"][0].update(endpoint="grpc://backend:10000"), "proxies[0].endpoint"),
        (lambda d: d["client"]["proxy"]["connect"].update(timeout=5), "client.proxy.connect.timeout"),
        (lambda d: d["client"]["proxy"]["connect"].pop("endpoint"), "client.proxy.connect.endpoint"),
        (lambda d: d["proxies"].append({"name": "slow", "endpoint": base}), "proxies[3].name"),
        (lambda d: d["rpc"]["namespaces"][0].update(proxy_name="missing"), "rpc.namespaces[0].proxy_name"),
    ):
        data = config(base)
        change(data)
        path.write_text(json.dumps(data))
        with pytest.raises(ConfigError) as exc:
            load_settings(path)
        assert exc.value.key == key, (key, exc.value)
