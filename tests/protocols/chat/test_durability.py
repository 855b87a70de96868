"""Acknowledged means committed: `hub run` killed with SIGKILL right after the acknowledgements loses nothing,
whether a message was acknowledged over REST or over the realtime API (DDP)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from hub.adapters import adapter_registry
from hub.runtime import READY, listener_urls

TARGET_ACKS = 150


def write_config(tmp_path: Path) -> Path:
    """A hub.toml with only the chat listening (on port 0) and a relative database path."""
    lines = ["[hub]", "shutdown_grace = 1.0", "[projects.development]", 'secret = "secret"']
    for name in adapter_registry():
        if name != "chat":
            lines += [f"[{name}]", "enabled = false"]
    lines += ["[chat]", "port = 0", 'database = "data/chat.db"', "token_ttl = 3600", "unread_limit = 1000"]
    cfg = tmp_path / "hub.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def start(tmp_path: Path, log_name: str) -> tuple[subprocess.Popen, str]:
    """`hub run` in tmp_path; returns the process and the chat's URL read from its log."""
    log_path = tmp_path / log_name
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", "hub.toml"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log_path.read_text()
        url = listener_urls(text).get("REST chat")
        if url and READY in text:
            return proc, url
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"hub did not start:\n{log_path.read_text()}")


async def history(client: httpx.AsyncClient, url: str, auth: dict[str, str], rid: str) -> list[str]:
    """Every message text of a room (REST API v1 channels.history, paged)."""
    texts: list[str] = []
    while True:
        r = await client.get(f"{url}/api/v1/channels.history", params={"roomId": rid, "offset": len(texts), "count": 100},
                             headers=auth)
        page = r.json()["messages"]
        texts += [m["msg"] for m in page]
        if len(page) < 100:
            return texts


