"""HTTP glue: the reference REST API under /api and Rocket.Chat's current REST API under /api/v1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from hub.net.http import Request, Response, Route
from hub.version import __version__

from . import store
from .model import (
    API_VERSION,
    PERMISSIONS,
    ChatError,
    Message,
    Room,
    User,
    bad_request,
    check_role,
    get_bool,
    get_int,
    get_list,
    get_str,
    message_obj,
    parse_body,
    parse_iso,
    query_params,
    reference_error,
    room_obj,
    user_obj,
    v1_error,
)
from .service import ChatService, Credentials

Handler = Callable[[ChatService, Request], Awaitable[Any]]
MAX_PAGE = 100


def error_response(status: int, message: str) -> Response:
    """Errors the server makes itself on the chat port (404, 405, 413, 500): the reference's shape."""
    return Response.json({"status": "error", "message": message}, status)


def credentials(request: Request) -> Credentials:
    return Credentials(request.header("x-auth-token"), request.header("x-user-id"))


def params(request: Request) -> dict[str, Any]:
    """Query parameters of a GET, body parameters (JSON or form) of anything else."""
    if request.method in ("GET", "HEAD"):
        return query_params(request.query)
    return parse_body(request.body, request.content_type)


# -- the reference API (/api/...) ------------------------------------------------------------------
def reference(handler: Handler, svc: ChatService) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            body = await handler(svc, request)
        except ChatError as exc:
            body, status = reference_error(exc)
            return Response.json(body, status)
        return Response.json({"status": "success", **body})

    return handle


async def version(svc: ChatService, request: Request) -> dict[str, Any]:
    return {"versions": {"api": API_VERSION, "hub": __version__}}


