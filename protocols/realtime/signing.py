"""HMAC-SHA256 tokens and signatures of the original client protocol."""

from __future__ import annotations

import hashlib
import hmac


def hmac_hex(secret: str, *parts: str) -> str:
    """Lower-case hex HMAC-SHA256 of the concatenated parts, keyed with `secret`."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part.encode("utf-8"))
    return mac.hexdigest()


def connect_token(secret: str, project: str, user: str, timestamp: str, info: str = "") -> str:
    return hmac_hex(secret, project, user, timestamp, info)


def channel_sign(secret: str, client: str, channel: str, info: str = "") -> str:
    return hmac_hex(secret, client, channel, info)


def check(expected: str, given: object) -> bool:
    """Constant-time comparison; False for anything that is not a string."""
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())
