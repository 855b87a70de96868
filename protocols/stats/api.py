"""The NanoMQ-style HTTP API v1 without I/O: Basic auth, `{"req", "seq"}` requests, result codes."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable
from typing import Any

from hub.core import Hub

OK, RPC_ERROR, UNKNOWN, WRONG_CREDENTIALS, EMPTY_CREDENTIALS = 0, 101, 102, 103, 104
MISSING_PARAMETER, BAD_PARAMETER, NOT_JSON = 107, 108, 109

BROKER_INFO, TOPIC_INFO, CLIENT_INFO, RESTART = 2, 4, 5, 10

# `protocol` is an integer in the original API; each hub protocol has a stable number.
PROTOCOL_NUMBERS = {"centrifuge-legacy": 1, "centrifugo": 2, "jsonrpc": 3, "chat": 4}


class ApiError(Exception):
    """An error answer: HTTP `status` and a result `code`."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def check_auth(header: str | None, app_id: str, app_secret: str) -> None:
    """HTTP Basic with AppID/AppSecret, compared in constant time."""
    if not header:
        raise ApiError(401, EMPTY_CREDENTIALS, "empty username or password")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise ApiError(401, EMPTY_CREDENTIALS, "basic authentication required")
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, WRONG_CREDENTIALS, "wrong username or password") from None
    if not sep or not user or not password:
        raise ApiError(401, EMPTY_CREDENTIALS, "empty username or password")
    ok_user = hmac.compare_digest(user.encode(), app_id.encode())
    ok_password = hmac.compare_digest(password.encode(), app_secret.encode())
    if not (ok_user and ok_password):
        raise ApiError(401, WRONG_CREDENTIALS, "wrong username or password")


def parse_request(body: bytes) -> dict[str, Any]:
    """The request object; `req` and `seq` present and integers."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, NOT_JSON, "request parameters are not in legal JSON format") from None
    if not isinstance(data, dict):
        raise ApiError(400, NOT_JSON, "request body must be a JSON object")
    for key in ("req", "seq"):
        if key not in data:
            raise ApiError(400, MISSING_PARAMETER, f"missing key request parameter: {key}")
        if isinstance(data[key], bool) or not isinstance(data[key], int):
            raise ApiError(400, BAD_PARAMETER, f"request parameter error: {key} must be an integer")
    return data


def broker_info(hub: Hub) -> dict[str, Any]:
    """The core's counters under NanoMQ's names; client_size counts sessions of every protocol."""
    stats = hub.stats
    return {"client_size": len(hub.sessions), "message_in": stats.messages_in,
            "message_out": stats.messages_delivered, "message_drop": stats.messages_dropped}


def topic_info(hub: Hub) -> list[dict[str, Any]]:
    """Every client of every protocol with its channels (an empty list when it has none); qos is always 0."""
    return [{"client_id": s.id, "subscriptions": [{"topic": ch, "qos": 0} for ch in s.channels]}
            for s in hub.sessions.values()]


def client_info(hub: Hub) -> list[dict[str, Any]]:
    """Every session; `protocol` as a number (PROTOCOL_NUMBERS) and `protocol_name` spelled out."""
    return [{"client_id": s.id, "username": s.user, "keepalive": s.keepalive,
             "protocol": PROTOCOL_NUMBERS.get(s.protocol, 0), "protocol_name": s.protocol,
             "connect_status": 0 if s.closed else 1, "message_receive": s.received}
            for s in hub.sessions.values()]


def answer(hub: Hub, request: dict[str, Any], restart: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """The response body of a valid request."""
    req = request["req"]
    if req == BROKER_INFO:
        data: Any = broker_info(hub)
    elif req == TOPIC_INFO:
        data = topic_info(hub)
    elif req == CLIENT_INFO:
        data = client_info(hub)
    elif req == RESTART:
        config = request.get("data")
        if config is not None and not isinstance(config, str):
            raise ApiError(400, BAD_PARAMETER, "request parameter error: data must be the TOML text of a config")
        data = restart(config)
    else:
        raise ApiError(400, BAD_PARAMETER, f"request parameter error: unknown req {req}")
    return {"code": OK, "seq": request["seq"], "rep": req, "data": data}
