"""The common small HTTP/1.1 request, parsed and answered without h11 (no I/O here).

`parse_head` takes a request head that is whole in the buffer and plain: request line and header fields
by h11's own grammar (RFC 9112), `Content-Length` at most once, no `Transfer-Encoding`, `Expect` or
`Upgrade`, exactly one `Host` in HTTP/1.1, within the listener's limits; or a websocket upgrade's head: a GET
in HTTP/1.1 with an `Upgrade` field, no body fields and none of the handshake's fields repeated (`upgrade` set:
`wshandshake.plain_fields` judges the rest). Anything else gives None and the request goes to h11 as it arrives,
so h11 keeps deciding every unusual case and every error reply.
`render_head` writes a response head byte for byte as h11 would for such a request, or None where h11
would do something of its own (then h11 writes it).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import NamedTuple

# h11's ABNF (h11/_abnf.py), so that what is accepted here is exactly what h11 accepts.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/(1\.[01])")
# `name: value` lines: OWS, field-value, OWS is any run of bytes but NUL and the blanks other than SP and HTAB.
_HEADER_FIELDS = re.compile(rb"(?:" + _TOKEN + rb":[^\x00\r\n\x0b\x0c]*\r\n)*")
_NAME = re.compile(_TOKEN)
_VALUE = re.compile(_FIELD_VALUE)
_CONTENT_LENGTH_MAX_DIGITS = 20  # h11's bound
_UNUSUAL = frozenset({"transfer-encoding", "expect"})  # left to h11
# The fields a websocket handshake reads once (wshandshake._ONCE): repeated in an upgrade, the request is h11's.
_UPGRADE_ONCE = frozenset({"connection", "host", "sec-websocket-key", "sec-websocket-version", "upgrade",
                           "sec-websocket-protocol"})
_OWN_RESPONSE_HEADERS = frozenset({"connection", "content-length", "transfer-encoding", "host"})  # h11 rewrites these


class Head(NamedTuple):
    """A plain request head: `end` is where the body starts in the buffer; `close`: the client ends the
    connection after this request (HTTP/1.0 or `Connection: close`); `upgrade`: a GET asking for an upgrade."""

    method: str
    target: str
    headers: dict[str, str]
    length: int
    close: bool
    end: int
    upgrade: bool = False


# Websocket upgrades are remembered by their head with the Sec-WebSocket-Key value blanked: a client library's
# upgrades differ only in that nonce (22 base64 characters and "=="), which no check below looks into, so the
# parse of one stands for all of them. Bounded: up to 256 heads of up to 2 KiB (cleared when full).
_KEY_FIELD = b"\r\nSec-WebSocket-Key: "
_NONCE = re.compile(rb"[A-Za-z0-9+/]{22}==\r\n")
_BLANK_NONCE = b"A" * 22 + b"=="
_upgrades: dict[tuple[bytes, int, int], Head] = {}


def parse_head(buf: bytes, max_header_bytes: int, max_headers: int) -> Head | None:
    """The request head at the start of `buf` if it is whole and plain, else None (h11's case)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0 or end > max_header_bytes:
        return None
    at = buf.find(_KEY_FIELD, 0, end)
    if at < 0 or end > 2048:
        return _parse_head(buf, end, max_header_bytes, max_headers)
    at += len(_KEY_FIELD)
    if _NONCE.match(buf, at, at + 26) is None:
        return _parse_head(buf, end, max_header_bytes, max_headers)
    template = (buf[:at] + _BLANK_NONCE + buf[at + 24:end], max_header_bytes, max_headers)
    head = _upgrades.get(template)
    if head is None:
        head = _parse_head(template[0] + b"\r\n\r\n", end, max_header_bytes, max_headers)
        if head is None or not head.upgrade:
            return _parse_head(buf, end, max_header_bytes, max_headers)
        if len(_upgrades) >= 256:
            _upgrades.clear()
        _upgrades[template] = head
    headers = head.headers.copy()
    headers["sec-websocket-key"] = buf[at:at + 24].decode("ascii")
    return head._replace(headers=headers)


def _parse_head(buf: bytes, end: int, max_header_bytes: int, max_headers: int) -> Head | None:
    """`parse_head` of a head that ends at `end` (its blank line), parsed afresh."""
    line_end = buf.find(b"\r\n")
    m = _REQUEST_LINE.fullmatch(buf, 0, line_end)
    if m is None:
        return None
    method, target, version = m.groups()
    close = version == b"1.0"
    hosts = 0
    length = -1
    upgrade = repeated = False
    headers: dict[str, str] = {}
    if line_end < end:
        # One pass of h11's grammar over all the fields (obs-fold, bare LF, control characters: no match, h11's
        # case); then each line is `name:value` with the value's surrounding blanks stripped.
        if _HEADER_FIELDS.fullmatch(buf, line_end + 2, end + 2) is None:
            return None
        lines = buf[line_end + 2:end].decode("latin-1").split("\r\n")
        if len(lines) > max_headers:
            return None
        size = len(target)  # the server's measure of a head that arrived whole
        for line in lines:
            name, _, value = line.partition(":")
            value = value.strip(" \t")
            size += len(name) + len(value) + 4
            key = name.lower()
            if key == "content-length":
                if length >= 0 or not value.isdigit() or not value.isascii() or len(value) > _CONTENT_LENGTH_MAX_DIGITS:
                    return None
                length = int(value)
            elif key == "host":
                hosts += 1
            elif key == "connection":
                if "close" in [token.strip() for token in value.lower().split(",")]:
                    close = True
            elif key == "upgrade":
                upgrade = True
            elif key in _UNUSUAL:
                return None
            if key in headers:
                repeated = repeated or key in _UPGRADE_ONCE
                headers[key] = f"{headers[key]}, {value}"
            else:
                headers[key] = value
        if size > max_header_bytes:
            return None
    if hosts > 1 or (hosts == 0 and version == b"1.1"):
        return None
    if upgrade and (repeated or length >= 0 or method != b"GET" or version != b"1.1"):
        return None
    return Head(method.decode("ascii"), target.decode("latin-1"), headers, max(length, 0), close, end + 4, upgrade)


_status_lines: dict[int, bytes] = {}
_content_types: dict[str, bytes | None] = {}


def _status_line(status: int) -> bytes | None:
    line = _status_lines.get(status)
    if line is None:
        if not 200 <= status < 1000 or status in (204, 304):  # informational or bodiless: h11's rules
            return None
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        line = _status_lines[status] = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    return line


def _content_type(value: str) -> bytes | None:
    line = _content_types.get(value, b"")
    if line == b"":
        try:
            raw = value.encode("ascii")
        except UnicodeEncodeError:
            raw = b"\x00"
        line = b"content-type: " + raw + b"\r\n" if _VALUE.fullmatch(raw) else None
        if len(_content_types) < 256:
            _content_types[value] = line
    return line


def render_head(status: int, content_type: str, length: int, extra: list[tuple[str, str]], date: bytes,
                keep: bool, client_close: bool) -> bytes | None:
    """The response head h11 writes for `_head()`'s headers (server, date, content type and length, `extra`,
    `connection: close` unless `keep`) to a plain request; None when h11 would change or refuse something."""
    line = _status_line(status)
    if line is None:
        return None
    out = [line, b"server: hub\r\ndate: ", date, b"\r\n"]
    if content_type:
        ct = _content_type(content_type)
        if ct is None:
            return None
        out.append(ct)
    out.append(b"content-length: %d\r\n" % length)
    for name, value in extra:
        if name.lower() in _OWN_RESPONSE_HEADERS:
            return None
        try:
            raw_name, raw_value = name.encode("ascii"), value.encode("ascii")
        except UnicodeEncodeError:
            return None
        if not _NAME.fullmatch(raw_name) or not _VALUE.fullmatch(raw_value):
            return None
        out += (raw_name, b": ", raw_value, b"\r\n")
    if client_close:  # h11 drops our own and appends its own, title-cased
        out.append(b"Connection: close\r\n\r\n")
    elif not keep:
        out.append(b"connection: close\r\n\r\n")
    else:
        out.append(b"\r\n")
    return b"".join(out)
