"""GC discipline for `hub run`: what start-up built is frozen out of the collector, thresholds that keep
gen-2 passes rare, and a histogram of every collector pause (gc.callbacks), logged at exit.

The hot paths make no cyclic garbage (tests/core/test_gc.py), so young collections find almost
nothing; a larger gen-0 threshold makes them rarer, and the frozen start-up heap (modules, config,
compiled schemas) is never walked again, which is what made a full collection cost tens of ms.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import deque
from typing import Any

# (gen0 allocations, gen1 passes, gen2 passes): chosen with `python -m bench burst/rate` and the pause
# histogram (bench/README.md, "GC"): 700/10/10 (CPython's default) ran gen-0 passes every few publications.
THRESHOLDS = (20_000, 20, 50)
# Pause bins, upper bounds in milliseconds (the last bin is everything above 100 ms).
BINS_MS = (0.1, 0.5, 1, 2, 5, 10, 20, 50, 100)


class GcPauses:
    """Collector pauses per generation: count, total, max and a histogram over BINS_MS; with `keep`, also the
    last `keep` pauses as (unix time, generation, wall ms), so a benchmark can tell its hot phase's pauses
    from those of connecting and disconnecting its clients (HUB_GC_PAUSES=<keep>)."""

    def __init__(self, keep: int = 0) -> None:
        self.started = self.cpu_started = 0.0
        self.gens = [{"count": 0, "total_ms": 0.0, "cpu_ms": 0.0, "max_ms": 0.0, "hist": [0] * (len(BINS_MS) + 1)} for _ in range(3)]
        self.keep = keep
        self.recent: deque[tuple[float, int, float]] | None = deque(maxlen=keep) if keep > 0 else None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            self.cpu_started = time.thread_time()
            return
        ms = (time.perf_counter() - self.started) * 1000  # wall time: what a client waits (preemption included)
        gen = info.get("generation", 0)
        if self.recent is not None:
            self.recent.append((round(time.time(), 3), gen, round(ms, 3)))
        g = self.gens[gen]
        g["count"] += 1
        g["total_ms"] += ms
        g["cpu_ms"] += (time.thread_time() - self.cpu_started) * 1000
        if ms > g["max_ms"]:
            g["max_ms"] = ms
        i = 0
        while i < len(BINS_MS) and ms > BINS_MS[i]:
            i += 1
        g["hist"][i] += 1

    def summary(self) -> dict[str, Any]:
        gens = [{**g, "total_ms": round(g["total_ms"], 2), "cpu_ms": round(g["cpu_ms"], 2), "max_ms": round(g["max_ms"], 3)}
                for g in self.gens]
        out = {"bins_ms": [*BINS_MS, "inf"], "thresholds": list(gc.get_threshold()), "generations": gens}
        if self.recent is not None:
            out["pauses"] = list(self.recent)
        return out


PAUSES = GcPauses()
GC_LINE = "gc pauses: "  # the bench reads the JSON after this in the hub's log


def install(thresholds: tuple[int, int, int] | None = None) -> None:
    """Set the thresholds (HUB_GC_THRESHOLDS="700,10,10" overrides them, to compare) and start timing every collection."""
    if thresholds is None:
        env = os.environ.get("HUB_GC_THRESHOLDS", "")
        thresholds = tuple(int(x) for x in env.split(",")) if env else THRESHOLDS  # type: ignore[assignment]
    gc.set_threshold(*thresholds)
    PAUSES.__init__(int(os.environ.get("HUB_GC_PAUSES") or 0))
    if PAUSES not in gc.callbacks:
        gc.callbacks.append(PAUSES)


def freeze() -> None:
    """Once the hub serves: collect once, then move everything alive into the permanent generation."""
    gc.collect()
    if os.environ.get("HUB_GC_FREEZE", "1") != "0":
        gc.freeze()
    PAUSES.__init__(PAUSES.keep)  # the pauses of serving, not of start-up


def report() -> str:
    return GC_LINE + json.dumps(PAUSES.summary())
