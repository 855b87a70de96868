"""The signed command API of the original server (Centrifuge 0.8), without I/O.

`POST /api/<project_key>` with form fields `data` (JSON of one command or an array of at most 100)
and `sign` (hex HMAC-SHA256 keyed with the project secret over project key + `data`), or a JSON
body with the sign in `X-API-Sign`. The answer is a JSON array with one `{"method", "error",
"body"}` per command, in order, encoded as the original encodes it.

What the original does, observed on 0.8.4 (see tests/compat), and kept here: whole-request errors
are Tornado's HTML error pages (400, 404, 401 in that order: missing fields, unknown project, bad
sign, then JSON and limits); form values are read as Tornado reads them (query and body, last
value wins, control characters made spaces, surrounding whitespace stripped); a command's errors
are jsonschema's texts or the protocol's; publish to `""` is dropped (`body: false`, no error);
the API checks neither channel length nor `$`/`#`; presence and history of an unknown namespace
are empty. Where the original was broken, this does what it intended: `data` is signed as UTF-8
(the original hashed latin-1: 401 or 500 for non-ASCII), the JSON-body variant works (500 on
Python 3 there), and unsubscribing a user from every channel does so (500 there).
"""

from __future__ import annotations

import binascii
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from hub.core import ChannelRequired, ChannelTooLong, Hub, HubError, NamespaceNotFound, NotAvailable
from hub.core.channels import NAMESPACE_BOUNDARY, PRIVATE_PREFIX
from hub.core.options import NamespaceOptions, Project
from protocols.centrifuge import Errors, check, dumps, hmac_hex, loads, message_body
from protocols.centrifuge_schema import API, REQUEST, validate

HTML = "text/html; charset=UTF-8"
JSON = "application/json; charset=utf-8"
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x20)])  # the same characters: single bytes in UTF-8
_PERCENT_AS_EQUALS = bytes.maketrans(b"%", b"=")


class RequestError(Exception):
    """A whole-request error: the HTTP status (the body is Tornado's error page for it)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error_page(status: int) -> bytes:
    """Tornado's default error page, which the original answers with."""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"<html><title>{status}: {phrase}</title><body>{status}: {phrase}</body></html>".encode()


@dataclass
class SignedRequest:
    data: str
    sign: str


def _argument(value: bytes) -> str:
    """A form value as Tornado's get_argument gives it: UTF-8, control characters as spaces, stripped."""
    text = value.decode("utf-8")
    if len(value.translate(None, _CONTROL_BYTES)) == len(value):  # none (one C pass; the regex scan took 12 us/KB)
        return text.strip()
    return _CONTROL.sub(" ", text).strip()


def unquote_form(value: bytes) -> bytes:
    """Percent-decode one form value to the exact bytes that were encoded (`+` is a space); a `%` that
    does not start a two-digit hex escape stays as it is, as Tornado (urllib) leaves it."""
    value = value.replace(b"+", b" ")
    escapes = value.count(b"%")
    if not escapes:
        return value
    if b"=" in value or b"\r" in value or b"\n" in value:
        return urllib.parse.unquote_to_bytes(value)
    # `%XX` as quoted-printable `=XX`, decoded in one C pass; each valid escape shrinks by 2 bytes.
    decoded = binascii.a2b_qp(value.translate(_PERCENT_AS_EQUALS))  # translate: a quarter of replace's time here
    return decoded if len(value) - len(decoded) == 2 * escapes else urllib.parse.unquote_to_bytes(value)


def form_arguments(body: bytes, query: str = "") -> dict[str, bytes]:
    """Query-string then urlencoded-body arguments as name → raw value bytes, the last one winning, as
    Tornado's get_argument picks them (blank values kept)."""
    fields: dict[str, bytes] = {}
    for source in (query.encode("latin-1"), body):
        for pair in source.split(b"&"):
            if not pair:
                continue
            name, _, value = pair.partition(b"=")
            fields[unquote_form(name).decode("latin-1")] = unquote_form(value)
    return fields