async def test_acknowledged_state_survives_sigkill(tmp_path: Path):
    write_config(tmp_path)
    cli = subprocess.run([sys.executable, "-m", "hub", "chat", "user", "add", "alice", "--password-stdin", "--role", "admin"],
                         cwd=tmp_path, input="alice-pw\n", capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "data" / "chat.db").exists()

    proc, url = start(tmp_path, "run1.log")
    acked: dict[str, list[str]] = {}
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            async def login(user: str, password: str) -> dict[str, str]:
                r = await client.post(f"{url}/api/login", data={"user": user, "password": password})
                assert r.status_code == 200, r.text
                return {"X-Auth-Token": r.json()["data"]["authToken"], "X-User-Id": r.json()["data"]["userId"]}

            alice = await login("alice", "alice-pw")
            revoked = await login("alice", "alice-pw")
            assert (await client.post(f"{url}/api/logout", headers=revoked)).status_code == 200
            r = await client.post(f"{url}/api/v1/users.register", json={"username": "bob", "pass": "bob-pw", "email": "b@example.com",
                                                                        "name": "Bob"})
            assert r.json()["success"] is True, r.text
            bob = await login("bob", "bob-pw")
            r = await client.post(f"{url}/api/v1/channels.create", headers=alice, json={"name": "durable", "members": ["bob"]})
            durable = r.json()["channel"]["_id"]
            for who in (alice, bob):
                assert (await client.post(f"{url}/api/rooms/GENERAL/join", headers=who)).status_code == 200
            for text in ("before-1", "before-2"):
                assert (await client.post(f"{url}/api/rooms/GENERAL/send", headers=alice, json={"msg": text})).status_code == 200
            read = (await client.get(f"{url}/api/rooms/GENERAL/messages", headers=bob)).json()["messages"]
            assert [m["msg"] for m in read] == ["before-1", "before-2"]

            total = 0
            killed = trio.Event()

            def acknowledged(rid: str, text: str) -> None:
                """Count an acknowledgement; SIGKILL once there are enough and both APIs have had one (under load
                the realtime login can take longer than the REST senders need to reach the target)."""
                nonlocal total
                acked.setdefault(rid, []).append(text)
                total += 1
                ddp = any(t.startswith("ddp-") for texts in acked.values() for t in texts)
                if total >= TARGET_ACKS and ddp and not killed.is_set():
                    proc.send_signal(signal.SIGKILL)  # right after the acknowledgement, others still in flight
                    killed.set()

            async def sender(name: str, auth: dict[str, str], rid: str) -> None:
                i = 0
                while not killed.is_set():
                    text = f"{name}-{i}"
                    try:
                        r = await client.post(f"{url}/api/rooms/{rid}/send", headers=auth, json={"msg": text})
                    except httpx.HTTPError:
                        return
                    if killed.is_set():
                        return  # answered after the kill was sent: don't count it
                    assert r.json() == {"status": "success"}, r.text
                    acknowledged(rid, text)
                    i += 1

            async def ddp_sender(name: str, user: str, password: str, rid: str) -> None:
                """The realtime API: a message counts as acknowledged when its sendMessage result arrives."""
                ws_url = url.replace("http://", "ws://") + "/websocket"
                try:
                    async with open_websocket_url(ws_url) as ws:
                        await ws.get_message()
                        await ws.send_message(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
                        await ws.get_message()
                        digest = hashlib.sha256(password.encode()).hexdigest()
                        await ws.send_message(json.dumps({"msg": "method", "method": "login", "id": "l", "params": [
                            {"user": {"username": user}, "password": {"digest": digest, "algorithm": "sha-256"}}]}))
                        while json.loads(await ws.get_message()).get("id") != "l":
                            pass
                        i = 0
                        while not killed.is_set():
                            text = f"{name}-{i}"
                            await ws.send_message(json.dumps({"msg": "method", "method": "sendMessage", "id": text,
                                                              "params": [{"rid": rid, "msg": text}]}))
                            while True:
                                reply = json.loads(await ws.get_message())
                                if reply.get("msg") == "result" and reply.get("id") == text:
                                    break
                            if killed.is_set():
                                return
                            assert "error" not in reply, reply
                            acknowledged(rid, text)
                            i += 1
                except (ConnectionClosed, HandshakeError, OSError):
                    return

            with trio.fail_after(120):  # the realtime API never acknowledging would fail here, not hang
                async with trio.open_nursery() as nursery:
                    for n, (auth, rid) in enumerate([(alice, "GENERAL"), (bob, "GENERAL"), (alice, durable), (bob, durable)] * 2):
                        nursery.start_soon(sender, f"s{n}", auth, rid)
                    nursery.start_soon(ddp_sender, "ddp-a", "alice", "alice-pw", "GENERAL")
                    nursery.start_soon(ddp_sender, "ddp-b", "bob", "bob-pw", durable)
        assert await trio.to_thread.run_sync(proc.wait, 10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert sum(len(v) for v in acked.values()) >= TARGET_ACKS
    proc, url = start(tmp_path, "run2.log")
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            # Tokens: the live ones still work, the logged-out one is still revoked; passwords still check.
            assert (await client.get(f"{url}/api/v1/me", headers=alice)).json()["username"] == "alice"
            assert (await client.get(f"{url}/api/v1/me", headers=bob)).json()["username"] == "bob"
            assert (await client.get(f"{url}/api/publicRooms", headers=revoked)).status_code == 401
            r = await client.post(f"{url}/api/login", data={"user": "bob", "password": "bob-pw"})
            assert r.json()["data"]["userId"] == bob["X-User-Id"]
            me = (await client.get(f"{url}/api/v1/me", headers=alice)).json()
            assert me["roles"] == ["admin"]
            assert any(t.startswith("ddp-") for texts in acked.values() for t in texts)  # both APIs were acknowledged

            rooms = {r["_id"]: r for r in (await client.get(f"{url}/api/publicRooms", headers=alice)).json()["rooms"]}
            assert sorted(rooms[durable]["usernames"]) == ["alice", "bob"] and rooms[durable]["name"] == "durable"
            assert sorted(rooms["GENERAL"]["usernames"]) == ["alice", "bob"]

            for rid, texts in acked.items():
                stored = await history(client, url, alice, rid)
                assert len(stored) == len(set(stored)), "a message was stored twice"
                missing = set(texts) - set(stored)
                assert not missing, f"acknowledged but lost in {rid}: {sorted(missing)[:10]}"
            # bob's read marker survived: what he read before stays read, every acknowledged message after it is unread.
            unread = [m["msg"] for m in (await client.get(f"{url}/api/rooms/GENERAL/messages", headers=bob)).json()["messages"]]
            assert "before-1" not in unread and "before-2" not in unread
            assert set(acked.get("GENERAL", [])) <= set(unread)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
