"""A bare h11 + Trio HTTP server for the command API's baseline: reads each request whole and answers a fixed
body (the hub's own reply to one publish), nothing else. `python -m bench.h11_hello` prints {"port": N}."""

from __future__ import annotations

import json
from functools import partial

import h11
import trio

BODY = b'[{"body": null, "error": null, "method": "publish"}]'
HEADERS = [("content-type", "application/json"), ("content-length", str(len(BODY)))]


async def handle(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.EndOfMessage):
                out = conn.send(h11.Response(status_code=200, headers=HEADERS))
                out += conn.send(h11.Data(data=BODY)) + conn.send(h11.EndOfMessage())
                await stream.send_all(out)
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (trio.BrokenResourceError, h11.ProtocolError):
        return


async def main() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        print(json.dumps({"port": listeners[0].socket.getsockname()[1]}), flush=True)


if __name__ == "__main__":
    trio.run(main)
