"""A server websocket on a raw Trio stream: library-free handshake, own frames, one writer.

Outgoing data goes through an `Outbox` (shared with the core's Session) so fan-out writes
pre-encoded frames and the writer sends everything pending in one call.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Callable

import trio

from hub.core.outbox import Outbox

from . import wsframe
from .wsframe import FrameReader, ProtocolError

log = logging.getLogger("hub.net.websocket")


class WebSocket:
    """One accepted websocket. The handler reads with `receive()` and writes with `send*()`."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        subprotocol: str | None,
        outbox: Outbox,
        initial: bytes = b"",
        max_message: int = 1 << 20,
        write_timeout: float = 10.0,
    ) -> None:
        self.stream = stream
        self.subprotocol = subprotocol
        self.outbox = outbox
        self.write_timeout = write_timeout
        self._reader = FrameReader(max_message)
        self._reader.feed(initial)
        self._pending: deque[str | bytes] = deque()
        self._peer_closed = trio.Event()
        self._close_sent = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.peer_close_code: int | None = None
        self.close_hook: Callable[[], tuple[int, str]] | None = None

    @property
    def closing(self) -> bool:
        return self.outbox.closed

    def send(self, data: str | bytes) -> bool:
        """Queue a text (str) or binary (bytes) message; False if the queue is full."""
        frame = wsframe.text_frame(data) if isinstance(data, str) else wsframe.binary_frame(data)
        return self.outbox.push(frame)

    def send_frame(self, frame: bytes) -> bool:
        return self.outbox.push(frame)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake once everything already queued has gone out."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.outbox.close()

    async def receive(self) -> str | bytes | None:
        """The next text or binary message; None once the connection is closing or closed."""
        while True:
            if self._pending:
                return self._pending.popleft()
            if self._peer_closed.is_set():
                return None
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._peer_closed.set()
                self.outbox.close()
                return None
            self._reader.feed(data)
            try:
                messages = self._reader.messages()
            except ProtocolError as exc:
                self.close(exc.code, exc.reason)
                self._peer_closed.set()
                return None
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
                        self.close(1007, "invalid utf-8")
                        self._peer_closed.set()
                        return None
                else:
                    self._pending.append(msg.payload)

    def _on_peer_close(self, payload: bytes) -> None:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        self.peer_close_code = code
        if not self.outbox.closed:
            echo = 1000 if code in (1005, 1006) else code
            self.outbox.force(wsframe.close_frame(echo))
            self._close_sent = True
            self.outbox.close()
        self._peer_closed.set()

    async def run_writer(self, done: trio.CancelScope) -> None:
        """Drain the outbox in batches; after it closes, send the close frame and end the connection."""
        outbox = self.outbox
        stream = self.stream
        try:
            while True:
                batch = await outbox.next_batch()
                if batch is None:
                    break
                with trio.move_on_after(self.write_timeout) as scope:
                    await stream.send_all(batch)
                if scope.cancelled_caught:
                    log.info("websocket write timed out; dropping connection")
                    done.cancel()
                    return
            if not self._close_sent:
                code, reason = self.close_code, self.close_reason
                if code is None:
                    code, reason = self.close_hook() if self.close_hook else (1000, "")
                self._close_sent = True
                with trio.move_on_after(1):
                    await stream.send_all(wsframe.close_frame(code, reason))
            with trio.move_on_after(2):
                await self._peer_closed.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()
