"""Rocket.Chat's realtime API: DDP over the websocket at /websocket.

connect/connected, ping/pong, login (password digest or resume token), methods (sendMessage,
updateMessage, deleteMessage, setReaction, rooms/get, subscriptions/get, readMessages, loadHistory,
joinRoom, leaveRoom, createDirectMessage, stream-notify-room as a method for typing), and the streams
stream-room-messages, stream-notify-room, stream-notify-user and stream-notify-logged.

stream-room-messages is fed by the core's publications on the rooms' hub channels, so a message
published there by any adapter reaches DDP clients, and a message sent over DDP reaches every other
adapter. Frames are encoded once per event for all its subscribers; a connection whose outbox is full
is closed, never silently skipped.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from hub.loginlimit import address_of
from hub.net.http import Request, WebSocketRoute
from hub.net.websocket import WebSocket

from . import api, store
from .model import LOGIN_BLOCKED_DETAILS, ChatError, Message, User, is_blocked, loads, parse_iso, rc_message, room_obj

if TYPE_CHECKING:
    from hub.core.events import HubEvent
    from hub.core.stats import Stats

    from .service import ChatService

log = logging.getLogger("hub.chat.ddp")

DATE_KEYS = ("ts", "_updatedAt", "editedAt", "tlm", "pinnedAt", "_deletedAt", "lm", "ls")
SLOW_CLOSE = (1008, "slow consumer")
PROTOCOL = "ddp"  # the chat's realtime connections in the hub's per-protocol counters
METHOD_QUEUE = 64  # method calls read ahead per connection; past that the connection is not read (backpressure)


def ddp_date(ms: int) -> dict[str, int]:
    return {"$date": int(ms)}


def to_ddp(obj: Any) -> Any:
    """A REST-shaped object (ISO 8601 dates) as DDP sends it (EJSON {"$date": ms})."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in DATE_KEYS and isinstance(value, str):
                try:
                    out[key] = ddp_date(parse_iso(value))
                    continue
                except ChatError:
                    pass
            out[key] = to_ddp(value)
        return out
    if isinstance(obj, list):
        return [to_ddp(v) for v in obj]
    return obj


def meteor_error(error: str | int, reason: str) -> dict[str, Any]:
    return {"isClientSafe": True, "error": error, "reason": reason, "message": f"{reason} [{error}]", "errorType": "Meteor.Error"}


def chat_error(exc: ChatError) -> dict[str, Any]:
    reason = exc.message
    if exc.error_type and reason.endswith(f" [{exc.error_type}]"):
        reason = reason[: -len(exc.error_type) - 3]
    return meteor_error(exc.error_type or exc.status, reason)


def changed(stream: str, event: str, args: list[Any]) -> str:
    return json.dumps({"msg": "changed", "collection": stream, "id": "id", "fields": {"eventName": event, "args": args}},
                      separators=(",", ":"), ensure_ascii=False)


@dataclass(eq=False)
class DDPConnection:
    ws: WebSocket
    session: str
    user: User | None = None
    token_expires: int = 0
    subs: dict[str, tuple[str, str]] = field(default_factory=dict)  # sub id -> (stream, event name)
    rooms: set[str] = field(default_factory=set)  # rooms the user is in (for rooms-changed and __my_messages__)
    last_seen: float = 0.0
    ip: str = ""  # the client's address (the login limiter counts failures per address)
    stats: Stats | None = None

    def send(self, obj: dict[str, Any] | str) -> bool:
        """Send or disconnect (`Outbox.send`): a full outbox closes the connection with 1008 "slow consumer",
        counted in the hub's stats; False when nothing was queued."""
        if self.ws.closing:
            return False
        text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        if self.ws.send(text):
            return True
        self.ws.close(*SLOW_CLOSE)
        if self.stats is not None:
            self.stats.slow_disconnects += 1
            self.stats.messages_dropped += 1
            for by in (self.stats.slow_by_protocol, self.stats.dropped_by_protocol):
                by[PROTOCOL] = by.get(PROTOCOL, 0) + 1
        return False


