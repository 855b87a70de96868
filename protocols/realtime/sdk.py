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
from typing import Any

import msgpack

from hub.core import Hub, HubError, Publication, Session, Unrecoverable
from hub.core.outbox import Outbox
from hub.net.wsframe import TEXT, binary_frame, encode_frame
from hub.version import __version__

from .tokens import TokenExpired, TokenInvalid, check_connect_token, check_subscribe_token

log = logging.getLogger("hub.realtime.sdk")

PROTOCOL = "centrifugo"
MSGPACK_SUBPROTOCOL = "centrifuge-msgpack"
MAX_COMMANDS = 1000
COMMANDS = ("connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats", "history",
            "rpc", "refresh", "sub_refresh", "send")
PUSHING = ("connect", "subscribe", "unsubscribe", "publish")
# Unsubscribe push code: the client resubscribes at once (codes 2500-2999), with `recover`.
INSUFFICIENT_STATE = 2500
# Subscribe `flag` bit: answer 112 instead of `recovered: false` when recovery is impossible.
FLAG_REJECT_UNRECOVERED = 2

# -- error codes (replies) --------------------------------------------------------------------
INTERNAL, UNAUTHORIZED, UNKNOWN_CHANNEL, PERMISSION_DENIED, METHOD_NOT_FOUND = 100, 101, 102, 103, 104
ALREADY_SUBSCRIBED, LIMIT_EXCEEDED, BAD_REQUEST, NOT_AVAILABLE, TOKEN_EXPIRED = 105, 106, 107, 108, 109
UNRECOVERABLE_POSITION = 112

CORE_ERRORS = {
    "namespace not found": (UNKNOWN_CHANNEL, "unknown channel"),
    "channel required": (BAD_REQUEST, "bad request"),
    "maximum channel length exceeded": (LIMIT_EXCEEDED, "limit exceeded"),
    "permission denied": (PERMISSION_DENIED, "permission denied"),
    "not available": (NOT_AVAILABLE, "not available"),
    "project not found": (INTERNAL, "internal server error"),
    "internal server error": (INTERNAL, "internal server error"),  # the engine (Redis) is unreachable
}

# -- disconnect codes (close frames and disconnect pushes) -------------------------------------
DISCONNECT_CODES = {
    "shutdown": 3001,
    "connection expired": 3005,
    "subscription expired": 3006,
    "slow": 3008,
    "insufficient state": 3010,
    "no pong": 3012,
}
FORCE_RECONNECT, NO_PONG, INVALID_TOKEN, BAD_REQUEST_CLOSE, STALE, FORCE_DISCONNECT = 3011, 3012, 3500, 3501, 3502, 3503
# Unsubscribe push codes: < 2500 final, >= 2500 the SDK subscribes again.
UNSUBSCRIBE_SERVER, UNSUBSCRIBE_EXPIRED = 2000, 2501


