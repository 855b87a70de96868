"""hub.net.websocket over real sockets: RFC 6455 closing rules, the handshake, and lossless backpressure;
then the same rules through the realtime adapter (original and current client protocols)."""

from __future__ import annotations

import gc
import json
import struct
import types
from collections import Counter

import pytest
import trio
import trio.testing

from hub.net.http import Request, WebSocketRoute
from hub.net.websocket import Flusher, WebSocket
from protocols.centrifuge import CLOSES

from ..conftest import connect_params
from ..protocols.jsonrpc.test_jsonrpc import rpc  # noqa: F401, F811 (a fixture)
from ..rawws import RawWebSocket, client_frame
from .conftest import echo_ws, parse, read_all, upgrade_request
from .test_wsframe import client_frame as raw_frame


async def open_ws(port: int, path: str = "/ws") -> RawWebSocket:
    return await RawWebSocket.connect(f"ws://127.0.0.1:{port}{path}")


async def close_code(ws: RawWebSocket, timeout: float = 5) -> tuple[int, bytes]:
    """The server's close frame (code, reason), skipping data frames."""
    with trio.fail_after(timeout):
        while True:
            opcode, payload = await ws.recv()
            if opcode == 8:
                return (struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005), payload[2:]


async def test_reserved_control_opcode_closes_with_1002(serve):
    _, port = await serve()
    ws = await open_ws(port)
    await ws.stream.send_all(raw_frame(0xB, b""))
    assert (await close_code(ws))[0] == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535])
async def test_invalid_close_codes_are_answered_1002(serve, code):
    _, port = await serve()
    ws = await open_ws(port)
    await ws.stream.send_all(raw_frame(8, struct.pack("!H", code)))
    assert (await close_code(ws))[0] == 1002


async def test_valid_close_code_is_echoed_and_empty_close_answered_1000(serve):
    _, port = await serve()
    ws = await open_ws(port)
    await ws.stream.send_all(raw_frame(8, struct.pack("!H", 3000) + b"bye"))
    assert (await close_code(ws))[0] == 3000
    ws = await open_ws(port)
    await ws.stream.send_all(raw_frame(8, b""))
    assert (await close_code(ws))[0] == 1000


async def test_one_byte_close_payload_is_1002_and_bad_utf8_reason_is_1007(serve):
    _, port = await serve()
    ws = await open_ws(port)
    await ws.stream.send_all(raw_frame(8, b"\x03"))
    assert (await close_code(ws))[0] == 1002
    ws = await open_ws(port)
    await ws.stream.send_all(raw_frame(8, struct.pack("!H", 1000) + b"\xce\xba\xed\xa0\x80"))
    assert (await close_code(ws))[0] == 1007


async def test_handshake_with_a_wrong_version_gets_426_and_the_version_we_speak(serve):
    _, port = await serve()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(upgrade_request().replace(b"Version: 13", b"Version: 8"))
    status, headers, _ = parse(await read_all(stream))
    assert status == 426 and headers["sec-websocket-version"] == "13"
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = b"\r\n".join(line for line in upgrade_request().split(b"\r\n") if not line.startswith(b"Sec-WebSocket-Key"))
    await stream.send_all(request)
    assert parse(await read_all(stream))[0] == 400


async def test_a_client_that_does_not_read_is_paused_not_dropped(serve):
    """Backpressure: the server stops reading from a client whose outbox is over half full, so a client
    that sends faster than it reads gets every echo once it reads, and no disconnect."""
    _, port = await serve(routes=[WebSocketRoute("/ws", echo_ws)], outbox_bytes=64 * 1024)
    ws = await open_ws(port)
    count, message = 12000, "x" * 1000  # 12 MB: more than the loopback socket buffers hold
    sent = trio.Event()

    async def sender() -> None:
        frame = client_frame(message)
        for _ in range(count):
            await ws.stream.send_all(frame)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)  # everyone stuck: the server stopped reading
        with trio.fail_after(20):
            for _ in range(count):
                opcode, payload = await ws.recv()
                assert (opcode, payload) == (1, message.encode())


