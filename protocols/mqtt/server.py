"""Thin transport glue: MQTT over TCP and over websocket (`ws_path`, subprotocol `mqtt`) on one port.

A TCP connection whose first byte is a CONNECT packet (0x10) is MQTT; anything else goes to the
listener's HTTP server (which serves the websocket endpoint). Outgoing bytes use the same scheme as
websockets: a byte-bounded `Outbox` drained by the listener's shared flusher with one non-blocking
write per pass, and a writer task only while a socket is full.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from hub.core import Outbox
from hub.loginlimit import address_of
from hub.net import wsframe
from hub.net.http import HTTPServer, Request
from hub.net.tls import peer_host, raw_fd
from hub.net.websocket import DirectWriter, Flusher, WebSocket

from . import codec
from .broker import Broker, Connection

log = logging.getLogger("hub.mqtt")

CONNECT_TIMEOUT = 10.0
FIRST_BYTE_TIMEOUT = 10.0


class StreamLink(DirectWriter):
    """The outgoing side of an MQTT-over-TCP connection."""

    _label = "mqtt"

    def __init__(self, stream: trio.SocketStream, flusher: Flusher, spawn: Callable[[Callable[[], Awaitable[None]]], None],
                 limit: int, write_timeout: float) -> None:
        self.stream = stream
        self.outbox = Outbox(limit, notify=self._on_ready, on_overflow=self._on_overflow)
        self.write_timeout = write_timeout
        self.scope = trio.CancelScope()
        self.on_slow: Callable[[], None] | None = None  # the MQTT session's slow-client handler (set on CONNECT)
        self.end_reason = ""
        self._fd = raw_fd(stream)  # None over TLS: bytes go through the stream (a writer task)
        self._flusher = flusher
        self._spawn = spawn
        self._scheduled = self._writing = self._aborted = False
        self._backlog = b""
        self._drained: trio.Event | None = None
        self.push = self.outbox.send  # the hot path: one call less per delivery

    @property
    def closing(self) -> bool:
        return self.outbox.closed

    def push(self, data: bytes) -> bool:  # noqa: F811 (replaced per instance in __init__)
        """Queue `data`, or disconnect the client as slow (`Outbox.send`): False when nothing was queued."""
        return self.outbox.send(data)

    def _on_overflow(self, messages: int) -> None:
        self.end_reason = "slow"
        if self.on_slow is not None:
            self.on_slow()  # counts it, tells an MQTT 5 client why (DISCONNECT 0x97), closes

    def force(self, data: bytes) -> None:
        if not self.outbox.closed:
            self.outbox.force(data)

    def close(self) -> None:
        self.outbox.close()

    def flush_now(self) -> None:
        """Write this connection's replies to what it just sent at once (CONNACK, SUBACK, acks), not at the next flusher pass."""
        if self._scheduled:
            self.flush()

    async def _finish(self) -> None:
        self.scope.cancel()

    def _abort(self) -> None:
        self._aborted = True
        self.end_reason = self.end_reason or "connection lost"
        if self._drained is not None:
            self._drained.set()
        self.outbox.closed = True
        self.scope.cancel()


class WsLink:
    """The outgoing side of MQTT over a websocket: each packet in a binary frame."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.on_slow: Callable[[], None] | None = None
        transport = ws.outbox.on_overflow

        def overflow(messages: int) -> None:  # the MQTT session's handler first (counted, DISCONNECT), then the socket's
            if self.on_slow is not None:
                self.on_slow()
            if transport is not None:
                transport(messages)

        ws.outbox.on_overflow = overflow

    @property
    def closing(self) -> bool:
        return self.ws.closing

    async def wait_writable(self) -> None:
        pass  # ws.receive() applies the websocket's own backpressure

    def push(self, data: bytes) -> bool:
        return self.ws.send_frame(wsframe.binary_frame(data))

    def force(self, data: bytes) -> None:
        if not self.ws.closing:
            self.ws.outbox.force(wsframe.binary_frame(data))

    def close(self) -> None:
        self.ws.close(1000, "")


async def _feed(conn: Connection, reader: codec.PacketReader, data: bytes) -> bool:
    """Hand received bytes to the protocol; False once the connection must end."""
    reader.feed(data)
    try:
        await conn.received_all(reader.packets())
    except codec.PacketError as exc:
        conn.refuse(exc)
        return False
    return not conn.link.closing


def _timeout(conn: Connection) -> float:
    if conn.version == 0:
        return CONNECT_TIMEOUT
    return conn.keepalive * 1.5 if conn.keepalive else float("inf")


class PrefixedStream(trio.abc.HalfCloseableStream):
    """A socket stream whose first bytes were already read (handed to the HTTP server unchanged)."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream, self._prefix = stream, prefix
        self.socket = getattr(stream, "socket", None)  # None over TLS (no direct writes then)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        await self._stream.aclose()

    def setsockopt(self, *args: Any) -> None:
        self._stream.setsockopt(*args)


