"""The accept loop: one task per listening socket, quiet and patient when file descriptors run out.

It accepts on its own non-blocking duplicate of the listening descriptor, as many connections in a row as are
waiting (up to `BATCH`, then it lets the other tasks run): trio's `SocketListener.accept` goes through the
scheduler once per connection even when the next one is already there.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from hub.logs import rate_limited

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
    wrap = trio.socket.from_stdlib_socket
    backoff = 0.01
    in_a_row = 0
    try:
        while True:
            try:
                # The bare accept: socket.accept() asks the family, type and protocol of the listening socket again
                # (three enum conversions) for each connection.
                fd, _ = sock._accept()
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
            nursery.start_soon(handler, trio.SocketStream(wrap(socket.socket(family, kind, proto, fd))), name=TASK_NAME)
            in_a_row += 1
            if in_a_row >= BATCH:
                in_a_row = 0
                await trio.lowlevel.checkpoint()
    finally:
        sock.close()
