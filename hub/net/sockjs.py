"""SockJS transports (protocol 0.3, as sockjs-tornado 1.0 serves them), for any message protocol.

Routes under a prefix (the original Centrifuge uses `/connection`):

    GET  <prefix>/info                       {"websocket":true,"cookie_needed":true,"origins":["*:*"],"entropy":N}
    GET  <prefix>, <prefix>/                 "Welcome to SockJS!"
    GET  <prefix>/iframe*.html               the iframe page for iframe-based transports
    GET  <prefix>/<server>/<session>/websocket    SockJS over a websocket
    POST <prefix>/<server>/<session>/xhr          polling: `o`, then one packet per poll (`h` after 25 s idle)
    POST <prefix>/<server>/<session>/xhr_streaming  2 KiB prelude, `o`, then packets as they come, up to 128 KiB
    POST <prefix>/<server>/<session>/xhr_send     client → server: a JSON array of strings, 204
    GET  <prefix>/<server>/<session>/eventsource, htmlfile?c=, jsonp?c=; POST jsonp_send   (older browsers)

Packets: `o` open, `h` heartbeat, `a["msg",...]` messages (each a JSON string), `c[code,"reason"]` close.

Framing (see hub.net.framing): the application's payloads are framed once per fan-out by
`SOCKJS_WS` (one `a["..."]` websocket text frame per payload, as sockjs-tornado sends them) or
`SOCKJS_XHR` (`,"..."` elements, packed into one `a[...]` per poll or streaming write, so messages
queued between polls arrive together). The application handler gets a connection with the
surface of a hub WebSocket: `outbox` (the core session's queue), `receive()`, `send_frame()`,
`close(code, reason)`, `close_hook`, `closing`, `spawn()`; `framing` says how to frame payloads
for it. A session ends when the application closes it, or when no XHR request has been attached
for `disconnect_delay` seconds (the client went away); a closed session answers `c[...]` to polls
until it is forgotten. Both ways are bounded: replies by the outbox (send or disconnect), what the
client sends by `inbox_bytes` (a send that does not fit waits for the application, then closes the
session as slow).
"""

from __future__ import annotations

import json
import logging
import random
import re
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

from hub.core.outbox import Outbox
from hub.metrics import RequestMetrics

from .framing import Close
from .http import Request, Response, Route, WebSocketRoute
from .tls import socket_of
from .websocket import WebSocket
from .wsframe import TEXT, encode_frame

log = logging.getLogger("hub.net.sockjs")

HEARTBEAT_DELAY = 25.0
DISCONNECT_DELAY = 5.0
RESPONSE_LIMIT = 128 * 1024
PRELUDE = b"h" * 2048 + b"\n"
JS = "application/javascript; charset=UTF-8"
CACHE_SECONDS = 31536000
GO_AWAY = (3000, "Go away!")
ANOTHER_CONNECTION = (2010, "Another connection still open")
INTERRUPTED = (1002, "Connection interrupted")
MESSAGE_OVERHEAD = 64  # what one queued client message costs beyond its characters (a str object)
IFRAME = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script>
    document.domain = document.domain;
    _sockjs_onload = function(){SockJS.bootstrap_iframe();};
  </script>
  <script src="%s"></script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""

HTMLFILE_HEAD = b"""<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.%s;
    c.start();
    function p(d) {c.message(d);};
    window.onload = function() {c.stop();};
  </script>"""
HTMLFILE_HEAD += b" " * (1024 - len(HTMLFILE_HEAD) + 14) + b"\r\n\r\n"
_CALLBACK = re.compile(r"[A-Za-z0-9_.]+")  # sockjs-tornado took any text here (a cross-site scripting hole)

_string = json.encoder.encode_basestring_ascii


def close_packet(code: int, reason: str) -> bytes:
    """`c[code,"reason"]`, written as sockjs-tornado writes it."""
    return f'c[{code},"{reason}"]'.encode()


def message(payload: bytes) -> bytes:
    """One payload as a JSON string (ASCII, as sockjs-tornado's json.dumps writes it)."""
    return _string(payload.decode("utf-8")).encode()


