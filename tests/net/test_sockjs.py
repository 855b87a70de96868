"""The SockJS transports over real sockets, with an echo application (no protocol of their own)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import httpx
import pytest
import trio

from hub.metrics import RequestMetrics
from hub.net.http import HTTPServer, Request
from hub.net.sockjs import SockJSServer, decode_messages
from tests.rawws import RawWebSocket, client_frame


async def echo(request: Request, conn: Any) -> None:
    """Echo every message; "close" closes with 3001, "many" answers three messages at once."""
    while (message := await conn.receive()) is not None:
        if message == "close":
            conn.close(3001, "bye")
            return
        for part in ([message] * 3 if message == "many" else [message]):
            conn.send_frame(conn.framing.frame(json.dumps(part).encode()))


async def _serve(nursery: trio.Nursery, server: SockJSServer) -> str:
    """Serve `server`'s routes on a free loopback port; its base URL."""
    server.nursery = nursery
    http = HTTPServer(server.routes())
    http.tasks = nursery
    nursery.start_soon(http.flusher.run)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, http.handle, listeners)
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


@pytest.fixture
async def sockjs(nursery: trio.Nursery):
    """(base URL, SockJSServer) on a free port, with short heartbeat and disconnect delays."""
    server = SockJSServer("/echo", echo, heartbeat=0.5, disconnect_delay=0.6, response_limit=4096)
    return await _serve(nursery, server), server


async def test_info_greeting_iframe(sockjs):
    base, _ = sockjs
    async with httpx.AsyncClient(base_url=base) as http:
        info = await http.get("/echo/info", headers={"Origin": "http://a.example"})
        assert info.headers["content-type"] == "application/json; charset=UTF-8"
        body = info.json()
        assert {k: body[k] for k in ("websocket", "cookie_needed", "origins")} == {
            "websocket": True, "cookie_needed": True, "origins": ["*:*"]}
        assert isinstance(body["entropy"], int)
        assert info.headers["access-control-allow-origin"] == "http://a.example"
        assert info.headers["access-control-allow-credentials"] == "true"
        options = await http.options("/echo/info")
        assert options.status_code == 204 and options.headers["access-control-allow-methods"] == "OPTIONS, GET"
        assert "content-type" not in options.headers
        for path in ("/echo", "/echo/"):
            greeting = await http.get(path)
            assert greeting.text == "Welcome to SockJS!\n" and greeting.headers["content-type"] == "text/plain; charset=UTF-8"
        iframe = await http.get("/echo/iframe.html")
        assert "SockJS.bootstrap_iframe()" in iframe.text
        assert (await http.get("/echo/iframe-1.0.html")).status_code == 200


async def test_xhr_polling_session(sockjs):
    base, server = sockjs
    async with httpx.AsyncClient(base_url=base + "/echo/000/abc") as http:
        opened = await http.post("/xhr", headers={"Cookie": "JSESSIONID=xyz"})
        assert (opened.status_code, opened.text) == (200, "o\n")
        assert opened.headers["content-type"] == "application/javascript; charset=UTF-8"
        assert opened.headers["set-cookie"] == "JSESSIONID=xyz; Path=/"
        assert opened.headers["cache-control"] == "no-store, no-cache, must-revalidate, max-age=0"
        sent = await http.post("/xhr_send", content=json.dumps(["hi", "th\u00e9re"]))
        assert (sent.status_code, sent.headers["content-type"]) == (204, "text/plain; charset=UTF-8")
        polled = await http.post("/xhr")
        assert polled.text == 'a["\\"hi\\"","\\"th\\\\u00e9re\\""]\n'  # everything queued between polls, in one packet
        heartbeat = await http.post("/xhr")
        assert heartbeat.text == "h\n"

        async with trio.open_nursery() as nursery:  # a second poll while one waits
            first: list[str] = []

            async def poll() -> None:
                first.append((await http.post("/xhr")).text)

            nursery.start_soon(poll)
            await trio.sleep(0.1)
            second = await http.post("/xhr")
            assert second.text == 'c[2010,"Another connection still open"]\n'
            await http.post("/xhr_send", content='["x"]')
        assert first == ['a["\\"x\\""]\n']

        await http.post("/xhr_send", content='["close"]')
        assert (await http.post("/xhr")).text == 'c[3001,"bye"]\n'
        assert (await http.post("/xhr")).text == 'c[3001,"bye"]\n'  # until it is forgotten
        assert (await http.post("/xhr_send", content='["x"]')).status_code == 404
    with trio.fail_after(3):
        while "abc" in server.sessions:
            await trio.sleep(0.05)


