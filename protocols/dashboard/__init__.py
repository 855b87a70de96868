"""The web dashboard (port 8090): watch and drive the hub from a browser.

A quart-trio app served by hypercorn's Trio worker as one more task in the hub's nursery: HTML pages,
static files, a login session and one websocket per page for live data at human rates. The hot paths
stay on the hub's own h11 layer; the dashboard only samples the core's counters and, while a page
watches a channel, listens to that channel's publications.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from hub.adapters import Adapter, AdapterContext
from hub.config import ConfigError, ListenerSettings, Settings
from hub.security import is_loopback

log = logging.getLogger("hub.dashboard")

DEFAULT_PASSWORD = "admin"  # the shipped hub.toml's development value: refused on a non-loopback host


@dataclass
class DashboardSettings(ListenerSettings):
    """[dashboard]: the web dashboard's listener and its login."""

    port: int = field(default=8090, metadata={"min": 0, "max": 65535})
    max_body_bytes: int = field(default=1 << 20, metadata={"min": 1024})
    password: str = field(default="", metadata={"secret": True})
    session_ttl: int = field(default=12 * 3600, metadata={"min": 60})
    login_attempts: int = field(default=5, metadata={"min": 1, "max": 1000})
    update_interval: float = field(default=1.0, metadata={"min": 0.2, "max": 60.0})


def weak_password(password: str) -> bool:
    return password in ("", DEFAULT_PASSWORD)


def validate(settings: DashboardSettings, config: Settings) -> None:
    """Refuse to start on a host reachable from outside with an empty or default password."""
    if settings.enabled and not is_loopback(settings.host) and weak_password(settings.password):
        what = "empty" if not settings.password else f"the default {DEFAULT_PASSWORD!r}"
        raise ConfigError(config.source, "dashboard.password",
                          f"is {what} while host {settings.host!r} is not loopback: set a strong password (or password_env)")


def warn_if_weak(settings: DashboardSettings) -> None:
    if not settings.password:
        log.warning("dashboard has no password: nobody can log in until [dashboard] password (or password_env) is set")
    elif settings.password == DEFAULT_PASSWORD:
        log.warning("dashboard uses the default password %r: set [dashboard] password (or password_env)", DEFAULT_PASSWORD)


def audit(settings: DashboardSettings, config: Settings) -> list[str]:
    """`hub check-config --production`: the default or an empty password."""
    if settings.password == DEFAULT_PASSWORD:
        return [f"dashboard.password: the default password {DEFAULT_PASSWORD!r}"]
    if not settings.password:
        return ["dashboard.password: empty (nobody can log in; set a strong password or disable the dashboard)"]
    return []


async def serve(ctx: AdapterContext, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the dashboard with hypercorn until the hub shuts down; reports its URL once bound."""
    from .server import run_server  # quart and hypercorn load only when the dashboard runs

    warn_if_weak(ctx.settings)
    await run_server(ctx, task_status=task_status)


def reload(ctx: AdapterContext, new: DashboardSettings) -> list[str]:
    """A new password logs every browser out; other keys apply to the next request or tick."""
    old: DashboardSettings = ctx.settings
    changed = [f"dashboard.{k}" for k in ("session_ttl", "login_attempts", "update_interval", "max_body_bytes")
               if getattr(old, k) != getattr(new, k)]
    if old.password != new.password:
        changed.append("dashboard.password")
        warn_if_weak(new)
    dashboard = ctx.state.get("dashboard")
    if dashboard is not None:
        if old.password != new.password:
            dashboard.sessions.clear()
        dashboard.app.config["MAX_CONTENT_LENGTH"] = new.max_body_bytes
    return changed


ADAPTER = Adapter(
    name="dashboard",
    title="dashboard",
    settings=DashboardSettings,
    routes=lambda ctx: [],
    serve=serve,
    reload=reload,
    validate=validate,
    audit=audit,
)