class SockJSWebSocketFraming:
    """Over a websocket: one `a["<payload>"]` text frame per payload; the close notice `c[...]` is a frame too."""

    name = "sockjs-ws"

    def frame(self, payload: bytes) -> bytes:
        return encode_frame(TEXT, b"a[" + message(payload) + b"]")

    def pack(self, pending: bytes) -> bytes:
        return pending

    def closing(self, close: Close) -> bytes:
        return encode_frame(TEXT, close_packet(*close.sockjs))


class SockJSStreamFraming:
    """Over XHR: `,"<payload>"` elements, packed as `a[...]` with everything pending when a response goes out."""

    name = "sockjs-xhr"

    def frame(self, payload: bytes) -> bytes:
        return b"," + message(payload)

    def pack(self, pending: bytes) -> bytes:
        return b"a[" + pending[1:] + b"]"

    def closing(self, close: Close) -> bytes:
        return b""  # an XHR session answers `c[...]` to its next poll


SOCKJS_WS = SockJSWebSocketFraming()
SOCKJS_XHR = SockJSStreamFraming()


def decode_messages(data: str | bytes) -> list[str]:
    """A client packet: a JSON array of string messages (a single JSON string is one message); items that
    are not strings carry no SockJS message and are dropped. ValueError if the JSON is broken."""
    decoded = json.loads(data)
    return [m for m in (decoded if isinstance(decoded, list) else [decoded]) if isinstance(m, str)]


Handler = Callable[[Request, Any], Awaitable[None]]
Spawn = Callable[[Callable[[], Awaitable[None]]], None]


