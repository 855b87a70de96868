"""Open many subscriber connections from one process, `inflight` of them in progress at a time.

A connection's opening is a dialog (a generator): it yields the bytes to send, or None to wait for
more input, and is sent the connection's input buffer (a bytearray it consumes from) each time bytes
arrive; it returns once the connection is subscribed. One epoll loop drives every dialog, so a client
process keeps the server busy with several handshakes at once instead of waiting out each round trip
(with one at a time, the connect rate measured the round-trip latency as much as the server). The
same driver opens every target's connections (websocket, MQTT, Redis): only the dialogs differ.
"""

from __future__ import annotations

import base64
import errno
import os
import select
import socket
from collections.abc import Callable, Generator, Iterator

from .wsclient import masked_frame, parse_frame

Dialog = Generator[bytes | None, bytearray, None]


def websocket_dialog(host: str, port: int, path: str, subprotocol: str | None, first: bytes,
                     is_reply: Callable[[bytes], bool]) -> Dialog:
    """The RFC 6455 handshake, then `first` (a subscribe frame) and wait for its reply frame."""
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    buf = yield (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()
    while (end := buf.find(b"\r\n\r\n")) < 0:
        buf = yield None
    head = bytes(buf[:end])
    del buf[:end + 4]
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(head.decode(errors="replace"))
    buf = yield masked_frame(first, 2 if subprotocol and "msgpack" in subprotocol else 1)
    while True:
        frame = parse_frame(buf)
        if frame is None:
            buf = yield None
            continue
        opcode, payload, used = frame
        del buf[:used]
        if opcode == 8:
            raise ConnectionError(f"closed: {payload!r}")
        if is_reply(payload):
            if b'"error": null' not in payload and b'"error":null' not in payload and b'"error"' in payload:
                raise ConnectionError(payload[:300])
            return


def connect_all(host: str, port: int, dialogs: Iterator[Dialog], count: int, inflight: int) -> list[socket.socket]:
    """Run `count` dialogs, at most `inflight` at once; return their sockets (non-blocking) in dialog order."""
    ep = select.epoll()
    socks: list[socket.socket | None] = [None] * count
    active: dict[int, tuple[int, socket.socket, Dialog, bytearray]] = {}
    started = done = 0

    def start() -> None:
        nonlocal started
        index, dialog = started, next(dialogs)
        started += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            raise ConnectionError(f"connect: {os.strerror(err)}")
        active[sock.fileno()] = (index, sock, dialog, bytearray())
        ep.register(sock.fileno(), select.EPOLLOUT)  # writable once connected

    def send(sock: socket.socket, data: bytes) -> None:
        if sock.send(data) != len(data):  # a few hundred bytes to a fresh socket's empty buffer
            raise ConnectionError("short write while connecting")

    quiet = 0
    try:
        while done < count:
            while started < count and len(active) < inflight:
                start()
            events_ = ep.poll(5.0)
            quiet = 0 if events_ else quiet + 1
            if quiet >= 6:
                raise TimeoutError(f"no progress for 30 s with {len(active)} connections opening")
            for fd, events in events_:
                index, sock, dialog, buf = active[fd]
                if events & select.EPOLLOUT:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise ConnectionError(f"connect: {os.strerror(err)}")
                    ep.modify(fd, select.EPOLLIN)
                    send(sock, next(dialog))  # the dialog's opening bytes
                    continue
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed while connecting")
                buf += data
                try:
                    while (out := dialog.send(buf)) is not None:
                        send(sock, out)
                except StopIteration:
                    if buf:
                        raise RuntimeError("unexpected bytes after the subscribe reply") from None
                    ep.unregister(fd)
                    del active[fd]
                    socks[index] = sock
                    done += 1
    finally:
        ep.close()
    return socks  # type: ignore[return-value]
