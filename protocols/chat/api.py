"""Rocket.Chat's REST API v1 as chat operations on the store: no HTTP here.

Each operation takes a `Tx` (the connection, the logged-in user, the time, and the list of effects to
run after the commit: publications and realtime notifications) and the call's parameters (a dict), and
returns the answer's body. The HTTP glue (server.py) parses requests and maps the method names here.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import rcdata, store
from .model import (
    ADMIN_ROLE,
    GENERAL_ID,
    ChatError,
    Message,
    Room,
    User,
    bad_request,
    check_email,
    check_name,
    forbidden,
    get_bool,
    get_int,
    get_list,
    get_str,
    iso,
    new_id,
    parse_iso,
    rc_message,
    room_obj,
    user_obj,
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


# -- rooms ------------------------------------------------------------------------------------
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


def rooms_list(kind: str, *, joined: bool, key: str, everyone: bool = False) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        offset, count = page(p)
        if everyone:
            _require_permission(tx, "view-room-administration")
        member = tx.user.id if joined else None
        rooms, total = store.query_rooms(tx.conn, types=KIND_TYPES[kind], member=member, offset=offset, count=count,
                                         usernames=kind == "dm")
        return paged(key, [room_obj(r) for r in rooms], offset, total)

    return op


def room_info(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        return {ROOM_KEY.get(room.type, "room") if kind != "room" else "room": room_obj(room)}

    return op


def room_history(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        offset, count = page(p, 20)
        latest = parse_iso(p["latest"]) if p.get("latest") else None
        oldest = parse_iso(p["oldest"]) if p.get("oldest") else None
        messages, _ = store.query_messages(tx.conn, room.id, viewer=tx.user.id, offset=offset, count=count, latest=latest,
                                           oldest=oldest, inclusive=get_bool(p, "inclusive"))
        return {"messages": [rc_message(m) for m in messages]}

    return op


def room_messages(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = _dm_by_username(tx, p) if kind == "dm" and p.get("username") and not p.get("roomId") else find_room(tx, p, kind)
        offset, count = page(p)
        messages, total = store.query_messages(tx.conn, room.id, viewer=tx.user.id, offset=offset, count=count, with_total=True)
        return paged("messages", [rc_message(m) for m in messages], offset, total)

    return op


def room_role(kind: str, role: str, add: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    permission = {"owner": "set-owner", "moderator": "set-moderator", "leader": "set-leader"}[role]

    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        _require_room(tx, permission, room)
        target = target_user(tx, p)
        if not store.is_member(tx.conn, room.id, target.id):
            raise fail("User is not in this room", "error-user-not-in-room")
        if add:
            if not store.add_member_role(tx.conn, room.id, target.id, role):
                raise fail(f"User is already {'an' if role == 'owner' else 'a'} {role}", f"error-user-already-{role}")
            _system(tx, room, "subscription-role-added", target.username, role=role)
        else:
            roles = store.member_roles(tx.conn, room.id, target.id)
            if role not in roles:
                raise fail(f"User is not {'an' if role == 'owner' else 'a'} {role}", f"error-user-not-{role}")
            if role == "owner" and store.count_role_in_room(tx.conn, room.id, "owner") == 1:
                raise fail("This is the last owner. Please set a new owner before removing this one.", "error-remove-last-owner")
            store.remove_member_role(tx.conn, room.id, target.id, role)
            _system(tx, room, "subscription-role-removed", target.username, role=role)
        tx.notify_room(room.id, "roles-change", {"type": "added" if add else "removed", "_id": role,
                                                 "u": {"_id": target.id, "username": target.username}, "scope": room.id})
        return {}

    return op


def room_role_list(kind: str, role: str, key: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        members, _ = store.room_members(tx.conn, room.id, role=role)
        return {key: [{"_id": u.id, "username": u.username, "name": u.name or u.username} for u, _ in members]}

    return op


def room_roles(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        rows = tx.conn.execute("SELECT m.user_id, m.roles, u.username, u.name FROM members m JOIN users u ON u.id = m.user_id "
                               "WHERE m.room_id = ? AND m.roles != '' ORDER BY u.username", (room.id,))
        return {"roles": [{"rid": room.id, "u": {"_id": r[0], "username": r[2], "name": r[3] or r[2]}, "roles": r[1].split(),
                           "_id": f"{room.id}{r[0]}"} for r in rows]}

    return op


def room_members_op(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = _dm_by_username(tx, p) if kind == "dm" and p.get("username") and not p.get("roomId") else find_room(tx, p, kind)
        offset, count = page(p)
        status = get_list(p, "status") or None
        members, total = store.room_members(tx.conn, room.id, offset=offset, count=count, status=status)
        out = []
        for u, roles in members:
            obj = {"_id": u.id, "username": u.username, "name": u.name or u.username, "status": u.status,
                   "_updatedAt": iso(u.updated_at or u.created_at)}
            if roles:
                obj["roles"] = roles
            out.append(obj)
        return paged("members", out, offset, total)

    return op


def room_online(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        query = p.get("query")
        if isinstance(query, str) and query.startswith("{"):
            query = json.loads(query)
        rid = p.get("_id") or p.get("roomId") or (query or {}).get("_id") if isinstance(query, dict) or query is None else None
        if rid:
            room = find_room(tx, {"roomId": rid}, kind)
            members, _ = store.room_members(tx.conn, room.id, exclude_status="offline")
            return {"online": [{"_id": u.id, "username": u.username} for u, _ in members]}
        rows = tx.conn.execute("SELECT id, username FROM users WHERE active = 1 AND status != 'offline' "
                               "ORDER BY username LIMIT ?", (MAX_PAGE,))
        return {"online": [{"_id": r[0], "username": r[1]} for r in rows]}

    return op


def room_counters(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        who = tx.user.id
        if p.get("userId") and p["userId"] != tx.user.id:
            _require_permission(tx, "view-room-administration")
            who = p["userId"]
        sub = store.subscriptions(tx.conn, who, room_id=room.id)
        joined = bool(sub)
        return {"joined": joined, "members": room.users_count or 0,
                "unreads": sub[0]["unread"] if joined else None, "unreadsFrom": iso(sub[0]["ls"] or room.created_at) if joined else None,
                "msgs": room.msgs, "latest": iso(room.last_message_at or room.created_at),
                "userMentions": sub[0]["mentions"] if joined else 0}

    return op


def room_setter(kind: str, param: str, column: str, answer: str | None,
                permission: str = "edit-room", system: str | None = None) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        if room.type == "d":
            member_or_fail(tx, room)
        else:
            _require_room(tx, permission, room)
        if param in ("readOnly", "default", "encrypted"):
            value: Any = get_bool(p, param)
        elif param == "customFields":
            value = p.get(param)
            if not isinstance(value, dict):
                raise fail("The custom fields must be an object", "error-invalid-custom-fields")
        else:
            value = p.get(param, "")
            if not isinstance(value, str):
                raise bad_request(f"'{param}' must be a string")
        if param == "name":
            check_name(value, "room name")
            if store.get_room(tx.conn, name=value, usernames=False) is not None and value.lower() != room.name.lower():
                raise fail(f"A channel with name '{value}' exists", "error-duplicate-channel-name")
            updated = _room_change(tx, room, name=value, fname=value)
        elif param == "joinCode":
            updated = _room_change(tx, room, join_code=value or None)
        else:
            updated = _room_change(tx, room, **{column: value})
        if system:
            _system(tx, updated, system, str(value))
        if answer is None:
            return {ROOM_KEY.get(updated.type, "room"): room_obj(updated)}
        return {answer: value}

    return op


def room_set_type(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        new = get_str(p, "type")
        if new not in ("c", "p"):
            raise fail("The type must be c or p", "error-invalid-room-type")
        _require_room(tx, "edit-room", room)
        if new == room.type:
            raise fail("The channel type is the same as what it would be changed to.", "error-invalid-room-type")
        updated = _room_change(tx, room, type=new)
        _system(tx, updated, "room_changed_privacy", "Private" if new == "p" else "Public")
        return {kind if kind in ("channel", "group") else "room": room_obj(updated)}

    return op


def room_archive(kind: str, archived: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        _require_room(tx, "archive-room" if archived else "unarchive-room", room)
        if room.archived == archived:
            raise fail(f"Room is {'already' if archived else 'not'} archived",
                       "error-room-archived" if archived else "error-room-not-archived")
        _room_change(tx, room, archived=archived)
        _system(tx, room, "room-archived" if archived else "room-unarchived", "")
        return {}

    return op


def room_open(kind: str, is_open: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        member_or_fail(tx, room)
        store.update_subscription(tx.conn, room.id, tx.user.id, tx.now, open=is_open)
        tx.notify_user(tx.user.id, "subscriptions-changed", "updated", {"rid": room.id, "open": is_open})
        return {}

    return op


def room_invite(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        ids = get_list(p, "userIds") or [None]
        for uid in ids:
            target = target_user(tx, p if uid is None else {"userId": uid})
            joined = store.is_member(tx.conn, room.id, tx.user.id)
            if not (joined and store.has_permission(tx.conn, tx.user, "add-user-to-joined-room", room.id)):
                _require_permission(tx, "add-user-to-any-c-room" if room.type == "c" else "add-user-to-any-p-room")
            if store.join(tx.conn, room.id, target.id, tx.now):
                _system(tx, room, "au", target.username)
                tx.notify_user(target.id, "subscriptions-changed", "inserted", {"rid": room.id, "name": room.name, "t": room.type})
        return room_answer(tx, room)

    return op


def room_kick(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        target = target_user(tx, p)
        _require_room(tx, "remove-user", room)
        member_or_fail(tx, room, target.id)
        _last_owner_check(tx, room, target.id)
        store.leave(tx.conn, room.id, target.id)
        _system(tx, room, "ru", target.username)
        tx.notify_user(target.id, "subscriptions-changed", "removed", {"rid": room.id})
        return room_answer(tx, room)

    return op


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


def room_leave(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        leave_room(tx, room)
        return room_answer(tx, room) if kind != "room" else {}

    return op


def room_delete(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        _require_room(tx, {"c": "delete-c", "p": "delete-p", "d": "delete-d"}[room.type], room)
        for uid in store.room(tx.conn, room.id).uids:
            tx.notify_user(uid, "rooms-changed", "removed", {"_id": room.id})
        store.delete_room(tx.conn, room.id)
        return {}

    return op


def room_files(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = _dm_by_username(tx, p) if kind == "dm" and p.get("username") and not p.get("roomId") else find_room(tx, p, kind)
        offset, count = page(p)
        files, total = store.room_uploads(tx.conn, room.id, offset, count)
        return paged("files", [file_obj(f) for f in files], offset, total)

    return op


def file_obj(f: dict[str, Any]) -> dict[str, Any]:
    return {"_id": f["id"], "name": f["name"], "type": f["type"], "size": f["size"], "rid": f["room_id"],
            "userId": f["user_id"], "description": f["description"], "uploadedAt": iso(f["created_at"]),
            "url": f"/file-upload/{f['id']}/{f['name']}", "complete": True, "uploading": False, "store": "GridFS:Uploads"}


def room_integrations(kind: str) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind)
        offset, count = page(p)
        items, total = store.doc_list(
            tx.conn, "integrations", offset=offset, count=count,
            where="EXISTS (SELECT 1 FROM json_each(json_extract(doc, '$.channel')) c WHERE c.value IN (?, ?, ?))",
            args=(f"#{room.name}", room.id, "all_public_channels" if room.type == "c" else "-"))
        return paged("integrations", [_integration_out(i) for i in items], offset, total)

    return op


def room_mentions(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "channel")
    offset, count = page(p)
    messages, total = store.query_messages(tx.conn, room.id, viewer=tx.user.id, mentioned=tx.user.id, offset=offset,
                                           count=count, with_total=True)
    return paged("mentions", [rc_message(m) for m in messages], offset, total)


def channels_join(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "channel")
    code = p.get("joinCode")
    if room.join_code and not store.is_member(tx.conn, room.id, tx.user.id) and code != room.join_code \
            and not store.has_permission(tx.conn, tx.user, "join-without-join-code"):
        raise fail("Invalid Code", "error-code-invalid")
    if room.archived:
        raise fail("Room is archived", "error-room-archived")
    if store.join(tx.conn, room.id, tx.user.id, tx.now):
        _system(tx, room, "uj", tx.user.username)
        tx.notify_user(tx.user.id, "subscriptions-changed", "inserted", {"rid": room.id, "name": room.name, "t": room.type})
    return room_answer(tx, room)


def channels_add_all(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "channel")
    _require_permission(tx, "add-all-to-room")
    tx.conn.execute("INSERT OR IGNORE INTO members (room_id, user_id, joined_at, ls, updated_at) "
                    "SELECT ?, id, ?, ?, ? FROM users WHERE active = 1", (room.id, tx.now, tx.now, tx.now))
    return room_answer(tx, room)


def convert_to_team(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "group")
    _require_room(tx, "create-team", room)
    team = _make_team(tx, room)
    return {"team": team}


def _make_team(tx: Tx, room: Room) -> dict[str, Any]:
    team_id = new_id()
    team = {"_id": team_id, "name": room.name, "type": 1 if room.type == "p" else 0, "roomId": room.id,
            "createdBy": {"_id": tx.user.id, "username": tx.user.username}, "createdAt": iso(tx.now), "_updatedAt": iso(tx.now)}
    store.doc_put(tx.conn, "teams", team_id, team, tx.now)
    store.update_room(tx.conn, room.id, tx.now, team_id=team_id, team_main=True)
    return team


def _find_team(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team_id = get_str(p, "teamId", required=False)
    name = get_str(p, "teamName", required=False)
    if not team_id and not name:
        raise fail("Provide either the \"teamId\" or \"teamName\"", "error-invalid-params")
    if team_id:
        team = store.doc_get(tx.conn, "teams", team_id)
    else:
        found, _ = store.doc_list(tx.conn, "teams", where="json_extract(doc, '$.name') = ?", args=(name,))
        team = found[0] if found else None
    if team is None:
        raise fail("Team not found", "team-does-not-exist")
    return team


def teams_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "create-team")
    kind = get_int(p, "type", 0, 0, 1)
    room = store.create_room(tx.conn, check_name(get_str(p, "name"), "team name"), tx.user, tx.now,
                             [m for m in get_list(p, "members") if m != tx.user.username], room_type="p" if kind else "c")
    return {"team": _make_team(tx, room)}


def teams_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    _require_room(tx, "delete-team", store.room(tx.conn, team["roomId"], usernames=False))
    store.delete_room(tx.conn, team["roomId"])
    tx.conn.execute("UPDATE rooms SET team_id = NULL WHERE team_id = ?", (team["_id"],))
    store.doc_delete(tx.conn, "teams", team["_id"])
    return {}


def teams_info(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    return {"teamInfo": _find_team(tx, p)}


def _team_room(tx: Tx, team: dict[str, Any]) -> Room:
    return store.room(tx.conn, team["roomId"], usernames=False)


def teams_members(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    offset, count = page(p)
    members, total = store.room_members(tx.conn, team["roomId"], offset=offset, count=count)
    out = [{"user": {"_id": u.id, "username": u.username, "name": u.name or u.username, "status": u.status},
            "roles": ["member", *roles], "createdAt": iso(u.created_at)} for u, roles in members]
    return paged("members", out, offset, total)


def _team_roles(member: dict[str, Any]) -> list[str]:
    roles = member.get("roles") or []
    if not isinstance(roles, list):
        raise fail("'roles' must be an array", "error-invalid-params")
    return [r for r in roles if r in ("owner", "moderator", "leader")]


def teams_add_members(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    room = _team_room(tx, team)
    _require_room(tx, "add-team-member", room)
    members = p.get("members")
    if not isinstance(members, list) or not members:
        raise fail("'members' must be a non-empty array", "error-invalid-params")
    for member in members:
        user = find_user(tx, {"userId": member.get("userId")} if isinstance(member, dict) else {})
        if store.join(tx.conn, room.id, user.id, tx.now, roles=" ".join(_team_roles(member))):
            _system(tx, room, "added-user-to-team", user.username)
    return {}


def teams_update_member(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    room = _team_room(tx, team)
    _require_room(tx, "edit-team-member", room)
    member = p.get("member")
    if not isinstance(member, dict):
        raise fail("'member' must be an object", "error-invalid-params")
    user = find_user(tx, {"userId": member.get("userId")})
    member_or_fail(tx, room, user.id)
    roles = _team_roles(member)
    if "owner" not in roles and "owner" in store.member_roles(tx.conn, room.id, user.id) \
            and store.count_role_in_room(tx.conn, room.id, "owner") == 1:
        raise fail("This is the last owner. Please set a new owner before removing this one.", "error-remove-last-owner")
    tx.conn.execute("UPDATE members SET roles = ?, updated_at = ? WHERE room_id = ? AND user_id = ?",
                    (" ".join(roles), tx.now, room.id, user.id))
    return {}


def teams_remove_member(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    room = _team_room(tx, team)
    _require_room(tx, "edit-team-member", room)
    user = find_user(tx, {"userId": get_str(p, "userId")})
    member_or_fail(tx, room, user.id)
    _last_owner_check(tx, room, user.id)
    store.leave(tx.conn, room.id, user.id)
    _system(tx, room, "removed-user-from-team", user.username)
    return {}


def teams_add_rooms(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    _require_room(tx, "move-room-to-team", _team_room(tx, team))
    ids = get_list(p, "rooms")
    if not ids:
        raise fail("'rooms' must be a non-empty array of room ids", "error-invalid-params")
    added = []
    for rid in ids:
        room = find_room(tx, {"roomId": rid}, "room")
        if room.team_main or (room.team_id and room.team_id != team["_id"]):
            raise fail("Room already belongs to a team", "error-room-already-on-team")
        added.append(room_obj(store.update_room(tx.conn, room.id, tx.now, team_id=team["_id"])))
    return {"rooms": added}


def teams_remove_room(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    _require_room(tx, "remove-team-channel", _team_room(tx, team))
    room = find_room(tx, {"roomId": get_str(p, "roomId")}, "room")
    if room.team_id != team["_id"] or room.team_main:
        raise fail("Room is not in this team", "error-invalid-room")
    return {"room": room_obj(store.update_room(tx.conn, room.id, tx.now, team_id=None, team_default=False))}


def teams_update_room(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, {"roomId": get_str(p, "roomId")}, "room")
    if not room.team_id or room.team_main:
        raise fail("Room is not in a team", "error-invalid-room")
    _require_room(tx, "edit-team-channel", room)
    return {"room": room_obj(store.update_room(tx.conn, room.id, tx.now, team_default=get_bool(p, "isDefault")))}


def teams_list_rooms(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    offset, count = page(p)
    kind = get_str(p, "type", required=False)
    types = (kind,) if kind in ("c", "p") else ("c", "p")
    rooms, total = store.query_rooms(tx.conn, types=types, team_id=team["_id"], text=get_str(p, "filter", required=False),
                                     offset=offset, count=count)
    return paged("rooms", [room_obj(r) for r in rooms], offset, total)


def teams_list_rooms_of_user(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    team = _find_team(tx, p)
    user = find_user(tx, {"userId": get_str(p, "userId")})
    if user.id != tx.user.id:
        _require_permission(tx, "view-all-team-channels")
    offset, count = page(p)
    rooms, total = store.query_rooms(tx.conn, types=("c", "p"), team_id=team["_id"], member=user.id, offset=offset, count=count)
    return paged("rooms", [room_obj(r) for r in rooms], offset, total)


def teams_autocomplete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    name = get_str(p, "name") or ""
    found, _ = store.doc_list(tx.conn, "teams", count=10, where="json_extract(doc, '$.name') LIKE ?", args=(f"%{name}%",))
    return {"teams": [{"_id": t["roomId"], "fname": t["name"], "name": t["name"], "teamId": t["_id"], "t": "p" if t["type"] else "c"}
                      for t in found]}


def teams_list_all(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "view-all-teams")
    offset, count = page(p)
    teams, total = store.doc_list(tx.conn, "teams", offset=offset, count=count)
    return paged("teams", teams, offset, total)


# -- direct messages --------------------------------------------------------------------------
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


def dm_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    names = get_list(p, "usernames") or [get_str(p, "username")]
    others = []
    for name in names:
        other = store.get_user(tx.conn, username=name)
        if other is None:
            raise fail("Invalid user", "error-invalid-user")
        others.append(other)
    if get_bool(p, "excludeSelf") and len(others) == 1:
        pass
    room = direct_room(tx, others)
    obj = room_obj(room)
    obj["rid"] = room.id
    return {"room": obj}


def dm_messages_others(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    if not store.setting(tx.conn, "API_Enable_Direct_Message_History_EndPoint"):
        raise fail("This endpoint is disabled", "error-endpoint-disabled", 403)
    _require_permission(tx, "view-room-administration")
    rid = get_str(p, "roomId")
    room = store.get_room(tx.conn, room_id=rid)
    if room is None or room.type != "d":
        raise fail("The required \"roomId\" param provided does not match any direct message", "error-room-not-found")
    offset, count = page(p)
    messages, total = store.query_messages(tx.conn, room.id, offset=offset, count=count, with_total=True)
    return paged("messages", [rc_message(m) for m in messages], offset, total)


# -- messages ---------------------------------------------------------------------------------
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


def chat_post_message(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rid = get_str(p, "roomId", required=False)
    channel = get_str(p, "channel", required=False)
    if not rid and not channel:
        raise fail('The parameter "roomId" or "channel" is required', "error-room-param-not-provided")
    room = find_room(tx, {"roomId": rid}, "room") if rid else resolve_channel(tx, channel or "")
    text = _message_text(p, "text", tx.settings.max_message_length)
    message = post(tx, room, text, tmid=get_str(p, "tmid", required=False), extra=_message_extra(p))
    return {"ts": message.ts, "channel": channel or rid, "message": rc_message(message)}


def chat_send_message(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    message = p.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("rid"), str):
        raise fail("The 'message' parameter must be an object with 'rid'", "error-invalid-params")
    room = find_room(tx, {"roomId": message["rid"]}, "room")
    text = _message_text(message, "msg", tx.settings.max_message_length)
    mid = message.get("_id") if isinstance(message.get("_id"), str) and message["_id"] else None
    sent = post(tx, room, text, mid=mid, tmid=message.get("tmid") if isinstance(message.get("tmid"), str) else None,
                extra=_message_extra(message))
    return {"message": rc_message(sent)}


def _message_of(tx: Tx, p: dict[str, Any], *keys: str) -> tuple[Message, Room]:
    mid = get_str(p, *keys)
    message = store.get_message(tx.conn, mid or "", viewer=tx.user.id)
    if message is None:
        raise fail("The message was not found", "error-invalid-message" if "msgId" in keys else "error-message-not-found")
    room = store.room(tx.conn, message.room_id)
    if not can_access(tx, room):
        raise fail("Not allowed", "error-not-allowed", 403)
    return message, room


def chat_get_message(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    message, _ = _message_of(tx, p, "msgId")
    return {"message": rc_message(message)}


def _within_time_limit(tx: Tx, message: Message, setting: str) -> bool:
    """Rocket.Chat's Message_AllowEditing/Deleting_Block...InMinutes (0 = no limit; bots and apps may bypass it)."""
    minutes = store.setting(tx.conn, setting) or 0
    if not minutes or store.has_permission(tx.conn, tx.user, "bypass-time-limit-edit-and-delete"):
        return True
    return tx.now - message.ts <= int(minutes) * 60_000


