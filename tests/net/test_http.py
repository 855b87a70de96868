"""hub.net.http against raw sockets: RFC 9112 behaviour, limits, timeouts, /health and the drain."""

from __future__ import annotations

import json
import logging
import re
from email.utils import parsedate_to_datetime

import trio

from hub.net.http import Limits, Request, Response, Route

from .conftest import parse, read_all, read_response, upgrade_request

FAST = Limits(header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.5, max_header_bytes=4096, max_headers=20)


async def open_conn(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def test_head_answers_the_get_headers_without_a_body_and_keeps_the_connection(serve):
    _, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = await read_response(stream)
    await stream.send_all(b"HEAD /items/a HTTP/1.1\r\nHost: x\r\n\r\n")
    head_status, head_headers, head_body = await read_response(stream, head=True)
    assert (status, head_status) == (200, 200)
    assert head_headers["content-length"] == str(len(body)) and head_body == b""
    await stream.send_all(b"GET /items/b HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection still works
    status, _, body = await read_response(stream)
    assert status == 200 and json.loads(body)["params"] == {"name": "b"}


async def test_expect_100_continue_is_answered_before_the_body(serve):
    _, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
    with trio.fail_after(2):
        interim = await stream.receive_some(65536)
    assert interim.startswith(b"HTTP/1.1 100 ")
    await stream.send_all(b"x" * 2000)
    status, _, body = await read_response(stream)
    assert status == 200 and json.loads(body)["body"] == 2000


async def test_expect_100_with_a_body_over_the_limit_gets_413_without_continue(serve):
    _, port = await serve(max_body_bytes=1000)
    stream = await open_conn(port)
    await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    status, headers, _ = parse(await read_all(stream))
    assert status == 413 and headers["connection"] == "close"


async def test_absurd_content_length_is_refused_at_once(serve):
    _, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\nabc")
    status, headers, body = parse(await read_all(stream, timeout=2))
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body) == {"error": "request body too large"}


async def test_absurd_chunk_size_is_refused_at_once(serve):
    _, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nabc")
    status, _, _ = parse(await read_all(stream, timeout=2))
    assert status == 413


async def test_half_sent_request_head_times_out_with_408(serve):
    _, port = await serve(limits=FAST)
    stream = await open_conn(port)
    await stream.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\n")
    status, headers, _ = parse(await read_all(stream, timeout=2))
    assert status == 408 and headers["connection"] == "close"


async def test_many_half_requests_are_all_closed(serve):
    server, port = await serve(limits=FAST)
    streams = []
    for _ in range(50):
        stream = await open_conn(port)
        await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nContent-")
        streams.append(stream)
    with trio.fail_after(3):
        for stream in streams:
            assert parse(await read_all(stream))[0] == 408
        await server.idle.wait()


async def test_trickling_body_times_out_with_408(serve):
    _, port = await serve(limits=FAST)
    stream = await open_conn(port)
    await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcde")
    assert parse(await read_all(stream, timeout=2))[0] == 408


async def test_silent_and_idle_keepalive_connections_are_closed(serve):
    _, port = await serve(limits=FAST)
    silent = await open_conn(port)
    assert await read_all(silent, timeout=2) == b""  # never sent a byte: closed after header_timeout
    stream = await open_conn(port)
    await stream.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(stream))[0] == 200
    assert await read_all(stream, timeout=2) == b""  # idle after a request: closed after keepalive_timeout


async def test_header_size_and_count_limits_get_431(serve):
    _, port = await serve(limits=FAST)
    stream = await open_conn(port)
    await stream.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
    assert parse(await read_all(stream))[0] == 431
    stream = await open_conn(port)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    await stream.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert parse(await read_all(stream))[0] == 431


async def test_unknown_transfer_coding_gets_501(serve):
    _, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"POST /items/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc")
    status, _, body = parse(await read_all(stream))
    assert status == 501 and json.loads(body) == {"error": "unsupported transfer coding"}


