"""HMAC-SHA256 tokens and signatures of the original client protocol."""

from __future__ import annotations

from protocols.centrifuge import hmac_hex


def connect_token(secret: str, project: str, user: str, timestamp: str, info: str = "") -> str:
    return hmac_hex(secret, project, user, timestamp, info)


def channel_sign(secret: str, client: str, channel: str, info: str = "") -> str:
    return hmac_hex(secret, client, channel, info)
