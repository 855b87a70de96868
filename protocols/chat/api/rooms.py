"""Rocket.Chat v1 room calls: channels.*, groups.*, dm.*/im.*, rooms.*, subscriptions.*."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import store
from ..model import (
    Message,
    Room,
    bad_request,
    check_name,
    get_bool,
    get_list,
    get_str,
    iso,
    new_id,
    parse_iso,
    rc_message,
    room_obj,
)
from .base import (
    KIND_TYPES,
    MAX_PAGE,
    ROOM_KEY,
    Tx,
    _dm_by_username,
    _integration_out,
    _last_owner_check,
    _message_of,
    _message_text,
    _require_permission,
    _require_room,
    _room_change,
    _system,
    direct_room,
    fail,
    file_obj,
    find_room,
    leave_room,
    mark_read,
    member_or_fail,
    page,
    paged,
    post,
    room_answer,
    since,
    subscription_obj,
    target_user,
)


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


def subscriptions_get(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rows = store.subscriptions(tx.conn, tx.user.id, updated_since=since(p, "updatedSince"))
    return {"update": [subscription_obj(r) for r in rows], "remove": []}


def subscriptions_get_one(tx: Tx, p: dict[str, Any]) -> dict[str, Any]:
    rid = get_str(p, "roomId")
    rows = store.subscriptions(tx.conn, tx.user.id, room_id=rid)
    return {"subscription": subscription_obj(rows[0]) if rows else None}


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

