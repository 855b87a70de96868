"""Chat benchmark: REST `POST /api/rooms/GENERAL/send` → websocket subscribers of the room's channel.

    python -m bench.chat --messages 500 --concurrency 4 --subscribers 10

Starts a hub with the realtime and chat adapters (the room's channel in the bench namespace),
registers and logs in a user, joins GENERAL, then sends messages over keep-alive connections.
Each message text carries its send time, so the subscribers (a separate process) measure
send → websocket receive latency; the request latency (send → acknowledged, i.e. committed to
SQLite) is measured too. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from typing import Any

from . import httpload, msg_subscriber
from .common import LatencyHistogram, cpu_seconds, rss_kib, start_hub
from .httpload import Request

PREFIX = "bench:chat."
ROOM = "GENERAL"
USER, PASSWORD = "bencher", "bench-password-1"


async def setup(url: str) -> dict[str, str]:
    """Register (self-registration), log in, join the room; the auth headers."""
    body = json.dumps({"username": USER, "pass": PASSWORD, "email": "bencher@example.com", "name": "Bencher"}).encode()
    resp = await httpload.request(url, Request("POST", "/api/v1/users.register", body, {"Content-Type": "application/json"}))
    if resp.status != 200:
        raise RuntimeError(f"users.register: HTTP {resp.status} {resp.body[:200]!r}")
    body = json.dumps({"user": USER, "password": PASSWORD}).encode()
    resp = await httpload.request(url, Request("POST", "/api/login", body, {"Content-Type": "application/json"}))
    data = resp.json().get("data") or {}
    if resp.status != 200 or "authToken" not in data:
        raise RuntimeError(f"login: HTTP {resp.status} {resp.body[:200]!r}")
    headers = {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"], "Content-Type": "application/json"}
    resp = await httpload.request(url, Request("POST", f"/api/rooms/{ROOM}/join", b"{}", headers))
    if resp.status != 200:
        raise RuntimeError(f"join: HTTP {resp.status} {resp.body[:200]!r}")
    return headers


def run(args: argparse.Namespace) -> dict[str, Any]:
    hub = start_hub(adapters=("realtime", "chat"), adapter_settings={"chat": f'channel_prefix = "{PREFIX}"'})
    try:
        base = hub.urls["REST chat"]
        ws_url = hub.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
        headers = asyncio.run(setup(base))
        subs = msg_subscriber.spawn(ws_url, PREFIX + ROOM, args.subscribers, args.messages)

        def make(i: int) -> Request:
            return Request("POST", f"/api/rooms/{ROOM}/send", json.dumps({"msg": msg_subscriber.tag(i)}).encode(), headers)

        def check(resp: httpload.Response) -> str | None:
            return None if resp.status == 200 and b'"success"' in resp.body else f"HTTP {resp.status}"

        cpu0 = cpu_seconds(hub.pid)
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        result = asyncio.run(httpload.load(base, make, args.messages, args.concurrency, check))
        sent_end = time.time()
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        report = msg_subscriber.finish(subs, args.drain_limit)
        cpu1 = cpu_seconds(hub.pid)
        hist = LatencyHistogram()
        hist.merge(report["hist"], report["max"])
        expected = result.ok * args.subscribers
        elapsed = result.elapsed_s
        out: dict[str, Any] = {
            "scenario": "chat", "messages": args.messages, "concurrency": args.concurrency, "subscribers": args.subscribers,
            "messages_per_s": round(result.ok / elapsed), "acknowledged": result.ok, "errors": len(result.errors),
            "latency_ms": httpload.latency_ms(hist),
            "request_latency_ms": httpload.latency_ms(result.hist),
            "deliveries": report["received"], "expected": expected, "lost": expected - report["received"],
            "drain_s": round(max(0.0, report["last"] - sent_end), 3),
            "elapsed_s": round(elapsed, 3), "server_cpu_s": round(cpu1 - cpu0, 2),
            "server_peak_rss_mb": round(rss_kib(hub.pid, "VmHWM") / 1024, 1),
            "client_cpu_s": round(report["cpu_s"] + (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime), 2),
        }
        out["saturated"] = "server" if out["server_cpu_s"] >= 0.85 * elapsed else "clients/requests in flight"
        if result.errors:
            out["first_error"] = result.errors[0]
        return out
    finally:
        hub.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--drain-limit", type=float, default=10.0, help="seconds the subscribers wait after the last send")
    print(json.dumps(run(p.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
