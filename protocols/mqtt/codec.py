"""MQTT 3.1, 3.1.1 and 5.0 control packets without I/O: a reader that splits and decodes what a client
sends, and encoders for what the server sends.

No maintained Python codec covers both 3.1.1 and 5.0 sans-I/O (mqtt5 and mqttproto speak only 5.0,
mqtt-codec only 3.1.1 and is unmaintained), and fan-out needs PUBLISH packets it can encode once and
stamp with each subscriber's packet id, so this one is ours; the real clients (paho-mqtt, mosquitto)
test it in tests/protocols/mqtt/.

Every violation raises `PacketError` with the MQTT 5 reason code the server answers with
(0x81 malformed, 0x82 protocol error, 0x95 packet too large, ...).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

NAMES = {CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBREC: "PUBREC",
         PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE",
         UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH"}

MQTT31, MQTT311, MQTT5 = 3, 4, 5

# Reason codes (MQTT 5; the 3.1.1 CONNACK return codes are mapped from them in `connack`).
SUCCESS = 0x00
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
DISCONNECT_WITH_WILL = 0x04
UNSPECIFIED = 0x80
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC = 0x83
UNSUPPORTED_VERSION = 0x84
CLIENT_ID_INVALID = 0x85
BAD_CREDENTIALS = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
SERVER_SHUTTING_DOWN = 0x8B
BANNED = 0x8A
BAD_AUTH_METHOD = 0x8C
KEEPALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_ID_IN_USE = 0x91
PACKET_ID_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
ADMINISTRATIVE_ACTION = 0x98
PAYLOAD_FORMAT_INVALID = 0x99
SHARED_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1

MAX_REMAINING = 268_435_455


class PacketError(Exception):
    """A packet the server must refuse: `code` is the MQTT 5 reason code of the DISCONNECT (or CONNACK)."""

    def __init__(self, message: str, code: int = MALFORMED) -> None:
        super().__init__(message)
        self.code = code


class UnsupportedVersion(PacketError):
    """CONNECT with a protocol level this server does not speak: answered with CONNACK 0x01 / 0x84."""

    def __init__(self, level: int) -> None:
        super().__init__(f"unsupported protocol level {level}", UNSUPPORTED_VERSION)
        self.level = level


# -- primitives ------------------------------------------------------------------------------------

def encode_varint(n: int) -> bytes:
    """Variable byte integer (remaining length, property lengths, subscription identifiers)."""
    if n < 128:
        return bytes((n,))
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"variable byte integer out of range: {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def encode_string(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    return _U16.pack(len(b)) + b


class _Body:
    """A cursor over one packet's body; every read checks the bounds."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos, self.end = data, pos, len(data)

    def left(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise PacketError("packet too short")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        if self.pos + 2 > self.end:
            raise PacketError("packet too short")
        (v,) = _U16.unpack_from(self.data, self.pos)
        self.pos += 2
        return v

    def u32(self) -> int:
        if self.pos + 4 > self.end:
            raise PacketError("packet too short")
        (v,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
        raise PacketError("malformed variable byte integer")

    def binary(self) -> bytes:
        n = self.u16()
        if self.pos + n > self.end:
            raise PacketError("length field past the end of the packet")
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(v)

    def string(self) -> str:
        return decode_utf8(self.binary())

    def rest(self) -> bytes:
        v = self.data[self.pos:self.end]
        self.pos = self.end
        return bytes(v)


def decode_utf8(raw: bytes) -> str:
    """An MQTT UTF-8 string: well-formed (no surrogates, no overlong forms) and without U+0000."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PacketError("invalid UTF-8 string") from None
    if "\x00" in text:
        raise PacketError("U+0000 in a UTF-8 string")
    return text


# -- properties (MQTT 5) ---------------------------------------------------------------------------

BYTE, U16, U32, VARINT, STRING, BINARY, PAIR = range(7)

PROPERTIES: dict[int, tuple[str, int]] = {
    0x01: ("payload_format_indicator", BYTE), 0x02: ("message_expiry_interval", U32),
    0x03: ("content_type", STRING), 0x08: ("response_topic", STRING), 0x09: ("correlation_data", BINARY),
    0x0B: ("subscription_identifier", VARINT), 0x11: ("session_expiry_interval", U32),
    0x12: ("assigned_client_identifier", STRING), 0x13: ("server_keep_alive", U16),
    0x15: ("authentication_method", STRING), 0x16: ("authentication_data", BINARY),
    0x17: ("request_problem_information", BYTE), 0x18: ("will_delay_interval", U32),
    0x19: ("request_response_information", BYTE), 0x1A: ("response_information", STRING),
    0x1C: ("server_reference", STRING), 0x1F: ("reason_string", STRING), 0x21: ("receive_maximum", U16),
    0x22: ("topic_alias_maximum", U16), 0x23: ("topic_alias", U16), 0x24: ("maximum_qos", BYTE),
    0x25: ("retain_available", BYTE), 0x26: ("user_property", PAIR), 0x27: ("maximum_packet_size", U32),
    0x28: ("wildcard_subscription_available", BYTE), 0x29: ("subscription_identifier_available", BYTE),
    0x2A: ("shared_subscription_available", BYTE),
}
PROPERTY_IDS = {name: pid for pid, (name, _) in PROPERTIES.items()}

# What a client may send in each packet; anything else is a protocol error.
_ALLOWED = {
    CONNECT: {0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16},
    "will": {0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26},
    PUBLISH: {0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x03},
    PUBACK: {0x1F, 0x26}, PUBREC: {0x1F, 0x26}, PUBREL: {0x1F, 0x26}, PUBCOMP: {0x1F, 0x26},
    SUBSCRIBE: {0x0B, 0x26}, UNSUBSCRIBE: {0x26},
    DISCONNECT: {0x11, 0x1F, 0x26, 0x1C}, AUTH: {0x15, 0x16, 0x1F, 0x26},
}


def decode_properties(body: _Body, packet: Any) -> dict[str, Any]:
    """A property block; `user_property` is a list of (name, value) pairs."""
    length = body.varint()
    end = body.pos + length
    if end > body.end:
        raise PacketError("property length past the end of the packet")
    allowed = _ALLOWED[packet]
    props: dict[str, Any] = {}
    saved_end, body.end = body.end, end
    try:
        while body.pos < end:
            pid = body.varint()
            spec = PROPERTIES.get(pid)
            if spec is None or pid not in allowed:
                raise PacketError(f"property 0x{pid:02x} not allowed here", PROTOCOL_ERROR)
            name, kind = spec
            if kind == BYTE:
                value: Any = body.byte()
            elif kind == U16:
                value = body.u16()
            elif kind == U32:
                value = body.u32()
            elif kind == VARINT:
                value = body.varint()
            elif kind == STRING:
                value = body.string()
            elif kind == BINARY:
                value = body.binary()
            else:
                value = (body.string(), body.string())
            if kind == PAIR:
                props.setdefault(name, []).append(value)
            elif name in props:
                raise PacketError(f"property {name} given twice", PROTOCOL_ERROR)
            else:
                props[name] = value
    finally:
        body.end = saved_end
    if props.get("payload_format_indicator", 0) not in (0, 1):
        raise PacketError("payload format indicator must be 0 or 1", PROTOCOL_ERROR)
    for key in ("receive_maximum", "maximum_packet_size", "subscription_identifier"):
        if props.get(key, 1) == 0:
            raise PacketError(f"{key} must not be 0", PROTOCOL_ERROR)
    for key in ("request_problem_information", "request_response_information"):
        if props.get(key, 0) not in (0, 1):
            raise PacketError(f"{key} must be 0 or 1", PROTOCOL_ERROR)
    return props


def encode_properties(props: dict[str, Any] | None) -> bytes:
    """A property block with its length; `user_property` (and `subscription_identifier`) may be lists."""
    if not props:
        return b"\x00"
    out = bytearray()
    for name, value in props.items():
        if value is None:
            continue
        pid = PROPERTY_IDS[name]
        kind = PROPERTIES[pid][1]
        values = value if isinstance(value, list) and kind in (PAIR, VARINT) else [value]
        for v in values:
            out += encode_varint(pid)
            if kind == BYTE:
                out.append(v)
            elif kind == U16:
                out += _U16.pack(v)
            elif kind == U32:
                out += _U32.pack(v)
            elif kind == VARINT:
                out += encode_varint(v)
            elif kind == STRING:
                out += encode_string(v)
            elif kind == BINARY:
                out += encode_string(bytes(v))
            else:
                out += encode_string(v[0]) + encode_string(v[1])
    return encode_varint(len(out)) + bytes(out)


# -- what clients send -----------------------------------------------------------------------------

@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Connect:
    version: int
    clean: bool
    keepalive: int
    client_id: str
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (`kind`)."""

    kind: int
    packet_id: int
    reason: int = SUCCESS
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Subscribe:
    packet_id: int
    topics: list[tuple[str, int]]  # (filter, options byte)
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Unsubscribe:
    packet_id: int
    topics: list[str]
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class PingReq:
    pass


@dataclass(slots=True)
class Disconnect:
    reason: int = SUCCESS
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Auth:
    reason: int = SUCCESS
    props: dict[str, Any] = field(default_factory=dict)


Packet = Connect | Publish | Ack | Subscribe | Unsubscribe | PingReq | Disconnect | Auth

# Fixed-header flags each packet type must carry (PUBLISH's are its dup/qos/retain bits).
_FLAGS = {CONNECT: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0, SUBSCRIBE: 2, UNSUBSCRIBE: 2,
          PINGREQ: 0, DISCONNECT: 0, AUTH: 0}


class PacketReader:
    """Splits a client's byte stream into (first byte, body) pairs; `max_size` bounds a whole packet."""

    __slots__ = ("buf", "max_size")

    def __init__(self, max_size: int = MAX_REMAINING + 5) -> None:
        self.buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes) -> None:
        self.buf += data

    def packets(self) -> list[tuple[int, bytes]]:
        """Every complete packet buffered so far; raises PacketError on a bad length or an oversized packet."""
        buf = self.buf
        out = []
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b = buf[pos + 1]
            if b < 128:
                length, start = b, pos + 2
            else:
                length, shift, i = 0, 0, pos + 1
                while True:
                    if i >= end:
                        length = -1
                        break
                    b = buf[i]
                    length |= (b & 0x7F) << shift
                    i += 1
                    if not b & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise PacketError("malformed remaining length")
                if length < 0:
                    break
                start = i
            if start - pos + length > self.max_size:
                raise PacketError("packet too large", PACKET_TOO_LARGE)
            if start + length > end:
                break
            out.append((buf[pos], bytes(buf[start:start + length])))
            pos = start + length
        if pos:
            del buf[:pos]
        return out


def decode(first: int, body: bytes, version: int) -> Packet:
    """One client packet; `version` is the connection's protocol level (0 before CONNECT)."""
    ptype, flags = first >> 4, first & 0x0F
    if ptype == PUBLISH:
        return _publish(flags, body, version)
    expected = _FLAGS.get(ptype)
    if expected is None:
        raise PacketError(f"a client may not send packet type {ptype}", PROTOCOL_ERROR)
    if flags != expected:
        raise PacketError(f"reserved flags of {NAMES[ptype]} are wrong", MALFORMED)
    if version == 0:
        if ptype != CONNECT:
            raise PacketError("the first packet must be CONNECT", PROTOCOL_ERROR)
        return _connect(body)
    v5 = version == MQTT5
    if ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        b = _Body(body)
        pid = b.u16()
        reason, props = SUCCESS, {}
        if v5 and b.left():
            reason = b.byte()
            if b.left():
                props = decode_properties(b, ptype)
        if b.left():
            raise PacketError(f"{NAMES[ptype]} has trailing bytes")
        return Ack(ptype, pid, reason, props)
    if ptype == PINGREQ:
        if body:
            raise PacketError("PINGREQ has a body")
        return PingReq()
    if ptype == SUBSCRIBE:
        b = _Body(body)
        pid = b.u16()
        props = decode_properties(b, SUBSCRIBE) if v5 else {}
        topics = []
        while b.left():
            topic = b.string()
            options = b.byte()
            if v5:
                if options & 0xC0 or (options & 0x03) == 3 or (options >> 4) & 3 == 3:
                    raise PacketError("bad subscription options")
            elif options & 0xFC or options == 3:
                raise PacketError("bad requested QoS")
            topics.append((topic, options))
        if not topics:
            raise PacketError("SUBSCRIBE without a topic filter", PROTOCOL_ERROR)
        if pid == 0:
            raise PacketError("packet identifier 0", PROTOCOL_ERROR)
        return Subscribe(pid, topics, props)
    if ptype == UNSUBSCRIBE:
        b = _Body(body)
        pid = b.u16()
        props = decode_properties(b, UNSUBSCRIBE) if v5 else {}
        topics = []
        while b.left():
            topics.append(b.string())
        if not topics:
            raise PacketError("UNSUBSCRIBE without a topic filter", PROTOCOL_ERROR)
        if pid == 0:
            raise PacketError("packet identifier 0", PROTOCOL_ERROR)
        return Unsubscribe(pid, topics, props)
    if ptype == DISCONNECT:
        if not v5:
            if body:
                raise PacketError("DISCONNECT has a body")
            return Disconnect()
        b = _Body(body)
        reason, props = SUCCESS, {}
        if b.left():
            reason = b.byte()
            if b.left():
                props = decode_properties(b, DISCONNECT)
        if b.left():
            raise PacketError("DISCONNECT has trailing bytes")
        return Disconnect(reason, props)
    if ptype == AUTH:
        if not v5:
            raise PacketError("AUTH is MQTT 5 only", PROTOCOL_ERROR)
        b = _Body(body)
        reason, props = SUCCESS, {}
        if b.left():
            reason = b.byte()
            props = decode_properties(b, AUTH)
        return Auth(reason, props)
    if ptype == CONNECT:
        raise PacketError("second CONNECT", PROTOCOL_ERROR)
    raise PacketError(f"unexpected packet type {ptype}", PROTOCOL_ERROR)


def _connect(body: bytes) -> Connect:
    b = _Body(body)
    name = b.binary()
    if b.left() < 1:
        raise PacketError("CONNECT too short")
    level = b.byte()
    if name == b"MQTT":
        if level not in (MQTT311, MQTT5):
            raise UnsupportedVersion(level)
    elif name == b"MQIsdp":
        if level != MQTT31:
            raise UnsupportedVersion(level)
    else:
        raise PacketError(f"unknown protocol name {name[:16]!r}", PROTOCOL_ERROR)
    flags = b.byte()
    if flags & 0x01:
        raise PacketError("CONNECT reserved flag set")
    keepalive = b.u16()
    v5 = level == MQTT5
    props = decode_properties(b, CONNECT) if v5 else {}
    client_id = b.string()
    will = None
    will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, bool(flags & 0x20)
    if will_flag:
        if will_qos == 3:
            raise PacketError("will QoS 3")
        will_props = decode_properties(b, "will") if v5 else {}
        topic = b.string()
        payload = b.binary()
        will = Will(topic, payload, will_qos, will_retain, will_props)
    elif will_qos or will_retain:
        raise PacketError("will QoS or retain without a will")
    username = b.string() if flags & 0x80 else None
    if flags & 0x40:
        if username is None and not v5:
            raise PacketError("password without a user name")
        password = b.binary()
    else:
        password = None
    if b.left():
        raise PacketError("CONNECT has trailing bytes")
    return Connect(level, bool(flags & 0x02), keepalive, client_id, will, username, password, props)


def _publish(flags: int, body: bytes, version: int) -> Publish:
    if version == 0:
        raise PacketError("the first packet must be CONNECT", PROTOCOL_ERROR)
    qos = (flags >> 1) & 3
    if qos == 3:
        raise PacketError("PUBLISH with QoS 3")
    dup = bool(flags & 0x08)
    if dup and qos == 0:
        raise PacketError("DUP set on a QoS 0 PUBLISH")
    n = len(body)
    if n < 2:
        raise PacketError("PUBLISH too short")
    tlen = (body[0] << 8) | body[1]
    pos = 2 + tlen
    if pos > n:
        raise PacketError("topic length past the end of the packet")
    raw_topic = body[2:pos]
    try:
        topic = raw_topic.decode("utf-8")
    except UnicodeDecodeError:
        raise PacketError("invalid UTF-8 in the topic name", TOPIC_NAME_INVALID) from None
    pid = 0
    if qos:
        if pos + 2 > n:
            raise PacketError("PUBLISH without a packet identifier")
        pid = (body[pos] << 8) | body[pos + 1]
        if pid == 0:
            raise PacketError("packet identifier 0", PROTOCOL_ERROR)
        pos += 2
    props: dict[str, Any] = {}
    if version == MQTT5:
        b = _Body(body, pos)
        props = decode_properties(b, PUBLISH)
        pos = b.pos
    if "\x00" in topic or "+" in topic or "#" in topic:
        raise PacketError("wildcard or NUL in the topic name", TOPIC_NAME_INVALID)
    return Publish(topic, body[pos:], qos, bool(flags & 0x01), dup, pid, props)


# -- what the server sends -------------------------------------------------------------------------

_V3_CONNACK = {SUCCESS: 0, UNSUPPORTED_VERSION: 1, CLIENT_ID_INVALID: 2, SERVER_UNAVAILABLE: 3,
               SERVER_BUSY: 3, BAD_CREDENTIALS: 4, NOT_AUTHORIZED: 5, BANNED: 5, BAD_AUTH_METHOD: 5}


def fixed(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes(((ptype << 4) | flags,)) + encode_varint(len(body)) + body


def connack(version: int, session_present: bool, code: int, props: dict[str, Any] | None = None) -> bytes:
    """CONNACK: MQTT 5 reason code and properties, or the 3.x return code mapped from `code`."""
    flags = 1 if session_present and code == SUCCESS else 0
    if version == MQTT5:
        return fixed(CONNACK, 0, bytes((flags, code)) + encode_properties(props))
    return fixed(CONNACK, 0, bytes((flags, _V3_CONNACK.get(code, 3))))


def ack(kind: int, packet_id: int, version: int, reason: int = SUCCESS, props: dict[str, Any] | None = None) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP (MQTT 5: a reason code unless success without properties)."""
    flags = 2 if kind == PUBREL else 0
    body = _U16.pack(packet_id)
    if version == MQTT5 and (reason or props):
        body += bytes((reason,)) + (encode_properties(props) if props else b"")
    return fixed(kind, flags, body)


def suback(version: int, packet_id: int, codes: list[int], props: dict[str, Any] | None = None) -> bytes:
    """SUBACK: per filter the granted QoS or a failure (3.x knows only 0x80)."""
    if version == MQTT5:
        return fixed(SUBACK, 0, _U16.pack(packet_id) + encode_properties(props) + bytes(codes))
    return fixed(SUBACK, 0, _U16.pack(packet_id) + bytes(c if c < 3 else 0x80 for c in codes))


def unsuback(version: int, packet_id: int, codes: list[int]) -> bytes:
    if version == MQTT5:
        return fixed(UNSUBACK, 0, _U16.pack(packet_id) + b"\x00" + bytes(codes))
    return fixed(UNSUBACK, 0, _U16.pack(packet_id))


PINGRESP_PACKET = bytes((PINGRESP << 4, 0))


def disconnect(reason: int = SUCCESS, props: dict[str, Any] | None = None) -> bytes:
    """A server DISCONNECT (MQTT 5 only: 3.x servers just close)."""
    if reason == SUCCESS and not props:
        return bytes((DISCONNECT << 4, 0))
    return fixed(DISCONNECT, 0, bytes((reason,)) + (encode_properties(props) if props else b""))


def publish(version: int, topic: str | bytes, payload: bytes, qos: int = 0, packet_id: int = 0, retain: bool = False,
            dup: bool = False, props: dict[str, Any] | None = None) -> bytes:
    """One PUBLISH (tests and retained/queued sends; fan-out uses PublishTemplate)."""
    return PublishTemplate(version, topic, payload, encode_properties(props) if version == MQTT5 else b"").encode(
        qos, packet_id, retain, dup)


class PublishTemplate:
    """A PUBLISH encoded once per protocol version; each QoS's layout is cached and a packet id stamped per send."""

    __slots__ = ("version", "topic", "payload", "props", "_qos0", "_parts")

    def __init__(self, version: int, topic: str | bytes, payload: bytes, props: bytes = b"") -> None:
        self.version = version
        self.topic = encode_string(topic)
        self.payload = payload
        self.props = props if version == MQTT5 else b""
        if version == MQTT5 and not props:
            self.props = b"\x00"
        self._qos0: bytes | None = None
        self._parts: dict[int, tuple[bytes, bytes]] = {}

    def size(self, qos: int) -> int:
        """Bytes of the whole packet at `qos` (for the client's maximum packet size)."""
        n = len(self.topic) + len(self.props) + len(self.payload) + (2 if qos else 0)
        return 1 + len(encode_varint(n)) + n

    def qos0(self) -> bytes:
        """The QoS 0 packet without RETAIN: the same bytes for every subscriber."""
        data = self._qos0
        if data is None:
            body_len = len(self.topic) + len(self.props) + len(self.payload)
            data = self._qos0 = b"".join((bytes((0x30,)), encode_varint(body_len), self.topic, self.props, self.payload))
        return data

    def encode(self, qos: int, packet_id: int = 0, retain: bool = False, dup: bool = False) -> bytes:
        if qos == 0:
            if not retain:
                return self.qos0()
            data = self.qos0()
            return bytes((data[0] | 1,)) + data[1:]
        parts = self._parts.get(qos)
        if parts is None:
            body_len = len(self.topic) + 2 + len(self.props) + len(self.payload)
            head = bytes((0x30 | (qos << 1),)) + encode_varint(body_len) + self.topic
            parts = self._parts[qos] = (head, self.props + self.payload)
        head, tail = parts
        if retain or dup:
            head = bytes((head[0] | (1 if retain else 0) | (8 if dup else 0),)) + head[1:]
        return head + _U16.pack(packet_id) + tail