class ReplyError(Exception):
    """An error answered in the command's reply."""

    def __init__(self, code: int, message: str, temporary: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.temporary = code, message, temporary

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.temporary:
            out["temporary"] = True
        return out


class Disconnect(Exception):
    """The connection must be closed with `code` and `reason` (after what is already queued)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def core_error(exc: HubError) -> ReplyError:
    code, message = CORE_ERRORS.get(exc.message, (BAD_REQUEST, exc.message))
    return ReplyError(code, message)


def disconnect_args(reason: str | None, reconnect: bool) -> tuple[int, str]:
    """Close code and reason for a core close reason (shutdown, slow, connection expired, ...)."""
    reason = reason or ""
    code = DISCONNECT_CODES.get(reason)
    if code is not None and reconnect:
        return code, reason
    if reconnect:
        return FORCE_RECONNECT, reason if reason not in ("", "disconnect") else "force reconnect"
    return FORCE_DISCONNECT, reason if reason not in ("", "disconnect") else "force disconnect"


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


class JsonCodec:
    """Newline-delimited JSON in text messages."""

    name = "json"

    def decode(self, data: str | bytes) -> list[Any]:
        try:
            text = data if isinstance(data, str) else data.decode("utf-8")
            return [json.loads(line, parse_constant=_no_constant) for line in text.split("\n") if line.strip()]
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request") from None

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

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


Codec = JsonCodec | MsgpackCodec


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


def publication_body(pub: Publication) -> dict[str, Any]:
    body: dict[str, Any] = {"data": pub.data}
    info = client_info(pub.info)
    if info is not None:
        body["info"] = info
    if pub.offset:
        body["offset"] = pub.offset
    return body


class SdkWire:
    """Encodes core events as this protocol's push frames, once per format for all its sessions."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.name = f"{PROTOCOL}-{codec.name}"
        self.ping_frame = self.encode({})

    def encode(self, *objs: Any) -> bytes:
        return self.codec.frame([self.codec.dumps(o) for o in objs])

    def push(self, body: dict[str, Any]) -> bytes:
        return self.encode({"push": body})

    def publication(self, pub: Publication) -> bytes:
        return self.push({"channel": pub.channel, "pub": publication_body(pub)})

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return self.push({"channel": channel, "join": {"info": client_info(client) or {}}})

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return self.push({"channel": channel, "leave": {"info": client_info(client) or {}}})

    def unsubscribe(self, channel: str, code: int = UNSUBSCRIBE_SERVER, reason: str = "server unsubscribe") -> bytes:
        return self.push({"channel": channel, "unsubscribe": {"code": code, "reason": reason}})

    def subscribe(self, channel: str) -> bytes:
        return self.push({"channel": channel, "subscribe": {}})

    def insufficient_state(self, channel: str) -> bytes:
        """The core lost publications of `channel`: the client resubscribes and recovers (or learns it cannot)."""
        return self.unsubscribe(channel, INSUFFICIENT_STATE, "insufficient state")

    def disconnect(self, reason: str, reconnect: bool) -> bytes:
        code, text = disconnect_args(reason, reconnect)
        return self.push({"disconnect": {"code": code, "reason": text, "reconnect": reconnect}})


JSON_WIRE = SdkWire(JsonCodec())
MSGPACK_WIRE = SdkWire(MsgpackCodec())


def speaks_sdk(first: str | bytes) -> bool:
    """Whether a connection's first message is this protocol's (`{"id": 1, "connect": {...}}`)."""
    text = first if isinstance(first, str) else first.decode("utf-8", "replace")
    line = text.lstrip().split("\n", 1)[0]
    try:
        obj = json.loads(line)
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
    """One connection's protocol state: authentication, subscriptions, and the commands' replies."""

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
        self.session: Session | None = None
        self.sub_expires: dict[str, float] = {}
        self.on_change: Callable[[], None] | None = None

    # -- messages ---------------------------------------------------------------------------
    async def handle(self, message: str | bytes) -> Batch:
        """Run every command of one websocket message, queueing replies in order with the pushes they cause.

        Replies share one frame, except that pending connect/subscribe replies are queued before a
        command that may cause pushes (connect, subscribe, unsubscribe, publish): a client never sees
        a push for a subscription before the reply that establishes it.
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
                    self._write(self.frame(pending))
                    pending, establishing = [], False
                reply = await self.command(cmd, batch)
                if reply is not None:
                    pending.append(reply)
                    batch.replies.append(reply)
                    establishing = establishing or "connect" in reply or "subscribe" in reply
        except Disconnect as exc:
            batch.close = (exc.code, exc.reason)
        if pending:
            self._write(self.frame(pending))
        return batch

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
        if self.session is None and method != "connect":
            raise Disconnect(BAD_REQUEST_CLOSE, "bad request")
        if method is None:
            return {"id": cid, "error": ReplyError(METHOD_NOT_FOUND, "method not found").as_dict()}
        params = cmd[method]
        try:
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ReplyError(BAD_REQUEST, "bad request")
            result = await getattr(self, f"cmd_{method}")(params)
            if isinstance(result, RpcCall):
                result.id = cid
                batch.calls.append(result)
                return None
            return {"id": cid, method: result}
        except ReplyError as exc:
            return {"id": cid, "error": exc.as_dict()}
        except HubError as exc:
            return {"id": cid, "error": core_error(exc).as_dict()}
        except Disconnect:
            raise
        except Exception:
            log.exception("%s command failed", method)
            return {"id": cid, "error": ReplyError(INTERNAL, "internal server error", temporary=True).as_dict()}

    def frame(self, replies: list[dict[str, Any]]) -> bytes | None:
        """The replies of one message in one websocket frame (unencodable results become errors)."""
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

    def _claims(self, token: Any) -> Any:
        try:
            return check_connect_token(token, self.hub.projects, self.default_project, self._secret, self.clock())
        except TokenExpired:
            raise ReplyError(TOKEN_EXPIRED, "token expired") from None
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
        if token in (None, ""):
            if not self.allow_anonymous:
                raise ReplyError(UNAUTHORIZED, "unauthorized")
            project, user, info, channels, expires = self.default_project, "", None, [], None
        else:
            claims = self._claims(token)
            project, user, info, channels, expires = claims.project, claims.user, claims.info, claims.channels, claims.expires_at
        self.session = self.hub.connect(project, user, PROTOCOL, self.wire, info=info, outbox=self.outbox,
                                        expires_at=self._session_expiry(expires), keepalive=self.ping_interval)
        result: dict[str, Any] = {"client": self.session.id, "version": f"hub {__version__}", **self._ttl(expires)}
        if self.ping_interval > 0:
            result["ping"] = self.ping_interval
            result["pong"] = True
        recover = params.get("subs") if isinstance(params.get("subs"), dict) else {}
        subs = {}
        for channel in channels:
            wanted = recover.get(channel) if isinstance(recover.get(channel), dict) else {}
            try:
                name = self.hub.channel(project, channel)
                subs[channel] = await self._join(channel, name, None, None, wanted, private_ok=True)
            except (ReplyError, HubError) as exc:
                log.info("server-side subscription of %s to %s refused: %s", user, channel, exc)
        if subs:
            result["subs"] = subs
        return result

    async def cmd_refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        claims = self._claims(params.get("token"))
        if claims.project != session.project or claims.user != session.user:
            raise Disconnect(INVALID_TOKEN, "invalid token")
        session.expires_at = self._session_expiry(claims.expires_at)
        return {"client": session.id, "version": f"hub {__version__}", **self._ttl(claims.expires_at)}

    # -- subscriptions ----------------------------------------------------------------------
    @staticmethod
    def _channel(params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ReplyError(BAD_REQUEST, "bad request: channel required")
        return channel

    def _sub_claims(self, token: Any, channel: str) -> Any:
        session = self.session
        assert session is not None
        try:
            return check_subscribe_token(token, self._secret(session.project), channel, session.user, session.id, self.clock())
        except TokenExpired:
            raise ReplyError(TOKEN_EXPIRED, "token expired") from None
        except TokenInvalid:
            raise ReplyError(PERMISSION_DENIED, "permission denied") from None

    async def cmd_subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        channel = self._channel(params)
        name = self.hub.channel(session.project, channel)
        if channel in session.channels:
            raise ReplyError(ALREADY_SUBSCRIBED, "already subscribed")
        token = params.get("token")
        info = expires = None
        if token:
            claims = self._sub_claims(token, channel)
            info, expires = claims.info, claims.expires_at
        elif name.private:
            raise ReplyError(PERMISSION_DENIED, "permission denied")
        return await self._join(channel, name, info, expires, params, private_ok=bool(token))

    async def _join(self, channel: str, name: Any, info: Any, expires: float | None, params: dict[str, Any],
              *, private_ok: bool) -> dict[str, Any]:
        """Subscribe the session (recovering from the client's position if asked); the subscribe result."""
        session = self.session
        assert session is not None
        result: dict[str, Any] = {}
        recovered: tuple[list[Publication], bool] | None = None
        if name.options.keeps_history:
            # The core positions and recovers without a race against publications arriving meanwhile.
            since = None
            if params.get("recover"):
                try:
                    since = (_int(params.get("offset"), "offset", 0), params.get("epoch") or "")
                except ReplyError:
                    since = (-1, "")
            flag = params.get("flag")
            strict = since is not None and isinstance(flag, int) and bool(flag & FLAG_REJECT_UNRECOVERED)
            try:
                pos = await self.hub.subscribe_at(session, channel, info, private_ok=private_ok, recover=since, strict=strict)
            except Unrecoverable:
                raise ReplyError(UNRECOVERABLE_POSITION, "unrecoverable position") from None
            recovered = (pos.publications, pos.recovered)
            result.update(recoverable=True, positioned=True, offset=pos.offset, epoch=pos.epoch)
        else:
            await self.hub.subscribe(session, channel, info, private_ok=private_ok)
        if expires is not None:
            self._set_sub_expiry(channel, expires)
            result.update(self._ttl(expires))
        if params.get("recover"):
            result["was_recovering"] = True
            if recovered is not None and recovered[1]:
                result["recovered"] = True
                if recovered[0]:
                    result["publications"] = [publication_body(p) for p in recovered[0]]
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
        if channel not in session.channels:
            raise ReplyError(PERMISSION_DENIED, "permission denied")
        claims = self._sub_claims(params.get("token"), channel)
        self._set_sub_expiry(channel, claims.expires_at)
        return self._ttl(claims.expires_at)

    async def cmd_unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self.session
        assert session is not None
        channel = self._channel(params)
        self.hub.unsubscribe_session(session, channel)
        self.sub_expires.pop(channel, None)
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

    # -- channel commands -------------------------------------------------------------------
    def _subscribed(self, params: dict[str, Any]) -> tuple[Session, str, Any]:
        session = self.session
        assert session is not None
        channel = self._channel(params)
        name = self.hub.channel(session.project, channel)
        if channel not in session.channels:
            raise ReplyError(PERMISSION_DENIED, "permission denied")
        return session, channel, name

    async def cmd_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, name = self._subscribed(params)
        if "data" not in params:
            raise ReplyError(BAD_REQUEST, "bad request: data required")
        if not name.options.publish:
            raise ReplyError(PERMISSION_DENIED, "permission denied")
        if isinstance(self.wire.codec, MsgpackCodec) and not json_compatible(params["data"]):
            raise ReplyError(BAD_REQUEST, "bad request: data must be JSON-compatible (no binary, NaN or non-string keys)")
        await self.hub.publish(session.project, channel, params["data"], session.client_info(channel), session.id)
        return {}

    async def cmd_presence(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, _ = self._subscribed(params)
        clients = await self.hub.presence(session.project, channel)
        return {"presence": {cid: client_info(rec) for cid, rec in clients.items()}}

    async def cmd_presence_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, _ = self._subscribed(params)
        return await self.hub.presence_stats(session.project, channel)

    async def cmd_history(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel, _ = self._subscribed(params)
        limit = _int(params.get("limit"), "limit", 0)
        reverse = params.get("reverse") is True
        since = params.get("since")
        result = await self.hub.history(session.project, channel)
        pubs = result.publications
        if since is not None:
            if not isinstance(since, dict):
                raise ReplyError(BAD_REQUEST, "bad request: invalid since")
            offset = _int(since.get("offset"), "since.offset", 0)
            if since.get("epoch", "") != result.epoch:
                raise ReplyError(UNRECOVERABLE_POSITION, "unrecoverable position")
            pubs = [p for p in pubs if p.offset < offset] if reverse else [p for p in pubs if p.offset > offset]
        if reverse:
            pubs = pubs[::-1]
        if limit >= 0:
            pubs = pubs[:limit]
        out: dict[str, Any] = {"offset": result.offset, "epoch": result.epoch}
        if pubs:
            out["publications"] = [publication_body(p) for p in pubs]
        return out

    async def cmd_rpc(self, params: dict[str, Any]) -> dict[str, Any] | RpcCall:
        method = params.get("method", "")
        func = self.rpc(method) if self.rpc is not None and isinstance(method, str) else None
        if func is None:
            raise ReplyError(NOT_AVAILABLE, f"not available: rpc method {method!r} is not configured")
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
            raise ReplyError(INTERNAL, "internal server error", temporary=True) from None
        if inspect.isawaitable(value):
            return RpcCall(0, value)
        return {"data": value}

    def rpc_done(self, call: RpcCall, value: Any = None, error: BaseException | None = None) -> None:
        """Queue the reply of an RPC whose awaitable finished with `value` or raised `error`."""
        if error is None:
            reply: dict[str, Any] = {"id": call.id, "rpc": {"data": value}}
        elif isinstance(error, HubError):
            reply = {"id": call.id, "error": core_error(error).as_dict()}
        else:
            reply = {"id": call.id, "error": ReplyError(INTERNAL, "internal server error", temporary=True).as_dict()}
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
            self.hub.release(self.session)
