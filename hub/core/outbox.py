"""A byte-bounded outgoing queue: pushes never block; its consumer drains it in batches.

Its hot half (push, take) runs once per subscriber per publication: `hub/core/_outbox.c` holds it in C where a
compiler built that module, `_PyOutboxCore` below (the reference, same behaviour) everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import trio


class _PyOutboxCore:
    """The pure-Python twin of `hub.core._outbox.OutboxCore`: the state and the synchronous operations."""

    __slots__ = ("limit", "_frames", "_bytes", "_messages", "_lot", "notify", "closed", "on_overflow")

    def __init__(self, limit: int, notify: Callable[[], None] | None = None,
                 on_overflow: Callable[[int], None] | None = None) -> None:
        self.limit = limit
        self._frames: list[bytes] | tuple[()] = ()  # a list only while frames are pending (idle: nothing allocated)
        self._bytes = 0
        self._messages = 0
        self._lot: trio.lowlevel.ParkingLot | None = None
        self.notify = notify
        self.closed = False
        self.on_overflow = on_overflow

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    @property
    def pending_messages(self) -> int:
        return self._messages

    def push(self, frame: bytes, messages: int = 0) -> bool:
        """Queue `frame` (holding `messages` publications); False, and nothing queued, if it would overflow or the box is closed."""
        if self.closed:
            return False
        frames = self._frames
        size = len(frame)
        if frames:
            if self._bytes + size > self.limit:
                return False
            frames.append(frame)  # type: ignore[union-attr]
            self._bytes += size
            self._messages += messages
            return True
        self._frames = [frame]
        self._bytes += size
        self._messages += messages
        # the first pending frame: the consumer has something to write (`_wake`, inlined on this hot path)
        notify = self.notify
        if notify is not None:
            notify()
        elif self._lot is not None:
            self._lot.unpark_all()
        return True

    def force(self, frame: bytes) -> None:
        """Queue a control frame (a disconnect notice, a pong) even past the limit."""
        self._bytes += len(frame)
        if self._frames:
            self._frames.append(frame)  # type: ignore[union-attr]
        else:
            self._frames = [frame]
            self._wake()

    def take(self) -> bytes:
        """Everything pending, joined, and the queue emptied."""
        frames = self._frames
        if not frames:
            return b""
        self._frames = ()
        self._bytes = 0
        self._messages = 0
        return frames[0] if len(frames) == 1 else b"".join(frames)

    def discard(self) -> int:
        """Drop everything pending; return how many messages were lost."""
        lost = self._messages
        self._frames = ()
        self._bytes = 0
        self._messages = 0
        return lost

    def close(self) -> None:
        """No more pushes; the consumer drains what is pending and then stops."""
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        if self.notify is not None:
            self.notify()
        elif self._lot is not None:
            self._lot.unpark_all()


def fan_out_py(sessions: Sequence[Any], encode: Callable[[Any], bytes], messages: int,
               frames: dict[Any, bytes]) -> tuple[int, int, list[Any]]:
    """Push one frame per wire format to each session's outbox (`Hub._fan_out`'s loop; `_outbox.fan_out` in C).

    `frames[wire]` is made by `encode(wire)` the first time a wire is met. Returns how many sessions had a wire
    format, how many pushes were taken (each counted in the session's `received`), and the sessions that refused
    one without being closed (too slow)."""
    targets = pushed = 0
    slow: list[Any] = []
    last: Any = frames  # the wire of the previous session, whose frame is `frame`: usually all share one
    frame = b""
    for session in tuple(sessions):  # a tuple is itself; a list may change under the callbacks
        wire = session.wire
        if wire is not last:
            if wire is None:
                continue
            frame = frames.get(wire)  # type: ignore[assignment]
            if frame is None:
                frame = frames[wire] = encode(wire)
            last = wire
        targets += 1
        if session.outbox.push(frame, messages):
            session.received += messages
            pushed += 1
        elif not session.closed:
            slow.append(session)
    return targets, pushed, slow


try:
    from ._outbox import OutboxCore as _Core
    from ._outbox import fan_out
except ImportError:  # built without a C compiler
    _Core = _PyOutboxCore  # type: ignore[assignment,misc]
    fan_out = fan_out_py


class _OutboxMethods:
    """What `Outbox` adds to either core: send-or-disconnect and the awaitable consumer side."""

    __slots__ = ()
    closed: bool
    on_overflow: Callable[[int], None] | None
    _lot: trio.lowlevel.ParkingLot | None
    _frames: list[bytes] | tuple[()]
    push: Callable[..., bool]
    take: Callable[[], bytes]
    close: Callable[[], None]

    def send(self, frame: bytes, messages: int = 0) -> bool:
        """Queue `frame`, or disconnect: on overflow `on_overflow(messages)` runs (the box is then closed).

        Returns False when nothing was queued (overflow, or the box was already closed)."""
        if self.push(frame, messages):
            return True
        self.overflow(messages)
        return False

    def overflow(self, messages: int = 0) -> None:
        """What an overflowing `send` does, for a connection found too slow some other way (e.g. its
        inbound queue is full): `on_overflow(messages)` runs once and the box closes."""
        if not self.closed:
            handler = self.on_overflow
            if handler is not None:
                handler(messages)
            self.close()

    async def next_batch(self) -> bytes | None:
        """Wait for pending frames and return them joined; None once closed and drained."""
        while not self._frames:
            if self.closed:
                return None
            if self._lot is None:
                self._lot = trio.lowlevel.ParkingLot()
            await self._lot.park()
        return self.take()


class Outbox(_OutboxMethods, _Core):
    """Pending frames for one connection.

    `push` is synchronous and never waits: it returns False once the pending bytes would pass
    `limit`, and the caller treats the connection as too slow. `send` is the same with that rule
    built in ("send or disconnect, never drop"): an overflow runs `on_overflow`, which the
    connection's owner sets to disconnect it with its protocol's slow-client code and count it. The consumer either awaits
    `next_batch()` or sets `notify`, a callback run when frames become pending (or the box
    closes), and then takes everything pending with `take()`, so a burst goes out in one write.
    """

    __slots__ = ()


class PyOutbox(_OutboxMethods, _PyOutboxCore):
    """`Outbox` on the pure-Python core, whichever core `Outbox` has (tests run both)."""

    __slots__ = ()
