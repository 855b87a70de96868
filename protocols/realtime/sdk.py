"""The current Centrifugo bidirectional client protocol (what today's SDKs speak), without I/O.

Commands are objects `{"id": N, "<method>": {...}}`; replies carry the same `id` and either
`<method>: result` or `error: {code, message}`; pushes are `{"push": {"channel": ..., "pub": ...}}`;
an empty object `{}` is the server's ping and the client's pong. Several commands or replies may
share one websocket message: newline-delimited JSON, or (the `centrifuge-msgpack` subprotocol)
concatenated msgpack objects in a binary message.

`SdkClient.handle(message)` runs every command of one message and queues the replies in the
connection's outbox; pushes caused by a command go into the same outbox through the core, so
they are queued before that command's reply. It returns a `Batch`: the replies (for tests), RPC
calls still to await, and maybe a close.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from hub.actions import ActionError
from hub.core import Hub, HubError, Publication, Session, Unrecoverable
from hub.core.outbox import Outbox
from hub.net.limits import DISCONNECT as LIMIT_DISCONNECT
from hub.net.limits import OK as LIMIT_OK
from hub.net.limits import CommandLimiter
from hub.net.wsframe import TEXT, binary_frame, encode_frame
from hub.utf8 import JSON_SURROGATES, compact_json
from hub.version import __version__
from protocols import centrifugo as C
from protocols.centrifuge import fast_loads

from . import fossil, sdk_protobuf, tagsfilter
from .mapsub import MapFlow

if TYPE_CHECKING:
    from .sharedpoll import SharedPoll
from .tokens import (
    NO_KEYS,
    PublicKeys,
    TokenExpired,
    TokenInvalid,
    TokenMismatch,
    UnknownKey,
    check_connect_token,
    check_subscribe_token,
)

log = logging.getLogger("hub.realtime.sdk")

PROTOCOL = "centrifugo"
MSGPACK_SUBPROTOCOL = "centrifuge-msgpack"
MAX_COMMANDS = 1000
COMMANDS = ("connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats", "history",
            "rpc", "refresh", "sub_refresh", "send")
PUSHING = ("connect", "subscribe", "unsubscribe", "publish")
# Unsubscribe push code: the client resubscribes at once (codes 2500-2999), with `recover`.
INSUFFICIENT_STATE = C.UNSUBSCRIBE_INSUFFICIENT
# Shared poll (sharedpoll.py): the subscribe `type`, and sub_refresh's `type` to track and untrack keys.
TYPE_SHARED_POLL, TRACK, UNTRACK = 4, 1, 2
# Subscribe `flag` bit: answer 112 instead of `recovered: false` when recovery is impossible.
FLAG_REJECT_UNRECOVERED = 2

# Centrifugo's `client.history_max_publication_limit`.
HISTORY_MAX_LIMIT = 300
EXPIRED_ERROR = C.EXPIRED

# Codes by name for the tests and the server glue; the table itself is protocols.centrifugo.
INTERNAL, UNAUTHORIZED, UNKNOWN_CHANNEL, PERMISSION_DENIED = C.INTERNAL, C.UNAUTHORIZED, C.UNKNOWN_CHANNEL, C.PERMISSION_DENIED
METHOD_NOT_FOUND, ALREADY_SUBSCRIBED, LIMIT_EXCEEDED = C.METHOD_NOT_FOUND, C.ALREADY_SUBSCRIBED, C.LIMIT_EXCEEDED
BAD_REQUEST, NOT_AVAILABLE, TOKEN_EXPIRED = C.BAD_REQUEST, C.NOT_AVAILABLE, C.TOKEN_EXPIRED
UNRECOVERABLE_POSITION = C.UNRECOVERABLE_POSITION
FORCE_RECONNECT, NO_PONG, INVALID_TOKEN, BAD_REQUEST_CLOSE = C.FORCE_RECONNECT, C.NO_PONG, C.INVALID_TOKEN, C.BAD_REQUEST_CLOSE
STALE, FORCE_DISCONNECT = C.STALE, C.FORCE_DISCONNECT
UNSUBSCRIBE_SERVER, UNSUBSCRIBE_EXPIRED = C.UNSUBSCRIBE_SERVER, C.UNSUBSCRIBE_EXPIRED
disconnect_args = C.disconnect_args
client_info = C.client_info
publication_body = C.publication_body


class ReplyError(Exception):
    """An error answered in the command's reply (`message` defaults to Centrifugo's for the code)."""

    def __init__(self, code: int, message: str = "", temporary: bool = False) -> None:
        message = message or C.ERRORS.get(code, "")
        super().__init__(message)  # with our detail, for the log
        self.code, self.message, self.temporary = code, C.wire_text(code, message), temporary

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.temporary:
            out["temporary"] = True
        return out


class Disconnect(Exception):
    """The connection must be closed with `code` and `reason` (after what is already queued)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)  # with our detail, for the log
        self.code, self.reason = code, C.wire_text(code, reason, C.DISCONNECTS)


def core_error(exc: HubError) -> ReplyError:
    return ReplyError(C.core_error_code(exc))


