"""What every Rocket.Chat v1 operation shares: the operation context (Tx), errors, paging, finding rooms and users, posting."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import store
from ..model import (
    ChatError,
    Message,
    Room,
    User,
    bad_request,
    check_name,
    get_bool,
    get_int,
    get_list,
    get_str,
    iso,
    new_id,
    parse_iso,
    room_obj,
)

MAX_PAGE = 100


ROOM_KEY = {"c": "channel", "p": "group", "d": "room"}


KIND_TYPES = {"channel": ("c",), "group": ("p",), "dm": ("d",), "room": ("c", "p", "d")}


STATUSES = ("online", "away", "busy", "offline")


@dataclass
class Tx:
    """One operation's context in the DB worker."""

    conn: Any
    user: User
    now: int
    settings: Any
    effects: list[tuple[Any, ...]] = field(default_factory=list)

    def message(self, room: Room, message: Message, *, new: bool = True) -> None:
        """Publish a new or changed message to its room's channel after the commit."""
        self.effects.append(("message", room.id, room.type, message, new))

    def notify_room(self, rid: str, event: str, *args: Any) -> None:
        self.effects.append(("notify-room", rid, event, list(args)))

    def notify_user(self, uid: str, event: str, *args: Any) -> None:
        self.effects.append(("notify-user", uid, event, list(args)))


def fail(message: str, error_type: str, status: int = 400) -> ChatError:
    return ChatError(status, f"{message} [{error_type}]" if error_type not in message else message, error_type)


def page(p: dict[str, Any], default: int = 50) -> tuple[int, int]:
    count = get_int(p, "count", default, 0, 1 << 31)
    if count == 0:
        count = MAX_PAGE
    return get_int(p, "offset", 0, 0, 1 << 62), min(count, MAX_PAGE)


