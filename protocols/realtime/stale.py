"""Centrifugo's stale_close_delay for every connection of the adapter, in one task (hub.net.deadlines).

A connection that has not done what it must by its deadline (sent a first message; for the current protocol,
connected) is closed with 3502 "stale". A cancel scope or a sleeping task per connection for this cost more than
the rest of a connect; here a connection costs an entry in an ordered dict, taken out when it is done.
"""

from __future__ import annotations

from typing import Any

from hub.net.deadlines import Deadlines
from protocols.centrifugo import STALE


def _close_stale(conn: Any) -> None:
    if not conn.closing:
        conn.close(STALE, "stale")


def stale_watch() -> Deadlines:
    """Connections `add`ed with their stale_close_delay, closed 3502 at its end unless `discard`ed."""
    return Deadlines(_close_stale)
