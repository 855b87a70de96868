"""Peer: a python-socketio server (AsyncServer on aiohttp) that fans out to a room.

    python -m bench.peers.sio_server [--port 0]     # prints {"port": N} once listening

Clients connect to `/socket.io/?EIO=4&transport=websocket` and join a room through the connect
auth payload (`40{"channel": CH}`); a `pub` event `{"ch": CH, "items": [d, ...]}` emits each d as
event `m` to the room and acknowledges with the count.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import socketio
from aiohttp import web


async def main(host: str, port: int) -> None:
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=600, ping_timeout=600,
                               max_http_buffer_size=16 << 20, cors_allowed_origins="*")

    @sio.event
    async def connect(sid: str, environ: dict, auth: dict | None = None) -> None:
        channel = (auth or {}).get("channel")
        if channel:
            await sio.enter_room(sid, str(channel))

    @sio.on("pub")
    async def pub(sid: str, data: dict) -> int:
        ch = str(data.get("ch"))
        items = data.get("items") or []
        for d in items:
            await sio.emit("m", d, room=ch)
        return len(items)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    asyncio.run(main(a.host, a.port))
