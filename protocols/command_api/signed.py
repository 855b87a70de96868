"""The signed command API of the original server, without I/O.

`POST /api/<project_key>` with form fields `data` (JSON of one command or an array) and `sign`
(hex HMAC-SHA256 keyed with the project secret over project key + the exact `data` bytes), or a
JSON body with the sign in `X-API-Sign`. Answer: one `{"method", "error", "body"}` per command.
"""

from __future__ import annotations

import binascii
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from hub.core import Hub, HubError
from protocols.centrifuge import check, hmac_hex, message_body


class RequestError(Exception):
    """A whole-request error: HTTP `status` and a short message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class CommandError(Exception):
    """An error answered in the command's own reply entry."""


@dataclass
class SignedRequest:
    data: bytes
    sign: str


def parse_body(body: bytes, content_type: str, sign_header: str | None) -> SignedRequest:
    """Find `data` and `sign` in a form body, or a JSON body with the `X-API-Sign` header."""
    if not body:
        raise RequestError(400, "empty request body")
    if sign_header is not None:
        return SignedRequest(body, sign_header)
    if content_type not in ("", "application/x-www-form-urlencoded"):
        raise RequestError(400, "expected a form with data and sign, or a JSON body with X-API-Sign")
    fields = form_fields(body)
    if "sign" not in fields:
        raise RequestError(400, "sign required")
    if "data" not in fields:
        raise RequestError(400, "data required")
    try:
        sign = fields["sign"].decode("ascii")
    except UnicodeDecodeError:
        raise RequestError(400, "malformed sign") from None
    return SignedRequest(fields["data"], sign)


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def unquote_form(value: bytes) -> bytes:
    """Percent-decode one form value to the exact bytes that were encoded (`+` is a space).

    ValueError if a `%` does not start a two-digit hex escape.
    """
    value = value.replace(b"+", b" ")
    escapes = value.count(b"%")
    if not escapes:
        return value
    if b"=" in value or b"\r" in value or b"\n" in value:
        # Rare (encoders escape these): the standard decoder, after checking every escape.
        if _BAD_ESCAPE.search(value):
            raise ValueError("bad percent escape")
        return urllib.parse.unquote_to_bytes(value)
    # `%XX` as quoted-printable `=XX`, decoded in one C pass. With no `=`, CR or LF in the input,
    # a2b_qp turns each valid escape (3 bytes) into 1 byte and leaves every other `=` shorter by
    # less than 2, so the length tells whether all escapes were valid.
    decoded = binascii.a2b_qp(value.replace(b"%", b"="))
    if len(value) - len(decoded) != 2 * escapes:
        raise ValueError("bad percent escape")
    return decoded


def form_fields(body: bytes) -> dict[str, bytes]:
    """An urlencoded body as name → raw value bytes (last one wins); RequestError if it is not a form."""
    fields = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        name, eq, value = pair.partition(b"=")
        try:
            if not eq:
                raise ValueError("no =")
            fields[unquote_form(name).decode("utf-8")] = unquote_form(value)
        except (ValueError, UnicodeDecodeError):
            raise RequestError(400, "malformed form body") from None
    return fields


def has_signed_fields(body: bytes) -> bool:
    """Whether an urlencoded body has a `data` or `sign` field (the signed API's form)."""
    return any(pair.partition(b"=")[0] in (b"data", b"sign") for pair in body.split(b"&"))


def verify(secret: str, project_key: str, request: SignedRequest) -> None:
    if not check(hmac_hex(secret, project_key, request.data), request.sign):
        raise RequestError(401, "invalid sign")


def parse_commands(data: bytes, max_commands: int) -> list[Any]:
    try:
        decoded = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise RequestError(400, "data is not valid JSON") from None
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        if len(decoded) > max_commands:
            raise RequestError(400, f"too many commands: at most {max_commands}")
        return decoded
    raise RequestError(400, "data must be a command object or an array of them")


def _param(params: dict[str, Any], name: str, kind: type = str, required: bool = True) -> Any:
    value = params.get(name)
    if value is None:
        if required:
            raise CommandError(f"{name} required")
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CommandError(f"invalid {name}: expected {'string' if kind is str else kind.__name__}")
    return value


