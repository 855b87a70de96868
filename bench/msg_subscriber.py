"""A subscriber process for the request scenarios (chat, JSON-RPC): N websocket clients of one channel.

Publications carry a tag `bench-<seq>-<unix time>` somewhere in their data (the chat message text,
a JSON-RPC publish's data); each received tag counts once and gives send→receive latency.

    python -m bench.msg_subscriber --url ws://127.0.0.1:PORT/connection/websocket --channel bench:chat.GENERAL --n 10

Prints `{"ready": true}` once subscribed; after a `done [SECONDS]` line on stdin it waits until every
expected publication arrived (or SECONDS, default 10) and prints one JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import subprocess
import sys
import time
from typing import Any

from .common import LatencyHistogram
from .protocols import LEGACY
from .wsclient import open_client

TAG = re.compile(rb"bench-(\d+)-(\d+\.\d+)")


def tag(seq: int, sent: float | None = None) -> str:
    """The tag a publication carries: sequence number and the sender's clock."""
    return f"bench-{seq}-{time.time() if sent is None else sent:.6f}"


def spawn(url: str, channel: str, n: int, expect: int) -> subprocess.Popen:
    """Start a subscriber process and wait until its clients are subscribed."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.msg_subscriber", "--url", url, "--channel", channel, "--n", str(n),
                             "--expect", str(expect)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        proc.wait(10)
        raise RuntimeError("the subscriber process failed to subscribe")
    return proc


def finish(proc: subprocess.Popen, limit: float) -> dict[str, Any]:
    """Tell the subscriber process to stop within `limit` seconds; its report."""
    proc.stdin.write(f"done {limit}\n")  # type: ignore[union-attr]
    proc.stdin.flush()  # type: ignore[union-attr]
    report = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
    proc.wait(10)
    return report


async def main(args: argparse.Namespace) -> None:
    hist = LatencyHistogram()
    state = {"received": 0, "last": 0.0, "errors": 0}
    loop = asyncio.get_running_loop()
    clients = []
    for i in range(args.n):
        ready = loop.create_future()

        def on_message(payload: bytes, ready: asyncio.Future = ready) -> None:
            if not ready.done():
                if LEGACY["is_reply"](payload):
                    ready.set_result(payload)
                return
            now = time.time()
            for m in TAG.finditer(payload):
                state["received"] += 1
                state["last"] = now
                hist.add(now - float(m.group(2)))

        client = await open_client(args.url, on_message)
        client.send_bytes(LEGACY["subscribe"](f"{args.prefix}{i}", args.channel))
        reply = await asyncio.wait_for(ready, 10)
        if b'"error"' in reply and b'"error":null' not in reply.replace(b" ", b""):
            raise SystemExit(f"subscribe refused: {reply[:300]!r}")
        clients.append(client)
    print(json.dumps({"ready": True}), flush=True)
    words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
    limit = float(words[1]) if len(words) > 1 else 10.0
    deadline = time.time() + limit
    expected = args.expect * args.n
    while time.time() < deadline and not (expected and state["received"] >= expected):
        await asyncio.sleep(0.02)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"received": state["received"], "last": state["last"], "hist": hist.counts, "max": hist.max,
                      "cpu_s": usage.ru_utime + usage.ru_stime}), flush=True)
    for c in clients:
        c.transport.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--channel", required=True)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--expect", type=int, default=0, help="publications each client should get")
    p.add_argument("--prefix", default="msgsub")
    asyncio.run(main(p.parse_args()))
