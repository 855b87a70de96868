"""The cost of issue 24's defences, in one run: TLS (websocket connects/s and deliveries/s, plain vs TLS)
and the limiters (command API requests/s with the per-IP limits and the command rate on vs off).

    python -m bench.security                       # ~1 min: prints one JSON line per measurement, then ratios
    python -m bench.security --connections 500 --subscribers 100 --publishes 500 --requests 5000

Each hub is a `hub run` process of its own (bench.common.start_hub), loopback only. TLS uses a certificate
made for the run (trustme). Connects: `--connections` websockets opened `--concurrency` at a time, each
handshake + a Centrifugo `connect` with a JWT answered. Deliveries: `--subscribers` connections subscribed
to one channel, `--publishes` publications sent through the signed command API (100 per request) on the
same listener, until every subscriber has them all. Limiters: signed one-publish requests over 8 keep-alive
connections; "on" is every limit enabled for loopback (`limit_exempt = []`) with rates high enough that
nothing is refused, so the figure is the bookkeeping's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .command_api import signed_body
from .common import cpu_seconds, start_hub
from .protocols import PROJECT, sdk_token

CHANNEL = "bench:security"
LIMITS_ON = ("rate_limit = 1000000\nrate_limit_burst = 1000000\nmax_connections_per_ip = 100000\n"
             "limit_exempt = []\n")
LIMITS_OFF = "rate_limit = 0\nmax_connections_per_ip = 0\n"


def make_cert(tmp: Path) -> tuple[str, str, ssl.SSLContext]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp / "server.pem", tmp / "server.key"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return str(cert_file), str(key_file), ctx


def _frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n) if n < 65536
                            else bytes([0x80 | 127]) + struct.pack("!Q", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WS:
    """A minimal asyncio websocket client (server frames unmasked, text), plain or TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, ctx: ssl.SSLContext | None) -> WS:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx, limit=1 << 22)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /connection/websocket HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:200])
        return cls(reader, writer)

    async def send(self, text: str) -> None:
        self.writer.write(_frame(text.encode()))
        await self.writer.drain()

    async def recv(self) -> bytes:
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return await self.reader.readexactly(n)

    async def connect(self, user: str, subscribe: bool = False) -> None:
        cmds = [json.dumps({"id": 1, "connect": {"token": sdk_token(user)}})]
        if subscribe:
            cmds.append(json.dumps({"id": 2, "subscribe": {"channel": CHANNEL}}))
        await self.send("\n".join(cmds))
        replies = 0
        while replies < len(cmds):
            for line in (await self.recv()).split(b"\n"):
                if line.startswith(b'{"id"'):
                    if b'"error"' in line[:40]:
                        raise RuntimeError(line[:200])
                    replies += 1

    def close(self) -> None:
        self.writer.close()


async def connects(url: str, ctx: ssl.SSLContext | None, n: int, concurrency: int) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    opened: list[WS] = []

    async def one(i: int) -> None:
        async with sem:
            ws = await WS.open(url, ctx)
            await ws.connect(f"c{i}")
            opened.append(ws)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    for ws in opened:
        ws.close()
    return {"connects": n, "elapsed_s": round(elapsed, 3), "connects_per_s": round(n / elapsed)}


async def http_worker(url: str, ctx: ssl.SSLContext | None, bodies: list[bytes], errors: list[str]) -> None:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
    head = (f"POST /api/{PROJECT} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n").encode()
    try:
        while bodies:
            body = bodies.pop()
            writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if b" 200 " not in status:
                errors.append(status.decode(errors="replace"))
    finally:
        writer.close()


