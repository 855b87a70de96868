"""Flood limits through real sockets: the Origin check of every websocket endpoint, per-IP and per-user
connection limits, per-IP HTTP request rates (429 + Retry-After), and the per-connection command rate
of realtime clients (111, then a 3013 close) while a normal client on the same hub sees no delay.
Every refusal is counted in /metrics (`hub_refused_total`)."""

from __future__ import annotations

import base64
import json
import os
import struct
import time
from typing import Any

import httpx
import pytest
import trio

from hub.net.limits import CommandLimiter, IPRates, TokenBucket
from hub.net.origin import origin_allowed, same_host
from protocols.realtime.tokens import make_token
from tests.conftest import SECRET, connect_params
from tests.rawws import RawWebSocket, client_frame

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


async def handshake(url: str, path: str, origin: str | None = None, host: str | None = None) -> tuple[int, trio.SocketStream]:
    """A websocket upgrade with an Origin header: (status, stream)."""
    hostport = url.split("://", 1)[1]
    h, port = hostport.rsplit(":", 1)
    stream = await trio.open_tcp_stream(h, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Origin: {origin}\r\n" if origin is not None else ""
    await stream.send_all((f"GET {path} HTTP/1.1\r\nHost: {host or hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: mqtt\r\n{extra}\r\n").encode())
    buf = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in buf:
            data = await stream.receive_some(65536)
            if not data:
                break
            buf += data
    return int(buf.split(b" ", 2)[1]), stream


async def metrics(running: Any) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(running.url("stats") + "/metrics")).text


def test_origin_rules_without_io() -> None:
    assert origin_allowed(None, "a:1", [])  # not a browser
    assert origin_allowed("http://a:1", "a:1", []) and not origin_allowed("http://evil:1", "a:1", [])
    assert same_host("https://a", "a:443", tls=True) and same_host("http://a", "a:80") and not same_host("http://a:81", "a")
    assert origin_allowed("http://localhost:5173", "hub:8000", ["http://localhost:*"])
    assert not origin_allowed("http://localhost.evil.com", "hub:8000", ["http://localhost:*"])
    assert not origin_allowed("http://hub:8000", "hub:8000", [], strict=True)