async def login(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    name = get_str(p, "user", "username")
    password = get_str(p, "password")
    assert name is not None and password is not None
    token, user = await svc.login(name, password)
    return {"data": {"authToken": token, "userId": user.id}}


async def logout(svc: ChatService, request: Request) -> dict[str, Any]:
    await svc.logout(credentials(request))
    return {"data": {"message": "You've been logged out!"}}


async def public_rooms(svc: ChatService, request: Request) -> dict[str, Any]:
    rooms, _ = await svc.as_user(credentials(request), lambda conn, user: store.list_rooms(conn))
    return {"rooms": [room_obj(r) for r in rooms]}


async def join_room(svc: ChatService, request: Request) -> dict[str, Any]:
    params(request)
    rid = request.params["rid"]
    await svc.as_user(credentials(request), lambda conn, user: store.join(conn, store.room(conn, rid).id, user.id, svc.clock()))
    return {}


async def leave_room(svc: ChatService, request: Request) -> dict[str, Any]:
    params(request)
    rid = request.params["rid"]
    await svc.as_user(credentials(request), lambda conn, user: store.leave(conn, store.room(conn, rid).id, user.id))
    return {}


async def room_messages(svc: ChatService, request: Request) -> dict[str, Any]:
    """The caller's unread messages (oldest first, at most `unread_limit`); reading marks them read."""
    rid = request.params["rid"]
    limit = svc.settings.unread_limit
    messages = await svc.as_user(credentials(request),
                                 lambda conn, user: store.unread(conn, store.room(conn, rid).id, user.id, limit))
    return {"messages": [message_obj(m) for m in messages]}


async def send_message(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    await svc.send(credentials(request), request.params["rid"], p.get("msg"))
    return {}


async def bulk_register(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    users = await svc.create_users(credentials(request), p.get("users"), "bulk-register-user", roles_allowed=False)
    return {"ids": [{"uid": u.id} for u in users]}


async def bulk_create_room(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    rooms = await svc.create_rooms(credentials(request), p.get("rooms"), "bulk-create-c")
    return {"ids": [{"rid": r.id} for r in rooms]}


async def info(svc: ChatService, request: Request) -> Response:
    """GET /api/info (Rocket.Chat's server information; no login)."""
    return Response.json({"version": __version__, "info": {"version": __version__, "api": API_VERSION}, "success": True})


# -- Rocket.Chat REST API v1 (/api/v1/<method>) ---------------------------------------------------
@dataclass
class V1Method:
    methods: tuple[str, ...]
    handler: Handler


def _room_of(conn: Any, p: dict[str, Any]) -> Room:
    rid = get_str(p, "roomId", required=False)
    name = get_str(p, "roomName", "channel", required=False)
    if not rid and not name:
        raise bad_request("The parameter \"roomId\" or \"roomName\" is required", "error-room-param-not-provided")
    return store.room(conn, rid, name)


def _page(p: dict[str, Any], default: int) -> tuple[int, int]:
    return get_int(p, "offset", 0, 0, 1 << 62), get_int(p, "count", default, 1, MAX_PAGE)


def _v1_message(m: Message) -> dict[str, Any]:
    obj = message_obj(m)
    obj["_updatedAt"] = obj["ts"]
    return obj


async def v1_login(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    name = get_str(p, "user", "username")
    password = get_str(p, "password")
    assert name is not None and password is not None
    token, user = await svc.login(name, password)
    return {"status": "success", "data": {"authToken": token, "userId": user.id, "me": user_obj(user, private=True)}}


async def v1_logout(svc: ChatService, request: Request) -> dict[str, Any]:
    await svc.logout(credentials(request))
    return {"status": "success", "data": {"message": "You've been logged out!"}}


async def v1_me(svc: ChatService, request: Request) -> dict[str, Any]:
    return user_obj(await svc.me(credentials(request)), private=True)


async def v1_channels_list(svc: ChatService, request: Request) -> dict[str, Any]:
    offset, count = _page(params(request), 50)
    rooms, total = await svc.as_user(credentials(request), lambda conn, user: store.list_rooms(conn, offset, count))
    return {"channels": [room_obj(r) for r in rooms], "offset": offset, "count": len(rooms), "total": total}


async def v1_channels_list_joined(svc: ChatService, request: Request) -> dict[str, Any]:
    offset, count = _page(params(request), 50)

    def joined(conn: Any, user: User) -> list[Room]:
        rooms, _ = store.list_rooms(conn)
        return [r for r in rooms if user.username in r.usernames]

    rooms = await svc.as_user(credentials(request), joined)
    page = rooms[offset:offset + count]
    return {"channels": [room_obj(r) for r in page], "offset": offset, "count": len(page), "total": len(rooms)}


async def v1_channels_info(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    room = await svc.as_user(credentials(request), lambda conn, user: _room_of(conn, p))
    return {"channel": room_obj(room)}


async def v1_channels_create(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    name = get_str(p, "name")
    members = get_list(p, "members")
    read_only = get_bool(p, "readOnly")
    (room,) = await svc.create_rooms(credentials(request), [{"name": name, "members": members, "readOnly": read_only}], "create-c")
    return {"channel": room_obj(room)}


async def v1_channels_join(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)

    def join(conn: Any, user: User) -> Room:
        room = _room_of(conn, p)
        store.join(conn, room.id, user.id, svc.clock())
        return store.room(conn, room.id)

    return {"channel": room_obj(await svc.as_user(credentials(request), join))}


async def v1_channels_leave(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)

    def leave(conn: Any, user: User) -> Room:
        room = _room_of(conn, p)
        if not store.leave(conn, room.id, user.id):
            raise bad_request("You are not in this room", "error-user-not-in-room")
        return store.room(conn, room.id)

    return {"channel": room_obj(await svc.as_user(credentials(request), leave))}


async def v1_channels_history(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    offset, count = _page(p, 20)
    latest = parse_iso(p["latest"]) if p.get("latest") else None
    oldest = parse_iso(p["oldest"]) if p.get("oldest") else None
    inclusive = get_bool(p, "inclusive")

    def read(conn: Any, user: User) -> list[Message]:
        room = _room_of(conn, p)
        return store.history(conn, room.id, offset=offset, count=count, latest=latest, oldest=oldest, inclusive=inclusive)

    messages = await svc.as_user(credentials(request), read)
    return {"messages": [_v1_message(m) for m in messages]}


async def v1_post_message(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    rid = get_str(p, "roomId", required=False)
    channel = get_str(p, "channel", required=False)
    if not rid and not channel:
        raise bad_request("The parameter \"roomId\" or \"channel\" is required", "error-room-param-not-provided")
    if channel and channel.startswith("@"):
        raise bad_request("direct messages are not supported", "error-not-allowed")
    room, message = await svc.send(credentials(request), rid, p.get("text"), room_name=channel)
    return {"ts": message.ts, "channel": channel or room.id, "message": _v1_message(message)}


async def v1_send_message(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    message = p.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("rid"), str):
        raise bad_request("'message' must be an object with 'rid' and 'msg'")
    _, sent = await svc.send(credentials(request), message["rid"], message.get("msg"))
    return {"message": _v1_message(sent)}


async def v1_users_register(svc: ChatService, request: Request) -> dict[str, Any]:
    return {"user": user_obj(await svc.register(params(request)))}


async def v1_users_create(svc: ChatService, request: Request) -> dict[str, Any]:
    (user,) = await svc.create_users(credentials(request), [params(request)], "create-user", roles_allowed=True)
    return {"user": user_obj(user, private=True)}


async def v1_users_delete(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    who = get_str(p, "userId", "username")

    def delete(conn: Any, user: User) -> None:
        store.require(conn, user, "delete-user")
        store.delete_user(conn, who)

    await svc.as_user(credentials(request), delete)
    return {}


async def v1_users_list(svc: ChatService, request: Request) -> dict[str, Any]:
    offset, count = _page(params(request), 50)

    def users(conn: Any, user: User) -> tuple[list[User], int]:
        store.require(conn, user, "view-user-administration")
        return store.list_users(conn, offset, count)

    found, total = await svc.as_user(credentials(request), users)
    return {"users": [user_obj(u, private=True) for u in found], "offset": offset, "count": len(found), "total": total}


async def v1_users_info(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    who = get_str(p, "userId", "username")
    return {"user": user_obj(await svc.as_user(credentials(request), lambda conn, user: store.find_user(conn, who)))}


def _role_obj(role: dict[str, Any]) -> dict[str, Any]:
    return {"_id": role["name"], "name": role["name"], "description": role["description"], "protected": role["protected"],
            "scope": "Users", "mandatory2fa": False, "permissions": role["permissions"]}


def _role_named(conn: Any, name: str) -> dict[str, Any]:
    for role in store.list_roles(conn):
        if role["name"] == name:
            return role
    raise bad_request(f"role not found: {name}", "error-role-not-found")


async def v1_roles_list(svc: ChatService, request: Request) -> dict[str, Any]:
    roles = await svc.as_user(credentials(request), lambda conn, user: store.list_roles(conn))
    return {"roles": [_role_obj(r) for r in roles]}


async def v1_roles_create(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    name = check_role(get_str(p, "name"))
    description = get_str(p, "description", required=False) or ""

    def create(conn: Any, user: User) -> dict[str, Any]:
        store.require(conn, user, "access-permissions")
        if not store.create_role(conn, name, description):
            raise bad_request("Role name already exists", "error-duplicate-role-names-not-allowed")
        return _role_named(conn, name)

    return {"role": _role_obj(await svc.as_user(credentials(request), create))}


async def v1_roles_delete(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    name = get_str(p, "roleId", "roleName")

    def delete(conn: Any, user: User) -> None:
        store.require(conn, user, "access-permissions")
        store.delete_role(conn, name)

    await svc.as_user(credentials(request), delete)
    return {}


async def _user_role(svc: ChatService, request: Request, add: bool) -> dict[str, Any]:
    p = params(request)
    role = get_str(p, "roleId", "roleName")
    who = get_str(p, "username", "userId")

    def change(conn: Any, user: User) -> dict[str, Any]:
        store.require(conn, user, "assign-roles")
        target = store.find_user(conn, who)
        (store.add_user_role if add else store.remove_user_role)(conn, target.id, role)
        return _role_named(conn, role)

    return {"role": _role_obj(await svc.as_user(credentials(request), change))}


async def v1_permissions_list(svc: ChatService, request: Request) -> dict[str, Any]:
    perms = await svc.as_user(credentials(request), lambda conn, user: store.permission_roles(conn))
    return {"update": [{"_id": p, "roles": roles, "description": PERMISSIONS[p]} for p, roles in perms.items()], "remove": []}


async def v1_permissions_update(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    items = p.get("permissions")
    if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("_id"), str)
                                              and isinstance(i.get("roles"), list) for i in items):
        raise bad_request("'permissions' must be an array of {\"_id\": permission, \"roles\": [role, ...]}")

    def update(conn: Any, user: User) -> list[dict[str, Any]]:
        store.require(conn, user, "access-permissions")
        return [{"_id": i["_id"], "roles": store.set_permission_roles(conn, i["_id"], i["roles"])} for i in items]

    return {"permissions": await svc.as_user(credentials(request), update)}


GET, POST = ("GET",), ("POST",)
V1_METHODS: dict[str, V1Method] = {
    "login": V1Method(POST, v1_login),
    "logout": V1Method(("GET", "POST"), v1_logout),
    "me": V1Method(GET, v1_me),
    "channels.list": V1Method(GET, v1_channels_list),
    "channels.list.joined": V1Method(GET, v1_channels_list_joined),
    "channels.info": V1Method(GET, v1_channels_info),
    "channels.create": V1Method(POST, v1_channels_create),
    "channels.join": V1Method(POST, v1_channels_join),
    "channels.leave": V1Method(POST, v1_channels_leave),
    "channels.history": V1Method(GET, v1_channels_history),
    "chat.postMessage": V1Method(POST, v1_post_message),
    "chat.sendMessage": V1Method(POST, v1_send_message),
    "users.register": V1Method(POST, v1_users_register),
    "users.create": V1Method(POST, v1_users_create),
    "users.delete": V1Method(POST, v1_users_delete),
    "users.list": V1Method(GET, v1_users_list),
    "users.info": V1Method(GET, v1_users_info),
    "roles.list": V1Method(GET, v1_roles_list),
    "roles.create": V1Method(POST, v1_roles_create),
    "roles.delete": V1Method(POST, v1_roles_delete),
    "roles.addUserToRole": V1Method(POST, partial(_user_role, add=True)),
    "roles.removeUserFromRole": V1Method(POST, partial(_user_role, add=False)),
    "permissions.listAll": V1Method(GET, v1_permissions_list),
    "permissions.update": V1Method(POST, v1_permissions_update),
}


async def v1_dispatch(svc: ChatService, request: Request) -> Response:
    """`/api/v1/<method>`: Rocket.Chat's REST API (success bodies carry "success": true)."""
    name = request.params["method"]
    method = V1_METHODS.get(name)
    if method is None:
        return error_response(404, f"API endpoint \"/api/v1/{name}\" not found!")
    if request.method not in method.methods:
        response = Response.json({"success": False, "error": "method not allowed"}, 405)
        response.headers.append(("allow", ", ".join(method.methods)))
        return response
    try:
        body = await method.handler(svc, request)
    except ChatError as exc:
        error, status = v1_error(exc)
        return Response.json(error, status)
    return Response.json({**body, "success": True})


def routes(svc: ChatService) -> list[Route]:
    """Every chat route on the chat listener."""
    ref = partial(reference, svc=svc)
    return [
        Route("/api/version", ref(version), ["GET"]),
        Route("/api/info", partial(info, svc), ["GET"]),
        Route("/api/login", ref(login), ["POST"]),
        Route("/api/logout", ref(logout), ["GET", "POST"]),
        Route("/api/publicRooms", ref(public_rooms), ["GET"]),
        Route("/api/rooms/{rid}/join", ref(join_room), ["POST"]),
        Route("/api/rooms/{rid}/leave", ref(leave_room), ["POST"]),
        Route("/api/rooms/{rid}/messages", ref(room_messages), ["GET"]),
        Route("/api/rooms/{rid}/send", ref(send_message), ["POST"]),
        Route("/api/bulk/register", ref(bulk_register), ["POST"]),
        Route("/api/bulk/createRoom", ref(bulk_create_room), ["POST"]),
        Route("/api/v1/{method}", partial(v1_dispatch, svc)),
    ]
