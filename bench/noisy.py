"""Noisy neighbour (issue 27): 50 receivers of 100 publications/s, delivery latency before and during floods.

    .venv/bin/python -m bench.noisy                      # baseline, then the three floods, one table
    .venv/bin/python -m bench.noisy --receivers 50 --rate 100 --commands 100000 --phase 8

Starts its own `hub run` (bench config). One process holds the receivers and the publisher (latency is
publish-to-receive on one clock); each flood runs in a process of its own: a client of the original
protocol that sends `--commands` single-command frames (ping, or presence) as fast as it can, and either
reads the replies as fast as it can or never reads them. Prints p50/p99/max per phase and the ratio of
each p99 to the baseline's; the target is a ratio within 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import trio

from protocols.realtime.signing import connect_token

from .common import LatencyHistogram, start_hub

PROJECT, SECRET, CHANNEL = "bench", "bench-secret", "noisy:room"
# Presence on, as in the measurement: a presence reply lists all 50 receivers (about 8 KB).
NAMESPACE = "\n[projects.bench.namespaces.noisy]\npublish = true\nanonymous = true\npresence = true\njoin_leave = false\n"
MESSAGE = b'{"method": "message"'  # the original server's JSON (Tornado's json.dumps: ", " and ": ")
FLOODS = [("ping, reading", "ping", True), ("presence, reading", "presence", True),
          ("presence, not reading", "presence", False)]


def _frame(payload: bytes, opcode: int = 1) -> bytes:
    from .wsclient import masked_frame

    return masked_frame(payload, opcode)


class Client:
    """A minimal original-protocol websocket client on a Trio stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream, self.buf = stream, bytearray()

    @classmethod
    async def open(cls, url: str, user: str) -> Client:
        hostport = url.split("//", 1)[1]
        host, port = hostport.rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(f"GET /connection/websocket HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        client = cls(stream)
        while b"\r\n\r\n" not in client.buf:
            client.buf += await stream.receive_some(65536)
        client.buf = client.buf[client.buf.index(b"\r\n\r\n") + 4:]
        ts = str(int(time.time()))
        await client.send({"method": "connect", "params": {"project": PROJECT, "user": user, "timestamp": ts, "info": "",
                                                           "token": connect_token(SECRET, PROJECT, user, ts, "")}})
        await client.reply()
        await client.send({"method": "subscribe", "params": {"channel": CHANNEL}})
        await client.reply()
        return client

    async def send(self, obj: Any) -> None:
        await self.stream.send_all(_frame(json.dumps(obj).encode()))

    async def frames(self):  # noqa: ANN201 - an async generator of payloads
        while True:
            buf = self.buf
            while len(buf) >= 2:
                n, pos = buf[1] & 0x7F, 2
                if n == 126:
                    n, pos = int.from_bytes(buf[2:4], "big"), 4
                elif n == 127:
                    n, pos = int.from_bytes(buf[2:10], "big"), 10
                if len(buf) < pos + n:
                    break
                payload = bytes(buf[pos:pos + n])
                opcode = buf[0] & 0x0F
                del buf[:pos + n]
                if opcode == 8:
                    return
                yield payload
            data = await self.stream.receive_some(65536)
            if not data:
                return
            buf += data

    async def reply(self) -> Any:
        async for payload in self.frames():
            data = json.loads(payload)
            if isinstance(data, list):
                return data
        raise EOFError


async def measure(url: str, receivers: int, rate: int, phases: list[tuple[str, str | None, bool]], seconds: float,
                  commands: int) -> list[tuple[str, LatencyHistogram, str]]:
    clients = [await Client.open(url, f"r{i}") for i in range(receivers)]
    publisher = await Client.open(url, "publisher")
    current: list[LatencyHistogram | None] = [None]
    results = []

    async def receive(client: Client) -> None:
        async for payload in client.frames():
            if payload.startswith(MESSAGE):
                sent = json.loads(payload)["body"]["data"]["t"]
                hist = current[0]
                if hist is not None:
                    hist.add(time.perf_counter() - sent)

    async def publish() -> None:
        interval = 1 / rate
        next_at = time.perf_counter()
        while True:
            await publisher.send({"method": "publish", "params": {"channel": CHANNEL, "data": {"t": time.perf_counter()}}})
            next_at += interval
            await trio.sleep(max(0.0, next_at - time.perf_counter()))

    async def drain_publisher() -> None:
        async for _ in publisher.frames():
            pass

    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(receive, client)
        nursery.start_soon(drain_publisher)
        nursery.start_soon(publish)
        await trio.sleep(1)  # warm-up
        for title, kind, reading in phases:
            hist = LatencyHistogram()
            flood = None
            if kind is not None:
                flood = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "bench.noisy", "flood", "--url", url, "--kind", kind, "--commands", str(commands)]
                    + ([] if reading else ["--no-read"]), stdout=subprocess.PIPE)
                first = await flood.stdout.receive_some(65536)  # "connected": measure from its first command on
                assert first.startswith(b"connected"), first
            current[0] = hist
            started = time.perf_counter()
            out = first[len(b"connected\n"):] if flood is not None else b""
            with trio.move_on_after(seconds):
                if flood is None:
                    await trio.sleep_forever()
                # Measured while the flood lasts: until it has everything back (it then prints and exits) or the
                # phase ends, so a flood that finishes early is not diluted by quiet time after it.
                while chunk := await flood.stdout.receive_some(65536):
                    out += chunk
            current[0] = None
            note = ""
            if flood is not None:
                measured = time.perf_counter() - started
                if flood.returncode is None and b"replies read" not in out:
                    flood.send_signal(signal.SIGINT)  # the flood prints what it got back, then exits
                    with trio.move_on_after(15):
                        while chunk := await flood.stdout.receive_some(65536):
                            out += chunk
                await flood.wait()
                note = f"{out.decode().strip()}; measured {measured:.1f} s"
            results.append((title, hist, note))
        nursery.cancel_scope.cancel()
    return results


