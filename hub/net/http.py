"""A small HTTP/1.1 server on Trio and h11, with routing and websocket upgrade.

Adapters give routes; handlers take a `Request` and return a `Response`. Error responses the
server makes itself (400, 404, 405, 408, 413, 431, 501, 503, 500) come from the owning adapter's
error builder, so each protocol keeps its own error shape. RFC 9112 details handled here: HEAD,
`Expect: 100-continue`, `Date`, limits on the head and body and their read times, a keep-alive idle
timeout, a cap on concurrent connections, `GET /health`, and a drain at shutdown (the request in
progress is answered with `Connection: close`, idle keep-alive connections close at once).
The websocket handshake is wsproto's (the common valid upgrade is answered by `wshandshake` with the same
bytes); frames after it are ours (`wsframe`, measured faster).
The common small keep-alive request (whole in the buffer, plain head, Content-Length body) is parsed and
answered by `fasthttp` with h11's exact bytes, and so is the head of a plain websocket upgrade (then answered by
`wshandshake`); everything else, errors and refusals included, goes through h11 (and wsproto).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any

import h11
import trio
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection
from wsproto.events import Request as WsRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WsHandshakeError

from hub.logs import rate_limited
from hub.metrics import RequestMetrics
from hub.utf8 import compact_json

from . import fasthttp, wsframe
from .deadlines import Deadlines
from .limits import Exempt, IPCounts, IPRates, address_of
from .tls import raw_fd, read_fd
from .websocket import SLOW_CLOSE, Flusher, WebSocket
from .wshandshake import accept_bytes, plain_fields, plain_upgrade

log = logging.getLogger("hub.net.http")
access_log = logging.getLogger("hub.access")  # at log_level = "debug": one line per request and per websocket
SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "sign", "password", "session_token"})

SERVER_HEADER = ("server", "hub")
HEALTH_PATH = "/health"


@dataclass
class Limits:
    """What one listener allows a client ([hub] keys of the same names, max_connections per adapter)."""

    header_timeout: float = 10.0  # a request head must arrive within this once it has started
    body_timeout: float = 30.0  # a request body that trickles in slower than this is dropped (408)
    keepalive_timeout: float = 75.0  # an idle keep-alive connection is closed after this
    max_header_bytes: int = 32768  # request line plus headers (431 beyond)
    max_headers: int = 100  # header fields (431 beyond)
    max_connections: int = 10000  # concurrent connections; more are answered 503 / closed 1013
    max_connections_per_ip: int = 0  # concurrent connections of one client address (0: no limit), likewise
    rate_limit: float = 0.0  # requests a second of one client address (0: no limit); more are answered 429
    rate_limit_burst: float = 0.0
    exempt: Exempt = field(default_factory=lambda: Exempt(()))  # addresses the per-IP limits skip


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
    raw_path: str = ""
    tls: bool = False  # arrived over TLS (https, wss)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def query_one(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The body as JSON; raises ValueError if it is not (nesting too deep for the parser included)."""
        try:
            return json.loads(self.body)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

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
    # A streamed chunk that cannot be written within this many seconds drops the connection (a client that
    # stopped reading); None: no limit.
    write_timeout: float | None = None

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
        body = compact_json(obj)
        return cls(status, body, "application/json", headers or [])

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode("utf-8"), content_type)


Handler = Callable[[Request], Awaitable[Response]]
WebSocketHandler = Callable[[Request, WebSocket], Awaitable[Any]]  # may return a coroutine to tail-call (HTTPServer.handle)
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
    A route that allows GET answers HEAD too (without the body).

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
    """A websocket endpoint; `select` picks a subprotocol from the client's offer; `slow_close` is the
    close code and reason for a client that lets its outbox overflow (the adapter's slow-client code)."""

    path: str
    handler: WebSocketHandler
    select: Callable[[list[str]], str | None] | None = None
    adapter: str = ""
    max_message: int = 1 << 20
    slow_close: tuple[int, str] = SLOW_CLOSE
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


_date_cache: tuple[int, str, bytes] = (0, "", b"")


def http_date() -> str:
    """The `Date` header value (RFC 9110 5.6.7), formatted once per second."""
    now = int(time.time())
    return (_date_cache if _date_cache[0] == now else _new_date(now))[1]


def http_date_bytes() -> bytes:
    """`http_date()` encoded."""
    now = int(time.time())
    return (_date_cache if _date_cache[0] == now else _new_date(now))[2]


def _new_date(now: int) -> tuple[int, str, bytes]:
    global _date_cache
    text = formatdate(now, usegmt=True)
    _date_cache = (now, text, text.encode("ascii"))
    return _date_cache