# -- codecs and wire formats -------------------------------------------------------------------
def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_compatible(value: Any) -> bool:
    """Whether `value` (e.g. decoded from msgpack) can be sent to JSON clients: no bytes, NaN or odd keys."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


_JSON_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # made once: json.loads with arguments makes one a call
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


class JsonCodec:
    """Newline-delimited JSON in text messages."""

    name = "json"

    def decode(self, data: str | bytes) -> list[Any]:
        try:
            text = data if isinstance(data, str) else data.decode("utf-8")
            return [fast_loads(line, _JSON_DECODER.decode) for line in text.split("\n") if line.strip()]
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request") from None

    def dumps(self, obj: Any) -> bytes:
        return _JSON_ENCODER.encode(obj).encode("utf-8", JSON_SURROGATES)

    def frame(self, parts: list[bytes]) -> bytes:
        return encode_frame(TEXT, b"\n".join(parts))


class MsgpackCodec:
    """Concatenated msgpack objects in binary messages (the `centrifuge-msgpack` subprotocol)."""

    name = "msgpack"

    def decode(self, data: str | bytes) -> list[Any]:
        if isinstance(data, str):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request: binary messages expected")
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1))
        out, end = [], 0
        try:
            unpacker.feed(data)
            while end < len(data):
                out.append(unpacker.unpack())
                end = unpacker.tell()
        except Exception:  # OutOfData (a truncated object) or malformed msgpack
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request") from None
        return out

    def dumps(self, obj: Any) -> bytes:
        return msgpack.packb(obj, use_bin_type=True)

    def frame(self, parts: list[bytes]) -> bytes:
        return binary_frame(b"".join(parts))


class ProtobufCodec:
    """Varint-length-delimited Protobuf `Command`s / `Reply`s in binary messages (the `centrifuge-protobuf` subprotocol)."""

    name = "protobuf"

    def decode(self, data: str | bytes) -> list[Any]:
        if isinstance(data, str):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        try:
            return sdk_protobuf.decode_commands(data)
        except sdk_protobuf.ProtobufError:
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request") from None

    def dumps(self, obj: Any) -> bytes:
        return sdk_protobuf.encode_reply(obj)

    def frame(self, parts: list[bytes]) -> bytes:
        return binary_frame(b"".join(parts))


Codec = JsonCodec | MsgpackCodec | ProtobufCodec


class SdkWire:
    """Encodes core events as this protocol's push frames, once per format for all its sessions."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.name = f"{PROTOCOL}-{codec.name}"
        self.binary = codec.name == "protobuf"  # payloads as the exact bytes published
        self.ping_frame = self.encode({})

    def encode(self, *objs: Any) -> bytes:
        return self.codec.frame([self.codec.dumps(o) for o in objs])

    def push(self, body: dict[str, Any]) -> bytes:
        return self.encode({"push": body})

    def publication(self, pub: Publication) -> bytes:
        if self.binary:
            return self.codec.frame([sdk_protobuf.encode_publication_push(pub.channel, publication_body(pub, True))])
        return self.push({"channel": pub.channel, "pub": publication_body(pub)})

    def payload(self, pub: Publication) -> bytes:
        """The bytes a delta is computed over: what Protobuf clients get, and JSON ones as a string."""
        if self.binary and pub.raw is not None:
            return pub.raw
        return sdk_protobuf.bytes_of(pub.data) if self.binary else compact_json(pub.data)

    def delta_body(self, pub: Publication, prev: Publication | None) -> dict[str, Any]:
        """`pub` for a Fossil-delta subscriber: a delta from `prev` when that is smaller, else whole; in JSON
        (and msgpack) the payload travels as a string, as Centrifugo sends it to delta subscribers."""
        body = publication_body(pub)
        if "data" not in body:  # a removal, or a map clients entry
            return body
        data = self.payload(pub)
        if prev is not None:
            patch = fossil.create(self.payload(prev), data)
            if len(patch) < len(data):
                data = patch
                body["delta"] = True
        if self.binary:
            body["data"] = data
        else:
            try:
                body["data"] = data.decode("utf-8")
            except UnicodeDecodeError:  # a patch that splits a character: send the whole text instead
                body["data"] = self.payload(pub).decode("utf-8")
                body.pop("delta", None)
        return body

    def publication_delta(self, pub: Publication, prev: Publication | None) -> bytes:
        if self.binary:
            return self.codec.frame([sdk_protobuf.encode_publication_push(pub.channel, self.delta_body(pub, prev))])
        return self.push({"channel": pub.channel, "pub": self.delta_body(pub, prev)})

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return self.push({"channel": channel, "join": {"info": client_info(client) or {}}})

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return self.push({"channel": channel, "leave": {"info": client_info(client) or {}}})

    def unsubscribe(self, channel: str, code: int = UNSUBSCRIBE_SERVER, reason: str = "server unsubscribe") -> bytes:
        return self.push({"channel": channel, "unsubscribe": {"code": code, "reason": reason}})

    def subscribe(self, channel: str) -> bytes:
        return self.push({"channel": channel, "subscribe": {}})

    def subscribe_push(self, channel: str, extra: dict[str, Any]) -> bytes:
        """A server-side subscribe push with its stream position and `data` (the server API's subscribe)."""
        return self.push({"channel": channel, "subscribe": extra})

    def insufficient_state(self, channel: str) -> bytes:
        """The core lost publications of `channel`: the client resubscribes and recovers (or learns it cannot)."""
        return self.unsubscribe(channel, INSUFFICIENT_STATE, "insufficient state")

    def disconnect(self, reason: str, reconnect: bool) -> bytes:
        code, text = disconnect_args(reason, reconnect)
        return self.push({"disconnect": {"code": code, "reason": text, "reconnect": reconnect}})


class HttpStreamJsonCodec(JsonCodec):
    """HTTP-streaming (JSON): every reply or push is one line of the response."""

    def frame(self, parts: list[bytes]) -> bytes:
        return b"".join(p + b"\n" for p in parts)


class SseJsonCodec(JsonCodec):
    """Server-Sent Events: every reply or push is one `data:` event."""

    def frame(self, parts: list[bytes]) -> bytes:
        return b"".join(b"data: " + p + b"\n\n" for p in parts)


class HttpStreamProtobufCodec(ProtobufCodec):
    """HTTP-streaming (Protobuf): varint-length-delimited `Reply`s one after another in the response."""

    def frame(self, parts: list[bytes]) -> bytes:
        return b"".join(parts)