def can_edit(tx: Tx, message: Message, room: Room) -> None:
    if store.has_permission(tx.conn, tx.user, "edit-message", room.id):
        return
    if message.user_id != tx.user.id or not store.setting(tx.conn, "Message_AllowEditing"):
        raise fail("Not allowed", "error-action-not-allowed", 400)
    if not _within_time_limit(tx, message, "Message_AllowEditing_BlockEditInMinutes"):
        raise fail("Message editing is blocked", "error-message-editing-blocked")


def update_message(tx: Tx, message: Message, room: Room, text: str) -> Message:
    can_edit(tx, message, room)
    updated = store.edit_message(tx.conn, message, tx.user, text, tx.now)
    tx.message(room, updated, new=False)
    return updated


def chat_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    message, room = _message_of(tx, p, "msgId")
    rid = get_str(p, "roomId")
    if rid != room.id:
        raise fail("The room id provided does not match where the message is from.", "error-invalid-params")
    text = _message_text(p, "text", tx.settings.max_message_length)
    return {"message": rc_message(update_message(tx, message, room, text))}


def delete_message(tx: Tx, message: Message, room: Room) -> None:
    own = message.user_id == tx.user.id
    forced = store.has_permission(tx.conn, tx.user, "force-delete-message", room.id)
    allowed = forced or store.has_permission(tx.conn, tx.user, "delete-message", room.id) or \
        (own and store.setting(tx.conn, "Message_AllowDeleting") and store.has_permission(tx.conn, tx.user, "delete-own-message"))
    if not allowed:
        raise fail("Not allowed", "error-action-not-allowed", 400)
    if not forced and not _within_time_limit(tx, message, "Message_AllowDeleting_BlockDeleteInMinutes"):
        raise fail("Message deleting is blocked", "error-message-deleting-blocked")
    store.delete_message(tx.conn, message, tx.now)
    tx.notify_room(room.id, "deleteMessage", {"_id": message.id})


