"""Today's Centrifugo server API, without I/O: `{"method", "params"}` (or params alone at
`/api/<method>`) authorized by an API key, answering `{"result": ...}` or `{"error": {"code", "message"}}`."""

from __future__ import annotations

import fnmatch
import hmac
import json
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
from hub.utf8 import JSON_SURROGATES
from hub.version import __version__
from protocols import centrifugo as C

INTERNAL, UNAUTHORIZED, UNKNOWN_CHANNEL, PERMISSION_DENIED = C.INTERNAL, C.UNAUTHORIZED, C.UNKNOWN_CHANNEL, C.PERMISSION_DENIED
METHOD_NOT_FOUND, BAD_REQUEST, NOT_AVAILABLE = C.METHOD_NOT_FOUND, C.BAD_REQUEST, C.NOT_AVAILABLE
UNRECOVERABLE_POSITION = C.UNRECOVERABLE_POSITION
# Centrifugo's idempotent_result_ttl: a publish with the same idempotency_key within it is not repeated.
IDEMPOTENCY_TTL = 300.0


class ApiError(Exception):
    def __init__(self, code: int, message: str = "") -> None:
        message = message or C.ERRORS.get(code, "")
        super().__init__(message)  # with our detail, for the log
        self.code, self.message = code, C.wire_text(code, message)

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


class ApiState:
    """What the API remembers between requests (this process): idempotent publish results, user statuses."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.published: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}

    def remembered(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        now = self.clock()
        if len(self.published) > 10000:
            for k in [k for k, (t, _) in self.published.items() if t <= now]:
                del self.published[k]
        found = self.published.get(key)
        if found is None or found[0] <= now:
            return None
        return found[1]

    def remember(self, key: tuple[str, str, str], result: dict[str, Any]) -> None:
        self.published[key] = (self.clock() + IDEMPOTENCY_TTL, result)


_DEFAULT_STATE = ApiState()


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(BAD_REQUEST, f"bad request: {name} must be a boolean")
    return value


def _raw(params: dict[str, Any], name: str = "data") -> bytes | None:
    """The bytes of `b64<name>`, if given."""
    b64 = params.get(f"b64{name}")
    if not b64:
        return None
    if not isinstance(b64, str):
        raise ApiError(BAD_REQUEST, f"bad request: b64{name} must be a string")
    try:
        return C.data_from_b64(b64)[1]
    except ValueError:
        raise ApiError(BAD_REQUEST, f"bad request: b64{name} is not base64") from None


def _payload(params: dict[str, Any], name: str = "data", required: bool = True) -> Any:
    """`data` (any JSON) or `b64data` (base64 bytes: the JSON they hold, else `{"$base64": ...}`)."""
    raw = _raw(params, name)
    if raw is not None:
        return C.value_of(raw)
    if name not in params or params[name] is None:
        if required:
            raise ApiError(BAD_REQUEST, f"bad request: {name} required")
        return None
    return params[name]


def _tags(params: dict[str, Any]) -> dict[str, str] | None:
    tags = params.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ApiError(BAD_REQUEST, "bad request: tags must be an object of strings")
    return tags or None


async def publish(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Publish with Centrifugo's options: skip_history, tags, b64data, idempotency_key (delta is accepted: whole data)."""
    channel = _str(params, "channel")
    data = _payload(params)
    tags = _tags(params)
    skip_history = _bool(params, "skip_history")
    key = _str(params, "idempotency_key", required=False)
    if key is not None:
        done = state.remembered((project, channel, key))
        if done is not None:
            return done
    pub = await hub.publish(project, channel, data, tags=tags, skip_history=skip_history, raw=_raw(params))
    result = {"offset": pub.offset, "epoch": pub.epoch} if pub.epoch else {}
    if key is not None:
        state.remember((project, channel, key), result)
    return result


