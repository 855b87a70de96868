"""Issue 27 through the realtime adapter's real sockets: a flooding client that reads slowly gets every
reply or the protocol's slow-client close (counted), never a silent gap; SockJS sessions too."""

from __future__ import annotations

import json

import httpx
import trio

from protocols.centrifuge import CLOSES

from ...conftest import connect_params
from ...rawws import RawWebSocket, client_frame
from ..pressure import flood, wait_for

SLOW = CLOSES["slow"].websocket[0]
# The outbox and fairness, not the command rate (a guard of its own, tested in tests/net/test_limits.py), are tested here.
SMALL_QUEUE = "[hub]\nmax_queue_bytes = 65536\n[realtime]\ncommand_rate_limit = 0\n"


async def legacy(running, user: str = "alice") -> RawWebSocket:
    ws = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
    await ws.send_json({"method": "connect", "params": connect_params(user)})
    assert (await ws.recv_reply())[0]["error"] is None
    await ws.send_json({"method": "subscribe", "params": {"channel": "news"}})
    assert (await ws.recv_reply())[0]["error"] is None
    return ws


def legacy_replies(method: str):
    marker = f'"method": "{method}"'.encode()

    def count(payload: bytes) -> int:
        if not payload.startswith(b"["):
            return 0
        replies = json.loads(payload)
        assert all(r["error"] is None for r in replies), replies[:1]
        return payload.count(marker)

    return count


async def test_original_protocol_presence_flood_read_at_once_gets_every_reply(start_hub):
    """The issue's case: single-command presence frames, replies read as fast as possible (was: 3,700 of
    100,000 arrived, the rest vanished with the connection open)."""
    running = await start_hub(SMALL_QUEUE)
    for user in ("bob", "carol"):  # presence replies of a few hundred bytes
        await legacy(running, user)
    ws = await legacy(running)
    frame = client_frame(json.dumps({"method": "presence", "params": {"channel": "news"}}))
    n = 20_000
    replies, closed = await flood(ws, frame, n, late=False, is_reply=legacy_replies("presence"), expected=n)
    assert replies == n or (closed == SLOW and running.stats()["slow_disconnects"] >= 1), (replies, closed)


async def test_original_protocol_flood_read_late_gets_every_reply_or_a_counted_slow_close(start_hub):
    running = await start_hub(SMALL_QUEUE)
    ws = await legacy(running)
    n = 5_000
    frame = client_frame(json.dumps([{"method": "presence", "params": {"channel": "news"}}] * 5))
    replies, closed = await flood(ws, frame, n, late=True, is_reply=legacy_replies("presence"), expected=5 * n)
    assert replies == 5 * n or (closed == SLOW and running.stats()["slow_disconnects"] >= 1), (replies, closed)


async def test_current_protocol_presence_flood_read_at_once_and_late(start_hub):
    running = await start_hub(SMALL_QUEUE + "allow_anonymous = true\n")
    for late in (False, True):
        ws = await RawWebSocket.connect(running.url("realtime").replace("http", "ws") + "/connection/websocket")
        await ws.send_json({"id": 1, "connect": {}})
        await ws.recv()
        await ws.send_json({"id": 2, "subscribe": {"channel": "public:a"}})
        await ws.recv()
        n = 10_000
        frame = client_frame(json.dumps({"id": 3, "presence": {"channel": "public:a"}}))
        replies, closed = await flood(ws, frame, n, late=late, expected=n,
                                      is_reply=lambda payload: payload.count(b'"presence":{"presence"'))
        assert replies == n or (closed == 3008 and running.stats()["slow_disconnects"] >= 1), (late, replies, closed)


async def test_sockjs_xhr_session_that_does_not_poll_is_closed_as_slow_not_silently_short(start_hub):
    """An XHR-polling session whose replies overflow its queue between polls: it was Outbox.push (the
    replies past the limit were dropped, the session stayed open). Now it is closed as slow and counted (the
    core discards what was still queued for it: the close is what the client gets)."""
    running = await start_hub("[hub]\nmax_queue_bytes = 8192\n")
    base = running.url("realtime") + "/connection/000/pressure"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(base + "/xhr")).text == "o\n"
        await http.post(base + "/xhr_send", content=json.dumps([json.dumps({"method": "connect", "params": connect_params()})]))
        commands = [json.dumps({"method": "presence", "params": {"channel": "news"}})] * 400
        sent = await http.post(base + "/xhr_send", content=json.dumps(commands))
        assert sent.status_code == 204
        await wait_for(lambda: running.stats()["slow_disconnects"] == 1)
        replies, closed = 0, None
        with trio.fail_after(10):
            while closed is None:
                body = (await http.post(base + "/xhr")).text
                if body.startswith("a"):
                    replies += sum(m.count('"method": "presence"') for m in json.loads(body[1:]))
                elif body.startswith("c"):
                    closed = json.loads(body[1:])
        assert closed == list(CLOSES["slow"].sockjs) and replies < 400


async def test_sockjs_xhr_send_in_a_loop_never_polling_is_closed_as_slow_and_counted(start_hub):
    """A client that posts commands in a loop and never polls for the replies: what the session holds stays
    bounded (the sends wait while the hub has not taken the last ones; the replies overflow the queue), the
    session is closed as slow once, counted in the stats and in /metrics, and its sends are refused after."""
    running = await start_hub("[hub]\nmax_queue_bytes = 8192\n[realtime]\ncommand_rate_limit = 0\n")
    base = running.url("realtime") + "/connection/000/loop"
    commands = json.dumps([json.dumps({"method": "presence", "params": {"channel": "news"}})] * 20)
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.post(base + "/xhr")).text == "o\n"
        await http.post(base + "/xhr_send", content=json.dumps([json.dumps({"method": "connect", "params": connect_params()})]))
        statuses = []
        with trio.fail_after(20):
            while not statuses or statuses[-1] == 204:
                statuses.append((await http.post(base + "/xhr_send", content=commands)).status_code)
        assert statuses[-1] == 404 and len(statuses) < 100, statuses
        await wait_for(lambda: running.stats()["slow_disconnects"] == 1)
        assert running.metrics.disconnects[("realtime", "slow")] == 1
        closed = (await http.post(base + "/xhr")).text
        assert json.loads(closed[1:]) == list(CLOSES["slow"].sockjs)
        assert (await http.post(base + "/xhr_send", content=commands)).status_code == 404
    assert running.stats()["slow_disconnects"] == 1 and running.metrics.disconnects[("realtime", "slow")] == 1
