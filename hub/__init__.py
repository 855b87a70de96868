"""hub: a realtime messaging hub on Trio.

Embedding: `running = await nursery.start(hub.serve, "hub.toml")` or
`async with hub.open_hub(settings) as running:`; then `await running.publish(...)`,
`await running.presence(...)`, `await running.history(...)`, `running.stats()`.

`hub` never imports `protocols`: the names below load lazily from hub's own modules, and
`hub.run` is the `run` an installed adapter exports (the JSON-RPC adapter's client).
"""

from __future__ import annotations

from typing import Any

from .version import __version__

_LAZY = {
    "ConfigError": "config", "Settings": "config", "load_settings": "config", "parse_settings": "config",
    "RunningHub": "runtime", "open_hub": "runtime", "serve": "runtime",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name == "run":
        from .adapters import exported

        return exported("run")
    raise AttributeError(f"module 'hub' has no attribute {name!r}")


__all__ = ["ConfigError", "RunningHub", "Settings", "__version__", "load_settings", "open_hub",
           "parse_settings", "run", "serve"]
