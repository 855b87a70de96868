"""How a cheap bench client connects and subscribes with each client protocol, and spots publications."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

PROJECT, SECRET = "bench", "bench-secret"


def legacy_subscribe(user: str, channel: str) -> bytes:
    """One frame: connect + subscribe in the original protocol (reply is a JSON array)."""
    ts = str(int(time.time()))
    token = hmac.new(SECRET.encode(), f"{PROJECT}{user}{ts}".encode(), hashlib.sha256).hexdigest()
    return json.dumps([
        {"method": "connect", "params": {"project": PROJECT, "user": user, "timestamp": ts, "info": "", "token": token}},
        {"method": "subscribe", "params": {"channel": channel}},
    ]).encode()


def legacy_publish(channel: str, items: list[dict]) -> bytes:
    return json.dumps([{"method": "publish", "params": {"channel": channel, "data": d}} for d in items],
                      separators=(",", ":")).encode()


LEGACY = {
    "subscribe": legacy_subscribe,
    "is_reply": lambda payload: payload[:1] == b"[",
    "reply_prefix": b"[",
    "is_publication": lambda payload: b'"method": "message"' in payload[:40],
    "marker": b'{"method": "message"',  # the original's encoding (json.dumps spacing)
    "publish": legacy_publish,
    "subprotocol": None,
}

def sdk_token(user: str) -> str:
    import warnings

    import jwt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode({"sub": user, "project": PROJECT}, SECRET, algorithm="HS256")


def sdk_subscribe(user: str, channel: str) -> bytes:
    """Two newline-delimited commands of today's Centrifugo protocol: connect with a JWT, subscribe."""
    return (json.dumps({"id": 1, "connect": {"token": sdk_token(user)}}) + "\n"
            + json.dumps({"id": 2, "subscribe": {"channel": channel}})).encode()


_ids = iter(range(3, 1 << 62))


def sdk_publish(channel: str, items: list[dict]) -> bytes:
    return "\n".join(json.dumps({"id": next(_ids), "publish": {"channel": channel, "data": d}}, separators=(",", ":"))
                     for d in items).encode()


SDK = {
    "subscribe": sdk_subscribe,
    "is_reply": lambda payload: payload.startswith(b'{"id":2,'),
    "reply_prefix": b'{"id":',
    "is_publication": lambda payload: b'"pub":{' in payload,
    "marker": b'"pub":{"data":',
    "publish": sdk_publish,
    "subprotocol": None,
}

# -- the peers' protocols (bench/peers/) ----------------------------------------------------------

def wspeer_publish(channel: str, items: list[dict]) -> bytes:
    return json.dumps({"publish": channel, "data": items}, separators=(",", ":")).encode()


WSPEER = {
    "subscribe": lambda user, channel: json.dumps({"subscribe": channel}).encode(),
    "is_reply": lambda payload: payload.startswith(b'{"subscribed"'),
    "reply_prefix": b'{"ok"',
    "is_publication": lambda payload: payload.startswith(b'{"ch":'),
    "marker": b'{"ch":',
    "publish": wspeer_publish,
    "subprotocol": None,
}

_acks = iter(range(1, 1 << 62))


def socketio_publish(channel: str, items: list[dict]) -> bytes:
    """Socket.IO EVENT with an ack id: `42<id>["pub", {...}]`; the server's ACK is `43<id>[n]`."""
    return b"42" + str(next(_acks)).encode() + json.dumps(["pub", {"ch": channel, "items": items}], separators=(",", ":")).encode()


SOCKETIO = {
    # Engine.IO v4 over a plain websocket: the server sends its OPEN packet `0{...}`; the client's
    # Socket.IO CONNECT `40{auth}` joins the room; the server answers `40{"sid": ...}`.
    "subscribe": lambda user, channel: b"40" + json.dumps({"channel": channel}).encode(),
    "is_reply": lambda payload: payload[:2] == b"40",
    "reply_prefix": b"43",
    "is_publication": lambda payload: payload.startswith(b'42["m",'),
    "marker": b'42["m",',
    "publish": socketio_publish,
    "subprotocol": None,
}


