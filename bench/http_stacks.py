"""Small requests on the hub's own HTTP layer (h11 + Trio) and on quart-trio served by hypercorn's Trio worker.

    python -m bench.http_stacks --requests 20000 --concurrency 8 --rounds 3

The same endpoint on both (`POST /echo`: a ~100-byte JSON body parsed and a small JSON answer, like a
command API call) in a server process of its own; the keep-alive load generator of bench/httpload.py in
this process. Reports requests/s and requests per server CPU second (steadier than wall time on a shared
machine), stack against stack in alternating rounds. The figure behind "hot paths stay on the h11 layer;
the dashboard (pages, static files, a websocket at human rates) is where quart-trio and hypercorn belong".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from functools import partial
from typing import Any

from .common import cpu_seconds
from .httpload import Request, load

BODY = json.dumps({"method": "publish", "params": {"channel": "bench:api", "data": {"text": "x" * 40}}}).encode()


async def serve_h11(task_status: Any) -> None:
    import trio

    from hub.net.http import HTTPServer, Response, Route

    async def echo(request: Any) -> Response:
        return Response.json({"ok": True, "channel": json.loads(request.body)["params"]["channel"]})

    server = HTTPServer([Route("/echo", echo, methods=["POST"])])
    async with trio.open_nursery() as nursery:
        server.tasks = nursery
        nursery.start_soon(server.flusher.run)
        listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1", handler_nursery=nursery))
        task_status(listeners[0].socket.getsockname()[1])


async def serve_quart(task_status: Any) -> None:
    import logging

    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from quart import request
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.post("/echo")
    async def echo() -> Any:
        body = json.loads(await request.get_data())
        return {"ok": True, "channel": body["params"]["channel"]}

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("quiet")
    config.keep_alive_max_requests = 1 << 30  # its default (1,000) would close the load generator's connections
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, app, config)
        task_status(int(binds[0].rsplit(":", 1)[1]))


def serve_main(stack: str) -> None:
    import trio

    def report(port: int) -> None:
        print(port, flush=True)

    trio.run({"h11": serve_h11, "quart": serve_quart}[stack], report)


def measure(stack: str, requests: int, concurrency: int) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.http_stacks", "serve", stack], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}"
        make = lambda i: Request("POST", "/echo", BODY, {"Content-Type": "application/json"})  # noqa: E731
        asyncio.run(load(url, make, 500, concurrency))  # warm-up
        before = cpu_seconds(proc.pid)
        result = asyncio.run(load(url, make, requests, concurrency))
        cpu = cpu_seconds(proc.pid) - before
        assert result.ok == requests, result.errors[:3]
        return {"requests_per_s": requests / result.elapsed_s, "requests_per_cpu_s": requests / max(cpu, 1e-3)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve_main(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"h11": [], "quart": []}
    for _ in range(args.rounds):
        for stack in rows:
            rows[stack].append(measure(stack, args.requests, args.concurrency))
            print(stack, {k: round(v) for k, v in rows[stack][-1].items()}, file=sys.stderr)
    out = {stack: {key: round(statistics.median(r[key] for r in runs)) for key in runs[0]} for stack, runs in rows.items()}
    out["ratio"] = {key: round(out["h11"][key] / out["quart"][key], 2) for key in out["h11"]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
