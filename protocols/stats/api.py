"""The NanoMQ-style HTTP API v1 without I/O: Basic auth, `{"req", "seq"}` requests, result codes.

Shaped after NanoMQ's `rest_api.c`: every answer carries `code` and `seq` (the request's own, or 0
when it had none or was not read), and `rep` once the request named a positive `req`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.core import Hub

OK, RPC_ERROR, UNKNOWN, WRONG_CREDENTIALS, EMPTY_CREDENTIALS = 0, 101, 102, 103, 104
MISSING_PARAMETER, BAD_PARAMETER, NOT_JSON = 107, 108, 109

BROKER_INFO, TOPIC_INFO, CLIENT_INFO, CTRL = 2, 4, 5, 10
RESTART = CTRL  # the name before req 10 took NanoMQ's actions
CTRL_ACTIONS = ("stop", "restart")
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # the C int NanoMQ casts `req` to


class ApiError(Exception):
    """An error answer: HTTP `status`, a result `code`, and the request's `seq`/`req` when they were read.

    The body is NanoMQ's `{"code", "seq"[, "rep"]}`; `message` says what went wrong in the `X-Error`
    header and the log, not in the body, so the bytes match NanoMQ's."""

    def __init__(self, status: int, code: int, message: str, seq: Any = 0, req: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.seq, self.req = status, code, message, seq, req

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "seq": self.seq}
        if _positive_int(self.req):
            out["rep"] = self.req
        return out


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def basic_user(header: str | None) -> str | None:
    """The user name of HTTP Basic credentials (what the login limiter counts failures for), or None."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode((value.split() or [""])[0], validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def check_auth(header: str | None, app_id: str, app_secret: str) -> None:
    """HTTP Basic with AppID/AppSecret, compared in constant time."""
    if not header:
        raise ApiError(401, EMPTY_CREDENTIALS, "empty username or password")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise ApiError(401, EMPTY_CREDENTIALS, "basic authentication required")
    token = (value.split() or [""])[0]  # NanoMQ's sscanf(token, "Basic %s"): the first word after the scheme
    try:
        user, sep, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, WRONG_CREDENTIALS, "wrong username or password") from None
    if not sep or not user or not password:
        raise ApiError(401, EMPTY_CREDENTIALS, "empty username or password")
    ok_user = hmac.compare_digest(user.encode(), app_id.encode())
    ok_password = hmac.compare_digest(password.encode(), app_secret.encode())
    if not (ok_user and ok_password):
        raise ApiError(401, WRONG_CREDENTIALS, "wrong username or password")


def request_code(value: Any) -> int | None:
    """`req` as NanoMQ reads it: `(int) cJSON_GetNumberValue(req)`, a JSON number truncated to an integer.

    None (an unknown request, answered without `rep`) when it is not a number or is out of the C int's range,
    where the cast gives INT_MIN on the platforms NanoMQ runs on."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    code = int(value)
    return code if INT_MIN <= code <= INT_MAX else None


class _Object(dict):  # type: ignore[type-arg]
    """A JSON object that keeps its pairs in order, so keys can be looked up as cJSON does."""

    pairs: list[tuple[str, Any]]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    obj.pairs = pairs
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)


def item(obj: dict[str, Any], name: str) -> tuple[bool, Any]:
    """`cJSON_GetObjectItem`: the first key equal to `name` ignoring ASCII case; (found, value)."""
    for key, value in getattr(obj, "pairs", obj.items()):
        if key.isascii() and key.lower() == name:
            return True, value
    return False, None


def load(body: bytes) -> Any:
    """The body as NanoMQ 0.6's `cJSON_Parse` reads it: a C string (up to the first NUL byte), a UTF-8 BOM and
    leading whitespace skipped, one JSON value, anything after that value ignored. ValueError if there is none."""
    raw = body.split(b"\0", 1)[0]
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", "replace").lstrip("".join(map(chr, range(33))))
    try:
        return _DECODER.raw_decode(text)[0]
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def sequence(value: Any) -> Any:
    """`seq` as NanoMQ answers it, `(uint64_t) cJSON_GetNumberValue(seq)`: a number in the unsigned 64-bit range
    is truncated to an integer (1.5 and 1.0 are answered 1). Other values, where NanoMQ's cast gives a garbage
    number (a string, a negative number, null, an object), are echoed as given."""
    if isinstance(value, float) and math.isfinite(value) and -1 < value < 2**64:
        return int(value)
    return value


def parse_request(body: bytes) -> dict[str, Any]:
    """The request object with `req` an integer and `seq` defaulted to 0; ApiError otherwise.

    As NanoMQ: keys are found as `cJSON_GetObjectItem` finds them (case-insensitive, the first of duplicates);
    `seq` is optional and any JSON value (a string too) is echoed back unchanged; a `req` that is not a number,
    or names no request, is 404 with code 102."""
    try:
        data = load(body)
    except ValueError:
        raise ApiError(400, NOT_JSON, "request parameters are not in legal JSON format") from None
    if not isinstance(data, dict):
        raise ApiError(400, NOT_JSON, "request body must be a JSON object")
    names = ("req", "seq", "action", "data")
    request = {key: value for key, value in data.items() if key.lower() not in names}
    for name in names:
        found, value = item(data, name)
        if found:
            request[name] = value
    seq = request["seq"] = sequence(request.get("seq", 0))
    if "req" not in request:
        raise ApiError(400, MISSING_PARAMETER, "missing key request parameter: req", seq)
    req = request_code(request["req"])
    if req is None:
        raise ApiError(404, UNKNOWN, f"unknown req {json.dumps(request['req'])}", seq)
    request["req"] = req
    return request


