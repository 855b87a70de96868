"""A small HTTP/1.1 server on Trio and h11, with routing and websocket upgrade.

Adapters give routes; handlers take a `Request` and return a `Response`. Error responses the
server makes itself (404, 405, 413, 500) come from the owning adapter's error builder, so
each protocol keeps its own error shape.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any

import h11
import trio

from hub.metrics import RequestMetrics

from .websocket import Flusher, WebSocket
from .wsframe import accept_token

log = logging.getLogger("hub.net.http")
access_log = logging.getLogger("hub.access")  # at log_level = "debug": one line per request and per websocket
SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "sign", "password", "session_token"})

SERVER_HEADER = ("server", "hub")
KEEPALIVE_IDLE = 75.0
BODY_TIMEOUT = 30.0  # a request body that trickles in slower than this is dropped


@dataclass
class Request:
    """A parsed HTTP request with its whole body."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    client: str = ""
    body_too_large: bool = False

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def query_one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The body as JSON; raises ValueError if it is not."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    def form(self) -> dict[str, str]:
        """An urlencoded body as a dict (last value wins); raises ValueError if not decodable."""
        text = self.body.decode("utf-8")
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False))


@dataclass
class Response:
    """An answer. `content_type=""` sends none; `stream` (instead of `body`) yields the body in chunks as
    they become ready (chunked transfer coding), e.g. a long-lived SockJS XHR-streaming response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Callable[[], AsyncIterator[bytes]] | None = None

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json", headers or [])

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode("utf-8"), content_type)


Handler = Callable[[Request], Awaitable[Response]]
WebSocketHandler = Callable[[Request, WebSocket], Awaitable[None]]
ErrorBuilder = Callable[[int, str], Response]

_PARAM = re.compile(r"\{(\w+)(?::(path))?\}")


def _compile(path: str) -> re.Pattern[str]:
    pos, out = 0, []
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[pos:m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(path[pos:]))
    return re.compile("".join(out) + r"\Z")


@dataclass
class Route:
    """`path` may hold `{name}` (one segment) or `{name:path}` (the rest). methods=None: any method.

    `long_poll`: the answer may take long (a long poll, a streaming answer); the server watches the
    connection meanwhile and cancels the handler or the stream when the client goes away."""

    path: str
    handler: Handler
    methods: Sequence[str] | None = None
    adapter: str = ""
    long_poll: bool = False

    def __post_init__(self) -> None:
        self.pattern = _compile(self.path)


@dataclass
class WebSocketRoute:
    """A websocket endpoint; `select` picks a subprotocol from the client's offer."""

    path: str
    handler: WebSocketHandler
    select: Callable[[list[str]], str | None] | None = None
    adapter: str = ""
    max_message: int = 1 << 20
    # Refuse the upgrade with 403 when this returns False (e.g. an Origin that is not allowed).
    accept: Callable[[Request], bool] | None = None

    def __post_init__(self) -> None:
        self.pattern = _compile(self.path)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def loggable(target: str) -> str:
    """A request target for the log, with credentials in the query string (`?token=...`) masked."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        parts.append(f"{key}=***" if eq and urllib.parse.unquote_plus(key).lower() in SECRET_PARAMS else item)
    return f"{path}?{'&'.join(parts)}"


def default_error(status: int, message: str) -> Response:
    return Response.json({"error": message}, status)


class HTTPServer:
    """Routes requests for one listener (possibly shared by several adapters)."""

    def __init__(
        self,
        routes: Sequence[Route | WebSocketRoute],
        *,
        errors: dict[str, ErrorBuilder] | None = None,
        fallback: str = "",
        metrics: RequestMetrics | None = None,
        max_body_bytes: int = 1 << 20,
        outbox_bytes: int = 1 << 20,
        write_timeout: float = 10.0,
    ) -> None:
        self.routes = list(routes)
        self.errors = errors or {}
        self.fallback = fallback
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.outbox_bytes = outbox_bytes
        self.write_timeout = write_timeout
        self.flusher = Flusher()
        self.tasks: trio.Nursery | None = None
        self.connections = 0
        self.idle = trio.Event()
        self.idle.set()

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self.tasks is not None, "HTTPServer.tasks must be set before serving websockets"
        self.tasks.start_soon(fn)

    def error(self, adapter: str, status: int, message: str) -> Response:
        builder = self.errors.get(adapter) or self.errors.get(self.fallback) or default_error
        return builder(status, message)

    def match(self, path: str, websocket: bool) -> tuple[Route | WebSocketRoute | None, dict[str, str]]:
        for route in self.routes:
            if isinstance(route, WebSocketRoute) != websocket:
                continue
            m = route.pattern.match(path)
            if m:
                return route, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
        return None, {}

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection until it closes (keep-alive, then maybe a websocket)."""
        self.connections += 1
        self.idle = trio.Event() if self.idle.is_set() else self.idle
        try:
            await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            self.connections -= 1
            if not self.connections:
                self.idle.set()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        try:
            peer = stream.socket.getpeername()
            client = f"{peer[0]}:{peer[1]}"
        except (OSError, AttributeError):
            client = ""
        while True:
            try:
                with trio.fail_after(KEEPALIVE_IDLE if conn.their_state is h11.IDLE else BODY_TIMEOUT):
                    event = await self._next_event(conn, stream)
            except trio.TooSlowError:
                return
            except h11.RemoteProtocolError as exc:
                await self._send_simple(conn, stream, self.error(self.fallback, exc.error_status_hint, "bad request"))
                return
            if not isinstance(event, h11.Request):
                return
            started = time.perf_counter()
            request = self._request(event, client)
            websocket = self._wants_websocket(request)
            route, params = self.match(request.path, websocket)
            if websocket and route is None:
                route, params = self.match(request.path, False)
            request.params = params
            adapter = route.adapter if route is not None else self.fallback
            try:
                with trio.fail_after(BODY_TIMEOUT):
                    await self._read_body(conn, stream, request)
            except trio.TooSlowError:
                return
            except h11.RemoteProtocolError:
                await self._send_simple(conn, stream, self.error(adapter, 400, "bad request"))
                return
            if isinstance(route, WebSocketRoute):
                accepted = await self._handshake(conn, stream, request, route)
                if accepted is not None:
                    del conn, event
                    await self._websocket(stream, request, route, *accepted)
                return
            if request.body_too_large:
                response = self.error(adapter, 413, "request body too large")
            elif route is None:
                response = self.error(adapter, 404, "not found")
            elif route.methods is not None and request.method not in route.methods:
                response = self.error(adapter, 405, "method not allowed")
                response.headers.append(("allow", ", ".join(route.methods)))
            else:
                try:
                    if route.long_poll:
                        answered = await self._watching(conn, stream, partial(route.handler, request))
                        if not answered:
                            return  # the client went away
                        response = answered[0]
                    else:
                        response = await route.handler(request)
                except Exception:
                    log.exception("handler %s failed", route.path)
                    response = self.error(adapter, 500, "internal error")
            if self.metrics is not None:
                self.metrics.observe(adapter or "http", response.status, time.perf_counter() - started)
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug('%s "%s %s" %d %.1fms', client, request.method, loggable(request.target), response.status,
                                 (time.perf_counter() - started) * 1000)
            keep = not request.body_too_large
            if response.stream is not None and isinstance(route, Route) and route.long_poll:
                if not await self._watching(conn, stream, partial(self._send, conn, stream, response, keep)):
                    return
            else:
                await self._send(conn, stream, response, keep)
            if not keep or conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    @staticmethod
    async def _watching(conn: h11.Connection, stream: trio.SocketStream, fn: Callable[[], Awaitable[Any]]) -> list[Any]:
        """`[fn()]`, run while reading the connection; `[]` if the client closed it (then `fn` was cancelled).
        Bytes that arrive meanwhile (a pipelined request) go to h11 for later, and the watch ends."""
        result: list[Any] = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if data:
                    conn.receive_data(data)
                else:
                    nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            result.append(await fn())
            nursery.cancel_scope.cancel()
        return result

    async def _next_event(self, conn: h11.Connection, stream: trio.SocketStream) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            return event

    async def _read_body(self, conn: h11.Connection, stream: trio.SocketStream, request: Request) -> None:
        parts, size = [], 0
        while True:
            event = await self._next_event(conn, stream)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_body_bytes:
                    request.body_too_large = True
                    return
                parts.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                request.body = b"".join(parts)
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed mid-body")
            else:
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")

    @staticmethod
    def _request(event: h11.Request, client: str) -> Request:
        target = event.target.decode("latin-1")
        parsed = urllib.parse.urlsplit(target)
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        return Request(
            method=event.method.decode("ascii"),
            target=target,
            path=urllib.parse.unquote(parsed.path),
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers=headers,
            client=client,
        )

    @staticmethod
    def _wants_websocket(request: Request) -> bool:
        return (
            request.method == "GET"
            and "websocket" in (request.header("upgrade") or "").lower()
            and "upgrade" in (request.header("connection") or "").lower()
        )

    async def _send(self, conn: h11.Connection, stream: trio.SocketStream, response: Response, keep: bool) -> None:
        headers = [SERVER_HEADER]
        if response.content_type:
            headers.append(("content-type", response.content_type))
        if response.stream is None:
            headers.append(("content-length", str(len(response.body))))
        headers += response.headers
        if not keep:
            headers.append(("connection", "close"))
        data = conn.send(h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status)))
        if response.stream is not None:
            await stream.send_all(data)
            chunks = response.stream()
            try:
                async for chunk in chunks:
                    await stream.send_all(conn.send(h11.Data(data=chunk)))
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            data = b""
        data += conn.send(h11.Data(data=response.body)) if response.body else b""
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)

    async def _send_simple(self, conn: h11.Connection, stream: trio.SocketStream, response: Response) -> None:
        try:
            await self._send(conn, stream, response, keep=False)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _handshake(self, conn: h11.Connection, stream: trio.SocketStream, request: Request,
                         route: WebSocketRoute) -> tuple[str | None, bytes] | None:
        """Answer the upgrade; return (subprotocol, bytes already received after it), or None if refused."""
        key = request.header("sec-websocket-key")
        if not key or request.header("sec-websocket-version") != "13":
            await self._send(conn, stream, self.error(route.adapter, 400, "bad websocket handshake"), keep=False)
            return None
        if route.accept is not None and not route.accept(request):
            await self._send(conn, stream, self.error(route.adapter, 403, "request origin not allowed"), keep=False)
            return None
        offered = [p.strip() for p in (request.header("sec-websocket-protocol") or "").split(",") if p.strip()]
        subprotocol = route.select(offered) if route.select else None
        headers = [("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", accept_token(key))]
        if subprotocol:
            headers.append(("sec-websocket-protocol", subprotocol))
        await stream.send_all(conn.send(h11.InformationalResponse(status_code=101, headers=headers)))
        if self.metrics is not None:
            self.metrics.observe(route.adapter or "http", 101, 0.0)
        return subprotocol, bytes(conn.trailing_data[0])

    async def _websocket(self, stream: trio.SocketStream, request: Request, route: WebSocketRoute,
                         subprotocol: str | None, initial: bytes) -> None:
        ws = WebSocket(stream, subprotocol=subprotocol, flusher=self.flusher, spawn=self._spawn,
                       outbox_bytes=self.outbox_bytes, initial=initial, max_message=route.max_message,
                       write_timeout=self.write_timeout)
        started = time.perf_counter()
        try:
            await ws.serve(lambda w: route.handler(request, w))
        finally:
            if access_log.isEnabledFor(logging.DEBUG):
                access_log.debug('%s "GET %s" 101 websocket closed %s after %.1fs', request.client, loggable(request.target),
                                 ws.close_code or ws.peer_close_code, time.perf_counter() - started)
