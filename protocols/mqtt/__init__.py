"""MQTT 3.1.1 / 5.0 listener (TCP and websocket) on the hub's channels: topics are channels of one project."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.net.http import HTTPServer, Route, WebSocketRoute

from .auth import AclFile, AuthConfigError, Authenticator, UserEntry, check_hash, file_stamps, read_password_file
from .broker import Broker
from .server import select_subprotocol, stream_handler, websocket_endpoint
from .session import Limits
from .wire import meta_from_engine, meta_to_engine

log = logging.getLogger("hub.mqtt")


@dataclass
class MqttSettings(ListenerSettings):
    """[mqtt]: the MQTT listener."""

    port: int = field(default=1884, metadata={"min": 0, "max": 65535})
    ws_path: str = "/mqtt"
    project: str = ""
    allow_anonymous: bool = False
    anonymous_read: list[str] = field(default_factory=lambda: ["#"])
    anonymous_write: list[str] = field(default_factory=lambda: ["#"])
    users: dict[str, Any] = field(default_factory=dict)
    password_file: str = ""
    acl_file: str = ""
    max_packet_size: int = field(default=1 << 20, metadata={"min": 64, "max": 268435460})
    max_inflight: int = field(default=20, metadata={"min": 1, "max": 65535})
    max_queued_messages: int = field(default=1000, metadata={"min": 0})
    receive_maximum: int = field(default=100, metadata={"min": 1, "max": 65535})
    topic_alias_maximum: int = field(default=10, metadata={"min": 0, "max": 65535})
    max_keepalive: int = field(default=0, metadata={"min": 0, "max": 65535})
    session_expiry_max: int = field(default=86400, metadata={"min": 0})


def project_of(settings: MqttSettings, config: Settings) -> str:
    return settings.project or config.projects[0].key


def limits_of(s: MqttSettings) -> Limits:
    return Limits(max_packet_size=s.max_packet_size, max_inflight=s.max_inflight, max_queued=s.max_queued_messages,
                  receive_maximum=s.receive_maximum, topic_alias_maximum=s.topic_alias_maximum,
                  max_keepalive=s.max_keepalive, session_expiry_max=s.session_expiry_max)


def authenticator(s: MqttSettings, source: str = "<config>") -> Authenticator:
    """The users (table, then password file) and ACLs of `s`; ConfigError naming the key if one is unusable."""
    files = tuple(path for path in (s.password_file, s.acl_file) if path)
    stamps = file_stamps(files)  # before reading: an edit made meanwhile is read again at the next CONNECT
    users: dict[str, UserEntry] = {}
    for name, entry in s.users.items():
        key = f"mqtt.users.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(source, key, "expected a table with password (and read, write)")
        unknown = set(entry) - {"password", "read", "write"}
        if unknown:
            raise ConfigError(source, f"{key}.{sorted(unknown)[0]}", "unknown key")
        password = entry.get("password")
        if not isinstance(password, str):
            raise ConfigError(source, f"{key}.password", "missing (a hash from `hub mqtt passwd`)")
        try:
            check_hash(password)
        except AuthConfigError as exc:
            raise ConfigError(source, f"{key}.password", str(exc)) from None
        rules = {}
        for access in ("read", "write"):
            value = entry.get(access)
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise ConfigError(source, f"{key}.{access}", "expected an array of topic filters")
            rules[access] = value
        users[name] = UserEntry(password, rules["read"], rules["write"])
    if s.password_file:
        try:
            for name, stored in read_password_file(s.password_file).items():
                users.setdefault(name, UserEntry(stored))
        except FileNotFoundError:
            raise ConfigError(source, "mqtt.password_file", f"file not found: {s.password_file}") from None
        except (OSError, AuthConfigError) as exc:
            raise ConfigError(source, "mqtt.password_file", str(exc)) from None
    acl = None
    if s.acl_file:
        try:
            acl = AclFile.parse(Path(s.acl_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, "mqtt.acl_file", f"file not found: {s.acl_file}") from None
        except (OSError, AuthConfigError) as exc:
            raise ConfigError(source, "mqtt.acl_file", str(exc)) from None
    return Authenticator(allow_anonymous=s.allow_anonymous, users=users, anonymous_read=s.anonymous_read,
                         anonymous_write=s.anonymous_write, acl=acl, files=files, stamps=stamps,
                         passwords=bool(users) or bool(s.password_file))


def validate(s: MqttSettings, config: Settings) -> None:
    if "mqtt" not in config.raw:
        # Only a config with an [mqtt] table runs the listener: an older hub.toml (or a translated foreign
        # config) must not start an MQTT listener nobody asked for.
        s.enabled = False
    if s.project and s.project not in {p.key for p in config.projects}:
        raise ConfigError(config.source, "mqtt.project", f"no project {s.project!r}")
    if not s.ws_path.startswith("/"):
        raise ConfigError(config.source, "mqtt.ws_path", "must start with /")
    if s.enabled:
        authenticator(s, config.source)


def _broker(ctx: AdapterContext) -> Broker:
    return ctx.state["broker"]


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    s: MqttSettings = ctx.settings
    return [WebSocketRoute(s.ws_path, partial(websocket_endpoint, partial(_broker, ctx)), select=select_subprotocol,
                           max_message=s.max_packet_size + 16)]


def stream(ctx: AdapterContext, server: HTTPServer, http: Any) -> Any:
    """Raw MQTT on the listener's port; HTTP (the websocket endpoint) otherwise."""
    return stream_handler(partial(_broker, ctx), server, lambda: ctx.runtime.settings.hub.max_queue_bytes, http)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The broker (sessions by client id) and a nursery for delayed wills."""
    s: MqttSettings = ctx.settings
    if s.allow_anonymous and not _loopback(s.host):
        log.warning("mqtt: anonymous clients are allowed on %s, which is not a loopback address", s.host)
    ctx.hub.meta_codec = (meta_to_engine, meta_from_engine)  # MQTT messages cross the Redis engine whole
    async with trio.open_nursery() as nursery:
        ctx.state["broker"] = Broker(ctx.hub, project_of(s, ctx.config), limits_of(s), authenticator(s, ctx.config.source),
                                     nursery, login_limiter=ctx.runtime.login_limiter if ctx.runtime is not None else None,
                                     reread_auth=lambda: authenticator(ctx.settings, ctx.config.source))
        ctx.hub.publishers["mqtt"] = ctx.state["broker"].publish_message
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            ctx.hub.publishers.pop("mqtt", None)


def reload(ctx: AdapterContext, new: MqttSettings) -> list[str]:
    """Users, ACLs (for new connections) and limits apply at once; the project needs a restart."""
    broker: Broker | None = ctx.state.get("broker")
    if broker is None:
        return []
    broker.auth = authenticator(new, ctx.config.source)
    broker.limits.__dict__.update(limits_of(new).__dict__)
    return ["mqtt.auth"]


def _cli(sub: Any) -> None:
    from .cli import add_commands

    add_commands(sub)


ADAPTER = Adapter(
    name="mqtt",
    title="MQTT",
    settings=MqttSettings,
    routes=routes,
    run=run,
    reload=reload,
    validate=validate,
    stream=stream,
    cli=_cli,
)
