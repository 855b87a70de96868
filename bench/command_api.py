"""Command API benchmark: publishes per second through the signed API, one or 100 commands per request.

    python -m bench.command_api --per-request 1 --requests 3000 --concurrency 8
    python -m bench.command_api --per-request 100 --requests 300 --subscribers 100

Starts its own hub (`hub run`, ephemeral ports); requests are signed before the clock starts and
sent over `--concurrency` keep-alive HTTP/1.1 connections from this process; `--subscribers`
websocket subscribers of the channel (default 100, raw sockets, a separate process) count every
delivery. Prints one JSON line: requests/s, publishes/s, request latency p50/p99/max, deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import time
import urllib.parse
from typing import Any

from .common import LatencyHistogram, cpu_seconds, rss_kib, start_hub, start_profiler
from .protocols import PROJECT, SECRET

CHANNEL = "bench:api"


def signed_body(commands: list[dict[str, Any]]) -> bytes:
    data = json.dumps(commands, separators=(",", ":"))
    sign = hmac.new(SECRET.encode(), (PROJECT + data).encode(), hashlib.sha256).hexdigest()
    return urllib.parse.urlencode({"data": data, "sign": sign}).encode()


async def worker(host: str, port: int, bodies: asyncio.Queue, hist: LatencyHistogram, errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (f"POST /api/{PROJECT} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n").encode()
    try:
        while True:
            try:
                body = bodies.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            hist.add(time.perf_counter() - started)
            if b" 200 " not in status_line or b'"error": null' not in payload and b'"error":null' not in payload:
                errors.append((status_line + payload[:200]).decode(errors="replace"))
    finally:
        writer.close()


async def load(url: str, requests: int, per_request: int, concurrency: int) -> dict[str, Any]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    bodies: asyncio.Queue = asyncio.Queue()
    seq = 0
    for _ in range(requests):
        commands = []
        for _ in range(per_request):
            commands.append({"method": "publish", "params": {"channel": CHANNEL,
                                                             "data": {"t": 0, "s": seq, "p": "x" * 60}}})
            seq += 1
        bodies.put_nowait(signed_body(commands))
    hist = LatencyHistogram()
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(worker(host, int(port), bodies, hist, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"elapsed_s": elapsed, "hist": hist, "errors": errors}


def run_h11(args: argparse.Namespace) -> dict[str, Any]:
    """The same requests against a bare h11 server that answers without doing anything (bench/h11_hello.py)."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.h11_hello"], stdout=subprocess.PIPE, text=True)
    try:
        port = json.loads(proc.stdout.readline())["port"]
        cpu0 = cpu_seconds(proc.pid)
        result = asyncio.run(load(f"http://127.0.0.1:{port}", args.requests, args.per_request, args.concurrency))
        cpu1 = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    hist = result["hist"]
    return {
        "target": "h11", "scenario": "command_api", "per_request": args.per_request, "requests": args.requests,
        "concurrency": args.concurrency, "requests_per_s": round(args.requests / result["elapsed_s"]),
        "publishes_per_s": round(args.requests * args.per_request / result["elapsed_s"]),
        "latency_ms": {"p50": round(hist.percentile(50) * 1000, 2), "p99": round(hist.percentile(99) * 1000, 2),
                       "max": round(hist.max * 1000, 2)},
        "errors": len(result["errors"]), "server_cpu_s": round(cpu1 - cpu0, 2), "elapsed_s": round(result["elapsed_s"], 3),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "target", "hub") == "h11":
        return run_h11(args)
    hub = start_hub()
    try:
        base = hub.urls["command API"]
        subs = None
        total = args.requests * args.per_request
        if args.subscribers:
            ws_url = hub.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
            subs = subprocess.Popen([sys.executable, "-m", "bench.fanout_client", "--url", ws_url, "--n", str(args.subscribers),
                                     "--channel", CHANNEL, "--expect", str(total), "--sample", "1000000"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            json.loads(subs.stdout.readline())
        hub.profiler = start_profiler(hub.pid)  # BENCH_PROFILE: the hot phase only
        cpu0 = cpu_seconds(hub.pid)
        result = asyncio.run(load(base, args.requests, args.per_request, args.concurrency))
        cpu1 = cpu_seconds(hub.pid)
        hist = result["hist"]
        out: dict[str, Any] = {
            "scenario": "command_api", "per_request": args.per_request, "requests": args.requests,
            "concurrency": args.concurrency, "subscribers": args.subscribers,
            "requests_per_s": round(args.requests / result["elapsed_s"]),
            "publishes_per_s": round(total / result["elapsed_s"]),
            "latency_ms": {"p50": round(hist.percentile(50) * 1000, 2), "p99": round(hist.percentile(99) * 1000, 2),
                           "max": round(hist.max * 1000, 2)},
            "errors": len(result["errors"]), "server_cpu_s": round(cpu1 - cpu0, 2),
            "elapsed_s": round(result["elapsed_s"], 3),
        }
        if result["errors"]:
            out["first_error"] = result["errors"][0]
        if subs is not None:
            subs.stdin.write("done\n")
            subs.stdin.flush()
            report = json.loads(subs.stdout.readline())
            subs.wait(30)
            out["deliveries"] = report["received"]
            out["deliveries_expected"] = total * args.subscribers
            out["lost"] = out["deliveries_expected"] - report["received"]
        out["server_peak_rss_mb"] = round(rss_kib(hub.pid, "VmHWM") / 1024, 1)
        out["saturated"] = "server" if out["server_cpu_s"] >= 0.85 * result["elapsed_s"] else "client"
    finally:
        hub.stop()
    out["gc"] = hub.gc
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-request", type=int, default=1)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--target", default="hub", choices=["hub", "h11"], help="h11: a bare h11 server, the baseline")
    print(json.dumps(run(p.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
