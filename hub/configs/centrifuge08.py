"""Centrifuge 0.8 `config.json` → hub.toml data: `hub run --config config.json` serves what `centrifuge
--config=config.json` served, on port 8000.

The file's shape: `{"projects": [{"name", "secret", "connection_lifetime", <channel options>,
"namespaces": [{"name", <channel options>}]}], "password", "cookie_secret", ...}` with channel options
`publish`, `anonymous`, `presence`, `join_leave`, `watch`, `history_size`, `history_lifetime`
(all off or 0 unless set, as 0.8 defaults them). Types are checked as 0.8's schema checks them; a
wrong one is a ConfigError naming the JSON path. Keys the hub does not act on get one warning each.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from . import Reader, json_kind

NAME = "Centrifuge 0.8 config.json"

_PROJECT_NAME = re.compile(r"^[-a-zA-Z0-9_]{2,}$")
_BOOLEANS = ("publish", "anonymous", "presence", "join_leave")
_INTEGERS = ("history_size", "history_lifetime")

# Top-level keys of 0.8 and what becomes of them here (None: accepted, no effect worth a warning).
_IGNORED = {
    "cookie_secret": None,  # signed the admin interface's cookies; the dashboard keeps its own sessions
    "insecure": "insecure mode is not supported: clients still need a valid token",
    "tornado_settings": "Tornado's own settings do not apply",
    "presence_ping_interval": "presence is exact here (no pings, no expiry)",
    "presence_expire_interval": "presence is exact here (no pings, no expiry)",
    "channel_prefix": "the Redis engine's key prefix is set in hub.toml",
    "node_ping_interval": "nodes are not pinged",
    "ping_max_delay": "nodes are not pinged",
    "pre_publish_callbacks": "Python callbacks are not supported",
    "post_publish_callbacks": "Python callbacks are not supported",
    "metrics": "metrics are served by the stats adapter (/metrics)",
    "api_secret": "the signed API uses each project's secret",
}
_FIXED = {  # supported only with 0.8's default value
    "private_channel_prefix": "$",
    "namespace_channel_boundary": ":",
    "user_channel_boundary": "#",
}
_REALTIME = {"client_api_message_limit": "legacy_max_commands", "expired_connection_close_delay": "legacy_expired_close_delay"}
_SOCKJS = {"heartbeat_delay": "sockjs_heartbeat", "disconnect_delay": "sockjs_disconnect_delay"}


def matches(data: dict[str, Any]) -> bool:
    """A Centrifuge 0.8 config has a `projects` list; later Centrifugo versions have none."""
    return isinstance(data.get("projects"), list)


class _Reader(Reader):
    def boolean(self, table: dict[str, Any], name: str, path: str) -> bool:
        value = table.get(name, False)
        if not isinstance(value, bool):
            raise self.fail(f"{path}.{name}", f"expected a boolean, got {json_kind(value)}")
        return value

    def integer(self, table: dict[str, Any], name: str, path: str) -> int:
        value = table.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{path}.{name}", f"expected an integer, got {json_kind(value)}")
        if value < 0:
            raise self.fail(f"{path}.{name}", f"must be at least 0, got {value}")
        return value

    def string(self, table: dict[str, Any], name: str, path: str, required: bool = False) -> str:
        if name not in table:
            if required:
                raise self.fail(f"{path}.{name}", "missing")
            return ""
        value = table[name]
        if not isinstance(value, str):
            raise self.fail(f"{path}.{name}", f"expected a string, got {json_kind(value)}")
        return value

    def options(self, table: dict[str, Any], path: str, known: set[str]) -> dict[str, Any]:
        """Channel options with 0.8's defaults (everything off), and a warning per key 0.8 did not know."""
        out: dict[str, Any] = {name: self.boolean(table, name, path) for name in _BOOLEANS}
        out.update({name: self.integer(table, name, path) for name in _INTEGERS})
        self.boolean(table, "watch", path)  # the admin interface's live view: the dashboard shows every channel
        for key in table:
            if key not in known and key not in _BOOLEANS and key not in _INTEGERS and key != "watch":
                self.warn(f"{path}.{key}", "unknown key, ignored")
        return out


