"""JSON-RPC benchmark: `POST /execute` requests/s running the `hub.publish` action, with request latency.

    python -m bench.jsonrpc --requests 2000 --concurrency 8 --subscribers 10

Starts a hub with the realtime and jsonrpc adapters, registers the first user with `POST /register`
(which also answers with a token, as `POST /auth` does), then sends
`{"type": "request", "action": "hub.publish", "args": {"channel", "data"}}` with
`Authorization: Bearer` over keep-alive connections. Websocket subscribers (a separate process)
count every publication and measure request → delivery latency. Prints one JSON line.
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

CHANNEL = "bench:rpc"
USER, PASSWORD = "bencher", "bench-password-1"


async def token(url: str) -> str:
    """A JWT from `POST /register` (open while the fresh hub has no user), else from `POST /auth`."""
    creds = json.dumps({"username": USER, "password": PASSWORD}).encode()
    headers = {"Content-Type": "application/json"}
    resp = await httpload.request(url, Request("POST", "/register", creds, headers))
    if resp.status != 200:
        resp = await httpload.request(url, Request("POST", "/auth", creds, headers))
    if resp.status != 200 or not isinstance(resp.json(), dict) or not resp.json().get("token"):
        raise RuntimeError(f"/register, /auth: HTTP {resp.status} {resp.body[:200]!r}")
    return resp.json()["token"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    hub = start_hub(adapters=("realtime", "jsonrpc"))
    try:
        base = hub.urls["JSON-RPC"]
        ws_url = hub.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
        jwt = asyncio.run(token(base))
        headers = {"Authorization": f"Bearer {jwt}", "Content-Type": "application/json"}
        subs = msg_subscriber.spawn(ws_url, CHANNEL, args.subscribers, args.requests) if args.subscribers else None

        def make(i: int) -> Request:
            body = {"type": "request", "action": "hub.publish",
                    "args": {"channel": CHANNEL, "data": {"tag": msg_subscriber.tag(i)}}}
            return Request("POST", "/execute", json.dumps(body).encode(), headers)

        def check(resp: httpload.Response) -> str | None:
            if resp.status != 200:
                return f"HTTP {resp.status}"
            try:
                errors = resp.json()["response"]["errors"]
            except (ValueError, KeyError, TypeError):
                return "not a JSON-RPC response"
            return f"errors {errors}" if errors else None

        cpu0 = cpu_seconds(hub.pid)
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        result = asyncio.run(httpload.load(base, make, args.requests, args.concurrency, check))
        sent_end = time.time()
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        report = msg_subscriber.finish(subs, args.drain_limit) if subs else None
        cpu1 = cpu_seconds(hub.pid)
        elapsed = result.elapsed_s
        out: dict[str, Any] = {
            "scenario": "jsonrpc", "action": "hub.publish", "requests": args.requests, "concurrency": args.concurrency,
            "subscribers": args.subscribers, "requests_per_s": round(result.ok / elapsed), "ok": result.ok,
            "errors": len(result.errors), "latency_ms": httpload.latency_ms(result.hist),
            "elapsed_s": round(elapsed, 3), "server_cpu_s": round(cpu1 - cpu0, 2),
            "server_peak_rss_mb": round(rss_kib(hub.pid, "VmHWM") / 1024, 1),
            "client_cpu_s": round((report["cpu_s"] if report else 0) + (own1.ru_utime + own1.ru_stime)
                                  - (own0.ru_utime + own0.ru_stime), 2),
        }
        if report is not None:
            hist = LatencyHistogram()
            hist.merge(report["hist"], report["max"])
            expected = result.ok * args.subscribers
            out.update({"deliveries": report["received"], "expected": expected, "lost": expected - report["received"],
                        "delivery_latency_ms": httpload.latency_ms(hist),
                        "drain_s": round(max(0.0, report["last"] - sent_end), 3)})
        out["saturated"] = "server" if out["server_cpu_s"] >= 0.85 * elapsed else "clients/requests in flight"
        if result.errors:
            out["first_error"] = result.errors[0]
        return out
    finally:
        hub.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--drain-limit", type=float, default=10.0, help="seconds the subscribers wait after the last request")
    print(json.dumps(run(p.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
