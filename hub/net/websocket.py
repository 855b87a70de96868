"""A server websocket on a raw Trio stream: own frames, pending bytes written in one call.

Outgoing data goes through an `Outbox` (shared with the core's Session) so fan-out pushes the
same pre-encoded frame to every subscriber without awaiting. A `Flusher` task then writes each
ready connection's pending bytes with one non-blocking write; only a connection whose socket
is full gets a writer task of its own until it has caught up.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from hub.core.outbox import Outbox
from hub.metrics import RequestMetrics

from . import wsframe
from .tls import raw_fd, read_fd
from .wsframe import FrameReader, ProtocolError

try:
    from ._writemany import Writer
except ImportError:  # installed without a C compiler: every write stays on the event loop
    Writer = None

log = logging.getLogger("hub.net.websocket")

SLICE_SECONDS = 0.0005  # a connection's messages are handed out in slices this long, then others run
PARSE_BATCH = 64  # frames parsed at a time from what one read brought (a 64 KiB read can hold 1,000)
THREAD_BATCH = 64  # a pass with this many connections to write hands its writes to the Writer thread
SLOW_CLOSE = (1008, "slow")  # default close for a client whose outbox overflows (adapters set their own)


class Flusher:
    """Writes every ready connection's pending bytes in one pass per scheduling round.

    Under load a pass takes longer, more frames gather per connection before the next one, and
    the cost per message falls; the pause between passes (at most `max_delay`) keeps flushing
    to about a third of the event loop's time when passes get long, and to about half of the Writer
    thread's for the passes it makes (burst K=1,000, three alternating pairs: 1.39-1.49 M deliveries/s
    with half, 1.03-1.08 M with a third; rate K=1,000 p99 63-84 ms against 74-102).
    """

    def __init__(self, max_delay: float = 0.01, threaded: bool = True) -> None:
        self.max_delay = max_delay
        self._ready: list[DirectWriter] = []
        self._lot = trio.lowlevel.ParkingLot()
        self.threaded = threaded and Writer is not None
        self._writer: Any = None  # the Writer thread, started at the first pass big enough
        self._flight: set[DirectWriter] = set()  # connections whose bytes the thread is writing
        self._landed: trio.Event | None = None  # set when that pass is back

    def schedule(self, ws: DirectWriter) -> None:
        self._ready.append(ws)
        if len(self._ready) == 1:
            self._lot.unpark_all()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        delay = 0.0
        try:
            while True:
                if not self._ready:
                    await self._lot.park()
                if delay:
                    await trio.sleep(delay)
                else:
                    await trio.lowlevel.checkpoint()
                ready, self._ready = self._ready, []
                started = time.perf_counter()
                if self.threaded and len(ready) >= THREAD_BATCH:
                    await self._write_in_thread(ready)
                    pause = 1.0  # the event loop served meanwhile: the thread writing half the time is enough
                else:
                    for ws in ready:
                        ws.flush()
                    pause = 2.0
                spent = time.perf_counter() - started
                delay = min(self.max_delay, pause * spent) if spent > 0.002 else 0.0
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    async def _write_in_thread(self, ready: list[DirectWriter]) -> None:
        """One pass's writes in the Writer's thread, which holds no GIL: the kernel's share of each delivery runs
        beside the event loop, which goes on serving meanwhile. Each connection in the pass is owned by it
        (`_writing`) until the pass is back, so nothing else writes to it or closes its socket (`settle`)."""
        fds: list[int] = []
        datas: list[bytes] = []
        owners: list[DirectWriter] = []
        for ws in ready:
            if ws._fd is None or ws.outbox.closed or ws._writing or ws._aborted:
                ws.flush()  # TLS, a closing connection or one with a writer task: the usual path
                continue
            ws._scheduled = False
            data = ws.outbox.take()
            if data:
                ws._writing = True
                fds.append(ws._fd)
                datas.append(data)
                owners.append(ws)
        if not owners:
            return
        try:
            if self._writer is None:
                self._writer = Writer()
            writer = self._writer
            writer.submit(fds, datas)
        except OSError:  # no thread to be had (resources): this flusher writes on the event loop from now on
            log.exception("fan-out write thread unavailable; writing on the event loop")
            self.threaded = False
            for ws, data in zip(owners, datas, strict=True):
                ws._writing = False
                ws._write_later(data)
            return
        self._flight.update(owners)
        self._landed = landed = trio.Event()
        try:
            with trio.CancelScope(shield=True):  # a pass is a bounded number of non-blocking writes
                await trio.lowlevel.wait_readable(writer.fileno())
            short = writer.collect()
        finally:
            self._flight.clear()
            self._landed = None
            landed.set()
            for ws in owners:
                ws._writing = False
        for i, result in short:
            ws = owners[i]
            if result < 0:
                ws._abort()
            else:
                ws._write_later(datas[i][result:])
        for ws in owners:
            if ws._writing or ws._aborted:
                continue
            if ws._drained is not None:
                ws._check_drained()
            if ws.outbox.pending_bytes or ws.outbox.closed:
                ws._on_ready()


class DirectWriter:
    """The outgoing side of a connection on a raw stream (websockets, MQTT over TCP): the `Flusher` writes what its
    outbox holds with one non-blocking write per pass; a full socket, or TLS, hands over to a writer task of its own
    until it has caught up. Subclasses set the attributes below and say how a closed connection ends (`_finish`)
    and how a broken one is dropped (`_abort`)."""

    __slots__ = ()
    _label = "connection"  # in log lines
    outbox: Outbox
    stream: Any
    write_timeout: float
    end_reason: str
    _fd: int | None
    _flusher: Flusher
    _spawn: Callable[[Callable[[], Awaitable[None]]], None]
    _scheduled: bool
    _writing: bool
    _aborted: bool
    _backlog: bytes
    _drained: trio.Event | None

    def _on_ready(self) -> None:
        if self._writing or self._aborted:
            return
        if self.outbox.closed:
            self._start_writer()
        elif not self._scheduled:
            self._scheduled = True
            ready = self._flusher._ready  # Flusher.schedule, inlined: this runs once per delivery
            ready.append(self)
            if len(ready) == 1:
                self._flusher._lot.unpark_all()

    def flush(self) -> None:
        """Write what is pending with one non-blocking write; a full socket hands over to a writer task."""
        self._scheduled = False
        if self._writing or self._aborted:
            return
        outbox = self.outbox
        data = outbox.take()
        if data and self._fd is None:
            self._write_later(data)
            return
        if data:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._abort()
                return
            if sent < len(data):
                self._write_later(data[sent:])
                return
            if self._drained is not None:  # someone waits for backpressure to ease (a call less per write otherwise)
                self._check_drained()
        if outbox.closed:
            self._start_writer()

    def _write_later(self, data: bytes) -> None:
        """Bytes a non-blocking write could not take (or TLS): the connection's writer task sends them, then the rest."""
        self._backlog = data
        self._start_writer()

    def _start_writer(self) -> None:
        if not self._writing:
            self._writing = True
            self._spawn(self._writer)

    async def _writer(self) -> None:
        try:
            while True:
                data = self._backlog or self.outbox.take()
                self._backlog = b""
                if data:
                    with trio.move_on_after(self.write_timeout) as scope:
                        await self.stream.send_all(data)
                    if scope.cancelled_caught:
                        log.debug("%s write timed out; dropping connection", self._label)
                        self.end_reason = self.end_reason or "write timeout"
                        self._abort()
                        return
                    self._check_drained()
                    continue
                if self.outbox.closed:
                    await self._finish()
                    return
                self._writing = False
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self._abort()
        except Exception:
            log.exception("%s writer failed", self._label)
            self._abort()

    async def _finish(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    async def settle(self) -> None:
        """Before the socket is closed: wait while a flusher's worker thread may still be writing to it (its fd
        number, closed and reused by a new connection, would get the bytes)."""
        flusher = self._flusher
        while self in flusher._flight and flusher._landed is not None:
            with trio.CancelScope(shield=True):
                await flusher._landed.wait()

    def unsent(self) -> int:
        """Bytes queued for the client and not yet written."""
        return self.outbox.pending_bytes + len(self._backlog)

    async def wait_writable(self) -> None:
        """Backpressure: return once the client has read most of what is queued for it (or the connection ended)."""
        while self.unsent() > self.outbox.limit // 2 and not self.outbox.closed and not self._aborted:
            await self._wait_drained()

    async def _wait_drained(self) -> None:
        if self._drained is None:
            self._drained = trio.Event()
        await self._drained.wait()

    def _check_drained(self) -> None:
        if self._drained is not None and self.unsent() <= self.outbox.limit // 4:
            self._drained.set()
            self._drained = None


class WebSocket(DirectWriter):
    """One accepted websocket. The handler reads with `receive()` and writes with `send*()`."""

    _label = "websocket"

    __slots__ = ("stream", "subprotocol", "outbox", "write_timeout", "_reader", "_pending", "_peer_gone", "_peer_event",
                 "_close_sent", "close_code", "close_reason", "peer_close_code", "close_hook", "_fd", "_flusher",
                 "_spawn", "_scope", "_scheduled", "_writing", "_backlog", "_aborted", "slow_close", "end_reason",
                 "adapter", "metrics", "_slice_start", "_drained")

    def __init__(
        self,
        stream: trio.SocketStream,
        *,
        subprotocol: str | None,
        flusher: Flusher,
        spawn: Callable[[Callable[[], Awaitable[None]]], None],
        outbox_bytes: int = 1 << 20,
        initial: bytes = b"",
        max_message: int = 1 << 20,
        write_timeout: float = 10.0,
        slow_close: tuple[int, str] = SLOW_CLOSE,
        adapter: str = "",
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.stream = stream
        self.subprotocol = subprotocol
        # The websocket itself is the overflow handler (`__call__`): one bound method less kept per connection.
        self.outbox = Outbox(outbox_bytes, notify=self._on_ready, on_overflow=self)
        self.slow_close = slow_close
        self.adapter = adapter
        self.metrics = metrics
        self.end_reason = ""  # why the connection ended, counted in metrics.disconnects
        self._slice_start = 0.0
        self._drained: trio.Event | None = None
        self.write_timeout = write_timeout
        self._reader = FrameReader(max_message)
        self._reader.feed(initial)
        self._pending: deque[str | bytes] | None = None  # made when messages arrive (an empty deque is 600 bytes)
        self._peer_gone = False  # the peer's side is done (closed, reset or a protocol error)
        self._peer_event: trio.Event | None = None  # made only when _finish waits for that
        self._close_sent = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.peer_close_code: int | None = None
        self.close_hook: Callable[[], tuple[int, str]] | None = None
        self._fd = raw_fd(stream)  # None over TLS: bytes go through the stream (a writer task)
        self._flusher = flusher
        self._spawn = spawn
        self._scope = trio.CancelScope()
        self._scheduled = False
        self._writing = False
        self._backlog = b""
        self._aborted = False

    @property
    def closing(self) -> bool:
        return self.outbox.closed

    # -- sending --------------------------------------------------------------------------
    def send(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) message, or disconnect the client as slow (see `send_frame`)."""
        frame = wsframe.text_frame(data) if isinstance(data, str) else wsframe.binary_frame(data)
        return self.outbox.send(frame)

    def send_frame(self, frame: bytes) -> bool:
        """Queue an encoded frame. Send or disconnect, never drop: if the outbox is full the connection is
        closed as slow (the core's session first, counted; else with `slow_close`) and False is returned."""
        return self.outbox.send(frame)

    def _on_overflow(self, messages: int) -> None:
        self.end_reason = "slow"
        log.debug("websocket outbox full; disconnecting a slow client")
        # The core (if this is a session's outbox) has closed it already and `close_hook` says how;
        # otherwise close with this connection's slow-client code.
        if self.close_code is None and (self.close_hook is None or not self.outbox.closed):
            self.close(*self.slow_close)

    __call__ = _on_overflow

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake once everything already queued has gone out."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.outbox.close()

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run `fn` in the server's task nursery (it must end on its own or be cancelled by its caller)."""
        self._spawn(fn)

    async def _finish(self) -> None:
        """Everything queued has gone out and the outbox is closed: the closing handshake, then the end."""
        if not self._close_sent:
            code, reason = self.close_code, self.close_reason
            if code is None:
                code, reason = self.close_hook() if self.close_hook else (1000, "")
            self._close_sent = True
            with trio.move_on_after(1):
                await self.stream.send_all(wsframe.close_frame(code, reason))
        if not self._peer_gone:
            self._peer_event = trio.Event()
            with trio.move_on_after(2):
                await self._peer_event.wait()
        self._scope.cancel()

    def _abort(self) -> None:
        self._aborted = True
        self.end_reason = self.end_reason or "connection lost"
        if self._drained is not None:
            self._drained.set()
        self.outbox.closed = True
        self._set_peer_gone()
        self._scope.cancel()

    def _set_peer_gone(self) -> None:
        self._peer_gone = True
        if self._peer_event is not None:
            self._peer_event.set()

    # -- receiving ------------------------------------------------------------------------
    async def receive(self) -> str | bytes | None:
        """The next text or binary message; None once the connection is closing or closed."""
        while True:
            if self.unsent() > self.outbox.limit // 2 and not self.outbox.closed and not self._reader.failed:
                # Backpressure, checked before each message (one read can bring a thousand): hand out and
                # read no more until the client has read most of its replies.
                await self._wait_drained()
                continue
            pending = self._pending
            if pending:
                # Fairness: a connection that sent many messages at once gets them in bounded slices.
                if time.perf_counter() - self._slice_start > SLICE_SECONDS:
                    await trio.lowlevel.checkpoint()
                    self._slice_start = time.perf_counter()
                message = pending.popleft()
                if not pending:
                    self._pending = None  # idle connections hold no queue
                return message
            if self._peer_gone:
                return None
            if self._reader.failed or self._reader.more:
                data = b""  # first the frames already buffered (or the framing error after them)
            else:
                # Read here rather than in a helper or trio's receive_some: an idle connection waits
                # in this frame, with no others of ours (or trio's stream layer) held under it.
                fd = read_fd(self.stream)
                try:
                    if fd is None:  # TLS, or a stream that wraps the socket
                        data = await self.stream.receive_some(65536)
                    else:
                        while True:
                            await trio.lowlevel.wait_readable(fd)
                            try:
                                data = os.read(fd, 65536)
                                break
                            except BlockingIOError:
                                continue
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    data = b""
                self._slice_start = time.perf_counter()
                if not data:
                    self._set_peer_gone()
                    self.outbox.close()
                    return None
                if not self.outbox.closed:
                    message = self._reader.whole(data)  # the usual read: one whole message, no queue made
                    if message is not None:
                        return message
            self._reader.feed(data)
            try:
                messages = self._reader.messages(PARSE_BATCH)
            except ProtocolError as exc:
                self.end_reason = "protocol error"
                self.close(exc.code, exc.reason)
                self._set_peer_gone()
                return None
            if messages and self._pending is None:
                self._pending = deque()
            for msg in messages:
                if msg.opcode == wsframe.PING:
                    self.outbox.force(wsframe.encode_frame(wsframe.PONG, msg.payload))
                elif msg.opcode == wsframe.CLOSE:
                    self._on_peer_close(msg.payload)
                    break
                elif msg.opcode == wsframe.PONG or self.outbox.closed:
                    continue
                elif msg.opcode == wsframe.TEXT:
                    try:
                        self._pending.append(msg.payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        self.end_reason = "protocol error"
                        self.close(1007, "invalid utf-8")
                        self._set_peer_gone()
                        return None
                else:
                    self._pending.append(msg.payload)

    def _on_peer_close(self, payload: bytes) -> None:
        code, _ = wsframe.parse_close(payload)  # the reader has validated it
        self.peer_close_code = code
        self.end_reason = self.end_reason or "client closed"
        if not self.outbox.closed:
            echo = 1000 if code == 1005 else code
            self.outbox.force(wsframe.close_frame(echo))
            self._close_sent = True
            self.outbox.close()
        self._set_peer_gone()

    # -- lifetime (HTTPServer.handle runs an accepted websocket: its endpoint, then these) --------------
    def handler_failed(self) -> None:
        """The endpoint's coroutine raised: logged, and the connection closed 1011."""
        log.exception("websocket handler failed")
        self.end_reason = self.end_reason or "internal error"
        self.close(1011, "internal error")

    async def linger(self) -> None:
        """After the endpoint: read (and drop) what the client still sends until the closing handshake ends
        the connection (the scope is cancelled), for at most 3 seconds."""
        with trio.move_on_after(3):
            while await self.receive() is not None:
                pass
            await trio.sleep_forever()

    def ended(self) -> None:
        """The connection is over: counted in the disconnect metrics with why it ended."""
        if self.metrics is not None:
            self.metrics.disconnected(self.adapter, self.end_reason or "server closed")