async def requests(url: str, ctx: ssl.SSLContext | None, n: int, per_request: int, concurrency: int) -> dict[str, Any]:
    seq = iter(range(1 << 40))
    bodies = [signed_body([{"method": "publish", "params": {"channel": CHANNEL, "data": {"s": next(seq)}}}
                           for _ in range(per_request)]) for _ in range(n)]
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(http_worker(url, ctx, bodies, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": n, "elapsed_s": round(elapsed, 3), "requests_per_s": round(n / elapsed), "errors": len(errors)}


async def deliveries(url: str, ctx: ssl.SSLContext | None, subscribers: int, publishes: int, pid: int) -> dict[str, Any]:
    subs = []
    for i in range(subscribers):
        ws = await WS.open(url, ctx)
        await ws.connect(f"s{i}", subscribe=True)
        subs.append(ws)
    marker = b'"pub"'

    async def count(ws: WS) -> int:
        got = 0
        while got < publishes:
            got += (await ws.recv()).count(marker)
        return got

    cpu0, started = cpu_seconds(pid), time.perf_counter()  # the subscribers' handshakes are not counted
    counting = asyncio.gather(*(count(ws) for ws in subs))
    sent = await requests(url, ctx, publishes // 100, 100, 4)
    got = await asyncio.wait_for(counting, 60)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu0
    for ws in subs:
        ws.close()
    total = sum(got)
    return {"subscribers": subscribers, "publishes": publishes, "deliveries": total, "errors": sent["errors"],
            "elapsed_s": round(elapsed, 3), "deliveries_per_s": round(total / elapsed), "server_cpu_s": round(cpu, 2)}


def measure(label: str, realtime: str, command_api: str, scenario: Any) -> dict[str, Any]:
    hub = start_hub(adapter_settings={"realtime": realtime, "command_api": command_api})
    try:
        url = hub.urls["websocket clients"]
        cpu0 = cpu_seconds(hub.pid)
        result = asyncio.run(scenario(url, hub.pid))
        result.setdefault("server_cpu_s", round(cpu_seconds(hub.pid) - cpu0, 2))
        result["saturated"] = "server" if result["server_cpu_s"] >= 0.85 * result["elapsed_s"] else "client"
        return {"measure": label, **result}
    finally:
        hub.stop()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="hub-bench-tls-") as tmp:
        cert, key, ctx = make_cert(Path(tmp))
        tls = f'tls_cert = "{cert}"\ntls_key = "{key}"\n'
        for label, keys, client_ctx in (("plain", "", None), ("tls", tls, ctx)):
            out.append(measure(f"connects {label}", "command_rate_limit = 0\n" + keys, "",
                               lambda url, pid, c=client_ctx: connects(url, c, args.connections, args.concurrency)))
            out.append(measure(f"deliveries {label}", "command_rate_limit = 0\n" + keys, "",
                               lambda url, pid, c=client_ctx: deliveries(url, c, args.subscribers, args.publishes, pid)))
    for i in range(args.repeat):  # off and on alternate: the machine's drift hits both alike
        for label, keys, rate in (("limits off", LIMITS_OFF, 0), ("limits on", LIMITS_ON, 1000000)):
            out.append(measure(f"command API {label}", keys + f"command_rate_limit = {rate}\n", keys,
                               lambda url, pid: requests(url, None, args.requests, 1, 8)) | {"round": i + 1})
    return out


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    """Throughput ratios, and the server's CPU seconds per operation (less noisy when the clients saturate);
    the repeated command API rounds are summed (CPU) and their rates taken as medians."""
    by = {r["measure"]: dict(r) for r in results if "round" not in r}
    for label in ("command API limits on", "command API limits off"):
        rounds = [r for r in results if r["measure"] == label]
        by[label] = {"requests_per_s": _median([r["requests_per_s"] for r in rounds]),
                     "server_cpu_s": sum(r["server_cpu_s"] for r in rounds), "requests": sum(r["requests"] for r in rounds)}
    out = {}
    for name, one, a, b, rate, count in (
            ("connects", "connect", "connects tls", "connects plain", "connects_per_s", "connects"),
            ("deliveries", "delivery", "deliveries tls", "deliveries plain", "deliveries_per_s", "deliveries"),
            ("command API requests", "command API request", "command API limits on", "command API limits off",
             "requests_per_s", "requests")):
        which = "tls ÷ plain" if "tls" in a else "limits on ÷ off"
        out[f"{name}/s {which}"] = round(by[a][rate] / by[b][rate], 2)
        cpu_a, cpu_b = by[a]["server_cpu_s"] / by[a][count], by[b]["server_cpu_s"] / by[b][count]
        out[f"server CPU per {one} {which}"] = round(cpu_a / cpu_b, 2) if cpu_b else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--publishes", type=int, default=5000, help="a multiple of 100")
    p.add_argument("--repeat", type=int, default=3, help="rounds of the command API limits off / on")
    p.add_argument("--requests", type=int, default=5000)
    args = p.parse_args(argv)
    results = run(args)
    for r in results:
        print(json.dumps(r))
    print(json.dumps({"ratios": ratios(results)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