def since(p: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = p.get(name)
        if value:
            return parse_iso(str(value))
    return None


def paged(key: str, items: list[Any], offset: int, total: int) -> dict[str, Any]:
    return {key: items, "count": len(items), "offset": offset, "total": total}


def find_room(tx: Tx, p: dict[str, Any], kind: str = "room", *, id_keys: tuple[str, ...] = ("roomId", "rid", "_id"),
              name_keys: tuple[str, ...] = ("roomName", "channel", "group")) -> Room:
    """The room a call names (by id or name) among `kind`'s types, that the caller may see."""
    rid = get_str(p, *id_keys, required=False)
    name = get_str(p, *name_keys, required=False)
    if not rid and not name:
        raise fail('The parameter "roomId" or "roomName" is required', "error-roomid-param-not-provided")
    what = {"channel": "channel", "group": "group", "dm": "room", "room": "room"}[kind]
    room = store.get_room(tx.conn, room_id=rid, usernames=False) if rid else store.get_room(tx.conn, name=name, usernames=False)
    if room is None or room.type not in KIND_TYPES[kind] or not can_access(tx, room):
        raise fail(f'The required "roomId" or "roomName" param provided does not match any {what}', "error-room-not-found")
    return room


def can_access(tx: Tx, room: Room) -> bool:
    """Public rooms are visible to everyone logged in; private and direct rooms to their members only."""
    return room.type == "c" or store.is_member(tx.conn, room.id, tx.user.id)


def member_or_fail(tx: Tx, room: Room, uid: str | None = None) -> None:
    if not store.is_member(tx.conn, room.id, uid or tx.user.id):
        raise fail("You are not in this room" if uid is None else "User is not in this room", "error-user-not-in-room")


def room_answer(tx: Tx, room: Room) -> dict[str, Any]:
    fresh = store.room(tx.conn, room.id)
    return {ROOM_KEY.get(fresh.type, "room"): room_obj(fresh)}


def target_user(tx: Tx, p: dict[str, Any]) -> User:
    who = get_str(p, "userId", "username", "user", required=False)
    if not who:
        raise fail('The parameter "userId" or "username" is required', "error-user-param-not-provided")
    user = store.get_user(tx.conn, user_id=who) or store.get_user(tx.conn, username=who)
    if user is None:
        raise fail("The required \"userId\" or \"username\" param provided does not match any users", "error-invalid-user")
    return user


def _room_change(tx: Tx, room: Room, **fields: Any) -> Room:
    updated = store.update_room(tx.conn, room.id, tx.now, **fields)
    for uid in updated.uids:
        tx.notify_user(uid, "rooms-changed", "updated", room_obj(updated))
    return updated


def _require_room(tx: Tx, permission: str, room: Room) -> None:
    store.require(tx.conn, tx.user, permission, room.id)


def _system(tx: Tx, room: Room, t: str, text: str, **extra: Any) -> None:
    msg = store.add_message(tx.conn, room.id, tx.user, text, tx.now, t=t, extra=extra or None, count=False)
    tx.message(room, msg)


def create_room(tx: Tx, p: dict[str, Any], room_type: str) -> dict[str, Any]:
    name = get_str(p, "name")
    check_name(name, "room name")
    _require_permission(tx, "create-c" if room_type == "c" else "create-p")
    members = get_list(p, "members")
    custom = p.get("customFields") or (p.get("extraData") or {}).get("customFields") or {}
    room = store.create_room(tx.conn, name, tx.user, tx.now, [m for m in members if m != tx.user.username],
                             read_only=get_bool(p, "readOnly"), room_type=room_type,
                             custom_fields=custom if isinstance(custom, dict) else {})
    for uid in room.uids:
        tx.notify_user(uid, "subscriptions-changed", "inserted", {"rid": room.id, "name": room.name, "t": room.type})
        tx.notify_user(uid, "rooms-changed", "inserted", room_obj(room))
    return {ROOM_KEY[room_type]: room_obj(room)}


def _require_permission(tx: Tx, permission: str) -> None:
    store.require(tx.conn, tx.user, permission)


def _last_owner_check(tx: Tx, room: Room, uid: str) -> None:
    if "owner" in store.member_roles(tx.conn, room.id, uid) and store.count_role_in_room(tx.conn, room.id, "owner") == 1:
        raise fail("You are the last owner. Please set new owner before leaving the room.", "error-you-are-last-owner")


def leave_room(tx: Tx, room: Room) -> None:
    member_or_fail(tx, room)
    if room.type == "c":
        _require_permission(tx, "leave-c")
    elif room.type == "p":
        _require_permission(tx, "leave-p")
    _last_owner_check(tx, room, tx.user.id)
    store.leave(tx.conn, room.id, tx.user.id)
    _system(tx, room, "ul", tx.user.username)
    tx.notify_user(tx.user.id, "subscriptions-changed", "removed", {"rid": room.id})


def file_obj(f: dict[str, Any]) -> dict[str, Any]:
    return {"_id": f["id"], "name": f["name"], "type": f["type"], "size": f["size"], "rid": f["room_id"],
            "userId": f["user_id"], "description": f["description"], "uploadedAt": iso(f["created_at"]),
            "url": f"/file-upload/{f['id']}/{f['name']}", "complete": True, "uploading": False, "store": "GridFS:Uploads"}


def _dm_by_username(tx: Tx, p: dict[str, Any]) -> Room:
    other = store.get_user(tx.conn, username=p.get("username"))
    if other is None:
        raise fail("The required \"roomId\" or \"username\" param provided does not match any direct message", "error-room-not-found")
    room = store.get_room(tx.conn, room_id=store.direct_room_id(list({tx.user.id, other.id})))
    if room is None:
        raise fail("The required \"roomId\" or \"username\" param provided does not match any direct message", "error-room-not-found")
    return room


def direct_room(tx: Tx, others: list[User]) -> Room:
    """The direct room of the caller and `others` (created, as Rocket.Chat does, if it does not exist)."""
    users = list({u.id: u for u in [tx.user, *others]}.values())
    rid = store.direct_room_id([u.id for u in users]) if len(users) <= 2 else None
    if rid:
        existing = store.get_room(tx.conn, room_id=rid)
        if existing is not None:
            store.update_subscription(tx.conn, rid, tx.user.id, tx.now, open=True)
            return existing
    _require_permission(tx, "create-d")
    rid = rid or new_id()
    room = store.create_room(tx.conn, rid, None, tx.now, [u.username for u in users], room_type="d", rid=rid, check=False,
                             fname=", ".join(u.username for u in users))
    for u in users:
        tx.notify_user(u.id, "subscriptions-changed", "inserted", {"rid": rid, "t": "d"})
        tx.notify_user(u.id, "rooms-changed", "inserted", room_obj(room))
    return room


def _message_text(p: dict[str, Any], key: str, max_length: int) -> str:
    text = p.get(key)
    if text is None:
        return ""
    if not isinstance(text, str):
        raise bad_request(f"'{key}' must be a string")
    if len(text) > max_length:
        raise fail("Message size exceeds the maximum allowed", "error-message-size-exceeded")
    return text


def _message_extra(p: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    attachments = p.get("attachments")
    if attachments is not None:
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise bad_request("'attachments' must be an array of objects")
        extra["attachments"] = attachments
    for key in ("alias", "emoji", "avatar"):
        if isinstance(p.get(key), str) and p[key]:
            extra[key] = p[key]
    return extra


def post(tx: Tx, room: Room, text: str, *, mid: str | None = None, tmid: str | None = None,
         extra: dict[str, Any] | None = None, as_member: bool = True) -> Message:
    """Post a message as the caller: membership, archived and read-only rooms checked; published after commit."""
    _, message = store.send(tx.conn, tx.user, room.id, text, tx.now, require_member=as_member, mid=mid, tmid=tmid, extra=extra)
    tx.message(room, message)
    mentioned = [m["_id"] for m in message.extra.get("mentions", [])]
    if mentioned and room.type != "d":
        inside = {r[0] for r in tx.conn.execute(
            f"SELECT user_id FROM members WHERE room_id = ? AND user_id IN ({','.join('?' * len(mentioned))})",
            [room.id, *mentioned])}
        outside = [m["username"] for m in message.extra["mentions"] if m["_id"] not in inside]
        if outside:  # as Rocket.Chat: an ephemeral note to the author only, on stream-notify-user <uid>/message
            names = ", ".join(f"@{n}" for n in outside)
            tx.notify_user(tx.user.id, "message", {
                "_id": new_id(), "rid": room.id, "ts": iso(tx.now), "private": True, "tmid": tmid,
                "u": {"_id": "rocket.cat", "username": "rocket.cat", "name": "Rocket.Cat"},
                "msg": f"You mentioned {names}, but they're not in this room."})
    if tmid:
        parent = store.get_message(tx.conn, message.tmid or tmid)
        if parent is not None:
            tx.message(room, parent, new=False)
    return message


def resolve_channel(tx: Tx, channel: str) -> Room:
    """chat.postMessage's `channel`: #name, @username (a direct room), or a room id or name."""
    if channel.startswith("@"):
        other = store.get_user(tx.conn, username=channel[1:])
        if other is None:
            raise fail("Invalid user", "error-invalid-user")
        return direct_room(tx, [other])
    room = None
    if channel.startswith("#"):
        room = store.get_room(tx.conn, name=channel[1:], usernames=False)
    else:
        room = store.get_room(tx.conn, room_id=channel, usernames=False) or store.get_room(tx.conn, name=channel, usernames=False)
    if room is None or not can_access(tx, room):
        raise fail("Invalid channel", "invalid-channel")
    return room


def _message_of(tx: Tx, p: dict[str, Any], *keys: str) -> tuple[Message, Room]:
    mid = get_str(p, *keys)
    message = store.get_message(tx.conn, mid or "", viewer=tx.user.id)
    if message is None:
        raise fail("The message was not found", "error-invalid-message" if "msgId" in keys else "error-message-not-found")
    room = store.room(tx.conn, message.room_id)
    if not can_access(tx, room):
        raise fail("Not allowed", "error-not-allowed", 403)
    return message, room


def _reporter(user: User) -> dict[str, Any]:
    return {"_id": user.id, "username": user.username, "name": user.name or user.username, "createdAt": iso(user.created_at)}


def subscription_obj(row: Any) -> dict[str, Any]:
    obj = {"_id": f"{row['room_id']}{row['user_id']}", "rid": row["room_id"], "u": {"_id": row["user_id"]},
           "name": row["room_name"], "fname": row["room_fname"] or row["room_name"], "t": row["room_type"],
           "ts": iso(row["joined_at"]), "ls": iso(row["ls"] or row["joined_at"]), "open": bool(row["open"]),
           "alert": row["unread"] > 0, "unread": row["unread"], "userMentions": row["mentions"], "groupMentions": 0,
           "f": bool(row["favorite"]), "archived": bool(row["room_archived"]), "_updatedAt": iso(row["updated_at"] or row["joined_at"])}
    roles = (row["roles"] or "").split()
    if roles:
        obj["roles"] = roles
    ignored = json.loads(row["ignored"] or "[]")
    if ignored:
        obj["ignored"] = ignored
    if row["room_prid"]:
        obj["prid"] = row["room_prid"]
    return obj


def mark_read(tx: Tx, rid: str) -> None:
    if not store.update_subscription(tx.conn, rid, tx.user.id, tx.now, unread=0, mentions=0, ls=tx.now):
        raise fail("Subscription not found", "error-invalid-subscription")
    tx.notify_user(tx.user.id, "subscriptions-changed", "updated", {"rid": rid, "unread": 0, "alert": False})


def find_user(tx: Tx, p: dict[str, Any]) -> User:
    user = None
    if p.get("userId"):
        user = store.get_user(tx.conn, user_id=p["userId"])
    elif p.get("username"):
        user = store.get_user(tx.conn, username=p["username"])
    elif p.get("email"):
        user = store.get_user(tx.conn, email=p["email"])
    elif p.get("importId") or p.get("freeSwitchExtension"):
        user = None
    else:
        raise fail('The required "userId" or "username" param was not provided', "error-user-param-not-provided")
    if user is None:
        raise ChatError(400, "User not found.", None)
    return user


def _integration_out(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_secret")}

