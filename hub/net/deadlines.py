"""Timeouts for many waits, kept by one task: an entry in an ordered dict per wait instead of a cancel scope.

Entering and leaving a trio cancel scope with a deadline costs about 9.5 us here, as much as a tenth of a
whole keep-alive request; adding and removing an entry costs a fraction of a microsecond. Each delay has its
own queue, in deadline order because time only moves on (a reload that changes a delay starts a new queue);
the task sleeps until the earliest deadline of all and calls `expired(key)` for each key whose deadline passed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import trio


class Deadlines:
    """Keys waiting for a deadline (`add`) until they are `discard`ed; `run` acts on the ones whose deadline passes."""

    def __init__(self, expired: Callable[[Any], object]) -> None:
        self.expired = expired
        self.running = False  # `run` is started (an owner that starts it on demand reads this)
        self._queues: dict[float, OrderedDict[Any, float]] = {}  # delay -> {key: deadline}, in deadline order
        self._where: dict[Any, OrderedDict[Any, float]] = {}
        self._wake = trio.CancelScope()  # the sleep of `run`: its deadline is the earliest pending one

    def __contains__(self, key: Any) -> bool:
        return key in self._where

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._where))

    def add(self, key: Any, delay: float, start: float | None = None) -> None:
        """`expired(key)` at `start` (default: now) + `delay`, unless `key` is discarded first."""
        deadline = (trio.current_time() if start is None else start) + delay
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = OrderedDict()
        self.discard(key)
        queue[key] = deadline
        self._where[key] = queue
        if deadline < self._wake.deadline:
            self._wake.deadline = deadline

    def discard(self, key: Any) -> None:
        """`key` is done: no deadline for it any more."""
        queue = self._where.pop(key, None)
        if queue is not None:
            del queue[key]

    def _earliest(self) -> float:
        earliest = math.inf
        for delay, queue in list(self._queues.items()):
            if queue:
                earliest = min(earliest, next(iter(queue.values())))
            elif len(self._queues) > 1:
                del self._queues[delay]  # a delay no longer in use (reloaded away)
        return earliest

    async def run(self, until_empty: bool = False) -> None:
        """Sleep until the earliest deadline and expire every key whose deadline has passed; forever, or with
        `until_empty` until no key is left (its owner starts it again: see `running`)."""
        self.running = True
        try:
            while True:
                earliest = self._earliest()
                if until_empty and earliest == math.inf:
                    return
                self._wake = trio.CancelScope(deadline=earliest)
                with self._wake:
                    await trio.sleep_forever()
                now = trio.current_time()
                for queue in list(self._queues.values()):
                    while queue:
                        key = next(iter(queue))
                        if queue[key] > now:
                            break
                        del queue[key]
                        del self._where[key]
                        self.expired(key)
        finally:
            self.running = False