@dataclass(frozen=True, slots=True)
class ClientView:
    """One session as the broker APIs (v1 req 4/5, v4 /clients and /subscriptions) show it, built in one place.

    `protocol_version` is the MQTT protocol level (3, 4 or 5; 0 for clients that do not speak MQTT); MQTT
    sessions show their client id, user name, topic filters with the granted QoS and connection state (an
    offline persistent session is not connected); other sessions their session id, user and channels at QoS 0."""

    client_id: str
    username: str
    keepalive: int
    protocol_version: int
    protocol_name: str
    connected: bool
    received: int
    subscriptions: list[tuple[str, int]]
    clean_start: bool
    will: tuple[str, str] | None


def client_view(s: Any) -> ClientView:
    meta = s.meta
    mqtt = meta.get("subscriptions")  # MQTT sessions: their topic filters with the granted QoS
    subs = list(mqtt.items()) if mqtt is not None else [(ch, 0) for ch in s.channels]
    return ClientView(meta.get("client_id", s.id), meta.get("username", s.user), s.keepalive,
                      meta.get("protocol_version", 0), s.protocol, bool(meta.get("connected", not s.closed)),
                      s.received, subs, meta.get("clean_start", True), meta.get("will"))


def client_views(hub: Hub) -> list[ClientView]:
    """Every session of every protocol, in the order they connected."""
    return [client_view(s) for s in hub.sessions.values()]


def broker_info(hub: Hub) -> dict[str, Any]:
    """The core's counters under NanoMQ's names. `client_size` is NanoMQ's "Subscribe client size": the clients
    (of every protocol) with at least one subscription, the entries of its pipe-to-topics table."""
    stats = hub.stats
    return {"client_size": sum(1 for c in client_views(hub) if c.subscriptions), "message_in": stats.messages_in,
            "message_out": stats.messages_delivered, "message_drop": stats.messages_dropped}


def topic_info(hub: Hub) -> list[dict[str, Any]]:
    """Every client of every protocol that has subscriptions, with them (NanoMQ lists the entries of its
    pipe-to-topics table, so a client without subscriptions is not there); qos 0 but for MQTT."""
    return [{"client_id": c.client_id, "subscriptions": [{"topic": topic, "qos": qos} for topic, qos in c.subscriptions]}
            for c in client_views(hub) if c.subscriptions]


def client_info(hub: Hub) -> list[dict[str, Any]]:
    """Every session. `protocol` keeps NanoMQ's meaning, the MQTT protocol level (3, 4 or 5; 0 for clients that
    do not speak MQTT); `protocol_name` names the hub protocol. MQTT clients show their client id and user name;
    `keepalive` is the session's ping interval in seconds; `connect_status` 0 is an offline persistent MQTT session."""
    return [{"client_id": c.client_id, "username": c.username, "keepalive": c.keepalive, "protocol": c.protocol_version,
             "protocol_name": c.protocol_name, "connect_status": int(c.connected), "message_receive": c.received}
            for c in client_views(hub)]


def answer(hub: Hub, request: dict[str, Any], restart: Callable[[Any], dict[str, Any]],
           control: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The response body of a parsed request. `restart(config)` reloads (req 10 without `action`);
    `control(action)` stops or restarts the hub (req 10 with `action`), after the answer is sent."""
    req, seq = request["req"], request["seq"]
    if req == BROKER_INFO:
        data: Any = broker_info(hub)
    elif req == TOPIC_INFO:
        data = topic_info(hub)
    elif req == CLIENT_INFO:
        data = client_info(hub)
    elif req == CTRL:
        action = request.get("action")
        if action is not None:
            if not isinstance(action, str) or action.lower() not in CTRL_ACTIONS:
                raise ApiError(400, BAD_PARAMETER, 'request parameter error: action must be "stop" or "restart"', seq, req)
            if control is None:
                raise ApiError(400, BAD_PARAMETER, "request parameter error: this hub cannot be stopped from here", seq, req)
            control(action.lower())
            return {"code": OK, "seq": seq, "rep": req}
        config = request.get("data")
        if config is not None and not isinstance(config, str):
            raise ApiError(400, BAD_PARAMETER, "request parameter error: data must be the TOML text of a config", seq, req)
        try:
            data = restart(config)
        except ApiError as exc:
            exc.seq, exc.req = seq, req
            raise
    else:
        raise ApiError(404, UNKNOWN, f"unknown req {req}", seq, req)
    return {"code": OK, "seq": seq, "rep": req, "data": data}
