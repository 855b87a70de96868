"""The chat's operations as async methods: the HTTP handlers, the realtime API and the registered actions call these.

Database work runs in the worker thread, password hashing in Trio's thread pool (bounded), so the
event loop never waits on SQLite or argon2. What an operation changes is published (to its room's hub
channel) and notified (to realtime subscribers) only after its transaction has committed, in commit
order, by one publisher task.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from hub.core.errors import HubError

from . import api, store
from .model import (
    USER_ROLE,
    ChatError,
    Message,
    Room,
    User,
    bad_request,
    blocked_error,
    check_email,
    check_message,
    check_name,
    check_password,
    forbidden,
    hash_password,
    new_token,
    rc_message,
    room_obj,
    token_hash,
    unauthorized,
    verify_password,
)
from .worker import DatabaseWorker

if TYPE_CHECKING:
    from hub.adapters import AdapterContext

    from . import ChatSettings

log = logging.getLogger("hub.chat")

# At most this many argon2 computations at once (each takes ~64 MiB and a core for ~0.1 s).
HASH_CONCURRENCY = 2


@dataclass
class Credentials:
    """What an authenticated request carries: X-Auth-Token and X-User-Id."""

    token: str | None
    user_id: str | None

    @property
    def hash(self) -> str | None:
        return token_hash(self.token) if self.token else None


@dataclass
class NewUser:
    """A validated user to create (the password not yet hashed)."""

    username: str
    password: str
    name: str = ""
    email: str | None = None
    roles: tuple[str, ...] = (USER_ROLE,)


def new_user(spec: Any, *, roles_allowed: bool = False) -> NewUser:
    """Validate one user description: {username|name, pass|password, email?, name?, roles?}."""
    if not isinstance(spec, dict):
        raise bad_request("each user must be an object")
    username = spec.get("username") or spec.get("name")
    check_name(username, "username")
    password = check_password(spec.get("pass", spec.get("password")))
    email = check_email(spec.get("email"))
    display = spec.get("name") if isinstance(spec.get("name"), str) else ""
    roles: tuple[str, ...] = (USER_ROLE,)
    if roles_allowed and spec.get("roles") is not None:
        if not isinstance(spec["roles"], list) or not all(isinstance(r, str) for r in spec["roles"]):
            raise bad_request("'roles' must be an array of role names")
        roles = tuple(spec["roles"])
    return NewUser(username, password, display, email, roles)


class ChatService:
    """The chat on one database; `settings` is read at each call so live reloads apply."""

    def __init__(self, ctx: AdapterContext, worker: DatabaseWorker) -> None:
        self.ctx = ctx
        self.db = worker
        self.hash_limiter = trio.CapacityLimiter(HASH_CONCURRENCY)
        self.clock: Callable[[], int] = lambda: int(time.time() * 1000)
        # What committed operations changed waits here for the publisher task: commits publish in commit
        # order, also when the request that made them was cancelled; a request replies after its publish.
        self._outgoing: deque[list[tuple[Any, ...]]] = deque()
        self._queued = self._published = 0
        self._wake = trio.Event()
        self._progress = trio.Event()
        self.realtime: Any = None  # the DDP server (realtime.py) once it runs
        self.installed_at = self.clock()
        self.unique_id = ""

    @property
    def settings(self) -> ChatSettings:
        return self.ctx.settings

    # -- realtime -----------------------------------------------------------------------------
    @property
    def project(self) -> str:
        return self.settings.project or self.ctx.runtime.default_project

    def channel(self, room_id: str) -> str:
        """The hub channel of a room: `channel_prefix` + room id (e.g. chat:GENERAL)."""
        return f"{self.settings.channel_prefix}{room_id}"

    def _queue_effects(self, effects: list[tuple[Any, ...]]) -> None:
        """On commit (in the Trio thread, never awaiting): queue what to publish and notify for the publisher task."""
        if effects:
            self._outgoing.append(effects)
            self._queued += 1
            self._wake.set()

    async def published(self) -> None:
        """Wait until everything committed so far has been published (a request replies after its publish)."""
        target = self._queued
        while self._published < target:
            await self._progress.wait()

    async def publisher(self) -> None:
        """Publish and notify what committed operations changed, one batch at a time, in commit order."""
        while True:
            while not self._outgoing:
                self._wake = trio.Event()
                await self._wake.wait()
            for effect in self._outgoing.popleft():
                try:
                    await self._apply(effect)
                except Exception:
                    log.exception("chat effect %s failed", effect[0])
            self._published += 1
            self._progress.set()
            self._progress = trio.Event()

    async def _apply(self, effect: tuple[Any, ...]) -> None:
        kind = effect[0]
        if kind == "message":
            _, rid, room_type, message, new = effect
            try:
                await self.ctx.hub.publish(self.project, self.channel(rid), rc_message(message))
            except HubError as exc:
                log.warning("message %s committed but not published to %s: %s", message.id, self.channel(rid), exc.message)
            if self.realtime is not None and new:
                self.realtime.message_committed(message, room_type)
        elif self.realtime is not None:
            self.realtime.effect(effect)

    # -- passwords ----------------------------------------------------------------------------
    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(hash_password, password, limiter=self.hash_limiter)

    async def hash_many(self, passwords: list[str]) -> list[str]:
        return await trio.to_thread.run_sync(lambda: [hash_password(p) for p in passwords], limiter=self.hash_limiter)

    # -- authentication -----------------------------------------------------------------------
    async def check_password(self, login: str, password: str | None = None, *, digest: str | None = None,
                             ip: str | None = None) -> User:
        """The one place a password login succeeds or fails, through the hub's login limiter.

        `password` or its SHA-256 `digest` (Rocket.Chat's realtime login). ChatError 401 on failure;
        `blocked_error` while the client's address `ip` or the user has failed too often (checked before
        the password, so the right one is refused too, as Rocket.Chat's validateLoginAttempt does).
        """
        limiter = self.ctx.runtime.login_limiter
        user = await self.db.call(store.login_user, login)
        name = user.username if user is not None else login
        blocked = limiter.check("chat", name, ip)
        if blocked is not None:
            log.debug("chat login refused for %s: blocked for %s", ip or "?", blocked.kind)
            raise blocked_error(blocked.kind)
        ok, rehash = await trio.to_thread.run_sync(
            lambda: verify_password(user.password_hash if user else None, password or "", digest=digest),
            limiter=self.hash_limiter)
        if not ok or user is None or not user.active:
            limiter.failed("chat", name, ip)
            raise ChatError(401, "Unauthorized", "unauthorized")
        limiter.succeeded("chat", name, ip)
        if rehash:
            await self.db.call(store.set_password, user.id, rehash)
        return user

    async def login(self, login: str, password: str | None = None, *, digest: str | None = None,
                    ip: str | None = None) -> tuple[str, User]:
        """Check a password (from client address `ip`); on success issue a token that expires after `token_ttl` seconds."""
        user = await self.check_password(login, password, digest=digest, ip=ip)
        token = new_token()
        ttl_ms = self.settings.token_ttl * 1000

        def issue(conn: Any) -> User:
            now = self.clock()
            store.issue_token(conn, user.id, token_hash(token), now, ttl_ms)
            fields: dict[str, Any] = {"last_login": now}
            if user.status == "offline" and user.status_default != "offline":
                fields["status"] = user.status_default
            return store.update_user(conn, user.id, now, **fields)

        return token, await self.db.call(issue)

    async def resume(self, token: str) -> tuple[User, int]:
        """The user a token logs in (Rocket.Chat's `resume` login) and when the token expires."""
        def check(conn: Any) -> tuple[User, int]:
            th = token_hash(token)
            user = store.token_user(conn, th, self.clock())
            if user is None:
                raise ChatError(403, "You've been logged out by the server. Please log in again.", None)
            expires = conn.execute("SELECT expires_at FROM tokens WHERE hash = ?", (th,)).fetchone()[0]
            return user, expires

        return await self.db.call(check)

    async def logout(self, creds: Credentials) -> None:
        """Revoke the token the request logged in with."""
        def revoke(conn: Any) -> None:
            user = store.authenticate(conn, creds.hash, creds.user_id, self.clock())
            store.revoke_token(conn, creds.hash or "")
            if not conn.execute("SELECT 1 FROM tokens WHERE user_id = ?", (user.id,)).fetchone():
                store.update_user(conn, user.id, self.clock(), status="offline")

        await self.db.call(revoke)

    async def as_user(self, creds: Credentials, fn: Callable[..., Any], *args: Any,
                      on_commit: Callable[[Any], None] | None = None) -> Any:
        """Run `fn(conn, user, *args)` in the worker for the user the credentials log in (401 if none)."""
        if not creds.token or not creds.user_id:
            raise unauthorized()
        th, uid = creds.hash, creds.user_id

        def job(conn: Any) -> Any:
            return fn(conn, store.authenticate(conn, th, uid, self.clock()), *args)

        return await self.db.call(job, on_commit=on_commit)

    async def me(self, creds: Credentials) -> User:
        return await self.as_user(creds, lambda conn, user: user)

    async def require(self, creds: Credentials, permission: str) -> User:
        """The logged-in user, if they have `permission` (401 / 403 otherwise)."""
        def check(conn: Any, user: User) -> User:
            store.require(conn, user, permission)
            return user

        return await self.as_user(creds, check)

    # -- Rocket.Chat v1 operations ----------------------------------------------------------------
    async def run_op(self, creds: Credentials | User, op: Callable[..., Any], params: dict[str, Any], *args: Any) -> Any:
        """Run an api operation as the logged-in user (credentials) or as `user` (an authenticated realtime session)."""
        if op is api.users_update and isinstance(params.get("data"), dict) and params["data"].get("password"):
            params["_password_hash"] = await self.hash(check_password(params["data"]["password"]))
        if op is api.users_create_token:
            params["_new_token"] = new_token()
            params["_new_token_hash"] = token_hash(params["_new_token"])
        if isinstance(creds, User):
            uid, th = creds.id, None
        else:
            if not creds.token or not creds.user_id:
                raise unauthorized()
            uid, th = creds.user_id, creds.hash
        settings = self.settings

        def job(conn: Any) -> tuple[Any, list[tuple[Any, ...]]]:
            now = self.clock()
            if th is None:
                user = store.get_user(conn, user_id=uid)
                if user is None or not user.active:
                    raise unauthorized()
            else:
                user = store.authenticate(conn, th, uid, now)
            tx = api.Tx(conn, user, now, settings)
            return op(tx, params, *args), tx.effects

        result, effects = await self.db.call(job, on_commit=lambda r: self._queue_effects(r[1]))
        if effects:
            await self.published()
        return result

    async def run_public(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A read that needs no login (settings.public)."""
        return await self.db.call(fn, *args)

    async def incoming_webhook(self, integration_id: str, token: str, params: dict[str, Any]) -> None:
        settings = self.settings

        def job(conn: Any) -> list[tuple[Any, ...]]:
            return api.incoming_webhook(conn, integration_id, token, params, self.clock(), settings).effects

        await self.db.call(job, on_commit=self._queue_effects)
        await self.published()

    # -- users --------------------------------------------------------------------------------
    async def register(self, spec: Any) -> User:
        """Self-registration (users.register), if `allow_registration` is on; the new user gets role `user`.

        As on Rocket.Chat, the first person to register on a server without an administrator becomes one.
        """
        if not self.settings.allow_registration:
            raise forbidden("Registration is disabled")
        user = new_user(spec)
        (password_hash,) = await self.hash_many([user.password])
        return await self.db.call(lambda conn: store.create_user(conn, user.username, password_hash, self.clock(),
                                                                 name=user.name, email=user.email))

    async def create_users(self, creds: Credentials, specs: Any, permission: str, *, roles_allowed: bool) -> list[User]:
        """Create several users at once (all or none) as a user holding `permission`."""
        if not isinstance(specs, list) or not specs:
            raise bad_request("'users' must be a non-empty array")
        if len(specs) > self.settings.max_bulk:
            raise bad_request(f"at most {self.settings.max_bulk} users per call")
        users = [new_user(s, roles_allowed=roles_allowed) for s in specs]
        await self.require(creds, permission)
        hashes = await self.hash_many([u.password for u in users])
        now = self.clock()

        def create(conn: Any, actor: User) -> list[User]:
            store.require(conn, actor, permission)
            if any(r != USER_ROLE for u in users for r in u.roles):
                store.require(conn, actor, "assign-roles")
            return [store.create_user(conn, u.username, h, now, name=u.name, email=u.email, roles=u.roles)
                    for u, h in zip(users, hashes, strict=True)]

        return await self.as_user(creds, create)

    async def set_password(self, username: str, password: str) -> None:
        """Change a password (CLI and embedding use; no API exposes it)."""
        password_hash = await self.hash(check_password(password))
        await self.db.call(lambda conn: store.set_password(conn, store.find_user(conn, username).id, password_hash))

    # -- rooms and messages -------------------------------------------------------------------
    async def send(self, creds: Credentials, room_id: str | None, text: Any, *, room_name: str | None = None) -> tuple[Room, Message]:
        """Post a message as the logged-in user; acknowledged (returned) once committed, then published."""
        msg = check_message(text, self.settings.max_message_length)

        def job(conn: Any, user: User) -> tuple[Room, Message]:
            room, message = store.send(conn, user, room_id, msg, self.clock(), room_name=room_name)
            return room, message

        result = await self.as_user(creds, job, on_commit=self._publish_sent)
        await self.published()
        return result

    def _publish_sent(self, result: tuple[Room, Message]) -> None:
        room, message = result
        self._queue_effects([("message", room.id, room.type, message, True)])

    async def create_rooms(self, creds: Credentials, specs: Any, permission: str) -> list[Room]:
        """Create several public rooms (all or none) as a user holding `permission`."""
        if not isinstance(specs, list) or not specs:
            raise bad_request("'rooms' must be a non-empty array")
        if len(specs) > self.settings.max_bulk:
            raise bad_request(f"at most {self.settings.max_bulk} rooms per call")
        parsed = []
        for spec in specs:
            if not isinstance(spec, dict):
                raise bad_request("each room must be an object")
            members = spec.get("members") or []
            if not isinstance(members, list):
                raise bad_request("'members' must be an array of usernames")
            parsed.append((check_name(spec.get("name"), "room name"), members, bool(spec.get("readOnly", False))))

        def create(conn: Any, actor: User) -> list[Room]:
            store.require(conn, actor, permission)
            now = self.clock()
            return [store.create_room(conn, name, actor, now, members, read_only=ro) for name, members, ro in parsed]

        return await self.as_user(creds, create)

    # -- actions (the registry; JSON-RPC and SDK `rpc` call these) ---------------------------------
    async def action_rooms(self) -> list[dict[str, Any]]:
        """Every public chat room, with its members' usernames and message count."""
        rooms, _ = await self.db.call(store.list_rooms)
        return [room_obj(r) for r in rooms]

    async def action_history(self, room: str, limit: int = 50) -> list[dict[str, Any]]:
        """The last `limit` (1-1000) messages of a room (id or name), oldest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise bad_request("limit must be an integer from 1 to 1000")

        def read(conn: Any) -> list[Message]:
            return store.recent(conn, store.room(conn, room, room, usernames=False).id, limit)

        return [rc_message(m) for m in await self.db.call(read)]

    async def action_send(self, room: str, msg: str, user: str) -> dict[str, Any]:
        """Post `msg` to a room (id or name) as `user` (username or id), stored then published; returns the message."""
        text = check_message(msg, self.settings.max_message_length)

        def post(conn: Any) -> tuple[Room, Message]:
            author = store.find_user(conn, user)
            return store.send(conn, author, room, text, self.clock(), room_name=room, require_member=False)

        _, message = await self.db.call(post, on_commit=self._publish_sent)
        await self.published()
        return rc_message(message)

    async def action_create_room(self, name: str, members: list[str] | None = None) -> dict[str, Any]:
        """Create a public room `name` with `members` (usernames); returns the room."""
        if members is not None and not isinstance(members, list):
            raise bad_request("members must be an array of usernames")
        return room_obj(await self.db.call(lambda conn: store.create_room(conn, name, None, self.clock(), members or [])))

    def register_actions(self) -> None:
        actions = self.ctx.runtime.actions
        actions.register("chat.rooms", self.action_rooms)
        actions.register("chat.history", self.action_history)
        actions.register("chat.send", self.action_send)
        actions.register("chat.create_room", self.action_create_room)