class RealtimeServer:
    """Every DDP connection of the chat, and the streams they subscribe to."""

    def __init__(self, svc: ChatService) -> None:
        self.svc = svc
        self.connections: set[DDPConnection] = set()
        # (stream, event name) -> connections subscribed to it
        self.listeners: dict[tuple[str, str], set[DDPConnection]] = defaultdict(set)
        self.online: dict[str, int] = defaultdict(int)  # user id -> open logged-in connections

    # -- wiring ---------------------------------------------------------------------------------
    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute("/websocket", self.serve, slow_close=SLOW_CLOSE),
                WebSocketRoute("/sockjs/{server}/{session}/websocket", self.serve, slow_close=SLOW_CLOSE)]

    def attach(self) -> None:
        self.svc.ctx.hub.events.add(self.on_hub_event)

    def detach(self) -> None:
        self.svc.ctx.hub.events.remove(self.on_hub_event)
        for conn in list(self.connections):
            conn.ws.close(1001, "server shutting down")

    # -- events in ---------------------------------------------------------------------------------
    def on_hub_event(self, event: HubEvent) -> None:
        """A publication on a room's channel, from the chat or any other adapter, goes to stream-room-messages."""
        if event.type != "publication":
            return
        pub = event.data["publication"]
        prefix = self.svc.settings.channel_prefix
        if event.project != self.svc.project or not pub.channel.startswith(prefix):
            return
        rid = pub.channel[len(prefix):]
        data = pub.data
        if isinstance(data, dict) and isinstance(data.get("_id"), str) and "msg" in data and "u" in data:
            message = to_ddp(data)
        else:  # published by another adapter: shown as a message from its client
            info = pub.info if isinstance(pub.info, dict) else {}
            user = str(info.get("user") or pub.client or "hub")
            message = {"_id": pub.uid, "rid": rid, "msg": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
                       "ts": ddp_date(int(pub.timestamp * 1000)), "u": {"_id": user, "username": user, "name": user},
                       "_updatedAt": ddp_date(int(pub.timestamp * 1000)), "urls": [], "mentions": [], "channels": []}
        frame = changed("stream-room-messages", rid, [message])
        for conn in tuple(self.listeners.get(("stream-room-messages", rid), ())):
            conn.send(frame)
        mine = self.listeners.get(("stream-room-messages", "__my_messages__"))
        if mine:
            frame_mine = changed("stream-room-messages", "__my_messages__", [message])
            for conn in tuple(mine):
                if rid in conn.rooms:
                    conn.send(frame_mine)

    def message_committed(self, message: Message, room_type: str = "c") -> None:
        """A new chat message: members watching their room list get rooms-changed (lastMessage)."""
        for conn in tuple(self.listeners.get(("stream-notify-user", "*/rooms-changed"), ())):
            if message.room_id in conn.rooms and conn.user is not None:
                conn.send(changed("stream-notify-user", f"{conn.user.id}/rooms-changed",
                                  ["updated", {"_id": message.room_id, "t": room_type,
                                               "lastMessage": to_ddp(rc_message(message)), "lm": ddp_date(message.ts),
                                               "_updatedAt": ddp_date(message.ts)}]))
        if message.extra.get("mentions"):
            for mention in message.extra["mentions"]:
                self._to_user(mention["_id"], "notification", [{
                    "title": f"@{message.username}", "text": message.msg,
                    "payload": {"_id": message.id, "rid": message.room_id, "sender": {"_id": message.user_id,
                                "username": message.username}, "type": "c", "message": {"msg": message.msg}}}])

    def effect(self, effect: tuple[Any, ...]) -> None:
        """What a committed operation asks to notify: room events, user events, presence."""
        kind = effect[0]
        if kind == "notify-room":
            _, rid, event, args = effect
            name = f"{rid}/{event}"
            frame = changed("stream-notify-room", name, to_ddp(args))
            for conn in tuple(self.listeners.get(("stream-notify-room", name), ())):
                conn.send(frame)
        elif kind == "notify-user":
            _, uid, event, args = effect
            if event == "subscriptions-changed" and args and isinstance(args[1], dict):
                for conn in self.connections:
                    if conn.user is not None and conn.user.id == uid:
                        (conn.rooms.discard if args[0] == "removed" else conn.rooms.add)(args[1].get("rid", ""))
            self._to_user(uid, event, to_ddp(args))
        elif kind == "presence":
            _, uid, username, status, text = effect
            self._presence(uid, username, status, text)

    def _to_user(self, uid: str, event: str, args: list[Any]) -> None:
        name = f"{uid}/{event}"
        frame = None
        for conn in tuple(self.listeners.get(("stream-notify-user", f"*/{event}"), ())):
            if conn.user is not None and conn.user.id == uid:
                frame = frame or changed("stream-notify-user", name, args)
                conn.send(frame)

    def _presence(self, uid: str, username: str, status: str, text: str) -> None:
        code = {"offline": 0, "online": 1, "away": 2, "busy": 3}.get(status, 0)
        frame = changed("stream-notify-logged", "user-status", [[uid, username, code, text]])
        for conn in tuple(self.listeners.get(("stream-notify-logged", "user-status"), ())):
            conn.send(frame)

    # -- a connection -------------------------------------------------------------------------------
    async def serve(self, request: Request, ws: WebSocket) -> None:
        conn = DDPConnection(ws, secrets.token_urlsafe(12), last_seen=trio.current_time(), ip=address_of(request.client),
                             stats=self.svc.ctx.hub.stats)
        self.connections.add(conn)
        conn.send({"server_id": "0"})
        # Methods of one connection run one at a time, in the order they came (as Meteor runs them).
        calls_in, calls_out = trio.open_memory_channel[dict[str, Any]](METHOD_QUEUE)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keepalive, conn)
                nursery.start_soon(self._methods, conn, calls_out)
                connected = False
                while True:
                    text = await ws.receive()
                    if text is None:
                        break
                    conn.last_seen = trio.current_time()
                    try:
                        msg = loads(text)
                    except (ValueError, TypeError):
                        conn.send({"msg": "error", "reason": "Bad request", "offendingMessage": str(text)[:1000]})
                        continue
                    if not isinstance(msg, dict) or not isinstance(msg.get("msg"), str):
                        conn.send({"msg": "error", "reason": "Bad request", "offendingMessage": msg})
                        continue
                    kind = msg["msg"]
                    if not connected:
                        if kind != "connect":
                            conn.send({"msg": "error", "reason": "Must connect first", "offendingMessage": msg})
                            continue
                        if msg.get("version") not in ("1", "pre2", "pre1"):
                            conn.send({"msg": "failed", "version": "1"})
                            break
                        connected = True
                        conn.send({"msg": "connected", "session": conn.session})
                        continue
                    if kind == "ping":
                        conn.send({"msg": "pong", **({"id": msg["id"]} if "id" in msg else {})})
                    elif kind == "pong" or kind == "connect":
                        pass
                    elif kind == "method":
                        await calls_in.send(msg)
                    elif kind == "sub":
                        await self._sub(conn, msg)
                    elif kind == "unsub":
                        self._unsub(conn, msg.get("id"))
                    else:
                        conn.send({"msg": "error", "reason": "Bad request", "offendingMessage": msg})
                nursery.cancel_scope.cancel()
        finally:
            self._forget(conn)

    async def _methods(self, conn: DDPConnection, calls: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async for msg in calls:
            await conn.ws.wait_writable()  # backpressure: the next result waits until the client reads the last ones
            await self._method(conn, msg)

    async def _keepalive(self, conn: DDPConnection) -> None:
        interval = self.svc.settings.ddp_ping_interval
        while True:
            await trio.sleep(interval)
            idle = trio.current_time() - conn.last_seen
            if idle >= 2 * interval:
                conn.ws.close(1000, "ping timeout")
                return
            if idle >= interval:
                conn.send({"msg": "ping"})

    def _forget(self, conn: DDPConnection) -> None:
        self.connections.discard(conn)
        for key in set(conn.subs.values()):
            self._listener_key_remove(conn, key)
        conn.subs.clear()
        if conn.user is not None:
            self._went_offline(conn.user)

    def _went_offline(self, user: User) -> None:
        self.online[user.id] -= 1
        if self.online[user.id] <= 0:
            del self.online[user.id]
            self._presence(user.id, user.username, "offline" if user.status == "online" else user.status, user.status_text)

    def _listener_key_remove(self, conn: DDPConnection, key: tuple[str, str]) -> None:
        listeners = self.listeners.get(key)
        if listeners is not None:
            listeners.discard(conn)
            if not listeners:
                del self.listeners[key]

    # -- subscriptions ------------------------------------------------------------------------------
    async def _sub(self, conn: DDPConnection, msg: dict[str, Any]) -> None:
        sid, name, params = msg.get("id"), msg.get("name"), msg.get("params") or []
        if not isinstance(sid, str):
            conn.send({"msg": "error", "reason": "Bad request", "offendingMessage": msg})
            return
        try:
            if conn.user is None:
                raise ChatError(403, "Not allowed", "not-allowed")
            if not isinstance(params, list) or not params or not isinstance(params[0], str):
                raise ChatError(400, "Invalid parameters", "invalid-params")
            event = params[0]
            if name == "stream-room-messages":
                if event != "__my_messages__":
                    await self._check_room(conn, event)
                key = (name, event)
            elif name == "stream-notify-room":
                rid, _, what = event.partition("/")
                await self._check_room(conn, rid)
                key = (name, event)
            elif name == "stream-notify-user":
                uid, _, what = event.partition("/")
                if uid != conn.user.id:
                    raise ChatError(403, "Not allowed", "not-allowed")
                key = (name, f"*/{what}")
            elif name == "stream-notify-logged":
                key = (name, event)
            else:
                raise ChatError(404, f"Subscription '{name}' not found", None)
        except ChatError as exc:
            conn.send({"msg": "nosub", "id": sid, "error": chat_error(exc)})
            return
        if sid in conn.subs:
            self._unsub(conn, sid, reply=False)
        conn.subs[sid] = key
        self.listeners[key].add(conn)
        conn.send({"msg": "ready", "subs": [sid]})

    def _unsub(self, conn: DDPConnection, sid: Any, *, reply: bool = True) -> None:
        key = conn.subs.pop(sid, None) if isinstance(sid, str) else None
        if key is not None and key not in conn.subs.values():
            self._listener_key_remove(conn, key)
        if reply:
            conn.send({"msg": "nosub", "id": sid})

    async def _check_room(self, conn: DDPConnection, rid: str) -> None:
        def check(tx: api.Tx, p: dict[str, Any]) -> None:
            room = store.get_room(tx.conn, room_id=rid)
            if room is None or not api.can_access(tx, room):
                raise ChatError(403, "Not allowed", "error-not-allowed")

        assert conn.user is not None
        await self.svc.run_op(conn.user, check, {})

    # -- methods ------------------------------------------------------------------------------------
    async def _method(self, conn: DDPConnection, msg: dict[str, Any]) -> None:
        mid, name, params = msg.get("id"), msg.get("method"), msg.get("params") or []
        if not isinstance(mid, str) or not isinstance(name, str) or not isinstance(params, list):
            conn.send({"msg": "error", "reason": "Bad request", "offendingMessage": msg})
            return
        conn.send(await self._result(conn, mid, name, params, allow_login=True))
        conn.send({"msg": "updated", "methods": [mid]})

    async def _result(self, conn: DDPConnection, mid: Any, name: Any, params: Any, *, allow_login: bool) -> dict[str, Any]:
        """The DDP result frame of one method call: its result, or its Meteor error."""
        reply: dict[str, Any] = {"msg": "result", "id": mid}
        try:
            if not isinstance(name, str) or not isinstance(params, list):
                raise ChatError(400, "Match failed", None)
            if name == "login" and allow_login:
                result = await self._login(conn, params)
            elif conn.user is None:
                raise ChatError(403, "Must be logged in", "error-invalid-user")
            else:
                result = await self._call(conn, name, params)
            if result is not None:
                reply["result"] = result
        except ChatError as exc:
            reply["error"] = chat_error(exc)
            if is_blocked(exc):  # Meteor.Error('error-login-blocked-for-...', reason, {function: ...}), as Meteor sends it
                reply["error"] = {"isClientSafe": True, "error": exc.error_type, "reason": exc.message,
                                  "details": dict(LOGIN_BLOCKED_DETAILS), "message": f"{exc.message} [{exc.error_type}]",
                                  "errorType": "Meteor.Error"}
        except (TypeError, KeyError, IndexError, AttributeError, ValueError):
            reply["error"] = meteor_error(400, "Match failed")
        return reply

    async def call_over_rest(self, user: User | None, frame: dict[str, Any]) -> dict[str, Any]:
        """A realtime method called through REST (method.call/<name>): the DDP result frame it would have answered."""
        conn = DDPConnection(ws=None, session="rest", user=user)  # type: ignore[arg-type]
        return await self._result(conn, frame.get("id"), frame.get("method"), frame.get("params") or [], allow_login=False)

    async def _login(self, conn: DDPConnection, params: list[Any]) -> dict[str, Any]:
        arg = params[0] if params and isinstance(params[0], dict) else {}
        if isinstance(arg.get("resume"), str):
            user, expires = await self.svc.resume(arg["resume"])
            token, kind = arg["resume"], "resume"
        else:
            who = arg.get("user") or {}
            login = who.get("username") or who.get("email") if isinstance(who, dict) else who
            password = arg.get("password")
            if not isinstance(login, str) or password is None:
                raise ChatError(400, "Match failed", None)
            try:
                if isinstance(password, dict):
                    token, user = await self.svc.login(login, digest=str(password.get("digest", "")), ip=conn.ip or None)
                else:
                    token, user = await self.svc.login(login, str(password), ip=conn.ip or None)
            except ChatError as exc:
                if is_blocked(exc):
                    raise
                raise ChatError(403, "User not found", None) from None
            expires, kind = self.svc.clock() + self.svc.settings.token_ttl * 1000, "password"
        if conn.user is not None:
            self._went_offline(conn.user)
        conn.user, conn.token_expires = user, expires
        rooms = await self.svc.run_op(user, lambda tx, p: [r["room_id"] for r in store.subscriptions(tx.conn, tx.user.id)], {})
        conn.rooms = set(rooms)
        self.online[user.id] += 1
        if self.online[user.id] == 1:
            self._presence(user.id, user.username, user.status if user.status != "offline" else "online", user.status_text)
        return {"id": user.id, "token": token, "tokenExpires": ddp_date(expires), "type": kind}

    async def _call(self, conn: DDPConnection, name: str, params: list[Any]) -> Any:
        user = conn.user
        assert user is not None
        run = self.svc.run_op
        if name == "sendMessage":
            message = params[0]
            if not isinstance(message, dict):
                raise ChatError(400, "Match failed", None)
            out = await run(user, api.chat_send_message, {"message": message})
            return to_ddp(out["message"])
        if name == "updateMessage":
            message = params[0]
            await run(user, api.chat_update, {"roomId": message.get("rid"), "msgId": message.get("_id"), "text": message.get("msg")})
            return None
        if name == "deleteMessage":
            target = params[0]

            def delete(tx: api.Tx, p: dict[str, Any]) -> None:
                message, room = api._message_of(tx, {"msgId": target.get("_id")}, "msgId")
                api.delete_message(tx, message, room)

            await run(user, delete, {})
            return None
        if name == "setReaction":
            emoji, message_id = params[0], params[1]
            should = params[2] if len(params) > 2 else None
            await run(user, api.chat_react, {"messageId": message_id, "emoji": emoji,
                                             **({"shouldReact": should} if should is not None else {})})
            return None
        if name == "rooms/get":
            out = await run(user, api.rooms_get, _since_param(params))
            rooms = to_ddp(out["update"])
            return {"update": rooms, "remove": []} if params and params[0] else rooms
        if name == "subscriptions/get":
            out = await run(user, api.subscriptions_get, _since_param(params))
            subs = to_ddp(out["update"])
            return {"update": subs, "remove": []} if params and params[0] else subs
        if name == "readMessages":
            await run(user, lambda tx, p: api.mark_read(tx, str(params[0])), {})
            return None
        if name == "loadHistory":
            rid, end, limit = params[0], params[1] if len(params) > 1 else None, params[2] if len(params) > 2 else 20
            p: dict[str, Any] = {"roomId": rid, "count": limit or 20}
            if isinstance(end, dict) and "$date" in end:
                from .model import iso
                p["latest"] = iso(end["$date"])
            out = await run(user, api.room_history("room"), p)
            return {"messages": to_ddp(out["messages"]), "unreadNotLoaded": 0}
        if name == "joinRoom":
            await run(user, api.channels_join, {"roomId": params[0], "joinCode": params[1] if len(params) > 1 else None})
            return True
        if name == "leaveRoom":
            await run(user, api.rooms_leave, {"roomId": params[0]})
            return None
        if name == "createDirectMessage":
            out = await run(user, api.dm_create, {"usernames": [str(u) for u in params]})
            return {"rid": out["room"]["_id"], "t": "d", "usernames": out["room"].get("usernames", [])}
        if name in ("createChannel", "createPrivateGroup"):
            out = await run(user, lambda tx, p: api.create_room(tx, p, "c" if name == "createChannel" else "p"),
                            {"name": params[0], "members": params[1] if len(params) > 1 else [],
                             "readOnly": params[2] if len(params) > 2 else False})
            room = out.get("channel") or out.get("group")
            return {"rid": room["_id"], "name": room["name"]}
        if name == "getRoomRoles":
            out = await run(user, api.room_roles("room"), {"roomId": params[0]})
            return out["roles"]
        if name == "UserPresence:setDefaultStatus" or name.startswith("UserPresence:"):
            status = params[0] if name.endswith("setDefaultStatus") else name.split(":", 1)[1]
            await run(user, api.users_set_status, {"status": status})
            return True
        if name == "stream-notify-room":
            return await self._emit_room(conn, params)
        if name == "insertOrUpdateSound":
            return await run(user, lambda tx, p: api.sound_save(tx, params[0]), {})
        if name == "deleteCustomSound":
            return await run(user, lambda tx, p: api.sound_delete(tx, str(params[0])), {})
        if name == "logout":
            return None
        raise ChatError(404, f"Method '{name}' not found", None)

    async def _emit_room(self, conn: DDPConnection, params: list[Any]) -> None:
        """A client's own room event (typing, user-activity): relayed to the room's other listeners."""
        event = params[0]
        rid, _, what = str(event).partition("/")
        if what not in ("typing", "user-activity"):
            raise ChatError(403, "Not allowed", "not-allowed")
        await self._check_room(conn, rid)
        frame = changed("stream-notify-room", event, params[1:])
        for other in tuple(self.listeners.get(("stream-notify-room", event), ())):
            if other is not conn:
                other.send(frame)
        return None


def _since_param(params: list[Any]) -> dict[str, Any]:
    if params and isinstance(params[0], dict) and "$date" in params[0]:
        from .model import iso

        return {"updatedSince": iso(params[0]["$date"])}
    return {}


__all__ = ["RealtimeServer", "room_obj"]
