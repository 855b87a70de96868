"""hub: a realtime messaging hub on Trio.

Embedding: `running = await nursery.start(hub.serve, "hub.toml")` or
`async with hub.open_hub(settings) as running:`; then `await running.publish(...)`,
`await running.presence(...)`, `await running.history(...)`, `running.stats()`.
"""

__version__ = "0.1.0"

from .config import ConfigError, Settings, load_settings, parse_settings  # noqa: E402
from .runtime import RunningHub, open_hub, serve  # noqa: E402


def run(action: str, /, config: str | Settings | None = None, **args: object) -> object:
    """`run("hub.publish", channel="news", data={...})` on the running hub that `config` (else $HUB_CONFIG,
    else ./hub.toml) describes, over JSON-RPC; raises `RunError` with the hub's errors."""
    from protocols.jsonrpc.client import run as run_action

    return run_action(action, config, **args)


__all__ = ["ConfigError", "RunningHub", "Settings", "__version__", "load_settings", "open_hub",
           "parse_settings", "run", "serve"]