async def test_xhr_send_errors_and_preflight(sockjs):
    base, _ = sockjs
    async with httpx.AsyncClient(base_url=base + "/echo/000/err") as http:
        unknown = await http.post("/xhr_send", content='["x"]')
        assert (unknown.status_code, unknown.text, unknown.headers["content-type"]) == (404, "", "text/html; charset=UTF-8")
        await http.post("/xhr")
        assert ((await http.post("/xhr_send")).status_code, (await http.post("/xhr_send")).text) == (500, "Payload expected.")
        broken = await http.post("/xhr_send", content="[broken")
        assert (broken.status_code, broken.text) == (500, "Broken JSON encoding.")
        preflight = await http.options("/xhr", headers={"Origin": "null", "Access-Control-Request-Headers": "x-a"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert preflight.headers["access-control-allow-headers"] == "x-a"
        assert preflight.headers["access-control-allow-methods"] == "OPTIONS, POST"
        assert preflight.headers["access-control-max-age"] == "31536000"


async def test_a_client_that_stops_polling_ends_the_session(sockjs):
    base, server = sockjs
    async with httpx.AsyncClient(base_url=base + "/echo/000/gone") as http:
        await http.post("/xhr")
        with trio.fail_after(3):
            while "gone" in server.sessions:
                await trio.sleep(0.05)
        assert (await http.post("/xhr")).text == "o\n"  # the same id opens a new session


async def test_xhr_streaming(sockjs):
    base, _ = sockjs
    async with httpx.AsyncClient(base_url=base + "/echo/000/str", timeout=5) as http:
        async with http.stream("POST", "/xhr_streaming") as response:
            assert response.headers["content-type"] == "application/javascript; charset=UTF-8"
            assert response.headers.get("transfer-encoding") == "chunked"
            chunks = response.aiter_raw()
            data = b""
            while len(data) < 2049 + 2:
                data += await chunks.__anext__()
            assert data == b"h" * 2048 + b"\no\n"
            await http.post("/xhr_send", content='["many"]')
            while data.count(b"\n") < 3:
                data += await chunks.__anext__()
            assert data.split(b"\n")[2] == b'a["\\"many\\"","\\"many\\"","\\"many\\""]'
            while not data.endswith(b"h\n"):
                data += await chunks.__anext__()  # heartbeat after 0.5 s idle
            await http.post("/xhr_send", content=json.dumps(["x" * 5000]))
            async for chunk in chunks:  # past the response limit the response ends; the session goes on
                data += chunk
        assert data.endswith(b"]\n")
        async with http.stream("POST", "/xhr_streaming") as again:
            chunks = again.aiter_raw()
            first = b""
            while len(first) < 2049:
                first += await chunks.__anext__()
            await http.post("/xhr_send", content='["close"]')
            async for chunk in chunks:
                first += chunk
        assert first == b"h" * 2048 + b'\nc[3001,"bye"]\n'


async def test_websocket_transport(sockjs):
    base, _ = sockjs
    url = base.replace("http", "ws") + "/echo/000/ws1/websocket"
    ws = await RawWebSocket.connect(url)
    assert await ws.recv() == (1, b"o")
    await ws.stream.send_all(client_frame(json.dumps(["one", "many"])))
    frames = [await ws.recv() for _ in range(4)]
    assert frames == [(1, b'a["\\"one\\""]')] + [(1, b'a["\\"many\\""]')] * 3  # one frame per message, as sockjs-tornado
    await ws.stream.send_all(client_frame(json.dumps("close")))  # a single string is one message
    assert await ws.recv() == (1, b'c[3001,"bye"]')
    assert await ws.recv() == (8, b"")  # then a close frame with no status code
    await ws.aclose()

    ws = await RawWebSocket.connect(url.replace("ws1", "ws2"))
    await ws.recv()
    await ws.stream.send_all(client_frame("[broken"))
    with trio.fail_after(3), pytest.raises(EOFError):
        await ws.recv()  # dropped without a close frame
    await ws.aclose()

    ws = await RawWebSocket.connect(url.replace("ws1", "ws3"))
    await ws.recv()
    with trio.fail_after(3):
        assert await ws.recv() == (1, b"h")
    await ws.aclose()
    async with httpx.AsyncClient() as http:
        plain = await http.get(url.replace("ws://", "http://"))
        assert (plain.status_code, plain.text) == (400, 'Can "Upgrade" only to "WebSocket".')


async def test_eventsource_htmlfile_jsonp(sockjs):
    base, _ = sockjs
    async with httpx.AsyncClient(base_url=base + "/echo/000", timeout=5) as http:
        async with http.stream("GET", "/es/eventsource") as response:
            assert response.headers["content-type"] == "text/event-stream; charset=UTF-8"
            chunks = response.aiter_raw()
            data = b""
            while data.count(b"\r\n\r\n") < 1:
                data += await chunks.__anext__()
            assert data == b"\r\ndata: o\r\n\r\n"
            await http.post("/es/xhr_send", content='["a", "close"]')
            async for chunk in chunks:
                data += chunk
        assert data.endswith(b'data: a["\\"a\\""]\r\n\r\ndata: c[3001,"bye"]\r\n\r\n')

        async with http.stream("GET", "/hf/htmlfile", params={"c": "cb.x_1"}) as response:
            chunks = response.aiter_raw()
            data = b""
            while b"<script>\np(" not in data[1000:]:
                data += await chunks.__anext__()
            assert b"var c = parent.cb.x_1;" in data and data.endswith(b'<script>\np("o");\n</script>\r\n')
            assert len(data.split(b"\r\n\r\n", 1)[0]) == 1024 + 14 - len("%s") + len("cb.x_1")  # padded as sockjs-tornado pads it
        assert (await http.get("/hf2/htmlfile", params={"c": "alert(1)//"})).status_code == 500  # no script injection

        opened = await http.get("/jp/jsonp", params={"c": "cb"})
        assert (opened.text, opened.headers["etag"]) == ('cb("o");\r\n', "dummy")
        assert "access-control-allow-origin" not in opened.headers
        sent = await http.post("/jp/jsonp_send", content="d=" + urllib.parse.quote_plus('["hi"]'),
                               headers={"content-type": "application/x-www-form-urlencoded"})
        assert (sent.status_code, sent.text) == (200, "ok")
        assert (await http.post("/jp/jsonp_send", content='["raw"]')).text == "ok"
        assert (await http.get("/jp/jsonp", params={"c": "cb"})).text == 'cb("a[\\"\\\\\\"hi\\\\\\"\\",\\"\\\\\\"raw\\\\\\"\\"]");\r\n'
        assert (await http.get("/jp/jsonp")).text == '"callback" parameter required'


async def test_a_dropped_request_closes_the_session(sockjs):
    """As sockjs-tornado: a client that drops the request it waits on ends the session (1002)."""
    base, server = sockjs
    async with httpx.AsyncClient(base_url=base + "/echo/000/drop") as http:
        await http.post("/xhr")
        with trio.move_on_after(0.2):
            await http.post("/xhr")  # dropped while it waits
        with trio.fail_after(2):
            while not server.sessions["drop"].closing:
                await trio.sleep(0.02)
        assert (await http.post("/xhr")).text == 'c[1002,"Connection interrupted"]\n'


def test_client_packets():
    assert decode_messages('["a", "b"]') == ["a", "b"]
    assert decode_messages('"one"') == ["one"]
    assert decode_messages('["a", null, 5, {"x": 1}]') == ["a"]  # SockJS messages are strings
    with pytest.raises(ValueError):
        decode_messages("[broken")


MESSAGE = json.dumps(["m" * 1000])  # 1,064 bytes queued with the per-message overhead


async def test_xhr_send_into_a_session_that_never_reads_is_bounded_then_closed_as_slow(nursery):
    """Issue 27: a client posting in a loop to a session whose application never takes its messages: the
    queue stays under its bound (a send waits for room, as an unread websocket stops the sender), then
    the session is closed as slow and counted; the poll gets the close packet, further sends 404."""
    metrics = RequestMetrics()
    server = SockJSServer("/echo", lambda request, conn: trio.sleep_forever(), inbox_bytes=4096, write_timeout=0.5,
                          disconnect_delay=30, metrics=metrics, adapter="echo")
    base = await _serve(nursery, server)
    async with httpx.AsyncClient(base_url=base + "/echo/000/flood", timeout=10) as http:
        assert (await http.post("/xhr")).text == "o\n"
        session = server.sessions["flood"]
        statuses = []
        for _ in range(1000):
            statuses.append((await http.post("/xhr_send", content=MESSAGE)).status_code)
            assert session.inbox_bytes <= 4096
            if statuses[-1] != 204:
                break
        assert statuses == [204] * 3 + [404], statuses  # the fourth waited 0.5 s for room that never came
        assert session.closing and metrics.disconnects == {("echo", "slow"): 1}
        assert (await http.post("/xhr")).text == 'c[3000,"Go away!"]\n'
        assert (await http.post("/xhr_send", content=MESSAGE)).status_code == 404
    assert metrics.disconnects == {("echo", "slow"): 1}


async def test_xhr_send_faster_than_the_application_reads_waits_for_room(nursery):
    """Backpressure without a disconnect: a send that does not fit is answered once the application has
    taken enough; a second send while one waits is a client that ignores it (closed as slow)."""
    permits_in, permits = trio.open_memory_channel[None](100)
    got: list[str] = []

    async def slow_reader(request: Request, conn: Any) -> None:
        async for _ in permits:
            message = await conn.receive()
            if message is None:
                return
            got.append(message)

    metrics = RequestMetrics()
    server = SockJSServer("/echo", slow_reader, inbox_bytes=4096, write_timeout=30, disconnect_delay=30,
                          metrics=metrics, adapter="echo")
    base = await _serve(nursery, server)
    async with httpx.AsyncClient(base_url=base + "/echo/000/slow", timeout=40) as http:
        await http.post("/xhr")
        for _ in range(3):
            assert (await http.post("/xhr_send", content=MESSAGE)).status_code == 204
        session = server.sessions["slow"]
        answered = trio.Event()

        async def fourth() -> None:
            assert (await http.post("/xhr_send", content=MESSAGE)).status_code == 204
            answered.set()

        async with trio.open_nursery() as inner:
            inner.start_soon(fourth)
            with trio.fail_after(10):
                while not session.send_waiting:  # the fourth send is waiting for room
                    await trio.sleep(0.01)
            assert not answered.is_set() and len(got) == 0
            permits_in.send_nowait(None)  # the application takes one message: room for the waiting send
            with trio.fail_after(10):
                await answered.wait()
        assert len(got) == 1 and session.inbox_bytes == 3 * 1064 and not metrics.disconnects
        waiting: list[int] = []

        async def fifth() -> None:
            waiting.append((await http.post("/xhr_send", content=MESSAGE)).status_code)

        async with trio.open_nursery() as inner:  # two sends at once while the queue is full
            inner.start_soon(fifth)
            with trio.fail_after(10):
                while not session.send_waiting:
                    await trio.sleep(0.01)
            assert (await http.post("/xhr_send", content=MESSAGE)).status_code == 404
        assert waiting == [404] and session.closing and metrics.disconnects == {("echo", "slow"): 1}
        assert (await http.post("/xhr")).text == 'c[3000,"Go away!"]\n'
