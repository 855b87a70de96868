"""Rocket.Chat v1 teams.* calls (a team is its main room plus the rooms attached to it)."""

from __future__ import annotations

from typing import Any

from .. import store
from ..model import (
    Room,
    check_name,
    get_bool,
    get_int,
    get_list,
    get_str,
    iso,
    new_id,
    room_obj,
)
from .base import (
    Tx,
    _last_owner_check,
    _require_permission,
    _require_room,
    _system,
    fail,
    find_room,
    find_user,
    member_or_fail,
    page,
    paged,
)


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