def translate(data: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """(hub.toml data, warnings) for a Centrifuge 0.8 config."""
    r = _Reader(source)
    data = dict(data)
    for name in ("password", "cookie_secret"):  # 0.8 lets the environment override these
        value = os.environ.get(f"CENTRIFUGE_{name.upper()}")
        if value:
            data[name] = value
    out: dict[str, Any] = {"projects": {}}
    max_length = data.get("max_channel_length", 255)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise r.fail("max_channel_length", f"expected a positive integer, got {max_length!r}")
    projects = data["projects"]
    if not projects:
        raise r.fail("projects", "at least one project is required")
    for i, project in enumerate(projects):
        path = f"projects[{i}]"
        if not isinstance(project, dict):
            raise r.fail(path, f"expected an object, got {json_kind(project)}")
        name = r.string(project, "name", path, required=True)
        if not _PROJECT_NAME.match(name):
            raise r.fail(f"{path}.name", f"must match ^[-a-zA-Z0-9_]{{2,}}$, got {name!r}")
        if name in out["projects"]:
            raise r.fail(f"{path}.name", f"project name must be unique: {name!r}")
        secret = r.string(project, "secret", path, required=True)
        if not secret:
            raise r.fail(f"{path}.secret", "must not be empty")
        table = r.options(project, path, {"name", "secret", "connection_lifetime", "namespaces"})
        table.update(secret=secret, connection_lifetime=r.integer(project, "connection_lifetime", path),
                     max_channel_length=max_length, namespaces={})
        namespaces = project.get("namespaces", [])
        if not isinstance(namespaces, list):
            raise r.fail(f"{path}.namespaces", f"expected an array, got {json_kind(namespaces)}")
        for j, namespace in enumerate(namespaces):
            npath = f"{path}.namespaces[{j}]"
            if not isinstance(namespace, dict):
                raise r.fail(npath, f"expected an object, got {json_kind(namespace)}")
            ns_name = r.string(namespace, "name", npath, required=True)
            if not ns_name or ":" in ns_name:
                raise r.fail(f"{npath}.name", f"must be non-empty and contain no ':', got {ns_name!r}")
            if ns_name in table["namespaces"]:
                raise r.fail(f"{npath}.name", f"namespace name must be unique for project: {ns_name!r}")
            table["namespaces"][ns_name] = r.options(namespace, npath, {"name"})
        out["projects"][name] = table
    _top_level(r, data, out)
    return out, r.warnings


def _top_level(r: _Reader, data: dict[str, Any], out: dict[str, Any]) -> None:
    from ..adapters import adapter_registry

    registry = adapter_registry()
    password = data.get("password", "")
    if not isinstance(password, str):
        raise r.fail("password", f"expected a string, got {json_kind(password)}")
    limit = data.get("admin_api_message_limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise r.fail("admin_api_message_limit", f"expected a positive integer, got {limit!r}")
        out["command_api"] = {"max_commands": limit}
    sockjs = data.get("sockjs_settings", {})
    if not isinstance(sockjs, dict):
        raise r.fail("sockjs_settings", f"expected an object, got {json_kind(sockjs)}")
    realtime: dict[str, Any] = {}
    for key, value in sockjs.items():
        if key in _SOCKJS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise r.fail(f"sockjs_settings.{key}", f"expected a positive number, got {value!r}")
            realtime[_SOCKJS[key]] = float(value)
        elif key != "sockjs_url":
            r.warn(f"sockjs_settings.{key}", "not supported, ignored")
    for key, name in _REALTIME.items():
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "legacy_max_commands" else 0):
                raise r.fail(key, f"expected a {'positive' if name == 'legacy_max_commands' else 'non-negative'} integer, got {value!r}")
            realtime[name] = value
    if "realtime" in registry:
        # Centrifuge 0.8 checked no Origin and its users' pages are usually on another port or host: a
        # config.json keeps working unchanged (hub.toml's default is the same host only; list sites there).
        realtime["allowed_origins"] = ["*"]
        out["realtime"] = realtime
    for key, value in data.items():
        if key in ("projects", "password", "max_channel_length", "admin_api_message_limit", "sockjs_settings", *_REALTIME):
            continue
        if key in _IGNORED:
            if _IGNORED[key] is None:
                if not isinstance(value, str):
                    raise r.fail(key, f"expected a string, got {json_kind(value)}")
            elif value not in (None, False, [], {}):
                r.warn(key, f"{_IGNORED[key]}; ignored")
        elif key in _FIXED:
            if value != _FIXED[key]:
                r.warn(key, f"only {_FIXED[key]!r} is supported (as 0.8's default), ignored")
        else:
            r.warn(key, "unknown key, ignored")
    # Only what 0.8 served: the websocket/SockJS clients and the API on one port. The dashboard takes
    # the admin interface's place when there is a password to log in with.
    for name, adapter in registry.items():
        if name in ("realtime", "command_api"):
            continue
        fields = {f.name for f in dataclasses.fields(adapter.settings)}
        if name == "dashboard" and password and "password" in fields:
            out[name] = {"password": password}
        else:
            out[name] = {"enabled": False}
