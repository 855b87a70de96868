"""Centrifugo's bidirectional emulation (HTTP-streaming, SSE and /emulation), as centrifuge-js uses it when
websockets are blocked: the real SDK in Node over each transport, and the wire itself (connect request, framing,
emulation requests, status codes) with a plain HTTP client."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import cent
import httpx
import pytest
import trio
from google.protobuf.internal.encoder import _VarintBytes

from hub.config import load_settings
from hub.runtime import serve
from protocols.realtime.proto import centrifugo_client_pb2 as pb
from protocols.realtime.tokens import make_token
from tests.protocols.realtime.test_sdk_js import JS_DIR, Lines, node  # noqa: F401  (the node fixture)

SECRET = "emulation-hmac-secret-key-long-enough-for-hs256-" + "x" * 16
API_KEY = "emulation-api-key"
CONFIG = {
    "client": {"token": {"hmac_secret_key": SECRET}},
    "http_stream": {"enabled": True},
    "sse": {"enabled": True},
    "http_server": {"port": 0},
    "http_api": {"key": API_KEY},
    "log": {"level": "warn"},
    "channel": {"without_namespace": {"presence": True, "history_size": 10, "history_ttl": "60s", "force_recovery": True,
                                      "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True,
                                      "allow_presence_for_subscriber": True, "allow_history_for_subscriber": True}},
}


@pytest.fixture
async def running(nursery: trio.Nursery, tmp_path: Path) -> Any:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    settings = load_settings(path)
    settings.adapters["realtime"].port = settings.adapters["command_api"].port = 0
    hub = await nursery.start(serve, settings)
    yield hub
    hub.shutdown()


def tok(user: str) -> str:
    return make_token(SECRET, {"sub": user, "exp": int(time.time()) + 300})


async def api_disconnect(running: Any, user: str) -> None:
    client = cent.Client(running.url("command_api") + "/api", API_KEY)
    await trio.to_thread.run_sync(client.disconnect, cent.DisconnectRequest(
        user=user, disconnect=cent.Disconnect(code=4501, reason="bye")))


@pytest.mark.parametrize(("transport", "fmt"), [("http_stream", "json"), ("http_stream", "protobuf"), ("sse", "json")])
async def test_centrifuge_js_over_emulation(running, node, transport: str, fmt: str) -> None:  # noqa: F811
    base = running.url("realtime")
    user = f"{transport}-{fmt}"
    process = await trio.lowlevel.open_process([node, str(JS_DIR / "emulation.js"), base, transport, fmt, tok(user),
                                                f"room-{user}"], stdout=subprocess.PIPE, cwd=JS_DIR)
    try:
        lines = Lines(process.stdout)
        connected = await lines.next("connected")
        assert connected["transport"] == transport
        await lines.next("subscribed")
        assert (await lines.next("publication"))["data"] == json.dumps({"from": transport}, separators=(",", ":")) \
            if fmt == "protobuf" else {"from": transport}
        ready = await lines.next("ready")
        assert ready["presence"] == 1 and len(ready["history"]) == 1
        await running.publish(f"room-{user}", {"n": 1})
        assert (await lines.next("publication"))["data"] in ({"n": 1}, '{"n":1}')
        await api_disconnect(running, user)  # the disconnect push ends the response; the SDK sees the code
        disconnected = await lines.next("disconnected")
        assert (disconnected["code"], disconnected["reason"]) == (4501, "bye")
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _lines(response: httpx.Response) -> Any:
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line


async def test_http_stream_wire_json(running) -> None:
    base = running.url("realtime")
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        connect = json.dumps({"id": 1, "connect": {"token": tok("wire")}})
        async with http.stream("POST", "/connection/http_stream", content=connect,
                               headers={"content-type": "application/json"}) as response:
            assert response.status_code == 200
            assert response.headers["cache-control"].startswith("private, no-cache")
            lines = _lines(response)
            reply = json.loads(await lines.__anext__())["connect"]
            session, node_id = reply["session"], reply["node"]
            assert session and node_id and reply["client"]
            # commands through /emulation: the data is the commands' text as a JSON string
            commands = "\n".join(json.dumps(c) for c in [{"id": 2, "subscribe": {"channel": "wire"}},
                                                          {"id": 3, "publish": {"channel": "wire", "data": {"a": 1}}}])
            sent = await http.post("/emulation", json={"session": session, "node": node_id, "data": commands})
            assert sent.status_code == 204
            got = [json.loads(await lines.__anext__()) for _ in range(3)]
            assert got[0]["id"] == 2 and got[0]["subscribe"]["recoverable"] is True
            assert got[1] == {"push": {"channel": "wire", "pub": {"data": {"a": 1}, "offset": 1,
                                                                  "info": got[1]["push"]["pub"]["info"]}}}
            assert got[2] == {"id": 3, "publish": {}}
            # status codes: another node 404, malformed 400, an ended session 204, GET 405
            assert (await http.post("/emulation", json={"session": session, "node": "other", "data": "{}"})).status_code == 404
            assert (await http.post("/emulation", content=b"nonsense")).status_code == 400
            assert (await http.post("/emulation", json={"session": "gone", "node": node_id, "data": "{}"})).status_code == 204
            assert (await http.get("/connection/http_stream")).status_code == 405
            assert (await http.request("OPTIONS", "/emulation")).status_code == 204


async def test_http_stream_wire_protobuf_and_sse(running) -> None:
    base = running.url("realtime")
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        command = pb.Command(id=1, connect=pb.ConnectRequest(token=tok("pb"))).SerializeToString()
        body = _VarintBytes(len(command)) + command  # varint-delimited, as centrifuge-js's protobuf build sends it
        async with http.stream("POST", "/connection/http_stream", content=body,
                               headers={"content-type": "application/octet-stream"}) as response:
            data = b""
            async for chunk in response.aiter_raw():
                data += chunk
                if len(data) > 1 and len(data) - 1 >= data[0]:
                    break
            reply = pb.Reply()
            reply.ParseFromString(data[1:1 + data[0]])
            assert reply.id == 1 and reply.connect.session and reply.connect.node
            # a Protobuf EmulationRequest carries Protobuf commands
            sub = pb.Command(id=2, subscribe=pb.SubscribeRequest(channel="pbwire")).SerializeToString()
            request = pb.EmulationRequest(node=reply.connect.node, session=reply.connect.session,
                                          data=_VarintBytes(len(sub)) + sub)
            sent = await http.post("/emulation", content=request.SerializeToString(),
                                   headers={"content-type": "application/octet-stream"})
            assert sent.status_code == 204

        connect = json.dumps({"id": 1, "connect": {"token": tok("sse")}})
        async with http.stream("GET", "/connection/sse", params={"cf_connect": connect}) as response:
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            lines = _lines(response)
            assert await lines.__anext__() == b"\r"  # the stream opens with \r\n
            event = (await lines.__anext__()).decode()
            assert event.startswith("data: ") and json.loads(event[6:])["connect"]["session"]
        assert (await http.get("/connection/sse")).status_code == 400  # no cf_connect


async def test_a_dropped_stream_ends_the_session(running) -> None:
    """The client closing its streaming request ends the session at once (presence empties), as with a websocket."""
    base = running.url("realtime")
    presence = cent.Client(running.url("command_api") + "/api", API_KEY)

    async def clients() -> int:
        result = await trio.to_thread.run_sync(presence.presence, cent.PresenceRequest(channel="dropped"))
        return len(result.presence)

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        commands = "\n".join(json.dumps(c) for c in [{"id": 1, "connect": {"token": tok("dropper")}},
                                                      {"id": 2, "subscribe": {"channel": "dropped"}}])
        async with http.stream("POST", "/connection/http_stream", content=commands) as response:
            lines = _lines(response)
            assert "connect" in json.loads(await lines.__anext__())
            assert "subscribe" in json.loads(await lines.__anext__())
            assert await clients() == 1
    with trio.fail_after(5):
        while await clients():
            await trio.sleep(0.05)


async def test_cors_for_allowed_origins(nursery, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**CONFIG, "client": {**CONFIG["client"], "allowed_origins": ["http://app.example"]}}))
    settings = load_settings(path)
    settings.adapters["realtime"].port = settings.adapters["command_api"].port = 0
    hub = await nursery.start(serve, settings)
    async with httpx.AsyncClient(base_url=hub.url("realtime"), timeout=10) as http:
        good = await http.request("OPTIONS", "/emulation", headers={
            "origin": "http://app.example", "access-control-request-headers": "content-type"})
        assert good.status_code == 204
        assert good.headers["access-control-allow-origin"] == "http://app.example"
        assert good.headers["access-control-allow-credentials"] == "true"
        assert good.headers["access-control-allow-headers"] == "content-type"
        assert good.headers["access-control-allow-methods"] == "POST, OPTIONS"
        bad = await http.request("OPTIONS", "/connection/http_stream", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in bad.headers
    hub.shutdown()


async def test_a_client_that_stops_reading_is_dropped(running) -> None:
    """Publications pile up for a streaming client that reads nothing: it is dropped (slow client), the hub goes on."""
    host, port = running.url("realtime").removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    body = "\n".join(json.dumps(c) for c in [{"id": 1, "connect": {"token": tok("sleepy")}},
                                              {"id": 2, "subscribe": {"channel": "flood"}}]).encode()
    await stream.send_all(b"POST /connection/http_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    presence = cent.Client(running.url("command_api") + "/api", API_KEY)

    async def clients() -> int:
        result = await trio.to_thread.run_sync(presence.presence, cent.PresenceRequest(channel="flood"))
        return len(result.presence)

    with trio.fail_after(10):
        while not await clients():
            await trio.sleep(0.05)
    payload = {"blob": "x" * 32768}
    with trio.fail_after(30):
        while await clients():
            for _ in range(20):
                await running.publish("flood", payload)
            await trio.sleep(0.01)
    assert running.hub.stats.slow_disconnects >= 1
    await stream.aclose()
