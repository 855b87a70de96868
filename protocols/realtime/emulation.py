"""Centrifugo's bidirectional emulation: the HTTP-streaming and SSE transports and the `/emulation` endpoint,
as centrifuge-js uses them when websockets are blocked.

    POST <http_stream_path>   body: the client's first commands (the connect), JSON lines, or varint-delimited
                              Protobuf with `Content-Type: application/octet-stream`; the answer is a streaming
                              response: one JSON reply or push per line, or varint-delimited Protobuf `Reply`s
    GET  <sse_path>?cf_connect=<commands>   (or POST with the commands as body): a `text/event-stream` response,
                              `\\r\\n` then one `data: <reply>` event per reply or push
    POST <emulation_path>     `{"session", "node", "data"}` (JSON: `data` is the commands text as a JSON string) or
                              a Protobuf `EmulationRequest`: the commands go to that session; 204

The connect reply of these transports carries `session` and `node`, which the client puts in every emulation
request. Everything else (pings, which the client answers through /emulation, pushes, the disconnect notice
before the response ends) is the websocket protocol's, framed for the response.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import trio

from hub.adapters import AdapterContext
from hub.net.http import Request, Response, Route
from hub.net.httpstream import StreamConnection, serve_stream

from .proto import centrifugo_client_pb2 as pb
from .sdk import HTTP_STREAM_JSON_WIRE, HTTP_STREAM_PROTOBUF_WIRE, SSE_WIRE, SdkWire
from .server import sdk_connection

log = logging.getLogger("hub.realtime.emulation")

OCTET = "application/octet-stream"
# A client that does not take a write within this long is dropped (Centrifugo: a 1 s write deadline; a bit
# more here, for loaded machines).
WRITE_TIMEOUT = 5.0
STREAM_HEADERS = [("cache-control", "private, no-cache, no-store, must-revalidate, max-age=0"), ("pragma", "no-cache"),
                  ("expire", "0"), ("x-accel-buffering", "no")]


def _preflight() -> Response:
    return Response(204, b"", "", [("access-control-max-age", "300"), ("access-control-allow-methods", "POST, OPTIONS")])


def _sessions(ctx: AdapterContext) -> dict[str, tuple[StreamConnection, SdkWire]]:
    return ctx.state.setdefault("emulation", {})


def _closing_frame(wire: SdkWire) -> Any:
    def frame(code: int, reason: str) -> bytes:
        reconnect = not (3500 <= code < 4000 or 4500 <= code < 5000)
        return wire.push({"disconnect": {"code": code, "reason": reason, "reconnect": reconnect}})

    return frame


def _open(ctx: AdapterContext, request: Request, transport: str, first: bytes, wire: SdkWire, content_type: str,
          prelude: bytes = b"") -> Response:
    """Start a session served by the SDK protocol on a streaming response."""
    nursery: trio.Nursery = ctx.state["sessions"]
    conn = StreamConnection(ctx.hub.max_queue_bytes, nursery.start_soon, _closing_frame(wire))
    sid = str(uuid.uuid4())
    sessions = _sessions(ctx)
    sessions[sid] = (conn, wire)
    opened = trio.current_time()

    async def serve() -> None:
        try:
            await sdk_connection(ctx, conn, first, wire, opened, request, transport, emulation=sid)
        except Exception:
            log.exception("emulated connection failed")
        finally:
            sessions.pop(sid, None)
            conn.close(3000, "")

    nursery.start_soon(serve)
    return Response(200, b"", content_type, list(STREAM_HEADERS), stream=serve_stream(conn, prelude),
                    write_timeout=WRITE_TIMEOUT)


async def http_stream_endpoint(ctx: AdapterContext, request: Request) -> Response:
    if request.method == "OPTIONS":
        return _preflight()
    if request.method != "POST":
        return Response(405, b"", "")
    if request.header("content-type") == OCTET:
        return _open(ctx, request, "http_stream", request.body, HTTP_STREAM_PROTOBUF_WIRE, OCTET)
    return _open(ctx, request, "http_stream", request.body, HTTP_STREAM_JSON_WIRE, "text/plain; charset=utf-8")


async def sse_endpoint(ctx: AdapterContext, request: Request) -> Response:
    if request.method == "GET":
        first = (request.query_one("cf_connect") or "").encode()
        if not first:
            return Response(400, b"", "")
    elif request.method == "POST":
        first = request.body
    else:
        return Response(405, b"", "")
    return _open(ctx, request, "sse", first, SSE_WIRE, "text/event-stream; charset=utf-8", b"\r\n")


def _request(request: Request) -> tuple[str, str, Any]:
    """(node, session, data) of an emulation request; ValueError if malformed."""
    if request.header("content-type") == OCTET:
        message = pb.EmulationRequest()
        try:
            message.ParseFromString(request.body)
        except Exception as exc:
            raise ValueError("not an EmulationRequest") from exc
        return message.node, message.session, bytes(message.data)
    body = request.json()
    if not isinstance(body, dict) or not isinstance(body.get("session", ""), str) or not isinstance(body.get("node", ""), str):
        raise ValueError("not an emulation request")
    return body.get("node", ""), body.get("session", ""), body.get("data")


async def emulation_endpoint(ctx: AdapterContext, request: Request) -> Response:
    """Commands for an emulated session (Centrifugo: 204; 400 malformed; 404 another node)."""
    if request.method == "OPTIONS":
        return _preflight()
    if request.method != "POST":
        return Response(405, b"", "")
    try:
        node, session, data = _request(request)
    except ValueError:
        return Response(400, b"", "")
    if node != ctx.hub.node_id:
        return Response(404, b"", "")
    entry = _sessions(ctx).get(session)
    if entry is None:
        return Response(204, b"", "")  # the session ended (Centrifugo answers the same)
    conn, wire = entry
    if not wire.binary:
        if isinstance(data, bytes):  # a Protobuf request for a JSON session: its data is a JSON string
            try:
                data = json.loads(data)
            except ValueError:
                return Response(400, b"", "")
        if not isinstance(data, str):
            return Response(400, b"", "")
        await conn.deliver(data, ctx.config.hub.write_timeout)
    else:
        if not isinstance(data, bytes):
            return Response(400, b"", "")
        await conn.deliver(data, ctx.config.hub.write_timeout)
    return Response(204, b"", "")


def _cors(ctx: AdapterContext, handler: Any) -> Any:
    """Centrifugo's CORS middleware on these endpoints: an allowed Origin (client.allowed_origins) is echoed, with
    credentials and the requested headers; others get no CORS headers (the browser then refuses the answer)."""
    from . import origin_allowed

    async def wrapped(request: Request) -> Response:
        response = await handler(ctx, request)
        origin = request.header("origin")
        if origin is not None and origin_allowed(ctx, request):
            response.headers.append(("access-control-allow-origin", origin))
            wanted = request.header("access-control-request-headers")
            if wanted and wanted != "null":
                response.headers.append(("access-control-allow-headers", wanted))
            response.headers.append(("access-control-allow-credentials", "true"))
        return response

    return wrapped


def routes(ctx: AdapterContext) -> list[Route]:
    """The emulation routes [realtime] enables (http_stream, sse; /emulation with either)."""
    s = ctx.settings
    out: list[Route] = []
    if s.http_stream:
        out.append(Route(s.http_stream_path, _cors(ctx, http_stream_endpoint), long_poll=True))
    if s.sse:
        out.append(Route(s.sse_path, _cors(ctx, sse_endpoint), long_poll=True))
    if s.http_stream or s.sse:
        out.append(Route(s.emulation_path, _cors(ctx, emulation_endpoint)))
    return out