_H11 = object()  # _serve_fast: this request is h11's
_STREAK = 4  # requests a connection serves without waiting before it lets the others run (1: +15% CPU a request; 16: p99 x3)


def _read_now(fd: int) -> bytes | None:
    """What a plain TCP connection has already received (b"": closed), or None if nothing yet."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc


async def _write(stream: trio.SocketStream, fd: int, data: bytes) -> None:
    """`stream.send_all(data)`, in one system call without a scheduler trip when the socket buffer takes it all."""
    if fd >= 0:
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
        if sent == len(data):
            return
        data = memoryview(data)[sent:]  # type: ignore[assignment]
    await stream.send_all(data)


class _Timeout(Exception):
    """A request head or body did not arrive in time (answered 408)."""


class _TooLarge(Exception):
    """A request body declares or sends more than the listener accepts (answered 413)."""


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
        limits: Limits | None = None,
        fast_path: bool = True,
    ) -> None:
        self.routes = list(routes)
        self.fast_path = fast_path  # False: every request through h11 (the tests' oracle)
        self._routes_seen: dict[str, tuple[Route | WebSocketRoute | None, dict[str, str]]] = {}
        self._ws_routes_seen: dict[str, tuple[Route | WebSocketRoute | None, dict[str, str]]] = {}
        self.errors = errors or {}
        self.fallback = fallback
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.outbox_bytes = outbox_bytes
        self.write_timeout = write_timeout
        self.limits = limits or Limits()
        self.flusher = Flusher()
        self.spawn = self._spawn  # one bound method shared by every websocket (not one made per connection)
        self.tasks: trio.Nursery | None = None
        self.connections = 0
        self.idle = trio.Event()
        self.idle.set()
        self.draining = False
        self._waiting: set[trio.CancelScope] = set()  # connections idle between requests (h11's and TLS waits)
        # Plain sockets waiting for their first request, for their next one (keep-alive: the drain ends these
        # waits) and for other protocols' bytes (`receive_within`); `_timed_out`: the waits ended by their timeout.
        self._heads = Deadlines(self._time_out)
        self._idle = Deadlines(self._time_out)
        self._reads = Deadlines(self._time_out)
        self._timed_out: set[int] = set()
        self.closed_lot = trio.lowlevel.ParkingLot()  # unparked whenever a connection ends
        self.per_ip = IPCounts()
        self.rates = IPRates(self.limits.rate_limit, self.limits.rate_limit_burst)

    def _spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self.tasks is not None, "HTTPServer.tasks must be set before serving websockets"
        self.tasks.start_soon(fn)

    def error(self, adapter: str, status: int, message: str) -> Response:
        builder = self.errors.get(adapter) or self.errors.get(self.fallback) or default_error
        return builder(status, message)

    def drain(self) -> None:
        """Shutdown: /health answers 503, each request in progress is answered with `Connection: close`,
        requests that start from now on are refused (503) and idle keep-alive connections close now."""
        self.draining = True
        for scope in list(self._waiting):
            scope.cancel()
        for fd in self._idle:
            trio.lowlevel.notify_closing(fd)

    def match(self, path: str, websocket: bool, raw_path: str | None = None) -> tuple[Route | WebSocketRoute | None, dict[str, str]]:
        """The route for `path`; path parameters are percent-decoded once, from the raw path when given."""
        for route in self.routes:
            if isinstance(route, WebSocketRoute) != websocket:
                continue
            if raw_path is not None and raw_path != path:
                m = route.pattern.match(raw_path)
                if m:
                    return route, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
            m = route.pattern.match(path)
            if m:
                return route, m.groupdict()
        return None, {}

    def refused(self, adapter: str, reason: str) -> None:
        """Count a refusal by a limit (`hub_refused` in /metrics)."""
        if self.metrics is not None:
            self.metrics.refused(adapter or self.fallback or "http", reason)

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection until it closes (keep-alive, then maybe a websocket)."""
        self.connections += 1
        self.idle = trio.Event() if self.idle.is_set() else self.idle
        client = self._client(stream)  # "address:port", asked of the socket once
        # One string per address however many connections it has open (the accept loop's `host` when it gave one).
        host = sys.intern(getattr(stream, "host", None) or address_of(client))
        per_ip = self.limits.max_connections_per_ip
        counted = bool(per_ip and host and host not in self.limits.exempt)
        if counted:
            self.per_ip.add(host)
        ws = None
        try:
            if self.connections > self.limits.max_connections:
                await self._refuse(stream)
            elif counted and self.per_ip.open[host] > per_ip:
                self.refused(self.fallback, "connections per ip")
                await self._refuse(stream, "too many connections from this address", log_it=False)
            else:
                upgrade = await self._serve(stream, client)
                if upgrade is not None:
                    # Served here rather than inside _serve, so an open websocket keeps no HTTP request state.
                    ws, handler, logged = self._websocket(stream, upgrade)
                    started = time.perf_counter() if logged else 0.0
                    del upgrade, client
                    # What the websocket's life takes, inline here rather than in a WebSocket coroutine: the task
                    # of each open connection then keeps one coroutine frame fewer for the collector to walk.
                    # `with ws._scope`, spelled out: a `with` keeps its bound `__exit__` on the suspended frame.
                    scope = ws._scope
                    scope.__enter__()
                    try:
                        try:
                            try:
                                # An endpoint may end by returning the coroutine that serves the rest of the
                                # connection (a tail call: its own frame is then not kept for the connection's life).
                                handler = await handler
                                while isinstance(handler, Coroutine):
                                    handler = await handler
                            except Exception:
                                ws.handler_failed()
                            else:
                                ws.close(1000, "")
                            await ws.linger()
                        except BaseException as exc:
                            if not scope.__exit__(type(exc), exc, exc.__traceback__):
                                raise
                        else:
                            scope.__exit__(None, None, None)
                    finally:
                        ws.ended()
                        if logged:
                            access_log.debug("%s 101 websocket closed %s after %.1fs", logged,
                                             ws.close_code or ws.peer_close_code, time.perf_counter() - started)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            self.connections -= 1
            if counted:
                self.per_ip.remove(host)
            if not self.connections:
                self.idle.set()
            self.closed_lot.unpark_all()
            if ws is not None and ws in self.flusher._flight:
                await ws.settle()
            sock = getattr(stream, "socket", None)
            if isinstance(stream, trio.SocketStream) and sock is not None:
                sock.close()  # what aclose does, minus its checkpoint: 10,000 of them at a shutdown add up
            else:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await stream.aclose()

    @staticmethod
    def _client(stream: trio.SocketStream) -> str:
        peer = getattr(stream, "peer", None)  # what the accept loop was told
        if peer is not None:
            return peer
        from .tls import socket_of

        try:
            peer = socket_of(stream).getpeername()
            return f"{peer[0]}:{peer[1]}"
        except (OSError, AttributeError, IndexError, TypeError):
            return ""

    def _rate_wait(self, request: Request) -> float | None:
        """How long `request`'s address must wait, over its request rate (nothing counted then); None if it may go
        (counted, unless no rate is set or its address is exempt)."""
        limits = self.limits
        if not limits.rate_limit:
            return None
        host = address_of(request.client)
        if not host or host in limits.exempt:
            return None
        self.rates.configure(limits.rate_limit, limits.rate_limit_burst)
        return self.rates.retry_after(host)

    def _rate_limited(self, request: Request, adapter: str) -> Response | None:
        """429 with Retry-After when the client's address is over its request rate."""
        wait = self._rate_wait(request)
        if wait is None:
            return None
        self.refused(adapter, "http rate")
        response = self.error(adapter, 429, "too many requests")
        response.headers.append(("retry-after", str(max(1, math.ceil(wait)))))
        return response

    def _new_connection(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)

    async def _serve(self, stream: trio.SocketStream, client: str) -> list[Any] | None:
        """Requests until the connection ends: each plain one (`fasthttp`) answered here, anything else by h11.
        An accepted websocket upgrade is returned ([request, route, subprotocol, bytes after the handshake])
        for `handle` to serve."""
        tls = isinstance(stream, trio.SSLStream) or isinstance(getattr(stream, "_stream", None), trio.SSLStream)
        # A plain TCP connection is read and written on its descriptor: a request that is there and an answer
        # that fits in the socket buffer cost one system call each, with no trip through the scheduler.
        fd = stream.socket.fileno() if type(stream) is trio.SocketStream else -1
        buf, eof, first, streak = b"", False, True, 0
        while True:
            if not buf and not eof:
                # A new connection's first request is read before waiting: under a connect storm it is usually
                # there when the task starts (70% of them in `python -m bench connections`), and a wait costs a
                # trip through epoll; when it is not, the read costs one system call. The next request of a
                # keep-alive connection is waited for: a client sends it once it has read this answer (in
                # `python -m bench command_api`, a read at once found it 4.5% of the time).
                data = _read_now(fd) if first and fd >= 0 else None
                if data is None:
                    data = await self._wait_request(stream, first, fd)
                    streak = 0
                if not data:
                    return
                buf = data
            if streak >= _STREAK:  # requests kept coming without a wait: let the other tasks run
                await trio.lowlevel.checkpoint()
                streak = 0
            if not eof and self.fast_path:
                rest = await self._serve_fast(stream, fd, buf, client, tls)
                if rest is None:
                    return
                if type(rest) is list:
                    return rest  # an accepted websocket
                if rest is not _H11:
                    buf, first, streak = rest, False, streak + 1
                    continue
            conn = self._new_connection()
            conn.receive_data(buf)
            if eof:
                conn.receive_data(b"")
            served = await self._serve_h11(conn, stream, client, tls, first)
            if served is not True:
                return served or None  # the connection ends, or goes on as an accepted websocket
            data, eof = conn.trailing_data
            buf, first = bytes(data), False
            if eof and not buf:
                return

    async def _wait_request(self, stream: trio.SocketStream, first: bool, fd: int = -1) -> bytes | None:
        """The first bytes of the next request; None (close quietly) on an idle timeout or a drain while idle."""
        if not first and self.draining:
            return None
        limits = self.limits
        delay = limits.header_timeout if first else limits.keepalive_timeout
        if fd < 0 or self.tasks is None or delay == math.inf:
            return await self._receive_scoped(stream, delay, idle=not first)
        try:
            return await self._read_within(fd, delay, self._heads if first else self._idle)
        except trio.ClosedResourceError:
            return None  # drained while idle

    async def receive_within(self, stream: trio.abc.ReceiveStream, delay: float) -> bytes | None:
        """The next bytes `stream` receives (b"" once the peer has closed), or None if none come within `delay`
        seconds. A plain socket's wait is timed by `hub.net.deadlines` rather than a cancel scope of its own."""
        fd = read_fd(stream)
        if fd is None or self.tasks is None or delay == math.inf:
            return await self._receive_scoped(stream, delay)
        return await self._read_within(fd, delay, self._reads)

    async def _receive_scoped(self, stream: trio.abc.ReceiveStream, delay: float, idle: bool = False) -> bytes | None:
        """`stream.receive_some` within `delay` under a cancel scope of its own (TLS, h11's streams, no timeout, no
        task to time the waits), None on timeout; `idle`: a keep-alive wait that a drain ends (`_waiting`)."""
        with trio.CancelScope(deadline=trio.current_time() + delay) as scope:
            if idle:
                self._waiting.add(scope)
            try:
                data = await stream.receive_some(65536)
            finally:
                self._waiting.discard(scope)
        return None if scope.cancelled_caught else data

    async def _read_within(self, fd: int, delay: float, waits: Deadlines) -> bytes | None:
        """What a plain socket receives once readable, or None after `delay`: one task times the waits of every
        connection (`waits`, started on demand), ending a wait that times out with notify_closing. A cancel
        scope per wait would cost a tenth of a keep-alive request."""
        waits.add(fd, delay)
        if not waits.running:
            waits.running = True
            assert self.tasks is not None
            self.tasks.start_soon(waits.run, True)
        try:
            while True:
                await trio.lowlevel.wait_readable(fd)
                data = _read_now(fd)
                if data is not None:
                    return data
        except trio.ClosedResourceError:
            if fd in self._timed_out:
                return None
            raise
        finally:
            waits.discard(fd)
            self._timed_out.discard(fd)

    def _time_out(self, fd: int) -> None:
        self._timed_out.add(fd)
        trio.lowlevel.notify_closing(fd)

    def _route(self, path: str, raw_path: str, websocket: bool = False) -> tuple[Route | WebSocketRoute | None, dict[str, str]]:
        """`match()`, remembered per raw path (the routes never change) up to 1,024 paths of up to 256 characters
        (at most about 256 KiB) for plain requests and as many for upgrades."""
        seen = self._ws_routes_seen if websocket else self._routes_seen
        hit = seen.get(raw_path)
        if hit is None:
            hit = self.match(path, websocket, raw_path)
            if len(raw_path) <= 256:
                if len(seen) >= 1024:
                    seen.clear()
                seen[raw_path] = hit
        return hit[0], dict(hit[1]) if hit[1] else {}

    async def _serve_fast(self, stream: trio.SocketStream, fd: int, buf: bytes, client: str, tls: bool) -> Any:
        """Answer the plain request at the start of `buf` without h11: the bytes after it (the connection goes on),
        None (it ends), an accepted websocket upgrade (as `_serve` returns it), or `_H11` when h11 is to take the
        request (head or body not all there, anything unusual)."""
        limits = self.limits
        parsed = fasthttp.parse_head(buf, limits.max_header_bytes, limits.max_headers)
        if parsed is None:
            return _H11
        end = parsed.end + parsed.length
        if parsed.length > self.max_body_bytes or len(buf) < end:
            return _H11
        target = parsed.target
        if target[:1] != "/" or target[:2] == "//" or "#" in target:
            return _H11  # left to urlsplit
        raw_path, _, query = target.partition("?")
        path = urllib.parse.unquote(raw_path)
        if parsed.upgrade:
            return await self._upgrade_fast(stream, buf, parsed, path, raw_path, query, client, tls)
        route, params = self._route(path, raw_path)
        if isinstance(route, Route) and route.long_poll:
            return _H11
        started = time.perf_counter()
        head = parsed.method == "HEAD"
        request = Request("GET" if head else parsed.method, target, path,
                          urllib.parse.parse_qs(query, keep_blank_values=True) if query else {},
                          parsed.headers, buf[parsed.end:end], params, client, raw_path=raw_path, tls=tls)
        adapter = route.adapter if route is not None else self.fallback
        refuse = self.draining
        health = request.path == HEALTH_PATH and route is None
        limited = None if health else self._rate_limited(request, adapter)
        if refuse and not health:
            response = self.error(adapter, 503, "shutting down")
        elif limited is not None:
            response = limited
        else:
            response = await self._respond(request, route, adapter)
        if self.metrics is not None:
            self.metrics.observe(adapter or "http", response.status, time.perf_counter() - started)
        if access_log.isEnabledFor(logging.DEBUG):
            access_log.debug('%s "%s %s" %d %.1fms', client, parsed.method, loggable(target),
                             response.status, (time.perf_counter() - started) * 1000)
        keep = not self.draining
        data = None if response.stream is not None else fasthttp.render_head(
            response.status, response.content_type, len(response.body), response.headers, http_date_bytes(), keep,
            parsed.close)
        if data is None:  # h11 writes this one: hand it the request as it came
            conn = self._new_connection()
            conn.receive_data(buf[:end])
            while not isinstance(conn.next_event(), h11.EndOfMessage):
                pass
            await self._send(conn, stream, response, keep, head=head)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return None
        else:
            await _write(stream, fd, data if head or not response.body else data + response.body)
        if not keep or parsed.close:
            return None
        return buf[end:]

    async def _upgrade_fast(self, stream: trio.SocketStream, buf: bytes, parsed: fasthttp.Head, path: str, raw_path: str,
                            query: str, client: str, tls: bool) -> list[Any] | object:
        """Accept a plain websocket upgrade to a websocket route as `_serve_h11` would, without h11 (`_serve_fast`
        parsed the head): the upgrade as `_serve` returns it, or `_H11` for h11 to decide anything else (wsproto's
        cases, another route, a refusal by the drain, the rate limit or the route's origin check: a refusal changes
        nothing here, so h11's path makes the same checks again and answers as always)."""
        plain = None if self.draining or parsed.close else plain_fields(parsed.headers)
        if plain is None:
            return _H11
        route, params = self._route(path, raw_path, True)
        if not isinstance(route, WebSocketRoute):
            return _H11
        request = Request("GET", parsed.target, path, urllib.parse.parse_qs(query, keep_blank_values=True) if query else {},
                          parsed.headers, b"", params, client, raw_path=raw_path, tls=tls)
        if route.accept is not None and not route.accept(request):
            return _H11  # before the rate limit, which would count the request h11's path counts again
        if self._rate_wait(request) is not None:
            return _H11  # over the rate: h11's path refuses it (429) and counts the refusal
        subprotocol = await self._accept(stream, route, plain[0], plain[1], None)
        return [request, route, subprotocol, buf[parsed.end:]]

    async def _serve_h11(self, conn: h11.Connection, stream: trio.SocketStream, client: str, tls: bool,
                         first: bool) -> bool | list[Any]:
        """One request through h11 (or its error reply); True if the connection goes on (with `conn.trailing_data`),
        an accepted websocket upgrade as `_serve` returns it, False if the connection ends."""
        try:
            event = await self._next_request(conn, stream, first)
        except _Timeout:
            await self._send_simple(conn, stream, self.error(self.fallback, 408, "request timeout"))
            return False
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            message = "unsupported transfer coding" if status == 501 else "request header too large" if status == 431 else "bad request"
            await self._send_simple(conn, stream, self.error(self.fallback, status, message))
            return False
        if not isinstance(event, h11.Request):
            return False
        started = time.perf_counter()
        if len(event.headers) > self.limits.max_headers:
            await self._send_simple(conn, stream, self.error(self.fallback, 431, "too many header fields"))
            return False
        # h11 bounds only a head that arrives in pieces; one that arrives whole is measured here.
        if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers.raw_items()) > self.limits.max_header_bytes:
            await self._send_simple(conn, stream, self.error(self.fallback, 431, "request header too large"))
            return False
        request = self._request(event, client)
        request.tls = tls
        websocket = self._wants_websocket(request)
        head = request.method == "HEAD"
        if head:  # HEAD is GET without the body (RFC 9110 9.3.2): handlers see GET
            request.method = "GET"
        route, params = self.match(request.path, websocket, request.raw_path)
        if websocket and route is None:
            route, params = self.match(request.path, False, request.raw_path)
        request.params = params
        adapter = route.adapter if route is not None else self.fallback
        refuse = self.draining  # a request that starts during the drain is refused, not executed
        try:
            await self._read_body(conn, stream, request, expect=not refuse)
        except _Timeout:
            await self._send_simple(conn, stream, self.error(adapter, 408, "request timeout"))
            return False
        except _TooLarge:
            await self._send_simple(conn, stream, self.error(adapter, 413, "request body too large"))
            return False
        except h11.RemoteProtocolError as exc:
            status = 501 if exc.error_status_hint == 501 else 400
            await self._send_simple(conn, stream, self.error(adapter, status, "bad request"))
            return False
        limited = None if request.path == HEALTH_PATH and route is None else self._rate_limited(request, adapter)
        if refuse and not (request.path == HEALTH_PATH and route is None):
            response = self.error(adapter, 503, "shutting down")
        elif limited is not None:
            response = limited
        elif isinstance(route, WebSocketRoute):
            accepted = await self._handshake(conn, stream, event, request, route)
            return False if accepted is None else [request, route, *accepted]
        else:
            if isinstance(route, Route) and route.long_poll:
                answered = await self._watching(conn, stream, partial(self._respond, request, route, adapter))
                if not answered:
                    return False  # the client went away
                response = answered[0]
            else:
                response = await self._respond(request, route, adapter)
        if self.metrics is not None:
            self.metrics.observe(adapter or "http", response.status, time.perf_counter() - started)
        if access_log.isEnabledFor(logging.DEBUG):
            access_log.debug('%s "%s %s" %d %.1fms', client, "HEAD" if head else request.method, loggable(request.target),
                             response.status, (time.perf_counter() - started) * 1000)
        keep = not self.draining
        if response.stream is not None and isinstance(route, Route) and route.long_poll and not head:
            if not await self._watching(conn, stream, partial(self._send, conn, stream, response, keep)):
                return False
        else:
            await self._send(conn, stream, response, keep, head=head)
        if not keep or conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return False
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return False
        return True

    async def _respond(self, request: Request, route: Route | WebSocketRoute | None, adapter: str) -> Response:
        if request.path == HEALTH_PATH and request.method == "GET" and route is None:
            return Response(503 if self.draining else 200, b"{}", "application/json")
        if route is None:
            return self.error(adapter, 404, "not found")
        assert isinstance(route, Route)
        if route.methods is not None and request.method not in route.methods:
            response = self.error(adapter, 405, "method not allowed")
            allowed = list(route.methods) + (["HEAD"] if "GET" in route.methods and "HEAD" not in route.methods else [])
            response.headers.append(("allow", ", ".join(allowed)))
            return response
        try:
            return await route.handler(request)
        except RecursionError:  # JSON (or anything) nested deeper than the parser goes: the client's mistake
            return self.error(adapter, 400, "bad request: nested too deeply")
        except Exception:
            log.exception("handler %s failed", route.path)
            return self.error(adapter, 500, "internal error")

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

    async def _next_request(self, conn: h11.Connection, stream: trio.SocketStream, first: bool) -> Any:
        """The next request head. None (close quietly) on an idle timeout or a drain while idle;
        _Timeout once a started head takes longer than header_timeout."""
        limits = self.limits
        now = trio.current_time()
        started = bool(conn.trailing_data[0])
        deadline = now + (limits.header_timeout if first or started else limits.keepalive_timeout)
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            idle = not started and not first  # between two requests of a keep-alive connection
            if idle and self.draining:
                return None
            with trio.CancelScope(deadline=deadline) as scope:
                if idle:
                    self._waiting.add(scope)
                try:
                    data = await _receive(stream)
                finally:
                    self._waiting.discard(scope)
            if scope.cancelled_caught:
                if started:
                    raise _Timeout()
                return None
            conn.receive_data(data)
            if data and not started:
                started = True
                deadline = min(deadline, trio.current_time() + limits.header_timeout)

    async def _read_body(self, conn: h11.Connection, stream: trio.SocketStream, request: Request, *, expect: bool) -> None:
        """The whole body into `request.body`: 100 Continue first if the client waits for it, 413 at once
        for a declared (or chunk) size over the limit, 408 if it is not all there within body_timeout."""
        limit = self.max_body_bytes
        declared = request.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            request.body_too_large = True
            raise _TooLarge()
        if conn.they_are_waiting_for_100_continue:
            if not expect:
                return  # refused: answered without reading the body (the connection then closes)
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[SERVER_HEADER], reason=b"Continue")))
        event = conn.next_event()
        if type(event) is h11.EndOfMessage:  # no body (a GET): done without setting up the body timer
            request.body = b""
            return
        parts, size = [], 0
        with trio.move_on_after(self.limits.body_timeout) as scope:
            while True:
                if event is None:
                    event = conn.next_event()
                if event is h11.NEED_DATA:
                    event = None
                    # h11 does not say how big a chunk is announced to be; its reader knows (h11 >= 0.8).
                    if size + getattr(conn._reader, "_bytes_in_chunk", 0) > limit:
                        request.body_too_large = True
                        raise _TooLarge()
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                if isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > limit:
                        request.body_too_large = True
                        raise _TooLarge()
                    parts.append(event.data)
                    event = None
                elif isinstance(event, h11.EndOfMessage):
                    request.body = b"".join(parts)
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("connection closed mid-body")
                else:
                    raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
        if scope.cancelled_caught:
            raise _Timeout()

    @staticmethod
    def _request(event: h11.Request, client: str) -> Request:
        target = event.target.decode("latin-1")
        parsed = urllib.parse.urlsplit(target)
        headers: dict[str, str] = {}
        for name, value in event.headers.raw_items():  # a plain list (iterating Headers goes through Sequence)
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
            raw_path=parsed.path,
        )

    @staticmethod
    def _wants_websocket(request: Request) -> bool:
        return (
            request.method == "GET"
            and "websocket" in (request.header("upgrade") or "").lower()
            and "upgrade" in (request.header("connection") or "").lower()
        )

    def _head(self, response: Response, keep: bool) -> list[tuple[str, str]]:
        headers = [SERVER_HEADER, ("date", http_date())]
        if response.content_type:
            headers.append(("content-type", response.content_type))
        if response.stream is None:
            headers.append(("content-length", str(len(response.body))))
        headers += response.headers
        if not keep:
            headers.append(("connection", "close"))
        return headers

    async def _send(self, conn: h11.Connection, stream: trio.SocketStream, response: Response, keep: bool,
                    head: bool = False) -> None:
        data = conn.send(h11.Response(status_code=response.status, headers=self._head(response, keep),
                                      reason=_reason(response.status)))
        if response.stream is not None and not head:
            await stream.send_all(data)
            chunks = response.stream()
            try:
                async for chunk in chunks:
                    with trio.move_on_after(response.write_timeout if response.write_timeout is not None else math.inf) \
                            as scope:
                        await stream.send_all(conn.send(h11.Data(data=chunk)))
                    if scope.cancelled_caught:
                        raise trio.BrokenResourceError("streamed response write timed out")
            finally:
                await chunks.aclose()  # type: ignore[attr-defined]
            data = b""
        if response.body and not head:  # a response to HEAD has the headers of the GET response, no body
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)

    async def _send_simple(self, conn: h11.Connection, stream: trio.SocketStream, response: Response) -> None:
        """An error answer that ends the connection (the request may not have been read to its end)."""
        if self.metrics is not None:
            self.metrics.observe(self.fallback or "http", response.status, 0.0)
        try:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await self._send(conn, stream, response, keep=False)
            else:  # h11 cannot answer (e.g. the head never parsed): write the response by hand
                await stream.send_all(self._raw_response(response))
            await self._linger(stream)
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    @staticmethod
    async def _linger(stream: trio.SocketStream, seconds: float = 1.0, max_bytes: int = 1 << 20) -> None:
        """Half-close and read what the client still sends for a moment, so that closing with unread
        input does not reset the connection before the client has read our answer."""
        try:
            await stream.send_eof()  # type: ignore[attr-defined]
        except AttributeError:
            return  # TLS has no half-close: closing sends close_notify after the answer
        left = max_bytes
        with trio.move_on_after(seconds):
            while left > 0:
                data = await stream.receive_some(65536)
                if not data:
                    return
                left -= len(data)

    def _raw_response(self, response: Response) -> bytes:
        lines = [f"HTTP/1.1 {response.status} {_reason(response.status).decode()}"]
        lines += [f"{k}: {v}" for k, v in self._head(response, keep=False)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body

    async def _handshake(self, conn: h11.Connection, stream: trio.SocketStream, event: h11.Request, request: Request,
                         route: WebSocketRoute) -> tuple[str | None, bytes] | None:
        """Answer the upgrade (the common valid request here, anything else with wsproto's handshake); return
        (subprotocol, bytes already received after it), or None if refused (answered in the adapter's error shape)."""
        plain = plain_upgrade(event)
        shake = None
        if plain is not None:
            offered = plain[1]
        else:
            shake = H11Handshake(ConnectionType.SERVER)
            try:
                shake.receive_data(h11.Connection(h11.CLIENT).send(event))
                offer = next((e for e in shake.events() if isinstance(e, WsRequest)), None)
            except WsHandshakeError as exc:
                reject = exc.event_hint if isinstance(exc.event_hint, RejectConnection) else RejectConnection()
                status = reject.status_code if reject.status_code in (400, 426) else 400
                response = self.error(route.adapter, status, "bad websocket handshake")
                response.headers += [(k.decode("latin-1"), v.decode("latin-1")) for k, v in reject.headers
                                     if k.lower() != b"content-length"]
                await self._send(conn, stream, response, keep=False)
                return None
            if offer is None:
                await self._send(conn, stream, self.error(route.adapter, 400, "bad websocket handshake"), keep=False)
                return None
            offered = list(offer.subprotocols)
        if route.accept is not None and not route.accept(request):
            self.refused(route.adapter, "origin")
            await self._send(conn, stream, self.error(route.adapter, 403, "request origin not allowed"), keep=False)
            return None
        subprotocol = await self._accept(stream, route, plain[0] if plain is not None else b"", offered, shake)
        return subprotocol, bytes(conn.trailing_data[0])

    async def _accept(self, stream: trio.SocketStream, route: WebSocketRoute, key: bytes, offered: list[str],
                      shake: H11Handshake | None) -> str | None:
        """Write the 101 (for `key` here, else wsproto's `shake`) with the subprotocol the route picks; return that."""
        subprotocol = route.select(list(offered)) if route.select else None
        if subprotocol is not None and subprotocol not in offered:
            subprotocol = None
        extra = [(b"server", b"hub"), (b"date", http_date_bytes())]
        if shake is None:
            data = accept_bytes(key, subprotocol, extra)
        else:
            data = shake.send(AcceptConnection(subprotocol=subprotocol, extra_headers=extra))
        await _send_small(stream, data)
        if self.metrics is not None:
            self.metrics.observe(route.adapter or "http", 101, 0.0)
        return subprotocol

    def _websocket(self, stream: trio.SocketStream, upgrade: list[Any]) -> tuple[WebSocket, Awaitable[Any], str]:
        """An accepted websocket, its endpoint's coroutine and its access-log label ("" when not logging).
        The coroutine is the only holder of the request, so an endpoint that no longer needs it (most,
        once they have read the query) lets it go."""
        request, route, subprotocol, initial = upgrade
        upgrade.clear()
        ws = WebSocket(stream, subprotocol=subprotocol, flusher=self.flusher, spawn=self.spawn,
                       outbox_bytes=self.outbox_bytes, initial=initial, max_message=route.max_message,
                       write_timeout=self.write_timeout, slow_close=route.slow_close, adapter=route.adapter,
                       metrics=self.metrics)
        logged = f'{request.client} "GET {loggable(request.target)}"' if access_log.isEnabledFor(logging.DEBUG) else ""
        return ws, route.handler(request, ws), logged

    async def _refuse(self, stream: trio.SocketStream, message: str = "too many connections", log_it: bool = True) -> None:
        """Over max_connections (or the per-address limit): read the head, then answer 503 (HTTP) or accept
        and close 1013 (websocket)."""
        conn = self._new_connection()
        if log_it:
            if self.metrics is not None:
                self.metrics.disconnected(self.fallback, "too many connections")
            log_refused(self.limits.max_connections)
        try:
            event = await self._next_request(conn, stream, True)
        except (_Timeout, h11.RemoteProtocolError):
            return
        if not isinstance(event, h11.Request):
            return
        request = self._request(event, "")
        route, _ = self.match(request.path, True, request.raw_path) if self._wants_websocket(request) else (None, {})
        if isinstance(route, WebSocketRoute):
            accepted = await self._handshake(conn, stream, event, request, route)
            if accepted is not None:
                with trio.move_on_after(1):
                    await stream.send_all(wsframe.close_frame(1013, message))
            return
        response = self.error(self.fallback, 503, message)
        response.headers.append(("retry-after", "1"))
        await self._send_simple(conn, stream, response)


async def _receive(stream: trio.SocketStream) -> bytes:
    """`stream.receive_some()`; a plain socket is read once it is readable (a request head has rarely arrived
    yet when the connection is accepted: this saves the read that would find nothing)."""
    fd = read_fd(stream)
    if fd is None:
        return await stream.receive_some(65536)
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc


async def _send_small(stream: trio.SocketStream, data: bytes) -> None:
    """`stream.send_all(data)`, but a plain socket gets one direct write first (a handshake answer fits its
    empty buffer): trio's send path costs more than the write itself."""
    fd = raw_fd(stream)
    if fd is not None:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            pass
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc
        if not data:
            return
    await stream.send_all(data)


def log_refused(limit: int) -> None:
    rate_limited(log, logging.WARNING, "max_connections", "connection refused: max_connections (%d) reached", limit)