def test_buckets_without_io() -> None:
    now = [0.0]
    bucket = TokenBucket(10, 5, clock=lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert bucket.retry_after() == pytest.approx(0.1)
    now[0] += 0.1
    assert bucket.take() and not bucket.take()
    limiter = CommandLimiter(10, 2, 3, clock=lambda: now[0])
    assert [limiter.check() for _ in range(6)] == ["ok", "ok", "refuse", "refuse", "refuse", "disconnect"]
    rates = IPRates(1, 1, clock=lambda: now[0])
    assert rates.retry_after("a") is None and rates.retry_after("a") == pytest.approx(1.0) and rates.retry_after("b") is None


ORIGINS = """
[realtime]
allowed_origins = ["http://localhost:*"]
[jsonrpc]
allowed_origins = ["http://localhost:*"]
[chat]
allowed_origins = ["http://localhost:*"]
[mqtt]
port = 0
allow_anonymous = true
allowed_origins = ["http://localhost:*"]
"""


async def test_every_websocket_endpoint_refuses_a_foreign_origin_with_403(start_hub):
    running = await start_hub(ORIGINS)
    endpoints = [("realtime", "/connection/websocket"), ("realtime", "/connection/123/abcdefgh/websocket"),
                 ("jsonrpc", "/ws/events"), ("chat", "/websocket"), ("chat", "/sockjs/123/abcdefgh/websocket"),
                 ("mqtt", "/mqtt")]
    for adapter, path in endpoints:
        url = running.url(adapter)
        hostport = url.split("://", 1)[1]
        for origin, expected in (("http://evil.example", 403), ("null", 403), ("http://localhost:5173", 101),
                                 (None, 101), (f"http://{hostport}", 403)):
            status, stream = await handshake(url, path, origin)
            await stream.aclose()
            assert status == expected, (adapter, path, origin, status)
    # Without allowed_origins: pages of the same host only.
    plain = await start_hub("[jsonrpc]\nport = 0\n")
    url = plain.url("jsonrpc")
    assert (await handshake(url, "/ws/events", f"http://{url.split('://')[1]}"))[0] == 101
    assert (await handshake(url, "/ws/events", "http://localhost:1"))[0] == 403
    text = await metrics(running)
    assert 'hub_refused_total{adapter="chat",limit="origin"} 6.0' in text, text


async def test_per_ip_connection_limit(start_hub):
    running = await start_hub("[realtime]\nmax_connections_per_ip = 2\nlimit_exempt = []\n"
                              "[command_api]\nmax_connections_per_ip = 2\nlimit_exempt = []\n")
    url = running.url("realtime")
    ws_url = url.replace("http", "ws") + "/connection/websocket"
    first, second = await RawWebSocket.connect(ws_url), await RawWebSocket.connect(ws_url)
    third = await RawWebSocket.connect(ws_url)  # accepted, then closed 1013 (as over max_connections)
    with trio.fail_after(5):
        opcode, payload = await third.recv()
    assert opcode == 8 and struct.unpack("!H", payload[:2])[0] == 1013 and b"from this address" in payload
    async with httpx.AsyncClient() as http:
        r = await http.get(url + "/health")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        await first.aclose()
        with trio.fail_after(5):
            while running.listeners[0].server.per_ip.open.get("127.0.0.1", 0) > 1:
                await trio.sleep(0.01)
        assert (await http.get(url + "/health")).status_code == 200
    await second.aclose()
    assert 'hub_refused_total{adapter="realtime",limit="connections per ip"} 2.0' in await metrics(running)


async def test_loopback_is_exempt_by_default(start_hub):
    running = await start_hub("[command_api]\nrate_limit = 1\nrate_limit_burst = 1\nmax_connections_per_ip = 1\n")
    async with httpx.AsyncClient() as http:
        for _ in range(5):
            assert (await http.get(running.url("command_api") + "/health")).status_code == 200


async def test_http_request_rate_per_ip_is_answered_429_with_retry_after(start_hub):
    running = await start_hub("[realtime]\nrate_limit = 2\nrate_limit_burst = 5\nlimit_exempt = []\n"
                              "[command_api]\nrate_limit = 2\nrate_limit_burst = 5\nlimit_exempt = []\n")
    url = running.url("command_api")
    async with httpx.AsyncClient() as http:
        statuses = []
        for _ in range(7):
            r = await http.post(url + "/api/info", json={}, headers={"X-API-Key": "test-api-key"})
            statuses.append(r.status_code)
        assert statuses == [200] * 5 + [429] * 2
        assert r.headers["retry-after"] == "1" and r.json()  # the adapter's own error shape
        await trio.sleep(0.6)  # 2 a second: one more after half a second
        assert (await http.post(url + "/api/info", json={}, headers={"X-API-Key": "test-api-key"})).status_code == 200
    assert 'hub_refused_total{adapter="command_api",limit="http rate"} 2.0' in await metrics(running)


async def sdk_client(running: Any, user: str) -> RawWebSocket:
    ws = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await ws.send_json({"id": 1, "connect": {"token": make_token(SECRET, {"sub": user})}})
    with trio.fail_after(5):
        reply = await ws.recv_json()
    assert "connect" in reply, reply
    return ws


async def read_until_close(ws: RawWebSocket, timeout: float = 20) -> tuple[list[Any], int | None]:
    """Every reply until the server closes: (replies, close code)."""
    replies: list[Any] = []
    with trio.fail_after(timeout):
        while True:
            try:
                opcode, payload = await ws.recv()
            except EOFError:
                return replies, None
            if opcode == 8:
                return replies, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            for line in payload.decode().splitlines():
                replies.append(json.loads(line))


LIMITED = "[realtime]\ncommand_rate_limit = 20\ncommand_burst = 50\ncommand_abuse = 100\n"


async def test_command_flood_gets_111_then_3013_while_a_normal_client_sees_no_delay(start_hub):
    running = await start_hub(LIMITED)
    normal = await sdk_client(running, "bob")
    await normal.send_json({"id": 2, "subscribe": {"channel": "news"}})
    with trio.fail_after(5):
        assert "subscribe" in await normal.recv_json()
    flooder = await sdk_client(running, "mallory")
    await flooder.send_json({"id": 2, "subscribe": {"channel": "news"}})
    with trio.fail_after(5):
        assert "subscribe" in await flooder.recv_json()
    latencies: list[float] = []

    async def publish_and_watch() -> None:
        for i in range(20):
            sent = time.perf_counter()
            await running.publish("news", {"i": i})
            with trio.fail_after(5):
                while True:
                    push = await normal.recv_json()
                    if push.get("push", {}).get("pub", {}).get("data") == {"i": i}:
                        break
            latencies.append(time.perf_counter() - sent)
            await trio.sleep(0.02)

    async def flood() -> None:
        frame = client_frame("\n".join(json.dumps({"id": 10 + i, "presence": {"channel": "news"}}) for i in range(20)))
        try:
            for _ in range(50):  # 1,000 commands as fast as the socket takes them
                await flooder.stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        nursery.start_soon(publish_and_watch)
        replies, code = await read_until_close(flooder)
    assert code == 3013
    answered = [r for r in replies if "id" in r]
    ok = [r for r in answered if "presence" in r]
    limited = [r for r in answered if r.get("error") == {"code": 111, "message": "too many requests"}]
    assert len(ok) + len(limited) == len(answered)
    # The burst less connect and subscribe, then 111s (patience refills too while the flood goes on: generous).
    assert 50 - 2 <= len(ok) < 250 and 100 <= len(limited) < 300, (len(ok), len(limited))
    assert max(latencies) < 1.0, latencies  # generous: the flood must not hold up the normal client
    text = await metrics(running)
    assert f'hub_refused_total{{adapter="realtime",limit="command rate"}} {len(limited)}.0' in text
    assert 'hub_refused_total{adapter="realtime",limit="command rate disconnect"} 1.0' in text


async def test_legacy_command_flood_gets_too_many_requests_then_closed(start_hub):
    running = await start_hub(LIMITED)
    ws = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await ws.send_json({"method": "connect", "params": connect_params("alice")})
    with trio.fail_after(5):
        assert (await ws.recv_reply())[0]["error"] is None
    await ws.send_json({"method": "subscribe", "params": {"channel": "news"}})
    with trio.fail_after(5):
        assert (await ws.recv_reply())[0]["error"] is None
    batch = client_frame(json.dumps([{"method": "presence", "params": {"channel": "news"}}] * 100))
    for _ in range(3):
        await ws.stream.send_all(batch)
    replies, code = await read_until_close(ws)
    entries = [e for r in replies if isinstance(r, list) for e in r]
    errors = [e["error"] for e in entries]
    assert errors[:48] == [None] * 48 and "too many requests" in errors  # the burst less connect, subscribe
    assert set(errors) <= {None, "too many requests"}
    assert code == 1005  # the original's close (no status code)


async def test_user_connection_limit_is_counted(start_hub):
    running = await start_hub("[realtime]\nuser_connection_limit = 1\n")
    first = await sdk_client(running, "alice")  # kept open (a dropped socket would close)
    ws = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await ws.send_json({"id": 1, "connect": {"token": make_token(SECRET, {"sub": "alice"})}})
    _, code = await read_until_close(ws, 5)
    assert code == 3504
    assert 'hub_refused_total{adapter="realtime",limit="connections per user"} 1.0' in await metrics(running)
    await first.aclose()


async def test_mqtt_tcp_connections_per_ip(start_hub):
    running = await start_hub("[mqtt]\nport = 0\nallow_anonymous = true\nmax_connections_per_ip = 1\nlimit_exempt = []\n")
    host, port = running.url("mqtt").split("://", 1)[1].rsplit(":", 1)
    connect = bytes([0x10, 13, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 1]) + b"a"
    first = await trio.open_tcp_stream(host, int(port))
    await first.send_all(connect)
    with trio.fail_after(5):
        assert (await first.receive_some(4))[:1] == b"\x20"  # CONNACK
    second = await trio.open_tcp_stream(host, int(port))
    await second.send_all(connect.replace(b"\x01a", b"\x01b"))
    with trio.fail_after(5):
        assert await second.receive_some(4) == b""  # closed before CONNACK
    await first.aclose()
    assert 'hub_refused_total{adapter="mqtt",limit="connections per ip"} 1.0' in await metrics(running)


def test_a_centrifuge_08_config_keeps_any_origin(tmp_path):
    """0.8 checked no Origin: a migrated config.json keeps browser pages of other origins working."""
    from hub.config import load_settings

    path = tmp_path / "config.json"
    path.write_text(json.dumps({"projects": [{"name": "development", "secret": "s" * 32}]}))
    assert load_settings(path).adapters["realtime"].allowed_origins == ["*"]
