"""The accept loop out of file descriptors: `hub run` under a low RLIMIT_NOFILE logs one line, not a
traceback flood, and serves again as soon as descriptors free up."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from hub.runtime import READY, listener_urls

CONFIG = """
[hub]
shutdown_grace = 1.0
[projects.development]
secret = "secret"
[realtime]
port = 0
[command_api]
port = 0
"""
FD_LIMIT = 64


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


async def test_emfile_is_logged_once_and_the_hub_serves_again(tmp_path: Path):
    from hub.adapters import adapter_registry

    others = [name for name in adapter_registry() if name not in ("realtime", "command_api")]
    cfg = tmp_path / "hub.toml"
    cfg.write_text(CONFIG + "".join(f"[{name}]\nenabled = false\n" for name in others))
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_limit)
    lines: list[str] = []
    seen = threading.Condition()

    def pump() -> None:
        for line in proc.stderr:
            with seen:
                lines.append(line)
                seen.notify_all()

    threading.Thread(target=pump, daemon=True).start()

    def wait_for(text: str, timeout: float = 20) -> None:
        with seen:
            assert seen.wait_for(lambda: any(text in line for line in lines), timeout), "".join(lines)

    held: list[trio.SocketStream] = []
    try:
        await trio.to_thread.run_sync(wait_for, READY)
        url = listener_urls("".join(lines))["websocket clients"]
        host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
        for _ in range(FD_LIMIT + 40):
            held.append(await trio.open_tcp_stream(host, int(port)))
        await trio.to_thread.run_sync(wait_for, "out of file descriptors")
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # a second and a half of refused accepts: still one line
            await trio.sleep(0.1)
        for stream in held:
            await stream.aclose()
        held.clear()
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await stream.receive_some(4096)
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        for stream in held:
            await stream.aclose()
        proc.terminate()
        await trio.to_thread.run_sync(proc.wait, 10)
    log = "".join(lines)
    emfile = [line for line in lines if "out of file descriptors" in line]
    assert len(emfile) == 1, log
    assert f"limit {FD_LIMIT}" in emfile[0] and "connections open" in emfile[0]
    assert "Traceback" not in log


@pytest.mark.parametrize("lean", [True, False])
async def test_a_burst_of_connections_is_accepted_in_batches_and_the_loop_ends_cleanly(lean, monkeypatch):
    """More connections at once than one batch (accept.BATCH): every one reaches the handler; once cancelled the
    loop has closed its duplicate of the listening descriptor and the listener itself is untouched. Both ways of
    making the streams (lean, and trio's constructor where the lean one is not to be had) give the same streams."""
    from hub.net import accept
    from hub.net.accept import BATCH, accept_loop

    monkeypatch.setattr(accept, "_LEAN", lean and accept._LEAN)

    count = 3 * BATCH + 5
    accepted: list[trio.SocketStream] = []
    all_in = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        if len(accepted) == count:
            all_in.set()

    fds_before = set(os.listdir("/proc/self/fd"))
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listener.socket.getsockname()[1]
    clients: list[socket.socket] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(accept_loop, listener, handler, nursery, open_connections=lambda: len(accepted),
                                    freed=trio.lowlevel.ParkingLot()))
        for _ in range(count):  # all connected before the loop runs again: they wait in the backlog together
            clients.append(socket.create_connection(("127.0.0.1", port)))
        with trio.fail_after(10):
            await all_in.wait()
        nursery.cancel_scope.cancel()
    assert len(accepted) == count and all(isinstance(s, trio.SocketStream) for s in accepted)
    # trio's socket defaults hold though the streams were made without its setsockopt calls (inherited from the
    # listener), and each stream knows its peer as the accept gave it
    ports = {c.getsockname()[1] for c in clients}
    for stream in accepted:
        assert stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT) == 2**14
        host, _, port = stream.peer.rpartition(":")
        assert host == "127.0.0.1" and int(port) in ports
        assert stream.peer == "{}:{}".format(*stream.socket.getpeername())
    for stream in accepted:
        await stream.aclose()
    for client in clients:
        client.close()
    assert listener.socket.fileno() >= 0  # still open: the loop closed only its own descriptor
    await listener.aclose()
    assert not set(os.listdir("/proc/self/fd")) - fds_before  # no descriptor of ours left open
