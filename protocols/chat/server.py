"""HTTP glue: the reference REST API under /api, Rocket.Chat's REST API under /api/v1, its webhooks and files.

Handlers parse the request (query, JSON, form or multipart), pick the credentials and call the
service; the chat logic is in service.py and the api package (one module per group of calls).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from hub.loginlimit import address_of
from hub.net.http import Request, Response, Route
from hub.version import __version__

from . import api, rcdata, store
from .model import (
    API_VERSION,
    ChatError,
    bad_request,
    get_str,
    loads,
    parse_body,
    query_params,
    rc_message,
    reference_error,
    room_not_found,
    room_obj,
    user_obj,
    v1_error,
)
from .service import ChatService, Credentials

Handler = Callable[[ChatService, Request], Awaitable[Any]]


def error_response(status: int, message: str) -> Response:
    """Errors the server makes itself on the chat port (404, 405, 413, 500): the reference's shape."""
    return Response.json({"status": "error", "message": message}, status)


def credentials(request: Request) -> Credentials:
    token = request.header("x-auth-token")
    uid = request.header("x-user-id")
    if not token and not uid:  # Rocket.Chat's file and avatar URLs also take them as query parameters
        token, uid = request.query_one("rc_token"), request.query_one("rc_uid")
    return Credentials(token, uid)


def parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    """A multipart/form-data body: fields as strings, files as {"name", "type", "data"}."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise bad_request("the multipart body could not be read")
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out[str(name)] = {"name": filename, "type": part.get_content_type(), "data": data}
        else:
            out[str(name)] = data.decode("utf-8", "replace")
    return out


def params(request: Request) -> dict[str, Any]:
    """Query parameters of a GET (with `key[]` arrays), body parameters (JSON, form or multipart) of anything else."""
    if request.method in ("GET", "HEAD", "DELETE"):
        out: dict[str, Any] = query_params(request.query)
        for key, values in request.query.items():
            if key.endswith("[]"):
                out[key[:-2]] = values
        return out
    header = request.header("content-type") or ""
    if request.content_type.startswith("multipart/"):
        return parse_multipart(request.body, header)
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
    """The seed document's answer: the Rocket.Chat version whose API is served, and the hub's own."""
    return {"versions": {"api": API_VERSION, "rocketchat": rcdata.ROCKETCHAT_VERSION, "hub": __version__}}


async def login(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    name = get_str(p, "user", "username")
    password = get_str(p, "password")
    assert name is not None and password is not None
    token, user = await svc.login(name, password, ip=address_of(request.client))
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

    def join(conn: Any, user: Any) -> None:
        target = store.room(conn, rid, usernames=False)
        if target.type != "c":
            raise room_not_found(rid)
        store.join(conn, target.id, user.id, svc.clock())

    await svc.as_user(credentials(request), join)
    return {}


async def leave_room(svc: ChatService, request: Request) -> dict[str, Any]:
    params(request)
    rid = request.params["rid"]
    await svc.as_user(credentials(request),
                      lambda conn, user: store.leave(conn, store.room(conn, rid, usernames=False).id, user.id))
    return {}


async def room_messages(svc: ChatService, request: Request) -> dict[str, Any]:
    """The caller's unread messages (oldest first, at most `unread_limit`); reading marks them read."""
    rid = request.params["rid"]
    limit = svc.settings.unread_limit

    def read(conn: Any, user: Any) -> Any:
        target = store.room(conn, rid)
        if target.type != "c" and user.id not in target.uids:
            raise room_not_found(rid)
        return store.unread(conn, target.id, user.id, limit)

    messages = await svc.as_user(credentials(request), read)
    return {"messages": [rc_message(m) for m in messages]}


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
    """GET /api/info (and /api/v1/info): the Rocket.Chat version whose API is served; no login."""
    return Response.json({"version": rcdata.ROCKETCHAT_VERSION,
                          "info": {"version": rcdata.ROCKETCHAT_VERSION, "hub": __version__, "api": API_VERSION},
                          "minimumClientVersions": {"desktop": "3.9.6", "mobile": "4.39.0"}, "success": True})


