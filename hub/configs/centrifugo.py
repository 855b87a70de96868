"""Centrifugo v6 `config.json` → hub.toml data.

One project (`centrifugo`) holds what the file describes: its HMAC secret is
`client.token.hmac_secret_key`, its API key `http_api.key`, its default channel options
`channel.without_namespace` and its namespaces `channel.namespaces[]`. The websocket endpoint and the
server API share `http_server.port`; the hub's other adapters (which Centrifugo does not have) are
off. Every key the hub does not apply is reported by name; a value of the wrong type is a ConfigError.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from . import Reader, json_kind

NAME = "Centrifugo v6"
PROJECT = "centrifugo"
# Adapters a Centrifugo config describes; every other one is switched off.
ADAPTERS = ("realtime", "command_api")

# Centrifugo channel option → (hub namespace key, kind). Centrifugo's defaults are all false / 0.
CHANNEL_OPTIONS: dict[str, tuple[str, str]] = {
    "presence": ("presence", "bool"),
    "join_leave": ("join_leave", "bool"),
    "force_push_join_leave": ("force_push_join_leave", "bool"),
    "history_size": ("history_size", "int"),
    "history_ttl": ("history_lifetime", "duration"),
    "force_positioning": ("force_positioning", "bool"),
    "force_recovery": ("force_recovery", "bool"),
    "allow_subscribe_for_client": ("allow_subscribe_for_client", "bool"),
    "allow_subscribe_for_anonymous": ("allow_subscribe_for_anonymous", "bool"),
    "allow_publish_for_anonymous": ("allow_publish_for_anonymous", "bool"),
    "allow_presence_for_client": ("allow_presence_for_client", "bool"),
    "allow_presence_for_anonymous": ("allow_presence_for_anonymous", "bool"),
    "allow_history_for_client": ("allow_history_for_client", "bool"),
    "allow_history_for_anonymous": ("allow_history_for_anonymous", "bool"),
    "allow_publish_for_client": ("allow_publish_for_client", "bool"),
    "allow_publish_for_subscriber": ("publish", "bool"),
    "allow_presence_for_subscriber": ("allow_presence_for_subscriber", "bool"),
    "allow_history_for_subscriber": ("allow_history_for_subscriber", "bool"),
    "allow_user_limited_channels": ("allow_user_limited_channels", "bool"),
    "allow_tags_filter": ("allow_tags_filter", "bool"),
}
CHANNEL_DEFAULTS = {
    "presence": False, "join_leave": False, "force_push_join_leave": False, "history_size": 0, "history_lifetime": 0.0,
    "force_positioning": False, "force_recovery": False, "allow_subscribe_for_client": False, "anonymous": False,
    "allow_subscribe_for_anonymous": False, "allow_publish_for_anonymous": False, "allow_presence_for_client": False,
    "allow_presence_for_anonymous": False, "allow_history_for_client": False, "allow_history_for_anonymous": False,
    "allow_publish_for_client": False, "publish": False, "allow_presence_for_subscriber": False,
    "allow_history_for_subscriber": False, "allow_user_limited_channels": False, "allow_tags_filter": False,
}
# A namespace's proxy switches (Centrifugo v6): which named proxy handles its subscribe / publish / sub_refresh.
PROXY_NAMESPACE_KEYS = {f"{kind}_proxy_{part}": ("bool" if part == "enabled" else "str")
                        for kind in ("subscribe", "publish", "sub_refresh") for part in ("enabled", "name")}
_PROXY_KEYS = "_proxy"
# Keys with no effect on the hub that need no warning (names, or values equal to Centrifugo's defaults).
QUIET = {"name"}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def matches(data: dict[str, Any]) -> bool:
    """A Centrifugo v6 config has its sections as objects: client, channel, http_server, http_api, ..."""
    v6 = ("client", "channel", "http_server", "http_api", "engine", "log", "admin", "websocket", "sse",
          "http_stream", "uni_websocket", "consumers", "prometheus", "health", "debug")
    return any(isinstance(data.get(k), dict) for k in v6)


class _Reader(Reader):
    def unsupported(self, key: str, why: str = "not supported by the hub; ignored") -> None:
        self.warn(key, why)

    def section(self, data: dict[str, Any], name: str, path: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(f"{path}{name}", f"expected an object, got {json_kind(value)}")
        return value

    def value(self, value: Any, kind: str, key: str) -> Any:
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.fail(key, f"expected a boolean, got {json_kind(value)}")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.fail(key, f"expected an integer, got {json_kind(value)}")
            if value < 0:
                raise self.fail(key, f"must not be negative, got {value}")
            return value
        if kind == "str":
            if not isinstance(value, str):
                raise self.fail(key, f"expected a string, got {json_kind(value)}")
            return value
        if kind == "duration":
            return self.duration(value, key)
        if kind == "strlist":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise self.fail(key, "expected an array of strings")
            return value
        raise AssertionError(kind)

    def choice(self, value: Any, key: str, *allowed: str) -> str:
        """A string that must be one of `allowed` ("" among them: the key may be left empty)."""
        text = self.value(value, "str", key)
        if text not in allowed:
            named = [f'"{a}"' for a in allowed if a]
            listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " or " + named[-1]
            raise self.fail(key, f"expected {listed}, got {text!r}")
        return text

    def duration(self, value: Any, key: str) -> float:
        """A Go duration ("300s", "1h30m", "720h", "0s")."""
        if not isinstance(value, str):
            raise self.fail(key, f"expected a duration string such as \"300s\", got {json_kind(value)}")
        text = value.strip()
        if text == "0":
            return 0.0
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise self.fail(key, f"not a duration: {value!r} (use e.g. \"300s\", \"5m\", \"720h\")")
        return sum(float(n) * _UNITS[u] for n, u in parts)


def _channel_options(r: _Reader, table: Any, path: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise r.fail(path, f"expected an object, got {json_kind(table)}")
    out = dict(CHANNEL_DEFAULTS)
    map_type, map_table = False, None
    poll_type, poll_table = False, None
    for key, value in table.items():
        full = f"{path}.{key}"
        if key in QUIET:
            continue
        if key in CHANNEL_OPTIONS:
            target, kind = CHANNEL_OPTIONS[key]
            out[target] = r.value(value, kind, full)
        elif key in PROXY_NAMESPACE_KEYS:  # collected for [realtime.proxy] by translate(), not a channel option
            out.setdefault(_PROXY_KEYS, {})[key] = r.value(value, PROXY_NAMESPACE_KEYS[key], full)
        elif key == "allowed_delta_types":
            types = r.value(value, "strlist", full)
            unknown = [t for t in types if t != "fossil"]
            if unknown:
                raise r.fail(full, f"unknown delta type {unknown[0]!r} (Centrifugo knows \"fossil\")")
            out["delta_fossil"] = "fossil" in types
        elif key == "subscription_type":
            kind = r.value(value, "str", full)
            if kind == "shared_poll":
                poll_type = True
            elif kind not in ("stream", "map", "map_clients", ""):
                r.unsupported(full, f"subscription type {kind!r} is not supported by the hub (stream, map, "
                                    "map_clients and shared_poll are); ignored")
            else:
                map_type = kind in ("map", "map_clients")
                if kind == "map_clients":
                    out["map_type"] = 2
        elif key == "map":
            map_table = r.section(table, "map", f"{path}.")
        elif key == "shared_poll":
            poll_table = r.section(table, "shared_poll", f"{path}.")
        elif key == "map_clients_presence_channel_prefix":
            out["map_presence_prefix"] = r.value(value, "str", full)
        elif key == "client_publish_debounce_interval":
            out["publish_debounce"] = r.duration(value, full)
        elif key == "delta_publish":
            # The hub computes deltas for every publication of a delta namespace (Centrifugo: only when published
            # with delta, or with delta_publish); subscribers that asked for deltas get them either way.
            r.value(value, "bool", full)
        else:
            r.unsupported(full)
    if out["history_size"] and not out["history_lifetime"]:
        raise r.fail(f"{path}.history_ttl", "required when history_size is set (Centrifugo refuses this too)")
    if map_type:
        _map_options(r, map_table or {}, f"{path}.map", out)
    elif map_table is not None:
        r.unsupported(f"{path}.map", "only read with subscription_type \"map\"; ignored")
    if poll_type:
        out[_POLL_KEY] = _poll_options(r, poll_table or {}, f"{path}.shared_poll")
    elif poll_table is not None:
        r.unsupported(f"{path}.shared_poll", "only read with subscription_type \"shared_poll\"; ignored")
    return out


_POLL_KEY = "_shared_poll"


def _poll_options(r: _Reader, table: dict[str, Any], path: str) -> dict[str, Any]:
    """A shared poll namespace's `shared_poll` object (Centrifugo 6.8) → [realtime.shared_poll.<namespace>]."""
    out: dict[str, Any] = {"interval": 1.0, "batch": 100, "max_keys": 1000, "versioned": False}
    for key, value in table.items():
        full = f"{path}.{key}"
        if key == "proxy_name":
            out["proxy"] = r.value(value, "str", full)
        elif key == "mode":
            out["versioned"] = r.choice(value, full, "", "versioned", "versionless") == "versioned"
        elif key == "refresh_interval":
            out["interval"] = r.duration(value, full)
        elif key == "refresh_batch_size":
            out["batch"] = r.value(value, "int", full) or 100
        elif key == "max_keys_per_connection":
            out["max_keys"] = r.value(value, "int", full) or 1000
        else:
            r.unsupported(full)
    if not out.get("proxy"):
        raise r.fail(f"{path}.proxy_name", "required (a proxy named in the top-level proxies)")
    return out


