"""Chat over Rocket.Chat's own APIs: messages/s over REST and over DDP, history reads/s in a big room.

    python -m bench.chat_rc --messages 2000 --concurrency 8 --ddp-clients 4 --stored 100000 --reads 2000

Before the hub starts, the room GENERAL of a fresh database is filled with `--stored` messages (bulk
SQL in one transaction: setup, not measured). Then, against `hub run`:
- REST: `POST /api/v1/chat.postMessage` over `--concurrency` keep-alive connections (each acknowledged
  once committed to SQLite, synchronous=FULL);
- DDP: `--ddp-clients` websocket clients at /websocket, logged in, each keeping `--window` sendMessage
  calls in flight; a message counts when its result arrives;
- history: `GET /api/v1/channels.history` (50 messages) at random points of the room, with `latest`
  (how Rocket.Chat clients page back), over `--concurrency` connections.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from . import httpload
from .common import cpu_seconds, rss_kib, start_hub
from .httpload import Request

USER, PASSWORD = "bencher", "bench-password-1"


def preload(db: Path, stored: int) -> int:
    """A fresh chat database with the bench user and `stored` messages in GENERAL; returns the first ts (ms)."""
    from protocols.chat import store
    from protocols.chat.model import hash_password, new_id

    conn = store.connect(db)
    now = int(time.time() * 1000)
    first = now - stored * 10
    user = store.transaction(conn, store.create_user, USER, hash_password(PASSWORD), now, name="Bencher")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO messages (id, room_id, user_id, username, name, msg, ts, updated_at) "
                     "VALUES (?, 'GENERAL', ?, ?, ?, ?, ?, ?)",
                     ((new_id(), user.id, USER, "Bencher", f"stored message {i}", first + i * 10, first + i * 10)
                      for i in range(stored)))
    conn.execute("UPDATE rooms SET msgs = msgs + ?, last_message_at = ? WHERE id = 'GENERAL'", (stored, now))
    conn.execute("COMMIT")
    conn.close()
    return first


async def login(url: str) -> dict[str, str]:
    body = json.dumps({"user": USER, "password": PASSWORD}).encode()
    resp = await httpload.request(url, Request("POST", "/api/v1/login", body, {"Content-Type": "application/json"}))
    data = resp.json()["data"]
    return {"X-Auth-Token": data["authToken"], "X-User-Id": data["userId"], "Content-Type": "application/json"}


async def ddp_client(url: str, count: int, window: int) -> tuple[int, float]:
    """One logged-in DDP connection sending `count` messages with `window` in flight; (acknowledged, seconds)."""
    import websockets

    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        await ws.send(json.dumps({"msg": "connect", "version": "1", "support": ["1"]}))
        await ws.recv()
        digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
        await ws.send(json.dumps({"msg": "method", "method": "login", "id": "login",
                                  "params": [{"user": {"username": USER}, "password": {"digest": digest, "algorithm": "sha-256"}}]}))
        while json.loads(await ws.recv()).get("id") != "login":
            pass
        sent = acked = 0
        started = time.perf_counter()
        while sent < min(window, count):
            await ws.send(json.dumps({"msg": "method", "method": "sendMessage", "id": str(sent),
                                      "params": [{"rid": "GENERAL", "msg": f"ddp {sent}"}]}))
            sent += 1
        while acked < count:
            msg = json.loads(await ws.recv())
            if msg.get("msg") != "result":
                continue
            if "error" in msg:
                raise RuntimeError(f"sendMessage: {msg['error']}")
            acked += 1
            if sent < count:
                await ws.send(json.dumps({"msg": "method", "method": "sendMessage", "id": str(sent),
                                          "params": [{"rid": "GENERAL", "msg": f"ddp {sent}"}]}))
                sent += 1
        return acked, time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="hub-bench-chat-")
    db = Path(tmp.name) / "chat.db"
    t0 = time.perf_counter()
    first_ts = preload(db, args.stored)
    preload_s = time.perf_counter() - t0
    hub = start_hub(adapters=("chat",), adapter_settings={"chat": f'database = "{db}"\nmax_message_length = 5000'})
    try:
        base = hub.urls["REST chat"]
        headers = asyncio.run(login(base))
        out: dict[str, Any] = {"scenario": "chat_rc", "stored": args.stored, "preload_s": round(preload_s, 1)}

        cpu0 = cpu_seconds(hub.pid)

        def post(i: int) -> Request:
            return Request("POST", "/api/v1/chat.postMessage", json.dumps({"roomId": "GENERAL", "text": f"rest {i}"}).encode(),
                           headers)

        rest = asyncio.run(httpload.load(base, post, args.messages, args.concurrency,
                                         lambda r: None if r.status == 200 else f"HTTP {r.status}"))
        out["rest_messages_per_s"] = round(rest.ok / rest.elapsed_s)
        out["rest_latency_ms"] = httpload.latency_ms(rest.hist)
        out["rest_errors"] = len(rest.errors)
        cpu1 = cpu_seconds(hub.pid)
        out["rest_server_cpu_s"] = round(cpu1 - cpu0, 2)

        ws_url = base.replace("http://", "ws://") + "/websocket"
        per_client = args.messages // args.ddp_clients

        async def ddp_all() -> tuple[int, float]:
            started = time.perf_counter()
            done = await asyncio.gather(*(ddp_client(ws_url, per_client, args.window) for _ in range(args.ddp_clients)))
            return sum(a for a, _ in done), time.perf_counter() - started

        acked, elapsed = asyncio.run(ddp_all())
        out["ddp_messages_per_s"] = round(acked / elapsed)
        cpu2 = cpu_seconds(hub.pid)
        out["ddp_server_cpu_s"] = round(cpu2 - cpu1, 2)

        rng = random.Random(1)

        def history(i: int) -> Request:
            latest = first_ts + rng.randrange(50, args.stored) * 10
            iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(latest / 1000)) + f".{latest % 1000:03d}Z"
            return Request("GET", f"/api/v1/channels.history?roomId=GENERAL&count=50&latest={iso}", b"", headers)

        def check_page(r: httpload.Response) -> str | None:
            if r.status != 200:
                return f"HTTP {r.status}"
            return None if len(r.json()["messages"]) == 50 else "short page"

        reads = asyncio.run(httpload.load(base, history, args.reads, args.concurrency, check_page))
        out["history_reads_per_s"] = round(reads.ok / reads.elapsed_s)
        out["history_latency_ms"] = httpload.latency_ms(reads.hist)
        out["history_errors"] = len(reads.errors)
        out["server_cpu_s"] = round(cpu_seconds(hub.pid) - cpu0, 2)
        out["server_peak_rss_mb"] = round(rss_kib(hub.pid, "VmHWM") / 1024, 1)
        out["database_mb"] = round(db.stat().st_size / 1e6, 1)
        return out
    finally:
        hub.stop()
        tmp.cleanup()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=2000, help="messages sent over REST, and again over DDP")
    p.add_argument("--concurrency", type=int, default=8, help="REST connections in flight")
    p.add_argument("--ddp-clients", type=int, default=4)
    p.add_argument("--window", type=int, default=8, help="sendMessage calls in flight per DDP client")
    p.add_argument("--stored", type=int, default=100_000, help="messages in the room before the history reads")
    p.add_argument("--reads", type=int, default=2000, help="history requests")
    print(json.dumps(run(p.parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
