"""The adapter registry: what each protocol package gives the runtime."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from .config import ListenerSettings

if TYPE_CHECKING:
    from .config import Settings
    from .core import Hub
    from .metrics import RequestMetrics
    from .net.http import Response, Route
    from .runtime import RunningHub

# Section name in hub.toml → the package whose `ADAPTER` serves it. A package that is not
# installed is skipped, so the hub runs with whatever adapters exist.
ADAPTER_MODULES = {
    "realtime": "protocols.realtime",
    "command_api": "protocols.command_api",
    "jsonrpc": "protocols.jsonrpc",
    "stats": "protocols.stats",
    "chat": "protocols.chat",
    "mqtt": "protocols.mqtt",
    "dashboard": "protocols.dashboard",
}


@dataclass
class AdapterContext:
    """What an adapter gets at start: the core, its own settings, and the runtime around it."""

    name: str
    hub: Hub
    settings: Any
    config: Settings
    metrics: RequestMetrics
    runtime: RunningHub
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Adapter:
    """One protocol adapter. Adapters with the same `group` share a listener when they share a port."""

    name: str
    title: str
    settings: type[ListenerSettings]
    routes: Callable[[AdapterContext], list[Route]]
    error: Callable[[int, str], Response] | None = None
    # A background task started before the listener accepts; it calls task_status.started().
    run: Callable[..., Awaitable[None]] | None = None
    reload: Callable[[AdapterContext, Any], list[str]] | None = None
    validate: Callable[[Any, Settings], None] | None = None
    # `hub check-config --production`: the adapter's own problems (default credentials, open registration), one line each.
    audit: Callable[[Any, Settings], list[str]] | None = None
    cli: Callable[[argparse._SubParsersAction], None] | None = None
    # For a protocol that is not HTTP (MQTT): wraps the listener's connection handler, given the
    # context, the listener's HTTPServer and its HTTP handler; returns the handler the listener uses.
    stream: Callable[[AdapterContext, Any, Any], Any] | None = None
    group: str = ""
    # Library functions offered as `hub.<name>` (e.g. the JSON-RPC adapter's `run`), so `hub` needs no import of it.
    exports: dict[str, Callable[..., Any]] = field(default_factory=dict)
    # An adapter with its own server instead of routes on the shared HTTP layer (the dashboard on hypercorn):
    # started in the hub's root nursery, it binds its host/port, reports `task_status.started(url)` and stops
    # once `ctx.runtime.stopping` is set.
    serve: Callable[..., Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        self.group = self.group or self.name


def exported(name: str) -> Callable[..., Any]:
    """The library function `name` an installed adapter exports."""
    for adapter in adapter_registry().values():
        if name in adapter.exports:
            return adapter.exports[name]
    raise AttributeError(f"module 'hub' has no attribute {name!r} (no installed adapter exports it)")


@cache
def adapter_registry() -> dict[str, Adapter]:
    """Import every installed adapter package, in registry order."""
    found = {}
    for name, module in ADAPTER_MODULES.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue
            raise
        adapter = getattr(mod, "ADAPTER", None)
        if adapter is not None:
            found[name] = adapter
    return found