MAP_FLAGS = {"allow_publish_for_client": "map_publish_for_client", "allow_publish_for_subscriber": "map_publish_for_subscriber",
             "allow_remove_for_client": "map_remove_for_client"}


def _map_options(r: _Reader, table: dict[str, Any], path: str, out: dict[str, Any]) -> None:
    """A map namespace's `map` object (Centrifugo 6.8): its mode, key TTL, stream and who may publish keys.
    Stream modes keep a stream of changes as the namespace's history (Centrifugo's defaults: 100, 1 minute)."""
    mode = r.choice(table.get("mode", ""), f"{path}.mode", "ephemeral", "recoverable", "persistent")
    out["map_mode"] = mode
    size, ttl = 0, 0.0
    for key, value in table.items():
        full = f"{path}.{key}"
        if key == "mode":
            continue
        if key == "key_ttl":
            out["map_key_ttl"] = r.duration(value, full)
        elif key == "stream_size":
            size = r.value(value, "int", full)
        elif key == "stream_ttl":
            ttl = r.duration(value, full)
        elif key in MAP_FLAGS:
            out[MAP_FLAGS[key]] = r.value(value, "bool", full)
        elif key == "client_key":
            out["map_client_key"] = r.choice(value, full, "", "client_id")
        else:
            r.unsupported(full)
    if mode == "persistent" and out.get("map_key_ttl"):
        raise r.fail(f"{path}.key_ttl", "must not be set in persistent mode (entries do not expire)")
    if mode != "persistent" and not out.get("map_key_ttl"):
        raise r.fail(f"{path}.key_ttl", f"required in {mode} mode")
    if mode == "ephemeral":
        if size or ttl:
            raise r.fail(f"{path}.stream_size", "a stream needs recoverable or persistent mode")
        out["history_size"], out["history_lifetime"] = 0, 0.0
    else:
        out["history_size"], out["history_lifetime"] = size or 100, ttl or 60.0


