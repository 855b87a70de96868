"""Just enough MQTT 3.1.1 for the Mosquitto peer: packet encoding/decoding, a subscriber socket, a QoS 0 publisher.

Only what a QoS 0 fan-out needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH, PINGREQ/PINGRESP,
DISCONNECT. The packet functions are pure (no I/O) and unit-tested in tests/bench/.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 8, 9, 12, 13, 14


def encode_length(n: int) -> bytes:
    """The fixed header's variable-length 'remaining length' (1 to 4 bytes, 7 bits each)."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"remaining length out of range: {n}")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode_length(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(remaining length, position after it) or None if `buf` does not hold the whole field yet."""
    value, shift = 0, 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("malformed remaining length")


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    """One control packet: fixed header byte, remaining length, body."""
    return bytes([(ptype << 4) | flags]) + encode_length(len(body)) + body


def connect_packet(client_id: str, keepalive: int = 0, clean: bool = True) -> bytes:
    """CONNECT for protocol level 4 (3.1.1); keepalive 0 = the broker never expects pings."""
    return packet(CONNECT, 0, _str("MQTT") + bytes([4, 0x02 if clean else 0]) + struct.pack("!H", keepalive) + _str(client_id))


def subscribe_packet(packet_id: int, topic: str, qos: int = 0) -> bytes:
    return packet(SUBSCRIBE, 0x02, struct.pack("!H", packet_id) + _str(topic) + bytes([qos]))


def publish_packet(topic: str | bytes, payload: bytes) -> bytes:
    """PUBLISH at QoS 0 (no packet id, no acknowledgement)."""
    return packet(PUBLISH, 0, _str(topic) + payload)


PINGREQ_PACKET = bytes([PINGREQ << 4, 0])
DISCONNECT_PACKET = bytes([DISCONNECT << 4, 0])


def parse_packets(buf: bytes | bytearray) -> tuple[list[tuple[int, int, bytes]], int]:
    """Complete packets at the start of `buf` as (type, flags, body), and how many bytes they used."""
    out, pos = [], 0
    while pos < len(buf):
        got = decode_length(buf, pos + 1)
        if got is None:
            break
        n, start = got
        if start + n > len(buf):
            break
        out.append((buf[pos] >> 4, buf[pos] & 0x0F, bytes(buf[start:start + n])))
        pos = start + n
    return out, pos


def parse_publish(flags: int, body: bytes) -> tuple[str, bytes]:
    """(topic, payload) of a PUBLISH body; skips the packet id at QoS 1 and 2."""
    (n,) = struct.unpack_from("!H", body)
    topic = body[2:2 + n].decode()
    pos = 2 + n + (2 if (flags >> 1) & 3 else 0)
    return topic, body[pos:]


def publication_marker(topic: str) -> bytes:
    """Bytes every bench publication on `topic` carries: topic length, topic, the JSON payload's start."""
    return _str(topic) + b'{"t":'


# -- blocking subscriber (used by bench/fanout_client.py) ---------------------------------------------

def _read_packet(sock: socket.socket, buf: bytearray) -> tuple[int, int, bytes]:
    while True:
        got = decode_length(buf, 1) if buf else None
        if got is not None and got[1] + got[0] <= len(buf):
            n, start = got
            first = (buf[0] >> 4, buf[0] & 0x0F, bytes(buf[start:start + n]))
            del buf[:start + n]
            return first
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("broker closed the connection")
        buf += data


def subscriber_dialog(client_id: str, topic: str):
    """`open_subscriber` as a dialog for bench/connector.py: CONNECT and SUBSCRIBE in one write, then CONNACK and SUBACK."""
    buf = yield connect_packet(client_id) + subscribe_packet(1, topic)
    packets = []
    while len(packets) < 2:
        got = decode_length(buf, 1) if buf else None
        if got is not None and got[1] + got[0] <= len(buf):
            n, start = got
            packets.append((buf[0] >> 4, bytes(buf[start:start + n])))
            del buf[:start + n]
            continue
        buf = yield None
    (ptype, body), (ptype2, body2) = packets
    if ptype != CONNACK or body[1:2] != b"\x00":
        raise ConnectionError(f"CONNECT refused: type {ptype} body {body!r}")
    if ptype2 != SUBACK or body2[2:3] == b"\x80":
        raise ConnectionError(f"SUBSCRIBE refused: type {ptype2} body {body2!r}")


