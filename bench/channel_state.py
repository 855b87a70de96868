"""Channel state at scale: memory per channel, the longest loop stall during housekeeping, RSS under churn.

    python -m bench.channel_state                       # 100,000 and 1,000,000 channels, churn; before and after
    python -m bench.channel_state --channels 100000 --churn-rounds 0 --versions after
    python -m bench.channel_state --channels "" --versions after,after-notrim    # what malloc_trim does under churn

Each figure is measured in a fresh process per version: "after" is this tree's `hub`, "before" is the
`hub` package of `--before` (default: main before the compact-streams work of issue 23), exported with
`git archive` to a temporary directory and put first on PYTHONPATH. Same script, same workload:

- memory: RSS growth per channel after publishing one small publication (one shared payload object, so
  what is measured is the channel's state: its name, stream, publication record, schedule) into each of
  N new channels of a namespace that keeps history (size 10, lifetime 60 s).
- stall: with those N channels live, the core's own housekeeping task runs every 50 ms under a Trio
  instrument that times every task step: the longest step of the housekeeping task while nothing
  expires ("idle pass") and while all N channels expire at once ("mass expiry", the fake clock jumps past
  the lifetime), and the worst lateness of a 1 ms ticker task (what any other task would feel).
- churn: rounds of 200,000 channels created then expired by housekeeping; RSS after each round.

The fake clock makes every channel expire in the same pass; `history_meta_ttl` is 0 so the offsets and
epochs go with the publications. Results print as a table and, with `--json FILE`, as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# main as it was before issue 23's core work (compact streams, scheduled expiry).
BEFORE_REF = "6f8c155"


def live(engine: Any) -> int:
    """Streams the memory engine holds (its dict's length in the code before issue 23)."""
    try:
        return len(engine)
    except TypeError:
        return len(engine._streams)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


NO_TRIM = False


def _hub(clock: FakeClock) -> Any:
    from hub.core import Hub, NamespaceOptions, Project
    from hub.engine import MemoryEngine

    options = NamespaceOptions(history_size=10, history_lifetime=60.0)
    engine = MemoryEngine(history_meta_ttl=0.0)
    if NO_TRIM and hasattr(engine, "trim_after"):
        engine.trim_after = 1 << 62  # never malloc_trim
    return Hub([Project("p", "secret", options)], clock=clock, engine=engine)


async def _fill(hub: Any, n: int, prefix: str, data: Any) -> None:
    publish = hub.publish
    for i in range(n):
        await publish("p", f"{prefix}{i:07d}", data)  # a fresh name string per channel, as off the wire


class StepTimer:
    """A Trio instrument: the longest single step of each task (by name), in wall-clock time and in the
    thread's CPU time (on a shared machine the wall time also counts being preempted by other processes)."""

    def __init__(self) -> None:
        self.longest: dict[str, float] = {}
        self.longest_cpu: dict[str, float] = {}
        self._t = self._c = 0.0

    def before_task_step(self, task: Any) -> None:
        self._t = time.perf_counter()
        self._c = time.thread_time()

    def after_task_step(self, task: Any) -> None:
        d = time.perf_counter() - self._t
        c = time.thread_time() - self._c
        if d > self.longest.get(task.name, 0.0):
            self.longest[task.name] = d
        if c > self.longest_cpu.get(task.name, 0.0):
            self.longest_cpu[task.name] = c


class GcTimer:
    """Time spent in full (generation 2) garbage collections, which any step may trigger."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.count = 0
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - self._t)


async def _ticker(out: dict[str, float], stop: Any) -> None:
    import trio

    worst = 0.0
    while not stop.is_set():
        t = time.perf_counter()
        await trio.sleep(0.001)
        worst = max(worst, time.perf_counter() - t - 0.001)
    out["worst"] = worst


async def _stall_phase(hub: Any, clock: FakeClock, jump: float, seconds: float, wait_empty: bool) -> dict[str, float]:
    """Run the core's housekeeping (every 50 ms) and a ticker; return the longest steps (ms)."""
    import trio

    timer, gct = StepTimer(), GcTimer()
    ticks: dict[str, float] = {}
    stop = trio.Event()
    engine = hub.engine
    gc.callbacks.append(gct)
    trio.lowlevel.add_instrument(timer)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub.housekeeping, 0.05, name="housekeeping")
            nursery.start_soon(_ticker, ticks, stop, name="ticker")
            await trio.sleep(0.06)
            clock.now += jump
            t0, c0 = time.perf_counter(), time.process_time()
            with trio.move_on_after(seconds if not wait_empty else 120):
                if wait_empty:
                    while live(engine):
                        await trio.sleep(0.01)
                else:
                    await trio.sleep(seconds)
            took, cpu = time.perf_counter() - t0, time.process_time() - c0
            stop.set()
            await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.remove_instrument(timer)
        gc.callbacks.remove(gct)
    return {"housekeeping_step_ms": 1000 * timer.longest.get("housekeeping", 0.0),
            "housekeeping_step_cpu_ms": 1000 * timer.longest_cpu.get("housekeeping", 0.0),
            "ticker_late_ms": 1000 * ticks.get("worst", 0.0),
            "gc_full_ms": 1000 * gct.longest, "gc_full": gct.count, "seconds": took,
            "cpu_seconds": cpu}