class _Changes:
    """An event that can be waited on again and again: `wake()` releases every current waiter."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def wake(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class XhrSession:
    """One SockJS session over XHR requests, as the application sees it (the surface of a hub WebSocket)."""

    framing = SOCKJS_XHR

    def __init__(self, sid: str, outbox_bytes: int, spawn: Spawn, *, inbox_bytes: int = 0,
                 on_slow: Callable[[], None] | None = None) -> None:
        self.id = sid
        self.outbox = Outbox(outbox_bytes, notify=self._on_outbox, on_overflow=self._on_overflow)
        self.close_hook: Callable[[], tuple[int, str]] | None = None
        self.close_args: tuple[int, str] | None = None
        self.receiver: object | None = None
        self.ended = False  # the client is gone (no request for disconnect_delay): receive() gives None
        self.inbox_limit = inbox_bytes or outbox_bytes  # what the client sent and the application has not taken
        self._incoming: deque[str] = deque()
        self._incoming_bytes = 0
        self._sender_waiting = False
        self._changes = _Changes()
        self._spawn = spawn
        self._on_slow = on_slow

    # -- the application's side -------------------------------------------------------------
    @property
    def closing(self) -> bool:
        return self.outbox.closed

    async def receive(self) -> Any:
        while True:
            if self._incoming:
                message = self._incoming.popleft()
                self._incoming_bytes -= len(message) + MESSAGE_OVERHEAD
                if self._sender_waiting:
                    self._changes.wake()  # room for the client's next send
                return message
            if self.ended or self.outbox.closed:
                return None
            await self._changes.wait()

    def send_frame(self, frame: bytes) -> bool:
        """Queue a payload, or close the session as slow (send or disconnect, never drop)."""
        return self.outbox.send(frame)

    def _on_overflow(self, messages: int) -> None:
        # The core (a session's outbox) has closed it as slow already and `close_hook` says how; else Go away.
        if self.close_args is None:
            self.close_args = self.close_hook() if self.close_hook is not None and self.outbox.closed else GO_AWAY
        self.outbox.close()
        if self._on_slow is not None:
            self._on_slow()

    def close(self, code: int = GO_AWAY[0], reason: str = GO_AWAY[1]) -> None:
        if self.close_args is None:
            self.close_args = (code, reason)
        self.outbox.close()

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._spawn(fn)

    # -- the transport's side ---------------------------------------------------------------
    def _on_outbox(self) -> None:
        # What was queued before a close goes out before the close packet, also when the session closes
        # between polls (sockjs-tornado sometimes drops it then, sometimes does not close at all).
        self._changes.wake()

    async def deliver(self, messages: list[str], timeout: float) -> bool:
        """Queue what the client sent for the application; False if the session is closed (nothing queued).

        Backpressure, as a websocket's unread socket gives it: while what is queued would pass
        `inbox_limit`, the send waits (up to `timeout`) for the application to take messages. A send that
        cannot be queued in time, or a second one while one waits, closes the session as slow (send or
        disconnect: counted as the outbox's overflow is). A send into an empty queue always fits."""
        size = sum(map(len, messages)) + MESSAGE_OVERHEAD * len(messages)
        if self._sender_waiting:
            self.outbox.overflow()
            return False
        deadline = trio.current_time() + timeout
        self._sender_waiting = True
        try:
            while self._incoming and self._incoming_bytes + size > self.inbox_limit:
                if self.outbox.closed or self.ended:
                    return False
                if trio.current_time() >= deadline:
                    log.debug("sockjs session %s does not take its messages; closing it as slow", self.id)
                    self.outbox.overflow()
                    return False
                with trio.move_on_at(deadline):
                    await self._changes.wait()
        finally:
            self._sender_waiting = False
        if self.outbox.closed or self.ended:
            return False
        self._incoming.extend(messages)
        self._incoming_bytes += size
        self._changes.wake()
        return True

    @property
    def send_waiting(self) -> bool:
        """A client's send is waiting for room (the application has not taken enough of the last ones)."""
        return self._sender_waiting

    @property
    def inbox_bytes(self) -> int:
        """What the client sent that the application has not taken yet (counted as `deliver` bounds it)."""
        return self._incoming_bytes

    def final_close(self) -> tuple[int, str]:
        if self.close_args is None:
            self.close_args = self.close_hook() if self.close_hook is not None else GO_AWAY
        return self.close_args

    def interrupt(self) -> None:
        """The client dropped the request it was waiting on: the session ends (sockjs-tornado: 1002)."""
        self.close(*INTERRUPTED)
        self.ended = True
        self._changes.wake()

    def attach(self, receiver: object) -> None:
        self.receiver = receiver
        self._changes.wake()

    def detach(self, receiver: object) -> None:
        if self.receiver is receiver:
            self.receiver = None
            self._changes.wake()

    async def next_packet(self, heartbeat: float) -> tuple[bytes, bool]:
        """The next packet for the attached request and whether the session is over: pending messages,
        else the close packet once closed, else `h` after `heartbeat` seconds."""
        with trio.move_on_after(heartbeat):
            while True:
                pending = self.outbox.take()
                if pending:
                    return SOCKJS_XHR.pack(pending), False
                if self.outbox.closed:
                    return close_packet(*self.final_close()), True
                await self._changes.wait()
        return b"h", False

    async def idle_for(self, delay: float) -> None:
        """Return once no request has been attached for `delay` seconds."""
        deadline: float | None = None
        while True:
            if self.receiver is None:
                if deadline is None:
                    deadline = trio.current_time() + delay
                if trio.current_time() >= deadline:
                    return
                with trio.move_on_at(deadline):
                    await self._changes.wait()
            else:
                deadline = None
                await self._changes.wait()


class WebSocketSession:
    """SockJS over a websocket: a hub WebSocket whose messages arrive in SockJS packets.

    Payloads go straight into the websocket's outbox, framed by `SOCKJS_WS`; closing queues the
    `c[code,"reason"]` frame and then a close frame with no status code, as sockjs-tornado does."""

    framing = SOCKJS_WS

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.outbox = ws.outbox
        self._incoming: deque[str] = deque()
        ws.close_hook = lambda: (1005, "")

    @property
    def closing(self) -> bool:
        return self.ws.closing

    @property
    def close_hook(self) -> Any:
        return None

    @close_hook.setter
    def close_hook(self, hook: Any) -> None:
        pass  # the close notice is queued by the wire format (`Framing.closing`); the close frame has no status

    async def receive(self) -> Any:
        while not self._incoming:
            data = await self.ws.receive()
            if data is None:
                return None
            if not data:
                continue
            try:
                self._incoming.extend(decode_messages(data))
            except (ValueError, UnicodeDecodeError, RecursionError):
                self.abort()  # sockjs-tornado drops the connection without a close frame
                return None
        return self._incoming.popleft()

    def send_frame(self, frame: bytes) -> bool:
        return self.ws.send_frame(frame)

    def close(self, code: int = GO_AWAY[0], reason: str = GO_AWAY[1]) -> None:
        if not self.ws.closing:
            self.ws.outbox.force(encode_frame(TEXT, close_packet(code, reason)))
        self.ws.close(1005, "")

    def abort(self) -> None:
        try:
            socket_of(self.ws.stream).close()
        except (OSError, AttributeError):
            pass

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        self.ws.spawn(fn)

    async def heartbeat(self, delay: float) -> None:
        while not self.ws.closing:
            await trio.sleep(delay)
            if not self.ws.closing:
                self.ws.send_frame(encode_frame(TEXT, b"h"))


class SockJSServer:
    """The SockJS endpoints under `prefix`; `handler(request, connection)` serves one session until it ends."""

    def __init__(self, prefix: str, handler: Handler, *, outbox_bytes: int = 1 << 20,
                 heartbeat: float = HEARTBEAT_DELAY, disconnect_delay: float = DISCONNECT_DELAY,
                 response_limit: int = RESPONSE_LIMIT, websocket: bool = True, cookie_needed: bool = True,
                 sockjs_url: str = "https://cdn.jsdelivr.net/sockjs/1.0/sockjs.min.js", max_message: int = 1 << 20,
                 inbox_bytes: int = 0, write_timeout: float = 10.0, metrics: RequestMetrics | None = None,
                 adapter: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.handler = handler
        self.outbox_bytes = outbox_bytes
        # Per XHR session: what a client's sends may queue for the application (default `outbox_bytes`), how
        # long a send may wait for room and a streamed packet for its client to take it.
        self.inbox_bytes = inbox_bytes
        self.write_timeout = write_timeout
        self.metrics = metrics  # slow sessions count in metrics.disconnects under `adapter`
        self.adapter = adapter
        self.heartbeat = heartbeat
        self.disconnect_delay = disconnect_delay
        self.response_limit = response_limit
        self.websocket_enabled = websocket
        self.cookie_needed = cookie_needed
        self.sockjs_url = sockjs_url
        self.max_message = max_message
        self.sessions: dict[str, XhrSession] = {}
        self.nursery: trio.Nursery | None = None  # where XHR sessions run (set before serving)

    def routes(self) -> list[Route | WebSocketRoute]:
        p = self.prefix
        base = p + "/{server}/{session}"
        routes: list[Route | WebSocketRoute] = [
            Route(p + "/info", self.info),
            Route(p, self.greeting),
            Route(p + "/", self.greeting),
            Route(p + "/{iframe}", self.iframe),
            Route(base + "/xhr", self.xhr, long_poll=True),
            Route(base + "/xhr_streaming", self.xhr_streaming, long_poll=True),
            Route(base + "/xhr_send", self.xhr_send),
            Route(base + "/eventsource", self.eventsource, methods=("GET",), long_poll=True),
            Route(base + "/htmlfile", self.htmlfile, methods=("GET",), long_poll=True),
            Route(base + "/jsonp", self.jsonp, methods=("GET",), long_poll=True),
            Route(base + "/jsonp_send", self.jsonp_send, methods=("POST",)),
        ]
        if self.websocket_enabled:
            routes.append(WebSocketRoute(base + "/websocket", self.websocket, max_message=self.max_message))
            routes.append(Route(base + "/websocket", self.not_upgraded))
        return routes

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _cors(request: Request) -> list[tuple[str, str]]:
        origin = request.header("origin") or "*"
        headers = [("access-control-allow-origin", "*" if origin == "null" else origin),
                   ("access-control-allow-credentials", "true")]
        wanted = request.header("access-control-request-headers")
        if wanted:
            headers.append(("access-control-allow-headers", wanted))
        return headers

    def _cookie(self, request: Request) -> list[tuple[str, str]]:
        if not self.cookie_needed:
            return []
        value = "dummy"
        for part in (request.header("cookie") or "").split(";"):
            name, _, val = part.strip().partition("=")
            if name == "JSESSIONID" and val:
                value = val
        return [("set-cookie", f"JSESSIONID={value}; Path=/")]

    def _headers(self, request: Request) -> list[tuple[str, str]]:
        return [*self._cors(request), ("cache-control", "no-store, no-cache, must-revalidate, max-age=0"), *self._cookie(request)]

    def _preflight(self, request: Request, methods: str) -> Response:
        headers = [("cache-control", f"max-age={CACHE_SECONDS}, public"),
                   ("access-control-max-age", str(CACHE_SECONDS)), *self._cookie(request), *self._cors(request),
                   ("access-control-allow-methods", methods), ("allow", methods)]
        return Response(204, b"", "", headers)

    # -- static endpoints ---------------------------------------------------------------------
    async def info(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request, "OPTIONS, GET")
        body = json.dumps({"websocket": self.websocket_enabled, "cookie_needed": self.cookie_needed, "origins": ["*:*"],
                           "entropy": random.randint(0, 2**63 - 1)}, separators=(",", ":"))
        headers = [*self._cors(request), ("cache-control", "no-store, no-cache, must-revalidate, max-age=0")]
        return Response(200, body.encode(), "application/json; charset=UTF-8", headers)

    async def greeting(self, request: Request) -> Response:
        return Response(200, b"Welcome to SockJS!\n", "text/plain; charset=UTF-8",
                        [("cache-control", f"max-age={CACHE_SECONDS}, public")])

    async def iframe(self, request: Request) -> Response:
        name = request.params.get("iframe", "")
        if not (name.startswith("iframe") and name.endswith(".html")):
            return Response(404, b"<html><title>404: Not Found</title><body>404: Not Found</body></html>", "text/html; charset=UTF-8")
        return Response(200, (IFRAME % self.sockjs_url).encode(), "text/html; charset=UTF-8",
                        [("cache-control", f"max-age={CACHE_SECONDS}, public")])

    async def not_upgraded(self, request: Request) -> Response:
        return Response(400, b'Can "Upgrade" only to "WebSocket".', "text/plain; charset=UTF-8")

    # -- XHR transports -----------------------------------------------------------------------
    def _open(self, request: Request, sid: str) -> XhrSession:
        assert self.nursery is not None, "SockJSServer.nursery must be set before serving"
        session = self.sessions[sid] = XhrSession(sid, self.outbox_bytes, self.nursery.start_soon, inbox_bytes=self.inbox_bytes,
                                                  on_slow=self._slow)
        self.nursery.start_soon(self._run, request, session)
        return session

    def _slow(self) -> None:
        if self.metrics is not None:
            self.metrics.disconnected(self.adapter, "slow")

    async def _run(self, request: Request, session: XhrSession) -> None:
        """The application's task for one XHR session, and the watch for a client that stopped polling."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._app, request, session)
                await session.idle_for(self.disconnect_delay)
                session.ended = True  # the client is gone: receive() returns None and the application ends
                session._changes.wake()
        finally:
            self.sessions.pop(session.id, None)

    async def _app(self, request: Request, session: XhrSession) -> None:
        try:
            await self.handler(request, session)
        except Exception:
            log.exception("sockjs session handler failed")
        finally:
            session.close(*session.final_close())

    async def _poll(self, request: Request, content_type: str, wrap: Callable[[bytes], bytes],
                    headers: list[tuple[str, str]]) -> Response:
        """A polling request: `o` for a new session, else the next packet (or `h` after the heartbeat delay)."""
        sid = request.params["session"]
        session = self.sessions.get(sid)
        if session is None:
            self._open(request, sid)
            return Response(200, wrap(b"o"), content_type, headers)
        if session.receiver is not None:
            return Response(200, wrap(close_packet(*ANOTHER_CONNECTION)), content_type, headers)
        token = object()
        session.attach(token)
        try:
            packet, _ = await session.next_packet(self.heartbeat)
        except trio.Cancelled:
            session.interrupt()  # the client dropped the request
            raise
        finally:
            session.detach(token)
        return Response(200, wrap(packet), content_type, headers)

    def _stream(self, request: Request, content_type: str, prelude: bytes, wrap: Callable[[bytes], bytes]) -> Response:
        """A streaming response: the prelude, `o` for a new session, then packets as they come (and `h`
        heartbeats) until the session closes or `response_limit` bytes went out (the client then reconnects)."""
        sid = request.params["session"]

        async def body() -> AsyncIterator[bytes]:
            yield prelude
            session = self.sessions.get(sid)
            opened = session is None
            if session is None:
                session = self._open(request, sid)
            elif session.receiver is not None:
                yield wrap(close_packet(*ANOTHER_CONNECTION))
                return
            token = object()
            session.attach(token)
            try:
                sent = 0
                if opened:
                    yield wrap(b"o")
                    sent += 1
                while sent < self.response_limit:
                    try:
                        packet, over = await session.next_packet(self.heartbeat)
                    except trio.Cancelled:
                        session.interrupt()  # the client dropped the response
                        raise
                    yield wrap(packet)
                    sent += len(packet)
                    if over:
                        return
            finally:
                session.detach(token)

        return Response(200, b"", content_type, self._headers(request), stream=body, write_timeout=self.write_timeout)

    def _callback(self, request: Request) -> str | None:
        """The `c` query parameter of the JSONP and htmlfile transports, if it is a safe JavaScript name."""
        callback = request.query_one("c")
        return callback if callback and _CALLBACK.fullmatch(callback) else None

    @staticmethod
    def _no_callback(headers: list[tuple[str, str]]) -> Response:
        return Response(500, b'"callback" parameter required', "text/html; charset=UTF-8", headers)

    async def xhr(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request, "OPTIONS, POST")
        return await self._poll(request, JS, lambda packet: packet + b"\n", self._headers(request))

    async def jsonp(self, request: Request) -> Response:
        headers = [h for h in self._headers(request) if not h[0].startswith("access-control")]
        callback = self._callback(request)
        if callback is None:
            return self._no_callback(headers)
        return await self._poll(request, JS, lambda packet: f"{callback}({message(packet).decode()});\r\n".encode(),
                                [*headers, ("etag", "dummy")])

    async def xhr_streaming(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request, "OPTIONS, POST")
        return self._stream(request, JS, PRELUDE, lambda packet: packet + b"\n")

    async def eventsource(self, request: Request) -> Response:
        return self._stream(request, "text/event-stream; charset=UTF-8", b"\r\n", lambda packet: b"data: " + packet + b"\r\n\r\n")

    async def htmlfile(self, request: Request) -> Response:
        callback = self._callback(request)
        if callback is None:
            return self._no_callback(self._headers(request))
        return self._stream(request, "text/html; charset=UTF-8", HTMLFILE_HEAD.replace(b"%s", callback.encode()),
                            lambda packet: b"<script>\np(" + message(packet) + b");\n</script>\r\n")

    async def xhr_send(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._preflight(request, "OPTIONS, POST")
        return await self._receive(request, request.body, Response(204, b"", "text/plain; charset=UTF-8"))

    async def jsonp_send(self, request: Request) -> Response:
        body = request.body
        if (request.header("content-type") or "").lower() == "application/x-www-form-urlencoded":
            if not body.startswith(b"d="):
                return Response(500, b"Payload expected.", "text/html; charset=UTF-8", self._headers(request))
            body = urllib.parse.unquote_plus(body[2:].decode("latin-1"), encoding="utf-8").encode()
        return await self._receive(request, body, Response(200, b"ok", "text/plain; charset=UTF-8"))

    async def _receive(self, request: Request, body: bytes, ok: Response) -> Response:
        """Client → server messages of an XHR or JSONP session (answered once queued: see `XhrSession.deliver`)."""
        headers = self._headers(request)
        session = self.sessions.get(request.params["session"])
        if session is None or session.closing:
            return Response(404, b"", "text/html; charset=UTF-8", headers)
        if not body:
            return Response(500, b"Payload expected.", "text/html; charset=UTF-8", headers)
        try:
            messages = decode_messages(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return Response(500, b"Broken JSON encoding.", "text/html; charset=UTF-8", headers)
        if not await session.deliver(messages, self.write_timeout):
            return Response(404, b"", "text/html; charset=UTF-8", headers)  # closed meanwhile (or now, as slow)
        ok.headers = headers
        return ok

    # -- websocket ----------------------------------------------------------------------------
    async def websocket(self, request: Request, ws: WebSocket) -> None:
        session = WebSocketSession(ws)
        ws.send_frame(encode_frame(TEXT, b"o"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.heartbeat, self.heartbeat)
            try:
                await self.handler(request, session)
            finally:
                session.close()
                nursery.cancel_scope.cancel()