def _meta_ttl_section() -> str | None:
    """The hub.toml section that holds `history_meta_ttl`, if this hub's engine has that setting."""
    from .. import config as hub_config

    for section, cls_name in (("hub", "CoreSettings"), ("engine", "EngineSettings")):
        cls = getattr(hub_config, cls_name, None)
        if cls is not None and "history_meta_ttl" in {f.name for f in dataclasses.fields(cls)}:
            return section
    return None


def _engine(r: _Reader, engine: dict[str, Any], out: dict[str, Any]) -> None:
    """`engine.type` memory, or redis (`engine.redis.address`, `prefix`) where this hub has an [engine] section."""
    from .. import config as hub_config

    kind = r.value(engine.get("type", "memory"), "str", "engine.type")
    redis = r.section(engine, "redis", "engine.") if "redis" in engine else {}
    for key in engine:
        if key not in ("type", "redis"):
            r.unsupported(f"engine.{key}")
    if kind == "memory":
        return
    if kind != "redis" or not hasattr(hub_config, "EngineSettings"):
        r.unsupported("engine.type", f"engine {kind!r} is not available in this hub; the memory engine is used")
        return
    section = out.setdefault("engine", {})
    section["type"] = "redis"
    address = redis.get("address", "redis://127.0.0.1:6379")
    if isinstance(address, list):
        if len(address) != 1:
            r.unsupported("engine.redis.address", "one Redis address only (no client-side sharding); the first is used")
        address = address[0] if address else "redis://127.0.0.1:6379"
    address = r.value(address, "str", "engine.redis.address")
    section["url"] = address if "://" in address else f"redis://{address}"
    section["prefix"] = r.value(redis.get("prefix", "centrifugo"), "str", "engine.redis.prefix")
    for key in redis:
        if key not in ("address", "prefix"):
            r.unsupported(f"engine.redis.{key}")


