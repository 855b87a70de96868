"""The original Centrifuge client protocol, without I/O.

`LegacyClient.handle(text)` takes one websocket text frame and returns the reply array (or
raises `BadFrame`); pushes go straight into the session's outbox through the core, so a push
caused by a command is queued before that command's reply.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hub.core import Hub, HubError, Publication, Session
from hub.core.outbox import Outbox
from hub.core.session import new_client_id
from hub.net.wsframe import text_frame
from protocols.centrifuge import check, message_body

from .signing import channel_sign, connect_token

PROTOCOL = "centrifuge-legacy"
MAX_COMMANDS = 100

# Close codes sent after a server-side disconnect (reason in the close frame is JSON).
CLOSE_CODES = {"shutdown": 3001, "connection expired": 3005, "slow": 3008}
DEFAULT_CLOSE = 3000
BAD_REQUEST_CLOSE = 3501


class BadFrame(Exception):
    """A frame the protocol cannot answer: the connection is closed with `code` and `reason`."""

    def __init__(self, reason: str, code: int = BAD_REQUEST_CLOSE) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class CommandError(Exception):
    """An error answered in the command's reply entry."""


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_string = json.encoder.encode_basestring


def _dumps(obj: Any) -> str:
    return _encode(obj)


def push(method: str, body: Any) -> bytes:
    return text_frame(_dumps({"method": method, "error": None, "body": body}))


class LegacyWire:
    """Encodes core events as the original protocol's push frames (shared by all its clients)."""

    name = PROTOCOL

    def publication(self, pub: Publication) -> bytes:
        # The envelope is fixed: only the variable parts go through the JSON encoder.
        client = f',"client":{_string(pub.client)}' if pub.client else ""
        info = "null" if pub.info is None else _encode(pub.info)
        return text_frame(
            f'{{"method":"message","error":null,"body":{{"uid":"{pub.uid}","timestamp":"{int(pub.timestamp)}",'
            f'"info":{info},"channel":{_string(pub.channel)},"data":{_encode(pub.data)}{client}}}}}')

    def join(self, channel: str, client: dict[str, Any]) -> bytes:
        return push("join", {"channel": channel, "data": client})

    def leave(self, channel: str, client: dict[str, Any]) -> bytes:
        return push("leave", {"channel": channel, "data": client})

    def unsubscribe(self, channel: str) -> bytes:
        return push("unsubscribe", {"channel": channel})

    def subscribe(self, channel: str) -> bytes:
        return push("subscribe", {"channel": channel})

    def disconnect(self, reason: str, reconnect: bool) -> bytes:
        return push("disconnect", {"reason": reason, "reconnect": reconnect})


WIRE = LegacyWire()


def close_args(reason: str | None, reconnect: bool) -> tuple[int, str]:
    """Close code and JSON reason for a server-side disconnect."""
    reason = reason or "disconnect"
    return CLOSE_CODES.get(reason, DEFAULT_CLOSE), _dumps({"reason": reason, "reconnect": reconnect})


def _param(params: dict[str, Any], name: str, kind: type | tuple[type, ...] = str, required: bool = True) -> Any:
    value = params.get(name)
    if value is None:
        if required:
            raise CommandError(f"{name} required")
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise CommandError(f"invalid {name}: expected {'string' if names == 'str' else names}")
    return value