def stream_handler(broker_of: Callable[[], Broker], server: HTTPServer, limit: Callable[[], int],
                   http: Callable[[Any], Awaitable[None]]) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """The listener's connection handler: MQTT when the first byte is CONNECT, else HTTP."""

    async def handle(stream: trio.SocketStream) -> None:
        try:
            first = await server.receive_within(stream, FIRST_BYTE_TIMEOUT) or b""
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            first = b""
        if first and first[0] == 0x10:
            await _serve_tcp(broker_of(), server, stream, first, limit())
        elif first and _could_be_http(first[0]):
            await http(PrefixedStream(stream, first))
        else:  # nothing, or an MQTT packet other than CONNECT first: closed at once, as Mosquitto does
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()

    return handle


def _could_be_http(byte: int) -> bool:
    """An HTTP request starts with its method, a token of letters; any other first byte is not HTTP."""
    return 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


async def _serve_tcp(broker: Broker, server: HTTPServer, stream: trio.SocketStream, first: bytes, limit: int) -> None:
    host, per_ip = peer_host(stream), server.limits.max_connections_per_ip
    if per_ip and host and host not in server.limits.exempt:
        if server.per_ip.open.get(host, 0) >= per_ip:  # over the per-address limit: closed before CONNACK
            server.refused("mqtt", "connections per ip")
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await stream.aclose()
            return
        server.per_ip.add(host)
        try:
            await _serve_tcp_counted(broker, server, stream, first, limit)
        finally:
            server.per_ip.remove(host)
    else:
        await _serve_tcp_counted(broker, server, stream, first, limit)


async def _serve_tcp_counted(broker: Broker, server: HTTPServer, stream: trio.SocketStream, first: bytes, limit: int) -> None:
    server.connections += 1
    if server.idle.is_set():
        server.idle = trio.Event()
    link = StreamLink(stream, server.flusher, server.spawn, limit, server.write_timeout)
    conn = broker.connection(link, peer_host(stream))
    reader = codec.PacketReader(broker.limits.max_packet_size)
    try:
        with link.scope:
            data = first
            while data and await _feed(conn, reader, data):
                link.flush_now()
                # Backpressure: read no more while the client has not read most of its acks and deliveries.
                await link.wait_writable()
                try:
                    data = await server.receive_within(stream, _timeout(conn))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if data is None:
                    if conn.version == codec.MQTT5:
                        link.force(codec.disconnect(codec.KEEPALIVE_TIMEOUT))
                    log.info("mqtt client %s: keepalive timeout", conn.session.client_id if conn.session else "-")
                    link.end_reason = link.end_reason or "keepalive timeout"
                    link.close()
                    break
            if not data:
                link.end_reason = link.end_reason or "client closed"
            link.close()
            await trio.sleep_forever()  # the writer drains what is queued, then cancels this scope
    except Exception:
        log.exception("mqtt connection failed")
    finally:
        with trio.CancelScope(shield=True):
            try:
                await conn.lost()
            except Exception:
                log.exception("mqtt connection cleanup failed")
            await link.settle()
            with trio.move_on_after(1):
                await stream.aclose()
        server.connections -= 1
        if server.metrics is not None:
            server.metrics.disconnected("mqtt", "slow" if conn.slow else link.end_reason or "server closed")
        if not server.connections:
            server.idle.set()


def select_subprotocol(offered: list[str]) -> str | None:
    for name in ("mqtt", "mqttv3.1"):
        if name in offered:
            return name
    return None


async def websocket_endpoint(broker_of: Callable[[], Broker], request: Request, ws: WebSocket) -> None:
    """MQTT over websocket: binary messages carry the byte stream (packets may span messages)."""
    broker = broker_of()
    link = WsLink(ws)
    conn = broker.connection(link, address_of(request.client))
    reader = codec.PacketReader(broker.limits.max_packet_size)
    try:
        while True:
            with trio.move_on_after(_timeout(conn)) as waited:
                message = await ws.receive()
            if waited.cancelled_caught:
                if conn.version == codec.MQTT5:
                    link.force(codec.disconnect(codec.KEEPALIVE_TIMEOUT))
                link.close()
                return
            if message is None:
                return
            if isinstance(message, str):
                conn.refuse(codec.PacketError("MQTT over websocket uses binary messages"))
                return
            if not await _feed(conn, reader, message):
                return
    finally:
        with trio.CancelScope(shield=True):
            await conn.lost()
