"""A cheap HTTP/1.1 keep-alive load generator (asyncio, raw sockets) for the request/response scenarios."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import LatencyHistogram


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LoadResult:
    elapsed_s: float
    hist: LatencyHistogram
    ok: int = 0
    errors: list[str] = field(default_factory=list)


def encode(req: Request, host: str) -> bytes:
    head = [f"{req.method} {req.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(req.body)}"]
    head += [f"{k}: {v}" for k, v in req.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + req.body


async def read_response(reader: asyncio.StreamReader) -> Response:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return Response(status, await reader.readexactly(length))
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return Response(status, bytes(body))
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def request(url: str, req: Request) -> Response:
    """One request on its own connection (setup calls: login, register...)."""
    host, port = url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(encode(req, f"{host}:{port}"))
        return await read_response(reader)
    finally:
        writer.close()


async def load(url: str, make: Callable[[int], Request], count: int, concurrency: int,
               check: Callable[[Response], str | None] = lambda r: None if r.status == 200 else f"HTTP {r.status}") -> LoadResult:
    """`count` requests made by `make(i)` (called just before sending, so time stamps are fresh) over
    `concurrency` keep-alive connections; request→response latency of each in the histogram."""
    host, port = url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    hostport = f"{host}:{port}"
    result = LoadResult(0.0, LatencyHistogram())
    counter = iter(range(count))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                started = time.perf_counter()
                writer.write(encode(make(i), hostport))
                resp = await read_response(reader)
                result.hist.add(time.perf_counter() - started)
                problem = check(resp)
                if problem is None:
                    result.ok += 1
                else:
                    result.errors.append(f"{problem}: {resp.body[:200].decode(errors='replace')}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result


def latency_ms(hist: LatencyHistogram) -> dict[str, float]:
    return {"p50": round(hist.percentile(50) * 1000, 2), "p99": round(hist.percentile(99) * 1000, 2),
            "max": round(hist.max * 1000, 2)}
