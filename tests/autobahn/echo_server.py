"""A websocket echo endpoint on the hub's own transport (hub.net only): the Autobahn fuzzingclient's target."""

from __future__ import annotations

import argparse
import sys

import trio

from hub.net.accept import accept_loop
from hub.net.http import HTTPServer, Request, WebSocketRoute
from hub.net.websocket import WebSocket

MAX_MESSAGE = 20 * 1024 * 1024  # Autobahn 9.x sends messages up to 16 MiB


async def echo(request: Request, ws: WebSocket) -> None:
    while (message := await ws.receive()) is not None:
        ws.send(message)


async def main(port: int) -> None:
    server = HTTPServer([WebSocketRoute("/", echo, max_message=MAX_MESSAGE)], outbox_bytes=64 * 1024 * 1024)
    async with trio.open_nursery() as nursery:
        server.tasks = nursery
        nursery.start_soon(server.flusher.run)
        (listener,) = await trio.open_tcp_listeners(port, host="127.0.0.1")
        await nursery.start(lambda task_status: accept_loop(listener, server.handle, nursery,
                                                            open_connections=lambda: server.connections,
                                                            freed=server.closed_lot, task_status=task_status))
        print(f"echo server on ws://127.0.0.1:{listener.socket.getsockname()[1]}/", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9001)
    try:
        trio.run(main, parser.parse_args().port)
    except KeyboardInterrupt:
        sys.exit(0)
