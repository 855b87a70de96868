"""The accept loop: one task per listening socket, quiet and patient when file descriptors run out.

It accepts on its own non-blocking duplicate of the listening descriptor, as many connections in a row as are
waiting (up to `BATCH`, then it lets the other tasks run): trio's `SocketListener.accept` goes through the
scheduler once per connection even when the next one is already there. Each stream carries `peer` ("address:port")
and `host` as the accept gave them, so the server need not ask the socket again; on Linux it is made without trio's
two `setsockopt` calls: the listening socket has TCP_NODELAY and TCP_NOTSENT_LOWAT set once, and accepted sockets
inherit them (tests/net/test_accept.py checks that they do).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from hub.logs import rate_limited

try:  # what trio.SocketStream's constructor makes besides the socket (see _lean_stream)
    from trio._util import ConflictDetector
except ImportError:  # another trio: its constructor it is
    ConflictDetector = None  # type: ignore[assignment,misc]

log = logging.getLogger("hub.net.accept")

# accept() errors that mean "no resources right now", not "this socket is broken".
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
MAX_BACKOFF = 1.0
TASK_NAME = "hub.net.connection"  # one shared string rather than one made per connection task
BATCH = 16  # connections accepted in a row before the loop lets the other tasks run
# accept() errors about one connection that went away before it was accepted: skipped (as trio's accept does).
SKIPPED_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _lean_stream_ok() -> bool:
    """Whether a `trio.SocketStream` is what `_lean_stream` makes: its socket and its send-conflict detector, the
    two attributes its constructor sets (checked against trio's own constructor, so another trio version that
    sets more falls back to it); and Linux, where accepted sockets inherit the listener's TCP options."""
    if not sys.platform.startswith("linux") or ConflictDetector is None:
        return False
    try:
        a, b = socket.socketpair()
    except OSError:  # no descriptors to spare at import: trio's constructor it is
        return False
    try:
        return set(vars(trio.SocketStream(trio.socket.from_stdlib_socket(a)))) == {"socket", "_send_conflict_detector"}
    finally:
        a.close()
        b.close()


_LEAN = _lean_stream_ok()
_SEND_CONFLICT = "another task is currently sending data on this SocketStream"


def _lean_stream(sock: socket.socket) -> trio.SocketStream:
    """`trio.SocketStream(trio.socket.from_stdlib_socket(sock))` minus its `setsockopt` calls (inherited here)."""
    stream = trio.SocketStream.__new__(trio.SocketStream)
    stream.socket = trio.socket.from_stdlib_socket(sock)
    stream._send_conflict_detector = ConflictDetector(_SEND_CONFLICT)  # type: ignore[attr-defined]
    return stream


def _stream_maker(listening: socket.socket) -> Callable[[socket.socket], trio.SocketStream]:
    """How to wrap this listener's accepted sockets: lean when its TCP options can be set once on it."""
    if _LEAN and listening.family in (socket.AF_INET, socket.AF_INET6):
        try:
            listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listening.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 2**14)  # trio's defaults
            return _lean_stream
        except OSError:
            pass
    return lambda sock: trio.SocketStream(trio.socket.from_stdlib_socket(sock))


async def accept_loop(
    listener: trio.SocketListener,
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    nursery: trio.Nursery,
    *,
    open_connections: Callable[[], int],
    freed: trio.lowlevel.ParkingLot,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept connections and start `handler` for each in `nursery` until cancelled.

    Out of descriptors (EMFILE and friends), it logs one rate-limited line ("out of file descriptors,
    N connections open, limit L"), waits until a connection closes (`freed` is unparked then) or a
    backoff of up to a second passes, and accepts again.
    """
    task_status.started()
    own = listener.socket
    family, kind, proto = own.family, own.type, own.proto
    sock = socket.socket(family, kind, proto, fileno=os.dup(own.fileno()))
    sock.setblocking(False)
    make = _stream_maker(sock)
    backoff = 0.01
    in_a_row = 0
    try:
        while True:
            try:
                # The bare accept: socket.accept() asks the family, type and protocol of the listening socket again
                # (three enum conversions) for each connection.
                fd, peer = sock._accept()
            except BlockingIOError:
                in_a_row = 0
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError as exc:
                if exc.errno in SKIPPED_ERRNOS:
                    continue
                if exc.errno not in RESOURCE_ERRNOS:
                    raise
                rate_limited(log, logging.ERROR, "emfile", "out of file descriptors, %d connections open, limit %d",
                             open_connections(), fd_limit())
                with trio.move_on_after(backoff):
                    await freed.park()
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.01
            stream = make(socket.socket(family, kind, proto, fd))
            if type(peer) is tuple:
                stream.host, stream.peer = peer[0], f"{peer[0]}:{peer[1]}"  # type: ignore[attr-defined]
            nursery.start_soon(handler, stream, name=TASK_NAME)
            in_a_row += 1
            if in_a_row >= BATCH:
                in_a_row = 0
                await trio.lowlevel.checkpoint()
    finally:
        sock.close()