def _streams_of(engine: Any) -> tuple[list[dict[Any, Any]], Any]:
    """The dicts holding the memory engine's streams (one flat dict before issue 23, shards after) and one stream."""
    top = engine._streams
    first = next(iter(top.values()))
    dicts = [top] if not isinstance(first, list) else [d for shards in top.values() for d in shards]
    stream = next(s for d in dicts for s in d.values())
    return dicts, stream


def breakdown(engine: Any, n: int) -> dict[str, float]:
    """Bytes per channel by part (sys.getsizeof), for a channel with one publication: what each part costs."""
    dicts, stream = _streams_of(engine)
    items = stream.items
    pubs = stream.publications() if hasattr(stream, "publications") else list(items)
    pub = pubs[-1]
    out: dict[str, float] = {"stream object": sys.getsizeof(stream)}
    if items is not pub:
        out["publication container"] = sys.getsizeof(items)  # a deque (64-slot block included) or a list
    out["epoch string"] = sys.getsizeof(stream.epoch)
    for name in ("expires_at", "meta_expires_at", "touched"):
        if name in type(stream).__slots__ and getattr(stream, name) is not pub.timestamp:  # stored, not computed
            out[f"{name} float"] = sys.getsizeof(0.5)
    out["publication object"] = sys.getsizeof(pub)
    out["uid string"] = sys.getsizeof(pub.uid)
    out["timestamp float"] = sys.getsizeof(pub.timestamp)
    key = next(iter(dicts[0])) if dicts[0] else None
    if isinstance(key, tuple):
        out["key tuple"] = sys.getsizeof(key)
    out["channel name (once)"] = sys.getsizeof(getattr(stream, "channel", None) or key[1])
    if pub.channel is not (getattr(stream, "channel", None) or key[1]):
        out["channel name (copy in the publication)"] = sys.getsizeof(pub.channel)
    out["dict slots (amortized)"] = sum(sys.getsizeof(d) for d in dicts) / n
    wheel = getattr(engine, "_wheel", None)
    if wheel is not None:
        out["expiry schedule (amortized)"] = sum(sys.getsizeof(b) for b in wheel._buckets.values()) / n
    out["total"] = sum(out.values())
    return out


async def _worker_channels(n: int) -> dict[str, Any]:
    clock = FakeClock()
    hub = _hub(clock)
    data = {"n": 1}
    await _fill(hub, 1000, "warm", data)
    gc.collect()
    r0 = rss()
    t0 = time.process_time()  # CPU time: the machine may be shared
    await _fill(hub, n, "ch", data)
    fill_s = time.process_time() - t0
    gc.collect()
    r1 = rss()
    parts = breakdown(hub.engine, n + 1000)
    idle = await _stall_phase(hub, clock, 1.0, 0.6, wait_empty=False)
    mass = await _stall_phase(hub, clock, 120.0, 0.0, wait_empty=True)
    gc.collect()
    return {"channels": n, "bytes_per_channel": (r1 - r0) / n, "publish_us": 1e6 * fill_s / n,
            "rss_mb": r1 / 1e6, "rss_after_expiry_mb": rss() / 1e6, "idle": idle, "mass": mass, "parts": parts,
            "name_bytes": sys.getsizeof(f"ch{n:07d}")}


async def _worker_churn(rounds: int, n: int) -> dict[str, Any]:
    import trio

    clock = FakeClock()
    hub = _hub(clock)
    data = {"n": 1}
    out = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.housekeeping, 0.05)
        for r in range(rounds):
            await _fill(hub, n, f"r{r}-", data)
            clock.now += 120.0
            while live(hub.engine):
                await trio.sleep(0.01)
            await trio.sleep(0.3)  # the pass after the sweep (and a trim in its thread) finishes
            gc.collect()
            out.append(rss() / 1e6)
        nursery.cancel_scope.cancel()
    return {"rounds": rounds, "channels": n, "rss_mb": out}


def worker(args: argparse.Namespace) -> None:
    import trio

    global NO_TRIM
    NO_TRIM = args.no_trim
    if args.mode == "channels":
        result = trio.run(_worker_channels, args.n)
    else:
        result = trio.run(_worker_churn, args.rounds, args.n)
    import hub.core

    result["hub"] = str(Path(hub.core.__file__).parent.parent)
    print(json.dumps(result))


def _export(ref: str, into: str) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "hub"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)


