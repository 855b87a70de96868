"""What each page shows, read from the core, the action registry and the settings (no HTTP here)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from hub.actions import ActionError
from hub.core import HubError, Publication, Session
from hub.core.errors import NotAvailable

from .monitor import DATA_PREVIEW

if TYPE_CHECKING:
    from hub.runtime import RunningHub

log = logging.getLogger("hub")

MAX_ROWS = 200  # channels or clients listed on one page
HISTORY_SHOWN = 20
PRESENCE_SHOWN = 100
MASK = "********"

# Keys whose values are secrets, wherever they are in the configuration.
_SECRET_KEY = re.compile(r"(secret|password|passwd)$|(^|_)token$|^api_keys$", re.IGNORECASE)


def json_text(value: Any, limit: int = DATA_PREVIEW) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def parse_data(text: str) -> Any:
    """The publish form's `data`: JSON when it parses (an object, array, number...), else the text as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def publication_row(pub: Publication) -> dict[str, Any]:
    return {"uid": pub.uid, "channel": pub.channel, "offset": pub.offset, "timestamp": pub.timestamp,
            "client": pub.client, "data": json_text(pub.data), "info": json_text(pub.info) if pub.info is not None else ""}


# -- channels ----------------------------------------------------------------------------------
def glob_of(query: str) -> str | None:
    """A search box's text as a glob: `news` finds channels containing it, `news:*` is a glob as is."""
    query = query.strip()
    if not query:
        return None
    return query if any(c in query for c in "*?[") else f"*{query}*"


async def channel_list(runtime: RunningHub, project: str, query: str = "") -> dict[str, Any]:
    channels = await runtime.hub.channels(project, glob_of(query))
    rows = sorted(channels.items(), key=lambda kv: (-kv[1], kv[0]))
    return {"type": "channels", "project": project, "total": len(rows),
            "channels": [{"name": name, "subscribers": count} for name, count in rows[:MAX_ROWS]]}


async def channel_detail(runtime: RunningHub, project: str, channel: str) -> dict[str, Any]:
    """Presence and last history of one channel; each part says why it is missing when it is."""
    hub = runtime.hub
    out: dict[str, Any] = {"type": "channel", "project": project, "channel": channel}
    try:
        presence = await hub.presence(project, channel)
        clients = [{"client": cid, "user": info["user"], "info": json_text(info.get("default_info"), 200)}
                   for cid, info in list(presence.items())[:PRESENCE_SHOWN]]
        out["presence"] = {"clients": clients, "num_clients": len(presence),
                           "num_users": len({c["user"] for c in presence.values()})}
    except NotAvailable:
        out["presence"] = {"error": "presence is not enabled for this channel"}
    except HubError as exc:
        out["presence"] = {"error": exc.message}
    try:
        history = await hub.history(project, channel, limit=HISTORY_SHOWN, newest_first=True)
        out["history"] = {"publications": [publication_row(p) for p in history.publications],
                          "offset": history.offset, "epoch": history.epoch}
    except NotAvailable:
        out["history"] = {"error": "this channel keeps no history"}
    except HubError as exc:
        out["history"] = {"error": exc.message}
    return out


async def publish(runtime: RunningHub, project: str, channel: str, data_text: str) -> dict[str, Any]:
    """Publish through the core; a refusal comes back as the core's own error text."""
    if not channel:
        return {"ok": False, "error": "channel required"}
    try:
        pub = await runtime.hub.publish(project, channel, parse_data(data_text))
    except HubError as exc:
        return {"ok": False, "error": exc.message}
    return {"ok": True, "message": f"published to {channel}", "result": {"uid": pub.uid, "offset": pub.offset}}


# -- clients -----------------------------------------------------------------------------------
def session_row(session: Session, now: float) -> dict[str, Any]:
    wire = session.wire
    return {
        "client": session.id, "project": session.project, "user": session.user, "protocol": session.protocol,
        "transport": session.meta.get("transport") or "websocket",
        "encoding": "" if wire is None or getattr(wire, "name", "") in ("", session.protocol) else wire.name,
        "channels": sorted(session.channels)[:50], "subscriptions": len(session.channels),
        "connected": int(now - session.connected_at), "received": session.received, "dropped": session.dropped,
    }


def client_list(runtime: RunningHub, query: str = "") -> dict[str, Any]:
    query = query.strip().lower()
    now = time.time()
    rows = []
    total = 0
    for session in tuple(runtime.hub.sessions.values()):
        if query and not any(query in value.lower() for value in (session.user, session.id, session.protocol)):
            continue
        total += 1
        if len(rows) < MAX_ROWS:
            rows.append(session_row(session, now))
    return {"type": "clients", "total": total, "sessions": rows}


def disconnect(runtime: RunningHub, client: str) -> dict[str, Any]:
    session = runtime.hub.sessions.get(client)
    if session is None:
        return {"ok": False, "error": "no such client (already gone?)"}
    runtime.hub.close(session, "disconnected by an operator", reconnect=False)
    return {"ok": True, "message": f"disconnected {session.user or 'anonymous'} ({client})"}


# -- actions -----------------------------------------------------------------------------------
def action_list(runtime: RunningHub) -> list[dict[str, Any]]:
    return [a.describe() for a in runtime.actions]


