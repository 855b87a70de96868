"""Pieces of the original Centrifuge formats shared by the websocket and command-API adapters."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hub.core import Publication


def hmac_hex(secret: str, *parts: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the concatenated parts (str as UTF-8), keyed with `secret`."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part.encode("utf-8") if isinstance(part, str) else part)
    return mac.hexdigest()


def check(expected: str, given: object) -> bool:
    """Constant-time comparison; False for anything that is not a string."""
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


def message_body(pub: Publication) -> dict[str, Any]:
    """A publication as the original protocol shows it (pushes and history)."""
    body = {"uid": pub.uid, "timestamp": str(int(pub.timestamp)), "info": pub.info,
            "channel": pub.channel, "data": pub.data}
    if pub.client:
        body["client"] = pub.client
    return body