def _run(version_path: str | None, *argv: str) -> dict[str, Any]:
    env = dict(os.environ)
    paths = [version_path] if version_path else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    # cwd comes first on sys.path with -m: run the "before" code from its own directory
    proc = subprocess.run([sys.executable, "-m", "bench.channel_state", "--worker", *argv], env=env,
                          cwd=version_path or str(ROOT),
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(results: dict[str, dict[str, Any]], versions: list[str], labels: dict[str, str]) -> str:
    rows = []

    def row(label: str, fmt: str, get: Any) -> None:
        cells = []
        for v in versions:
            try:
                cells.append(fmt.format(get(results[v])))
            except (KeyError, IndexError, TypeError):
                cells.append("-")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    for n in sorted({k for r in results.values() for k in r.get("channels", {})}):
        label = f"{int(n):,}"
        row(f"{label} channels: RSS per channel (B)", "{:.0f}", lambda r, n=n: r["channels"][n]["bytes_per_channel"])
        row(f"{label} channels: RSS after all expired (MB)", "{:.0f}", lambda r, n=n: r["channels"][n]["rss_after_expiry_mb"])
        row(f"{label} channels: publish into a new channel (CPU µs)", "{:.1f}", lambda r, n=n: r["channels"][n]["publish_us"])
        row(f"{label} channels: longest housekeeping step, idle pass (ms)", "{:.2f}",
            lambda r, n=n: r["channels"][n]["idle"]["housekeeping_step_ms"])
        row(f"{label} channels: same, CPU time (ms)", "{:.2f}",
            lambda r, n=n: r["channels"][n]["idle"]["housekeeping_step_cpu_ms"])
        row(f"{label} channels: longest housekeeping step, mass expiry (ms)", "{:.2f}",
            lambda r, n=n: r["channels"][n]["mass"]["housekeeping_step_ms"])
        row(f"{label} channels: same, CPU time of that task (ms)", "{:.2f}",
            lambda r, n=n: r["channels"][n]["mass"]["housekeeping_step_cpu_ms"])
        row(f"{label} channels: worst 1 ms ticker lateness, mass expiry (ms)", "{:.2f}",
            lambda r, n=n: r["channels"][n]["mass"]["ticker_late_ms"])
        row(f"{label} channels: full GC during mass expiry (count, longest ms)", "{}",
            lambda r, n=n: f'{r["channels"][n]["mass"]["gc_full"]}, {r["channels"][n]["mass"]["gc_full_ms"]:.0f}')
        row(f"{label} channels: mass expiry done in (s wall, s CPU)", "{}",
            lambda r, n=n: f'{r["channels"][n]["mass"]["seconds"]:.2f}, {r["channels"][n]["mass"]["cpu_seconds"]:.2f}')
    if any("churn" in r for r in results.values()):
        row("churn: RSS after each round (MB)", "{}", lambda r: ", ".join(f"{x:.0f}" for x in r["churn"]["rss_mb"]))
        row("churn: last round / first round", "{:.2f}", lambda r: r["churn"]["rss_mb"][-1] / r["churn"]["rss_mb"][0])
    first = str(max((int(k) for r in results.values() for k in r.get("channels", {})), default=0))
    parts = sorted({p for r in results.values() for p in r.get("channels", {}).get(first, {}).get("parts", {})},
                   key=lambda p: (p == "total", p))
    for part in parts:
        row(f"bytes per channel, by part (getsizeof): {part}", "{:.0f}", lambda r, p=part: r["channels"][first]["parts"][p])
    head = "| figure | " + " | ".join(labels.get(v, v) for v in versions) + " |\n|---|" + "---|" * len(versions)
    return head + "\n" + "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", default="100000,1000000", help="comma-separated channel counts")
    p.add_argument("--churn-rounds", type=int, default=3)
    p.add_argument("--churn-channels", type=int, default=200_000)
    p.add_argument("--before", default=BEFORE_REF, help="git ref of the 'before' code")
    p.add_argument("--versions", default="before,after")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="channels", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--no-trim", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    versions = [v for v in args.versions.split(",") if v]
    counts = [int(c) for c in args.channels.split(",") if c]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "before" in versions:
            _export(args.before, tmp)
        for v in versions:
            path = tmp if v == "before" else None
            extra = ["--no-trim"] if v == "after-notrim" else []
            res: dict[str, Any] = {"channels": {}}
            for n in counts if v != "after-notrim" else []:  # only the churn shows what malloc_trim does
                print(f"{v}: {n:,} channels ...", file=sys.stderr, flush=True)
                res["channels"][str(n)] = _run(path, "--mode", "channels", "--n", str(n), *extra)
            if args.churn_rounds:
                print(f"{v}: churn {args.churn_rounds} x {args.churn_channels:,} ...", file=sys.stderr, flush=True)
                res["churn"] = _run(path, "--mode", "churn", "--rounds", str(args.churn_rounds), "--n", str(args.churn_channels),
                                    *extra)
            results[v] = res
    labels = {"before": f"before ({args.before})", "after": "after (this tree)",
              "after-notrim": "after, no malloc_trim"}
    print(_table(results, versions, labels))
    if args.json:
        Path(args.json).write_text(json.dumps({"before_ref": args.before, "results": results}, indent=1))


if __name__ == "__main__":
    main()
