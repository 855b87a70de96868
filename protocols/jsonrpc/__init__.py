"""JSON-RPC (Platypush-style) on its own port (8008): /auth, /execute, /actions, /ws/events,
/ws/requests and /hook/<name>; users and tokens, procedures from hub.toml, the hub as a library."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.net.http import Route, WebSocketRoute

from . import client
from .cli import add_commands
from .errors import server_error
from .execute import Hook, HookError, Procedure, check_procedures, parse_hook, parse_procedure
from .server import SLOW_CLIENT, JsonRpc
from .store import StoreError, UserStore, hold_running_lock

MIN_SECRET = 32
log = logging.getLogger("hub.jsonrpc")


@dataclass
class JsonRpcSettings(ListenerSettings):
    """[jsonrpc]: actions, procedures, events and webhooks over HTTP and websockets."""

    port: int = field(default=8008, metadata={"min": 0, "max": 65535})
    users_file: str = "data/jsonrpc-users.json"
    token_secret: str = ""
    token_ttl: int = field(default=30 * 86400, metadata={"min": 60})
    registration: bool = True
    project: str = ""
    client_url: str = ""
    client_token: str = ""
    client_user: str = ""
    client_password: str = ""
    strict_hooks: bool = False
    procedures: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, Any] = field(default_factory=dict)


def procedures_of(settings: JsonRpcSettings, source: str = "<config>") -> dict[str, Procedure]:
    """The `[jsonrpc.procedures.*]` tables, validated (steps, `${arg}` references, calls between procedures)."""
    out = {}
    for name, table in settings.procedures.items():
        try:
            out[name] = parse_procedure(name, table)
        except ValueError as exc:
            raise ConfigError(source, f"jsonrpc.procedures.{name}", str(exc)) from None
    try:
        check_procedures(out)
    except ValueError as exc:
        raise ConfigError(source, "jsonrpc.procedures", str(exc)) from None
    return out


def hooks_of(settings: JsonRpcSettings, procedures: dict[str, Procedure], source: str = "<config>",
             env: dict[str, str] | None = None) -> dict[str, Hook]:
    """The `[jsonrpc.hooks.*]` tables, validated."""
    out = {}
    for name, table in settings.hooks.items():
        try:
            out[name] = parse_hook(name, table, procedures, os.environ if env is None else env)
        except HookError as exc:
            raise ConfigError(source, f"jsonrpc.hooks.{name}" + (f".{exc.key}" if exc.key else ""), exc.problem) from None
    return out


def validate(settings: JsonRpcSettings, config: Settings) -> None:
    """Checks across keys, at config load: procedures, hooks, the project, the token secret."""
    hooks_of(settings, procedures_of(settings, config.source), config.source)
    if settings.project and settings.project not in {p.key for p in config.projects}:
        raise ConfigError(config.source, "jsonrpc.project", f"no project named {settings.project!r}")
    if settings.token_secret and len(settings.token_secret) < MIN_SECRET:
        raise ConfigError(config.source, "jsonrpc.token_secret", f"must be at least {MIN_SECRET} characters (HS256 key)")
    if not settings.users_file:
        raise ConfigError(config.source, "jsonrpc.users_file", "missing")
    if settings.client_password and not settings.client_user:
        raise ConfigError(config.source, "jsonrpc.client_user", "missing: client_password needs client_user")


def _state(ctx: AdapterContext) -> JsonRpc:
    state = ctx.state.get("jsonrpc")
    if state is None:
        try:
            store = UserStore(ctx.settings.users_file)
            procedures = procedures_of(ctx.settings, ctx.config.source)
            state = JsonRpc(ctx, store, procedures, hooks_of(ctx.settings, procedures, ctx.config.source))
        except StoreError as exc:
            raise ConfigError(ctx.config.source, "jsonrpc.users_file", str(exc)) from None
        ctx.state["jsonrpc"] = state
    return state


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    rpc = _state(ctx)
    return [
        Route("/", rpc.index, methods=["GET"]),
        Route("/auth", rpc.auth, methods=["GET", "POST", "DELETE"]),
        Route("/tokens", rpc.tokens, methods=["GET", "DELETE"]),
        Route("/register", rpc.register, methods=["POST"]),
        Route("/logout", rpc.logout, methods=["GET", "POST"]),
        Route("/execute", rpc.execute, methods=["POST"]),
        Route("/actions", rpc.discovery, methods=["GET"]),
        Route("/hook/{name}", rpc.hook),
        WebSocketRoute("/ws/events", rpc.events_socket, slow_close=(SLOW_CLIENT, "too slow")),
        WebSocketRoute("/ws/requests", rpc.requests_socket, slow_close=(SLOW_CLIENT, "too slow")),
    ]


def reload(ctx: AdapterContext, new: JsonRpcSettings) -> list[str]:
    """Procedures, hooks and token settings apply at once; a new users_file needs a restart."""
    procedures = procedures_of(new, ctx.config.source)
    return _state(ctx).reload(new, procedures, hooks_of(new, procedures, ctx.config.source))


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Open the users file (a ConfigError if it cannot be read) before the listener starts; say how to add the
    first user while there is none."""
    state = _state(ctx)
    if not state.store.users:
        how = "POST /register, or " if ctx.settings.registration else ""
        log.info("no JSON-RPC users yet (%s): add one with %s`hub user add NAME`; then `hub exec ACTION` and "
                    "`from hub import run` work on this machine", os.path.abspath(ctx.settings.users_file), how)
    if state.store.readable_by_others():
        log.warning("%s holds password hashes but others may read it: chmod 600 it", state.store.path)
    # Held while the hub runs, so that `hub user restore` refuses to replace the file under it.
    with hold_running_lock(ctx.settings.users_file, exclusive=False):
        task_status.started()
        await trio.sleep_forever()


def audit(settings: JsonRpcSettings, config: Settings) -> list[str]:
    """`hub check-config --production`: open first-user registration."""
    if settings.registration:
        return ["jsonrpc.registration: while no user exists, whoever reaches POST /register first becomes the user "
                "(create it with `hub user add NAME` and set registration = false)"]
    return []


ADAPTER = Adapter(
    name="jsonrpc",
    title="JSON-RPC",
    settings=JsonRpcSettings,
    routes=routes,
    error=server_error,
    run=run,
    reload=reload,
    validate=validate,
    audit=audit,
    cli=add_commands,
    exports={"run": client.run},  # `from hub import run`
)
