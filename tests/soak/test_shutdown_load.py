"""Slow: `hub run` with 10,000 websocket connections open (each connected with a token) exits 0 within
`shutdown_grace` + 1 s of SIGTERM. Half the clients read and close when told, half never read, so the hub
drains what it can and gives up on the rest when the grace ends."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
import trio

from ..conftest import connect_params
from ..rawws import RawWebSocket, client_frame
from .test_soak import rss_kib
from .test_soak import start_hub as start_soak_hub

CONNECTIONS = 10_000
GRACE = 2.0
OPENERS = 100


CONFIG = f"""
[hub]
shutdown_grace = {GRACE}
[projects.development]
secret = "secret"
[realtime]
port = 0
max_connections = 20000
"""


def start_hub(tmp_path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    return start_soak_hub(tmp_path, CONFIG, keep=("realtime",))


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_all(url: str, count: int) -> list[RawWebSocket]:
    out: list[RawWebSocket] = []
    counter = iter(range(count))

    async def opener() -> None:
        for n in counter:
            ws = await RawWebSocket.connect(url)
            await ws.send_json({"method": "connect", "params": connect_params(f"u{n % 1000}")})
            assert (await ws.recv_reply())[0]["error"] is None
            out.append(ws)

    async with trio.open_nursery() as nursery:
        for _ in range(OPENERS):
            nursery.start_soon(opener)
    return out


async def answer_close(ws: RawWebSocket, told: list[int]) -> None:
    """A well-behaved client: reads until the server closes, answers a close frame, closes its socket."""
    try:
        while True:
            opcode, _ = await ws.recv()
            if opcode == 8:
                told.append(1)
                await ws.stream.send_all(client_frame("", opcode=8))
                break
    except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
        told.append(1)
    finally:
        await ws.aclose()


@pytest.mark.slow
async def test_sigterm_with_10000_connections_exits_within_grace(tmp_path: Path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CONNECTIONS + 1000:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * CONNECTIONS), hard))
        except (ValueError, OSError):
            pytest.skip(f"needs {CONNECTIONS + 1000} file descriptors, the limit is {soft}")
    proc, urls = start_hub(tmp_path)
    url = urls["websocket clients"].replace("http", "ws") + "/connection/websocket"
    try:
        with trio.fail_after(240):
            sockets = await open_all(url, CONNECTIONS)
        assert len(sockets) == CONNECTIONS
        rss = rss_kib(proc.pid)
        told: list[int] = []
        readers = sockets[::2]
        async with trio.open_nursery() as nursery:
            for ws in readers:
                nursery.start_soon(answer_close, ws, told)
            await trio.sleep(0.2)
            cpu_before = process_cpu(proc.pid)
            load = os.getloadavg()[0] / (os.cpu_count() or 1)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, status, usage = await trio.to_thread.run_sync(os.wait4, proc.pid, 0)
            took = time.monotonic() - started
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime - cpu_before
            with trio.move_on_after(10):
                while len(told) < len(readers):
                    await trio.sleep(0.05)
        print(f"\n{CONNECTIONS} connections ({rss // 1024} MiB RSS): SIGTERM to exit {took:.2f} s (grace {GRACE} s), "
              f"hub CPU in that time {cpu:.2f} s, load {load:.1f} per core; {len(told)}/{len(readers)} reading clients closed")
        assert code == 0
        assert cpu <= GRACE + 1.0  # what the hub itself spends, whatever else runs on the machine
        # The target is grace + 1 s. Two processes here (the hub, 10,000 clients) share the cores with whatever
        # else runs: on an overloaded machine the bound stretches with the load.
        assert took <= GRACE + 1.0 * max(1.0, load), (took, load)
        assert len(told) == len(readers)  # every reading client saw the server close
    finally:
        if proc.poll() is None:
            proc.kill()
        for ws in locals().get("sockets", []):
            await ws.aclose()
