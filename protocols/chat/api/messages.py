"""Rocket.Chat v1 message calls: chat.* (post, edit, delete, react, pin, star, threads, search, sync)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import store
from ..model import (
    Message,
    Room,
    get_bool,
    get_str,
    iso,
    new_id,
    rc_message,
)
from .base import (
    ROOM_KEY,
    Tx,
    _message_extra,
    _message_of,
    _message_text,
    _reporter,
    _require_room,
    fail,
    find_room,
    member_or_fail,
    page,
    paged,
    post,
    resolve_channel,
    since,
)


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