def _mqtt_open(host: str, port: int, client_id: str, channel: str):
    from .mqtt import open_subscriber

    return open_subscriber(host, port, f"{client_id}-{os.getpid()}", channel)


def _mqtt_dialog(client_id: str, channel: str):
    from .mqtt import subscriber_dialog

    return subscriber_dialog(f"{client_id}-{os.getpid()}", channel)


async def _mqtt_publisher(url: str, channel: str, messages: int, rate: float, size: int, make_payload,
                          ack_wait: float = 60.0, topics: int = 0) -> tuple[float, float]:
    from .mqtt import publish

    return await publish(url, channel, messages, rate, size, make_payload, ack_wait, topics)


MQTT = {
    # MQTT 3.1.1 QoS 0 on raw sockets (bench/mqtt.py); the topic is the channel name. The marker is
    # the PUBLISH topic field plus the payload's start, so it is only right for "bench:fanout".
    "transport": "mqtt",
    "open": _mqtt_open,
    "dialog": _mqtt_dialog,
    "publisher": _mqtt_publisher,
    "marker": b"\x00\x0cbench:fanout{\"t\":",
    "subprotocol": None,
}

def _redis_open(host: str, port: int, client_id: str, channel: str):
    """A raw-socket Redis pub/sub subscriber (RESP inline SUBSCRIBE), non-blocking once subscribed."""
    import socket

    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"SUBSCRIBE {channel}\r\n".encode())
    buf = b""
    while buf.count(b"\r\n") < 6:  # *3 $9 subscribe $n channel :1
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("redis closed the connection")
        buf += data
    sock.setblocking(False)
    return sock


def _redis_dialog(client_id: str, channel: str):
    """`_redis_open` as a dialog for bench/connector.py."""
    buf = yield f"SUBSCRIBE {channel}\r\n".encode()
    while buf.count(b"\r\n") < 6:  # *3 $9 subscribe $n channel :1
        buf = yield None
    del buf[:]


async def _redis_publisher(url: str, channel: str, messages: int, rate: float, size: int, make_payload,
                           ack_wait: float = 60.0, topics: int = 0) -> tuple[float, float]:
    """PUBLISH commands pipelined (burst: 100 per write; or at `rate`/s); waits for every reply (`:n`)."""
    import asyncio

    hostport = url.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    ch = channel.encode()
    head = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n" % (len(ch), ch)
    replies = {"n": 0}

    def commands(first: int, n: int) -> bytes:
        out = []
        for i in range(first, first + n):
            p = json.dumps(make_payload(i, size), separators=(",", ":")).encode()
            out.append(head + b"$%d\r\n%s\r\n" % (len(p), p))
        return b"".join(out)

    async def read_replies() -> None:
        while replies["n"] < messages:
            data = await reader.read(65536)
            if not data:
                return
            replies["n"] += data.count(b"\r\n")

    counter = asyncio.ensure_future(read_replies())
    start = time.time()
    sent = 0
    while sent < messages:
        if rate <= 0:
            n = min(100, messages - sent)
        else:
            n = min(messages, int((time.time() - start) * rate) + 1) - sent
            if n <= 0:
                await asyncio.sleep(0.0005)
                continue
        writer.write(commands(sent, n))
        sent += n
        await writer.drain()
        await asyncio.sleep(0 if rate <= 0 else 0.0005)
    end = time.time()
    try:
        await asyncio.wait_for(counter, ack_wait)
    except TimeoutError:
        counter.cancel()
    writer.close()
    return start, end


REDIS = {
    # Redis 7 pub/sub on raw sockets: a publication arrives as *3 message <channel> <payload>.
    "transport": "redis",
    "open": _redis_open,
    "dialog": _redis_dialog,
    "publisher": _redis_publisher,
    "marker": b'{"t":',
    "subprotocol": None,
}

PROTOCOLS = {"redis": REDIS, "legacy": LEGACY, "sdk": SDK, "wspeer": WSPEER, "socketio": SOCKETIO, "mqtt": MQTT}
