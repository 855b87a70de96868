"""hub: a realtime messaging hub on Trio.

Embedding: `running = await nursery.start(hub.serve, "hub.toml")` or
`async with hub.open_hub(settings) as running:`; then `running.publish(...)`,
`running.presence(...)`, `running.history(...)`, `running.stats()`.
"""

__version__ = "0.1.0"

from .config import ConfigError, Settings, load_settings, parse_settings  # noqa: E402
from .runtime import RunningHub, open_hub, serve  # noqa: E402

__all__ = ["ConfigError", "RunningHub", "Settings", "__version__", "load_settings", "open_hub",
           "parse_settings", "serve"]
