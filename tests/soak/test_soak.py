"""`make soak` (slow): `hub run` through 20,000 websocket connect/subscribe/close cycles (RSS comes back to
within 10% of where it started), then a client that never reads while 50,000 messages are published: it is
disconnected as slow, and the fast clients lose nothing."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trio

from hub.runtime import READY, listener_urls

from ..conftest import connect_params
from ..rawws import RawWebSocket, client_frame

CONFIG = """
[hub]
shutdown_grace = 1.0
[projects.development]
secret = "secret"
[projects.development.namespaces.public]
publish = true
join_leave = false
presence = false
[realtime]
port = 0
# the publisher is a load generator sending 50,000 commands on one connection, not a client the rate is for
command_rate_limit = 0
[stats]
port = 0
"""
CYCLES = 20_000
WORKERS = 40
MESSAGES = 50_000
FAST = 4


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def start_hub(tmp_path: Path, config: str = CONFIG, keep: tuple[str, ...] = ("realtime", "stats")
              ) -> tuple[subprocess.Popen, dict[str, str]]:
    """`hub run` on `config` with every adapter but `keep` disabled; its process and listener URLs once READY."""
    from hub.adapters import adapter_registry

    others = [n for n in adapter_registry() if n not in keep]
    cfg = tmp_path / "hub.toml"
    cfg.write_text(config + "".join(f"[{n}]\nenabled = false\n" for n in others))
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    text = ""
    deadline = time.monotonic() + 30
    while READY not in text and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        text += line
    assert READY in text, text
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep the pipe drained
    return proc, listener_urls(text)


async def cycle(url: str, n: int) -> None:
    ws = await RawWebSocket.connect(url)
    try:
        await ws.send_json({"method": "connect", "params": connect_params(f"u{n % 500}")})
        assert (await ws.recv_reply())[0]["error"] is None
        await ws.send_json({"method": "subscribe", "params": {"channel": f"public:c{n % 100}"}})
        assert (await ws.recv_reply())[0]["error"] is None
        await ws.stream.send_all(client_frame("\x03\xe8", opcode=8))
        with trio.move_on_after(5):
            while True:
                opcode, _ = await ws.recv()
                if opcode == 8:
                    break
    except EOFError:
        pass
    finally:
        await ws.aclose()


async def cycles(url: str, total: int) -> None:
    counter = iter(range(total))

    async def worker() -> None:
        for n in counter:
            await cycle(url, n)

    async with trio.open_nursery() as nursery:
        for _ in range(WORKERS):
            nursery.start_soon(worker)


async def metric(stats_url: str, name: str) -> float:
    host, port = stats_url.rsplit("//", 1)[1].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    raw = b""
    while data := await stream.receive_some(65536):
        raw += data
    for line in raw.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.slow
async def test_soak(tmp_path: Path):
    proc, urls = start_hub(tmp_path)
    url = urls["websocket clients"].replace("http", "ws") + "/connection/websocket"
    try:
        await cycles(url, 1000)  # warm-up: imports, caches and the allocator's first arenas
        start = rss_kib(proc.pid)
        started = time.monotonic()
        await cycles(url, CYCLES)
        took = time.monotonic() - started
        end = rss_kib(proc.pid)
        print(f"{CYCLES} cycles in {took:.1f} s; RSS {start} KiB -> {end} KiB ({(end - start) / start:+.1%})")
        assert end <= start * 1.10, (start, end)

        # A never-reading subscriber beside fast ones while 50,000 messages are published.
        slow = await RawWebSocket.connect(url)
        slow.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await slow.send_json({"method": "connect", "params": connect_params("slow")})
        await slow.recv_reply()
        await slow.send_json({"method": "subscribe", "params": {"channel": "public:soak"}})
        await slow.recv_reply()
        fast = []
        for i in range(FAST):
            ws = await RawWebSocket.connect(url)
            await ws.send_json({"method": "connect", "params": connect_params(f"fast{i}")})
            await ws.recv_reply()
            await ws.send_json({"method": "subscribe", "params": {"channel": "public:soak"}})
            await ws.recv_reply()
            fast.append(ws)
        received = [0] * FAST

        async def reader(i: int, ws: RawWebSocket) -> None:
            while received[i] < MESSAGES:
                opcode, payload = await ws.recv()
                data = json.loads(payload)
                if isinstance(data, dict) and data.get("method") == "message":
                    assert data["body"]["data"]["n"] == received[i], "out of order or lost"
                    received[i] += 1

        async def publisher(ws: RawWebSocket) -> None:
            for first in range(0, MESSAGES, 100):
                await ws.send_json([{"method": "publish", "params": {"channel": "public:soak", "data": {"n": n, "pad": "x" * 64}}}
                                    for n in range(first, first + 100)])

        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                for i, ws in enumerate(fast):
                    nursery.start_soon(reader, i, ws)
                nursery.start_soon(publisher, fast[0])
        assert received == [MESSAGES] * FAST
        slow_disconnects = await metric(urls["stats API"], "hub_slow_disconnects_total")
        assert slow_disconnects >= 1
        print(f"fast clients: {received}; slow disconnects: {slow_disconnects:.0f}")
    finally:
        proc.send_signal(signal.SIGTERM)
        await trio.to_thread.run_sync(proc.wait, 15)
        assert proc.returncode == 0
