"""The handshake fast path (hub.net.wshandshake) against wsproto, its oracle: it takes only requests wsproto
accepts as they are, answers them with wsproto's exact bytes, and leaves every other request to wsproto."""

from __future__ import annotations

import base64
import hashlib
import itertools
import random
import re

import h11
import pytest
import trio
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection
from wsproto.events import Request as WsRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from hub.net import fasthttp
from hub.net import http as hub_http
from hub.net.http import Limits, WebSocketRoute
from hub.net.wshandshake import accept_bytes, plain_fields, plain_upgrade

from .conftest import echo_ws, read_all, read_response

EXTRA = [(b"server", b"hub"), (b"date", b"Sun, 06 Dec 2026 16:00:00 GMT")]
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
BASE = [(b"Host", b"127.0.0.1:8000"), (b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", KEY), (b"Sec-WebSocket-Version", b"13")]


def parsed(headers: list[tuple[bytes, bytes]], method: bytes = b"GET", target: bytes = b"/connection/websocket",
           version: bytes = b"1.1") -> h11.Request:
    """The request as the server's h11 connection hands it over."""
    raw = b"%s %s HTTP/%s\r\n" % (method, target, version) + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n"
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    return event


def oracle(event: h11.Request) -> tuple[H11Handshake, WsRequest] | None:
    """wsproto's verdict the way hub.net.http asks it: the handshake and its offer, or None if it refuses."""
    shake = H11Handshake(ConnectionType.SERVER)
    try:
        shake.receive_data(h11.Connection(h11.CLIENT).send(event))
    except RemoteProtocolError:
        return None
    offer = next((e for e in shake.events() if isinstance(e, WsRequest)), None)
    return None if offer is None else (shake, offer)


def assert_same_as_wsproto(event: h11.Request) -> None:
    plain = plain_upgrade(event)
    if plain is None:
        return  # wsproto decides: nothing to compare
    key, offered = plain
    choices = [None, *offered]
    for subprotocol in choices:
        verdict = oracle(event)
        assert verdict is not None, "the fast path took a request wsproto refuses"
        shake, offer = verdict
        assert offered == list(offer.subprotocols)
        expected = shake.send(AcceptConnection(subprotocol=subprotocol, extra_headers=EXTRA))
        assert accept_bytes(key, subprotocol, EXTRA) == expected


VALID = [
    BASE,
    BASE + [(b"Sec-WebSocket-Protocol", b"centrifuge-json")],
    BASE + [(b"Sec-WebSocket-Protocol", b"centrifuge-protobuf, centrifuge-json ,mqtt")],
    BASE + [(b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits")],
    BASE + [(b"Origin", b"http://example.com"), (b"User-Agent", b"Mozilla/5.0"), (b"Cookie", b"a=b")],
    [(b"host", b"example.com"), (b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, Upgrade"),
     (b"sec-websocket-key", b"x3JJHMbDL1EzLkh9GBhXDw=="), (b"sec-websocket-version", b"13")],
    [(b"HOST", b"h"), (b"UPGRADE", b"WEBSOCKET"), (b"CONNECTION", b"upgrade"), (b"SEC-WEBSOCKET-KEY", b"not-base64-at-all"),
     (b"SEC-WEBSOCKET-VERSION", b"13")],
]


@pytest.mark.parametrize("headers", VALID)
def test_valid_upgrades_are_taken_and_answered_with_wsprotos_bytes(headers):
    event = parsed(headers)
    assert plain_upgrade(event) is not None
    assert_same_as_wsproto(event)


def without(name: bytes) -> list[tuple[bytes, bytes]]:
    return [h for h in BASE if h[0] != name]


def replaced(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [(n, value if n == name else v) for n, v in BASE]


@pytest.mark.parametrize("event", [
    parsed(without(b"Sec-WebSocket-Key")),
    parsed(without(b"Sec-WebSocket-Version")),
    parsed(replaced(b"Sec-WebSocket-Version", b"8")),
    parsed(without(b"Upgrade")),
    parsed(replaced(b"Upgrade", b"h2c")),
    parsed(without(b"Connection")),
    parsed(replaced(b"Connection", b"keep-alive")),
    parsed(BASE, method=b"POST"),
    parsed(BASE, method=b"get"),
    parsed(BASE + [(b"Sec-WebSocket-Key", b"AAAAAAAAAAAAAAAAAAAAAA==")]),  # repeated: wsproto joins them
    parsed(BASE + [(b"Sec-WebSocket-Protocol", b"a"), (b"Sec-WebSocket-Protocol", b"b")]),
    parsed(BASE + [(b"Sec-WebSocket-Protocol", "caf\u00e9".encode("latin-1"))]),
    parsed(BASE + [(b"Sec-WebSocket-Extensions", "\u00e9".encode("latin-1"))]),
    parsed(replaced(b"Host", b"xn--caf-dma.example")),
    parsed(replaced(b"Host", "caf\u00e9".encode("latin-1"))),
    parsed([h for h in BASE if h[0] != b"Host"], version=b"1.0"),
    parsed(BASE, version=b"1.0"),
])
def test_anything_else_is_left_to_wsproto(event):
    assert plain_upgrade(event) is None


def random_headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    """Header combinations from a pool of right, wrong, repeated and odd values."""
    headers = []
    for name, values in POOL.items():  # mostly the first (right) value, once in a while none or two
        for _ in range(rng.choice([1] * 12 + [0, 2] if name != b"Host" else [1] * 12 + [2])):
            value = values[0] if rng.random() < 0.8 else rng.choice(values)
            headers.append((rng.choice([name, name.lower(), name.upper()]), value))
    rng.shuffle(headers)
    return headers


POOL = {
        b"Host": [b"a", b"127.0.0.1:1", b"", b"xn--x"],
        b"Upgrade": [b"websocket", b"WebSocket", b"websocket2", b""],
        b"Connection": [b"Upgrade", b"keep-alive, upgrade", b"close", b"upgrade,", b""],
        b"Sec-WebSocket-Key": [KEY, b"", b"k"],
        b"Sec-WebSocket-Version": [b"13", b"8", b"13, 8", b""],
        b"Sec-WebSocket-Protocol": [b"a", b"a, b", b" , ", b"x,,y"],
        b"Sec-WebSocket-Extensions": [b"permessage-deflate", b"x; y=1", "\u00e9".encode("latin-1")],
}


def test_random_requests_taken_by_the_fast_path_are_ones_wsproto_accepts_the_same_way():
    """Whenever the fast path takes one of the random requests, wsproto accepts it too, with the same subprotocols
    and the same response bytes."""
    rng = random.Random(20)
    taken = 0
    for _ in range(2000):
        headers = random_headers(rng)
        try:
            event = parsed(headers)
        except h11.RemoteProtocolError:
            continue  # h11 refuses it before any handshake code sees it
        taken += plain_upgrade(event) is not None
        assert_same_as_wsproto(event)
    assert taken > 100  # the pool does produce valid upgrades


def test_upgrade_heads_the_fast_parser_takes_are_judged_as_from_h11s_request():
    """An upgrade head that `fasthttp` parses (no h11 at all on the server) gets `plain_upgrade`'s verdict on the
    h11 request of the same bytes whenever it is taken, so wsproto stays the oracle of that path too."""
    rng = random.Random(21)
    taken = 0
    for _ in range(3000):
        headers = random_headers(rng)
        if rng.random() < 0.05:
            headers.append((b"Sec-WebSocket-Protocol", "caf\u00e9".encode("latin-1")))
        raw = b"GET /connection/websocket HTTP/1.1\r\n" + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n"
        head = fasthttp.parse_head(raw, 32768, 100)
        try:
            event = parsed(headers)
        except h11.RemoteProtocolError:
            assert head is None
            continue
        if head is None:
            continue
        assert head.upgrade == any(name.lower() == b"upgrade" for name, _ in headers)
        fast = plain_fields(head.headers) if head.upgrade else None
        if fast is not None:
            taken += 1
            assert fast == plain_upgrade(event)
    assert taken > 100


def test_accept_token_is_rfc_6455s():
    # RFC 6455 section 1.3's example key and answer
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in accept_bytes(KEY, None, [])
    assert base64.b64encode(hashlib.sha1(KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()) == \
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


async def raw_upgrade(port: int, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str], trio.SocketStream]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET /ws HTTP/1.1\r\n" + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n")
    status, head, _ = await read_response(stream, head=True)
    return status, head, stream


@pytest.mark.parametrize("path", ["plain", "wsproto"])
async def test_server_answers_both_paths_alike_and_the_socket_works_after(serve, path):
    """Through the real server: a plain request (fast path) and one only wsproto takes (a repeated
    Sec-WebSocket-Protocol) both get 101 with the chosen subprotocol, and then echo a frame."""
    _, port = await serve(routes=[WebSocketRoute("/ws", echo_ws, select=lambda offered: "b" if "b" in offered else None)])
    protocols = [(b"Sec-WebSocket-Protocol", b"a, b")] if path == "plain" else \
        [(b"Sec-WebSocket-Protocol", b"a"), (b"Sec-WebSocket-Protocol", b"b")]
    headers = BASE + protocols
    assert (plain_upgrade(parsed(headers)) is not None) == (path == "plain")
    status, head, stream = await raw_upgrade(port, headers)
    assert status == 101
    assert head["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" and head["sec-websocket-protocol"] == "b"
    assert head["server"] == "hub" and "date" in head
    mask = b"\x01\x02\x03\x04"
    await stream.send_all(b"\x81\x82" + mask + bytes(c ^ m for c, m in zip(b"hi", itertools.cycle(mask))))
    with trio.fail_after(5):
        assert await stream.receive_some(100) == b"\x81\x02hi"
    await stream.aclose()


async def test_server_leaves_a_wrong_version_to_wsproto(serve):
    _, port = await serve()
    status, head, stream = await raw_upgrade(port, replaced(b"Sec-WebSocket-Version", b"8"))
    assert status == 426 and head["sec-websocket-version"] == "13"
    await stream.aclose()


MASK = b"\x01\x02\x03\x04"
HI = b"\x81\x82" + MASK + bytes(c ^ m for c, m in zip(b"hi", itertools.cycle(MASK)))
CLOSE = b"\x88\x82" + MASK + bytes(c ^ m for c, m in zip(b"\x03\xe8", itertools.cycle(MASK)))


async def upgrade_exchange(port: int, data: bytes) -> bytes:
    """Send `data` and end our side; everything the server sends until it closes, dates blanked."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        await stream.send_all(data)
        await stream.send_eof()
        out = await read_all(stream)
    finally:
        await stream.aclose()
    return re.sub(rb"(?i)(date: )[^\r]*", rb"\1-", out)


def request_bytes(headers: list[tuple[bytes, bytes]], target: bytes = b"/ws", version: bytes = b"1.1") -> bytes:
    return b"GET %s HTTP/%s\r\n" % (target, version) + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n"


UPGRADES = [request_bytes(h) for h in VALID] + [
    request_bytes(BASE, b"/ws?a=1&b=%20"),
    request_bytes(BASE + [(b"Origin", b"http://evil.example")]),  # the route refuses it: 403
    request_bytes(BASE + [(b"Sec-WebSocket-Protocol", b"a"), (b"Sec-WebSocket-Protocol", b"b")]),  # wsproto's
    request_bytes(replaced(b"Sec-WebSocket-Version", b"8")),  # 426
    request_bytes(without(b"Sec-WebSocket-Key")),  # 400
    request_bytes(BASE, version=b"1.0"),
    request_bytes(BASE, b"/elsewhere"),  # no websocket route: the HTTP answer (404), the connection stays
    request_bytes(replaced(b"Connection", b"Upgrade, close")),
    request_bytes(BASE + [(b"Sec-WebSocket-Extensions", "\u00e9".encode("latin-1"))]),
    request_bytes(replaced(b"Host", b"xn--caf-dma.example")),
    request_bytes(BASE + [(b"Content-Length", b"0")]),
    b"POST /ws HTTP/1.1\r\n" + b"".join(b"%s: %s\r\n" % h for h in BASE) + b"\r\n",
]


@pytest.fixture
def fast_upgrades(monkeypatch):
    """How many upgrades the server's fast path (fasthttp's head, no h11) accepted."""
    count = [0]

    def counting(headers):
        verdict = plain_fields(headers)
        count[0] += verdict is not None
        return verdict

    monkeypatch.setattr(hub_http, "plain_fields", counting)
    return count


async def test_upgrades_without_h11_are_answered_as_through_h11(serve, fast_upgrades):
    """The same upgrade requests (followed by a frame and a close) to a server with the fast path and to one that
    sends everything through h11: the same bytes back, refusals and wsproto's cases included."""
    routes = [WebSocketRoute("/ws", echo_ws, select=lambda offered: "b" if "b" in offered else None,
                             accept=lambda request: request.header("origin") != "http://evil.example")]
    _, fast = await serve(routes=routes)
    _, slow = await serve(routes=routes, fast_path=False)
    for data in UPGRADES:
        expected = await upgrade_exchange(slow, data + HI + CLOSE)
        assert await upgrade_exchange(fast, data + HI + CLOSE) == expected, data
    assert fast_upgrades[0] >= len(VALID) + 1


async def test_the_rate_limit_refuses_fast_upgrades_as_it_refuses_h11s(serve, fast_upgrades):
    """Each request counted once on either path: an origin refusal (403, through h11) takes one of the three
    requests the burst allows, two upgrades the others, and the fourth request is refused 429."""
    limits = Limits(rate_limit=0.001, rate_limit_burst=3)
    routes = [WebSocketRoute("/ws", echo_ws, accept=lambda request: request.header("origin") != "http://evil.example")]
    _, fast = await serve(routes=routes, limits=limits)
    _, slow = await serve(routes=routes, limits=limits, fast_path=False)
    requests = [request_bytes(BASE + [(b"Origin", b"http://evil.example")])] + [request_bytes(BASE) + CLOSE] * 3
    answers = []
    for port in (fast, slow):
        answers.append([await upgrade_exchange(port, data) for data in requests])
    assert answers[0] == answers[1]
    assert [a.split(b"\r\n", 1)[0] for a in answers[0]] == [b"HTTP/1.1 403 Forbidden"] + \
        [b"HTTP/1.1 101 Switching Protocols"] * 2 + [b"HTTP/1.1 429 Too Many Requests"]
    assert fast_upgrades[0] == 4  # every one was taken, the refused ones then answered through h11