def chat_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    message, room = _message_of(tx, p, "msgId")
    if get_str(p, "roomId") != room.id:
        raise fail("The room id provided does not match where the message is from.", "error-invalid-params")
    delete_message(tx, message, room)
    return {"_id": message.id, "ts": tx.now, "message": {"_id": message.id, "rid": room.id, "u": {"_id": message.user_id,
                                                                                                    "username": message.username}}}


def react(tx: Tx, message: Message, room: Room, emoji: str, should_react: bool | None = None) -> Message:
    if not emoji:
        raise fail("Emoji is required", "error-invalid-emoji")
    emoji = emoji if emoji.startswith(":") else f":{emoji}:"
    reactions = dict(message.reactions)
    users = list(reactions.get(emoji, {}).get("usernames", []))
    has = tx.user.username in users
    if should_react is None:
        should_react = not has
    if should_react and not has:
        users.append(tx.user.username)
    elif not should_react and has:
        users.remove(tx.user.username)
    if users:
        reactions[emoji] = {"usernames": users}
    else:
        reactions.pop(emoji, None)
    store.set_message_fields(tx.conn, message.id, tx.now, reactions=reactions)
    updated = store.get_message(tx.conn, message.id, viewer=tx.user.id)
    assert updated is not None
    tx.message(room, updated, new=False)
    return updated


