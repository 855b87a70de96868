"""Centrifugo's stale_close_delay for every connection of the adapter, in one task.

A connection that has not done what it must by its deadline (sent a first message; for the current protocol,
connected) is closed with 3502 "stale". A cancel scope or a sleeping task per connection for this cost more than
the rest of a connect; here a connection costs an entry in an ordered dict, taken out when it is done.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import trio

from protocols.centrifugo import STALE


class StaleWatch:
    """Connections waiting for their deadline, in deadline order (`add`), until `discard`ed; `run` closes the
    ones whose deadline passes."""

    def __init__(self) -> None:
        self._pending: OrderedDict[Any, float] = OrderedDict()
        self._wake = trio.CancelScope()  # `run`'s sleep: its deadline is the first pending one

    def __contains__(self, conn: Any) -> bool:
        return conn in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, conn: Any, deadline: float) -> None:
        """Close `conn` (with `close(code, reason)`, unless it is `closing` already) at `deadline` unless discarded."""
        pending = self._pending
        if pending and deadline < pending[next(reversed(pending))]:
            # Out of order (a reload shortened the delay): sorted again, a rare O(n).
            items = sorted([*pending.items(), (conn, deadline)], key=lambda item: item[1])
            pending.clear()
            pending.update(items)
        else:
            pending[conn] = deadline
        if deadline < self._wake.deadline:
            self._wake.deadline = deadline

    def discard(self, conn: Any) -> None:
        """`conn` is done (or gone): no deadline for it any more."""
        self._pending.pop(conn, None)

    async def run(self) -> None:
        """Forever: sleep until the first deadline, close every connection whose deadline has passed."""
        pending = self._pending
        while True:
            self._wake = trio.CancelScope(deadline=next(iter(pending.values()), math.inf))
            with self._wake:
                await trio.sleep_forever()
            now = trio.current_time()
            while pending:
                conn = next(iter(pending))
                if pending[conn] > now:
                    break
                del pending[conn]
                if not conn.closing:
                    conn.close(STALE, "stale")