# -- Rocket.Chat REST API v1 (/api/v1/<method>) ---------------------------------------------------
@dataclass
class V1Method:
    methods: tuple[str, ...]
    handler: Handler


GET, POST, PUT, DELETE = ("GET",), ("POST",), ("PUT",), ("DELETE",)


def op(fn: Callable[..., Any]) -> Handler:
    """An api operation as a v1 handler: parameters from the request, run as the logged-in user."""
    async def handler(svc: ChatService, request: Request) -> Any:
        return await svc.run_op(credentials(request), fn, params(request))

    return handler


async def v1_login(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    resume = get_str(p, "resume", required=False)
    if resume:
        user, _ = await svc.resume(resume)
        token = resume
    else:
        name = get_str(p, "user", "username")
        password = get_str(p, "password")
        assert name is not None and password is not None
        token, user = await svc.login(name, password, ip=address_of(request.client))
    return {"status": "success", "data": {"authToken": token, "userId": user.id, "me": user_obj(user, private=True)}}


async def v1_logout(svc: ChatService, request: Request) -> dict[str, Any]:
    await svc.logout(credentials(request))
    return {"status": "success", "data": {"message": "You've been logged out!"}}


async def v1_me(svc: ChatService, request: Request) -> dict[str, Any]:
    return user_obj(await svc.me(credentials(request)), private=True)


async def v1_users_register(svc: ChatService, request: Request) -> dict[str, Any]:
    return {"user": user_obj(await svc.register(params(request)))}


async def v1_users_create(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    (user,) = await svc.create_users(credentials(request), [p], "create-user", roles_allowed=True)
    if p.get("active") is False:
        user = await svc.run_op(credentials(request), lambda tx, _p: store.update_user(tx.conn, user.id, tx.now, active=False), {})
    return {"user": user_obj(user, private=True)}


async def v1_settings_public(svc: ChatService, request: Request) -> dict[str, Any]:
    p = params(request)
    return await svc.run_public(lambda conn: api.settings_public(p, conn))


async def v1_statistics(svc: ChatService, request: Request) -> dict[str, Any]:
    if not svc.unique_id:
        svc.unique_id = hashlib.sha256(f"{svc.settings.database}:{svc.installed_at}".encode()).hexdigest()[:17]
    return await svc.run_op(credentials(request), lambda tx, p: api.statistics(tx, p, svc.installed_at, svc.unique_id),
                            params(request))


async def v1_statistics_list(svc: ChatService, request: Request) -> dict[str, Any]:
    stats = await v1_statistics(svc, request)
    p = params(request)
    offset = int(p.get("offset") or 0)
    items = [stats][offset:]
    return {"statistics": items, "count": len(items), "offset": offset, "total": 1}


def _rooms(kind: str, key: str) -> dict[str, V1Method]:
    """The calls channels.*, groups.* and im.*/dm.* share, for one kind of room."""
    pre = {"channel": "channels", "group": "groups", "dm": "dm"}[kind]
    methods = {
        f"{pre}.info": V1Method(GET, op(api.room_info(kind))),
        f"{pre}.history": V1Method(GET, op(api.room_history(kind))),
        f"{pre}.messages": V1Method(GET, op(api.room_messages(kind))),
        f"{pre}.members": V1Method(GET, op(api.room_members_op(kind))),
        f"{pre}.files": V1Method(GET, op(api.room_files(kind))),
        f"{pre}.counters": V1Method(GET, op(api.room_counters(kind))),
        f"{pre}.open": V1Method(POST, op(api.room_open(kind, True))),
        f"{pre}.close": V1Method(POST, op(api.room_open(kind, False))),
        f"{pre}.setTopic": V1Method(POST, op(api.room_setter(kind, "topic", "topic", "topic", system="room_changed_topic"))),
        f"{pre}.delete": V1Method(POST, op(api.room_delete(kind))),
    }
    if kind == "dm":
        return methods
    methods.update({
        f"{pre}.create": V1Method(POST, op(partial(_create, room_type="c" if kind == "channel" else "p"))),
        f"{pre}.roles": V1Method(GET, op(api.room_roles(kind))),
        f"{pre}.moderators": V1Method(GET, op(api.room_role_list(kind, "moderator", "moderators"))),
        f"{pre}.online": V1Method(GET, op(api.room_online(kind))),
        f"{pre}.invite": V1Method(POST, op(api.room_invite(kind))),
        f"{pre}.kick": V1Method(POST, op(api.room_kick(kind))),
        f"{pre}.leave": V1Method(POST, op(api.room_leave(kind))),
        f"{pre}.archive": V1Method(POST, op(api.room_archive(kind, True))),
        f"{pre}.unarchive": V1Method(POST, op(api.room_archive(kind, False))),
        f"{pre}.rename": V1Method(POST, op(api.room_setter(kind, "name", "name", None, system="r"))),
        f"{pre}.setDescription": V1Method(POST, op(api.room_setter(kind, "description", "description", "description",
                                                                   system="room_changed_description"))),
        f"{pre}.setPurpose": V1Method(POST, op(api.room_setter(kind, "purpose", "description", "purpose"))),
        f"{pre}.setAnnouncement": V1Method(POST, op(api.room_setter(kind, "announcement", "announcement", "announcement",
                                                                    system="room_changed_announcement"))),
        f"{pre}.setReadOnly": V1Method(POST, op(api.room_setter(kind, "readOnly", "read_only", None, permission="set-readonly"))),
        f"{pre}.setCustomFields": V1Method(POST, op(api.room_setter(kind, "customFields", "custom_fields", None))),
        f"{pre}.setType": V1Method(POST, op(api.room_set_type(kind))),
        f"{pre}.getIntegrations": V1Method(GET, op(api.room_integrations(kind))),
    })
    for role in ("owner", "moderator", "leader"):
        cap = role.capitalize()
        methods[f"{pre}.add{cap}"] = V1Method(POST, op(api.room_role(kind, role, True)))
        methods[f"{pre}.remove{cap}"] = V1Method(POST, op(api.room_role(kind, role, False)))
    return methods


async def api_public(fn: Callable[..., Any]) -> Any:
    return fn(None, {})


def _create(tx: api.Tx, p: dict[str, Any], room_type: str) -> dict[str, Any]:
    return api.create_room(tx, p, room_type)


V1_METHODS: dict[str, V1Method] = {
    "login": V1Method(POST, v1_login),
    "logout": V1Method(("GET", "POST"), v1_logout),
    "me": V1Method(GET, v1_me),
    "info": V1Method(GET, lambda svc, request: info(svc, request)),
    **_rooms("channel", "channel"),
    **_rooms("group", "group"),
    **_rooms("dm", "room"),
    "channels.list": V1Method(GET, op(api.rooms_list("channel", joined=False, key="channels"))),
    "channels.list.joined": V1Method(GET, op(api.rooms_list("channel", joined=True, key="channels"))),
    "channels.join": V1Method(POST, op(api.channels_join)),
    "channels.addAll": V1Method(POST, op(api.channels_add_all)),
    "channels.setJoinCode": V1Method(POST, op(api.room_setter("channel", "joinCode", "join_code", None))),
    "channels.setDefault": V1Method(POST, op(api.room_setter("channel", "default", "is_default", None,
                                                             permission="view-room-administration"))),
    "channels.getAllUserMentionsByChannel": V1Method(GET, op(api.room_mentions)),
    "groups.list": V1Method(GET, op(api.rooms_list("group", joined=True, key="groups"))),
    "groups.listAll": V1Method(GET, op(api.rooms_list("group", joined=False, key="groups", everyone=True))),
    "groups.setEncrypted": V1Method(POST, op(api.room_setter("group", "encrypted", "encrypted", None,
                                                             permission="toggle-room-e2e-encryption"))),
    "groups.convertToTeam": V1Method(POST, op(api.convert_to_team)),
    "dm.create": V1Method(POST, op(api.dm_create)),
    "dm.list": V1Method(GET, op(api.rooms_list("dm", joined=True, key="ims"))),
    "dm.list.everyone": V1Method(GET, op(api.rooms_list("dm", joined=False, key="ims", everyone=True))),
    "dm.messages.others": V1Method(GET, op(api.dm_messages_others)),
    "chat.postMessage": V1Method(POST, op(api.chat_post_message)),
    "chat.sendMessage": V1Method(POST, op(api.chat_send_message)),
    "chat.getMessage": V1Method(GET, op(api.chat_get_message)),
    "chat.update": V1Method(POST, op(api.chat_update)),
    "chat.delete": V1Method(POST, op(api.chat_delete)),
    "chat.react": V1Method(POST, op(api.chat_react)),
    "chat.pinMessage": V1Method(POST, op(api.chat_pin(True))),
    "chat.unPinMessage": V1Method(POST, op(api.chat_pin(False))),
    "chat.starMessage": V1Method(POST, op(api.chat_star(True))),
    "chat.unStarMessage": V1Method(POST, op(api.chat_star(False))),
    "chat.followMessage": V1Method(POST, op(api.chat_follow(True))),
    "chat.unfollowMessage": V1Method(POST, op(api.chat_follow(False))),
    "chat.search": V1Method(GET, op(api.chat_search)),
    "chat.getStarredMessages": V1Method(GET, op(api.messages_query("messages", starred_by="me"))),
    "chat.getPinnedMessages": V1Method(GET, op(api.messages_query("messages", pinned=True))),
    "chat.getMentionedMessages": V1Method(GET, op(api.messages_query("messages", mentioned="me"))),
    "chat.getDeletedMessages": V1Method(GET, op(api.messages_query("messages", deleted=True, since=True))),
    "chat.getDiscussions": V1Method(GET, op(api.messages_query("messages", discussions=True))),
    "chat.getThreadMessages": V1Method(GET, op(api.chat_thread_messages)),
    "chat.getThreadsList": V1Method(GET, op(api.chat_threads_list)),
    "chat.syncThreadsList": V1Method(GET, op(api.chat_sync_threads_list)),
    "chat.syncThreadMessages": V1Method(GET, op(api.chat_sync_thread_messages)),
    "chat.syncMessages": V1Method(GET, op(api.chat_sync_messages)),
    "chat.ignoreUser": V1Method(GET, op(api.chat_ignore_user)),
    "chat.reportMessage": V1Method(POST, op(api.chat_report)),
    "chat.getURLPreview": V1Method(GET, op(api.chat_url_preview)),
    "rooms.get": V1Method(GET, op(api.rooms_get)),
    "rooms.info": V1Method(GET, op(api.rooms_info)),
    "rooms.cleanHistory": V1Method(POST, op(api.rooms_clean_history)),
    "rooms.favorite": V1Method(POST, op(api.rooms_favorite)),
    "rooms.adminRooms": V1Method(GET, op(api.rooms_admin)),
    "rooms.createDiscussion": V1Method(POST, op(api.rooms_create_discussion)),
    "rooms.leave": V1Method(POST, op(api.rooms_leave)),
    "subscriptions.get": V1Method(GET, op(api.subscriptions_get)),
    "subscriptions.getOne": V1Method(GET, op(api.subscriptions_get_one)),
    "subscriptions.read": V1Method(POST, op(api.subscriptions_read)),
    "subscriptions.unread": V1Method(POST, op(api.subscriptions_unread)),
    "users.register": V1Method(POST, v1_users_register),
    "users.create": V1Method(POST, v1_users_create),
    "users.delete": V1Method(POST, op(api.users_delete)),
    "users.list": V1Method(GET, op(api.users_list)),
    "users.info": V1Method(GET, op(api.users_info)),
    "users.update": V1Method(POST, op(api.users_update)),
    "users.getPresence": V1Method(GET, op(api.users_presence)),
    "users.setStatus": V1Method(POST, op(api.users_set_status)),
    "users.setAvatar": V1Method(POST, op(api.users_set_avatar)),
    "users.resetAvatar": V1Method(POST, op(api.users_reset_avatar)),
    "users.setActiveStatus": V1Method(POST, op(api.users_set_active)),
    "users.getPreferences": V1Method(GET, op(api.users_preferences)),
    "users.setPreferences": V1Method(POST, op(api.users_set_preferences)),
    "users.createToken": V1Method(POST, op(api.users_create_token)),
    "users.forgotPassword": V1Method(POST, op(api.users_forgot_password)),
    "roles.list": V1Method(GET, op(api.roles_list)),
    "roles.sync": V1Method(GET, op(api.roles_sync)),
    "roles.create": V1Method(POST, op(api.roles_create)),
    "roles.update": V1Method(POST, op(api.roles_update)),
    "roles.delete": V1Method(POST, op(api.roles_delete)),
    "roles.addUserToRole": V1Method(POST, op(api.roles_user(True))),
    "roles.removeUserFromRole": V1Method(POST, op(api.roles_user(False))),
    "roles.getUsersInRole": V1Method(GET, op(api.roles_users_in_role)),
    "roles.getUsersInPublicRoles": V1Method(GET, op(api.roles_public_users)),
    "permissions.listAll": V1Method(GET, op(api.permission_list)),
    "permissions.update": V1Method(POST, op(api.permission_update)),
    "settings": V1Method(GET, op(api.settings_private)),
    "settings.public": V1Method(GET, v1_settings_public),
    "service.configurations": V1Method(GET, lambda svc, request: api_public(api.service_configurations)),
    "statistics": V1Method(GET, v1_statistics),
    "statistics.list": V1Method(GET, v1_statistics_list),
    "directory": V1Method(GET, op(api.directory)),
    "spotlight": V1Method(GET, op(api.spotlight)),
    "licenses.info": V1Method(GET, op(api.licenses_info)),
    "licenses.maxActiveUsers": V1Method(GET, op(api.licenses_max_active_users)),
    "integrations.create": V1Method(POST, op(api.integrations_create)),
    "integrations.get": V1Method(GET, op(api.integrations_get)),
    "integrations.list": V1Method(GET, op(api.integrations_list)),
    "integrations.history": V1Method(GET, op(api.integrations_history)),
    "integrations.remove": V1Method(POST, op(api.integrations_remove)),
    "integrations.update": V1Method(PUT, op(api.integrations_update)),
    "findOrCreateInvite": V1Method(POST, op(api.find_or_create_invite)),
    "listInvites": V1Method(GET, op(api.list_invites)),
    "useInviteToken": V1Method(POST, op(api.use_invite)),
    "validateInviteToken": V1Method(POST, op(api.validate_invite)),
    "sendInvitationEmail": V1Method(POST, op(api.send_invitation_email)),
    "custom-user-status.list": V1Method(GET, op(api.custom_status_list)),
    "custom-user-status.create": V1Method(POST, op(api.custom_status_create)),
    "custom-user-status.update": V1Method(POST, op(api.custom_status_update)),
    "custom-user-status.delete": V1Method(POST, op(api.custom_status_delete)),
    "teams.create": V1Method(POST, op(api.teams_create)),
    "teams.delete": V1Method(POST, op(api.teams_delete)),
    "teams.info": V1Method(GET, op(api.teams_info)),
    "teams.listAll": V1Method(GET, op(api.teams_list_all)),
    "teams.members": V1Method(GET, op(api.teams_members)),
    "emoji-custom.create": V1Method(POST, op(api.emoji_create)),
    "emoji-custom.update": V1Method(POST, op(api.emoji_update)),
    "emoji-custom.delete": V1Method(POST, op(api.emoji_delete)),
    "emoji-custom.list": V1Method(GET, op(api.emoji_list)),
    "emoji-custom.all": V1Method(GET, op(api.emoji_all)),
    "custom-sounds.list": V1Method(GET, op(api.sounds_list)),
    "custom-sounds.getOne": V1Method(GET, op(api.sounds_get_one)),
    "assets.setAsset": V1Method(POST, op(api.asset_set)),
    "moderation.reports": V1Method(GET, op(api.moderation_reports)),
    "moderation.reportInfo": V1Method(GET, op(api.moderation_report_info)),
    "moderation.reportsByUsers": V1Method(GET, op(api.moderation_reports_by_users)),
    "moderation.user.reportedMessages": V1Method(GET, op(api.moderation_user_reported_messages)),
    "moderation.reportUser": V1Method(POST, op(api.moderation_report_user)),
    "moderation.userReports": V1Method(GET, op(api.moderation_user_reports)),
    "moderation.user.reportsByUserId": V1Method(GET, op(api.moderation_user_reports_by_user_id)),
    "moderation.dismissReports": V1Method(POST, op(api.moderation_dismiss_reports)),
    "moderation.dismissUserReports": V1Method(POST, op(api.moderation_dismiss_user_reports)),
    "moderation.user.deleteReportedMessages": V1Method(POST, op(api.moderation_delete_reported_messages)),
    "assets.unsetAsset": V1Method(POST, op(api.asset_unset)),
    "teams.addMembers": V1Method(POST, op(api.teams_add_members)),
    "teams.updateMember": V1Method(POST, op(api.teams_update_member)),
    "teams.removeMember": V1Method(POST, op(api.teams_remove_member)),
    "teams.addRooms": V1Method(POST, op(api.teams_add_rooms)),
    "teams.removeRoom": V1Method(POST, op(api.teams_remove_room)),
    "teams.updateRoom": V1Method(POST, op(api.teams_update_room)),
    "teams.listRooms": V1Method(GET, op(api.teams_list_rooms)),
    "teams.listRoomsOfUser": V1Method(GET, op(api.teams_list_rooms_of_user)),
    "teams.autocomplete": V1Method(GET, op(api.teams_autocomplete)),
}
# Rocket.Chat serves direct messages under both im.* and dm.*.
V1_METHODS.update({"im." + k[3:]: v for k, v in list(V1_METHODS.items()) if k.startswith("dm.")})


async def _users_avatar(svc: ChatService, request: Request) -> Response:
    """users.getAvatar: Rocket.Chat answers 307 to the avatar's URL."""
    p = params(request)
    user = await svc.run_op(credentials(request), lambda tx, q: api.find_user(tx, q), p)
    url = f"/avatar/{user.username}"
    return Response(307, url.encode(), "text/plain; charset=utf-8", [("location", url)])


def _subpath(name: str) -> tuple[str, list[str]]:
    head, *rest = name.split("/")
    return head, rest


async def _v1_subpath(svc: ChatService, request: Request, head: str, rest: list[str]) -> Any:
    """The v1 calls with ids in their path: settings/<id>, rooms.media/<rid>, rooms.mediaConfirm/<rid>/<file>, ..."""
    creds = credentials(request)
    if head == "settings" and len(rest) == 1:
        if request.method == "GET":
            return await svc.run_op(creds, lambda tx, p: api.setting_get(tx, p, rest[0]), params(request))
        if request.method == "POST":
            return await svc.run_op(creds, lambda tx, p: api.setting_set(tx, p, rest[0]), params(request))
    if head in ("rooms.media", "rooms.upload") and len(rest) == 1 and request.method == "POST":
        confirm = head == "rooms.upload"
        return await svc.run_op(creds, lambda tx, p: api.rooms_media(tx, p, rest[0], confirm_now=confirm), params(request))
    if head == "rooms.mediaConfirm" and len(rest) == 2 and request.method == "POST":
        return await svc.run_op(creds, lambda tx, p: api.rooms_media_confirm(tx, p, rest[0], rest[1]), params(request))
    if head in ("method.call", "method.callAnon") and len(rest) == 1 and request.method == "POST":
        return await _method_call(svc, request, rest[0], anonymous=head == "method.callAnon")
    if head == "removeInvite" and len(rest) == 1 and request.method == "DELETE":
        return await svc.run_op(creds, lambda tx, p: api.remove_invite(tx, p, rest[0]), {})
    raise LookupError


async def _method_call(svc: ChatService, request: Request, name: str, *, anonymous: bool) -> dict[str, Any]:
    """Rocket.Chat's REST bridge to realtime methods: `{"message": "<DDP method frame>"}` in, the DDP result frame out."""
    p = params(request)
    try:
        frame = loads(p.get("message") or "")
    except (TypeError, ValueError):
        raise bad_request("'message' must be a DDP method call encoded as JSON") from None
    if not isinstance(frame, dict) or frame.get("method") != name:
        raise bad_request("the DDP message must call the method of the URL")
    creds = credentials(request)
    user = None if anonymous and not creds.token else await svc.me(creds)
    reply = await svc.realtime.call_over_rest(user, frame)
    return {"message": json.dumps(reply, separators=(",", ":"))}


async def v1_dispatch(svc: ChatService, request: Request) -> Response:
    """`/api/v1/<method>`: Rocket.Chat's REST API (object bodies carry "success": true)."""
    name = request.params["method"]
    try:
        if name == "users.getAvatar":
            return await _users_avatar(svc, request)
        if "/" in name:
            try:
                body = await _v1_subpath(svc, request, *_subpath(name))
            except LookupError:
                return error_response(404, f"API endpoint \"/api/v1/{name}\" not found!")
        else:
            method = V1_METHODS.get(name)
            if method is None:
                return error_response(404, f"API endpoint \"/api/v1/{name}\" not found!")
            if request.method not in method.methods:
                response = Response.json({"success": False, "error": "method not allowed"}, 405)
                response.headers.append(("allow", ", ".join(method.methods)))
                return response
            body = await method.handler(svc, request)
    except ChatError as exc:
        error, status = v1_error(exc)
        return Response.json(error, status)
    if isinstance(body, Response):
        return body
    if isinstance(body, dict):
        return Response.json({**body, "success": True} if "success" not in body else body)
    return Response.json(body)


async def hooks(svc: ChatService, request: Request) -> Response:
    """Incoming webhooks: POST /hooks/<integration id>/<token> posts into the integration's room."""
    try:
        p = params(request)
        if isinstance(p.get("payload"), str):  # Slack-style form field
            try:
                p = loads(p["payload"])
            except ValueError:
                raise bad_request("payload is not valid JSON") from None
        await svc.incoming_webhook(request.params["id"], request.params["token"], p)
    except ChatError as exc:
        error, status = v1_error(exc)
        return Response.json(error, status)
    return Response.json({"success": True})


async def file_upload(svc: ChatService, request: Request) -> Response:
    """GET /file-upload/<id>/<name>: an uploaded file, for a logged-in member of its room."""
    fid = request.params["id"]

    def read(tx: api.Tx, p: dict[str, Any]) -> dict[str, Any]:
        f = store.upload(tx.conn, fid, data=True)
        room = store.room(tx.conn, f["room_id"])
        if not api.can_access(tx, room):
            raise room_not_found(room.id)
        return f

    try:
        f = await svc.run_op(credentials(request), read, {})
    except ChatError as exc:
        error, status = v1_error(exc)
        return Response.json(error, 403 if status == 400 else status)
    safe = f["type"] if f["type"].startswith("image/") and f["type"] != "image/svg+xml" else "application/octet-stream"
    return Response(200, f["data"], safe, [("content-disposition", f'attachment; filename="{f["name"]}"'),
                                             ("x-content-type-options", "nosniff")])


async def avatar(svc: ChatService, request: Request) -> Response:
    """GET /avatar/<username>: an uploaded avatar, or an SVG with the initial (Rocket.Chat's default)."""
    name = request.params["name"]

    def read(conn: Any) -> tuple[str, Any]:
        user = store.get_user(conn, username=name)
        if user is None:
            return name, None
        return user.username, store.doc_get(conn, "avatars", user.id)

    username, uploaded = await svc.run_public(read)
    if uploaded:
        return Response(200, bytes.fromhex(uploaded["data"]), "image/png" if "svg" in uploaded["type"] else uploaded["type"],
                        [("x-content-type-options", "nosniff")])
    initial = html.escape((username[:1] or "?").upper())
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 200"><rect width="100%" height="100%" fill="#5c6bc0"/>'
           f'<text x="50%" y="50%" dy=".36em" text-anchor="middle" fill="#fff" font-size="120" font-family="sans-serif">'
           f'{initial}</text></svg>')
    return Response(200, svg.encode(), "image/svg+xml", [("cache-control", "public, max-age=0")])


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
        Route("/api/v1/{method:path}", partial(v1_dispatch, svc)),
        Route("/hooks/{id}/{token}", partial(hooks, svc), ["POST"]),
        Route("/file-upload/{id}/{name}", partial(file_upload, svc), ["GET"]),
        Route("/avatar/{name}", partial(avatar, svc), ["GET"]),
    ]
