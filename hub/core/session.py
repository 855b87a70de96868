"""A connected client of any protocol, as the core sees it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .outbox import Outbox


class WireFormat(Protocol):
    """Encodes core events into one protocol's frames; the same bytes serve every session."""

    name: str

    def publication(self, pub: Any) -> bytes: ...

    def join(self, channel: str, client: dict[str, Any]) -> bytes: ...

    def leave(self, channel: str, client: dict[str, Any]) -> bytes: ...

    def unsubscribe(self, channel: str) -> bytes: ...

    def subscribe(self, channel: str) -> bytes: ...

    def disconnect(self, reason: str, reconnect: bool) -> bytes: ...

    # Optional, for sessions that take deltas (Hub.set_delta): `pub` as a delta from `prev`, or whole
    # in the delta form when `prev` is None.
    # def publication_delta(self, pub: Any, prev: Any | None) -> bytes: ...


_POOL_BYTES = 4096
_pool = b""
_taken = 0


def _forget_pool() -> None:
    global _pool, _taken
    _pool, _taken = b"", 0


os.register_at_fork(after_in_child=_forget_pool)  # a forked process draws its own ids, never its parent's


def new_client_id() -> str:
    """32 random hex characters, like a uuid4's hex: 16 bytes of the system's randomness, read 4 KiB at a time
    (a getrandom call per connection, with secrets' layers, cost about 3 us of each connect)."""
    global _pool, _taken
    start = _taken
    if start + 16 > len(_pool):
        _pool, start = os.urandom(_POOL_BYTES), 0
    _taken = start + 16
    return _pool[start:start + 16].hex()


@dataclass(eq=False, slots=True)
class Session:
    """One connection: identity, subscriptions, counters and its outgoing byte queue."""

    project: str
    user: str
    protocol: str
    wire: WireFormat | None
    outbox: Outbox
    info: Any = None
    keepalive: int = 0
    id: str = field(default_factory=new_client_id)
    connected_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    channels: dict[str, Any] = field(default_factory=dict)
    received: int = 0
    dropped: int = 0
    close_reason: str | None = None
    reconnect: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    # Channels in which this session gets no join/leave pushes (a Centrifugo client that did not ask for them).
    # Read it; change it with `hush` / `unhush` (an empty frozenset until then: most sessions never hush a channel).
    quiet: set[str] | frozenset[str] = frozenset()
    # Per-channel publication filters (Centrifugo tags filters), set through Hub.set_filter.
    filters: dict[str, Any] = field(default_factory=dict)
    # Channels where this session takes delta-encoded publications (Hub.set_delta) → whether it holds a base yet.
    deltas: dict[str, bool] = field(default_factory=dict)
    # Called with (session, when) whenever `expires_at` is set to a time: the hub's expiry schedule.
    on_expiry: Callable[[Session, float], None] | None = field(default=None, repr=False)

    def hush(self, channel: str) -> None:
        """No join/leave pushes in `channel` for this session until `unhush`."""
        if isinstance(self.quiet, frozenset):
            self.quiet = {channel}
        else:
            self.quiet.add(channel)

    def unhush(self, channel: str) -> None:
        if channel in self.quiet:
            self.quiet.discard(channel)  # type: ignore[union-attr]

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def client_info(self, channel: str) -> dict[str, Any]:
        """The presence/join-leave record of this session in `channel`."""
        return {
            "user": self.user,
            "client": self.id,
            "default_info": self.info,
            "channel_info": self.channels.get(channel),
        }


def _expiry_property() -> property:
    """`Session.expires_at` as a property over its slot: setting a time (adapters do, at connect, refresh or
    an MQTT session's end) also puts the session in the hub's expiry schedule, so housekeeping never scans."""
    slot = Session.expires_at  # the slot's member descriptor (dataclass(slots=True))
    get, put = slot.__get__, slot.__set__

    def fget(self: Session) -> float | None:
        return get(self, Session)

    def fset(self: Session, when: float | None) -> None:
        put(self, when)
        if when is not None:
            try:
                hook = self.on_expiry
            except AttributeError:  # during __init__, before the field is set
                return
            if hook is not None:
                hook(self, when)

    return property(fget, fset, doc="Clock time the connection's lifetime ends, or None.")


Session.expires_at = _expiry_property()  # type: ignore[assignment,method-assign]
