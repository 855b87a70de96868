"""Peer: a broadcast server on the `websockets` library, the way its docs build one.

    python -m bench.peers.ws_broadcast [--port 0]     # prints {"port": N} once listening

Protocol (JSON text frames): `{"subscribe": CH}` -> `{"subscribed": CH}`;
`{"publish": CH, "data": [d, ...]}` -> each d goes to CH's subscribers as `{"ch": CH, "data": d}`
with `websockets.broadcast` (encoded once, no backpressure), then `{"ok": n}` to the publisher.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


async def main(host: str, port: int) -> None:
    channels: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        mine: set[str] = set()
        try:
            async for message in ws:
                try:
                    obj = json.loads(message)
                except ValueError:
                    continue
                if "subscribe" in obj:
                    ch = str(obj["subscribe"])
                    channels.setdefault(ch, set()).add(ws)
                    mine.add(ch)
                    await ws.send(json.dumps({"subscribed": ch}))
                elif "publish" in obj:
                    ch = str(obj["publish"])
                    subs = channels.get(ch, set())
                    items = obj.get("data") or []
                    for d in items:
                        broadcast(subs, json.dumps({"ch": ch, "data": d}, separators=(",", ":")))
                    await ws.send(json.dumps({"ok": len(items)}))
        except ConnectionClosed:
            pass  # bench clients just drop the TCP connection when they are done
        finally:
            for ch in mine:
                channels[ch].discard(ws)

    async with serve(handler, host, port, ping_interval=None, compression=None, max_size=16 << 20,
                     max_queue=None, backlog=4096) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    asyncio.run(main(a.host, a.port))
