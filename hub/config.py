"""hub.toml → typed, validated settings. Every error is one line: file, key, problem."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.options import NamespaceOptions, Project
from .loginlimit import LoginLimitSettings

ENV_SUFFIX = "_env"


class ConfigError(Exception):
    """A bad configuration; str() is the one line printed before exit status 2."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")  # key "": the file itself
        self.source, self.key, self.problem = source, key, problem


@dataclass
class CoreSettings:
    """[hub]: the core's own limits."""

    log_level: str = field(default="info", metadata={"choices": ("debug", "info", "warning", "error")})
    max_queue_bytes: int = field(default=1 << 20, metadata={"min": 1024})
    write_timeout: float = field(default=10.0, metadata={"min": 0.1})
    housekeeping_interval: float = field(default=1.0, metadata={"min": 0.01})
    shutdown_grace: float = field(default=3.0, metadata={"min": 0.0})
    log_format: str = field(default="text", metadata={"choices": ("text", "json")})
    # HTTP limits of every listener (RFC 9112 hardening): read times and the size of a request head.
    header_timeout: float = field(default=10.0, metadata={"min": 0.1})
    body_timeout: float = field(default=30.0, metadata={"min": 0.1})
    keepalive_timeout: float = field(default=75.0, metadata={"min": 0.1})
    max_header_bytes: int = field(default=32768, metadata={"min": 1024})
    max_headers: int = field(default=100, metadata={"min": 8})


@dataclass
class EngineSettings:
    """[engine]: where what every hub process must share lives. "memory": this process only (the default);
    "redis": several processes, on one machine or many, share channels, history, presence and control."""

    type: str = field(default="memory", metadata={"choices": ("memory", "redis")})
    url: str = "redis://127.0.0.1:6379/0"
    # Keys and PUB/SUB channels start with this (several hubs can share one Redis under different prefixes).
    prefix: str = "hub"
    # A Redis command that takes longer fails (the request gets the protocol's internal error) and the
    # connection is re-opened; a publish never hangs on an unreachable Redis.
    timeout: float = field(default=1.0, metadata={"min": 0.01})
    connect_timeout: float = field(default=2.0, metadata={"min": 0.01})
    # How long a channel's offset and epoch outlive its publications (0: as long as they do).
    history_meta_ttl: float = field(default=30 * 86400.0, metadata={"min": 0})
    presence_ttl: float = field(default=60.0, metadata={"min": 1})
    heartbeat: float = field(default=3.0, metadata={"min": 0.1})
    ping_interval: float = field(default=1.0, metadata={"min": 0.05})
    # A channel whose last local subscriber left stays subscribed this long (cheap resubscribes).
    linger: float = field(default=2.0, metadata={"min": 0})
    # This node's name in cluster stats (default host:pid).
    name: str = ""


@dataclass
class ListenerSettings:
    """Keys every adapter section has; adapters subclass this with their own keys."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = field(default=0, metadata={"min": 0, "max": 65535})
    max_body_bytes: int = field(default=1 << 20, metadata={"min": 1})
    # Concurrent connections on this adapter's listener (the lowest of the adapters sharing it);
    # more are answered 503, or accepted and closed with 1013 if they are websocket upgrades.
    max_connections: int = field(default=10000, metadata={"min": 1})
    # TLS (https://, wss://, MQTT over TLS): PEM certificate chain and private key files (`tls_cert_env`:
    # the path from the environment); both or neither. Reloaded on SIGHUP. Adapters sharing a port share it.
    tls_cert: str = ""
    tls_key: str = ""
    # Browser Origins allowed to open websockets (globs: "http://localhost:*", "https://*.example.com", "*");
    # empty: only pages of the same host. Requests without Origin (not browsers) always pass. Refused: 403.
    allowed_origins: list[str] = field(default_factory=list)
    # Per client address (0 = no limit): open connections (more are answered 503 / closed 1013) and HTTP
    # requests a second after a burst (more are answered 429 with Retry-After).
    max_connections_per_ip: int = field(default=1000, metadata={"min": 0})
    rate_limit: float = field(default=200.0, metadata={"min": 0})
    rate_limit_burst: float = field(default=400.0, metadata={"min": 0})
    # Addresses the per-IP limits skip: loopback, where a reverse proxy on the same machine connects from.
    limit_exempt: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1"])


NAMESPACE_KEYS = {f.name for f in dataclasses.fields(NamespaceOptions)}


# What a namespace table checks beyond each key's type; the keys, types and defaults are NamespaceOptions'.
NAMESPACE_CHECKS: dict[str, dict[str, Any]] = {
    "history_size": {"min": 0},
    "history_lifetime": {"min": 0},
    "map_mode": {"choices": ("", "ephemeral", "recoverable", "persistent")},
    "map_type": {"choices": (1, 2)},
    "map_key_ttl": {"min": 0},
    "map_client_key": {"choices": ("", "client_id")},
    "publish_debounce": {"min": 0},
}

# [projects.<key>.namespaces.<name>]: what clients may do in that namespace's channels (NamespaceOptions' fields,
# with the checks above), so the file's keys and the core's options cannot drift apart.
NamespaceTable = dataclasses.make_dataclass(
    "NamespaceTable",
    [(f.name, f.type, field(default=f.default, metadata=NAMESPACE_CHECKS.get(f.name, {})))
     for f in dataclasses.fields(NamespaceOptions)],
    namespace={"__doc__": "[projects.<key>.namespaces.<name>]: what clients may do in that namespace's channels.",
               "__module__": __name__},
)


@dataclass
class ProjectSettings(NamespaceTable):
    """[projects.<key>]: a project's secret and limits; its namespace options apply to channels without one."""

    secret: str = field(default="", metadata={"required": True, "secret": True})
    connection_lifetime: int = field(default=0, metadata={"min": 0})
    max_channel_length: int = field(default=255, metadata={"min": 1})
    api_keys: list[str] = field(default_factory=list)
    namespaces: dict[str, Any] = field(default_factory=dict)