async def test_backpressure_holds_within_one_read_of_many_messages(nursery):
    """One read can bring dozens of messages: receive() stops handing them out once the outbox is half full,
    so an echo of a batch bigger than the outbox pauses instead of overflowing (a stream with no buffer,
    so nothing is written until the client reads)."""
    client, server = trio.testing.memory_stream_pair()
    flusher = Flusher()
    nursery.start_soon(flusher.run)
    ws = WebSocket(server, subprotocol=None, flusher=flusher, spawn=nursery.start_soon, outbox_bytes=8 * 1024)
    message = "x" * 1000
    await client.send_all(client_frame(message) * 40)  # 40 KB in one read: five outboxes' worth
    nursery.start_soon(echo_ws, None, ws)
    await trio.testing.wait_all_tasks_blocked()
    assert not ws.closing and ws.unsent() <= 4 * 1024 + 1100  # paused just past half full, nothing dropped
    reader = RawWebSocket(client)
    with trio.fail_after(5):
        for _ in range(40):
            assert await reader.recv() == (1, message.encode())
    assert not ws.closing


async def test_send_or_disconnect_closes_a_slow_client_with_the_routes_code(serve):
    """A handler that pushes more than the outbox holds without the client reading: the client is
    disconnected with the route's slow-client code (send_frame returns False), nothing vanishes silently."""
    results: list[bool] = []

    async def pusher(request, ws) -> None:
        for _ in range(100):
            results.append(ws.send("y" * 1000))
        await ws.receive()

    server, port = await serve(routes=[WebSocketRoute("/ws", pusher, slow_close=(4321, "too slow"))], outbox_bytes=8 * 1024)
    ws = await open_ws(port)
    frames = []
    with trio.fail_after(5):
        while True:
            opcode, payload = await ws.recv()
            frames.append(opcode)
            if opcode == 8:
                break
    assert struct.unpack("!H", payload[:2])[0] == 4321 and payload[2:] == b"too slow"
    assert False in results and frames.count(1) == results.index(False)


# -- through the realtime adapter ----------------------------------------------------------------
async def legacy(url: str) -> RawWebSocket:
    ws = await RawWebSocket.connect(url.replace("http", "ws") + "/connection/websocket")
    await ws.send_json({"method": "connect", "params": connect_params("alice")})
    assert (await ws.recv_reply())[0]["error"] is None
    return ws


async def test_reserved_opcode_after_connect_fails_the_connection(start_hub):
    running = await start_hub()
    ws = await legacy(running.url("realtime"))
    await ws.stream.send_all(raw_frame(0xB, b""))
    assert (await close_code(ws))[0] == 1002


async def test_deeply_nested_json_gets_the_protocols_bad_request(start_hub):
    running = await start_hub()
    deep = "[" * 20000 + "]" * 20000  # under max_message_bytes, far past the JSON parser's depth
    ws = await legacy(running.url("realtime"))
    await ws.stream.send_all(client_frame(deep))
    assert (await close_code(ws))[0] == CLOSES["bad request"].websocket[0]  # the original's close, not 1011
    first = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await first.stream.send_all(client_frame(deep))  # not readable as the current protocol: the original's answer
    assert (await close_code(first))[0] == CLOSES["bad request"].websocket[0]
    sdk = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await sdk.send_json({"id": 1, "connect": {}})
    await sdk.stream.send_all(client_frame(deep))
    assert (await close_code(sdk))[0] == 3501


async def test_legacy_flood_read_late_gets_every_reply_or_a_slow_close(start_hub):
    """Issue 27: 100,000 presence commands read as fast as possible lost most replies silently.
    Now every reply arrives, or the client is closed as slow (3008), and the drop is counted."""
    running = await start_hub("[hub]\nmax_queue_bytes = 65536\n[realtime]\ncommand_rate_limit = 0\n")  # the outbox, not the rate
    ws = await legacy(running.url("realtime"))
    await ws.send_json({"method": "subscribe", "params": {"channel": "news"}})
    await ws.recv_reply()
    batch = json.dumps([{"method": "presence", "params": {"channel": "news"}}] * 20)
    frames = 1500

    def is_reply(payload: bytes) -> int:
        data = json.loads(payload)
        if not isinstance(data, list):
            return 0
        assert len(data) == 20 and all(r["error"] is None for r in data)
        return 1

    replies, closed = await flood_then_read(ws, client_frame(batch), frames, is_reply, frames)
    assert replies == frames or closed == CLOSES["slow"].websocket[0], (replies, closed)
    if closed is not None:
        assert running.stats()["slow_disconnects"] == 1


