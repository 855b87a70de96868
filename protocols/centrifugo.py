"""Today's Centrifugo: the error and disconnect codes, shared by the SDK protocol (JSON, msgpack, Protobuf)
and the server API, and the publication / client-info shapes both send. Codes and messages are
Centrifugo's own (centrifuge `errors.go`, `disconnect.go`)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from hub.core import Hub, HubError, Publication

# -- errors (reply `error: {code, message}`) ----------------------------------------------------
INTERNAL, UNAUTHORIZED, UNKNOWN_CHANNEL, PERMISSION_DENIED, METHOD_NOT_FOUND = 100, 101, 102, 103, 104
ALREADY_SUBSCRIBED, LIMIT_EXCEEDED, BAD_REQUEST, NOT_AVAILABLE, TOKEN_EXPIRED = 105, 106, 107, 108, 109
EXPIRED, TOO_MANY_REQUESTS, UNRECOVERABLE_POSITION = 110, 111, 112

ERRORS = {
    INTERNAL: "internal server error",
    UNAUTHORIZED: "unauthorized",
    UNKNOWN_CHANNEL: "unknown channel",
    PERMISSION_DENIED: "permission denied",
    METHOD_NOT_FOUND: "method not found",
    ALREADY_SUBSCRIBED: "already subscribed",
    LIMIT_EXCEEDED: "limit exceeded",
    BAD_REQUEST: "bad request",
    NOT_AVAILABLE: "not available",
    TOKEN_EXPIRED: "token expired",
    EXPIRED: "expired",
    TOO_MANY_REQUESTS: "too many requests",
    UNRECOVERABLE_POSITION: "unrecoverable position",
}

# The core's refusals (HubError.message) as Centrifugo error codes.
CORE_ERRORS = {
    "namespace not found": UNKNOWN_CHANNEL,
    "channel required": BAD_REQUEST,
    "maximum channel length exceeded": LIMIT_EXCEEDED,
    "permission denied": PERMISSION_DENIED,
    "not available": NOT_AVAILABLE,
    "project not found": INTERNAL,
    "internal server error": INTERNAL,  # the engine (Redis) is unreachable
}


def wire_text(code: int, text: str, table: dict[int, str] = ERRORS) -> str:
    """What Centrifugo sends for `code`: its errors and disconnect reasons carry no detail, so our own
    "<its text>: <detail>" goes out as its text (the detail stays in the exception, for the log); any
    other text (a backend proxy's own error, a custom disconnect) goes out as it is."""
    canonical = table.get(code)
    if canonical is not None and text.startswith(canonical + ": "):
        return canonical
    return text


def core_error_code(exc: HubError) -> int:
    return CORE_ERRORS.get(exc.message, BAD_REQUEST)


# -- disconnects (close frames and disconnect pushes) -------------------------------------------
# 3000-3499 and 4000-4499: the SDK reconnects; 3500-3999 and 4500-4999: it does not.
CONNECTION_CLOSED, SHUTDOWN, SERVER_ERROR, CONNECTION_EXPIRED, SUBSCRIPTION_EXPIRED = 3000, 3001, 3004, 3005, 3006
SLOW, WRITE_ERROR, INSUFFICIENT_STATE, FORCE_RECONNECT, NO_PONG, DISCONNECT_TOO_MANY_REQUESTS = 3008, 3009, 3010, 3011, 3012, 3013
INVALID_TOKEN, BAD_REQUEST_CLOSE, STALE, FORCE_DISCONNECT, CONNECTION_LIMIT = 3500, 3501, 3502, 3503, 3504
CHANNEL_LIMIT, INAPPROPRIATE_PROTOCOL, DISCONNECT_PERMISSION_DENIED, DISCONNECT_NOT_AVAILABLE = 3505, 3506, 3507, 3508
TOO_MANY_ERRORS = 3509

DISCONNECTS = {
    CONNECTION_CLOSED: "connection closed",
    SHUTDOWN: "shutdown",
    SERVER_ERROR: "internal server error",
    CONNECTION_EXPIRED: "connection expired",
    SUBSCRIPTION_EXPIRED: "subscription expired",
    SLOW: "slow",
    WRITE_ERROR: "write error",
    INSUFFICIENT_STATE: "insufficient state",
    FORCE_RECONNECT: "force reconnect",
    NO_PONG: "no pong",
    DISCONNECT_TOO_MANY_REQUESTS: "too many requests",
    INVALID_TOKEN: "invalid token",
    BAD_REQUEST_CLOSE: "bad request",
    STALE: "stale",
    FORCE_DISCONNECT: "force disconnect",
    CONNECTION_LIMIT: "connection limit",
    CHANNEL_LIMIT: "channel limit",
    INAPPROPRIATE_PROTOCOL: "inappropriate protocol",
    DISCONNECT_PERMISSION_DENIED: "permission denied",
    DISCONNECT_NOT_AVAILABLE: "not available",
    TOO_MANY_ERRORS: "too many errors",
}
# Close reasons the core uses → their Centrifugo code.
REASON_CODES = {reason: code for code, reason in DISCONNECTS.items() if code < 3500}

# Unsubscribe push codes: < 2500 final, >= 2500 the SDK subscribes again.
UNSUBSCRIBE_CLIENT, UNSUBSCRIBE_DISCONNECT, UNSUBSCRIBE_SERVER = 0, 1, 2000
UNSUBSCRIBE_INSUFFICIENT, UNSUBSCRIBE_EXPIRED = 2500, 2501

# A close reason of the form "<code>:<reason>" carries an exact Centrifugo code (the server API's
# `disconnect` with a custom code travels through the core's protocol-neutral close reason this way).
CODE_SEPARATOR = ":"


def coded_reason(code: int, reason: str) -> str:
    return f"{code}{CODE_SEPARATOR}{reason}"


def reconnects(code: int) -> bool:
    return 3000 <= code < 3500 or 4000 <= code < 4500


def disconnect_args(reason: str | None, reconnect: bool) -> tuple[int, str]:
    """Close code and reason for a core close reason (shutdown, slow, connection expired, "4001:custom", ...)."""
    reason = reason or ""
    head, sep, rest = reason.partition(CODE_SEPARATOR)
    if sep and head.isdigit() and 3000 <= int(head) <= 4999:
        return int(head), rest
    code = REASON_CODES.get(reason)
    if code is not None and reconnect:
        return code, reason
    if reconnect:
        return FORCE_RECONNECT, reason if reason not in ("", "disconnect") else "force reconnect"
    return FORCE_DISCONNECT, reason if reason not in ("", "disconnect") else "force disconnect"


# -- shapes ------------------------------------------------------------------------------------
BASE64_KEY = "$base64"


def client_info(record: Any) -> dict[str, Any] | None:
    """A core presence record (user, client, default_info, channel_info) as the protocol's ClientInfo."""
    if not isinstance(record, dict) or not ("client" in record or "user" in record):
        return None
    out: dict[str, Any] = {"client": record.get("client") or "", "user": record.get("user") or ""}
    conn = record.get("default_info", record.get("conn_info"))
    chan = record.get("channel_info", record.get("chan_info"))
    if conn is not None:
        out["conn_info"] = conn
    if chan is not None:
        out["chan_info"] = chan
    return out


def publication_body(pub: Publication, binary: bool = False) -> dict[str, Any]:
    """A publication as pushes, recovery and history carry it (`binary`: for Protobuf, the exact bytes published)."""
    keyless = pub.removed or (pub.key is not None and pub.data is None and pub.raw is None)  # a map presence entry
    body: dict[str, Any] = {} if keyless else {"data": pub.raw if binary and pub.raw is not None else pub.data}
    if pub.key is not None:
        body["key"] = pub.key
        if pub.removed:
            body["removed"] = True
    info = client_info(pub.info)
    if info is not None:
        body["info"] = info
    if pub.offset:
        body["offset"] = pub.offset
    if pub.tags:
        body["tags"] = pub.tags
    return body


def value_of(raw: bytes) -> Any:
    """Payload bytes as a JSON value for clients that cannot take bytes: the JSON they hold, else `{"$base64": ...}`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return {BASE64_KEY: base64.b64encode(raw).decode("ascii")}


def data_from_b64(text: str) -> tuple[Any, bytes]:
    """`b64data`: (the JSON value for JSON/msgpack clients, the exact bytes for Protobuf clients)."""
    raw = base64.b64decode(text, validate=True)  # binascii.Error (a ValueError) if not base64
    return value_of(raw), raw



def _offset(value: Any, error: Callable[..., Exception]) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.isdigit():  # uint64 may come as a string (protobuf JSON)
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise error(BAD_REQUEST, "bad request: invalid since.offset")
    return value


async def history_reply(hub: Hub, project: str, channel: str, limit: int, since: Any, reverse: bool,
                        error: Callable[..., Exception], binary: bool = False) -> dict[str, Any]:
    """A history result as Centrifugo gives it, read from the core by position (shared with the server API).

    `limit` 0 without `since`: only the stream position. `since` with another epoch: 112 (an empty
    epoch matches any); `reverse` with `since`: the publications before `since.offset`, newest first.
    """
    offset = None
    if since is not None:
        if not isinstance(since, dict):
            raise error(BAD_REQUEST, "bad request: invalid since")
        offset = _offset(since.get("offset"), error)
        epoch = since.get("epoch") or ""
        if not isinstance(epoch, str):
            raise error(BAD_REQUEST, "bad request: invalid since")
        if reverse and offset == 0:
            raise error(BAD_REQUEST)
    if since is None and limit == 0:
        result = await hub.history(project, channel, limit=0)
    elif reverse:
        result = await hub.history(project, channel, limit=limit or None, before=offset, newest_first=True)
    else:
        result = await hub.history(project, channel, limit=limit or None, since=offset)
    if since is not None and epoch and epoch != result.epoch:
        raise error(UNRECOVERABLE_POSITION)
    out: dict[str, Any] = {"offset": result.offset, "epoch": result.epoch}
    if result.publications:
        out["publications"] = [publication_body(p, binary) for p in result.publications]
    return out
