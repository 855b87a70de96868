"""Scheduled expiry: deadlines kept in time buckets, so a housekeeping pass costs what is due, not what exists."""

from __future__ import annotations

import heapq
import time
from typing import Any

# Deadlines further away than this go in coarse buckets (COARSE fine ones wide) and are re-bucketed when
# their coarse bucket comes due: a month-long `history_meta_ttl` then costs a few buckets, not one a second.
NEAR = 3600.0
COARSE = 64


class TimerWheel:
    """Items due at clock times, grouped in buckets of `resolution` seconds (a calendar queue).

    `add` is O(1) and returns the bucket (a list) the item went in; the owner keeps that list as the item's
    ticket (one pointer) and treats an entry whose ticket is no longer that list as stale, so rescheduling
    never searches. `take_due(now)` hands over every bucket that may hold something due by `now`: the
    caller checks each item's real deadline (a bucket may also hold items due a little later than `now`,
    or coarse items far later) and adds back those not yet due.
    """

    __slots__ = ("resolution", "_buckets", "_order")

    def __init__(self, resolution: float = 1.0) -> None:
        self.resolution = resolution
        self._buckets: dict[int, list[Any]] = {}
        self._order: list[int] = []  # heap of the bucket numbers in _buckets

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def add(self, when: float, item: Any, now: float) -> list[Any]:
        number = int(when // self.resolution)
        if when - now > NEAR:
            number -= number % COARSE  # due early, then re-bucketed finely
        bucket = self._buckets.get(number)
        if bucket is None:
            bucket = self._buckets[number] = []
            heapq.heappush(self._order, number)
        bucket.append(item)
        return bucket

    def take_due(self, now: float) -> list[list[Any]]:
        """Remove and return the buckets that start at or before `now`."""
        last = int(now // self.resolution)
        order, buckets, out = self._order, self._buckets, []
        while order and order[0] <= last:
            out.append(buckets.pop(heapq.heappop(order)))
        return out


class Slicer:
    """Work in slices: `more()` is True until `budget` seconds have passed since the slice began (checked
    every `every` calls, so the clock is read rarely). `budget` None: no limit."""

    __slots__ = ("budget", "every", "_n", "_end")

    def __init__(self, budget: float | None, every: int = 64) -> None:
        self.budget = budget
        self.every = every
        self._n = 0
        self._end = time.perf_counter() + budget if budget is not None else 0.0

    def more(self) -> bool:
        if self.budget is None:
            return True
        self._n += 1
        if self._n < self.every:
            return True
        self._n = 0
        return time.perf_counter() < self._end

    def more_now(self) -> bool:
        """`more`, reading the clock every time (for heavy units of work)."""
        return self.budget is None or time.perf_counter() < self._end