JSON_WIRE = SdkWire(JsonCodec())
MSGPACK_WIRE = SdkWire(MsgpackCodec())
PROTOBUF_WIRE = SdkWire(ProtobufCodec())
# The emulation transports' wire formats (centrifuge-js's http_stream and sse): the same messages, framed for a
# streaming HTTP response (each its own wire, so the fan-out encodes once per framing).
HTTP_STREAM_JSON_WIRE = SdkWire(HttpStreamJsonCodec())
HTTP_STREAM_PROTOBUF_WIRE = SdkWire(HttpStreamProtobufCodec())
SSE_WIRE = SdkWire(SseJsonCodec())
PROTOBUF_SUBPROTOCOL = sdk_protobuf.SUBPROTOCOL


def speaks_sdk(first: str | bytes) -> bool:
    """Whether a connection's first message is this protocol's (`{"id": 1, "connect": {...}}`)."""
    text = first if isinstance(first, str) else first.decode("utf-8", "replace")
    line = text.lstrip().split("\n", 1)[0]
    if line[:1] != "{":
        return False  # not an object (an original-protocol batch is an array): no need to parse it
    try:
        obj = fast_loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and "method" not in obj and ("id" in obj or any(k in obj for k in COMMANDS))


# -- one connection ----------------------------------------------------------------------------
@dataclass
class RpcCall:
    """An RPC whose action returned an awaitable: the server awaits it, then calls `SdkClient.rpc_done`."""

    id: int
    awaitable: Awaitable[Any]