def action_args(form: dict[str, str]) -> dict[str, Any]:
    """The run form: `args` (a JSON object) and/or one `arg.<name>` field per argument; a field's value is
    JSON when it parses, else the text itself (as `hub exec key=value` does); empty fields are left out."""
    args: dict[str, Any] = {}
    raw = form.get("args", "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise ActionError(f"args is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise ActionError("args must be a JSON object")
        args.update(parsed)
    for key, value in form.items():
        if key.startswith("arg.") and value != "":
            args[key[4:]] = parse_data(value)
    return args


async def run_action(runtime: RunningHub, name: str, form: dict[str, str]) -> dict[str, Any]:
    try:
        result = await runtime.actions.run(name, action_args(form))
    except ActionError as exc:
        return {"ok": False, "error": exc.message, "status": exc.status}
    return {"ok": True, "result": json.loads(json.dumps(result, default=str))}


# -- chat (through the action registry and the core only) -----------------------------------------------
def chat_available(runtime: RunningHub) -> bool:
    return "chat.rooms" in runtime.actions and "chat.history" in runtime.actions


async def chat_rooms(runtime: RunningHub) -> dict[str, Any]:
    if not chat_available(runtime):
        return {"type": "rooms", "error": "the chat adapter is not running", "rooms": []}
    try:
        rooms = await runtime.actions.run("chat.rooms", {})
    except ActionError as exc:
        return {"type": "rooms", "error": exc.message, "rooms": []}
    rows = [{"id": r.get("_id"), "name": r.get("name") or r.get("fname") or r.get("_id"),
             "members": r.get("usersCount", len(r.get("usernames") or [])), "messages": r.get("msgs", 0),
             "last": r.get("lm") or ""} for r in rooms if isinstance(r, dict)]
    return {"type": "rooms", "rooms": sorted(rows, key=lambda r: str(r["name"]))}


def chat_channel(runtime: RunningHub, room_id: str) -> tuple[str, str] | None:
    """The (project, channel) a room's messages are published on: the chat's documented channel_prefix + room id."""
    chat = runtime.settings.adapters.get("chat")
    prefix = getattr(chat, "channel_prefix", None)
    if not prefix or not getattr(chat, "enabled", False):
        return None
    return (getattr(chat, "project", "") or runtime.default_project, f"{prefix}{room_id}")


def chat_message(data: Any) -> dict[str, Any] | None:
    """A chat message published on a room's channel, as the page shows it."""
    if not isinstance(data, dict) or "msg" not in data:
        return None
    user = data.get("u") if isinstance(data.get("u"), dict) else {}
    return {"id": data.get("_id"), "user": user.get("username", ""), "text": str(data.get("msg", "")), "ts": data.get("ts", "")}


async def chat_room(runtime: RunningHub, room: str, limit: int = 50) -> dict[str, Any]:
    if not chat_available(runtime):
        return {"error": "the chat adapter is not running", "messages": []}
    try:
        messages = await runtime.actions.run("chat.history", {"room": room, "limit": limit})
    except ActionError as exc:
        return {"error": exc.message, "messages": []}
    return {"messages": [m for m in (chat_message(x) for x in messages) if m is not None]}


# -- config ------------------------------------------------------------------------------------
def mask(value: Any, key: str = "") -> Any:
    """Secrets (by key name) replaced by a mask wherever they sit; empty ones stay empty so "unset" shows."""
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if key and _SECRET_KEY.search(key) and value not in ("", None, [], ()):
        return [MASK for _ in value] if isinstance(value, (list, tuple)) else MASK
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


def effective_config(runtime: RunningHub) -> dict[str, Any]:
    """Every setting in force, defaults included, secrets masked: [hub], [projects.*], then each adapter."""
    settings = runtime.settings
    out: dict[str, Any] = {"hub": dataclasses.asdict(settings.hub), "projects": {}}
    for project in settings.projects:
        table = {"secret": project.secret, **dataclasses.asdict(project.options),
                 "connection_lifetime": project.connection_lifetime, "max_channel_length": project.max_channel_length,
                 "api_keys": list(project.api_keys),
                 "namespaces": {ns: dataclasses.asdict(opts) for ns, opts in project.namespaces.items()}}
        out["projects"][project.key] = table
    for name, adapter_settings in settings.adapters.items():
        out[name] = dataclasses.asdict(adapter_settings)
    return mask(out)


def toml_text(data: dict[str, Any]) -> str:
    """A TOML text of the effective configuration, for reading: one [table] per section, project and sub-table."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if not _is_tables(v))
        lines.append("")
        for key, sub in values.items():
            if _is_tables(sub):
                for sub_name, sub_values in sub.items():
                    table(f"{name}.{_toml_key(key)}.{_toml_key(sub_name)}", sub_values)

    for key, value in data.items():
        if key == "projects":
            for project, values in value.items():
                table(f"projects.{_toml_key(project)}", values)
        else:
            table(_toml_key(key), value)
    return "\n".join(lines)


def _is_tables(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def reload_config(runtime: RunningHub) -> dict[str, Any]:
    """What SIGHUP does: reload the file the hub was started from (or last reloaded from)."""
    from hub.config import ConfigError

    try:
        result = runtime.reload_from_file()
    except ConfigError as exc:
        log.error("reload refused: %s", exc)  # as SIGHUP's
        return {"ok": False, "error": f"reload refused: {exc}"}
    changed = ", ".join(result["changed"]) or "nothing"
    restart = ", ".join(result["restart_required"]) or "nothing"
    return {"ok": True, "message": f"reloaded {runtime.config_path}: changed {changed}; needs restart: {restart}",
            "result": result}