@dataclass
class Settings:
    """Everything hub.toml says, validated."""

    source: str = "<defaults>"
    hub: CoreSettings = field(default_factory=CoreSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    login_limit: LoginLimitSettings = field(default_factory=LoginLimitSettings)
    projects: list[Project] = field(default_factory=list)
    adapters: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    # One line per key of a foreign config file (hub.configs) that the hub ignores; logged at start.
    warnings: list[str] = field(default_factory=list)
    # `hub run --set TABLE.KEY=VALUE` overrides, re-applied when the file is reloaded.
    overrides: list[str] = field(default_factory=list)
    # `hub run --workers N`: every listener is bound with SO_REUSEPORT (set by the CLI, not the file).
    reuse_port: bool = False

    def adapter(self, name: str) -> Any:
        return self.adapters[name]


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _check(value: Any, hint: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(hint):
            if option is type(None) and value is None:
                return None
            try:
                return _check(value, option, source, key)
            except ConfigError:
                continue
        raise ConfigError(source, key, f"unexpected {_type_name(value)}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, key, f"expected a boolean, got {_type_name(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, key, f"expected an integer, got {_type_name(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, key, f"expected a number, got {_type_name(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, f"expected a string, got {_type_name(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(source, key, f"expected an array, got {_type_name(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [_check(v, item, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a table, got {_type_name(value)}")
        _, item = typing.get_args(hint) or (str, Any)
        return {k: _check(v, item, source, f"{key}.{k}") for k, v in value.items()}
    return value


def parse_table(cls: type, table: Any, source: str, prefix: str, env: dict[str, str] | None = None) -> Any:
    """Build dataclass `cls` from a TOML table: unknown keys, wrong types, bounds and
    missing required values are ConfigErrors. `key_env = "VAR"` reads `key` from the environment."""
    env = os.environ if env is None else env
    if not isinstance(table, dict):
        raise ConfigError(source, prefix, f"expected a table, got {_type_name(table)}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = key
        if key not in known and key.endswith(ENV_SUFFIX) and key[: -len(ENV_SUFFIX)] in known:
            name = key[: -len(ENV_SUFFIX)]
            if not isinstance(value, str):
                raise ConfigError(source, f"{prefix}.{key}", f"expected an environment variable name, got {_type_name(value)}")
            if value not in env:
                raise ConfigError(source, f"{prefix}.{key}", f"environment variable {value} is not set")
            raw = env[value]
            if hints[name] in (int, float, bool) or typing.get_origin(hints[name]) in (list, dict):
                try:
                    raw = tomllib.loads(f"v = {raw}")["v"]
                except tomllib.TOMLDecodeError:
                    pass
            value = raw
        elif key not in known:
            raise ConfigError(source, f"{prefix}.{key}", "unknown key")
        full = f"{prefix}.{name}"
        value = _check(value, hints[name], source, full)
        meta = known[name].metadata
        if "min" in meta and value < meta["min"]:
            raise ConfigError(source, full, f"must be at least {meta['min']}, got {value}")
        if "max" in meta and value > meta["max"]:
            raise ConfigError(source, full, f"must be at most {meta['max']}, got {value}")
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(source, full, f"must be one of {', '.join(meta['choices'])}, got {value!r}")
        values[name] = value
    for name, f in known.items():
        if f.metadata.get("required") and not values.get(name):
            hint = f" (set {name} or {name}{ENV_SUFFIX})" if f.metadata.get("secret") else ""
            raise ConfigError(source, f"{prefix}.{name}", f"missing{hint}")
    return cls(**values)


def _project(key: str, table: Any, source: str, env: dict[str, str] | None) -> Project:
    ps = parse_table(ProjectSettings, table, source, f"projects.{key}", env)
    namespaces = {}
    for ns, ns_table in ps.namespaces.items():
        prefix = f"projects.{key}.namespaces.{ns}"
        if not ns or ":" in ns:
            raise ConfigError(source, prefix, "namespace names must be non-empty and contain no ':'")
        namespaces[ns] = _namespace(parse_table(NamespaceTable, ns_table, source, prefix, env))
    return Project(
        key=key,
        secret=ps.secret,
        options=_namespace(ps),
        namespaces=namespaces,
        connection_lifetime=ps.connection_lifetime,
        max_channel_length=ps.max_channel_length,
        api_keys=tuple(ps.api_keys),
    )


def _namespace(table: Any) -> NamespaceOptions:
    return NamespaceOptions(**{k: getattr(table, k) for k in NAMESPACE_KEYS})


def parse_settings(data: dict[str, Any], source: str = "<config>", env: dict[str, str] | None = None) -> Settings:
    """Validate a parsed hub.toml document."""
    from .adapters import adapter_registry

    registry = adapter_registry()
    settings = Settings(source=source, raw=data)
    for key, value in data.items():
        if key == "hub":
            settings.hub = parse_table(CoreSettings, value, source, "hub", env)
        elif key == "engine":
            settings.engine = parse_table(EngineSettings, value, source, "engine", env)
            if settings.engine.type == "redis":
                from .engine.resp import parse_url

                try:
                    parse_url(settings.engine.url)
                except ValueError as exc:
                    raise ConfigError(source, "engine.url", str(exc)) from None
        elif key == "login_limit":
            settings.login_limit = parse_table(LoginLimitSettings, value, source, "login_limit", env)
        elif key == "projects":
            if not isinstance(value, dict):
                raise ConfigError(source, "projects", f"expected a table, got {_type_name(value)}")
            settings.projects = [_project(k, v, source, env) for k, v in value.items()]
        elif key in registry:
            settings.adapters[key] = parse_table(registry[key].settings, value, source, key, env)
        else:
            raise ConfigError(source, key, "unknown section")
    for name, adapter in registry.items():
        if name not in settings.adapters:
            settings.adapters[name] = adapter.settings()
    if not settings.projects:
        raise ConfigError(source, "projects", "missing: at least one [projects.<key>] table is required")
    for name, listener in settings.adapters.items():
        check_listener(name, listener, source)
    for name, adapter in registry.items():
        if adapter.validate is not None:
            adapter.validate(settings.adapters[name], settings)
    return settings


def check_listener(name: str, s: ListenerSettings, source: str) -> None:
    """A listener's TLS files load (both or neither) and its exempt addresses parse: else a ConfigError."""
    from .net.limits import check_networks
    from .net.tls import TLSFileError, server_context

    bad = check_networks(s.limit_exempt)
    if bad is not None:
        raise ConfigError(source, f"{name}.limit_exempt", f"not an address or network: {bad!r}")
    if not s.enabled or not (s.tls_cert or s.tls_key):
        return
    if not s.tls_cert or not s.tls_key:
        missing = "tls_key" if s.tls_cert else "tls_cert"
        raise ConfigError(source, f"{name}.{missing}", f"missing (tls_cert and tls_key go together; or {missing}{ENV_SUFFIX})")
    try:
        server_context(s.tls_cert, s.tls_key)
    except TLSFileError as exc:
        raise ConfigError(source, f"{name}.{exc.key}", str(exc)) from None


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """`TABLE.KEY=VALUE` strings (`hub run --set`) set into a parsed config document. VALUE is read as a
    TOML value (`8100`, `false`, `"x"`, `[1, 2]`), else taken as a plain string."""
    for item in overrides:
        path, eq, raw = item.partition("=")
        keys = [k.strip() for k in path.split(".")]
        if not eq or len(keys) < 2 or not all(keys):
            raise ConfigError(source, f"--set {item}", "expected TABLE.KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        table = data
        for i, key in enumerate(keys[:-1]):
            nxt = table.setdefault(key, {})
            if not isinstance(nxt, dict):
                raise ConfigError(source, f"--set {item}", f"{'.'.join(keys[:i + 1])} is not a table")
            table = nxt
        table[keys[-1]] = value
    return data


def load_settings(path: str | os.PathLike[str], env: dict[str, str] | None = None, overrides: list[str] | None = None) -> Settings:
    """Read and validate a hub.toml file, or a JSON config of a system the hub replaces (see hub.configs);
    `overrides` are `hub run --set TABLE.KEY=VALUE` items applied on top."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror}") from None
    if source.endswith(".json") or text.lstrip().startswith("{"):
        from .configs import translate

        data, warnings = translate(text, source)
        settings = parse_settings(apply_overrides(data, overrides or [], source), source, env)
        settings.warnings = warnings
        settings.overrides = list(overrides or [])
        return settings
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    settings = parse_settings(apply_overrides(data, overrides or [], source), source, env)
    settings.overrides = list(overrides or [])
    return settings
