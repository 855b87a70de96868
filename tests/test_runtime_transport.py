"""The transport through the real runtime: /health and HEAD on every listener, adapter error shapes for
RFC 9112 cases, READY after every listener, JSON logs, and a fast drain of idle keep-alive clients."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import trio

from hub.runtime import LISTENING, READY

from .net.conftest import parse, read_all, read_response
from .test_runtime import start


async def request(url: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(raw)
    return parse(await read_all(stream))


async def test_health_and_head_on_every_listener(start_hub):
    running = await start_hub()
    assert len(running.listeners) >= 4
    for listener in running.listeners:
        status, headers, body = await request(listener.url, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (status, body) == (200, b"{}"), listener.adapters
        status, headers, body = await request(listener.url, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status < 500 and "content-length" in headers and body == b"", (listener.adapters, status)


async def test_stats_listener_answers_gzip_with_501_in_its_own_shape(start_hub):
    running = await start_hub()
    status, _, body = await request(running.url("stats"), b"POST /api/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc")
    assert status == 501 and "code" in json.loads(body)  # NanoMQ's error body, not a 500


async def test_chat_listener_answers_deep_json_with_its_bad_request(start_hub):
    running = await start_hub()
    deep = b"[" * 50000 + b"]" * 50000
    raw = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
           b"Content-Length: %d\r\n\r\n" % len(deep)) + deep
    status, _, body = await request(running.url("chat"), raw)
    assert status == 400 and json.loads(body)["success"] is False


async def test_ready_is_logged_after_every_listener_accepts(start_hub, caplog):
    caplog.set_level(logging.INFO, logger="hub")
    running = await start_hub()
    messages = [r.getMessage() for r in caplog.records if r.name == "hub"]
    ready = next(i for i, m in enumerate(messages) if m.startswith(READY))
    listening = [i for i, m in enumerate(messages) if m.startswith(LISTENING.split("%")[0])]
    assert len(listening) == len(running.listeners) and max(listening) < ready


def test_json_log_format(tmp_path: Path):
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nlog_format = "json"\n[projects.development]\nsecret = "s"\n'
                   '[realtime]\nport = 0\n[command_api]\nport = 0\n[jsonrpc]\nport = 0\n[stats]\nport = 0\n[chat]\nport = 0\n'
                   '[dashboard]\nport = 0\n')
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(json.loads(line))
            if lines[-1]["message"].startswith(READY):
                break
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert all({"time", "level", "logger", "message"} <= set(obj) for obj in lines)
    assert any(obj["message"].startswith("listening on") for obj in lines)


async def test_idle_keepalive_clients_do_not_hold_up_shutdown(tmp_path: Path):
    """Issue 27: one idle keep-alive connection made an idle hub take 3 s to stop; now well under a second."""
    proc, urls = start(tmp_path)
    streams = []
    try:
        for url in {u for title, u in urls.items() if title != "dashboard"}:  # the dashboard runs on hypercorn
            host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(stream))[0] == 200
            streams.append(stream)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for stream in streams:
            assert await read_all(stream, timeout=2) == b""  # closed by the hub, not by us
        code = await trio.to_thread.run_sync(proc.wait, 10)
        # well under the 2 s grace (test config) that the old code waited out; room for a loaded test machine
        assert code == 0 and time.monotonic() - started < 1.5
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


async def test_shutdown_with_keepalive_chat_clients_answers_or_skips_every_request(tmp_path: Path):
    """Issue 27: on SIGTERM each chat post in progress is answered (Connection: close) and later ones are
    refused (503, not executed): every post is either answered or absent from the database, never both
    unanswered and stored, and the hub exits 0."""
    import httpx

    from .protocols.chat.test_durability import history, write_config
    from .protocols.chat.test_durability import start as start_chat

    write_config(tmp_path)
    cli = subprocess.run([sys.executable, "-m", "hub", "chat", "user", "add", "alice", "--password-stdin", "--role", "admin"],
                         cwd=tmp_path, input="alice-pw\n", capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    proc, url = start_chat(tmp_path, "run1.log")
    answered: set[str] = set()
    refused: set[str] = set()
    unanswered: set[str] = set()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(f"{url}/api/login", data={"user": "alice", "password": "alice-pw"})
            auth = {"X-Auth-Token": r.json()["data"]["authToken"], "X-User-Id": r.json()["data"]["userId"]}
            assert (await client.post(f"{url}/api/rooms/GENERAL/join", headers=auth)).status_code == 200
            signalled = trio.Event()

            async def sender(n: int) -> None:
                async with httpx.AsyncClient(timeout=10) as own:  # one keep-alive connection per sender
                    for i in range(100000):
                        text = f"s{n}-{i}"
                        try:
                            r = await own.post(f"{url}/api/rooms/GENERAL/send", headers=auth, json={"msg": text})
                        except httpx.HTTPError:
                            unanswered.add(text)
                            return
                        if r.status_code == 200:
                            answered.add(text)
                            if len(answered) == 80 and not signalled.is_set():
                                proc.send_signal(signal.SIGTERM)
                                signalled.set()
                        else:
                            assert r.status_code == 503, r.text
                            refused.add(text)
                            return

            async with trio.open_nursery() as nursery:
                for n in range(8):
                    nursery.start_soon(sender, n)
        assert await trio.to_thread.run_sync(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc, url = start_chat(tmp_path, "run2.log")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(f"{url}/api/login", data={"user": "alice", "password": "alice-pw"})
            auth = {"X-Auth-Token": r.json()["data"]["authToken"], "X-User-Id": r.json()["data"]["userId"]}
            stored = set(await history(client, url, auth, "GENERAL"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert answered <= stored, "answered but lost"
    assert not (stored - answered), f"stored without an answer: {sorted(stored - answered)[:5]}"
    assert not (refused & stored)
