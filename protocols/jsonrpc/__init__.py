"""JSON-RPC (Platypush-style) on its own port (8008): /auth, /execute, /actions, /ws/events,
/ws/requests and /hook/<name>; users and tokens, procedures from hub.toml, the hub as a library."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.net.http import Route, WebSocketRoute

from .cli import add_commands
from .execute import Procedure, parse_procedure
from .server import JsonRpc, error
from .store import UserStore


@dataclass
class JsonRpcSettings(ListenerSettings):
    """[jsonrpc]: actions, procedures, events and webhooks over HTTP and websockets."""

    port: int = field(default=8008, metadata={"min": 0, "max": 65535})
    users_file: str = "data/jsonrpc-users.json"
    token_secret: str = ""
    token_ttl: int = field(default=30 * 86400, metadata={"min": 60})
    registration: bool = True
    project: str = ""
    client_token: str = ""
    client_user: str = ""
    client_password: str = ""
    procedures: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, Any] = field(default_factory=dict)


HOOK_KEYS = {"channel", "project", "procedure", "token_header", "token", "status", "response"}


def procedures_of(settings: JsonRpcSettings, source: str = "<config>") -> dict[str, Procedure]:
    out = {}
    for name, table in settings.procedures.items():
        try:
            out[name] = parse_procedure(name, table)
        except ValueError as exc:
            raise ConfigError(source, f"jsonrpc.procedures.{name}", str(exc)) from None
    return out


def validate(settings: JsonRpcSettings, config: Settings) -> None:
    procedures = procedures_of(settings, config.source)
    for name, hook in settings.hooks.items():
        key = f"jsonrpc.hooks.{name}"
        if not isinstance(hook, dict):
            raise ConfigError(config.source, key, "expected a table")
        unknown = set(hook) - HOOK_KEYS
        if unknown:
            raise ConfigError(config.source, f"{key}.{sorted(unknown)[0]}", "unknown key")
        if not hook.get("channel") and not hook.get("procedure"):
            raise ConfigError(config.source, key, "needs a channel to publish to and/or a procedure to run")
        if hook.get("procedure") and hook["procedure"] not in procedures:
            raise ConfigError(config.source, f"{key}.procedure", f"no procedure named {hook['procedure']!r}")
        if hook.get("token_header") and not hook.get("token"):
            raise ConfigError(config.source, f"{key}.token", "missing: a hook with token_header needs a token")
        if not isinstance(hook.get("status", 200), int):
            raise ConfigError(config.source, f"{key}.status", "expected an integer")
    if settings.project and settings.project not in {p.key for p in config.projects}:
        raise ConfigError(config.source, "jsonrpc.project", f"no project named {settings.project!r}")


def _state(ctx: AdapterContext) -> JsonRpc:
    state = ctx.state.get("jsonrpc")
    if state is None:
        state = ctx.state["jsonrpc"] = JsonRpc(ctx, UserStore(ctx.settings.users_file), procedures_of(ctx.settings))
    return state


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    rpc = _state(ctx)
    return [
        Route("/auth", rpc.login, methods=["POST"]),
        Route("/register", rpc.register, methods=["POST"]),
        Route("/logout", rpc.logout, methods=["POST"]),
        Route("/execute", rpc.execute, methods=["POST"]),
        Route("/actions", rpc.discovery, methods=["GET"]),
        Route("/hook/{name}", rpc.hook),
        WebSocketRoute("/ws/events", rpc.events_socket),
        WebSocketRoute("/ws/requests", rpc.requests_socket),
    ]


def reload(ctx: AdapterContext, new: JsonRpcSettings) -> list[str]:
    rpc = _state(ctx)
    rpc.procedures = procedures_of(new)
    return ["jsonrpc.procedures", "jsonrpc.hooks"]


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    _state(ctx)
    task_status.started()


ADAPTER = Adapter(
    name="jsonrpc",
    title="JSON-RPC",
    settings=JsonRpcSettings,
    routes=routes,
    error=error,
    run=run,
    reload=reload,
    validate=validate,
    cli=add_commands,
)