def _proxy(r: _Reader, table: Any, path: str, *, required: bool = True) -> dict[str, Any]:
    """One Centrifugo proxy object (HTTP JSON protocol) as [realtime.proxy] holds it: durations in seconds."""
    if not isinstance(table, dict):
        raise r.fail(path, f"expected an object, got {json_kind(table)}")
    out: dict[str, Any] = {"timeout": 1.0}
    for key, value in table.items():
        full = f"{path}.{key}"
        if key in ("name", "endpoint"):
            out[key] = r.value(value, "str", full)
        elif key == "timeout":
            out["timeout"] = r.duration(value, full)
        elif key == "http_headers":
            out["http_headers"] = r.value(value, "strlist", full)
        elif key in ("include_connection_meta", "binary_encoding"):
            out[key] = r.value(value, "bool", full)
        elif key in ("grpc_metadata", "emulated_headers"):
            if r.value(value, "strlist", full):
                r.unsupported(full, "not supported by the hub (HTTP proxies forward http_headers); ignored")
        elif key == "http":
            http = r.section(table, "http", f"{path}.")
            for hkey, hvalue in http.items():
                hfull = f"{full}.{hkey}"
                if hkey == "static_headers":
                    if not isinstance(hvalue, dict) or not all(isinstance(v, str) for v in hvalue.values()):
                        raise r.fail(hfull, "expected an object of header name to string value")
                    out["static_headers"] = dict(hvalue)
                elif hkey == "status_to_code_transforms":
                    if not isinstance(hvalue, list) or not all(isinstance(t, dict) for t in hvalue):
                        raise r.fail(hfull, "expected an array of objects")
                    out["status_to_code_transforms"] = hvalue
                else:
                    r.unsupported(hfull)
        elif key == "grpc":
            r.section(table, "grpc", f"{path}.")
        else:
            r.unsupported(full)
    endpoint = out.get("endpoint", "")
    if required and not endpoint:
        raise r.fail(f"{path}.endpoint", "required when the proxy is used")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise r.fail(f"{path}.endpoint", f"only HTTP proxies are supported (http:// or https://), got {endpoint!r}")
    if out["timeout"] <= 0:
        raise r.fail(f"{path}.timeout", "must be positive")
    return out