def open_subscriber(host: str, port: int, client_id: str, topic: str) -> socket.socket:
    """Connect, subscribe to `topic` at QoS 0, wait for SUBACK; return the socket, non-blocking."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(connect_packet(client_id) + subscribe_packet(1, topic))
    buf = bytearray()
    ptype, _, body = _read_packet(sock, buf)
    if ptype != CONNACK or body[1:2] != b"\x00":
        raise ConnectionError(f"CONNECT refused: type {ptype} body {body!r}")
    ptype, _, body = _read_packet(sock, buf)
    if ptype != SUBACK or body[2:3] == b"\x80":
        raise ConnectionError(f"SUBSCRIBE refused: type {ptype} body {body!r}")
    if buf:
        raise RuntimeError("unexpected packets after SUBACK")
    sock.setblocking(False)
    return sock


# -- asyncio publisher (used by bench/fanout.py) ---------------------------------------------------

class _Publisher(asyncio.Protocol):
    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.connack = loop.create_future()
        self.pong = loop.create_future()
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        packets, used = parse_packets(self.buf)
        del self.buf[:used]
        for ptype, _, body in packets:
            if ptype == CONNACK and not self.connack.done():
                self.connack.set_result(body)
            elif ptype == PINGRESP and not self.pong.done():
                self.pong.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for f in (self.connack, self.pong):
            if not f.done():
                f.set_exception(ConnectionError("broker closed the connection"))


def topic_of(base: str, topics: int, seq: int) -> str:
    """The topic of publication `seq`: `base` itself, or with `topics` > 0 the `topics` topics `bench/<n>/data` in turn."""
    return f"bench/{seq % topics}/data" if topics else base


def filter_of(base: str, topics: int, index: int, wildcard: bool) -> str:
    """Subscriber `index`'s topic filter: `base`, or one of the `topics` topics (`bench/<n>/#` with `wildcard`)."""
    if not topics:
        return base
    return f"bench/{index % topics}/#" if wildcard else f"bench/{index % topics}/data"


async def publish(url: str, topic: str, messages: int, rate: float, size: int,
                  make_payload: Callable[[int, int], dict[str, Any]], ack_wait: float = 60.0,
                  topics: int = 0) -> tuple[float, float]:
    """QoS 0 publications (burst in batches of 100, or at `rate`/s); PINGREQ at the end proves the broker read them all.

    With `topics` > 0 they go round-robin to that many topics (see topic_of)."""
    hostport = url.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_Publisher, host, int(port))
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport.write(connect_packet(f"bench-pub-{os.getpid()}"))
    await asyncio.wait_for(proto.connack, 10)
    names = [topic_of(topic, topics, i).encode() for i in range(topics or 1)]

    def packets(first: int, n: int) -> bytes:
        return b"".join(publish_packet(names[(first + i) % len(names)],
                                       json.dumps(make_payload(first + i, size), separators=(",", ":")).encode())
                        for i in range(n))

    start = time.time()
    sent = 0
    if rate <= 0:
        while sent < messages:
            n = min(100, messages - sent)
            transport.write(packets(sent, n))
            sent += n
            await asyncio.sleep(0)
            while transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.001)
    else:
        while sent < messages:
            due = min(messages, int((time.time() - start) * rate) + 1)
            if due > sent:
                transport.write(packets(sent, due - sent))
                sent = due
            await asyncio.sleep(0.0005)
    end = time.time()
    transport.write(PINGREQ_PACKET)
    try:
        await asyncio.wait_for(proto.pong, ack_wait)
    except TimeoutError:
        pass  # the broker is still reading: the subscribers' counts tell how far it got
    finally:
        transport.write(DISCONNECT_PACKET)
        transport.close()
    return start, end