def chat_react(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    message, room = _message_of(tx, p, "messageId")
    should = p.get("shouldReact")
    react(tx, message, room, get_str(p, "emoji", "reaction") or "", None if should is None else get_bool(p, "shouldReact"))
    return {}


def chat_pin(pin: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        message, room = _message_of(tx, p, "messageId")
        if not store.setting(tx.conn, "Message_AllowPinning"):
            raise fail("Message pinning not allowed", "error-action-not-allowed")
        _require_room(tx, "pin-message", room)
        store.set_message_fields(tx.conn, message.id, tx.now, pinned=pin)
        updated = store.get_message(tx.conn, message.id)
        assert updated is not None
        tx.message(room, updated, new=False)
        if not pin:
            return {}
        attachment = {"text": message.msg, "author_name": message.username, "author_icon": f"/avatar/{message.username}",
                      "ts": iso(message.ts), "message_link": f"/{ROOM_KEY.get(room.type, 'room')}/{room.name}?msg={message.id}"}
        note = store.add_message(tx.conn, room.id, tx.user, "", tx.now, t="message_pinned",
                                 extra={"attachments": [attachment]}, count=False)
        tx.message(room, note)
        return {"message": rc_message(note)}

    return op


def chat_star(on: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        message, _ = _message_of(tx, p, "messageId")
        if not store.setting(tx.conn, "Message_AllowStarring"):
            raise fail("Message starring not allowed", "error-action-not-allowed")
        store.star(tx.conn, message, tx.user.id, on)
        return {}

    return op


def chat_follow(on: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        message, _ = _message_of(tx, p, "mid")
        extra = dict(message.extra)
        replies = [u for u in extra.get("replies", []) if u != tx.user.id]
        if on:
            replies.append(tx.user.id)
        extra["replies"] = replies
        store.set_message_fields(tx.conn, message.id, tx.now, extra=extra)
        return {}

    return op


def messages_query(key: str, kind: str = "room", room_keys: tuple[str, ...] = ("roomId",), **filters: Any
                   ) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        room = find_room(tx, p, kind, id_keys=room_keys)
        offset, count = page(p)
        extra = {k: (tx.user.id if v == "me" else v) for k, v in filters.items()}
        if "text" in extra:
            extra["text"] = get_str(p, "searchText")
        if extra.pop("since", False):
            extra["updated_since"] = since(p, "since")
        messages, total = store.query_messages(tx.conn, room.id, viewer=tx.user.id, offset=offset, count=count,
                                               with_total=True, **extra)
        if extra.get("deleted"):
            return paged(key, [{"_id": m.id} for m in messages], offset, total)
        return paged(key, [rc_message(m) for m in messages], offset, total)

    return op


def chat_search(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    offset, count = page(p, 20)
    messages, _ = store.query_messages(tx.conn, room.id, viewer=tx.user.id, text=get_str(p, "searchText"),
                                       offset=offset, count=count)
    return {"messages": [rc_message(m) for m in messages]}


def chat_thread_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    parent, room = _message_of(tx, p, "tmid")
    offset, count = page(p)
    messages, total = store.query_messages(tx.conn, room.id, viewer=tx.user.id, tmid=parent.id, offset=offset, count=count,
                                           newest_first=False, with_total=True)
    return paged("messages", [rc_message(m) for m in messages], offset, total)


def chat_sync_thread_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    parent, room = _message_of(tx, p, "tmid")
    updated = since(p, "updatedSince")
    messages, _ = store.query_messages(tx.conn, room.id, viewer=tx.user.id, tmid=parent.id, count=0, updated_since=updated,
                                       newest_first=False)
    removed, _ = store.query_messages(tx.conn, room.id, tmid=parent.id, count=0, updated_since=updated, deleted=True)
    return {"messages": {"update": [rc_message(m) for m in messages], "remove": [{"_id": m.id} for m in removed]}}


def chat_threads_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    offset, count = page(p)
    messages, total = store.query_messages(tx.conn, room.id, viewer=tx.user.id, threads=True, offset=offset, count=count,
                                           with_total=True)
    return paged("threads", [rc_message(m) for m in messages], offset, total)


def chat_sync_threads_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    messages, _ = store.query_messages(tx.conn, room.id, viewer=tx.user.id, threads=True, count=0,
                                       updated_since=since(p, "updatedSince"))
    return {"threads": {"update": [rc_message(m) for m in messages], "remove": []}}


def chat_sync_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    updated = since(p, "lastUpdate")
    if updated is None:
        raise fail("The \"lastUpdate\" query parameter must be a valid date", "error-lastUpdate-param-invalid")
    messages, _ = store.query_messages(tx.conn, room.id, viewer=tx.user.id, count=0, updated_since=updated)
    removed, _ = store.query_messages(tx.conn, room.id, count=0, updated_since=updated, deleted=True)
    return {"result": {"updated": [rc_message(m) for m in messages], "deleted": [{"_id": m.id, "_deletedAt": iso(m.deleted_at or 0)}
                                                                                 for m in removed]}}


def chat_ignore_user(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    member_or_fail(tx, room)
    other = get_str(p, "userId")
    ignore = get_bool(p, "ignore", True)
    row = tx.conn.execute("SELECT ignored FROM members WHERE room_id = ? AND user_id = ?", (room.id, tx.user.id)).fetchone()
    ignored = [u for u in json.loads(row[0] or "[]") if u != other] + ([other] if ignore else [])
    store.update_subscription(tx.conn, room.id, tx.user.id, tx.now, ignored=ignored)
    return {}


def _reporter(user: User) -> dict[str, Any]:
    return {"_id": user.id, "username": user.username, "name": user.name or user.username, "createdAt": iso(user.created_at)}


def chat_report(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Report a message to the moderators (moderation.* reads the reports)."""
    message, room = _message_of(tx, p, "messageId")
    description = get_str(p, "description")
    rid = new_id()
    store.doc_put(tx.conn, "reports", rid, {
        "_id": rid, "message": rc_message(message), "msgId": message.id, "userId": message.user_id,
        "description": description, "reportedBy": _reporter(tx.user), "ts": iso(tx.now), "_hidden": False,
        "room": {"_id": room.id, "name": room.name, "fname": room.fname or room.name, "t": room.type}}, tx.now)
    return {}


def chat_url_preview(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    find_room(tx, p, "room")
    url = get_str(p, "url")
    return {"urlPreview": {"url": url, "meta": {}, "headers": {}}}


# -- rooms.* ----------------------------------------------------------------------------------
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


def rooms_get(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    updated = since(p, "updatedSince")
    rooms, _ = store.query_rooms(tx.conn, types=("c", "p", "d"), member=tx.user.id, usernames=True, updated_since=updated)
    return {"update": [room_obj(r) for r in rooms], "remove": []}


def rooms_info(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    return {"room": room_obj(find_room(tx, p, "room"))}


def rooms_clean_history(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    _require_room(tx, "clean-channel-history", room)
    latest, oldest = get_str(p, "latest"), get_str(p, "oldest")
    count = store.clean_history(tx.conn, room.id, parse_iso(oldest or ""), parse_iso(latest or ""),
                                get_bool(p, "inclusive"), tx.now)
    tx.notify_room(room.id, "deleteMessageBulk", {"rid": room.id, "ts": {"$gte": oldest, "$lte": latest}})
    return {"_id": room.id, "count": count}


def rooms_favorite(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, p, "room")
    member_or_fail(tx, room)
    store.update_subscription(tx.conn, room.id, tx.user.id, tx.now, favorite=get_bool(p, "favorite", True))
    return {}


def rooms_admin(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "view-room-administration")
    offset, count = page(p)
    types = tuple(t for t in get_list(p, "types") if t in ("c", "p", "d", "discussions", "teams")) or ("c", "p", "d")
    types = tuple(t for t in types if t in ("c", "p", "d")) or ("c", "p", "d")
    rooms, total = store.query_rooms(tx.conn, types=types, text=get_str(p, "filter", required=False), offset=offset, count=count)
    return paged("rooms", [room_obj(r) for r in rooms], offset, total)


def rooms_create_discussion(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    parent = find_room(tx, {"roomId": get_str(p, "prid")}, "room")
    title = get_str(p, "t_name")
    if not store.setting(tx.conn, "Discussion_enabled"):
        raise fail("Discussions are disabled", "error-action-not-allowed")
    _require_room(tx, "start-discussion", parent)
    members = [m for m in get_list(p, "users") if m != tx.user.username]
    discussion = store.create_room(tx.conn, new_id(), tx.user, tx.now, members, room_type=parent.type, fname=title,
                                   prid=parent.id, check=False)
    note = store.add_message(tx.conn, parent.id, tx.user, title or "", tx.now, t="discussion-created", drid=discussion.id,
                             count=False)
    tx.message(parent, note)
    reply = p.get("reply")
    if isinstance(reply, str) and reply:
        post(tx, discussion, reply)
    obj = room_obj(discussion)
    obj["rid"] = discussion.id
    return {"discussion": obj}


def rooms_media(tx: Tx, p: dict[str, Any], rid: str, *, confirm_now: bool = False) -> dict[str, Any]:
    room = find_room(tx, {"roomId": rid}, "room")
    member_or_fail(tx, room)
    upload = p.get("file")
    if not isinstance(upload, dict) or not isinstance(upload.get("data"), bytes):
        raise fail("File required", "error-file-required")
    if not store.setting(tx.conn, "FileUpload_Enabled"):
        raise fail("File upload is disabled", "error-file-upload-disabled")
    if len(upload["data"]) > tx.settings.max_upload_bytes:
        raise fail("File exceeds allowed size", "error-file-too-large")
    f = store.add_upload(tx.conn, room.id, tx.user.id, upload.get("name") or "file", upload.get("type") or "application/octet-stream",
                         upload["data"], str(p.get("description") or ""), tx.now)
    if confirm_now:
        return {"message": rc_message(_confirm(tx, room, f, p))}
    return {"file": {"_id": f["id"], "url": f"/file-upload/{f['id']}/{f['name']}"}}


def _confirm(tx: Tx, room: Room, f: dict[str, Any], p: dict[str, Any]) -> Message:
    tx.conn.execute("UPDATE uploads SET confirmed = 1, description = coalesce(nullif(?, ''), description) WHERE id = ?",
                    (str(p.get("description") or ""), f["id"]))
    url = f"/file-upload/{f['id']}/{f['name']}"
    obj = {"_id": f["id"], "name": f["name"], "type": f["type"], "size": f["size"]}
    attachment = {"title": f["name"], "title_link": url, "title_link_download": True, "type": "file",
                  "description": str(p.get("description") or f["description"] or "")}
    if f["type"].startswith("image/"):
        attachment.update({"image_url": url, "image_type": f["type"], "image_size": f["size"]})
    text = _message_text(p, "msg", tx.settings.max_message_length)
    return post(tx, room, text, tmid=get_str(p, "tmid", required=False),
                extra={"file": obj, "files": [obj], "attachments": [attachment]})


def rooms_media_confirm(tx: Tx, p: dict[str, Any], rid: str, file_id: str) -> dict[str, Any]:
    room = find_room(tx, {"roomId": rid}, "room")
    f = store.upload(tx.conn, file_id)
    if f["room_id"] != room.id or f["user_id"] != tx.user.id:
        raise fail("File not found", "error-file-not-found")
    return {"message": rc_message(_confirm(tx, room, f, p))}


def rooms_leave(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    leave_room(tx, find_room(tx, p, "room"))
    return {}


# -- subscriptions ------------------------------------------------------------------------------
def subscriptions_get(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rows = store.subscriptions(tx.conn, tx.user.id, updated_since=since(p, "updatedSince"))
    return {"update": [subscription_obj(r) for r in rows], "remove": []}


def subscriptions_get_one(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rid = get_str(p, "roomId")
    rows = store.subscriptions(tx.conn, tx.user.id, room_id=rid)
    return {"subscription": subscription_obj(rows[0]) if rows else None}


def mark_read(tx: Tx, rid: str) -> None:
    if not store.update_subscription(tx.conn, rid, tx.user.id, tx.now, unread=0, mentions=0, ls=tx.now):
        raise fail("Subscription not found", "error-invalid-subscription")
    tx.notify_user(tx.user.id, "subscriptions-changed", "updated", {"rid": rid, "unread": 0, "alert": False})


def subscriptions_read(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rid = get_str(p, "rid", "roomId")
    mark_read(tx, rid or "")
    return {}


def subscriptions_unread(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rid = get_str(p, "roomId", required=False)
    first = p.get("firstUnreadMessage")
    if not rid and isinstance(first, dict):
        message, room = _message_of(tx, first, "_id")
        rid = room.id
    if not rid:
        raise fail('At least one of "firstUnreadMessage._id" or "roomId" is required', "error-invalid-params")
    unread = tx.conn.execute("SELECT max(unread, 1) FROM members WHERE room_id = ? AND user_id = ?", (rid, tx.user.id)).fetchone()
    if unread is None:
        raise fail("Subscription not found", "error-invalid-subscription")
    store.update_subscription(tx.conn, rid, tx.user.id, tx.now, unread=unread[0])
    return {}


# -- users ----------------------------------------------------------------------------------------
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


def users_info(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    user = find_user(tx, p)
    private = user.id == tx.user.id or store.has_permission(tx.conn, tx.user, "view-full-other-user-info")
    obj = user_obj(user, private=private)
    if p.get("includeUserRooms") in (True, "true") and private:
        obj["rooms"] = [subscription_obj(r) for r in store.subscriptions(tx.conn, user.id)]
    return {"user": obj}


def users_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "view-user-administration")
    offset, count = page(p)
    query = p.get("query")
    text = None
    if isinstance(query, str) and query.startswith("{"):
        try:
            q = json.loads(query)
            text = q.get("username") or q.get("name") if isinstance(q, dict) else None
            if isinstance(text, dict):
                text = text.get("$regex")
        except ValueError:
            text = None
    users, total = store.list_users(tx.conn, offset, count, text=text if isinstance(text, str) else None)
    return paged("users", [user_obj(u, private=True) for u in users], offset, total)


def users_presence(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    user = find_user(tx, p) if (p.get("userId") or p.get("username")) else tx.user
    return {"presence": user.status, "connectionStatus": "online" if user.status != "offline" else "offline",
            "lastLogin": iso(user.last_login) if user.last_login else None}


def users_set_status(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, p) if (p.get("userId") or p.get("username")) else tx.user
    if target.id != tx.user.id:
        _require_permission(tx, "edit-other-user-info")
    fields: dict[str, Any] = {}
    if "message" in p:
        message = p.get("message") or ""
        if not isinstance(message, str) or len(message) > 120:
            raise fail("The status message is too long", "error-invalid-status-message")
        fields["status_text"] = message
    status = p.get("status")
    if status is not None:
        if status not in STATUSES:
            raise fail("Invalid status", "error-invalid-status")
        fields["status"] = status
        fields["status_default"] = status
    if fields:
        user = store.update_user(tx.conn, target.id, tx.now, **fields)
        tx.effects.append(("presence", user.id, user.username, user.status, user.status_text))
    return {}


def users_set_avatar(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, p) if (p.get("userId") or p.get("username")) else tx.user
    if target.id != tx.user.id:
        _require_permission(tx, "edit-other-user-avatar")
    url = p.get("avatarUrl")
    image = p.get("image")
    if isinstance(url, str) and url:
        if not url.startswith(("http://", "https://")):
            raise fail("Invalid avatar URL", "error-avatar-invalid-url")
        store.update_user(tx.conn, target.id, tx.now, avatar_url=url)
    elif isinstance(image, dict) and isinstance(image.get("data"), bytes):
        if len(image["data"]) > tx.settings.max_upload_bytes:
            raise fail("File exceeds allowed size", "error-file-too-large")
        store.doc_put(tx.conn, "avatars", target.id, {"type": image.get("type") or "image/png",
                                                      "data": image["data"].hex()}, tx.now)
        store.update_user(tx.conn, target.id, tx.now, avatar_url=f"/avatar/{target.username}?etag={tx.now}")
    else:
        raise fail("The avatar was not provided", "error-avatar-not-provided")
    return {}


def users_reset_avatar(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, p)
    if target.id != tx.user.id:
        _require_permission(tx, "edit-other-user-avatar")
    store.doc_delete(tx.conn, "avatars", target.id)
    store.update_user(tx.conn, target.id, tx.now, avatar_url=None)
    return {}


def users_set_active(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "edit-other-user-active-status")
    target = find_user(tx, {"userId": get_str(p, "userId")})
    active = get_bool(p, "activeStatus")
    if not active and ADMIN_ROLE in target.roles:
        others = tx.conn.execute("SELECT count(*) FROM user_roles ur JOIN users u ON u.id = ur.user_id "
                                 "WHERE ur.role = 'admin' AND u.active = 1 AND u.id != ?", (target.id,)).fetchone()[0]
        if not others:
            raise fail("Leaving the app without active admins is not allowed", "error-no-admins-left")
    store.update_user(tx.conn, target.id, tx.now, active=active)
    if not active:
        store.revoke_user_tokens(tx.conn, target.id)
    return {"user": {"_id": target.id, "active": active}}


def users_preferences(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    return {"preferences": tx.user.preferences}


def users_set_preferences(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, {"userId": p.get("userId") or tx.user.id})
    if target.id != tx.user.id:
        _require_permission(tx, "edit-other-user-info")
    data = p.get("data")
    if not isinstance(data, dict):
        raise fail("'data' must be an object of preferences", "error-invalid-params")
    prefs = {**target.preferences, **data}
    user = store.update_user(tx.conn, target.id, tx.now, preferences=prefs)
    return {"user": {"_id": user.id, "settings": {"preferences": user.preferences}}}


def users_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, {"userId": get_str(p, "userId")})
    data = p.get("data")
    if not isinstance(data, dict):
        raise fail("'data' must be an object", "error-invalid-params")
    if target.id != tx.user.id:
        _require_permission(tx, "edit-other-user-info")
    fields: dict[str, Any] = {}
    if "username" in data:
        fields["username"] = check_name(data["username"], "username")
    if "name" in data:
        if not isinstance(data["name"], str):
            raise bad_request("'name' must be a string")
        fields["name"] = data["name"]
    if "email" in data:
        fields["email"] = check_email(data["email"])
    if "active" in data:
        _require_permission(tx, "edit-other-user-active-status")
        fields["active"] = bool(data["active"])
    if p.get("_password_hash"):
        if target.id != tx.user.id:
            _require_permission(tx, "edit-other-user-password")
        fields["password_hash"] = p["_password_hash"]
    user = store.update_user(tx.conn, target.id, tx.now, **fields)
    if isinstance(data.get("roles"), list):
        _require_permission(tx, "assign-roles")
        for role in user.roles:
            if role not in data["roles"]:
                store.remove_user_role(tx.conn, user.id, role)
        for role in data["roles"]:
            store.add_user_role(tx.conn, user.id, role)
        user = store.update_user(tx.conn, user.id, tx.now)
    return {"user": user_obj(user, private=True)}


def users_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "delete-user")
    target = find_user(tx, p)
    store.delete_user(tx.conn, target.id, confirm_relinquish=get_bool(p, "confirmRelinquish"))
    return {}


def users_create_token(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Rocket.Chat's users.createToken: only with the server's token secret (CREATE_TOKENS_FOR_USERS_SECRET)."""
    secret = tx.settings.create_tokens_secret
    if not secret or not isinstance(p.get("secret"), str) or not secrets.compare_digest(p["secret"], secret):
        raise fail("Not authorized", "error-not-authorized", 403)
    target = find_user(tx, p)
    if target.id != tx.user.id:
        _require_permission(tx, "user-generate-access-token")
    token = p["_new_token"]
    store.issue_token(tx.conn, target.id, p["_new_token_hash"], tx.now, tx.settings.token_ttl * 1000)
    return {"data": {"userId": target.id, "authToken": token}}


def users_forgot_password(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    get_str(p, "email")
    return {}


# -- roles and permissions ----------------------------------------------------------------------
def role_obj(role: dict[str, Any]) -> dict[str, Any]:
    return {"_id": role["name"], "name": role["name"], "description": role["description"], "protected": role["protected"],
            "scope": role["scope"], "mandatory2fa": False, "_updatedAt": iso(role.get("updated_at") or 0)}


def roles_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    return {"roles": [role_obj(r) for r in store.list_roles(tx.conn)]}


def roles_sync(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    updated = since(p, "updatedSince") or 0
    return {"roles": {"update": [role_obj(r) for r in store.list_roles(tx.conn) if (r.get("updated_at") or 0) >= 0
                                 or updated], "remove": []}}


def roles_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "access-permissions")
    name = get_str(p, "name")
    if not store.create_role(tx.conn, name or "", get_str(p, "description", required=False) or "",
                             get_str(p, "scope", required=False) or "Users", tx.now):
        raise fail("Role name already exists", "error-duplicate-role-names-not-allowed")
    return {"role": role_obj(store.get_role(tx.conn, name or ""))}


def roles_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "access-permissions")
    role = store.get_role(tx.conn, get_str(p, "roleId") or "")
    description = get_str(p, "description", required=False)
    scope = get_str(p, "scope", required=False)
    tx.conn.execute("UPDATE roles SET description = coalesce(?, description), scope = coalesce(?, scope), updated_at = ? "
                    "WHERE name = ?", (description, scope, tx.now, role["name"]))
    return {"role": role_obj(store.get_role(tx.conn, role["name"]))}


def roles_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "access-permissions")
    store.delete_role(tx.conn, get_str(p, "roleId", "roleName") or "")
    return {}


def roles_user(add: bool) -> Callable[[Tx, dict[str, Any]], dict[str, Any]]:
    def op(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
        role = get_str(p, "roleId", "roleName") or ""
        _require_permission(tx, "assign-roles")
        target = find_user(tx, {"username": get_str(p, "username")})
        info = store.get_role(tx.conn, role)
        rid = get_str(p, "roomId", "scope", required=False)
        if info["scope"] == "Subscriptions" and rid:
            (store.add_member_role if add else store.remove_member_role)(tx.conn, rid, target.id, role)
        elif add:
            if not store.add_user_role(tx.conn, target.id, role):
                raise fail("User already assigned", "error-user-already-in-role")
        elif not store.remove_user_role(tx.conn, target.id, role):
            raise fail("User is not in this role", "error-user-not-in-role")
        return {"role": role_obj(info)}

    return op


def roles_users_in_role(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    role = get_str(p, "role") or ""
    store.get_role(tx.conn, role)
    offset, count = page(p)
    rid = get_str(p, "roomId", required=False)
    if rid:
        room = find_room(tx, {"roomId": rid}, "room")
        members, total = store.room_members(tx.conn, room.id, role=role, offset=offset, count=count)
        users = [u for u, _ in members]
    else:
        _require_permission(tx, "access-permissions")
        users, total = store.list_users(tx.conn, offset, count, role=role)
    return {"users": [user_obj(u) for u in users], "total": total}


def roles_public_users(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rows = tx.conn.execute("SELECT DISTINCT u.* FROM users u JOIN user_roles ur ON ur.user_id = u.id "
                           "WHERE ur.role NOT IN ('user', 'guest', 'anonymous') ORDER BY u.username").fetchall()
    return {"users": [{"_id": u.id, "username": u.username, "roles": u.roles} for u in store._users(tx.conn, rows)]}


def permission_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    updated = since(p, "updatedSince")
    rows = store.permissions_since(tx.conn, updated)
    return {"update": [{"_id": pid, "roles": roles, "_updatedAt": iso(at)} for pid, roles, at in rows], "remove": []}


def permission_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    items = p.get("permissions")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("_id"), str)
                                              and isinstance(i.get("roles"), list) for i in items):
        raise fail("Invalid body params: 'permissions' must be an array of {_id, roles}", "error-invalid-params")
    _require_permission(tx, "access-permissions")
    for item in items:
        store.set_permission_roles(tx.conn, item["_id"], item["roles"], tx.now)
    rows = store.permissions_since(tx.conn, None)
    return {"permissions": [{"_id": pid, "roles": roles, "_updatedAt": iso(at)} for pid, roles, at in rows]}


# -- settings, statistics, directory --------------------------------------------------------------
def _setting_obj(key: str, value: Any, updated: int = 0) -> dict[str, Any]:
    default = rcdata.SETTINGS.get(key)
    obj = {"_id": key, "value": value, "enterprise": False, "_updatedAt": iso(updated)}
    if default:
        obj.update({"type": default[1], "public": default[2], "group": default[3], "packageValue": default[0]})
    return obj


def _settings(tx: Tx, p: dict[str, Any], public: bool) -> dict[str, Any]:
    changed = store.settings_changed(tx.conn)
    items = [_setting_obj(k, changed.get(k, (d[0], 0))[0], changed.get(k, (d[0], 0))[1])
             for k, d in rcdata.SETTINGS.items() if d[2] or not public]
    items += [_setting_obj(k, v, at) for k, (v, at) in changed.items() if k not in rcdata.SETTINGS and not public]
    offset, count = page(p)
    return paged("settings", items[offset:offset + count], offset, len(items))


def settings_private(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "view-privileged-setting")
    return _settings(tx, p, False)


def settings_public(p: dict[str, Any], conn: Any) -> dict[str, Any]:
    tx = Tx(conn, User("", "", "", None, True, 0), 0, None)
    return _settings(tx, p, True)


def setting_get(tx: Tx, p: dict[str, Any], key: str) -> dict[str, Any]:
    _require_permission(tx, "view-privileged-setting")
    if key not in rcdata.SETTINGS and key not in store.settings_changed(tx.conn):
        raise fail("Setting not found", "error-setting-not-found")
    return {"_id": key, "value": store.setting(tx.conn, key)}


def setting_set(tx: Tx, p: dict[str, Any], key: str) -> dict[str, Any]:
    _require_permission(tx, "edit-privileged-setting")
    if "value" not in p and "execute" not in p:
        raise fail("The value is required", "error-invalid-params")
    default = rcdata.SETTINGS.get(key)
    value = p.get("value")
    if default and default[1] == "boolean" and not isinstance(value, bool):
        raise fail("The value must be a boolean", "error-invalid-setting-value")
    store.set_setting(tx.conn, key, value, tx.now)
    return {}


def statistics(tx: Tx, p: dict[str, Any], installed_at: int, unique_id: str) -> dict[str, Any]:
    _require_permission(tx, "view-statistics")
    stats: dict[str, Any] = store.counts(tx.conn)
    stats.update({
        "_id": unique_id, "uniqueId": unique_id, "installedAt": iso(installed_at), "version": rcdata.ROCKETCHAT_VERSION,
        "wizard": {"organizationType": "community", "industry": "", "size": "", "country": "", "language": "en",
                   "serverType": "privateTeam"},
        "deploymentFingerprintHash": unique_id, "deploymentFingerprintVerified": True,
        "createdAt": iso(tx.now), "lastLogin": iso(tx.user.last_login or tx.now), "process": {"uptime": time.monotonic()},
        "enterpriseReady": False, "uploadsTotal": stats.get("uploadsTotal", 0),
    })
    return stats


def directory(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    query = p.get("query") or {}
    if isinstance(query, str):
        try:
            query = json.loads(query)
        except ValueError:
            raise fail("Invalid query", "error-invalid-query") from None
    if not isinstance(query, dict):
        raise fail("Invalid query", "error-invalid-query")
    text = query.get("text") or ""
    kind = query.get("type") or "channels"
    offset, count = page(p)
    if kind == "users":
        users, total = store.list_users(tx.conn, offset, count, text=text, active_only=True)
        items = [{"_id": u.id, "username": u.username, "name": u.name or u.username, "createdAt": iso(u.created_at)} for u in users]
    elif kind in ("channels", "teams"):
        rooms, total = store.query_rooms(tx.conn, types=("c",), text=text, offset=offset, count=count)
        items = [room_obj(r) for r in rooms if kind == "channels" or r.team_main]
    else:
        raise fail("Invalid type", "error-invalid-type")
    return {"result": items, "count": len(items), "offset": offset, "total": total}


def spotlight(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    text = (get_str(p, "query", required=False) or "").lstrip("@#")
    users, _ = store.list_users(tx.conn, 0, 10, text=text, active_only=True)
    rooms, _ = store.query_rooms(tx.conn, types=("c",), text=text, count=10)
    mine, _ = store.query_rooms(tx.conn, types=("p",), text=text, count=10, member=tx.user.id)
    return {"users": [{"_id": u.id, "username": u.username, "name": u.name or u.username, "status": u.status} for u in users],
            "rooms": [{"_id": r.id, "name": r.name, "fname": r.fname, "t": r.type} for r in [*rooms, *mine]]}


# -- integrations ---------------------------------------------------------------------------------
INTEGRATION_TYPES = ("webhook-incoming", "webhook-outgoing")


def _integration_out(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_secret")}


def _integration_fields(tx: Tx, p: dict[str, Any], kind: str) -> dict[str, Any]:
    name = get_str(p, "name")
    username = get_str(p, "username")
    user = store.get_user(tx.conn, username=(username or "").lstrip("@"))
    if user is None:
        raise fail("Invalid user", "error-invalid-user")
    channels = [c.strip() for c in str(get_str(p, "channel") or "").split(",") if c.strip()]
    for channel in channels:
        if channel.startswith("#"):
            if store.get_room(tx.conn, name=channel[1:], usernames=False) is None:
                raise fail("Invalid channel", "error-invalid-channel")
        elif channel.startswith("@"):
            if store.get_user(tx.conn, username=channel[1:]) is None:
                raise fail("Invalid user", "error-invalid-user")
        elif channel != "all_public_channels":
            raise fail("Invalid channel. Start with @ or #", "error-invalid-channel-start-with-chars")
    fields = {"name": name, "enabled": get_bool(p, "enabled", True), "username": user.username, "userId": user.id,
              "channel": channels, "scriptEnabled": get_bool(p, "scriptEnabled"),
              "alias": p.get("alias") or "", "avatar": p.get("avatar") or "", "emoji": p.get("emoji") or "",
              "script": p.get("script") or ""}
    if kind == "webhook-outgoing":
        urls = p.get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls) or not urls:
            raise fail("Invalid URLs", "error-invalid-urls")
        fields.update({"event": get_str(p, "event"), "urls": urls, "triggerWords": get_list(p, "triggerWords"),
                       "token": p.get("token") or "", "retryFailedCalls": get_bool(p, "retryFailedCalls", True)})
    return fields


def integrations_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    kind = get_str(p, "type")
    if kind not in INTEGRATION_TYPES:
        raise fail("Invalid integration type", "error-invalid-type")
    _require_permission(tx, "manage-incoming-integrations" if kind == "webhook-incoming" else "manage-outgoing-integrations")
    fields = _integration_fields(tx, p, kind)
    iid = new_id()
    doc = {"_id": iid, "type": kind, **fields, "_createdAt": iso(tx.now), "_createdBy": {"_id": tx.user.id,
                                                                                          "username": tx.user.username},
           "_updatedAt": iso(tx.now)}
    if kind == "webhook-incoming":
        doc["token"] = secrets.token_urlsafe(36)
    store.doc_put(tx.conn, "integrations", iid, doc, tx.now)
    return {"integration": _integration_out(doc)}


def _integration(tx: Tx, iid: str | None) -> dict[str, Any]:
    doc = store.doc_get(tx.conn, "integrations", iid or "")
    if doc is None:
        raise fail("The integration does not exists.", "error-invalid-integration")
    return doc


def integrations_get(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-incoming-integrations")
    return {"integration": _integration_out(_integration(tx, get_str(p, "integrationId")))}


def integrations_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-incoming-integrations")
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "integrations", offset=offset, count=count)
    return paged("integrations", [_integration_out(i) for i in items], offset, total)


def integrations_history(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-outgoing-integrations")
    doc = _integration(tx, get_str(p, "id"))
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "integration_history", offset=offset, count=count,
                                  where="json_extract(doc, '$.integration._id') = ?", args=(doc["_id"],))
    return paged("history", items, offset, total)


def integrations_remove(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    kind = get_str(p, "type")
    _require_permission(tx, "manage-incoming-integrations" if kind == "webhook-incoming" else "manage-outgoing-integrations")
    doc = _integration(tx, get_str(p, "integrationId"))
    if doc["type"] != kind:
        raise fail("The integration does not exists.", "error-invalid-integration")
    store.doc_delete(tx.conn, "integrations", doc["_id"])
    return {"integration": _integration_out(doc)}


def integrations_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    kind = get_str(p, "type")
    if kind not in INTEGRATION_TYPES:
        raise fail("Invalid integration type", "error-invalid-type")
    _require_permission(tx, "manage-incoming-integrations" if kind == "webhook-incoming" else "manage-outgoing-integrations")
    doc = _integration(tx, get_str(p, "integrationId"))
    if doc["type"] != kind:
        raise fail("The integration does not exists.", "error-invalid-integration")
    doc.update(_integration_fields(tx, p, kind))
    doc["_updatedAt"] = iso(tx.now)
    store.doc_put(tx.conn, "integrations", doc["_id"], doc, tx.now)
    return {"integration": _integration_out(doc)}


def incoming_webhook(conn: Any, iid: str, token: str, p: dict[str, Any], now: int, settings: Any) -> Tx:
    """Post what an incoming webhook received, as the integration's user, into its channel (or `channel`/`roomId`)."""
    doc = store.doc_get(conn, "integrations", iid)
    if doc is None or doc.get("type") != "webhook-incoming" or not secrets.compare_digest(str(doc.get("token", "")), token):
        raise ChatError(404, "Invalid integration id or token provided.", "error-invalid-integration")
    if not doc.get("enabled", True):
        raise ChatError(400, "Integration is disabled", "error-integration-disabled")
    user = store.get_user(conn, user_id=doc["userId"])
    if user is None:
        raise ChatError(400, "Invalid user", "error-invalid-user")
    tx = Tx(conn, user, now, settings)
    channels = [p["channel"]] if isinstance(p.get("channel"), str) else list(doc.get("channel") or [])
    if isinstance(p.get("roomId"), str):
        channels = [p["roomId"]]
    extra = _message_extra(p)
    for key in ("alias", "emoji", "avatar"):
        if doc.get(key) and key not in extra:
            extra[key] = doc[key]
    text = _message_text(p, "text", settings.max_message_length)
    for channel in channels:
        room = resolve_channel(tx, channel)
        post(tx, room, text, extra=extra, as_member=False)
    return tx


# -- invites ------------------------------------------------------------------------------------
def _invite_obj(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc)


def find_or_create_invite(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    room = find_room(tx, {"roomId": get_str(p, "rid")}, "room")
    _require_room(tx, "create-invite-links", room)
    days = get_int(p, "days", 1, 0, 3650)
    max_uses = get_int(p, "maxUses", 0, 0, 1 << 31)
    found, _ = store.doc_list(tx.conn, "invites", where="json_extract(doc, '$.rid') = ? AND json_extract(doc, '$.userId') = ? "
                              "AND json_extract(doc, '$.days') = ? AND json_extract(doc, '$.maxUses') = ?",
                              args=(room.id, tx.user.id, days, max_uses))
    live = [d for d in found if not d.get("expires") or parse_iso(d["expires"]) > tx.now]
    if live:
        return _invite_obj(live[0])
    iid = secrets.token_urlsafe(6)
    doc = {"_id": iid, "days": days, "maxUses": max_uses, "rid": room.id, "userId": tx.user.id, "createdAt": iso(tx.now),
           "expires": iso(tx.now + days * 86_400_000) if days else None, "uses": 0, "_updatedAt": iso(tx.now),
           "url": f"{tx.settings.site_url.rstrip('/')}/invite/{iid}"}
    store.doc_put(tx.conn, "invites", iid, doc, tx.now)
    return _invite_obj(doc)


def list_invites(tx: Tx, p: dict[str, Any]) -> list[dict[str, Any]]:
    _require_permission(tx, "create-invite-links")
    items, _ = store.doc_list(tx.conn, "invites")
    return [_invite_obj(d) for d in items]


def remove_invite(tx: Tx, p: dict[str, Any], iid: str) -> bool:
    _require_permission(tx, "create-invite-links")
    if not store.doc_delete(tx.conn, "invites", iid):
        raise fail("Invalid invitation id", "invalid-invitation-id")
    return True


def _valid_invite(tx: Tx, token: str | None) -> dict[str, Any]:
    doc = store.doc_get(tx.conn, "invites", token or "")
    if doc is None:
        raise fail("Invalid token", "error-invalid-token")
    if doc.get("expires") and parse_iso(doc["expires"]) <= tx.now:
        raise fail("The invite token has expired", "invalid-token")
    if doc.get("maxUses") and doc.get("uses", 0) >= doc["maxUses"]:
        raise fail("The invite token has reached its maximum uses", "invalid-token")
    return doc


def validate_invite(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    try:
        _valid_invite(tx, get_str(p, "token"))
    except ChatError:
        return {"valid": False}
    return {"valid": True}


def use_invite(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    doc = _valid_invite(tx, get_str(p, "token"))
    room = store.room(tx.conn, doc["rid"])
    if store.join(tx.conn, room.id, tx.user.id, tx.now):
        doc["uses"] = doc.get("uses", 0) + 1
        store.doc_put(tx.conn, "invites", doc["_id"], doc, tx.now)
        _system(tx, room, "uj", tx.user.username)
    return {"room": {"rid": room.id, "prid": room.prid, "fname": room.fname, "name": room.name, "t": room.type}}


def send_invitation_email(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "bulk-register-user")
    emails = p.get("emails")
    if not isinstance(emails, list) or not emails:
        raise fail("Body param \"emails\" is required", "error-email-send-failed")
    valid = [e for e in emails if isinstance(e, str) and check_email(e)]
    return {"success": True, "sent": len(valid)}


# -- custom user status -------------------------------------------------------------------------
def _status_fields(p: dict[str, Any]) -> tuple[str, str]:
    name = get_str(p, "name")
    kind = get_str(p, "statusType")
    if kind not in STATUSES:
        raise fail("Invalid status type", "error-input-is-not-a-valid-field")
    return name or "", kind or ""


def custom_status_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "custom_statuses", offset=offset, count=count)
    return paged("statuses", items, offset, total)


def custom_status_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-user-status")
    name, kind = _status_fields(p)
    taken, _ = store.doc_list(tx.conn, "custom_statuses", where="lower(json_extract(doc, '$.name')) = lower(?)", args=(name,))
    if taken:
        raise fail("Custom User Status Name Already Exists", "Custom_User_Status_Error_Name_Already_In_Use")
    sid = new_id()
    doc = {"_id": sid, "name": name, "statusType": kind, "_updatedAt": iso(tx.now)}
    store.doc_put(tx.conn, "custom_statuses", sid, doc, tx.now)
    return {"customUserStatus": doc}


def custom_status_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-user-status")
    doc = store.doc_get(tx.conn, "custom_statuses", get_str(p, "_id") or "")
    if doc is None:
        raise fail("Custom User Status not found.", "error-invalid-custom-user-status")
    doc["name"], doc["statusType"] = _status_fields(p)
    doc["_updatedAt"] = iso(tx.now)
    store.doc_put(tx.conn, "custom_statuses", doc["_id"], doc, tx.now)
    return {"customUserStatus": doc}


def custom_status_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-user-status")
    if not store.doc_delete(tx.conn, "custom_statuses", get_str(p, "customUserStatusId") or ""):
        raise fail("Custom User Status not found.", "error-invalid-custom-user-status")
    return {}


def licenses_info(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """A Community server: no license, no Enterprise modules (as Rocket.Chat Community answers)."""
    return {"license": {"activeModules": [], "hasValidLicense": False, "tags": [], "limits": {}, "trial": False,
                        "preventedActions": {}}}


def licenses_max_active_users(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    total = tx.conn.execute("SELECT count(*) FROM users WHERE active = 1 AND type = 'user'").fetchone()[0]
    return {"maxActiveUsers": None, "activeUsers": total}


def service_configurations(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    return {"configurations": []}


__all__ = ["Tx", "GENERAL_ID", "forbidden"]


# -- custom emoji, custom sounds, assets ----------------------------------------------------------
ASSETS = ("logo", "background", "favicon_ico", "favicon", "favicon_16", "favicon_32", "favicon_192", "favicon_512",
          "touchicon_180", "touchicon_180_pre", "tile_70", "tile_144", "tile_150", "tile_310_square", "tile_310_wide",
          "safari_pinned", "logo_dark")


def _file_part(p: dict[str, Any], key: str, *, required: bool) -> dict[str, Any] | None:
    part = p.get(key)
    if isinstance(part, dict) and isinstance(part.get("data"), bytes):
        return part
    if required:
        raise fail("No file uploaded", "error-no-file-uploaded" if key != "emoji" else "error-invalid-emoji")
    return None


def _aliases(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(a).strip() for a in value if str(a).strip()]
    return [a.strip() for a in str(value or "").split(",") if a.strip()]


def _emoji_name(tx: Tx, name: Any, aliases: list[str], own_id: str | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise fail("The field Name is required", "error-the-field-is-required")
    name = name.strip()
    taken, _ = store.doc_list(tx.conn, "emoji", where="json_extract(doc, '$.name') = ? OR EXISTS "
                              "(SELECT 1 FROM json_each(json_extract(doc, '$.aliases')) a WHERE a.value = ?)", args=(name, name))
    if any(e["_id"] != own_id for e in taken) or name in aliases:
        raise fail(f"The custom emoji or one of its aliases is already in use: {name}", "Custom_Emoji_Error_Name_Or_Alias_Already_In_Use")
    return name


def emoji_create(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-emoji")
    part = _file_part(p, "emoji", required=True)
    assert part is not None
    aliases = _aliases(p.get("aliases"))
    name = _emoji_name(tx, p.get("name"), aliases)
    eid = new_id()
    extension = (part.get("name") or "").rsplit(".", 1)[-1].lower() or "png"
    doc = {"_id": eid, "name": name, "aliases": aliases, "extension": extension, "etag": new_id(), "_updatedAt": iso(tx.now)}
    store.doc_put(tx.conn, "emoji", eid, doc, tx.now)
    store.doc_put(tx.conn, "emoji_files", eid, {"type": part.get("type") or "image/png", "data": part["data"].hex()}, tx.now)
    return {}


def emoji_update(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-emoji")
    doc = store.doc_get(tx.conn, "emoji", get_str(p, "_id") or "")
    if doc is None:
        raise fail("Emoji not found", "Custom_Emoji_Error_Invalid_Emoji")
    aliases = _aliases(p.get("aliases")) if "aliases" in p else doc.get("aliases", [])
    doc["name"] = _emoji_name(tx, p.get("name"), aliases, doc["_id"])
    doc["aliases"] = aliases
    part = _file_part(p, "emoji", required=False)
    if part is not None:
        doc["extension"] = (part.get("name") or "").rsplit(".", 1)[-1].lower() or doc.get("extension", "png")
        doc["etag"] = new_id()
        store.doc_put(tx.conn, "emoji_files", doc["_id"], {"type": part.get("type") or "image/png", "data": part["data"].hex()},
                      tx.now)
    doc["_updatedAt"] = iso(tx.now)
    store.doc_put(tx.conn, "emoji", doc["_id"], doc, tx.now)
    return {}


def emoji_delete(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-emoji")
    eid = get_str(p, "emojiId") or ""
    doc = store.doc_get(tx.conn, "emoji", eid)
    if doc is None:
        raise fail("Emoji not found", "Custom_Emoji_Error_Invalid_Emoji")
    store.doc_delete(tx.conn, "emoji", eid)
    store.doc_delete(tx.conn, "emoji_files", eid)
    store.doc_put(tx.conn, "emoji_removed", eid, {"_id": eid, "_deletedAt": iso(tx.now)}, tx.now)
    return {}


def emoji_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    updated = since(p, "updatedSince")
    if updated is None:
        items, _ = store.doc_list(tx.conn, "emoji")
        return {"emojis": {"update": items, "remove": []}}
    items, _ = store.doc_list(tx.conn, "emoji", where="updated_at > ?", args=(updated,))
    removed, _ = store.doc_list(tx.conn, "emoji_removed", where="updated_at > ?", args=(updated,))
    return {"emojis": {"update": items, "remove": removed}}


def emoji_all(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "emoji", offset=offset, count=count)
    return paged("emojis", items, offset, total)


def sound_save(tx: Tx, sound: dict[str, Any]) -> str:
    """The realtime method insertOrUpdateSound: a custom sound's record (its file is uploaded separately)."""
    _require_permission(tx, "manage-sounds")
    name = sound.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("The field Name is required", "error-the-field-is-required")
    extension = str(sound.get("extension") or "mp3")
    sid = sound.get("_id") if isinstance(sound.get("_id"), str) and sound["_id"] else new_id()
    taken, _ = store.doc_list(tx.conn, "sounds", where="json_extract(doc, '$.name') = ? AND id != ?", args=(name.strip(), sid))
    if taken:
        raise fail("The custom sound name is already in use", "Custom_Sound_Error_Name_Already_In_Use")
    doc = {"_id": sid, "name": name.strip(), "extension": extension, "_updatedAt": iso(tx.now)}
    store.doc_put(tx.conn, "sounds", sid, doc, tx.now)
    return sid


def sound_delete(tx: Tx, sid: str) -> bool:
    _require_permission(tx, "manage-sounds")
    if not store.doc_delete(tx.conn, "sounds", sid):
        raise fail("Custom sound not found", "Custom_Sound_Error_Invalid_Sound")
    return True


def sounds_list(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    offset, count = page(p)
    name = get_str(p, "name", required=False)
    where, args = ("lower(json_extract(doc, '$.name')) LIKE ?", (f"%{name.lower()}%",)) if name else ("", ())
    items, total = store.doc_list(tx.conn, "sounds", offset=offset, count=count, where=where, args=args)
    return paged("sounds", items, offset, total)


def sounds_get_one(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    doc = store.doc_get(tx.conn, "sounds", get_str(p, "_id") or "")
    if doc is None:
        raise fail("Custom sound not found", "Custom_Sound_Error_Invalid_Sound")
    return {"sound": doc}


def asset_set(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-assets")
    name = get_str(p, "assetName")
    if name not in ASSETS:
        raise fail("Invalid asset", "error-invalid-asset")
    part = _file_part(p, "asset", required=True)
    assert part is not None
    store.doc_put(tx.conn, "assets", name or "", {"type": part.get("type") or "image/png", "data": part["data"].hex()}, tx.now)
    store.set_setting(tx.conn, f"Assets_{name}", {"url": f"assets/{name}", "defaultUrl": None}, tx.now)
    return {}


def asset_unset(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _require_permission(tx, "manage-assets")
    name = get_str(p, "assetName")
    if name not in ASSETS:
        raise fail("Invalid asset", "error-invalid-asset")
    store.doc_delete(tx.conn, "assets", name or "")
    store.set_setting(tx.conn, f"Assets_{name}", {"defaultUrl": None}, tx.now)
    return {}


# -- moderation -------------------------------------------------------------------------------------
LIVE_REPORT = "json_extract(doc, '$._hidden') = 0"


def _moderator(tx: Tx, manage: bool = False) -> None:
    _require_permission(tx, "manage-moderation-actions" if manage else "view-moderation-console")


def moderation_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "reports", offset=offset, count=count,
                                  where=f"json_extract(doc, '$.msgId') = ? AND {LIVE_REPORT}", args=(get_str(p, "msgId"),))
    return paged("reports", items, offset, total)


def moderation_report_info(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    report = store.doc_get(tx.conn, "reports", get_str(p, "reportId") or "")
    if report is None:
        raise fail("Report not found", "error-report-not-found")
    return {"report": report}


def moderation_reports_by_users(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Live message reports grouped by the reported messages' authors (one SQL query)."""
    _moderator(tx)
    offset, count = page(p)
    rows = tx.conn.execute(
        "SELECT json_extract(doc, '$.userId') AS uid, count(*) AS n, max(updated_at) AS ts, "
        "json_group_array(DISTINCT json_extract(doc, '$.room')) AS rooms, max(doc) AS last "
        f"FROM docs WHERE coll = 'reports' AND {LIVE_REPORT} GROUP BY uid ORDER BY ts DESC LIMIT ? OFFSET ?",
        (count, offset)).fetchall()
    total = tx.conn.execute(f"SELECT count(DISTINCT json_extract(doc, '$.userId')) FROM docs WHERE coll = 'reports' AND {LIVE_REPORT}"
                            ).fetchone()[0]
    uids = [r["uid"] for r in rows]
    users = {u.id: u for u in store._users(tx.conn, tx.conn.execute(
        f"SELECT * FROM users WHERE id IN ({','.join('?' * len(uids))})", uids).fetchall())} if uids else {}
    out = []
    for r in rows:
        last = json.loads(r["last"])
        user = users.get(r["uid"])
        rooms = [json.loads(x) if isinstance(x, str) else x for x in json.loads(r["rooms"])]
        out.append({"userId": r["uid"], "username": user.username if user else last["message"]["u"]["username"],
                    "name": (user.name or user.username) if user else "", "message": last["message"]["msg"],
                    "msgId": last["msgId"], "ts": iso(r["ts"]), "rooms": rooms,
                    "count": r["n"], "isUserDeleted": user is None})
    return paged("reports", out, offset, total)


def moderation_user_reported_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    uid = get_str(p, "userId")
    user = store.get_user(tx.conn, user_id=uid)
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "reports", offset=offset, count=count,
                                  where=f"json_extract(doc, '$.userId') = ? AND {LIVE_REPORT}", args=(uid,))
    return {"user": {"_id": user.id, "username": user.username, "name": user.name or user.username} if user else None,
            "messages": items, "count": len(items), "offset": offset, "total": total}


def moderation_report_user(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    target = find_user(tx, {"userId": get_str(p, "userId")})
    description = get_str(p, "description")
    rid = new_id()
    store.doc_put(tx.conn, "user_reports", rid, {
        "_id": rid, "description": description, "reportedBy": _reporter(tx.user), "ts": iso(tx.now), "_hidden": False,
        "reportedUser": {"_id": target.id, "username": target.username, "name": target.name or target.username,
                         "createdAt": iso(target.created_at), "emails": [{"address": target.email}] if target.email else [],
                         "active": target.active}}, tx.now)
    return {}


def moderation_user_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Live user reports grouped by the reported user (one SQL query)."""
    _moderator(tx)
    offset, count = page(p)
    rows = tx.conn.execute(
        "SELECT json_extract(doc, '$.reportedUser._id') AS uid, count(*) AS n, max(updated_at) AS ts, max(doc) AS last "
        f"FROM docs WHERE coll = 'user_reports' AND {LIVE_REPORT} GROUP BY uid ORDER BY ts DESC LIMIT ? OFFSET ?",
        (count, offset)).fetchall()
    total = tx.conn.execute("SELECT count(DISTINCT json_extract(doc, '$.reportedUser._id')) FROM docs "
                            f"WHERE coll = 'user_reports' AND {LIVE_REPORT}").fetchone()[0]
    out = [{"reportedUser": json.loads(r["last"])["reportedUser"], "ts": iso(r["ts"]), "count": r["n"]} for r in rows]
    return paged("reports", out, offset, total)


def moderation_user_reports_by_user_id(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx)
    uid = get_str(p, "userId")
    user = store.get_user(tx.conn, user_id=uid)
    offset, count = page(p)
    items, total = store.doc_list(tx.conn, "user_reports", offset=offset, count=count,
                                  where=f"json_extract(doc, '$.reportedUser._id') = ? AND {LIVE_REPORT}", args=(uid,))
    return {"user": user_obj(user) if user else None, "reports": items, "count": len(items), "offset": offset, "total": total}


def _hide_reports(tx: Tx, coll: str, where: str, args: tuple[Any, ...], reason: str | None) -> int:
    items, _ = store.doc_list(tx.conn, coll, where=f"{where} AND {LIVE_REPORT}", args=args)
    for doc in items:
        doc["_hidden"] = True
        doc["moderationInfo"] = {"hiddenAt": iso(tx.now), "moderatedBy": tx.user.id, "reason": reason or "", "action": "dismiss"}
        store.doc_put(tx.conn, coll, doc["_id"], doc, tx.now)
    return len(items)


def moderation_dismiss_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx, manage=True)
    uid, mid = get_str(p, "userId", required=False), get_str(p, "msgId", required=False)
    if not uid and not mid:
        raise fail("The required \"userId\" or \"msgId\" param is missing.", "error-invalid-params")
    if uid:
        _hide_reports(tx, "reports", "json_extract(doc, '$.userId') = ?", (uid,), get_str(p, "reason", required=False))
    else:
        _hide_reports(tx, "reports", "json_extract(doc, '$.msgId') = ?", (mid,), get_str(p, "reason", required=False))
    return {}


def moderation_dismiss_user_reports(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    _moderator(tx, manage=True)
    _hide_reports(tx, "user_reports", "json_extract(doc, '$.reportedUser._id') = ?", (get_str(p, "userId"),),
                  get_str(p, "reason", required=False))
    return {}


def moderation_delete_reported_messages(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    """Delete every message of the user that was reported, and close their reports."""
    _moderator(tx, manage=True)
    uid = get_str(p, "userId")
    items, _ = store.doc_list(tx.conn, "reports", where=f"json_extract(doc, '$.userId') = ? AND {LIVE_REPORT}", args=(uid,))
    for mid in dict.fromkeys(doc["msgId"] for doc in items):
        message = store.get_message(tx.conn, mid)
        if message is not None:
            store.delete_message(tx.conn, message, tx.now)
            tx.notify_room(message.room_id, "deleteMessage", {"_id": message.id})
    _hide_reports(tx, "reports", "json_extract(doc, '$.userId') = ?", (uid,), get_str(p, "reason", required=False))
    return {}
