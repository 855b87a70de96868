"""The dashboard's flood limits and Origin check, as ASGI middleware in front of the quart app: the same
[dashboard] keys and answers as the hub's own HTTP layer (hub.net.limits, hub.net.origin), before quart
does any work for a request it would refuse."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from hub.net.http import log_refused
from hub.net.limits import Exempt, IPCounts, IPRates
from hub.net.origin import origin_allowed

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TRY_AGAIN_LATER = 1013


def error_body(status: int, message: str, as_json: bool) -> tuple[bytes, str]:
    """The dashboard's refusal: `{"ok": false, "error": ...}` for its scripts, else a small HTML page."""
    if as_json:
        return json.dumps({"ok": False, "error": message}).encode(), "application/json"
    html = f"<!doctype html><title>{status}</title><p>{message}</p><p><a href=\"/\">Back</a></p>"
    return html.encode(), "text/html; charset=utf-8"


class Guard:
    """All clients together: concurrent requests and live sockets (`max_connections`, loopback included); per
    client address: the same (`max_connections_per_ip`); either one over: 503 with Retry-After 1, a live
    socket accepted and closed 1013, as the hub's listeners do. Per address too: requests a second
    (`rate_limit` after `rate_limit_burst`: 429 with Retry-After), `limit_exempt` addresses skipped; the
    Origin of websockets and state-changing requests (`allowed_origins`, default same host: 403).
    Settings are read at each request, so a reload applies at once."""

    def __init__(self, app: ASGIApp, settings: Callable[[], Any], *, refused: Callable[[str], None] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.app = app
        self.settings = settings
        self.refused = refused or (lambda limit: None)
        self.headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.rates = IPRates(0, 0)
        self.open = IPCounts()
        self.in_progress = 0  # requests and live sockets being served, all addresses
        self._exempt: tuple[tuple[str, ...], Exempt] = ((), Exempt(()))

    def exempt(self, networks: list[str]) -> Exempt:
        key = tuple(networks)
        if key != self._exempt[0]:
            self._exempt = (key, Exempt(key))
        return self._exempt[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        s = self.settings()
        client = scope.get("client")
        host = client[0] if client else ""
        limited = bool(host) and host not in self.exempt(s.limit_exempt)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        if limited and s.rate_limit:
            self.rates.configure(s.rate_limit, s.rate_limit_burst)
            wait = self.rates.retry_after(host)
            if wait is not None:
                self.refused("http rate")
                await self.refuse(scope, receive, send, headers, 429, "too many requests", math.ceil(wait))
                return
        if (kind == "websocket" or scope.get("method") not in SAFE_METHODS) and not origin_allowed(
                headers.get("origin"), headers.get("host"), s.allowed_origins, tls=scope.get("scheme") in ("https", "wss")):
            self.refused("origin")
            await self.refuse(scope, receive, send, headers, 403, "request origin not allowed")
            return
        if self.in_progress >= s.max_connections:
            log_refused(s.max_connections)
            self.refused("connections")
            await self.busy(scope, receive, send, headers, "too many connections")
            return
        counted = limited and s.max_connections_per_ip > 0
        if counted and self.open.add(host) > s.max_connections_per_ip:
            self.open.remove(host)
            self.refused("connections per ip")
            await self.busy(scope, receive, send, headers, "too many connections from this address")
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
            if counted:
                self.open.remove(host)

    async def busy(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], message: str) -> None:
        """Over a connection limit: 503 with Retry-After 1, or a live socket accepted and closed 1013."""
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": TRY_AGAIN_LATER, "reason": message})
        else:
            await self.refuse(scope, receive, send, headers, 503, message, 1)

    async def refuse(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], status: int,
                     message: str, retry_after: int = 0) -> None:
        """Answer `status` in the dashboard's shape; a websocket handshake gets it as an HTTP response too."""
        body, content_type = error_body(status, message, "application/json" in headers.get("accept", ""))
        head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"), *self.headers]
        if retry_after:
            head.append((b"retry-after", str(max(1, retry_after)).encode()))
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.http.response.start", "status": status, "headers": head})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "http.response.start", "status": status, "headers": head})
            await send({"type": "http.response.body", "body": body})
