"""Fan-out benchmark: K websocket subscribers on one channel in 2 client processes, one publisher.

    python -m bench.fanout --subscribers 1000 --messages 2000             # burst
    python -m bench.fanout --subscribers 1000 --rate 1000 --duration 5    # fixed rate
    python -m bench.fanout --idle 10000                                    # idle connections: RSS per connection
    python -m bench.fanout --target socketio -k 100 -m 2000                # the same against a peer (bench/peers/)

Prints one JSON line: deliveries/s, p50/p99/max publish-to-receive latency, lost messages, drain
time, server CPU seconds and peak RSS, client CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from .common import HubProcess, LatencyHistogram, cpu_seconds, rss_kib, start_hub, start_profiler, stop_profiler, sys_cpu_seconds
from .protocols import PROTOCOLS
from .wsclient import open_client

CHANNEL = "bench:fanout"


def spawn_clients(url: str, total: int, procs: int, protocols: list[str], expect: int, sample: int,
                  extra: tuple[str, ...] = (), channel: str = CHANNEL) -> list[subprocess.Popen]:
    out = []
    per = [total // procs + (1 if i < total % procs else 0) for i in range(procs)]
    for i, n in enumerate(per):
        if not n:
            continue
        cmd = [sys.executable, "-m", "bench.fanout_client", "--url", url, "--n", str(n), "--channel", channel,
               "--protocol", protocols[i % len(protocols)], "--prefix", f"p{i}s", "--expect", str(expect),
               "--sample", str(sample), *extra]
        out.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    return out


def payload(seq: int, size: int) -> dict[str, Any]:
    base = {"t": time.time(), "s": seq, "p": ""}
    base["p"] = "x" * max(0, size - len(json.dumps(base)))
    return base


async def publish(url: str, messages: int, rate: float, size: int, protocol: str, ack_wait: float = 60.0,
                  topics: int = 0) -> tuple[float, float]:
    """Send `messages` publications (burst in batches of 100, or at `rate` per second); return start/end times."""
    proto = PROTOCOLS[protocol]
    if "publisher" in proto:  # a non-websocket peer (MQTT) brings its own publisher
        return await proto["publisher"](url, CHANNEL, messages, rate, size, payload, ack_wait, topics)
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    replies = {"n": 0}
    frames = -(-messages // 100) if rate <= 0 else None

    def on_message(data: bytes) -> None:
        if not ready.done():
            if proto["is_reply"](data):
                ready.set_result(data)
            return
        if data.startswith(proto["reply_prefix"]):
            replies["n"] += 1

    client = await open_client(url, on_message, proto["subprotocol"])
    client.send_bytes(proto["subscribe"]("publisher", CHANNEL))
    await asyncio.wait_for(ready, 10)
    start = time.time()
    sent = 0
    if rate <= 0:
        while sent < messages:
            n = min(100, messages - sent)
            client.send_bytes(proto["publish"](CHANNEL, [payload(sent + i, size) for i in range(n)]))
            sent += n
            await asyncio.sleep(0)
            while client.transport.get_write_buffer_size() > 1 << 20:
                await asyncio.sleep(0.001)
    else:
        while sent < messages:
            due = min(messages, int((time.time() - start) * rate) + 1)
            if due > sent:
                client.send_bytes(proto["publish"](CHANNEL, [payload(sent + i, size) for i in range(due - sent)]))
                sent = due
                replies["frames"] = replies.get("frames", 0) + 1
            await asyncio.sleep(0.0005)
    end = time.time()
    # Keep the publisher's connection until every publish is acknowledged.
    deadline = time.time() + ack_wait
    while replies["n"] < (frames or replies.get("frames", 0)) and time.time() < deadline:
        await asyncio.sleep(0.01)
    client.transport.close()
    return start, end


def run(args: argparse.Namespace) -> dict[str, Any]:
    target = getattr(args, "target", "hub")
    if target == "hub-mqtt":
        return run_hub_mqtt(args)
    if getattr(args, "topics", 0) and target != "mosquitto":
        raise SystemExit("--topics is an MQTT workload: --target hub-mqtt or mosquitto")
    if target != "hub":
        return run_peer(args, target)
    protocols = ["legacy", "sdk"] if args.protocol == "mixed" else [args.protocol]
    hub = start_hub(queue=args.queue)
    try:
        url = hub.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
        result = {"target": "hub", **measure(url, hub.pid, args, protocols, args.protocol, hub=hub)}
    finally:
        hub.stop()
    return {**result, "gc": hub.gc}


def run_hub_mqtt(args: argparse.Namespace) -> dict[str, Any]:
    """The MQTT workload (the Mosquitto peer's: raw MQTT 3.1.1 QoS 0 subscribers and publisher) against the hub's MQTT listener."""
    hub = start_hub(queue=args.queue, adapters=("realtime", "command_api", "mqtt"),
                    adapter_settings={"mqtt": "allow_anonymous = true"})
    try:
        url = hub.urls["MQTT"].replace("http://", "mqtt://") + "/"
        result = {"target": "hub-mqtt", **measure(url, hub.pid, args, ["mqtt"], "mqtt", hub=hub)}
    finally:
        hub.stop()
    return {**result, "gc": hub.gc}


def run_peer(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """The same workload against a peer (bench/peers/): Mosquitto, `websockets` or python-socketio."""
    from .peers import start_peer

    peer = start_peer(name)
    try:
        result = measure(peer.url, peer.pid, args, [peer.protocol], peer.protocol, peak_rss_kib=peer.peak_rss_kib)
    finally:
        peer.stop()
    return {"target": name, **result, **({"peer": peer.info} if peer.info else {})}


def measure(url: str, server_pid: int, args: argparse.Namespace, protocols: list[str], label: str,
            peak_rss_kib: Callable[[], int] | None = None, hub: HubProcess | None = None) -> dict[str, Any]:
    """Run the burst, fixed-rate or idle workload against a server already listening at `url`."""
    base_rss = rss_kib(server_pid)
    idle = args.idle > 0
    total = args.idle if idle else args.subscribers
    messages = 0 if idle else (args.messages if args.rate <= 0 else int(args.rate * args.duration))
    t0 = time.time()
    coalesce = getattr(args, "coalesce_ms", 0.0)
    drain_limit = getattr(args, "drain_limit", 0.0)
    topics = getattr(args, "topics", 0)
    extra: tuple[str, ...] = ("--coalesce-ms", str(coalesce)) if coalesce else ()
    if getattr(args, "inflight", 0):
        extra += ("--inflight", str(args.inflight))
    if topics:
        extra += ("--topics", str(topics)) + (("--wildcard",) if args.wildcard else ())
    per_sub = messages // topics if topics else messages
    if hub is not None and idle:
        hub.profiler = start_profiler(hub.pid)  # BENCH_PROFILE: the connect phase is the hot one
    connect_cpu0, connect_sys0 = cpu_seconds(server_pid), sys_cpu_seconds(server_pid)
    clients = spawn_clients(url, total, args.procs, protocols, per_sub, args.sample, extra)
    connect_s = client_connect_cpu = 0.0
    for c in clients:
        line = c.stdout.readline()
        if not line:
            raise RuntimeError("a client process failed to start")
        ready = json.loads(line)
        connect_s = max(connect_s, ready["connect_s"])
        client_connect_cpu += ready.get("connect_cpu_s", 0.0)
    ready_at = time.time()
    server_connect_cpu = cpu_seconds(server_pid) - connect_cpu0
    server_connect_sys = sys_cpu_seconds(server_pid) - connect_sys0
    if hub is not None and not idle:
        hub.profiler = start_profiler(hub.pid)  # BENCH_PROFILE: the hot phase only
    cpu0 = cpu_seconds(server_pid)
    result: dict[str, Any] = {"protocol": label}
    if idle:
        if hub is not None:
            stop_profiler(hub.profiler)
        time.sleep(1.0)
        rss = rss_kib(server_pid)
        result.update({
            "scenario": "connections", "connections": total, "connect_s": round(connect_s, 2),
            # connections opened ÷ the client processes' connect window (they run side by side; their interpreter
            # start-up is not in it); connects_per_s_wall also counts starting the client processes.
            "connects_per_s": round(total / max(connect_s, 1e-9)),
            "connects_per_s_wall": round(total / max(ready_at - t0, 1e-9)),
            "server_rss_mb": round(rss / 1024, 1), "baseline_rss_mb": round(base_rss / 1024, 1),
            "rss_per_conn_kib": round((rss - base_rss) / total, 2),
            # Who limited the connect rate: the server's CPU seconds while the clients connected (its busy share of
            # their connect window) and the client processes' own (their interpreter start-up included).
            "server_connect_cpu_s": round(server_connect_cpu, 2), "server_connect_sys_cpu_s": round(server_connect_sys, 2),
            "server_connect_busy": round(server_connect_cpu / max(connect_s, 1e-9), 2),
            "client_connect_cpu_s": round(client_connect_cpu, 2),
        })
    else:
        start, end = asyncio.run(publish(url, messages, args.rate, args.size, protocols[0], drain_limit or 60.0, topics))
        result.update({"scenario": "topics" if topics else "burst" if args.rate <= 0 else "rate", "subscribers": total,
                       "messages": messages, "rate": args.rate, "size": args.size, "publish_s": round(end - start, 3)})
        if topics:
            result.update({"topics": topics, "wildcard": bool(args.wildcard)})
    for c in clients:
        # With --drain-limit, deliveries are counted until that long after the last publish, no later.
        c.stdin.write(f"done {max(0.0, drain_limit - (time.time() - end)):.3f}\n" if drain_limit and not idle else "done\n")
        c.stdin.flush()
    reports = [json.loads(c.stdout.readline()) for c in clients]
    for c in clients:
        c.wait(30)
    cpu1 = cpu_seconds(server_pid)
    result["server_cpu_s"] = round(cpu1 - cpu0, 2)
    peak = peak_rss_kib() if peak_rss_kib is not None else rss_kib(server_pid, "VmHWM")
    result["server_peak_rss_mb"] = round(peak / 1024, 1)
    result["client_cpu_s"] = round(sum(r["cpu_s"] for r in reports), 2)
    if not idle:
        hist = LatencyHistogram()
        for r in reports:
            hist.merge(r["hist"], r["max"])
        received = sum(r["received"] for r in reports)
        expected = per_sub * total
        last = max(r["last"] for r in reports)
        first_pub = start
        elapsed = max(last - first_pub, 1e-9)
        result.update({
            "deliveries": received, "expected": expected, "lost": expected - received,
            "deliveries_per_s": round(received / elapsed),
            "elapsed_s": round(elapsed, 3),
            "drain_s": round(max(0.0, last - end), 3),
            "kept_up": expected == received and (last - end) <= 1.0,
            "latency_ms": {"p50": round(hist.percentile(50) * 1000, 2), "p99": round(hist.percentile(99) * 1000, 2),
                           "max": round(hist.max * 1000, 2)},
            "server_closed": sum(r["closed"] for r in reports),
        })
        if drain_limit:
            # True when counting stopped at the limit with deliveries missing: those may still be queued (backlog).
            result["drain_limit_s"] = drain_limit
            result["drain_cut"] = any(r.get("stopped") == "timeout" for r in reports)
        result["saturated"] = "server" if result["server_cpu_s"] >= 0.85 * elapsed else "clients/publisher"
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", "-k", type=int, default=1000)
    p.add_argument("--messages", "-m", type=int, default=2000)
    p.add_argument("--rate", type=float, default=0, help="publications per second (0 = burst)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of publishing at --rate")
    p.add_argument("--size", type=int, default=100, help="bytes of publication data")
    p.add_argument("--procs", type=int, default=2, help="subscriber processes")
    p.add_argument("--protocol", default="legacy", choices=[*PROTOCOLS, "mixed"])
    p.add_argument("--idle", type=int, default=0, help="open this many idle connections instead (RSS per connection)")
    p.add_argument("--inflight", type=int, default=0,
                   help="connections each client process opens at once (0: bench/fanout_client.py's default)")
    p.add_argument("--queue", type=int, default=4 << 20, help="hub max_queue_bytes")
    p.add_argument("--sample", type=int, default=1, help="latency on every Nth connection")
    p.add_argument("--drain-limit", type=float, default=0.0,
                   help="count deliveries until this many seconds after the last publish (0 = 60 s ack wait + 30 s drain)")
    p.add_argument("--coalesce-ms", type=float, default=0.0,
                   help="subscriber processes wait this long when several sockets are ready, to read more per recv")
    p.add_argument("--target", default="hub", choices=["hub", "hub-mqtt", "mosquitto", "websockets", "socketio", "redis"],
                   help="the server under test: the hub (started here; hub-mqtt: its MQTT listener) or a peer (bench/peers/)")
    p.add_argument("--topics", type=int, default=0,
                   help="MQTT: publications round-robin over this many topics, subscribers spread over them")
    p.add_argument("--wildcard", action="store_true", help="with --topics: subscribers use bench/<n>/# filters")
    args = p.parse_args(argv)
    print(json.dumps(run(args)), flush=True)


if __name__ == "__main__":
    main()
