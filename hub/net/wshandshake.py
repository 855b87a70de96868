"""The common websocket upgrade, answered without wsproto.

A plain valid upgrade request (what browsers and client libraries send) is checked here and answered
with the very bytes wsproto's handshake would write; anything else (a missing or repeated header, a
non-ASCII value, HTTP/1.0, ...) returns None and goes through wsproto, which stays the judge of every
request this declines and the test oracle of those it takes (tests/net/test_wshandshake.py). Setting up
wsproto's handshake (three h11 connections) was about an eighth of the CPU of a connect.
"""

from __future__ import annotations

import base64
import hashlib

import h11

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ONCE = ("connection", "host", "sec-websocket-key", "sec-websocket-version", "upgrade", "sec-websocket-protocol")


def plain_upgrade(event: h11.Request) -> tuple[bytes, list[str]] | None:
    """(Sec-WebSocket-Key, the offered subprotocols) when wsproto would accept `event` as it is, else None
    (let wsproto decide: it may still accept it, or it refuses it with its own answer)."""
    if event.method != b"GET" or event.http_version != b"1.1" or not event.target.isascii():
        return None
    seen: dict[str, str] = {}
    for name, value in event.headers.raw_items():  # a plain list (iterating Headers goes through Sequence)
        key = name.decode("latin-1").lower()
        if key in _ONCE:
            if key in seen:
                return None
            seen[key] = value.decode("latin-1")
        elif key == "sec-websocket-extensions" and not value.isascii():
            return None
    return _verdict(seen)


def plain_fields(headers: dict[str, str]) -> tuple[bytes, list[str]] | None:
    """`plain_upgrade` for a head `fasthttp.parse_head` took as an upgrade (a GET in HTTP/1.1, target in ASCII,
    none of the handshake's fields repeated), its fields by lower-case name with latin-1 values."""
    extensions = headers.get("sec-websocket-extensions")
    if extensions is not None and not extensions.isascii():
        return None
    return _verdict(headers)


_verdicts: dict[tuple[str | None, ...], list[str] | None] = {}  # by the fields other than the key: see _verdict


def _verdict(seen: dict[str, str]) -> tuple[bytes, list[str]] | None:
    """(key, subprotocols) for a plain upgrade's fields, else None. A client library sends the same fields each
    time but for the key (a nonce, checked here): the rest is judged once per distinct set (up to 256 kept)."""
    key = seen.get("sec-websocket-key")
    if key is None or not key.isascii():
        return None
    fields = (seen.get("host"), seen.get("sec-websocket-version"), seen.get("upgrade"), seen.get("connection"),
              seen.get("sec-websocket-protocol"))
    try:
        offered = _verdicts[fields]
    except KeyError:
        offered = _judge(seen)
        if len(_verdicts) >= 256:
            _verdicts.clear()
        _verdicts[fields] = offered
    return None if offered is None else (key.encode("ascii"), list(offered))


def _judge(seen: dict[str, str]) -> list[str] | None:
    """The subprotocols offered, or None if the fields (but the key, judged by the caller) are not plain."""
    for name in _ONCE:
        value = seen.get(name)
        if value is not None and not value.isascii():
            return None
    host = seen.get("host")
    if (host is None or seen.get("sec-websocket-version") != "13"
            or seen.get("upgrade", "").lower() != "websocket"
            or not any(token.strip().lower() == "upgrade" for token in seen.get("connection", "").split(","))):
        return None
    if len(host) > 1000 or "xn--" in host.lower():  # what wsproto's IDNA decoding of the host could refuse
        return None
    offered = seen.get("sec-websocket-protocol")
    return [p.strip() for p in offered.split(",")] if offered is not None else []


def accept_bytes(key: bytes, subprotocol: str | None, extra_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The 101 response, byte for byte as wsproto's H11Handshake writes it for AcceptConnection(subprotocol,
    extra_headers=extra_headers) and no extensions."""
    token = base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())
    head = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
            token, b"\r\n"]
    if subprotocol is not None:
        head += [b"Sec-WebSocket-Protocol: ", subprotocol.encode("ascii"), b"\r\n"]
    for name, value in extra_headers:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"\r\n")
    return b"".join(head)