async def test_disconnects_are_counted_by_reason_and_exported(start_hub):
    running = await start_hub("[hub]\nmax_queue_bytes = 4096\n")
    ws = await legacy(running.url("realtime"))
    await ws.stream.send_all(raw_frame(0xB, b""))
    assert (await close_code(ws))[0] == 1002
    slow = await legacy(running.url("realtime"))
    await slow.send_json({"method": "subscribe", "params": {"channel": "news"}})
    await slow.recv_reply()
    for i in range(20):  # the memory engine never suspends: nothing is flushed in between, the 4 KiB outbox overflows
        await running.publish("news", {"i": i, "pad": "x" * 500})
    assert (await close_code(slow))[0] == CLOSES["slow"].websocket[0]
    with trio.fail_after(5):
        while running.metrics.disconnects.get(("realtime", "slow")) != 1:
            await trio.sleep(0.01)
    assert running.metrics.disconnects[("realtime", "protocol error")] == 1
    host, port = running.url("stats").rsplit("//", 1)[1].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = (await read_all(stream)).decode()
    assert 'hub_disconnects_total{adapter="realtime",reason="slow"} 1.0' in text


async def flood_then_read(ws: RawWebSocket, frame: bytes, frames: int, is_reply, expected: int) -> tuple[int, int | None]:
    """Send `frames` copies of `frame` without reading until everything is stuck, then read: (replies, close code)."""

    async def flood() -> None:
        try:
            for _ in range(frames):
                await ws.stream.send_all(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    replies, closed = 0, None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        with trio.fail_after(10):
            await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        with trio.fail_after(30):
            while replies < expected:
                try:
                    opcode, payload = await ws.recv()
                except EOFError:
                    break
                if opcode == 8:
                    closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    break
                replies += is_reply(payload)
        nursery.cancel_scope.cancel()
    return replies, closed


async def test_sdk_flood_read_late_gets_every_reply_or_a_slow_close(start_hub):
    running = await start_hub("[hub]\nmax_queue_bytes = 65536\n[realtime]\nallow_anonymous = true\ncommand_rate_limit = 0\n")
    ws = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await ws.send_json({"id": 1, "connect": {}})
    await ws.recv()
    await ws.send_json({"id": 2, "subscribe": {"channel": "public:a"}})
    await ws.recv()
    frame = client_frame("\n".join(json.dumps({"id": 3 + i, "presence": {"channel": "public:a"}}) for i in range(20)))
    replies, closed = await flood_then_read(ws, frame, 1500, lambda payload: payload.count(b'"presence":{"presence"'), 1500 * 20)
    assert replies == 1500 * 20 or closed == 3008, (replies, closed)


async def test_jsonrpc_requests_flood_read_late_gets_every_reply_or_a_slow_close(rpc):  # noqa: F811
    from ..protocols.jsonrpc.test_jsonrpc import token_for

    running, _ = rpc
    token = await token_for(running)
    ws = await RawWebSocket.connect(running.url("jsonrpc").replace("http", "ws") + f"/ws/requests?token={token}")
    frame = client_frame(json.dumps({"type": "request", "action": "hub.channels", "args": {}}))
    replies, closed = await flood_then_read(ws, frame, 3000, lambda payload: 1, 3000)
    assert replies == 3000 or closed == 4008, (replies, closed)


async def _failing_ws(request: Request, ws: WebSocket) -> None:
    await ws.receive()
    raise RuntimeError("endpoint bug")


async def test_an_endpoint_that_raises_closes_1011_and_the_server_goes_on(serve):
    _, port = await serve(routes=[WebSocketRoute("/fail", _failing_ws), WebSocketRoute("/ws", echo_ws)])
    ws = await open_ws(port, "/fail")
    await ws.stream.send_all(client_frame("hi"))
    assert await close_code(ws) == (1011, b"internal error")
    ws = await open_ws(port)
    await ws.stream.send_all(client_frame("still here"))
    assert await ws.recv() == (1, b"still here")


async def test_an_open_websocket_keeps_no_bound_methods_but_its_outbox_notify(serve):
    """Issue 20: every collection walks each open connection's objects. A bound method kept per connection (a
    callback, or a `with` block's `__exit__` on a suspended frame) is one more of them: only the outbox's notify is."""
    server, port = await serve()
    clients = []
    for _ in range(10):
        ws = await open_ws(port)
        await ws.stream.send_all(client_frame("hi"))
        assert await ws.recv() == (1, b"hi")  # the endpoint waits in receive() again
        clients.append(ws)
    gc.collect()
    sockets = [o for o in gc.get_objects() if type(o) is WebSocket]
    scopes = {id(w._scope) for w in sockets}
    methods = [o for o in gc.get_objects() if type(o) is types.MethodType]
    assert len(sockets) == 10
    assert Counter(m.__func__.__name__ for m in methods if type(m.__self__) is WebSocket) == {"_on_ready": 10}
    assert not [m for m in methods if id(m.__self__) in scopes]
    assert Counter(m.__func__.__name__ for m in methods if m.__self__ is server)["_spawn"] == 1  # shared
    for ws in clients:
        await ws.aclose()