def _proxies(r: _Reader, data: dict[str, Any], proxies: dict[str, Any],
             ns_proxies: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Top-level `proxies` (named) and `rpc`, and each namespace's `*_proxy_enabled` / `*_proxy_name`, into `proxies`."""
    named: dict[str, Any] = {}
    listed = data.get("proxies", [])
    if not isinstance(listed, list):
        raise r.fail("proxies", f"expected an array, got {json_kind(listed)}")
    for i, item in enumerate(listed):
        parsed = _proxy(r, item, f"proxies[{i}]")
        name = parsed.pop("name", "")
        if not name or name == "default":
            raise r.fail(f"proxies[{i}].name", "a named proxy needs a unique name other than \"default\"")
        if name in named:
            raise r.fail(f"proxies[{i}].name", f"duplicate proxy name {name!r}")
        named[name] = parsed
    if named:
        proxies["named"] = named
    rpc = r.section(data, "rpc", "")
    rpc_ns: dict[str, str] = {}
    for key, value in rpc.items():
        full = f"rpc.{key}"
        if key == "proxy":
            table = r.section(rpc, "proxy", "rpc.")
            if table.get("endpoint"):
                proxies["rpc"] = _proxy(r, table, full)
        elif key == "namespace_boundary":
            proxies["rpc_namespace_boundary"] = r.value(value, "str", full) or ":"
        elif key in ("without_namespace", "namespaces"):
            continue
        else:
            r.unsupported(full)
    rpc_options = [("", "rpc.without_namespace", rpc.get("without_namespace", {}))]
    namespaces = rpc.get("namespaces", [])
    if not isinstance(namespaces, list):
        raise r.fail("rpc.namespaces", f"expected an array, got {json_kind(namespaces)}")
    for i, ns in enumerate(namespaces):
        path = f"rpc.namespaces[{i}]"
        if not isinstance(ns, dict):
            raise r.fail(path, f"expected an object, got {json_kind(ns)}")
        name = ns.get("name")
        if not isinstance(name, str) or not name:
            raise r.fail(f"{path}.name", "an rpc namespace needs a non-empty name")
        rpc_options.append((name, path, ns))
    for name, path, options in rpc_options:
        if not isinstance(options, dict):
            raise r.fail(path, f"expected an object, got {json_kind(options)}")
        for key in options:
            if key not in ("name", "proxy_enabled", "proxy_name"):
                r.unsupported(f"{path}.{key}")
        if r.value(options.get("proxy_enabled", False), "bool", f"{path}.proxy_enabled"):
            rpc_ns[name] = _proxy_name(r, proxies, named, "rpc", options.get("proxy_name", "default"), f"{path}.proxy_name")
    if rpc_ns:
        proxies["rpc_namespaces"] = rpc_ns
    channels: dict[str, dict[str, str]] = {}
    for ns, (path, keys) in ns_proxies.items():
        for kind in ("subscribe", "publish", "sub_refresh"):
            if keys.get(f"{kind}_proxy_enabled"):
                channels.setdefault(ns, {})[kind] = _proxy_name(r, proxies, named, kind, keys.get(f"{kind}_proxy_name") or "default",
                                                                f"{path}.{kind}_proxy_name")
    if channels:
        proxies["channels"] = channels


def _proxy_name(r: _Reader, proxies: dict[str, Any], named: dict[str, Any], kind: str, name: Any, key: str) -> str:
    name = r.value(name, "str", key) or "default"
    if name == "default" and kind not in proxies:
        where = "rpc.proxy" if kind == "rpc" else f"channel.proxy.{kind}"
        raise r.fail(key, f"the default {kind} proxy is used but {where}.endpoint is not set")
    if name != "default" and name not in named:
        raise r.fail(key, f"no proxy named {name!r} in proxies")
    return name


def translate(data: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    r = _Reader(source)
    out: dict[str, Any] = {"hub": {}, "projects": {}}
    project: dict[str, Any] = {}
    realtime: dict[str, Any] = {}
    proxies: dict[str, Any] = {}  # [realtime.proxy]: the backend proxy (connect, refresh, subscribe, publish, ...)

    for key in data:
        if key not in ("client", "channel", "http_server", "http_api", "log", "engine", "version", "rpc", "proxies",
                       "http_stream", "sse", "map_broker", "shared_poll"):
            r.unsupported(key)
    broker = r.section(data, "map_broker", "")
    for key, value in broker.items():  # map state lives in the hub's memory engine
        if not (key == "type" and value == "memory"):
            r.unsupported(f"map_broker.{key}", "map state lives in the hub's memory engine; ignored")
    for key, value in r.section(data, "shared_poll", "").items():
        if key == "hmac_secret_key":
            realtime["shared_poll_secret"] = r.value(value, "str", f"shared_poll.{key}")
        else:
            r.unsupported(f"shared_poll.{key}")

    # client
    client = r.section(data, "client", "")
    realtime["check_origin"] = True  # Centrifugo v6: without allowed_origins, browsers (an Origin header) are refused
    for key, value in client.items():
        full = f"client.{key}"
        if key == "token":
            token = r.section(client, "token", "client.")
            for tkey, tvalue in token.items():
                tfull = f"client.token.{tkey}"
                if tkey == "hmac_secret_key":
                    project["secret"] = r.value(tvalue, "str", tfull)
                elif tkey == "rsa_public_key":
                    realtime["token_rsa_public_key"] = r.value(tvalue, "str", tfull)
                elif tkey == "ecdsa_public_key":
                    realtime["token_ecdsa_public_key"] = r.value(tvalue, "str", tfull)
                elif tkey in ("jwks_public_endpoint", "audience", "issuer", "user_id_claim"):
                    realtime[f"token_{tkey}"] = r.value(tvalue, "str", tfull)
                else:
                    r.unsupported(tfull)
        elif key == "allowed_origins":
            realtime["allowed_origins"] = r.value(value, "strlist", full)
        elif key in ("ping_interval", "pong_timeout"):
            realtime[key] = max(0, round(r.duration(value, full)))
        elif key in ("expired_close_delay", "stale_close_delay"):
            realtime[key] = r.duration(value, full)
        elif key == "subscribe_to_user_personal_channel":
            personal = r.section(client, key, "client.")
            for pkey, pvalue in personal.items():
                pfull = f"{full}.{pkey}"
                if pkey == "enabled":
                    realtime["personal_channel"] = r.value(pvalue, "bool", pfull)
                elif pkey == "personal_channel_namespace":
                    realtime["personal_channel_namespace"] = r.value(pvalue, "str", pfull)
                elif pkey == "single_connection":
                    realtime["personal_channel_single_connection"] = r.value(pvalue, "bool", pfull)
                else:
                    r.unsupported(pfull)
        elif key in ("channel_limit", "user_connection_limit"):
            realtime[key] = r.value(value, "int", full)
        elif key == "proxy":
            proxy_section = r.section(client, "proxy", "client.")
            for pkey in proxy_section:
                pfull = f"client.proxy.{pkey}"
                if pkey in ("connect", "refresh"):
                    table = r.section(proxy_section, pkey, "client.proxy.")
                    enabled = r.value(table.get("enabled", False), "bool", f"{pfull}.enabled")
                    parsed = _proxy(r, {k: v for k, v in table.items() if k != "enabled"}, pfull, required=enabled)
                    if enabled:
                        proxies[pkey] = parsed
                else:
                    r.unsupported(pfull)
        elif key == "insecure":
            realtime["insecure"] = r.value(value, "bool", full)
        elif key == "allow_anonymous_connect_without_token":
            realtime["allow_anonymous"] = r.value(value, "bool", full)
        else:
            r.unsupported(full)

    # channel
    channel = r.section(data, "channel", "")
    namespaces: dict[str, Any] = {}
    project.update(_channel_options(r, channel.get("without_namespace", {}), "channel.without_namespace"))
    ns_proxies: dict[str, tuple[str, dict[str, Any]]] = {"": ("channel.without_namespace", project.pop(_PROXY_KEYS, {}))}
    for key, value in channel.items():
        full = f"channel.{key}"
        if key == "without_namespace":
            continue
        if key == "namespaces":
            if not isinstance(value, list):
                raise r.fail(full, f"expected an array, got {json_kind(value)}")
            for i, ns in enumerate(value):
                path = f"channel.namespaces[{i}]"
                if not isinstance(ns, dict):
                    raise r.fail(path, f"expected an object, got {json_kind(ns)}")
                name = ns.get("name")
                if not isinstance(name, str) or not name or ":" in name:
                    raise r.fail(f"{path}.name", "a namespace needs a non-empty name without ':'")
                if name in namespaces:
                    raise r.fail(f"{path}.name", f"duplicate namespace {name!r}")
                namespaces[name] = _channel_options(r, ns, path)
                ns_proxies[name] = (path, namespaces[name].pop(_PROXY_KEYS, {}))
                if _POLL_KEY in namespaces[name]:
                    realtime.setdefault("shared_poll", {})[name] = namespaces[name].pop(_POLL_KEY)
        elif key == "history_meta_ttl":
            seconds = r.duration(value, full)
            section = _meta_ttl_section()
            if section is None:
                r.unsupported(full, "this hub's engine keeps stream positions for its own default (30 days)")
            else:
                out.setdefault(section, {})["history_meta_ttl"] = seconds
        elif key == "max_length":
            project["max_channel_length"] = r.value(value, "int", full)
        elif key == "proxy":
            proxy_section = r.section(channel, "proxy", "channel.")
            for pkey in proxy_section:
                if pkey in ("subscribe", "publish", "sub_refresh"):
                    table = r.section(proxy_section, pkey, "channel.proxy.")
                    if table.get("endpoint"):
                        proxies[pkey] = _proxy(r, table, f"channel.proxy.{pkey}")
                else:
                    r.unsupported(f"channel.proxy.{pkey}")
        else:
            r.unsupported(full)
    project["namespaces"] = namespaces
    if realtime.get("personal_channel"):  # Centrifugo refuses to start on a personal channel it cannot serve
        ns = realtime.get("personal_channel_namespace", "")
        key = "client.subscribe_to_user_personal_channel"
        if ns and ns not in namespaces:
            raise r.fail(f"{key}.personal_channel_namespace", f"namespace for user personal channel not found: {ns}")
        if realtime.get("personal_channel_single_connection") and not (namespaces[ns] if ns else project).get("presence"):
            raise r.fail(f"{key}.single_connection", "presence must be enabled in the personal channel's namespace")
    _proxies(r, data, proxies, ns_proxies)
    for name, poll in realtime.get("shared_poll", {}).items():
        if poll["proxy"] not in proxies.get("named", {}):
            i = next(i for i, ns in enumerate(channel.get("namespaces", [])) if ns.get("name") == name)
            raise r.fail(f"channel.namespaces[{i}].shared_poll.proxy_name", f"no proxy named {poll['proxy']!r} in proxies")
    if realtime.get("shared_poll") and not realtime.get("shared_poll_secret"):
        raise r.fail("shared_poll.hmac_secret_key", "required for shared poll namespaces")
    if proxies:
        realtime["proxy"] = proxies

    # http server and API
    server = r.section(data, "http_server", "")
    port = 8000
    host = None
    tls: dict[str, str] = {}
    for key, value in server.items():
        full = f"http_server.{key}"
        if key == "port":
            port = r.value(value, "int", full)
            if port > 65535:
                raise r.fail(full, f"must be at most 65535, got {port}")
        elif key == "address":
            host = r.value(value, "str", full) or None
        elif key == "tls":
            tls = _tls(r, r.section(server, "tls", "http_server."))
        else:
            r.unsupported(full)
    http_api = r.section(data, "http_api", "")
    api_enabled = True
    api_extra: dict[str, Any] = {}
    for key, value in http_api.items():
        full = f"http_api.{key}"
        if key == "key":
            key_value = r.value(value, "str", full)
            project["api_keys"] = [key_value] if key_value else []
        elif key == "disabled":
            api_enabled = not r.value(value, "bool", full)
        elif key == "error_mode":
            api_extra["error_mode"] = r.choice(value, full, "", "transport")
        else:
            r.unsupported(full)

    log_section = r.section(data, "log", "")
    for key, value in log_section.items():
        full = f"log.{key}"
        if key == "level":
            level = r.value(value, "str", full)
            mapped = {"trace": "debug", "debug": "debug", "info": "info", "warn": "warning", "warning": "warning",
                      "error": "error", "none": "error"}.get(level)
            if mapped is None:
                raise r.fail(full, f"unknown level {level!r}")
            out["hub"]["log_level"] = mapped
        else:
            r.unsupported(full)
    _engine(r, r.section(data, "engine", ""), out)
    for transport in ("http_stream", "sse"):  # bidirectional emulation (centrifuge-js's fallbacks)
        section = r.section(data, transport, "")
        for key, value in section.items():
            full = f"{transport}.{key}"
            if key == "enabled":
                realtime[transport] = r.value(value, "bool", full)
            elif key == "handler_prefix":
                realtime[f"{transport}_path"] = r.value(value, "str", full)
            else:
                r.unsupported(full)

    if not project.get("secret"):
        # Without an HMAC key only RSA/ECDSA/JWKS tokens can connect: a random secret nobody knows.
        project["secret"] = secrets.token_hex(32)
    out["projects"][PROJECT] = project

    from ..adapters import adapter_registry

    for name in adapter_registry():
        if name in ADAPTERS:
            section: dict[str, Any] = {"port": port}
            if host is not None:
                section["host"] = host
            section.update(tls)
            if name == "realtime":
                section.update(realtime)
            if name == "command_api":
                section["enabled"] = api_enabled
                section.update(api_extra)
            out[name] = section
        else:
            out[name] = {"enabled": False}
    return out, r.warnings


def _tls(r: Any, tls: dict[str, Any]) -> dict[str, str]:
    """`http_server.tls` (enabled, cert_pem_file, key_pem_file) as the listener's tls_cert / tls_key."""
    enabled, files = False, {}
    for key, value in tls.items():
        full = f"http_server.tls.{key}"
        if key == "enabled":
            enabled = r.value(value, "bool", full)
        elif key in ("cert_pem_file", "key_pem_file"):
            files["tls_cert" if key == "cert_pem_file" else "tls_key"] = r.value(value, "str", full)
        else:
            r.unsupported(full)
    return files if enabled else {}
