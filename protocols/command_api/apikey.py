"""Today's Centrifugo server API, without I/O: `{"method", "params"}` (or params alone at
`/api/<method>`) authorized by an API key, answering `{"result": ...}` or `{"error": {"code", "message"}}`."""

from __future__ import annotations

import fnmatch
import hmac
import time
from typing import Any

from hub.core import (
    ChannelRequired,
    ChannelTooLong,
    Hub,
    HubError,
    NamespaceNotFound,
    NotAvailable,
    PermissionDenied,
    ProjectNotFound,
    Unavailable,
)
from hub.version import __version__

INTERNAL, UNAUTHORIZED, UNKNOWN_CHANNEL, PERMISSION_DENIED, METHOD_NOT_FOUND = 100, 101, 102, 103, 104
BAD_REQUEST, NOT_AVAILABLE, UNRECOVERABLE_POSITION = 107, 108, 112


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def project_for_key(projects: dict[str, Any], key: str) -> str | None:
    """The project an API key belongs to; every configured key is compared in constant time."""
    found = None
    given = key.encode()
    for project in projects.values():
        for candidate in project.api_keys:
            if hmac.compare_digest(candidate.encode(), given):
                found = project.key
    return found


def api_key_of(headers: dict[str, str]) -> str | None:
    """The key from `X-API-Key` or `Authorization: apikey <key>`; None when neither is present."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "apikey":
        return value.strip()
    return None


def _error_from(exc: HubError) -> ApiError:
    if isinstance(exc, Unavailable):
        return ApiError(INTERNAL, "internal server error")
    if isinstance(exc, NamespaceNotFound):
        return ApiError(UNKNOWN_CHANNEL, "unknown channel")
    if isinstance(exc, PermissionDenied):
        return ApiError(PERMISSION_DENIED, "permission denied")
    if isinstance(exc, NotAvailable):
        return ApiError(NOT_AVAILABLE, "not available")
    if isinstance(exc, (ChannelRequired, ChannelTooLong, ProjectNotFound)):
        return ApiError(BAD_REQUEST, f"bad request: {exc.message}")
    return ApiError(BAD_REQUEST, exc.message)


def _str(params: dict[str, Any], name: str, required: bool = True) -> Any:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(BAD_REQUEST, f"bad request: {name} required")
        return None
    if not isinstance(value, str):
        raise ApiError(BAD_REQUEST, f"bad request: {name} must be a string")
    return value


def _int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(BAD_REQUEST, f"bad request: {name} must be an integer")
    return value


def _data(params: dict[str, Any]) -> Any:
    if "data" not in params:
        raise ApiError(BAD_REQUEST, "bad request: data required")
    return params["data"]


async def _position(hub: Hub, project: str, channel: str) -> dict[str, Any]:
    try:
        result = await hub.history(project, channel, limit=0)
    except NotAvailable:
        return {}
    return {"offset": result.offset, "epoch": result.epoch} if result.epoch else {}


async def publish(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    channel = _str(params, "channel")
    pub = await hub.publish(project, channel, _data(params))
    return {"offset": pub.offset, "epoch": pub.epoch} if pub.epoch else {}


async def broadcast(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise ApiError(BAD_REQUEST, "bad request: channels must be a non-empty array of strings")
    data = _data(params)
    responses = []
    for channel in channels:
        try:
            responses.append({"result": await publish(hub, project, {"channel": channel, "data": data})})
        except ApiError as exc:
            responses.append({"error": exc.as_dict()})
        except HubError as exc:
            responses.append({"error": _error_from(exc).as_dict()})
    return {"responses": responses}


async def subscribe(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    await hub.subscribe_user(project, _str(params, "user"), _str(params, "channel"))
    return {}


async def unsubscribe(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    user, channel = _str(params, "user"), _str(params, "channel")
    client = _str(params, "client", required=False)
    hub.channel(project, channel)
    await hub.unsubscribe(project, user, channel, client=client)
    return {}


async def disconnect(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    user = _str(params, "user")
    client = _str(params, "client", required=False)
    spec = params.get("disconnect") or {}
    if not isinstance(spec, dict):
        raise ApiError(BAD_REQUEST, "bad request: disconnect must be an object")
    code = spec.get("code", 3503)
    reason = spec.get("reason") or "disconnect"
    if not isinstance(code, int) or not isinstance(reason, str):
        raise ApiError(BAD_REQUEST, "bad request: disconnect needs an integer code and a string reason")
    reconnect = 3000 <= code < 3500 or 4000 <= code < 4500
    await hub.disconnect(project, user, reason, reconnect, client=client, whitelist=params.get("whitelist") or ())
    return {}


async def refresh(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    user = _str(params, "user")
    client = _str(params, "client", required=False)
    expire_at = _int(params, "expire_at")
    await hub.refresh(project, user, client=client, expire_at=expire_at, expired=bool(params.get("expired")))
    return {}


async def presence(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    clients = await hub.presence(project, _str(params, "channel"))
    return {"presence": {cid: {"client": c["client"], "user": c["user"], "conn_info": c["default_info"],
                               "chan_info": c["channel_info"]} for cid, c in clients.items()}}


async def presence_stats(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    return await hub.presence_stats(project, _str(params, "channel"))


async def history(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    channel = _str(params, "channel")
    limit = _int(params, "limit")
    since = params.get("since")
    offset = None
    if since is not None:
        if not isinstance(since, dict) or not isinstance(since.get("offset", 0), int):
            raise ApiError(BAD_REQUEST, "bad request: since must be {offset, epoch}")
        offset = since.get("offset", 0)
    reverse = bool(params.get("reverse"))
    if not limit:
        result = await hub.history(project, channel, limit=0)
    else:
        result = await hub.history(project, channel, limit=None if limit < 0 else limit, since=offset, newest_first=reverse)
    if since is not None and since.get("epoch") not in (None, "", result.epoch):
        raise ApiError(UNRECOVERABLE_POSITION, "unrecoverable position")
    pubs = []
    for p in result.publications:
        item: dict[str, Any] = {"data": p.data, "offset": p.offset}
        if isinstance(p.info, dict) and "client" in p.info:
            item["info"] = {"client": p.info["client"], "user": p.info.get("user", ""),
                            "conn_info": p.info.get("default_info"), "chan_info": p.info.get("channel_info")}
        pubs.append(item)
    return {"publications": pubs, "offset": result.offset, "epoch": result.epoch}


async def history_remove(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    await hub.history_remove(project, _str(params, "channel"))
    return {}


async def channels(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    pattern = _str(params, "pattern", required=False)
    found = await hub.channels(project)
    return {"channels": {name: {"num_clients": n} for name, n in found.items()
                         if pattern is None or fnmatch.fnmatchcase(name, pattern)}}


async def info(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    """Every node of the cluster (other nodes as of their last heartbeat)."""
    channels = await hub.channels(project)
    nodes = []
    for node in hub.nodes():
        counts = node["projects"].get(project, {})
        nodes.append({
            "uid": node["id"], "name": node["name"], "version": __version__, "num_clients": counts.get("clients", 0),
            "num_users": counts.get("users", 0), "num_channels": len(channels) if node["this"] else node["stats"].get("channels", 0),
            "num_subs": counts.get("subscriptions", 0), "uptime": node["stats"].get("uptime", int(time.time() - hub.started_at)),
        })
    return {"nodes": nodes}


METHODS = {
    "publish": publish, "broadcast": broadcast, "subscribe": subscribe, "unsubscribe": unsubscribe,
    "disconnect": disconnect, "refresh": refresh, "presence": presence, "presence_stats": presence_stats,
    "history": history, "history_remove": history_remove, "channels": channels, "info": info,
}


async def call(hub: Hub, project: str, method: Any, params: Any) -> dict[str, Any]:
    """Run one method; the reply is `{"result": ...}` or `{"error": {...}}`."""
    try:
        if not isinstance(method, str) or not method:
            raise ApiError(BAD_REQUEST, "bad request: method required")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ApiError(BAD_REQUEST, "bad request: params must be an object")
        if method == "batch":
            return await batch(hub, project, params)
        handler = METHODS.get(method)
        if handler is None:
            raise ApiError(METHOD_NOT_FOUND, "method not found")
        return {"result": await handler(hub, project, params)}
    except ApiError as exc:
        return {"error": exc.as_dict()}
    except HubError as exc:
        return {"error": _error_from(exc).as_dict()}


async def batch(hub: Hub, project: str, params: dict[str, Any]) -> dict[str, Any]:
    """`{"commands": [{"<method>": params}, ...]}` → `{"replies": [{"<method>": result} | {"error": ...}]}`."""
    commands = params.get("commands")
    if not isinstance(commands, list):
        raise ApiError(BAD_REQUEST, "bad request: commands must be an array")
    replies = []
    for command in commands:
        if not isinstance(command, dict) or len(command) != 1:
            replies.append({"error": ApiError(BAD_REQUEST, "bad request: a command is {method: params}").as_dict()})
            continue
        ((method, cmd_params),) = command.items()
        reply = await call(hub, project, method, cmd_params) if method != "batch" else {
            "error": ApiError(BAD_REQUEST, "bad request: batch inside batch").as_dict()}
        replies.append({method: reply["result"]} if "result" in reply else reply)
    return {"replies": replies}
