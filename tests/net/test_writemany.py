"""The flusher's writes in a worker thread (hub/net/_writemany.c): the C call itself, then real websockets
through it (every byte, in order, across passes and short writes) and a socket kept open while its bytes are
in the thread."""

from __future__ import annotations

import errno
import os
import select
import socket
import threading

import pytest
import trio
import trio.testing

import hub.net.websocket as websocket
from hub.net.http import WebSocketRoute

from ..rawws import RawWebSocket
from .test_websocket import open_ws

Writer = websocket.Writer


def run_pass(writer, fds: list[int], datas: list[bytes]) -> list[tuple[int, int]]:
    """One pass through the thread, waited for as the flusher does (the eventfd becomes readable)."""
    writer.submit(fds, datas)
    assert select.select([writer.fileno()], [], [], 5)[0]
    return writer.collect()


def test_the_extension_is_built():
    """`make install` compiles it; without it every write stays on the event loop (slower, not wrong)."""
    assert Writer is not None


def test_a_pass_writes_each_buffer_and_reports_only_the_short_ones():
    full_a, full_b = socket.socketpair()
    ok_a, ok_b = socket.socketpair()
    gone_a, gone_b = socket.socketpair()
    for s in (full_a, ok_a, gone_a):
        s.setblocking(False)
    full_a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    gone_b.close()
    writer = Writer()  # before the closed fd is chosen: its eventfd would otherwise take that number
    closed = socket.socket()
    bad_fd = closed.detach()
    os.close(bad_fd)
    big = b"x" * (1 << 20)
    short = run_pass(writer, [ok_a.fileno(), full_a.fileno(), gone_a.fileno(), bad_fd, ok_a.fileno()],
                     [b"one", big, b"lost", b"never", b"two"])
    assert ok_b.recv(10) == b"onetwo"
    (i, sent), (j, pipe), (k, badf) = short
    assert (i, j, k) == (1, 2, 3) and 0 < sent < len(big)
    assert (pipe, badf) == (-errno.EPIPE, -errno.EBADF)
    assert run_pass(writer, [full_a.fileno()], [b"more"]) == [(0, 0)]  # full: nothing taken, not an error
    assert run_pass(writer, [], []) == [] and not writer.busy
    writer.close()
    assert writer.fileno() == -1
    for s in (full_a, full_b, ok_a, ok_b, gone_a):
        s.close()


def test_one_pass_at_a_time_and_arguments_checked():
    writer = Writer()
    a, b = socket.socketpair()
    with pytest.raises(RuntimeError):
        writer.collect()  # nothing submitted
    writer.submit([a.fileno()], [b"x"])
    assert writer.busy
    with pytest.raises(RuntimeError):
        writer.submit([a.fileno()], [b"y"])  # the first is not collected
    assert select.select([writer.fileno()], [], [], 5)[0]
    assert writer.collect() == [] and b.recv(5) == b"x"
    with pytest.raises(ValueError):
        writer.submit([1, 2], [b"x"])
    with pytest.raises(TypeError):
        writer.submit([1], ["text"])
    with pytest.raises(TypeError):
        writer.submit((1,), (b"x",))
    assert not writer.busy
    writer.close()
    with pytest.raises(ValueError):
        writer.submit([a.fileno()], [b"x"])
    a.close()
    b.close()


def test_a_forked_child_starts_a_thread_of_its_own():
    writer = Writer()
    a, b = socket.socketpair()
    assert run_pass(writer, [a.fileno()], [b"parent"]) == []
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not come along
        code = 1
        try:
            code = 0 if run_pass(writer, [a.fileno()], [b"child"]) == [] else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert b.recv(20) == b"parentchild"
    writer.close()
    a.close()
    b.close()


