"""A byte-bounded outgoing queue: pushes never block, one writer drains it in batches."""

from __future__ import annotations

import trio


class Outbox:
    """Pending frames for one connection.

    `push` is synchronous and never waits: it returns False once the pending bytes would pass
    `limit`, and the caller treats the connection as too slow. The writer task takes everything
    pending in one `next_batch` call, so a burst goes out in one write.
    """

    __slots__ = ("limit", "_frames", "_bytes", "_messages", "_lot", "_parked", "closed")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: list[bytes] = []
        self._bytes = 0
        self._messages = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._parked = False
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    @property
    def pending_messages(self) -> int:
        return self._messages

    def push(self, frame: bytes, message: bool = False) -> bool:
        """Queue `frame`; False (and nothing queued) if it would overflow or the box is closed."""
        if self.closed:
            return False
        size = len(frame)
        if self._bytes + size > self.limit and self._frames:
            return False
        self._frames.append(frame)
        self._bytes += size
        if message:
            self._messages += 1
        if self._parked:
            self._parked = False
            self._lot.unpark_all()
        return True

    def force(self, frame: bytes) -> None:
        """Queue a control frame (a disconnect notice) even past the limit."""
        self._frames.append(frame)
        self._bytes += len(frame)
        self._wake()

    def discard(self) -> int:
        """Drop everything pending; return how many messages were lost."""
        lost = self._messages
        self._frames = []
        self._bytes = 0
        self._messages = 0
        return lost

    def close(self) -> None:
        """No more pushes; the writer drains what is pending and then stops."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._parked:
            self._parked = False
            self._lot.unpark_all()

    async def next_batch(self) -> bytes | None:
        """Wait for pending frames and return them joined; None once closed and drained."""
        while not self._frames:
            if self.closed:
                return None
            self._parked = True
            await self._lot.park()
        frames = self._frames
        self._frames = []
        self._bytes = 0
        self._messages = 0
        return frames[0] if len(frames) == 1 else b"".join(frames)