@dataclass
class Batch:
    """What one incoming message produced."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    calls: list[RpcCall] = field(default_factory=list)
    close: tuple[int, str] | None = None


def _int(value: Any, name: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, str):  # int64 fields may come as strings (protobuf-style JSON)
        try:
            value = int(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReplyError(BAD_REQUEST, f"bad request: invalid {name}")
    return value


class SdkClient:
    """One connection's protocol state: authentication, subscriptions, and the commands' replies.

    Transport-agnostic: `handle` takes one incoming message's payload and queues reply frames in the
    outbox; the server glue (websocket today) moves bytes.
    """

    def __init__(
        self,
        hub: Hub,
        outbox: Outbox,
        wire: SdkWire,
        *,
        default_project: str,
        ping_interval: int = 0,
        expired_close_delay: float = 0.0,
        allow_anonymous: bool = False,
        rpc: Callable[[str], Callable[..., Any] | None] | None = None,
        clock: Callable[[], float] = time.time,
        keys: Callable[..., Awaitable[PublicKeys]] | None = None,
        personal_namespace: str | None = None,
        channel_limit: int = 128,
        user_connection_limit: int = 0,
        limiter: CommandLimiter | None = None,
        on_limit: Callable[[str], None] | None = None,
        proxy: Any = None,
        insecure: bool = False,
        emulation: str = "",
        personal_single_connection: bool = False,
    ) -> None:
        self.hub = hub
        self.outbox = outbox
        self.wire = wire
        self.default_project = default_project
        self.ping_interval = ping_interval
        self.expired_close_delay = expired_close_delay
        self.allow_anonymous = allow_anonymous
        self.rpc = rpc
        self.clock = clock
        self.keys = keys
        # Centrifugo's subscribe_to_user_personal_channel: every user is subscribed to `<namespace>:#<user>`.
        self.personal_namespace = personal_namespace
        # ... with single_connection: a user's new connection closes the others (3504), one connection per user.
        self.personal_single_connection = personal_single_connection
        self.channel_limit = channel_limit  # Centrifugo's client.channel_limit (0: none)
        self.user_connection_limit = user_connection_limit  # client.user_connection_limit (0: none)
        self.limiter = limiter  # the command rate (111 over it, 3013 on abuse)
        self.on_limit = on_limit  # told the limit each refusal hit (metrics)
        self.proxy = proxy  # the backend proxy of this connection (proxy.ConnectionProxy), if any is configured
        # Centrifugo's client.insecure: connect without a token, subscribe, publish, presence and history anywhere.
        self.insecure = insecure
        # An emulation transport (HTTP-streaming, SSE): this connection's session id, for the /emulation endpoint.
        self.emulation = emulation
        self.session: Session | None = None
        self.sub_expires: dict[str, float] = {}
        self.on_change: Callable[[], None] | None = None
        self._after_reply: list[Callable[[], None]] = []
        self.maps = MapFlow(self)  # map subscriptions still paginating
        self.shared_poll: SharedPoll | None = None  # the node's shared poll (sharedpoll.py), if configured
        self.polls: set[str] = set()  # this connection's shared poll subscriptions

    # -- messages ---------------------------------------------------------------------------
    async def handle(self, message: str | bytes) -> Batch:
        """Run every command of one message, queueing replies in order with the pushes they cause.

        Replies share one frame, except that pending connect/subscribe replies are queued before a
        command that may cause pushes (connect, subscribe, unsubscribe, publish): a client never sees
        a push for a subscription before the reply that establishes it. A subscriber's own join
        push, when it asked for join/leave, follows its subscribe reply (as in Centrifugo).
        """
        batch = Batch()
        pending: list[dict[str, Any]] = []
        establishing = False
        try:
            commands = self.wire.codec.decode(message)
            if len(commands) > MAX_COMMANDS:
                raise Disconnect(BAD_REQUEST_CLOSE, "bad request: too many commands")
            for cmd in commands:
                if establishing and isinstance(cmd, dict) and any(m in cmd for m in PUSHING):
                    self._flush(pending)
                    pending, establishing = [], False
                reply = await self.command(cmd, batch)
                if reply is not None:
                    pending.append(reply)
                    batch.replies.append(reply)
                    establishing = establishing or "connect" in reply or "subscribe" in reply
        except Disconnect as exc:
            log.debug("client %s disconnected %d: %s", self.session.id if self.session else "-", exc.code, exc)
            batch.close = (exc.code, exc.reason)
        self._flush(pending)
        return batch

    def _flush(self, pending: list[dict[str, Any]]) -> None:
        if pending:
            self._write(self.frame(pending))
        hooks, self._after_reply = self._after_reply, []
        for hook in hooks:
            hook()

    def _write(self, frame: bytes | None) -> None:
        """Queue a reply frame; a client that lets replies pile up past the queue limit is closed as slow."""
        if frame is None or self.outbox.send(frame):  # send or disconnect (the core counts it)
            return
        if self.session is not None and not self.session.closed:
            self.hub.close(self.session, "slow", reconnect=True)

    async def command(self, cmd: Any, batch: Batch) -> dict[str, Any] | None:
        """One command's reply (None for pongs and `send`)."""
        if not isinstance(cmd, dict):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        if not cmd:
            return None  # pong
        cid = cmd.get("id")
        method = next((m for m in COMMANDS if m in cmd), None)
        if method == "send":
            return None
        if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        if self.limiter is not None:
            verdict = self.limiter.check()
            if verdict != LIMIT_OK:
                if verdict == LIMIT_DISCONNECT:
                    self._limited("command rate disconnect")
                    raise Disconnect(C.DISCONNECT_TOO_MANY_REQUESTS, C.DISCONNECTS[C.DISCONNECT_TOO_MANY_REQUESTS])
                self._limited("command rate")
                return {"id": cid, "error": ReplyError(C.TOO_MANY_REQUESTS).as_dict()}
        if self.session is None and method != "connect":
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        if method is None:
            return {"id": cid, "error": ReplyError(METHOD_NOT_FOUND).as_dict()}
        params = cmd[method]
        try:
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ReplyError(BAD_REQUEST)
            result = await getattr(self, f"cmd_{method}")(params)
            if isinstance(result, RpcCall):
                result.id = cid
                batch.calls.append(result)
                return None
            return {"id": cid, method: result}
        except ReplyError as exc:
            log.debug("%s command refused %d: %s", method, exc.code, exc)
            return {"id": cid, "error": exc.as_dict()}
        except HubError as exc:
            return {"id": cid, "error": core_error(exc).as_dict()}
        except Disconnect:
            raise
        except Exception:
            log.exception("%s command failed", method)
            return {"id": cid, "error": ReplyError(INTERNAL, temporary=True).as_dict()}

    def _limited(self, limit: str) -> None:
        if self.on_limit is not None:
            self.on_limit(limit)

    def frame(self, replies: list[dict[str, Any]]) -> bytes | None:
        """The replies of one message in one frame (unencodable results become errors)."""
        if not replies:
            return None
        codec = self.wire.codec
        parts = []
        for reply in replies:
            try:
                parts.append(codec.dumps(reply))
            except (TypeError, ValueError, OverflowError):
                log.warning("reply %s could not be encoded", reply.get("id"))
                parts.append(codec.dumps({"id": reply["id"], "error": {"code": INTERNAL, "message": "internal server error"}}))
        return codec.frame(parts)

    # -- connection -------------------------------------------------------------------------
    def _secret(self, project: str) -> str:
        return self.hub.project(project).secret

    async def _keys(self, refresh: bool = False) -> PublicKeys:
        """The verification keys; `refresh` asks the source to fetch its JWKS again (a key it does not know)."""
        if self.keys is None:
            return NO_KEYS
        return await (self.keys(refresh=True) if refresh else self.keys())

    async def _claims(self, token: Any) -> Any:
        keys = await self._keys()
        try:
            try:
                return check_connect_token(token, self.hub.projects, self.default_project, self._secret, self.clock(), keys)
            except UnknownKey:
                keys = await self._keys(refresh=True)
                return check_connect_token(token, self.hub.projects, self.default_project, self._secret, self.clock(), keys)
        except TokenExpired:
            raise ReplyError(TOKEN_EXPIRED) from None
        except TokenInvalid:
            raise Disconnect(INVALID_TOKEN, "invalid token") from None

    def _ttl(self, expires_at: float | None) -> dict[str, Any]:
        if expires_at is None:
            return {}
        return {"expires": True, "ttl": max(1, int(expires_at - self.clock()))}

    def _session_expiry(self, expires_at: float | None) -> float | None:
        return None if expires_at is None else expires_at + self.expired_close_delay

    async def cmd_connect(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.session is not None:
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        token = params.get("token")
        subs_claim: dict[str, dict[str, Any]] = {}
        meta = connect_data = session_id = None
        granted = None
        if token in (None, "") and self.proxy is not None and self.proxy.config.connect is not None:
            session_id, granted = await self.proxy.connect(self, params)  # Centrifugo's connect proxy
        if granted is not None:
            project, user, info, channels, expires = self.default_project, granted.user, granted.info, granted.channels, granted.expires_at
            subs_claim, meta, connect_data = granted.subs, granted.meta, granted.data
            for channel in [*channels, *subs_claim]:  # Centrifugo refuses the connect for an unknown channel
                try:
                    self.hub.channel(project, channel)
                except HubError:
                    raise ReplyError(UNKNOWN_CHANNEL) from None
        elif token in (None, ""):
            if not (self.allow_anonymous or self.insecure):
                raise ReplyError(UNAUTHORIZED)
            project, user, info, channels, expires = self.default_project, "", None, [], None
        else:
            claims = await self._claims(token)
            project, user, info, channels, expires = claims.project, claims.user, claims.info, claims.channels, claims.expires_at
            subs_claim, meta = claims.subs, claims.meta
            if self.insecure:
                expires = None  # Centrifugo: insecure connections never expire
        if expires is not None and expires < self.clock():
            raise ReplyError(EXPIRED_ERROR)
        if self.user_connection_limit and user and len(self.hub.user_sessions(project, user)) >= self.user_connection_limit:
            self._limited("connections per user")
            raise Disconnect(C.CONNECTION_LIMIT, C.DISCONNECTS[C.CONNECTION_LIMIT])
        personal = []
        if self.personal_namespace is not None and user:
            personal = [f"{self.personal_namespace}:#{user}" if self.personal_namespace else f"#{user}"]
            if self.personal_single_connection:
                for other in self.hub.user_sessions(project, user):
                    self.hub.close(other, f"{C.CONNECTION_LIMIT}:{C.DISCONNECTS[C.CONNECTION_LIMIT]}", reconnect=False)
        server_side = list(dict.fromkeys([*channels, *subs_claim, *personal]))
        if self.channel_limit and len(server_side) > self.channel_limit:
            raise Disconnect(C.CHANNEL_LIMIT, C.DISCONNECTS[C.CHANNEL_LIMIT])
        server_refresh = self.proxy is not None and self.proxy.refresh_enabled  # the refresh proxy renews it, not the client
        self.session = self.hub.connect(project, user, PROTOCOL, self.wire, info=info, outbox=self.outbox,
                                        expires_at=None if server_refresh else self._session_expiry(expires),
                                        keepalive=self.ping_interval, meta={"meta": meta} if meta is not None else None,
                                        session_id=session_id)
        result: dict[str, Any] = {"client": self.session.id, "version": f"hub {__version__}",
                                  **({} if server_refresh else self._ttl(expires))}
        if server_refresh:
            self.proxy.schedule_refresh(expires)
        if connect_data is not None:
            result["data"] = connect_data
        if self.ping_interval > 0:
            result["ping"] = self.ping_interval
            result["pong"] = True
        if self.emulation:
            result["session"] = self.emulation
            result["node"] = self.hub.node_id
        recover = params.get("subs") if isinstance(params.get("subs"), dict) else {}
        subs = {}
        for channel in server_side:
            wanted = recover.get(channel) if isinstance(recover.get(channel), dict) else {}
            options = subs_claim.get(channel, {})
            try:
                name = self.hub.channel(project, channel)
                sub = await self._join(channel, name, options.get("info"), None, wanted, private_ok=True, server_side=True,
                                       override=options.get("override") or {})
                if options.get("data") is not None:
                    sub["data"] = options["data"]
                subs[channel] = sub
            except (ReplyError, HubError) as exc:
                log.info("server-side subscription of %s to %s refused: %s", user, channel, exc)
        if subs:
            result["subs"] = subs
        return result

    async def cmd_refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        if self.proxy is not None and self.proxy.refresh_enabled:  # Centrifugo: server-side refresh expected
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        claims = await self._claims(params.get("token"))
        if claims.project != session.project or claims.user != session.user:
            raise Disconnect(INVALID_TOKEN, "invalid token")
        if claims.expires_at is not None and claims.expires_at < self.clock():
            raise ReplyError(EXPIRED_ERROR)
        session.expires_at = self._session_expiry(claims.expires_at)
        return {"client": session.id, "version": f"hub {__version__}", **self._ttl(claims.expires_at)}

    # -- subscriptions ----------------------------------------------------------------------
    @staticmethod
    def _channel(params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ReplyError(BAD_REQUEST, "bad request: channel required")
        return channel

    async def _sub_claims(self, token: Any, channel: str) -> Any:
        session = self.session
        assert session is not None
        keys = await self._keys()
        try:
            try:
                return check_subscribe_token(token, self._secret(session.project), channel, session.user, session.id,
                                             self.clock(), keys)
            except UnknownKey:
                keys = await self._keys(refresh=True)
                return check_subscribe_token(token, self._secret(session.project), channel, session.user, session.id,
                                             self.clock(), keys)
        except TokenExpired:
            raise ReplyError(TOKEN_EXPIRED) from None
        except TokenMismatch:
            raise Disconnect(INVALID_TOKEN, "invalid token") from None
        except TokenInvalid:
            raise ReplyError(PERMISSION_DENIED) from None

    async def cmd_subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        if not channel.isascii():  # Centrifugo: channel names are ASCII (without a namespace channel_regex)
            raise ReplyError(BAD_REQUEST)
        delta = params.get("delta") or ""
        if delta not in ("", "fossil"):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        name = self.hub.channel(session.project, channel)
        if params.get("type") == TYPE_SHARED_POLL:
            return await self._poll_subscribe(channel, name, params)
        if params.get("type") or name.options.is_map:  # Centrifugo 6.8's map subscriptions (their phases: mapsub.py)
            return await self.maps.subscribe(channel, name, params, delta == "fossil")
        info, expires, override, grant, token, tf = await self._authorize(channel, name, params)
        # A namespace with a sub_refresh proxy refreshes its subscriptions server-side (no ttl for the client).
        server_refresh = self.proxy is not None and self.proxy.handles("sub_refresh", name.namespace)
        result = await self._join(channel, name, info, None if server_refresh else expires, params, private_ok=bool(token),
                                  override=override, tags_filter=tf, delta=delta == "fossil" and name.options.delta_fossil and tf is None)
        if server_refresh and expires is not None:
            self.proxy.schedule_sub_refresh(channel, expires)
        if grant is not None and grant.data is not None:
            result["data"] = grant.data
        return result

    async def _authorize(self, channel: str, name: Any, params: dict[str, Any]) -> tuple[Any, Any, dict[str, Any], Any, Any, Any]:
        """Centrifugo's subscribe permission (token, proxy, namespace rules) and the tags filter asked for:
        (info, expires, override, proxy grant, token, tags filter)."""
        session = self.session
        assert session is not None
        if channel in session.channels or channel in self.polls:
            raise ReplyError(ALREADY_SUBSCRIBED)
        if self.channel_limit and len(session.channels) + len(self.polls) >= self.channel_limit:
            raise ReplyError(LIMIT_EXCEEDED)
        options = name.options
        token = params.get("token")
        info = expires = grant = None
        override: dict[str, Any] = {}
        limited = name.users is not None and options.allow_user_limited_channels
        if name.private and not token:
            raise ReplyError(PERMISSION_DENIED)
        if token:
            claims = await self._sub_claims(token, channel)
            info, expires, override = claims.info, claims.expires_at, claims.override
        elif limited and name.allows_user(session.user):
            pass
        elif self.proxy is not None and self.proxy.handles("subscribe", name.namespace) and not limited:
            grant = await self.proxy.subscribe(self, channel, name.namespace, params)  # Centrifugo's subscribe proxy
            info, expires, override = grant.info, grant.expires_at, grant.override
        elif options.allow_subscribe_for_client and (session.user or options.anonymous or options.allow_subscribe_for_anonymous) \
                and not limited:
            pass
        elif not self.insecure:
            raise ReplyError(PERMISSION_DENIED)
        if expires is not None and expires < self.clock():
            raise ReplyError(EXPIRED_ERROR)
        tf = params.get("tf")
        if tf is not None:
            if not options.allow_tags_filter:
                raise ReplyError(BAD_REQUEST)
            try:
                tagsfilter.validate(tf)
            except tagsfilter.FilterError:
                raise ReplyError(BAD_REQUEST) from None
        return info, expires, override, grant, token, tf

    def _poll_options(self, name: Any) -> Any:
        return None if self.shared_poll is None else self.shared_poll.options_for(name.namespace or "")

    async def _poll_subscribe(self, channel: str, name: Any, params: dict[str, Any]) -> dict[str, Any]:
        """A shared poll subscription (`type: 4`): no stream, no position; the channel's epoch (versionless mode)."""
        session = self.session
        options = self._poll_options(name)
        if options is None:
            raise ReplyError(NOT_AVAILABLE)
        _info, expires, _override, _grant, _token, _tf = await self._authorize(channel, name, params)
        assert self.shared_poll is not None and session is not None
        epoch = self.shared_poll.subscribe(session.project, channel, options)
        self.polls.add(channel)
        result: dict[str, Any] = {"type": TYPE_SHARED_POLL}
        if epoch:
            result["epoch"] = epoch
        if expires is not None:
            self._set_sub_expiry(channel, expires)
            result.update(self._ttl(expires))
        return result

    async def _track(self, channel: str, params: dict[str, Any]) -> dict[str, Any]:
        """`sub_refresh` with `type` 1 (track signed batches, untrack some) or 2 (untrack) on a shared poll channel."""
        session = self.session
        assert session is not None
        if channel not in self.polls or self.shared_poll is None:
            raise ReplyError(PERMISSION_DENIED)
        options = self._poll_options(self.hub.channel(session.project, channel))
        if options is None:
            raise ReplyError(NOT_AVAILABLE)
        untrack = params.get("untrack") or []
        if not isinstance(untrack, list) or not all(isinstance(k, str) for k in untrack):
            raise ReplyError(BAD_REQUEST)
        if params.get("type") == UNTRACK:
            self.shared_poll.untrack(self, session.project, channel, untrack)
            return {}
        batches = params.get("track")
        if not isinstance(batches, list) or not batches:
            raise ReplyError(BAD_REQUEST)
        try:
            items, ttl = self.shared_poll.track(self, session.project, channel, options, batches, untrack, self.clock())
        except ValueError as exc:
            code = {"expired": TOKEN_EXPIRED, "limit": LIMIT_EXCEEDED}.get(str(exc), PERMISSION_DENIED)
            raise ReplyError(code) from None
        result: dict[str, Any] = {"expires": True, "ttl": ttl} if ttl > 0 else {}
        if items:
            result["items"] = items
        return result

    def push_keyed(self, channel: str, body: dict[str, Any]) -> None:
        """A shared poll item (or its removal) to this connection."""
        session = self.session
        if session is not None and not session.closed and channel in self.polls:
            self._write(self.wire.push({"channel": channel, "pub": body}))

    async def _join(self, channel: str, name: Any, info: Any, expires: float | None, params: dict[str, Any],
                    *, private_ok: bool, server_side: bool = False, override: dict[str, Any] | None = None,
                    tags_filter: dict[str, Any] | None = None, delta: bool = False) -> dict[str, Any]:
        """Subscribe the session (recovering from the client's position if asked); the subscribe result."""
        session = self.session
        assert session is not None
        options = name.options
        override = override or {}

        def opt(key: str, default: bool) -> bool:
            value = override.get(key)
            if isinstance(value, dict) and isinstance(value.get("value"), bool):
                return value["value"]
            return default

        history_access = self._may(session, channel, name, "history", subscribed=True)
        hist = options.keeps_history
        recoverable = hist and (opt("force_recovery", options.force_recovery) or (bool(params.get("recoverable")) and history_access))
        positioned = hist and (recoverable or opt("force_positioning", options.force_positioning)
                               or (bool(params.get("positioned")) and history_access))
        join_leave = opt("join_leave", options.join_leave)
        push_join_leave = join_leave and (opt("force_push_join_leave", options.force_push_join_leave) or (
            not server_side and bool(params.get("join_leave")) and self._may(session, channel, name, "presence", subscribed=True)))
        result: dict[str, Any] = {}
        recovered: tuple[list[Publication], bool] | None = None
        if positioned:
            # The core positions and recovers without a race against publications arriving meanwhile.
            since = None
            if recoverable and params.get("recover"):
                try:
                    since = (_int(params.get("offset"), "offset", 0), params.get("epoch") or "")
                except ReplyError:
                    since = (-1, "")
            flag = params.get("flag")
            strict = since is not None and isinstance(flag, int) and bool(flag & FLAG_REJECT_UNRECOVERED)
            session.hush(channel)  # no join pushes to itself before its subscribe reply
            try:
                # The SDK protocol applied Centrifugo's access rules (anonymous users included) before this.
                pos = await self.hub.subscribe_at(session, channel, info, private_ok=private_ok, recover=since, strict=strict,
                                                  authorized=True)
            except Unrecoverable:
                session.unhush(channel)
                raise ReplyError(UNRECOVERABLE_POSITION) from None
            except BaseException:
                session.unhush(channel)
                raise
            if since is not None:
                recovered = (pos.publications, pos.recovered)
            if recoverable:
                result["recoverable"] = True
            result.update(positioned=True, offset=pos.offset, epoch=pos.epoch)
        else:
            session.hush(channel)  # no join pushes to itself before its subscribe reply
            try:
                await self.hub.subscribe(session, channel, info, private_ok=private_ok, authorized=True)
            except BaseException:
                session.unhush(channel)
                raise
        if tags_filter is not None:
            self.hub.set_filter(session, channel, lambda pub, tf=tags_filter: tagsfilter.match(tf, pub.tags))
        if delta:
            self.hub.set_delta(session, channel, True)
            result["delta"] = True
        if push_join_leave:
            record = session.client_info(channel)

            def own_join() -> None:  # after the subscribe (or connect) reply, as Centrifugo publishes it
                if channel in session.channels and not session.closed:
                    session.unhush(channel)
                    self._write(self.wire.join(channel, record))

            self._after_reply.append(own_join)
        if expires is not None:
            self._set_sub_expiry(channel, expires)
            result.update(self._ttl(expires))
        if params.get("recover") and recoverable:
            result["was_recovering"] = True
            if recovered is not None and recovered[1]:
                result["recovered"] = True
                pubs = recovered[0]
                if tags_filter is not None:  # what the live filter would not have delivered is not recovered either
                    pubs = [p for p in pubs if tagsfilter.match(tags_filter, p.tags)]
                if pubs and delta:  # whole, in the form delta subscribers get (JSON: the payload as a string)
                    result["publications"] = [self.wire.delta_body(p, None) for p in pubs]
                elif pubs:
                    result["publications"] = [publication_body(p, self.wire.binary) for p in pubs]
        return result

    def _set_sub_expiry(self, channel: str, expires: float | None) -> None:
        if expires is None:
            self.sub_expires.pop(channel, None)
        else:
            self.sub_expires[channel] = expires + self.expired_close_delay
        if self.on_change is not None:
            self.on_change()

    async def cmd_sub_refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        channel = self._channel(params)
        if params.get("type") in (TRACK, UNTRACK):
            return await self._track(channel, params)
        if channel in self.polls and self.shared_poll is not None:  # a shared poll subscription's new token
            claims = await self._sub_claims(params.get("token"), channel)
            self._set_sub_expiry(channel, claims.expires_at)
            return self._ttl(claims.expires_at)
        if channel not in session.channels:
            raise ReplyError(PERMISSION_DENIED)
        if self.proxy is not None and self.proxy.handles("sub_refresh", self.hub.channel(session.project, channel).namespace):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")  # Centrifugo: server-side sub refresh expected
        claims = await self._sub_claims(params.get("token"), channel)
        if claims.expires_at is not None and claims.expires_at < self.clock():
            raise ReplyError(EXPIRED_ERROR)
        self._set_sub_expiry(channel, claims.expires_at)
        return self._ttl(claims.expires_at)

    async def cmd_unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        channel = self._channel(params)
        self.maps.forget(channel)
        if channel in self.polls:
            self.polls.discard(channel)
            if self.shared_poll is not None:
                self.shared_poll.drop(self, session.project, channel)
        self.hub.unsubscribe_session(session, channel)
        session.unhush(channel)
        self.sub_expires.pop(channel, None)
        if self.proxy is not None:
            self.proxy.forget(channel)
        return {}

    def next_expiry(self) -> float | None:
        """When the next subscription expires (clock time), if any has an expiry."""
        return min(self.sub_expires.values(), default=None)

    def expire(self) -> None:
        """Unsubscribe (code 2501: the SDK subscribes again with a new token) from expired subscriptions."""
        session = self.session
        if session is None or session.closed:
            self.sub_expires.clear()
            return
        now = self.clock()
        for channel, when in list(self.sub_expires.items()):
            if when <= now:
                del self.sub_expires[channel]
                if channel in session.channels:
                    session.outbox.force(self.wire.unsubscribe(channel, UNSUBSCRIBE_EXPIRED, "subscription expired"))
                    self.hub.unsubscribe_session(session, channel)
                elif channel in self.polls:
                    session.outbox.force(self.wire.unsubscribe(channel, UNSUBSCRIBE_EXPIRED, "subscription expired"))
                    self.polls.discard(channel)
                    if self.shared_poll is not None:
                        self.shared_poll.drop(self, session.project, channel)

    # -- channel commands -------------------------------------------------------------------
    def _target(self, params: dict[str, Any]) -> tuple[Session, str, Any]:
        session = self.session
        assert session is not None
        channel = self._channel(params)
        name = self.hub.channel(session.project, channel)
        if not channel.isascii():
            raise ReplyError(BAD_REQUEST)
        return session, channel, name

    def _may(self, session: Session, channel: str, name: Any, action: str, subscribed: bool = False) -> bool:
        """Centrifugo v6's rule for publish/presence/history: `allow_<action>_for_client`, or
        `allow_<action>_for_subscriber` when subscribed, for anonymous users only with `allow_<action>_for_anonymous`
        (or the hub's `anonymous`); anything under `client.insecure`."""
        o = name.options
        user_ok = bool(session.user) or o.anonymous or getattr(o, f"allow_{action}_for_anonymous")
        for_subscriber = o.publish if action == "publish" else getattr(o, f"allow_{action}_for_subscriber")
        return self.insecure or (user_ok and (getattr(o, f"allow_{action}_for_client")
                                              or (for_subscriber and (subscribed or channel in session.channels))))

    async def cmd_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, name = self._target(params)
        if params.get("type") or name.options.is_map:
            return await self._map_publish(session, channel, name, params)
        if "data" not in params:
            raise ReplyError(BAD_REQUEST, "bad request: data required")
        if self.proxy is not None and self.proxy.handles("publish", name.namespace):  # Centrifugo's publish proxy decides
            raw = params.get("data" + sdk_protobuf.RAW_SUFFIX) if self.wire.binary else None
            out = await self.proxy.publish(self, channel, name.namespace, params["data"], raw if isinstance(raw, bytes) else None)
            await self.hub.publish(session.project, channel, out.data, session.client_info(channel), session.id,
                                   tags=out.tags, skip_history=out.skip_history, raw=out.raw)
            return {}
        if not self._may(session, channel, name, "publish"):
            raise ReplyError(PERMISSION_DENIED)
        if isinstance(self.wire.codec, MsgpackCodec) and not json_compatible(params["data"]):
            raise ReplyError(BAD_REQUEST, "bad request: data must be JSON-compatible (no binary, NaN or non-string keys)")
        raw = params.get("data" + sdk_protobuf.RAW_SUFFIX) if self.wire.binary else None
        await self.hub.publish(session.project, channel, params["data"], session.client_info(channel), session.id,
                               raw=raw if isinstance(raw, bytes) else None)
        return {}

    async def _map_publish(self, session: Session, channel: str, name: Any, params: dict[str, Any]) -> dict[str, Any]:
        """A map channel's key set or removed (`type: 1`, `key`, `data` or `removed`), with the map's own permissions."""
        o = name.options
        if params.get("type") != 1 or not o.is_map:
            raise ReplyError(BAD_REQUEST)
        removed = bool(params.get("removed"))
        key = params.get("key") or ""
        if not isinstance(key, str):
            raise ReplyError(BAD_REQUEST)
        subscribed = channel in session.channels
        may = self.insecure or (o.map_remove_for_client if removed else (
            o.map_publish_for_client or (o.map_publish_for_subscriber and subscribed)))
        if not may:
            raise ReplyError(PERMISSION_DENIED)
        if o.map_client_key == "client_id":
            key = session.id
        if not key:
            raise ReplyError(BAD_REQUEST, "bad request: key required")
        if not removed and "data" not in params:
            raise ReplyError(BAD_REQUEST, "bad request: data required")
        raw = params.get("data" + sdk_protobuf.RAW_SUFFIX) if self.wire.binary else None
        await self.hub.map_publish(session.project, channel, key, params.get("data"), session.client_info(channel),
                                   session.id, removed=removed, raw=raw if isinstance(raw, bytes) else None)
        return {}

    def _presence_allowed(self, session: Session, channel: str, name: Any) -> None:
        if not name.options.presence:
            raise ReplyError(NOT_AVAILABLE)
        if not self._may(session, channel, name, "presence"):
            raise ReplyError(PERMISSION_DENIED)

    async def cmd_presence(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, name = self._target(params)
        self._presence_allowed(session, channel, name)
        clients = await self.hub.presence(session.project, channel)
        return {"presence": {cid: client_info(rec) for cid, rec in clients.items()}}

    async def cmd_presence_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, name = self._target(params)
        self._presence_allowed(session, channel, name)
        return await self.hub.presence_stats(session.project, channel)

    async def cmd_history(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, name = self._target(params)
        if not name.options.keeps_history:
            raise ReplyError(NOT_AVAILABLE)
        if not self._may(session, channel, name, "history"):
            raise ReplyError(PERMISSION_DENIED)
        limit = _int(params.get("limit"), "limit", 0)
        if limit < 0 or limit > HISTORY_MAX_LIMIT:
            limit = HISTORY_MAX_LIMIT
        reverse = params.get("reverse") is True
        return await history_reply(self.hub, session.project, channel, limit, params.get("since"), reverse, ReplyError,
                                   self.wire.binary)

    async def cmd_rpc(self, params: dict[str, Any]) -> dict[str, Any] | RpcCall:
        method = params.get("method", "")
        func = self.rpc(method) if self.rpc is not None and isinstance(method, str) else None
        if func is None and self.proxy is not None and isinstance(method, str) and self.proxy.handles_rpc(method):
            raw = params.get("data" + sdk_protobuf.RAW_SUFFIX) if self.wire.binary else None
            return {"data": await self.proxy.rpc(self, method, params.get("data"), raw if isinstance(raw, bytes) else None)}
        if func is None and self.rpc is None:  # no RPC methods at all: Centrifugo without an RPC handler answers 108
            raise ReplyError(NOT_AVAILABLE)
        if func is None:
            raise ReplyError(METHOD_NOT_FOUND)
        data = params.get("data")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ReplyError(BAD_REQUEST, "bad request: rpc data must be an object of arguments")
        try:
            inspect.signature(func).bind(**data)
        except TypeError as exc:
            raise ReplyError(BAD_REQUEST, f"bad request: {exc}") from None
        try:
            value = func(**data)
        except HubError as exc:
            raise core_error(exc) from None
        except Exception:
            log.exception("rpc %s failed", method)
            raise ReplyError(INTERNAL, temporary=True) from None
        if inspect.isawaitable(value):
            return RpcCall(0, value)
        return {"data": value}

    def rpc_done(self, call: RpcCall, value: Any = None, error: BaseException | None = None) -> None:
        """Queue the reply of an RPC whose awaitable finished with `value` or raised `error`."""
        if error is None:
            reply: dict[str, Any] = {"id": call.id, "rpc": {"data": value}}
        elif isinstance(error, HubError):
            reply = {"id": call.id, "error": core_error(error).as_dict()}
        elif isinstance(error, ActionError) and error.status in (400, 404):
            code = BAD_REQUEST if error.status == 400 else METHOD_NOT_FOUND
            reply = {"id": call.id, "error": ReplyError(code, f"{C.ERRORS[code]}: {error.message}" if code == BAD_REQUEST
                                                         else "").as_dict()}
        else:
            reply = {"id": call.id, "error": ReplyError(INTERNAL, temporary=True).as_dict()}
        if not self.outbox.closed:
            self._write(self.frame([reply]))

    # -- lifecycle --------------------------------------------------------------------------
    def close_args(self) -> tuple[int, str]:
        """Close code and reason once the core closed the session (shutdown, slow, expired, disconnect)."""
        session = self.session
        if session is None or session.close_reason is None:
            return 1000, ""
        return disconnect_args(session.close_reason, session.reconnect)

    def release(self) -> None:
        if self.session is not None:
            if self.shared_poll is not None:
                for channel in self.polls:
                    self.shared_poll.drop(self, self.session.project, channel)
            self.polls.clear()
            self.hub.release(self.session)


history_reply = C.history_reply
