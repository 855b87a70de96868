"""Issue 27 through the dashboard's live feed: a page watching a busy channel that does not read its socket is
closed as slow (counted on /metrics, its page slot freed) instead of holding a task (and the shutdown) forever; one that
reads keeps getting every flush (publications beyond a flush's batch are announced as `skipped`)."""

from __future__ import annotations

import base64
import json
import os
import socket

import trio

from protocols.dashboard.auth import COOKIE

from ...rawws import RawWebSocket
from ..pressure import wait_for
from .conftest import session_cookie

FAST_TIMEOUT = "[hub]\nwrite_timeout = 1.0\n"


async def raw_live_page(url: str, cookie: str, query: str) -> RawWebSocket:
    hostport = url.split("//", 1)[1]
    host, port = hostport.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all((f"GET /ws?{query} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {url}\r\n"
                           f"Cookie: {COOKIE}={cookie}\r\n\r\n").encode())
    ws = RawWebSocket(stream)
    with trio.fail_after(10):
        while b"\r\n\r\n" not in ws.buf:
            ws.buf += await stream.receive_some(65536)
    head, _, rest = bytes(ws.buf).partition(b"\r\n\r\n")
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    ws.buf = bytearray(rest)
    return ws


async def test_a_live_page_that_does_not_read_is_closed_as_slow(dashboard):
    running, url = await dashboard(FAST_TIMEOUT)
    dash = running.contexts["dashboard"].state["dashboard"]
    ws = await raw_live_page(url, await session_cookie(url), "page=channel&channel=news")
    await wait_for(lambda: dash.monitor.watches)
    pad = "x" * 3000
    with trio.fail_after(60):
        i = 0
        while running.metrics.disconnects.get(("dashboard", "slow")) != 1:
            await running.publish("news", {"i": i, "pad": pad})
            i += 1
            if i % 10 == 0:
                await trio.sleep(0.005)
    await wait_for(lambda: not dash.monitor.pages)  # its slot is free again
    with trio.fail_after(10):  # the socket ends (a close frame, if one still fits, or EOF)
        while True:
            try:
                opcode, _ = await ws.recv()
            except (EOFError, trio.BrokenResourceError):
                break
            if opcode == 8:
                break


async def test_a_live_page_that_reads_gets_every_flush(dashboard):
    running, url = await dashboard(FAST_TIMEOUT)
    dash = running.contexts["dashboard"].state["dashboard"]
    ws = await raw_live_page(url, await session_cookie(url), "page=channel&channel=news")
    await wait_for(lambda: dash.monitor.watches)
    n, shown, skipped = 400, [], 0
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def publish() -> None:
                for i in range(n):
                    await running.publish("news", {"i": i})
                    await trio.sleep(0.002)

            nursery.start_soon(publish)
            while len(shown) + skipped < n:
                opcode, payload = await ws.recv()
                assert opcode != 8, payload
                message = json.loads(payload)
                if message["type"] == "publications":
                    shown += [json.loads(item["data"])["i"] if isinstance(item["data"], str) else item["data"]["i"]
                              for item in message["items"]]
                    skipped += message["skipped"]
    assert shown == sorted(shown) and running.metrics.disconnects.get(("dashboard", "slow")) is None
