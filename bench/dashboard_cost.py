"""What a publication costs the core with the dashboard in each state, in process (no sockets, no noise from clients).

    python -m bench.dashboard_cost --publications 50000 --subscribers 10 --rounds 7

States, measured in alternating rounds on one core with the legacy protocol's real wire format:
- none: no dashboard;
- pages: the dashboard's Monitor with an Overview and a Clients page open (no channel watched);
- watch-other: also a page watching another channel (the core's event feed has a listener);
- watch-same: the page watches the published channel (each publication queued for the page).
Prints CPU nanoseconds per publication (median of the rounds) and each state's ratio to `none`.
Under `valgrind --tool=callgrind` (one state per run, `--rounds 1 --sessions 0`, two publication counts) the
difference of instruction counts gives instructions per publication, free of the shared machine's noise.
Then the work of one live-update tick per page kind with `--sessions` clients connected (each on 2 of
100 channels), data gathering plus JSON encoding, in milliseconds: what an open page costs per
`update_interval`, whatever the publication rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from types import SimpleNamespace

import trio

from hub.core import Hub, NamespaceOptions, Project
from hub.core.outbox import Outbox
from hub.metrics import RequestMetrics
from protocols.dashboard.monitor import Monitor
from protocols.realtime.legacy import WIRE

STATES = ("none", "pages", "watch-other", "watch-same")


def setup(state: str, subscribers: int) -> tuple[Hub, Monitor | None]:
    hub = Hub([Project("p", "s", NamespaceOptions())], max_queue_bytes=1 << 30)
    for i in range(subscribers):
        session = hub.connect("p", f"u{i}", "centrifuge-legacy", WIRE, outbox=Outbox(1 << 30))
        session.channels["news"] = None  # subscribed without join pushes: the fan-out path only
        hub._channels.setdefault(("p", "news"), {})[session.id] = session
    if state == "none":
        return hub, None
    runtime = SimpleNamespace(hub=hub, metrics=RequestMetrics(), contexts={}, served={})
    monitor = Monitor(runtime, lambda: 1.0)
    monitor.open_page("overview")
    monitor.open_page("clients")
    if state != "pages":
        page = monitor.open_page("channel")
        monitor.watch(page, "p", "news" if state == "watch-same" else "elsewhere")
    return hub, monitor


async def round_ns(state: str, publications: int, subscribers: int) -> float:
    hub, monitor = setup(state, subscribers)
    sessions = list(hub.sessions.values())
    data = {"text": "x" * 80}
    started = time.process_time_ns()
    for i in range(publications):
        await hub.publish("p", "news", data)
        if i % 100 == 99:  # the subscribers' writers and the page's sender take what is queued
            for session in sessions:
                session.outbox.take()
            if monitor is not None:
                for page in monitor.pages:
                    page.take()
    return (time.process_time_ns() - started) / publications


async def tick_ms(sessions: int, rounds: int) -> dict[str, float]:
    from protocols.dashboard import views

    hub = Hub([Project("p", "s", NamespaceOptions())])
    for i in range(sessions):
        session = hub.connect("p", f"u{i}", "centrifuge-legacy", WIRE)
        for channel in (f"ch{i % 100}", f"ch{(i * 7 + 1) % 100}"):
            session.channels[channel] = None
            hub._channels.setdefault(("p", channel), {})[session.id] = session
    runtime = SimpleNamespace(hub=hub, metrics=RequestMetrics(), contexts={}, served={}, default_project="p")
    monitor = Monitor(runtime, lambda: 1.0)
    monitor.sample()

    async def overview() -> object:
        monitor.tick += 1  # a new tick: the per-protocol breakdown is computed again
        return monitor.overview()

    async def clients() -> object:
        return views.client_list(runtime)

    async def channels() -> object:
        return await views.channel_list(runtime, "p")

    async def channel() -> object:
        return await views.channel_detail(runtime, "p", "ch1")

    out = {}
    for name, build in (("overview", overview), ("clients", clients), ("channels", channels), ("channel", channel)):
        times = []
        for _ in range(rounds):
            started = time.process_time_ns()
            json.dumps(await build(), default=str)
            times.append((time.process_time_ns() - started) / 1e6)
        out[name] = round(statistics.median(times), 2)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    states = args.states.split(",")
    runs: dict[str, list[float]] = {s: [] for s in states}
    for _ in range(args.rounds):
        for state in states:
            runs[state].append(await round_ns(state, args.publications, args.subscribers))
    medians = {s: round(statistics.median(v)) for s, v in runs.items()}
    out: dict[str, object] = {"ns_per_publication": medians, "spread": {s: [round(min(v)), round(max(v))] for s, v in runs.items()}}
    if "none" in medians:
        out["ratio_to_none"] = {s: round(m / medians["none"], 3) for s, m in medians.items()}
    if args.sessions:
        out[f"tick_ms_at_{args.sessions}_sessions"] = await tick_ms(args.sessions, args.rounds)
    return {**out, "params": vars(args)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publications", type=int, default=50000)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sessions", type=int, default=10000, help="sessions for the per-tick figures (0: skip them)")
    parser.add_argument("--states", default=",".join(STATES), help="which states, comma-separated (one at a time for callgrind)")
    print(json.dumps(trio.run(main_async, parser.parse_args())))


if __name__ == "__main__":
    main()
