"""The original Centrifuge 0.8 client protocol, without I/O.

`LegacyClient.handle(text)` takes one client message (a websocket text frame, or one string of a
SockJS packet) and returns a `Batch`: the reply array as a payload, and whether the transport must
close the connection. Pushes (join/leave/message/disconnect) go into the session's outbox through
the core, framed by the session's wire format, so a push caused by a command is queued before that
command's reply, as the original sends them.

What the original does, observed on 0.8.4 (see tests/compat): replies are always arrays with
`method`, `error`, `body` and never echo `uid`; schema errors are jsonschema's texts; an error in
the request itself (schema, `unauthorized`, unknown method) ends a batch there and the connection
stays open; errors of a command's handler do not end the batch; a frame that is not JSON, not an
object or array, or holds more than 100 commands gets no answer and is closed one second later.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.core import Hub, HubError, Publication, Session
from hub.core.channels import NAMESPACE_BOUNDARY, PRIVATE_PREFIX, USER_BOUNDARY, USER_SEPARATOR
from hub.core.options import NamespaceOptions, Project
from hub.core.outbox import Outbox
from hub.core.session import new_client_id
from hub.net.framing import WS_TEXT, Close, FramedWire, Framing
from hub.net.limits import DISCONNECT as LIMIT_DISCONNECT
from hub.net.limits import OK as LIMIT_OK
from hub.net.limits import CommandLimiter
from protocols.centrifuge import Errors, check, close_for, dumps, hmac_hex, loads, message_body
from protocols.centrifuge_schema import CLIENT, REQUEST, validate

PROTOCOL = "centrifuge-legacy"
MAX_COMMANDS = 100  # client_api_message_limit
CLOSE_DELAY = 1.0  # the original pauses this long before closing on a bad frame
EXPIRED_CLOSE_DELAY = 10.0  # expired_connection_close_delay: grace after the lifetime before closing

_string = json.encoder.encode_basestring_ascii


def _push(method: str, body: Any) -> bytes:
    return dumps({"method": method, "error": None, "body": body}).encode()


class LegacyCodec:
    """Core events as the original's push payloads: one instance, shared by every transport's wire format."""

    name = PROTOCOL

    def publication(self, pub: Publication) -> bytes:
        # The envelope is fixed: only the variable parts go through the encoder (none can form `</` across a seam).
        info = "null" if pub.info is None else dumps(pub.info)
        channel = _string(pub.channel)  # `_escape`, inlined (a call less per publication)
        if "</" in channel:
            channel = channel.replace("</", "<\\/")
        return (f'{{"method": "message", "error": null, "body": {{"uid": "{pub.uid}", "timestamp": {int(pub.timestamp)}, '
                f'"info": {info}, "channel": {channel}, "data": {dumps(pub.data)}}}}}').encode()

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return _push("join", {"channel": channel, "data": client})

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return _push("leave", {"channel": channel, "data": client})

    def unsubscribe(self, channel: str) -> None:
        return None  # a client unsubscribed by the API is not told (the others get `leave`)

    def subscribe(self, channel: str) -> None:
        return None

    def disconnect(self, reason: str, reconnect: bool) -> bytes | None:
        # The API's disconnect (reconnect=False) tells the client; the server's own closes (expiry,
        # shutdown, a slow client) just close, and the client reconnects.
        return None if reconnect else _push("disconnect", {"reason": reason or "default"})

    def close(self, reason: str | None, reconnect: bool) -> Close:
        return close_for("disconnect" if not reconnect else reason)


def _escape(text: str) -> str:
    s = _string(text)
    return s.replace("</", "<\\/") if "</" in s else s


CODEC = LegacyCodec()
_WIRES: dict[str, FramedWire] = {}


def legacy_wire(framing: Framing) -> FramedWire:
    """The one wire format of this protocol on `framing` (shared, so fan-out encodes once per transport kind)."""
    wire = _WIRES.get(framing.name)
    if wire is None:
        wire = _WIRES[framing.name] = FramedWire(CODEC, framing)
    return wire


WIRE = legacy_wire(WS_TEXT)  # raw websocket clients


@dataclass
class Batch:
    """What one client message produced: the reply payload (None: no reply) and whether to close."""

    reply: bytes | None = None
    close: str | None = None  # a cause in protocols.centrifuge.CLOSES
    close_delay: float = 0.0


class Stop(Exception):
    """A request error that ends the batch (the original's `process_obj` error)."""


class _Abuse(Exception):
    """A client that keeps sending over its command rate: the connection is closed."""


def _namespace(project: Project, channel: str) -> NamespaceOptions | None:
    bare = channel[len(PRIVATE_PREFIX):] if channel.startswith(PRIVATE_PREFIX) else channel
    name = bare.split(NAMESPACE_BOUNDARY, 1)[0] if NAMESPACE_BOUNDARY in bare else ""
    return project.namespaces.get(name) if name else project.options


def _info(text: str) -> Any:
    """A JSON string as the original parses `info`: unparseable (or empty) is `{}`."""
    try:
        return loads(text)
    except ValueError:
        return {}


# The client methods, each a LegacyClient coroutine method of that name (looked up per command: a dict of bound
# methods per connection would cost every idle connection ~800 bytes).
METHODS = frozenset({"connect", "refresh", "subscribe", "unsubscribe", "publish", "presence", "history", "ping"})


_last_big: list[Any] = [None, b""]  # the last large single reply and its bytes (presence asked again and again)
BIG_REPLY = 2048


def _encode(replies: list[dict[str, Any]]) -> bytes:
    """The reply array's bytes. A large single reply equal to the previous one (any client's) reuses its bytes:
    comparing is several times cheaper than encoding, and a presence flood asks the same thing each time."""
    if len(replies) == 1 and replies[0] == _last_big[0]:
        return _last_big[1]
    payload = dumps(replies).encode()
    if len(replies) == 1 and len(payload) >= BIG_REPLY:
        _last_big[0], _last_big[1] = replies[0], payload
    return payload


class LegacyClient:
    """One connection's protocol state: authentication, subscriptions, expiry, and the commands' replies."""

    __slots__ = ("hub", "outbox", "wire", "clock", "expired_close_delay", "max_commands", "session", "client_id",
                 "timestamp", "project_key", "_timer", "_checks", "_last_ping", "limiter", "on_limit")

    def __init__(self, hub: Hub, outbox: Outbox, wire: FramedWire, clock: Callable[[], float] = time.time,
                 expired_close_delay: float = EXPIRED_CLOSE_DELAY, max_commands: int = MAX_COMMANDS,
                 limiter: CommandLimiter | None = None, on_limit: Callable[[str], None] | None = None) -> None:
        self.hub = hub
        self.outbox = outbox
        self.wire = wire
        self.clock = clock
        self.expired_close_delay = expired_close_delay
        self.max_commands = max_commands
        self.limiter = limiter  # the command rate: "too many requests" over it, closed on abuse
        self.on_limit = on_limit
        self.session: Session | None = None
        self.client_id = new_client_id()
        self.timestamp: int | None = None
        self.project_key: str | None = None
        # Expiry, as the original schedules it: a timer at the end of the lifetime, and a check
        # `expired_close_delay` later that closes unless a refresh moved the timestamp on.
        self._timer: float | None = None
        self._checks: tuple[float, ...] = ()  # a tuple: nothing allocated for a connection without a lifetime
        self._last_ping: float | None = None

    # -- messages ---------------------------------------------------------------------------
    async def handle(self, text: str | bytes) -> Batch:
        """Run one client message: a command object or an array of at most 100."""
        if not text or not isinstance(text, (str, bytes)):
            return Batch()  # empty, or a SockJS message that is not a string: the original answers nothing
        try:
            data = loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return Batch(close="bad request", close_delay=CLOSE_DELAY)
        if isinstance(data, dict):
            commands = [data]
        elif isinstance(data, list):
            if len(data) > self.max_commands:
                return Batch(close="bad request", close_delay=CLOSE_DELAY)
            commands = data
        else:
            return Batch(close="bad request", close_delay=CLOSE_DELAY)
        replies = []
        for command in commands:
            try:
                replies.append(await self.command(command))
            except Stop as stop:
                replies.append(stop.args[0])
                break
            except _Abuse:
                return Batch(reply=_encode(replies) if replies else None, close="too many requests")
        return Batch(reply=_encode(replies))

    async def command(self, obj: Any) -> dict[str, Any]:
        """One command's reply entry; raises Stop (with the entry) for errors that end a batch."""
        error = validate(obj, REQUEST)
        if error is not None:
            raise Stop({"method": None, "error": error, "body": None})
        method, params = obj["method"], obj["params"]
        if method != "connect" and self.session is None:
            raise Stop({"method": method, "error": Errors.UNAUTHORIZED, "body": None})
        if self.limiter is not None:
            verdict = self.limiter.check()
            if verdict == LIMIT_DISCONNECT:
                if self.on_limit is not None:
                    self.on_limit("command rate disconnect")
                raise _Abuse()
            if verdict != LIMIT_OK:
                if self.on_limit is not None:
                    self.on_limit("command rate")
                return {"method": method, "error": Errors.TOO_MANY_REQUESTS, "body": None}
        handler = getattr(self, method) if method in METHODS else None
        if handler is None:
            raise Stop({"method": method, "error": Errors.UNKNOWN_METHOD.format(method), "body": None})
        error = validate(params, CLIENT[method])
        if error is not None:
            raise Stop({"method": method, "error": error, "body": None})
        try:
            body, error = await handler(params)
        except HubError as exc:
            body, error = None, exc.message
        return {"method": method, "error": error, "body": body}

    # -- authentication ---------------------------------------------------------------------
    def _token_error(self, project: Project, params: dict[str, Any]) -> str | None:
        token = hmac_hex(project.secret, project.key, params["user"], params["timestamp"], params.get("info", ""))
        return None if check(token, params["token"]) else Errors.INVALID_TOKEN

    async def connect(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        if self.session is not None:
            return self.client_id, None  # connected already: the bare client id, params unchecked
        project = self.hub.projects.get(params["project"])
        if project is None:
            return None, Errors.PROJECT_NOT_FOUND
        error = self._token_error(project, params)
        if error:
            return None, error
        info = _info(params["info"]) if params.get("info") else {}
        try:
            timestamp = int(params["timestamp"])
        except ValueError:
            return None, Errors.INVALID_TIMESTAMP
        self.timestamp, self.project_key = timestamp, project.key
        lifetime = project.connection_lifetime
        now = self.clock()
        if lifetime > 0 and timestamp + lifetime - now <= 0:
            return {"client": None, "expired": True, "ttl": lifetime}, None
        self.session = self.hub.connect(project.key, params["user"], PROTOCOL, self.wire, info=info,
                                        outbox=self.outbox, session_id=self.client_id)
        if lifetime > 0:
            self._timer = now + lifetime
        return {"client": self.client_id, "expired": False, "ttl": lifetime or None}, None

    async def refresh(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        project = self.hub.projects.get(params["project"])
        if project is None:
            return None, Errors.PROJECT_NOT_FOUND
        error = self._token_error(project, params)
        if error:
            return None, error
        try:
            timestamp = int(params["timestamp"])
        except ValueError:
            return None, Errors.INVALID_TIMESTAMP
        lifetime = project.connection_lifetime
        now = self.clock()
        left = timestamp + lifetime - now
        if left <= 0:
            return None, Errors.CONNECTION_EXPIRED
        self.timestamp = timestamp
        self._timer = now + left  # replaces a timer that has not fired; a running check still runs
        return {"ttl": lifetime or None}, None

    # -- expiry -----------------------------------------------------------------------------
    def next_expiry_check(self) -> float | None:
        """When `expire_due` next needs calling (clock time), or None."""
        times = self._checks + ((self._timer,) if self._timer is not None else ())
        return min(times) if times else None

    def expire_due(self) -> bool:
        """Run the timers that are due; True if the connection must now be closed as expired."""
        now = self.clock()
        if self._timer is not None and self._timer <= now:
            self._checks += (self._timer + self.expired_close_delay,)
            self._timer = None
        due = [c for c in self._checks if c <= now]
        if not due:
            return False
        self._checks = tuple(c for c in self._checks if c > now)
        project = self.hub.projects.get(self.project_key or "")
        if project is None or project.connection_lifetime <= 0 or self.timestamp is None:
            return False
        return self.timestamp + project.connection_lifetime - now <= 0

    # -- channels ---------------------------------------------------------------------------
    def _project(self) -> Project:
        assert self.session is not None
        return self.hub.project(self.session.project)

    async def subscribe(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        session, project = self.session, self._project()
        assert session is not None
        channel = params["channel"]
        if not channel:
            return None, Errors.CHANNEL_REQUIRED
        if len(channel) > project.max_channel_length:
            return None, Errors.CHANNEL_TOO_LONG
        body = {"channel": channel}
        if USER_BOUNDARY in channel and session.user not in channel.rsplit(USER_BOUNDARY, 1)[1].split(USER_SEPARATOR):
            return body, Errors.PERMISSION_DENIED
        options = _namespace(project, channel)
        if options is None:
            return body, Errors.NAMESPACE_NOT_FOUND
        if not options.anonymous and not session.user:
            return body, Errors.PERMISSION_DENIED
        channel_info = session.channels.get(channel)
        if channel.startswith(PRIVATE_PREFIX):
            client = params.get("client", "")
            info = params.get("info", "")
            if client != self.client_id or not check(hmac_hex(project.secret, client, channel, info), params.get("sign", "")):
                return body, Errors.UNAUTHORIZED
            channel_info = _info(info)
        try:
            await self.hub.subscribe(session, channel, channel_info, private_ok=True, rejoin=True)
        except HubError as exc:
            return body, exc.message
        return body, None

    async def unsubscribe(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        session = self.session
        assert session is not None
        channel = params["channel"]
        if not channel:
            return None, Errors.CHANNEL_REQUIRED
        body = {"channel": channel}
        if _namespace(self._project(), channel) is None:
            return body, Errors.NAMESPACE_NOT_FOUND
        self.hub.unsubscribe_session(session, channel)
        return body, None

    def _subscribed(self, channel: str, body: dict[str, Any]) -> tuple[Session, NamespaceOptions | None, Any, str | None]:
        """The checks publish, presence and history share: subscribed (else `permission denied`, no body),
        then a known namespace. Returns (session, options, body, error): options is None on an error."""
        session = self.session
        assert session is not None
        if channel not in session.channels:
            return session, None, None, Errors.PERMISSION_DENIED
        options = _namespace(self._project(), channel)
        if options is None:
            return session, None, body, Errors.NAMESPACE_NOT_FOUND
        return session, options, body, None

    async def publish(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        channel = params["channel"]
        session, options, body, error = self._subscribed(channel, {"channel": channel, "status": False})
        if options is None:
            return body, error
        if not options.publish:
            return body, Errors.PERMISSION_DENIED
        await self.hub.publish(session.project, channel, params.get("data"), session.client_info(channel), session.id)
        body["status"] = True
        return body, None

    async def presence(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        channel = params["channel"]
        session, options, body, error = self._subscribed(channel, {"channel": channel})
        if options is None:
            return body, error
        if not options.presence:
            return body, Errors.NOT_AVAILABLE
        body["data"] = await self.hub.presence(session.project, channel)
        return body, None

    async def history(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        channel = params["channel"]
        session, options, body, error = self._subscribed(channel, {"channel": channel})
        if options is None:
            return body, error
        if not options.keeps_history:
            return body, Errors.NOT_AVAILABLE
        result = await self.hub.history(session.project, channel, newest_first=True)
        body["data"] = [message_body(p) for p in result.publications]
        return body, None

    async def ping(self, params: dict[str, Any]) -> tuple[Any, str | None]:
        # The stats API's `keepalive` is the client's own ping interval: the time between its last two pings.
        now = time.monotonic()
        if self._last_ping is not None and self.session is not None:
            self.session.keepalive = max(1, round(now - self._last_ping))
        self._last_ping = now
        return "pong", None

    # -- lifecycle --------------------------------------------------------------------------
    def release(self) -> None:
        if self.session is not None:
            self.hub.release(self.session)
