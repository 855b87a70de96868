"""Rocket.Chat v1 users.*, roles.* and permissions.* calls."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from .. import store
from ..model import (
    ADMIN_ROLE,
    bad_request,
    check_email,
    check_name,
    get_bool,
    get_str,
    iso,
    user_obj,
)
from .base import STATUSES, Tx, _require_permission, fail, find_room, find_user, page, paged, since, subscription_obj


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

