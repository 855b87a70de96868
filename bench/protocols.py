"""How a cheap bench client connects and subscribes with each client protocol, and spots publications."""

from __future__ import annotations

import hashlib
import hmac
import json
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
    "is_publication": lambda payload: b'"method":"message"' in payload[:40],
    "marker": b'{"method":"message"',
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

PROTOCOLS = {"legacy": LEGACY, "sdk": SDK}