async def run_commands(hub: Hub, project: str, commands: list[Any]) -> list[dict[str, Any]]:
    """Run every command in order; one failing command does not stop the others.

    Consecutive valid publishes to one channel go to the core as one batch, so each subscriber
    gets them in a single push; the replies are the same as one by one.
    """
    replies: list[dict[str, Any]] = []
    i, n = 0, len(commands)
    while i < n:
        channel = _publish_channel(commands[i])
        j = i + 1
        if channel is not None:
            while j < n and _publish_channel(commands[j]) == channel:
                j += 1
        if j - i > 1:
            replies.extend(await _publish_run(hub, project, channel, commands[i:j]))
        else:
            replies.append(await run_command(hub, project, commands[i]))
        i = j
    return replies


_PUBLISHED = {"method": "publish", "error": None, "body": True}
_PUBLISHED_JSON = b'{"method":"publish","error":null,"body":true}'
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def encode_replies(replies: list[dict[str, Any]]) -> bytes:
    """The reply array as compact UTF-8 JSON; successful publishes (most of a batch) use a ready-made encoding."""
    return b"[" + b",".join([_PUBLISHED_JSON if r == _PUBLISHED else _dumps(r).encode() for r in replies]) + b"]"


def _publish_channel(cmd: Any) -> str | None:
    """The channel of a well-formed publish command, else None."""
    if not isinstance(cmd, dict) or cmd.get("method") != "publish":
        return None
    params = cmd.get("params")
    if not isinstance(params, dict) or "data" not in params or not isinstance(params.get("client") or "", str):
        return None
    channel = params.get("channel")
    return channel if isinstance(channel, str) and channel else None


async def _publish_run(hub: Hub, project: str, channel: str, run: list[dict[str, Any]]) -> list[dict[str, Any]]:
    error = None
    try:
        await hub.publish_many(project, channel, [(c["params"]["data"], None, c["params"].get("client") or None) for c in run])
    except HubError as exc:
        error = exc.message
    return [{"method": "publish", "error": error, "body": None if error else True} for _ in run]


async def run_command(hub: Hub, project: str, cmd: Any) -> dict[str, Any]:
    if not isinstance(cmd, dict):
        return {"method": None, "error": "invalid command: expected an object", "body": None}
    method = cmd.get("method")
    reply: dict[str, Any] = {"method": method, "error": None, "body": None}
    params = cmd.get("params")
    try:
        if not isinstance(method, str):
            raise CommandError("method required")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise CommandError("invalid params: expected an object")
        handler = COMMANDS.get(method)
        if handler is None:
            raise CommandError("method not found")
        reply["body"] = await handler(hub, project, params)
    except CommandError as exc:
        reply["error"] = str(exc)
    except HubError as exc:
        reply["error"] = exc.message
    return reply


async def _publish(hub: Hub, project: str, params: dict[str, Any]) -> bool:
    channel = _param(params, "channel")
    if "data" not in params:
        raise CommandError("data required")
    client = _param(params, "client", required=False)
    await hub.publish(project, channel, params["data"], None, client or None)
    return True


async def _unsubscribe(hub: Hub, project: str, params: dict[str, Any]) -> bool:
    user = _param(params, "user")
    channel = _param(params, "channel", required=False)
    if channel:
        hub.channel(project, channel)
    await hub.unsubscribe(project, user, channel or None)
    return True


async def _disconnect(hub: Hub, project: str, params: dict[str, Any]) -> bool:
    user = _param(params, "user")
    reason = _param(params, "reason", required=False) or "disconnect"
    await hub.disconnect(project, user, reason, reconnect=False)
    return True


async def _presence(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    return await hub.presence(project, _param(params, "channel"))


async def _history(hub: Hub, project: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = await hub.history(project, _param(params, "channel"), newest_first=True)
    return [message_body(p) for p in result.publications]


async def _channels(hub: Hub, project: str, params: dict[str, Any]) -> list[str]:
    return sorted(await hub.channels(project))


COMMANDS = {
    "publish": _publish,
    "unsubscribe": _unsubscribe,
    "disconnect": _disconnect,
    "presence": _presence,
    "history": _history,
    "channels": _channels,
}
