"""Two hub processes on one Redis: publisher on node A, subscribers on node B; and the same load on one
node with the memory engine, in one run.

    python -m bench.cluster                                   # 20,000 publications/s for 5 s, 10 subscribers
    python -m bench.cluster --rate 10000 --subscribers 100 --duration 5

Starts its own redis-server (free loopback port, no persistence) and hubs (`hub run`, ephemeral ports).
The publisher is a backend: the signed HTTP command API over `--concurrency` keep-alive connections,
paced to `--rate`, up to `--per-request` publish commands per request (what is due when a connection is
free), each stamped with its send time. Subscribers (original protocol, raw sockets, separate
processes) measure publish-to-receive latency on every publication. Prints one JSON line per setup:
publications/s sustained (acknowledged ÷ publishing time), deliveries/s, p50/p99/max latency, lost,
CPU seconds of each hub and of Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .common import LatencyHistogram, cpu_seconds, start_hub
from .fanout import spawn_clients
from .protocols import PROJECT, SECRET
from .redis_server import RedisServer

CHANNEL = "hist:cluster"
HISTORY_NS = """
[projects.bench.namespaces.hist]
publish = true
anonymous = true
presence = false
join_leave = false
history_size = 1000
history_lifetime = 60
"""


def signed_body(commands: list[dict[str, Any]]) -> bytes:
    data = json.dumps(commands, separators=(",", ":"))
    sign = hmac.new(SECRET.encode(), (PROJECT + data).encode(), hashlib.sha256).hexdigest()
    return urllib.parse.urlencode({"data": data, "sign": sign}).encode()


async def publisher(url: str, rate: float, duration: float, per_request: int, concurrency: int, size: int) -> dict[str, Any]:
    """Publish `rate × duration` publications, paced; returns start/end, acknowledged count, errors."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    total = int(rate * duration)
    state = {"taken": 0, "acked": 0, "errors": 0, "first_error": ""}
    pad = "x" * max(0, size - 40)
    start = time.time()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (f"POST /api/{PROJECT} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n").encode()
        try:
            while state["taken"] < total:
                due = min(total, int((time.time() - start) * rate) + 1)
                n = min(per_request, due - state["taken"])
                if n <= 0:
                    await asyncio.sleep(0.0005)
                    continue
                first = state["taken"]
                state["taken"] += n
                now = time.time()
                body = signed_body([{"method": "publish", "params": {"channel": CHANNEL, "data": {"t": now, "s": first + i, "p": pad}}}
                                    for i in range(n)])
                writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                status = await reader.readline()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                payload = await reader.readexactly(length)
                ok = payload.count(b'"error":null') + payload.count(b'"error": null')
                state["acked"] += ok
                if ok < n or b" 200 " not in status:
                    state["errors"] += n - ok
                    state["first_error"] = state["first_error"] or payload[:200].decode(errors="replace")
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"start": start, "end": time.time(), **state, "total": total}


def measure(pub_url: str, sub_ws: str, pids: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    total = int(args.rate * args.duration)
    clients = spawn_clients(sub_ws, args.subscribers, args.procs, ["legacy"], total, 1,
                            ("--drain-timeout", "20", "--quiet", "3"), channel=CHANNEL)
    for c in clients:
        line = c.stdout.readline()
        if not line:
            raise RuntimeError("a subscriber process failed to start")
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    pub = asyncio.run(publisher(pub_url, args.rate, args.duration, args.per_request, args.concurrency, args.size))
    for c in clients:
        c.stdin.write("done\n")
        c.stdin.flush()
    reports = [json.loads(c.stdout.readline()) for c in clients]
    for c in clients:
        c.wait(30)
    cpu = {name: round(cpu_seconds(pid) - cpu0[name], 2) for name, pid in pids.items()}
    hist = LatencyHistogram()
    for r in reports:
        hist.merge(r["hist"], r["max"])
    received = sum(r["received"] for r in reports)
    expected = pub["acked"] * args.subscribers
    publish_s = max(pub["end"] - pub["start"], 1e-9)
    last = max((r["last"] or 0) for r in reports)
    out = {
        "rate_target": args.rate, "subscribers": args.subscribers, "duration_s": args.duration,
        "published": pub["acked"], "publish_errors": pub["errors"],
        "publications_per_s": round(pub["acked"] / publish_s),
        "kept_pace": pub["acked"] == pub["total"] and publish_s <= args.duration * 1.1 + 0.5,
        "deliveries": received, "expected": expected, "lost": expected - received,
        "deliveries_per_s": round(received / max(last - pub["start"], 1e-9)),
        "drain_s": round(max(0.0, last - pub["end"]), 3),
        "latency_ms": {"p50": round(hist.percentile(50) * 1000, 2), "p99": round(hist.percentile(99) * 1000, 2),
                       "max": round(hist.max * 1000, 2)},
        "cpu_s": cpu,
    }
    if pub["first_error"]:
        out["first_error"] = pub["first_error"]
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    if "redis" in args.setups:
        with tempfile.TemporaryDirectory(prefix="hub-bench-redis-") as tmp:
            redis = RedisServer(Path(tmp))
            redis.start()
            engine = f'\n[engine]\ntype = "redis"\nurl = "{redis.url}"\n'
            a = start_hub(HISTORY_NS + engine)
            b = start_hub(HISTORY_NS + engine)
            try:
                sub_ws = b.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
                out = measure(a.urls["command API"], sub_ws, {"hub_a": a.pid, "hub_b": b.pid, "redis": redis.proc.pid}, args)
                results.append({"scenario": "cluster", "setup": "redis: publisher on A, subscribers on B", **out})
            finally:
                a.stop()
                b.stop()
                redis.kill()
    if "memory" in args.setups:
        hub = start_hub(HISTORY_NS)
        try:
            sub_ws = hub.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
            out = measure(hub.urls["command API"], sub_ws, {"hub": hub.pid}, args)
            results.append({"scenario": "cluster", "setup": "memory: one node", **out})
        finally:
            hub.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=20000, help="publications per second")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--subscribers", "-k", type=int, default=10)
    p.add_argument("--procs", type=int, default=1, help="subscriber processes")
    p.add_argument("--per-request", type=int, default=100, help="at most this many publishes per HTTP request")
    p.add_argument("--concurrency", type=int, default=4, help="publisher connections")
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--setups", default="redis,memory", help="comma-separated: redis,memory")
    args = p.parse_args(argv)
    args.setups = args.setups.split(",")
    for result in run(args):
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
