"""REST chat (port 3000): users, roles, rooms and messages kept in SQLite, each room a hub channel.

The reference REST API (/api/login, /api/rooms/<id>/send, ...) and Rocket.Chat's current REST API
(/api/v1/...) side by side. Managed with `hub chat ...` and admin-only API calls.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.core.channels import NAMESPACE_BOUNDARY, PRIVATE_PREFIX, USER_BOUNDARY
from hub.net.http import Route, WebSocketRoute

from . import store
from .cli import add_commands
from .model import ChatError
from .realtime import RealtimeServer
from .server import error_response
from .server import routes as chat_routes
from .service import ChatService
from .worker import DatabaseWorker

log = logging.getLogger("hub.chat")

TOKEN_PURGE_INTERVAL = 60.0


@dataclass
class ChatSettings(ListenerSettings):
    """[chat]: the REST chat's listener, database and limits."""

    port: int = field(default=3000, metadata={"min": 0, "max": 65535})
    database: str = "data/chat.db"
    token_ttl: int = field(default=86400, metadata={"min": 1})
    project: str = ""
    channel_prefix: str = "chat."
    allow_registration: bool = True
    max_message_length: int = field(default=5000, metadata={"min": 1, "max": 1_000_000})
    max_bulk: int = field(default=100, metadata={"min": 1, "max": 10_000})
    unread_limit: int = field(default=100, metadata={"min": 1, "max": 10_000})
    # Rocket.Chat's CREATE_TOKENS_FOR_USERS_SECRET: users.createToken works only with it ("" = off).
    create_tokens_secret: str = ""
    site_url: str = "http://localhost:3000"
    max_upload_bytes: int = field(default=10 << 20, metadata={"min": 0})
    # The WAL: checkpoint after this many pages (4 KiB each); truncate the WAL file to this size after a checkpoint.
    wal_autocheckpoint_pages: int = field(default=1000, metadata={"min": 1})
    journal_size_limit: int = field(default=64 << 20, metadata={"min": 0})
    # Realtime API (DDP, /websocket): ping a quiet connection after this many seconds.
    ddp_ping_interval: float = field(default=25.0, metadata={"min": 1})


def validate(settings: ChatSettings, config: Settings) -> None:
    """The project must exist, and a namespace named in channel_prefix must exist in it."""
    if not settings.enabled:
        return
    projects = {p.key: p for p in config.projects}
    project = projects.get(settings.project) if settings.project else (config.projects[0] if config.projects else None)
    if settings.project and project is None:
        raise ConfigError(config.source, "chat.project", f"no project {settings.project!r}")
    prefix = settings.channel_prefix
    if not prefix or prefix.startswith(PRIVATE_PREFIX) or USER_BOUNDARY in prefix:
        raise ConfigError(config.source, "chat.channel_prefix", f"must be non-empty, not start with '{PRIVATE_PREFIX}' "
                          f"and not contain '{USER_BOUNDARY}'")
    if NAMESPACE_BOUNDARY in prefix and project is not None:
        namespace = prefix.split(NAMESPACE_BOUNDARY, 1)[0]
        if namespace not in project.namespaces:
            raise ConfigError(config.source, "chat.channel_prefix",
                              f"namespace {namespace!r} is not defined in [projects.{project.key}.namespaces]")
    if not settings.database:
        raise ConfigError(config.source, "chat.database", "missing")


async def run(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Own the database worker for the hub's lifetime; purge expired tokens every minute."""
    settings: ChatSettings = ctx.settings
    for path in store.readable_by_others(settings.database):
        log.warning("%s can be read by other users of this machine (it holds password and token hashes): chmod 600 it",
                    path)
    worker = DatabaseWorker(settings.database, journal_size_limit=settings.journal_size_limit,
                            autocheckpoint_pages=settings.wal_autocheckpoint_pages)
    try:
        await worker.start()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(ctx.config.source, "chat.database", f"cannot open {settings.database}: {exc}") from None
    service = ctx.state["service"] = ChatService(ctx, worker)
    service.register_actions()
    realtime = ctx.state["realtime"] = RealtimeServer(service)
    service.realtime = realtime
    log.info("chat database %s open", settings.database)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.publisher)
            realtime.attach()
            task_status.started()
            while True:
                await trio.sleep(TOKEN_PURGE_INTERVAL)
                try:
                    purged = await worker.call(store.purge_tokens, service.clock())
                except ChatError as exc:
                    log.warning("chat token purge failed: %s", exc.message)
                    continue
                if purged:
                    log.info("purged %d expired chat token(s)", purged)
    finally:
        realtime.detach()
        await worker.stop()


def routes(ctx: AdapterContext) -> list[Route | WebSocketRoute]:
    return [*chat_routes(ctx.state["service"]), *ctx.state["realtime"].routes()]


def reload(ctx: AdapterContext, new: ChatSettings) -> list[str]:
    """Everything but the database applies at once (the runtime swaps ctx.settings after this)."""
    old: ChatSettings = ctx.settings
    changed = [f"chat.{k}" for k in ("token_ttl", "project", "channel_prefix", "allow_registration", "max_message_length",
                                     "max_bulk", "unread_limit", "create_tokens_secret", "site_url", "max_upload_bytes",
                                     "ddp_ping_interval") if getattr(old, k) != getattr(new, k)]
    for key in ("wal_autocheckpoint_pages", "journal_size_limit"):
        if getattr(old, key) != getattr(new, key):
            log.warning("chat.%s changed: it applies when the hub is restarted", key)
    if new.database != old.database:
        log.warning("chat.database changed: the hub keeps using %s until it is restarted", old.database)
        new.database = old.database
    return changed


def audit(settings: ChatSettings, config: Settings) -> list[str]:
    """`hub check-config --production`: open registration."""
    if settings.allow_registration:
        return ["chat.allow_registration: anyone who reaches the chat can create an account (users.register)"]
    return []


ADAPTER = Adapter(
    name="chat",
    title="REST chat",
    settings=ChatSettings,
    routes=routes,
    error=error_response,
    run=run,
    reload=reload,
    validate=validate,
    audit=audit,
    cli=add_commands,
)