def parse_request(body: bytes, content_type: str, query: str, headers: dict[str, str]) -> SignedRequest:
    """`data` and `sign` of a request, or RequestError(400) for the ones the original refuses first."""
    if not body:
        raise RequestError(400, "empty request")
    if content_type.startswith("application/json"):
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "malformed data") from None
        sign = headers.get("x-api-sign", "")
    else:
        # Tornado parses the body's arguments only for form content types.
        args = form_arguments(body if content_type.startswith("application/x-www-form-urlencoded") else b"", query)
        try:
            sign = _argument(args["sign"]) if "sign" in args else ""
            data = _argument(args["data"]) if "data" in args else ""
        except UnicodeDecodeError:
            raise RequestError(400, "invalid unicode in argument") from None
    if not sign:
        raise RequestError(400, "no data sign")
    if not data:
        raise RequestError(400, "no data")
    return SignedRequest(data, sign)


def verify(project: Project, request: SignedRequest) -> None:
    if not check(hmac_hex(project.secret, project.key, request.data), request.sign):
        raise RequestError(401, "unauthorized")


def parse_commands(data: str, max_commands: int) -> list[Any]:
    try:
        decoded = loads(data)
    except (ValueError, RecursionError):
        raise RequestError(400, "malformed data") from None
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        if len(decoded) > max_commands:
            raise RequestError(400, f"admin API message limit exceeded (received {len(decoded)} messages)")
        return decoded
    raise RequestError(400, "data not an array or object")


def _namespace(project: Project, channel: str) -> NamespaceOptions | None:
    bare = channel[len(PRIVATE_PREFIX):] if channel.startswith(PRIVATE_PREFIX) else channel
    name = bare.split(NAMESPACE_BOUNDARY, 1)[0] if NAMESPACE_BOUNDARY in bare else ""
    return project.namespaces.get(name) if name else project.options


_PUBLISHED = {"method": "publish", "error": None, "body": True}
_PUBLISHED_JSON = '{"method": "publish", "error": null, "body": true}'


def encode_replies(replies: list[dict[str, Any]]) -> bytes:
    """The reply array as the original encodes it; successful publishes (most of a batch) are ready-made."""
    return ("[" + ", ".join([_PUBLISHED_JSON if r is _PUBLISHED or r == _PUBLISHED else dumps(r) for r in replies]) + "]").encode()


async def run_commands(hub: Hub, project: Project, commands: list[Any]) -> list[dict[str, Any]]:
    """Run every command in order; one failing command does not stop the others.

    Consecutive well-formed publishes (to any channels) go to the core as one batch: the schemas cannot
    fail them, so they skip validation and the per-command await, and the subscribers of a channel
    published to several times get those publications in a single push; the replies are the same as
    one by one.
    """
    replies: list[dict[str, Any]] = []
    i, n = 0, len(commands)
    while i < n:
        items: list[tuple[str, Any]] = []
        while i < n:  # a well-formed publish (one that passes the schemas) joins the batch
            cmd = commands[i]
            if type(cmd) is not dict or cmd.get("method") != "publish":
                break
            params = cmd.get("params")
            if type(params) is not dict:
                break
            channel = params.get("channel")
            if type(channel) is not str or not channel:
                break
            items.append((channel, params.get("data")))
            i += 1
        if items:
            replies.extend(await _publish_batch(hub, project, items))
        else:
            replies.append(await run_command(hub, project, commands[i]))
            i += 1
    return replies


_NO_NAMESPACE = {"method": "publish", "error": Errors.NAMESPACE_NOT_FOUND, "body": False}
_PUBLISH, _ACCEPT, _REFUSE = 1, 2, 3  # what a publish to a channel does: publish; accept quietly; namespace not found


def _fate(hub: Hub, project: Project, channel: str) -> int:
    """What `_publish` does with a publish to `channel`, from the hub's remembered channel options."""
    try:
        hub.options_of(project.key, channel)
    except NamespaceNotFound:
        return _REFUSE
    except ChannelTooLong:
        # Longer names are accepted, as the original accepts them (no client can subscribe to one), unless
        # their namespace is unknown: the original looks at that first.
        return _REFUSE if _namespace(project, channel) is None else _ACCEPT
    return _PUBLISH