async def map_publish(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo 6.8's map_publish: set one key of a map channel (`channel`, `key`, `data` or `b64data`, `tags`)."""
    channel, key, _ = _map_key(hub, project, params)
    pub = await hub.map_publish(project, channel, key, _payload(params), tags=_tags(params), raw=_raw(params))
    return {"offset": pub.offset, "epoch": pub.epoch} if pub is not None and pub.epoch else {}


def _map_key(hub: Hub, project: str, params: dict[str, Any]) -> tuple[str, str, Any]:
    """`channel` (of a map namespace) and `key` of a map_publish / map_remove, and the channel's options."""
    channel = _str(params, "channel")
    key = _str(params, "key")
    if not key:
        raise ApiError(BAD_REQUEST, "bad request: key required")
    return channel, key, _map_channel(hub, project, channel)


def _map_channel(hub: Hub, project: str, channel: str) -> Any:
    """The channel's options; Centrifugo: a map method on a channel whose namespace is not a map one is a bad
    request (107)."""
    options = hub.channel(project, channel).options
    if not options.is_map:
        raise ApiError(BAD_REQUEST, "bad request: not a map channel")
    return options


async def map_remove(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo 6.8's map_remove: remove one key of a map channel (suppressed, no error, when it is not there)."""
    channel, key, options = _map_key(hub, project, params)
    pub = await hub.map_publish(project, channel, key, None, removed=True)
    if pub is None:  # Centrifugo: suppressed, with the stream's position where there is one
        offset, epoch = await hub.stream_position(project, channel) if options.keeps_history else (0, "")
        return {**({"offset": offset, "epoch": epoch} if epoch else {}), "suppressed": True,
                "suppress_reason": "key_not_found"}
    return {"offset": pub.offset, "epoch": pub.epoch} if pub.epoch else {}


def _map_entry(pub: Any) -> dict[str, Any]:
    """Centrifugo's MapEntry (apiproto: every field omitempty, in this order): data as the JSON published, time in
    milliseconds. The hub has no ordered maps, so `score` is always 0 and left out."""
    entry: dict[str, Any] = {"key": pub.key} if pub.key else {}
    if not pub.removed and pub.data is not None:
        entry["data"] = pub.data
    if pub.tags:
        entry["tags"] = pub.tags
    if pub.offset:
        entry["offset"] = pub.offset
    if pub.removed:
        entry["removed"] = True
    ms = int(pub.timestamp * 1000)
    if ms:
        entry["time"] = ms
    return entry


def _position(out: dict[str, Any], offset: int, epoch: str) -> dict[str, Any]:
    if offset:
        out["offset"] = offset
    if epoch:
        out["epoch"] = epoch
    return out


def _uint(params: dict[str, Any], name: str) -> int:
    value = _int(params, name) or 0
    if value < 0:
        raise ApiError(BAD_REQUEST, f"bad request: {name} must not be negative")
    return value


async def map_read_state(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo 6.8's map_read_state (the memory MapBroker's getState): entries in key order after key `cursor`;
    `limit` 0 (or unset) gives only the position, below 0 every entry, above 0 a page whose `cursor` is its last key
    when more follow; `key` gives that one entry (cursor and limit ignored). `revision_offset`/`revision_epoch`:
    112 unless the epoch is the channel's ("" without a stream). `asc` only orders scored maps, which the hub lacks."""
    channel = _str(params, "channel")
    _map_channel(hub, project, channel)
    cursor = _str(params, "cursor", required=False) or ""
    limit = _int(params, "limit") or 0
    key = _str(params, "key", required=False)
    _bool(params, "asc")
    revision_offset = _uint(params, "revision_offset")
    revision_epoch = _str(params, "revision_epoch", required=False) or ""
    if key is not None:
        snap = await hub.map_snapshot(project, channel)
        chosen, nxt = [p for p in snap.entries if p.key == key], ""
    else:
        snap = await hub.map_snapshot(project, channel, cursor, None if limit < 0 else limit)
        if limit == 0:
            chosen, nxt = [], ""
        else:
            chosen, nxt = snap.page(cursor, limit if limit > 0 else len(snap.entries) + 1)
    if (revision_offset or revision_epoch) and revision_epoch != snap.epoch:
        raise ApiError(UNRECOVERABLE_POSITION)
    out: dict[str, Any] = {"entries": [_map_entry(p) for p in chosen]} if chosen else {}
    _position(out, snap.offset, snap.epoch)
    if nxt:
        out["cursor"] = nxt
    return out


async def map_read_stream(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo 6.8's map_read_stream (MapBroker.ReadStream, Node.MapStreamRead): the channel's stream, oldest
    first or `reverse`; `limit` 0 (or unset) gives only the position, below 0 everything; with `since_offset`/
    `since_epoch`, the changes after that offset (reverse: before it). 112 when `since_epoch` is not the stream's or
    the stream no longer holds the change right after `since_offset`. A map without a stream: position 0, ""."""
    channel = _str(params, "channel")
    options = _map_channel(hub, project, channel)
    since_offset = _uint(params, "since_offset")
    since_epoch = _str(params, "since_epoch", required=False) or ""
    limit = _int(params, "limit") or 0
    reverse = _bool(params, "reverse")
    since = since_offset if since_offset or since_epoch else None
    if not options.keeps_history:
        if since_epoch:
            raise ApiError(UNRECOVERABLE_POSITION)
        return {}
    wanted = None if limit < 0 else limit
    if since is None:
        result = await hub.history(project, channel, limit=wanted, newest_first=reverse)
    elif reverse:
        result = await hub.history(project, channel, limit=wanted, before=since, newest_first=True)
    else:
        result = await hub.history(project, channel, limit=wanted, since=since)
    offset, epoch, pubs = result.offset, result.epoch, result.publications
    if not epoch:  # no stream yet: Centrifugo's read starts one (its epoch is what later changes carry)
        offset, epoch = await hub.stream_position(project, channel)
    if since_epoch and since_epoch != epoch:
        raise ApiError(UNRECOVERABLE_POSITION)
    if since and not reverse and pubs and pubs[0].offset > since + 1:
        raise ApiError(UNRECOVERABLE_POSITION)  # trimmed away: the client cannot catch up from there
    out: dict[str, Any] = {"entries": [_map_entry(p) for p in pubs]} if pubs else {}
    return _position(out, offset, epoch)


async def map_stats(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo 6.8's map_stats: `num_keys` (left out when 0, as apiproto's omitempty does)."""
    channel = _str(params, "channel")
    _map_channel(hub, project, channel)
    num_keys = await hub.map_stats(project, channel)
    return {"num_keys": num_keys} if num_keys else {}


async def map_clear(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo 6.8's map_clear: the channel's state and stream are deleted; nothing is sent to subscribers (those
    following a stream learn it from the next change's new epoch: insufficient state)."""
    channel = _str(params, "channel")
    _map_channel(hub, project, channel)
    await hub.map_clear(project, channel)
    return {}


async def broadcast(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise ApiError(BAD_REQUEST, "bad request: channels must be a non-empty array of strings")
    common = {k: v for k, v in params.items() if k != "channels"}
    _payload(common)
    responses = []
    for channel in channels:
        try:
            responses.append({"result": await publish(hub, project, {**common, "channel": channel}, state)})
        except ApiError as exc:
            responses.append({"error": exc.as_dict()})
        except HubError as exc:
            responses.append({"error": _error_from(exc).as_dict()})
    return {"responses": responses}


def _targets(hub: Hub, project: str, user: str, params: dict[str, Any]) -> list[Any]:
    """The user's sessions on this node, narrowed by `client` and `session` (both are the connection id here)."""
    client = _str(params, "client", required=False)
    session = _str(params, "session", required=False)
    return [s for s in hub.user_sessions(project, user)
            if (client is None or s.id == client) and (session is None or s.id == session)]


async def subscribe(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Server-side subscribe of a user's connections: info/b64info, client, session, data/b64data, recover_since, override."""
    user, channel = _str(params, "user"), _str(params, "channel")
    name = hub.channel(project, channel)
    info = _payload(params, "info", required=False)
    data = _payload(params, "data", required=False)
    override = params.get("override") or {}
    recover_since = params.get("recover_since")
    if not isinstance(override, dict):
        raise ApiError(BAD_REQUEST, "bad request: override must be an object")
    if recover_since is not None and not isinstance(recover_since, dict):
        raise ApiError(BAD_REQUEST, "bad request: recover_since must be {offset, epoch}")
    force_push = override.get("force_push_join_leave")
    force_push = force_push.get("value") if isinstance(force_push, dict) else name.options.force_push_join_leave
    if info is None and data is None and not override and recover_since is None and params.get("session") is None:
        # Every node's sessions of the user (or only `client`) join; the options below are applied on this node.
        client = _str(params, "client", required=False)
        if not force_push:  # server-side subscriptions get join/leave only when forced (Centrifugo)
            for session in hub.user_sessions(project, user):
                if session.protocol == "centrifugo" and channel not in session.channels:
                    session.hush(channel)
        await hub.subscribe_user(project, user, channel, client=client)
        return {}
    for session in _targets(hub, project, user, params):
        if channel in session.channels:
            continue
        if session.protocol == "centrifugo" and not force_push:
            session.hush(channel)
        await hub.subscribe(session, channel, info, private_ok=True)
        wire = session.wire
        if wire is None:
            continue
        extra: dict[str, Any] = {}
        if data is not None:
            extra["data"] = data
        if name.options.keeps_history:
            offset, epoch = await hub.stream_position(project, channel)
            extra.update(recoverable=True, positioned=True, offset=offset, epoch=epoch)
        push = getattr(wire, "subscribe_push", None)
        frame = push(channel, extra) if push is not None else wire.subscribe(channel)
        if frame:
            session.outbox.force(frame)
        if recover_since is not None and name.options.keeps_history:
            offset = recover_since.get("offset") or 0
            found = await hub.history(project, channel, since=offset if isinstance(offset, int) else 0)
            if (recover_since.get("epoch") or "") in ("", found.epoch):
                for pub in found.publications:  # send or disconnect: a recovery that overflows closes it as slow
                    if not session.outbox.send(wire.publication(pub), 1):
                        break
    return {}


async def unsubscribe(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    user, channel = _str(params, "user"), _str(params, "channel")
    hub.channel(project, channel)
    client = _str(params, "client", required=False) or _str(params, "session", required=False)
    await hub.unsubscribe(project, user, channel, client=client)  # on every node
    return {}


async def disconnect(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Disconnect a user's connections; a custom `disconnect: {code, reason}` (4000-4999) reaches the client unchanged."""
    user = _str(params, "user")
    spec = params.get("disconnect") or {}
    if not isinstance(spec, dict):
        raise ApiError(BAD_REQUEST, "bad request: disconnect must be an object")
    code = spec.get("code", C.FORCE_DISCONNECT)
    reason = spec.get("reason") or ""
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(reason, str):
        raise ApiError(BAD_REQUEST, "bad request: disconnect needs an integer code and a string reason")
    if code and not 3000 <= code <= 4999:
        raise ApiError(BAD_REQUEST, "bad request: disconnect code must be in 3000-4999")
    whitelist = params.get("whitelist") or []
    if not isinstance(whitelist, list):
        raise ApiError(BAD_REQUEST, "bad request: whitelist must be an array")
    code = code or C.FORCE_DISCONNECT
    reconnect = C.reconnects(code)
    # The exact code and reason travel in the core's close reason ("4501:custom"), on every node.
    close_reason = C.coded_reason(code, reason or C.DISCONNECTS.get(code, ""))
    client = _str(params, "client", required=False) or _str(params, "session", required=False)
    await hub.disconnect(project, user, close_reason, reconnect, client=client, whitelist=whitelist)
    return {}


async def refresh(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    user = _str(params, "user")
    expire_at = _int(params, "expire_at")
    expired = _bool(params, "expired")
    info = _payload(params, "info", required=False)
    client = _str(params, "client", required=False) or _str(params, "session", required=False)
    await hub.refresh(project, user, client=client, expire_at=expire_at, expired=expired)  # on every node
    if info is not None and not expired:  # a new connection info: this node's sessions
        for session in _targets(hub, project, user, params):
            session.info = info
    return {}


async def presence(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    clients = await hub.presence(project, _str(params, "channel"))
    return {"presence": {cid: C.client_info(c) for cid, c in clients.items()}}


async def presence_stats(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    return await hub.presence_stats(project, _str(params, "channel"))


async def history(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo's history: `limit` (0: position only, -1: all), `since` (empty epoch matches), `reverse`."""
    channel = _str(params, "channel")
    limit = _int(params, "limit") or 0
    result = await C.history_reply(hub, project, channel, limit if limit >= 0 else 1 << 30, params.get("since"),
                                   _bool(params, "reverse"), ApiError)
    # Centrifugo's field order (apiproto.HistoryResult, encoding/json: none of the three left out)
    return {"publications": result.get("publications", []), "epoch": result.get("epoch", ""), "offset": result.get("offset", 0)}


async def history_remove(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    await hub.history_remove(project, _str(params, "channel"))
    return {}


async def channels(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    pattern = _str(params, "pattern", required=False)
    found = await hub.channels(project)
    return {"channels": {name: {"num_clients": n} for name, n in found.items()
                         if pattern is None or fnmatch.fnmatchcase(name, pattern)}}


async def info(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Every node of the cluster (other nodes as of their last heartbeat)."""
    channels = await hub.channels(project)
    nodes = []
    for node in hub.nodes():
        counts = node["projects"].get(project, {})
        entry = {
            "uid": node["id"], "name": node["name"], "version": __version__, "num_clients": counts.get("clients", 0),
            "num_users": counts.get("users", 0), "num_channels": len(channels) if node["this"] else node["stats"].get("channels", 0),
        }
        uptime = node["stats"].get("uptime", int(time.time() - hub.started_at))
        if uptime:  # omitted when 0, as Centrifugo's apiproto.NodeResult
            entry["uptime"] = uptime
        entry["num_subs"] = counts.get("subscriptions", 0)
        nodes.append(entry)
    return {"nodes": nodes}


async def connections(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo PRO's connections: this node's connections, optionally of one `user`."""
    user = _str(params, "user", required=False)
    out = {}
    for s in hub.sessions.values():
        if s.project != project or (user is not None and s.user != user):
            continue
        item: dict[str, Any] = {"app_name": s.protocol, "transport": "websocket", "protocol": s.protocol,
                                "user": s.user, "state": {"channels": {ch: {} for ch in s.channels}}}
        if s.info is not None:
            item["info"] = s.info
        out[s.id] = item
    return {"connections": out}


async def update_user_status(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Centrifugo PRO's user status: remember when each user was last active."""
    users = params.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ApiError(BAD_REQUEST, "bad request: users must be an array of strings")
    now = int(state.clock())
    for user in users:
        state.statuses[(project, user)] = {"user": user, "active": now, "online": now}
    return {}


async def get_user_status(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    users = params.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ApiError(BAD_REQUEST, "bad request: users must be an array of strings")
    out = []
    for user in users:
        status = dict(state.statuses.get((project, user), {"user": user}))
        if hub.user_sessions(project, user):
            status["online"] = int(state.clock())
        out.append(status)
    return {"statuses": out}


async def delete_user_status(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    users = params.get("users")
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ApiError(BAD_REQUEST, "bad request: users must be an array of strings")
    for user in users:
        state.statuses.pop((project, user), None)
    return {}


METHODS = {
    "publish": publish, "broadcast": broadcast, "subscribe": subscribe, "unsubscribe": unsubscribe,
    "disconnect": disconnect, "refresh": refresh, "presence": presence, "presence_stats": presence_stats,
    "history": history, "history_remove": history_remove, "channels": channels, "info": info,
    "connections": connections, "update_user_status": update_user_status, "get_user_status": get_user_status,
    "delete_user_status": delete_user_status, "map_publish": map_publish, "map_remove": map_remove,
    "map_read_state": map_read_state, "map_read_stream": map_read_stream, "map_stats": map_stats, "map_clear": map_clear,
}
# Methods cent 5.x knows that need Centrifugo PRO features the hub does not have (token revocation,
# user blocking, push notifications, devices): answered with 108 "not available".
UNAVAILABLE = {
    "rpc", "block_user", "unblock_user", "revoke_token", "invalidate_user_tokens", "device_register", "device_update",
    "device_remove", "device_list", "device_topic_list", "device_topic_update", "user_topic_list", "user_topic_update",
    "send_push_notification", "update_push_status", "cancel_push",
}
# The old API's numeric method ids (Centrifugo's Command.MethodType).
METHOD_IDS = {
    0: "publish", 1: "broadcast", 2: "unsubscribe", 3: "disconnect", 4: "presence", 5: "presence_stats", 6: "history",
    7: "history_remove", 8: "channels", 9: "info", 10: "rpc", 11: "subscribe", 12: "refresh", 14: "connections",
    15: "update_user_status", 16: "get_user_status", 17: "delete_user_status", 18: "block_user", 19: "unblock_user",
    20: "revoke_token", 21: "invalidate_user_tokens", 22: "device_register", 23: "device_update", 24: "device_remove",
    25: "device_list", 26: "device_topic_list", 27: "device_topic_update", 28: "user_topic_list",
    29: "user_topic_update", 30: "send_push_notification", 31: "update_push_status", 32: "cancel_push",
    33: "map_publish", 34: "map_remove", 35: "map_read_state", 36: "map_read_stream", 37: "map_stats", 38: "map_clear",
}
KNOWN = set(METHODS) | UNAVAILABLE | {"batch"}


async def call(hub: Hub, project: str, method: Any, params: Any, state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """Run one method; the reply is `{"result": ...}` or `{"error": {...}}`."""
    try:
        if not isinstance(method, str) or not method:
            raise ApiError(BAD_REQUEST, "bad request: method required")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ApiError(BAD_REQUEST, "bad request: params must be an object")
        if method == "batch":
            return await batch(hub, project, params, state)
        handler = METHODS.get(method)
        if handler is None:
            raise ApiError(NOT_AVAILABLE if method in UNAVAILABLE else METHOD_NOT_FOUND)
        return {"result": await handler(hub, project, params, state)}
    except ApiError as exc:
        return {"error": exc.as_dict()}
    except HubError as exc:
        return {"error": _error_from(exc).as_dict()}


async def batch(hub: Hub, project: str, params: dict[str, Any], state: ApiState = _DEFAULT_STATE) -> dict[str, Any]:
    """`{"commands": [{"<method>": params}, ...], "parallel"?}` → `{"replies": [{"<method>": result} | {"error": ...}]}`."""
    commands = params.get("commands")
    if not isinstance(commands, list):
        raise ApiError(BAD_REQUEST, "bad request: commands must be an array")
    replies = []
    for command in commands:
        if not isinstance(command, dict) or len(command) != 1:
            replies.append({"error": ApiError(BAD_REQUEST, "bad request: a command is {method: params}").as_dict()})
            continue
        ((method, cmd_params),) = command.items()
        reply = await call(hub, project, method, cmd_params, state) if method != "batch" else {
            "error": ApiError(BAD_REQUEST, "bad request: batch inside batch").as_dict()}
        replies.append({method: reply["result"]} if "result" in reply else reply)
    return {"replies": replies}


def legacy_commands(body: bytes) -> list[dict[str, Any]] | None:
    """The old `POST /api` body: JSON commands `{"id"?, "method", "params"}` one after another (any
    whitespace between); `method` by name (any case) or number. None if it cannot be decoded (400)."""
    decoder = json.JSONDecoder()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    out, pos = [], 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        method = obj.get("method")
        if isinstance(method, str):
            method = method.lower()
            if method not in KNOWN:
                return None
        elif isinstance(method, int) and not isinstance(method, bool):
            method = METHOD_IDS.get(method, f"#{method}")  # an unknown number: 104 method not found
        elif method is not None:
            return None
        ident = obj.get("id")
        if ident is not None and (isinstance(ident, bool) or not isinstance(ident, int) or ident < 0):
            return None
        out.append({"id": ident, "method": method or "publish", "params": obj.get("params")})  # no method: 0, publish


async def run_legacy(hub: Hub, project: str, commands: list[dict[str, Any]], state: ApiState = _DEFAULT_STATE) -> bytes:
    """Answer old-style commands: one `{"id"?, "result"}` or `{"id"?, "error"}` per line, as Centrifugo writes them."""
    lines = []
    for command in commands:
        params = command["params"]
        if params is not None and not isinstance(params, dict):
            reply: dict[str, Any] = {"error": ApiError(BAD_REQUEST).as_dict()}
        elif command["method"] == "batch":
            reply = {"error": ApiError(METHOD_NOT_FOUND).as_dict()}
        else:
            reply = await call(hub, project, command["method"], params, state)
        out: dict[str, Any] = {}
        if command["id"]:
            out["id"] = command["id"]
        out.update(reply)
        lines.append(json.dumps(out, separators=(",", ":"), ensure_ascii=False))
    return "\n".join(lines).encode("utf-8", JSON_SURROGATES)
