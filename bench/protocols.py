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
    "is_publication": lambda payload: b'"method":"message"' in payload[:40],
    "marker": b'{"method":"message"',
    "publish": legacy_publish,
    "subprotocol": None,
}

PROTOCOLS = {"legacy": LEGACY}