async def _publish_batch(hub: Hub, project: Project, items: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Well-formed publish commands (`run_commands`): what `_publish` does for each, the hub's work in one call."""
    replies: list[dict[str, Any]] = []
    accepted: list[tuple[str, Any]] = []
    known: dict[str, Any] = {}  # channel → its options (published to), or _ACCEPT / _REFUSE
    options_of, key = hub.options_of, project.key
    for item in items:
        channel = item[0]
        fate = known.get(channel)
        if fate is None:
            try:  # `_fate`'s first step, inlined; the options found go with the batch to the hub
                fate = options_of(key, channel)
            except HubError:
                fate = _fate(hub, project, channel)
                if fate == _PUBLISH:  # options_of is deterministic: not seen, but kept right if it were
                    fate = options_of(key, channel)
            known[channel] = fate
        if type(fate) is int:
            replies.append(_PUBLISHED if fate == _ACCEPT else _NO_NAMESPACE)
        else:
            replies.append(_PUBLISHED)
            accepted.append(item)
    if accepted:
        await hub.publish_batch(key, accepted, known)
    return replies


async def run_command(hub: Hub, project: Project, cmd: Any) -> dict[str, Any]:
    error = validate(cmd, REQUEST)
    if error is not None:
        return {"method": None, "error": error, "body": None}
    method, params = cmd["method"], cmd["params"]
    schema = API.get(method)
    if schema is None:
        return {"method": method, "error": Errors.METHOD_NOT_FOUND, "body": None}
    error = validate(params, schema)
    if error is not None:
        return {"method": method, "error": error, "body": None}
    try:
        body, error = await COMMANDS[method](hub, project, params)
    except HubError as exc:
        body, error = None, exc.message
    return {"method": method, "error": error, "body": body}


async def _publish(hub: Hub, project: Project, params: dict[str, Any]) -> tuple[Any, str | None]:
    channel = params["channel"]
    if not channel:
        return False, None  # the original drops a message without a channel, quietly
    if _namespace(project, channel) is None:
        return False, Errors.NAMESPACE_NOT_FOUND
    if len(channel) <= project.max_channel_length:
        # Longer names are accepted, as the original accepts them; no client can subscribe to one.
        await hub.publish(project.key, channel, params.get("data"))
    return True, None


async def _unsubscribe(hub: Hub, project: Project, params: dict[str, Any]) -> tuple[Any, str | None]:
    await hub.unsubscribe(project.key, params["user"], params.get("channel") or None)
    return True, None


async def _disconnect(hub: Hub, project: Project, params: dict[str, Any]) -> tuple[Any, str | None]:
    await hub.disconnect(project.key, params["user"], params.get("reason") or "default", reconnect=False)
    return True, None


async def _presence(hub: Hub, project: Project, params: dict[str, Any]) -> tuple[Any, str | None]:
    try:
        return await hub.presence(project.key, params["channel"], ignore_option=True), None
    except (ChannelRequired, ChannelTooLong, NamespaceNotFound):
        return {}, None


async def _history(hub: Hub, project: Project, params: dict[str, Any]) -> tuple[Any, str | None]:
    try:
        result = await hub.history(project.key, params["channel"], newest_first=True)
    except (ChannelRequired, ChannelTooLong, NamespaceNotFound, NotAvailable):
        return [], None
    return [message_body(p) for p in result.publications], None


COMMANDS = {
    "publish": _publish,
    "unsubscribe": _unsubscribe,
    "disconnect": _disconnect,
    "presence": _presence,
    "history": _history,
}


def has_signed_fields(body: bytes) -> bool:
    """Whether an urlencoded body has a `data` or `sign` field (the signed API's form)."""
    return any(pair.partition(b"=")[0] in (b"data", b"sign") for pair in body.split(b"&"))