async def test_path_parameters_are_percent_decoded_once(serve):
    _, port = await serve()
    stream = await open_conn(port)
    for raw, name in ((b"a%2525b", "a%25b"), (b"a%2Fb", "a/b"), (b"caf%C3%A9", "caf\u00e9"), (b"plain", "plain")):
        await stream.send_all(b"GET /items/" + raw + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_response(stream)
        assert status == 200 and json.loads(body)["params"] == {"name": name}
    await stream.send_all(b"GET /files/x%2525/y HTTP/1.1\r\nHost: x\r\n\r\n")
    assert json.loads((await read_response(stream))[2])["params"] == {"rest": "x%25/y"}


async def test_responses_carry_a_date_header(serve):
    _, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = await read_response(stream)
    assert status == 404
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", headers["date"])
    parsedate_to_datetime(headers["date"])


async def test_deeply_nested_json_is_a_bad_request_not_a_500(serve):
    async def strict(request: Request) -> Response:
        return Response.json({"n": len(json.loads(request.body))})  # the handler forgot RecursionError

    async def polite(request: Request) -> Response:
        try:
            request.json()
        except ValueError:
            return Response.json({"error": "not json"}, 422)
        return Response.json({})

    _, port = await serve(routes=[Route("/strict", strict), Route("/polite", polite)])
    deep = b"[" * 100000 + b"]" * 100000
    for path, expected in ((b"/strict", 400), (b"/polite", 422)):
        stream = await open_conn(port)
        await stream.send_all(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(deep) + deep)
        assert (await read_response(stream))[0] == expected


async def test_health_while_serving_and_while_draining(serve):
    server, port = await serve()
    stream = await open_conn(port)
    await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = await read_response(stream)
    assert (status, body, headers["content-type"]) == (200, b"{}", "application/json")
    server.drain()
    fresh = await open_conn(port)
    await fresh.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = parse(await read_all(fresh))
    assert (status, body, headers["connection"]) == (503, b"{}", "close")


async def test_drain_closes_idle_keepalive_at_once_and_finishes_the_request_in_progress(serve):
    release = trio.Event()
    entered = trio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response.json({"done": True})

    server, port = await serve(routes=[Route("/slow", slow)])
    idle = await open_conn(port)
    await idle.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(idle))[0] == 200
    busy = await open_conn(port)
    await busy.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await entered.wait()
    server.drain()
    assert await read_all(idle, timeout=0.5) == b""  # idle keep-alive: closed at once
    release.set()
    status, headers, body = parse(await read_all(busy))
    assert status == 200 and headers["connection"] == "close" and json.loads(body) == {"done": True}
    with trio.fail_after(1):
        await server.idle.wait()


async def _ok() -> Response:
    return Response.json({})


async def test_request_that_starts_during_the_drain_is_refused_not_executed(serve):
    calls = []

    async def record(request: Request) -> Response:
        calls.append(request.body)
        return Response.json({})

    server, port = await serve(routes=[Route("/record", record)])
    stream = await open_conn(port)
    await stream.send_all(b"POST /record HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na")
    assert (await read_response(stream))[0] == 200
    await stream.send_all(b"POST /record HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n")  # head half sent
    await trio.testing.wait_all_tasks_blocked()
    server.drain()
    await stream.send_all(b"\r\nb")
    status, headers, _ = parse(await read_all(stream))
    assert status == 503 and headers["connection"] == "close" and calls == [b"a"]


async def test_connection_cap_answers_503_and_closes_websockets_with_a_reason(serve):
    server, port = await serve(limits=Limits(max_connections=2))
    held = [await open_conn(port) for _ in range(2)]
    for stream in held:
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(stream))[0] == 200
    extra = await open_conn(port)
    await extra.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = parse(await read_all(extra))
    assert status == 503 and headers["retry-after"] == "1"
    ws = await open_conn(port)
    await ws.send_all(upgrade_request())
    raw = await read_all(ws)
    head, _, frames = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert frames[0] == 0x88 and frames[2:4] == (1013).to_bytes(2, "big") and frames[4:] == b"too many connections"
    for stream in held:
        await stream.aclose()
    with trio.fail_after(2):
        while server.connections:
            await trio.sleep(0.01)
    again = await open_conn(port)
    await again.send_all(b"GET /items/a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(again))[0] == 200


async def test_access_lines_are_logged_at_debug(serve, caplog):
    _, port = await serve()
    caplog.set_level(logging.DEBUG, logger="hub.access")
    stream = await open_conn(port)
    await stream.send_all(b"GET /items/a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_response(stream)
    lines = [r for r in caplog.records if r.name == "hub.access"]
    assert lines and lines[0].levelno == logging.DEBUG and '"GET /items/a?x=1" 200' in lines[0].getMessage()


def test_json_response_writes_a_lone_surrogate_as_its_escape():
    assert Response.json({"t": "\ud800"}).body == b'{"t":"\\ud800"}'