async def flood(url: str, kind: str, commands: int, read: bool) -> None:
    """Send `commands` single-command frames as fast as possible; print what came back. Runs at nice 10:
    on a 2-core machine it stands for a client on another machine, not for load on the hub's cores."""
    os.nice(10)
    client = await Client.open(url, f"flood-{kind}")
    if not read:
        import socket

        client.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    print("connected", flush=True)
    cmd = {"method": "ping", "params": {}} if kind == "ping" else {"method": "presence", "params": {"channel": CHANNEL}}
    frame = _frame(json.dumps(cmd).encode())
    replies = [0]
    closed: list[str] = []

    marker = b'"method": "ping"' if kind == "ping" else b'"method": "presence"'

    async def reader() -> None:
        # Drain as fast as possible without parsing frames (this client's CPU is not what is measured);
        # replies are counted by their method marker (a marker split across two reads is found in tail + data).
        tail = bytes(client.buf)
        while data := await client.stream.receive_some(1 << 18):
            chunk = tail + data
            replies[0] += chunk.count(marker)
            tail = chunk[-len(marker) + 1:]  # shorter than a marker: nothing in it was counted
        closed.append("closed")

    started = time.perf_counter()
    sent_in = 0.0

    async def stop_on_sigint(scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stop_on_sigint, nursery.cancel_scope)
            if read:
                nursery.start_soon(reader)
            try:
                for first in range(0, commands, 1000):
                    await client.stream.send_all(frame * min(1000, commands - first))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                closed.append("closed while sending")
            sent_in = time.perf_counter() - started
            if read:
                with trio.move_on_after(30):
                    while replies[0] < commands and not closed:
                        await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    finally:
        print(f"{commands} sent in {sent_in or time.perf_counter() - started:.1f} s, "
              f"{replies[0]} replies read{', ' + closed[0] if closed else ''}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noisy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    run = sub.add_parser("flood")
    run.add_argument("--url", required=True)
    run.add_argument("--kind", choices=("ping", "presence"), required=True)
    run.add_argument("--commands", type=int, default=100_000)
    run.add_argument("--no-read", action="store_true")
    parser.add_argument("--receivers", type=int, default=50)
    parser.add_argument("--rate", type=int, default=100, help="publications per second")
    parser.add_argument("--commands", type=int, default=100_000, help="commands per flood")
    parser.add_argument("--phase", type=float, default=8.0, help="seconds measured per phase")
    parser.add_argument("--floods", default="1,2,3", help="which floods, in order (1 ping reading, 2 presence reading, "
                        "3 presence not reading, 0 none: another baseline)")
    args = parser.parse_args(argv)
    if args.mode == "flood":
        trio.run(flood, args.url, args.kind, args.commands, not args.no_read)
        return 0
    hub = start_hub(adapters=("realtime",), extra=NAMESPACE)
    try:
        phases: list[tuple[str, str | None, bool]] = [("no flood", None, True)]
        phases += [FLOODS[int(n) - 1] if n != "0" else ("no flood", None, True) for n in args.floods.split(",")]
        results = trio.run(measure, hub.urls["websocket clients"], args.receivers, args.rate, phases, args.phase, args.commands)
    finally:
        hub.stop()
    base = results[0][1].percentile(99) or 1e-9
    print(f"noisy neighbour: {args.receivers} receivers, {args.rate} publications/s, floods of {args.commands} commands; "
          f"{args.phase:g} s per phase (machine shared: compare ratios, not absolute times)")
    print(f"{'phase':<24}{'deliveries':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p99 ratio':>11}  flood client")
    for title, hist, note in results:
        p99 = hist.percentile(99)
        print(f"{title:<24}{hist.total:>11}{hist.percentile(50) * 1000:>9.1f}{p99 * 1000:>9.1f}{hist.max * 1000:>9.1f}"
              f"{p99 / base:>10.1f}x  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
