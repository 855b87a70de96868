"""WebSocket framing (RFC 6455) without I/O: server frames out, masked client frames in."""

from __future__ import annotations

import base64
import codecs
import hashlib
import struct
from dataclasses import dataclass

from hub.utf8 import JSON_SURROGATES

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = (CLOSE, PING, PONG)
# Close codes a peer may send (RFC 6455 7.4): registered ones except the local-only 1005, 1006 and
# 1015, and 3000-4999; 1004, 1014, 1016-2999 and anything outside 1000-4999 are protocol errors.
_REGISTERED = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013))


def accept_token(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final server frame: valid for every client, so fan-out can share it."""
    n = len(payload)
    head = 0x80 | opcode
    if n < 126:
        return bytes((head, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


def text_frame(text: str) -> bytes:
    return encode_frame(TEXT, text.encode("utf-8", JSON_SURROGATES))


def binary_frame(data: bytes) -> bytes:
    return encode_frame(BINARY, data)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    """A close frame; code 1005 ("no status") sends one with an empty payload."""
    if code == 1005:
        return encode_frame(CLOSE, b"")
    payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
    return encode_frame(CLOSE, payload)


def unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


def whole_message(data: bytes, max_message: int) -> str | bytes | None:
    """`data` as the one message it holds, when it is exactly one final, masked text (valid UTF-8: a str) or
    binary (bytes) frame of at most `max_message` bytes: what a client's read usually brings. Anything else
    (fragments, control frames, several frames, errors) is None and goes through `FrameReader`."""
    if len(data) < 6:
        return None
    b0, b1 = data[0], data[1]
    if b0 not in (0x81, 0x82) or b1 < 0x80:  # FIN + TEXT/BINARY, no reserved bits; masked
        return None
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = int.from_bytes(data[2:4], "big"), 4
    elif n == 127:
        return None
    if n > max_message or len(data) != pos + 4 + n:
        return None
    payload = unmask(data[pos + 4:], data[pos:pos + 4])
    if b0 == 0x82:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def valid_close_code(code: int) -> bool:
    """Whether a peer may send `code` in a close frame."""
    return code in _REGISTERED or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a peer's close frame (1005 when it has no code); ProtocolError if malformed."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise ProtocolError(1002, "close frame with a 1-byte payload")
    code = struct.unpack_from("!H", payload)[0]
    if not valid_close_code(code):
        raise ProtocolError(1002, "invalid close code")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(1007, "close reason is not utf-8") from None
    return code, reason


class ProtocolError(Exception):
    """The peer broke the framing rules; `code` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(slots=True)
class Message:
    """A complete data message (TEXT or BINARY) or a control frame."""

    opcode: int
    payload: bytes


class FrameReader:
    """Feed bytes from a client; take complete messages and control frames out."""

    __slots__ = ("max_message", "_buf", "_parts", "_size", "_opcode", "_utf8", "_error", "more")  # one per connection

    def __init__(self, max_message: int = 1 << 20) -> None:
        self.max_message = max_message
        # Both made when needed and dropped when empty: an idle connection holds no buffer.
        self._buf: bytearray | None = None
        self._parts: list[bytes] | None = None  # the fragments of a message sent in several frames
        self._size = 0
        self._opcode: int | None = None
        self._utf8: codecs.IncrementalDecoder | None = None  # checks a fragmented text message as it arrives
        self._error: ProtocolError | None = None
        self.more = False  # the last messages() stopped at its limit: complete frames may be buffered

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if self._buf is None:
            self._buf = bytearray(data)
        else:
            self._buf += data

    def whole(self, data: bytes) -> str | bytes | None:
        """`whole_message(data)` when nothing is buffered or half-received before it, else None."""
        if self._buf is not None or self._parts is not None or self._error is not None:
            return None
        return whole_message(data, self.max_message)

    @property
    def failed(self) -> bool:
        """A framing error is waiting to be raised by the next `messages()`."""
        return self._error is not None

    def messages(self, limit: int = 0) -> list[Message]:
        """Complete messages and control frames so far (at most `limit` if given; `more` then says whether
        it stopped there). A framing error is raised after the messages that came before it have been
        returned (on the next call), so those still get answered."""
        if self._error is not None:
            raise self._error
        out: list[Message] = []
        self.more = False
        try:
            self._read(out, limit)
        except ProtocolError as exc:
            if not out:
                raise
            self._error = exc
        if not self._buf:
            self._buf = None
        return out

    def _read(self, out: list[Message], limit: int) -> None:
        while True:
            if limit and len(out) >= limit:
                self.more = True
                return
            frame = self._next_frame()
            if frame is None:
                return
            fin, opcode, payload = frame
            if opcode >= CLOSE:
                if opcode not in CONTROL:
                    raise ProtocolError(1002, "unknown opcode")
                if not fin or len(payload) > 125:
                    raise ProtocolError(1002, "bad control frame")
                if opcode == CLOSE:
                    parse_close(payload)
                    out.append(Message(opcode, payload))
                    self._buf = None  # nothing after a close frame counts
                    return
                out.append(Message(opcode, payload))
                continue
            if opcode == CONTINUATION:
                if self._opcode is None:
                    raise ProtocolError(1002, "unexpected continuation frame")
            else:
                if opcode not in (TEXT, BINARY):
                    raise ProtocolError(1002, "unknown opcode")
                if self._opcode is not None:
                    raise ProtocolError(1002, "expected a continuation frame")
                self._opcode = opcode
            self._size += len(payload)
            if self._size > self.max_message:
                raise ProtocolError(1009, "message too big")
            parts = self._parts
            if parts is None and fin:  # the common case: a message in one frame
                out.append(Message(self._opcode, payload))
                self._size, self._opcode = 0, None
                continue
            if parts is None:
                parts = self._parts = []
            parts.append(payload)
            if self._opcode == TEXT:
                if self._utf8 is None:
                    self._utf8 = codecs.getincrementaldecoder("utf-8")()
                try:
                    self._utf8.decode(payload, fin)
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "invalid utf-8") from None
            if fin:
                out.append(Message(self._opcode, b"".join(parts)))
                self._parts, self._size, self._opcode, self._utf8 = None, 0, None, None

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if buf is None or len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b0 & 0x70:
            raise ProtocolError(1002, "reserved bits set")
        if not b1 & 0x80:
            raise ProtocolError(1002, "client frames must be masked")
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos = 10
        if b0 & 0x08 and n > 125:
            raise ProtocolError(1002, "bad control frame")
        if n > self.max_message:
            raise ProtocolError(1009, "message too big")
        if len(buf) < pos + 4 + n:
            return None
        mask = bytes(buf[pos:pos + 4])
        payload = unmask(bytes(buf[pos + 4:pos + 4 + n]), mask)
        del buf[:pos + 4 + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload
