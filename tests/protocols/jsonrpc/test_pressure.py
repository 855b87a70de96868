"""Issue 27 through the JSON-RPC adapter's sockets: an /ws/events listener that does not read is closed with
4008 after an unbroken run of events (counted as dropped), one that reads gets them all; a /ws/requests flood
read at once gets every reply or 4008."""

from __future__ import annotations

import json
import socket

import trio

from ...rawws import RawWebSocket, client_frame
from ..pressure import flood, wait_for
from .test_jsonrpc import EXTRA, PASSWORD, hub_cli_async, token_for, write_config

SLOW_CLIENT = 4008


async def small_queue_hub(start_hub, tmp_path):
    running = await start_hub(EXTRA + "\n[hub]\nmax_queue_bytes = 65536\n")
    config = write_config(tmp_path, running)
    added = await hub_cli_async("user", "add", "alice", "--config", config, stdin=(PASSWORD + "\n").encode())
    assert added.returncode == 0, added.stderr
    return running


async def events_socket(running) -> RawWebSocket:
    token = await token_for(running)
    ws = await RawWebSocket.connect(running.url("jsonrpc").replace("http", "ws") + f"/ws/events?token={token}")
    await wait_for(lambda: any(s.protocol == "jsonrpc" for s in running.hub.sessions.values()))
    return ws


def published_index(payload: bytes) -> int | None:
    args = json.loads(payload)["args"]
    return args["data"]["i"] if args.get("subtype") == "hub.publication" and args.get("channel") == "news" else None


async def publish(running, n: int, pause: float = 0.0, gate=None) -> None:
    """`n` publications of about 1 KB in bursts of 10; the flusher writes between bursts, as under real traffic.
    `gate(sent)`, awaited after each burst, holds the publisher back (a reader that keeps up, however slow the
    machine: what is tested is that reading is enough, not how fast the test process reads)."""
    pad = "x" * 1000
    for i in range(n):
        await running.publish("news", {"i": i, "pad": pad})
        if i % 10 == 9:
            await trio.sleep(pause)
            if gate is not None:
                await gate(i + 1)


async def test_events_listener_that_does_not_read_is_closed_after_an_unbroken_run(start_hub, tmp_path):
    running = await small_queue_hub(start_hub, tmp_path)
    ws = await events_socket(running)
    ws.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    before = running.stats()
    await publish(running, 20_000)
    await wait_for(lambda: running.stats()["slow_disconnects"] == before["slow_disconnects"] + 1)
    seen, closed = [], None
    with trio.fail_after(30):
        while closed is None:
            opcode, payload = await ws.recv()
            if opcode == 8:
                closed = int.from_bytes(payload[:2], "big")
            elif (i := published_index(payload)) is not None:
                seen.append(i)
    assert closed == SLOW_CLIENT
    assert seen == list(range(len(seen))) and len(seen) < 20_000  # a prefix, then the close: no gap
    after = running.stats()
    assert after["messages_dropped"] - before["messages_dropped"] >= 1
    await wait_for(lambda: any(reason == "slow" for _, reason in running.metrics.disconnects))


async def test_events_listener_that_reads_gets_every_event(start_hub, tmp_path):
    running = await small_queue_hub(start_hub, tmp_path)
    ws = await events_socket(running)
    n, seen = 3_000, []
    window = 40  # events (about 40 KB) the publisher may be ahead: within the 64 KiB queue, socket buffers aside
    waiting: list[tuple[int, trio.Event]] = []

    async def reader_keeps_up(sent: int) -> None:
        if sent - len(seen) > window:
            caught_up = trio.Event()
            waiting.append((sent - window // 2, caught_up))
            await caught_up.wait()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish, running, n, 0.002, reader_keeps_up)  # up to 5,000 a second
            while len(seen) < n:
                opcode, payload = await ws.recv()
                assert opcode != 8, payload
                if (i := published_index(payload)) is not None:
                    seen.append(i)
                    if waiting and len(seen) >= waiting[0][0]:
                        waiting.pop()[1].set()
    assert seen == list(range(n)) and running.stats()["slow_disconnects"] == 0


async def test_requests_flood_read_at_once_gets_every_reply_or_4008(start_hub, tmp_path):
    running = await small_queue_hub(start_hub, tmp_path)
    token = await token_for(running)
    ws = await RawWebSocket.connect(running.url("jsonrpc").replace("http", "ws") + f"/ws/requests?token={token}")
    frame = client_frame(json.dumps({"type": "request", "action": "hub.channels", "args": {}}))
    n = 3_000
    replies, closed = await flood(ws, frame, n, late=False, is_reply=lambda payload: 1, expected=n)
    assert replies == n or closed == SLOW_CLIENT, (replies, closed)
