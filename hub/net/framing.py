"""Payloads vs framing: codecs make payloads, transports frame them.

A protocol codec turns events (a publication, a join, a reply array) into *payloads*: the bytes of
one protocol message, with no transport around them. A transport decides how payloads travel:

- a websocket sends each payload as one text (or binary) frame;
- SockJS sends payloads as JSON strings inside `a[...]` packets, in a websocket frame or an XHR body;
- (later) SSE / HTTP streaming send them as `data:` lines or length-prefixed chunks.

`Framing.frame(payload)` gives the bytes a session's outbox holds for one payload. The core's fan-out
encodes each publication once per *wire format* (it caches by the session's `wire` object), so a
`FramedWire(codec, framing)` is created once per (codec, framing) pair and shared by every session
that uses that pair: N websocket clients and M SockJS clients of one protocol cost two encodings of a
publication, not N + M.

Some transports frame in two steps: what a push adds to the outbox (`frame`), and what goes out when
the transport writes everything pending at once (`Framing.pack`, identity for websockets). SockJS
queues `,"<payload>"` elements and writes `a[<elements>]` per packet, so several pushes that
queued up while an XHR poll was away go out as one packet. Closing works the same way: the codec
says how a server-side disconnect closes (`Codec.close` → a `Close` with each transport family's
code and reason), and `Framing.closing` gives the transport's own close notice that must precede
the close (SockJS over a websocket queues `c[3000,"Go away!"]` before its close frame), so the
core's `close()` queues notice and close in order without knowing the transport. An SSE or HTTP-streaming transport
follows the same pattern: a `Framing` whose `frame` makes one event (`data: <payload>\\n\\n`) and
whose `pack` is the identity, wrapped in a `FramedWire` per codec, and a transport that drains the
session's outbox into its response.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from .wsframe import BINARY, TEXT, encode_frame


class Close(NamedTuple):
    """How one close looks on each transport family: a websocket close frame's (code, reason) (1005:
    a close frame with no status code) and a SockJS close packet `c[code,"reason"]`."""

    websocket: tuple[int, str]
    sockjs: tuple[int, str]


class Framing(Protocol):
    """How one transport carries payloads."""

    name: str

    def frame(self, payload: bytes) -> bytes:
        """The bytes queued for one payload (cached and shared by all sessions of a wire format)."""
        ...

    def pack(self, pending: bytes) -> bytes:
        """What goes out for everything pending at once (concatenated `frame` results)."""
        ...

    def closing(self, close: Close) -> bytes:
        """The transport's own close notice, queued before it closes (SockJS `c[...]` over a websocket);
        b"" where the transport says it otherwise (a websocket close frame, an XHR session's state)."""
        ...


class WebSocketFraming:
    """One websocket data frame per payload (text by default)."""

    def __init__(self, opcode: int = TEXT) -> None:
        self.opcode = opcode
        self.name = "ws-text" if opcode == TEXT else "ws-binary"
        self._head = 0x80 | opcode  # FIN + opcode: the first byte of `encode_frame`'s frames

    def frame(self, payload: bytes) -> bytes:
        n = len(payload)  # `encode_frame` inlined for payloads under 64 KiB (a call less per publication)
        if n < 126:
            return bytes((self._head, n)) + payload
        if n < 65536:
            return bytes((self._head, 126, n >> 8, n & 0xFF)) + payload
        return encode_frame(self.opcode, payload)

    def pack(self, pending: bytes) -> bytes:
        return pending

    def closing(self, close: Close) -> bytes:
        return b""


WS_TEXT = WebSocketFraming(TEXT)
WS_BINARY = WebSocketFraming(BINARY)


class Codec(Protocol):
    """Core events → one protocol's payloads (None: this protocol sends nothing for that event)."""

    name: str

    def publication(self, pub: Any) -> bytes | None: ...

    def join(self, channel: str, client: dict[str, Any]) -> bytes | None: ...

    def leave(self, channel: str, client: dict[str, Any]) -> bytes | None: ...

    def unsubscribe(self, channel: str) -> bytes | None: ...

    def subscribe(self, channel: str) -> bytes | None: ...

    def disconnect(self, reason: str, reconnect: bool) -> bytes | None: ...

    def close(self, reason: str | None, reconnect: bool) -> Close:
        """How the connection is closed after a server-side disconnect for `reason`."""
        ...


class FramedWire:
    """A codec and a framing: the core's `WireFormat` for the sessions of one (protocol, transport) pair."""

    __slots__ = ("codec", "framing", "name")

    def __init__(self, codec: Codec, framing: Framing) -> None:
        self.codec, self.framing = codec, framing
        self.name = f"{codec.name}/{framing.name}"

    def frame(self, payload: bytes | None) -> bytes:
        return self.framing.frame(payload) if payload is not None else b""

    def publication(self, pub: Any) -> bytes:
        return self.framing.frame(self.codec.publication(pub))

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return self.frame(self.codec.join(channel, client))

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return self.frame(self.codec.leave(channel, client))

    def unsubscribe(self, channel: str) -> bytes:
        return self.frame(self.codec.unsubscribe(channel))

    def subscribe(self, channel: str) -> bytes:
        return self.frame(self.codec.subscribe(channel))

    def disconnect(self, reason: str, reconnect: bool) -> bytes:
        """The disconnect notice (if the protocol sends one) and the transport's close notice (if it has one)."""
        return self.frame(self.codec.disconnect(reason, reconnect)) + self.framing.closing(self.codec.close(reason, reconnect))