class Recorder:
    """Wraps the flusher's Writer: counts the passes and the short writes, and can hold a pass until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.short = 0
        self.hold: threading.Event | None = None
        self.entered = trio.Event()
        self.shorted = trio.Event()
        self.writer = Writer()

    def __call__(self) -> Recorder:  # stands in for the Writer class
        return self

    def submit(self, fds: list[int], datas: list[bytes]) -> None:
        self.calls += 1
        if self.hold is not None:
            self.entered.set()
            held, self.hold = self.hold, None
            # the pass starts once the test releases it (a thread, as the real pass runs beside the event loop)
            threading.Thread(target=lambda: (held.wait(10), self.writer.submit(fds, datas))).start()
        else:
            self.writer.submit(fds, datas)

    def fileno(self) -> int:
        return self.writer.fileno()

    def collect(self) -> list[tuple[int, int]]:
        short = self.writer.collect()
        self.short += len(short)
        if short:
            self.shorted.set()
        return short

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(websocket, "Writer", rec)
    return rec


async def clients(serve, n: int, **kwargs) -> tuple[list[RawWebSocket], list[websocket.WebSocket]]:
    """`n` raw clients and the server's side of each (held open until the client goes)."""
    opened: list[websocket.WebSocket] = []

    async def held_open(request, ws) -> None:
        opened.append(ws)
        while await ws.receive() is not None:
            pass

    _, port = await serve(routes=[WebSocketRoute("/ws", held_open)], **kwargs)
    out = [await open_ws(port) for _ in range(n)]
    with trio.fail_after(5):
        while len(opened) < n:
            await trio.sleep(0.01)
    return out, opened


@pytest.mark.parametrize("threaded", [True, False])
async def test_every_connection_gets_every_message_in_order_across_passes(serve, recorder, threaded):
    """More connections than THREAD_BATCH, 200 rounds pushed with a checkpoint between them, so rounds are queued
    while an earlier pass is still in the Writer thread."""
    count, rounds = websocket.THREAD_BATCH + 16, 200
    raw, opened = await clients(serve, count)
    opened[0]._flusher.threaded = threaded
    async with trio.open_nursery() as nursery:
        async def read(ws: RawWebSocket) -> None:
            with trio.fail_after(20):
                for r in range(rounds):
                    assert await ws.recv() == (1, f"{r}:{'y' * (r % 50)}".encode())

        for ws in raw:
            nursery.start_soon(read, ws)
        for r in range(rounds):
            for ws in opened:
                assert ws.send(f"{r}:{'y' * (r % 50)}")
            await trio.lowlevel.checkpoint()
    assert (recorder.calls > 0) == threaded


async def test_a_short_write_in_the_thread_hands_the_rest_to_a_writer_task(serve, recorder, monkeypatch):
    """Clients that do not read: the thread's writes come back short, the rest goes through each connection's
    writer task, and once the clients read they get every byte in order."""
    monkeypatch.setattr(websocket, "THREAD_BATCH", 2)
    raw, opened = await clients(serve, 4, outbox_bytes=32 << 20)
    chunk = "z" * 16_000
    for i in range(400):  # 6.4 MB per connection: more than loopback's socket buffers hold
        for ws in opened:
            assert ws.send(f"{i:04}{chunk}")
        await trio.lowlevel.checkpoint()
    with trio.fail_after(10):
        await recorder.shorted.wait()
    with trio.fail_after(20):
        for ws in raw:
            for i in range(400):
                assert await ws.recv() == (1, f"{i:04}{chunk}".encode())


async def test_a_socket_is_not_closed_while_its_bytes_are_in_the_thread(serve, recorder, monkeypatch):
    """A connection dropped while the worker thread holds its bytes: the socket stays open (its fd number could
    otherwise go to a new connection and get those bytes) until the thread is back, then the bytes go out and it
    closes."""
    monkeypatch.setattr(websocket, "THREAD_BATCH", 1)
    (client,), (ws,) = await clients(serve, 1)
    recorder.hold = hold = threading.Event()
    ws.send("in flight")
    with trio.fail_after(5):
        await recorder.entered.wait()
    ws._abort()  # the connection is dropped (its scope cancelled) while the thread holds its write
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(BlockingIOError):
        os.read(client.stream.socket.fileno(), 1)  # nothing yet, and not closed (a non-blocking socket)
    hold.set()
    with trio.fail_after(5):
        assert await client.recv() == (1, b"in flight")
        assert await client.stream.receive_some(100) == b""


async def test_without_a_thread_the_flusher_writes_on_the_event_loop(serve, monkeypatch):
    """The thread cannot be started (resources): the pass's bytes still go out, and the flusher stops trying."""

    def no_thread() -> None:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(websocket, "Writer", no_thread)
    monkeypatch.setattr(websocket, "THREAD_BATCH", 2)
    raw, opened = await clients(serve, 3)
    for ws in opened:
        ws.send("hello")
    with trio.fail_after(5):
        for ws in raw:
            assert await ws.recv() == (1, b"hello")
    assert not opened[0]._flusher.threaded
