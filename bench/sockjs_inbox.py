"""Memory of a SockJS XHR session whose application never reads while a client posts `xhr_send` in a loop
(issue 27), in process over real loopback sockets:

    python -m bench.sockjs_inbox --posts 1000 --size 100000

Prints the send statuses, what the session holds queued and the process's RSS growth. Run it from another
checkout (PYTHONPATH=<checkout>) for the code before the inbound bound: its queue grows with every post.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any

import httpx
import trio

from hub.net.http import HTTPServer
from hub.net.sockjs import SockJSServer


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


async def never_reads(request: Any, conn: Any) -> None:
    await trio.sleep_forever()


async def run(posts: int, size: int) -> None:
    async with trio.open_nursery() as nursery:
        options: dict[str, Any] = {"disconnect_delay": 60}
        if "write_timeout" in inspect.signature(SockJSServer).parameters:
            options["write_timeout"] = 1.0  # how long the send that does not fit waits for room
        server = SockJSServer("/s", never_reads, **options)
        server.nursery = nursery
        http = HTTPServer(server.routes())
        http.tasks = nursery
        nursery.start_soon(http.flusher.run)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, http.handle, listeners)
        base = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/s/000/x"
        body = json.dumps(["m" * size])
        statuses: dict[int, int] = {}
        async with httpx.AsyncClient(timeout=30) as client:
            await client.post(base + "/xhr")
            before = rss_mb()
            for _ in range(posts):
                status = (await client.post(base + "/xhr_send", content=body)).status_code
                statuses[status] = statuses.get(status, 0) + 1
            after = rss_mb()
        session = server.sessions.get("x")
        queued = sum(map(len, session._incoming)) if session is not None else 0
        print(f"posted {posts * size / 1e6:.0f} MB: statuses {statuses}, queued {queued / 1e6:.2f} MB, "
              f"RSS +{after - before:.0f} MB")
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--size", type=int, default=100_000, help="characters of the one message in each post")
    args = parser.parse_args()
    trio.run(run, args.posts, args.size)


if __name__ == "__main__":
    main()