class LegacyClient:
    """One connection's protocol state: connect, subscriptions, and the commands' replies."""

    def __init__(self, hub: Hub, outbox: Outbox, clock: Any = time.time) -> None:
        self.hub = hub
        self.outbox = outbox
        self.clock = clock
        self.session: Session | None = None
        self._last_ping: float | None = None
        self.client_id: str | None = None
        self.expired = False

    # -- frames ---------------------------------------------------------------------------
    async def handle(self, text: str | bytes) -> list[dict[str, Any]]:
        """Run every command of one frame; return the reply array."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise BadFrame("bad request: frame is not JSON") from None
        if isinstance(data, dict):
            commands = [data]
        elif isinstance(data, list):
            commands = data
            if len(commands) > MAX_COMMANDS:
                raise BadFrame(f"bad request: more than {MAX_COMMANDS} commands")
        else:
            raise BadFrame("bad request: frame must be an object or an array")
        return [await self.command(cmd) for cmd in commands]

    async def command(self, cmd: Any) -> dict[str, Any]:
        if not isinstance(cmd, dict):
            return {"method": None, "error": "invalid command: expected an object", "body": None}
        method = cmd.get("method")
        reply: dict[str, Any] = {"method": method, "error": None, "body": None}
        if "uid" in cmd:
            reply = {"uid": cmd["uid"], **reply}
        params = cmd.get("params", {})
        if params is None:
            params = {}
        try:
            if not isinstance(method, str):
                raise CommandError("method required")
            if not isinstance(params, dict):
                raise CommandError("invalid params: expected an object")
            handler = getattr(self, f"cmd_{method}", None)
            if handler is None:
                raise CommandError(f"unknown method {method}")
            reply["body"] = await handler(params)
        except CommandError as exc:
            reply["error"] = str(exc)
        except HubError as exc:
            reply["error"] = exc.message
        return reply

    # -- commands -------------------------------------------------------------------------
    def _authenticate(self, params: dict[str, Any]) -> tuple[str, str, str, Any, int | None]:
        project_key = _param(params, "project")
        user = _param(params, "user")
        timestamp = _param(params, "timestamp")
        info = _param(params, "info", required=False) or ""
        token = _param(params, "token")
        project = self.hub.project(project_key)
        if not check(connect_token(project.secret, project_key, user, timestamp, info), token):
            raise CommandError("invalid token")
        try:
            ts = int(timestamp)
        except ValueError:
            raise CommandError("invalid timestamp") from None
        default_info = None
        if info:
            try:
                default_info = json.loads(info)
            except ValueError:
                raise CommandError("invalid info: expected a JSON string") from None
        lifetime = project.connection_lifetime
        expires = ts + lifetime if lifetime > 0 else None
        return project_key, user, timestamp, default_info, expires

    async def cmd_connect(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.session is not None:
            raise CommandError("already connected")
        project_key, user, _, info, expires = self._authenticate(params)
        ttl = self.hub.project(project_key).connection_lifetime or None
        if expires is not None and expires <= self.clock():
            self.expired = True
            self.client_id = self.client_id or new_client_id()
            return {"client": self.client_id, "expired": True, "ttl": ttl}
        self._open(project_key, user, info, expires)
        return {"client": self.session.id, "expired": False, "ttl": ttl}

    def _open(self, project: str, user: str, info: Any, expires: float | None) -> None:
        session = self.hub.connect(project, user, PROTOCOL, WIRE, info=info, expires_at=expires,
                                   outbox=self.outbox, session_id=self.client_id)
        self.session = session
        self.client_id = session.id
        self.expired = False

    async def cmd_refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        project_key, user, _, info, expires = self._authenticate(params)
        ttl = self.hub.project(project_key).connection_lifetime or None
        if expires is not None and expires <= self.clock():
            raise CommandError("connection expired")
        if self.session is None:
            if not self.expired:
                raise CommandError("unauthorized")
            self._open(project_key, user, info, expires)
        elif self.session.user != user or self.session.project != project_key:
            raise CommandError("permission denied")
        else:
            self.session.expires_at = expires
        return {"ttl": ttl}

    def _session(self) -> Session:
        if self.session is None:
            raise CommandError("connection expired" if self.expired else "unauthorized")
        return self.session

    async def cmd_subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._session()
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise CommandError("channel required")
        name = self.hub.channel(session.project, channel)
        channel_info = None
        if name.private:
            client = _param(params, "client")
            info = _param(params, "info", required=False) or ""
            sign = _param(params, "sign")
            secret = self.hub.project(session.project).secret
            if client != session.id or not check(channel_sign(secret, client, channel, info), sign):
                raise CommandError("unauthorized")
            if info:
                try:
                    channel_info = json.loads(info)
                except ValueError:
                    raise CommandError("invalid info: expected a JSON string") from None
        await self.hub.subscribe(session, channel, channel_info, private_ok=name.private)
        return {"channel": channel}

    async def cmd_unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._session()
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise CommandError("channel required")
        self.hub.channel(session.project, channel)
        self.hub.unsubscribe_session(session, channel)
        return {"channel": channel}

    def _subscribed(self, params: dict[str, Any]) -> tuple[Session, str]:
        session = self._session()
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel:
            raise CommandError("channel required")
        self.hub.channel(session.project, channel)
        if channel not in session.channels:
            raise CommandError("permission denied")
        return session, channel

    async def cmd_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel = self._subscribed(params)
        if "data" not in params:
            raise CommandError("data required")
        if not self.hub.channel(session.project, channel).options.publish:
            raise CommandError("permission denied")
        await self.hub.publish(session.project, channel, params["data"], session.client_info(channel), session.id)
        return {"channel": channel, "status": True}

    async def cmd_presence(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel = self._subscribed(params)
        return {"channel": channel, "data": await self.hub.presence(session.project, channel)}

    async def cmd_history(self, params: dict[str, Any]) -> dict[str, Any]:
        session, channel = self._subscribed(params)
        result = await self.hub.history(session.project, channel, newest_first=True)
        return {"channel": channel, "data": [message_body(p) for p in result.publications]}

    async def cmd_ping(self, params: dict[str, Any]) -> str:
        # The stats API's `keepalive` is the client's own ping interval: the time between its last two pings.
        now = time.monotonic()
        if self._last_ping is not None and self.session is not None:
            self.session.keepalive = max(1, round(now - self._last_ping))
        self._last_ping = now
        return "pong"

    # -- lifecycle ------------------------------------------------------------------------
    def reply_frame(self, replies: list[dict[str, Any]]) -> bytes:
        return text_frame(_dumps(replies))

    def release(self) -> None:
        if self.session is not None:
            self.hub.release(self.session)
