"""Redis client paths measured side by side on Trio: the engine's thin hiredis client vs coredis.

    pip install coredis && python -m bench.redis_clients

Starts its own redis-server (free loopback port). For each client: sequential round trips (PING),
concurrent commands from 50 tasks (EVALSHA of the engine's publish script, i.e. the publish path),
and a PUB/SUB reader receiving 100,000 messages published by a pipelined producer. Prints one JSON
line per client; the engine uses the thin client on every path (see the commit for the figures).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from hub.engine.redis_scripts import PUBLISH
from hub.engine.resp import Connection, Pipeline, pack_command, parse_url

from .redis_server import RedisServer

SEQ, TASKS, PER_TASK, PUBSUB = 2000, 50, 400, 100_000
BODY = b"\x95\xd9 " + b"u" * 32 + b"\x83\xa1t\xcbA\xd9\x00\x00\x00\x00\x00\x00\xa1s\x01\xa1p\xd9<" + b"x" * 60 + b"\xc0\xc0\xcb\x00"


async def produce(url: str, channel: bytes, n: int) -> None:
    conn = await Connection.open(parse_url(url), 2)
    for i in range(0, n, 1000):
        await conn.send(b"".join(pack_command(("PUBLISH", channel, BODY)) for _ in range(min(1000, n - i))))
        for _ in range(min(1000, n - i)):
            await conn.read()
    await conn.aclose()


async def thin(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {"client": "thin hiredis (hub.engine.resp)"}
    pipe = Pipeline(parse_url(url), timeout=10, connect_timeout=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipe.run)
        await pipe.ever_connected.wait()
        t = time.perf_counter()
        for _ in range(SEQ):
            await pipe.execute("PING")
        out["sequential_rtt_us"] = round((time.perf_counter() - t) / SEQ * 1e6, 1)
        sha = (await pipe.execute("SCRIPT", "LOAD", PUBLISH)).decode()

        async def task(k: int) -> None:
            for _ in range(PER_TASK):
                await pipe.execute("EVALSHA", sha, 3, f"m{k}", f"s{k}", f"c{k}", 100, 60000, 600, "e", BODY)

        t = time.perf_counter()
        async with trio.open_nursery() as inner:
            for k in range(TASKS):
                inner.start_soon(task, k)
        out["concurrent_publish_per_s"] = round(TASKS * PER_TASK / (time.perf_counter() - t))
        sub = await Connection.open(parse_url(url), 2)
        await sub.send(pack_command(("SUBSCRIBE", "bench")))
        await sub.read()
        got = 0
        t = time.perf_counter()
        inner_done = trio.Event()

        async def reader() -> None:
            nonlocal got
            while got < PUBSUB:
                await sub.fill()
                while sub.reader.gets() is not False:
                    got += 1
            inner_done.set()

        async with trio.open_nursery() as inner:
            inner.start_soon(reader)
            inner.start_soon(produce, url, b"bench", PUBSUB)
        out["pubsub_msgs_per_s"] = round(PUBSUB / (time.perf_counter() - t))
        await sub.aclose()
        nursery.cancel_scope.cancel()
    return out


async def coredis_client(url: str) -> dict[str, Any]:
    import coredis

    addr = parse_url(url)
    out: dict[str, Any] = {"client": f"coredis {coredis.__version__}"}
    client = coredis.Redis(addr.host, addr.port, max_connections=1)
    async with client:
        t = time.perf_counter()
        for _ in range(SEQ):
            await client.ping()
        out["sequential_rtt_us"] = round((time.perf_counter() - t) / SEQ * 1e6, 1)
        sha = await client.script_load(PUBLISH)

        async def task(k: int) -> None:
            for _ in range(PER_TASK):
                await client.evalsha(sha, [f"m{k}", f"s{k}", f"c{k}"], [100, 60000, 600, "e", BODY])

        t = time.perf_counter()
        async with trio.open_nursery() as inner:
            for k in range(TASKS):
                inner.start_soon(task, k)
        out["concurrent_publish_per_s"] = round(TASKS * PER_TASK / (time.perf_counter() - t))
        got = 0
        t = 0.0
        async with client.pubsub(channels=["bench"]) as ps:
            async with trio.open_nursery() as inner:
                t = time.perf_counter()
                inner.start_soon(produce, url, b"bench", PUBSUB)
                async for message in ps:
                    if message["type"] == "message":
                        got += 1
                        if got >= PUBSUB:
                            break
        out["pubsub_msgs_per_s"] = round(PUBSUB / (time.perf_counter() - t))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hub-bench-redis-") as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            print(json.dumps(trio.run(thin, redis.url)), flush=True)
            try:
                import coredis  # noqa: F401
            except ImportError:
                print("coredis is not installed: pip install coredis", file=sys.stderr)
                return
            print(json.dumps(trio.run(coredis_client, redis.url)), flush=True)
        finally:
            redis.kill()


if __name__ == "__main__":
    main()
