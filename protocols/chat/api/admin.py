"""Rocket.Chat v1 server calls: settings, statistics, directory, spotlight, integrations and webhooks, invites, statuses, licenses."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from .. import rcdata, store
from ..model import (
    ChatError,
    User,
    check_email,
    get_bool,
    get_int,
    get_list,
    get_str,
    iso,
    new_id,
    parse_iso,
    room_obj,
)
from .base import (
    STATUSES,
    Tx,
    _integration_out,
    _message_extra,
    _message_text,
    _require_permission,
    _require_room,
    _system,
    fail,
    find_room,
    page,
    paged,
    post,
    resolve_channel,
)


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


INTEGRATION_TYPES = ("webhook-incoming", "webhook-outgoing")


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

