"""Many channels: N subscribers, each alone on a channel of its own, M publications round-robin over the channels.

    python -m bench.channels -n 10000 -m 100000 --target hub        # signed command API, 100 publishes per request
    python -m bench.channels -n 10000 -m 100000 --target mosquitto  # MQTT QoS 0, one topic per subscriber
    python -m bench.channels -n 10000 -m 100000 --target redis      # Redis pub/sub, one channel per subscriber

The subscribers (2 processes, raw sockets: original-protocol websockets, MQTT or RESP) count the
publications they get; the publisher sends as fast as the server takes them (the hub: `--concurrency`
keep-alive connections to the signed API, `--per-request` publish commands per request, bodies signed
before the clock starts; Mosquitto and Redis: one pipelined connection, 100 publications per write).
Prints one JSON line: deliveries/s (from the first publish to the last delivery), lost, server CPU and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import sys
import time
from typing import Any

from .common import cpu_seconds, gc_between, rss_kib, start_hub, start_profiler, sys_cpu_seconds
from .fanout import spawn_clients


def channel_names(base: str, n: int, procs: int) -> list[str]:
    """The channels the subscriber processes of bench/fanout_client.py --per-conn take: <base><prefix><i>."""
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    return [f"{base}p{p}s{i}" for p, count in enumerate(per) for i in range(count)]


def data(seq: int, size: int) -> dict[str, Any]:
    return {"t": 0, "s": seq, "p": "x" * max(0, size - 20)}


def hub_bodies(names: list[str], messages: int, per_request: int, size: int) -> list[bytes]:
    """The signed API request bodies, `per_request` publish commands each (signed before the clock starts)."""
    from .command_api import signed_body

    out = []
    for first in range(0, messages, per_request):
        commands = [{"method": "publish", "params": {"channel": names[seq % len(names)], "data": data(seq, size)}}
                    for seq in range(first, min(messages, first + per_request))]
        out.append(signed_body(commands))
    return out


async def publish_hub(url: str, signed: list[bytes], concurrency: int) -> int:
    """Send the signed API requests over `concurrency` keep-alive connections; returns how many failed."""
    from .command_api import worker
    from .common import LatencyHistogram

    bodies: asyncio.Queue = asyncio.Queue()
    for body in signed:
        bodies.put_nowait(body)
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    errors: list[str] = []
    await asyncio.gather(*(worker(host, int(port), bodies, LatencyHistogram(), errors) for _ in range(concurrency)))
    if errors:
        print(f"{len(errors)} failed requests; first: {errors[0][:300]}", file=sys.stderr)
    return len(errors)


def publish_stream(host: str, port: int, packets: list[bytes], hello: bytes = b"", until: bytes = b"",
                   expect_replies: int = 0) -> None:
    """One blocking connection: `hello`, then the packets 100 per write; reads (and discards) replies as it goes."""
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hello:
        sock.sendall(hello)
        if until:
            got = b""
            while until not in got:
                got += sock.recv(4096)
    replies = 0
    sock.setblocking(False)
    for i in range(0, len(packets), 100):
        chunk = b"".join(packets[i:i + 100])
        view = memoryview(chunk)
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:
                time.sleep(0.0005)
            try:
                replies += sock.recv(1 << 20).count(b"\r\n")
            except BlockingIOError:
                pass
    sock.setblocking(True)
    sock.settimeout(60)
    while replies < expect_replies:
        got = sock.recv(1 << 20)
        if not got:
            break
        replies += got.count(b"\r\n")
    sock.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    target = args.target
    base = {"hub": "bench:c", "mosquitto": "bench/c/", "redis": "bench.c."}[target]
    names = channel_names(base, args.subscribers, args.procs)
    server = None
    if target == "hub":
        hub = start_hub(queue=4 << 20)
        pid, stop = hub.pid, hub.stop
        url = hub.urls["websocket clients"].replace("http://", "ws://") + "/connection/websocket"
        protocol = "legacy"
    else:
        from .peers import start_peer

        server = start_peer(target)
        pid, stop, url, protocol = server.pid, server.stop, server.url, server.protocol
    try:
        base_rss = rss_kib(pid)
        clients = spawn_clients(url, args.subscribers, args.procs, [protocol], args.messages // args.subscribers, 1_000_000,
                                ("--per-conn", "--hold"), channel=base)
        for c in clients:
            if not c.stdout.readline():
                raise RuntimeError("a client process failed to start")
        if target == "hub":
            hub.profiler = start_profiler(pid)  # BENCH_PROFILE: the hot phase only
        if target == "hub":
            signed = hub_bodies(names, args.messages, args.per_request, args.size)
        cpu0, sys0 = cpu_seconds(pid), sys_cpu_seconds(pid)
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.time()
        errors = 0
        if target == "hub":
            errors = asyncio.run(publish_hub(hub.urls["command API"], signed, args.concurrency))
        else:
            host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
            payloads = [json.dumps(data(i, args.size), separators=(",", ":")).encode() for i in range(args.messages)]
            if target == "mosquitto":
                from .mqtt import PINGREQ_PACKET, connect_packet, publish_packet

                packets = [publish_packet(names[i % len(names)], p) for i, p in enumerate(payloads)]
                publish_stream(host, int(port), packets + [PINGREQ_PACKET], connect_packet("bench-channels-pub"), b"\x20")
            else:
                packets = []
                for i, p in enumerate(payloads):
                    ch = names[i % len(names)].encode()
                    packets.append(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(ch), ch, len(p), p))
                publish_stream(host, int(port), packets, expect_replies=len(packets))
        end = time.time()
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        for c in clients:
            c.stdin.write("done\n")
            c.stdin.flush()
        reports = [json.loads(c.stdout.readline()) for c in clients]
        cpu1, sys1 = cpu_seconds(pid), sys_cpu_seconds(pid)  # the subscribers are still connected (--hold)
        for c in clients:
            c.stdin.close()
            c.wait(30)
        peak = server.peak_rss_kib() if server is not None else rss_kib(pid, "VmHWM")
    finally:
        stop()
    gc_pauses = hub.gc if target == "hub" else None
    received = sum(r["received"] for r in reports)
    last = max(r["last"] for r in reports)
    elapsed = max(last - start, 1e-9)
    return {
        "target": target, "scenario": "channels", "subscribers": args.subscribers, "channels": len(names),
        "messages": args.messages, "per_request": args.per_request if target == "hub" else None,
        "deliveries": received, "expected": args.messages, "lost": args.messages - received, "errors": errors,
        "deliveries_per_s": round(received / elapsed), "elapsed_s": round(elapsed, 3),
        "publish_s": round(end - start, 3), "drain_s": round(max(0.0, last - end), 3),
        "server_cpu_s": round(cpu1 - cpu0, 2), "server_sys_cpu_s": round(sys1 - sys0, 2), "server_peak_rss_mb": round(peak / 1024, 1),
        "baseline_rss_mb": round(base_rss / 1024, 1), "client_cpu_s": round(sum(r["cpu_s"] for r in reports), 2),
        "client_hot_cpu_s": round(sum(r.get("hot_cpu_s", 0.0) for r in reports), 2),
        "publisher_cpu_s": round(own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime, 2),
        "server_closed": sum(r["closed"] for r in reports),
        "saturated": "server" if cpu1 - cpu0 >= 0.85 * elapsed else "clients/publisher",
        **({"gc": gc_pauses} if gc_pauses else {}),
        # the collector's pauses from the first publish to the last delivery (the rest: connecting and disconnecting)
        **({"gc_hot": gc_between(hub.gc_pauses, start, last)} if target == "hub" else {}),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", "-n", type=int, default=10_000, help="subscribers, one channel each")
    p.add_argument("--messages", "-m", type=int, default=100_000, help="publications, round-robin over the channels")
    p.add_argument("--per-request", type=int, default=100, help="hub: publish commands per API request")
    p.add_argument("--concurrency", type=int, default=4, help="hub: API connections in flight")
    p.add_argument("--size", type=int, default=100, help="bytes of publication data")
    p.add_argument("--procs", type=int, default=2, help="subscriber processes")
    p.add_argument("--target", default="hub", choices=["hub", "mosquitto", "redis"])
    print(json.dumps(run(p.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
