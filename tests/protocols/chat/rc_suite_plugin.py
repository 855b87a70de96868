"""pytest plugin for `make chat-suite`: rocketchat_API's tests talk to the hub instead of 127.0.0.1:3000.

The suite builds its clients with `RocketChat()` (default server_url http://127.0.0.1:3000, where
its docker-compose puts Rocket.Chat); this moves that default to $RC_SUITE_SERVER_URL. Nothing else
in the suite is changed.
"""

from __future__ import annotations

import inspect
import os


def pytest_configure(config: object) -> None:
    url = os.environ.get("RC_SUITE_SERVER_URL")
    if not url:
        return
    from rocketchat_API.APISections.base import RocketChatBase

    init = RocketChatBase.__init__
    names = list(inspect.signature(init).parameters)[1:]
    defaults = list(init.__defaults__ or ())
    offset = len(names) - len(defaults)
    defaults[names.index("server_url") - offset] = url
    init.__defaults__ = tuple(defaults)
