"""A thin Redis client on Trio streams with the hiredis parser (RESP2): what the engine's hot paths need.

`Connection` is one socket; `Pipeline` shares one connection between every task of the process:
commands queue in order, one writer sends all that is pending in one write, one reader resolves the
replies in order, so concurrent publishes coalesce into few system calls. A command never waits for
a connection that is down: it fails at once (`ConnectionLost`), and it fails after `timeout` when
Redis does not answer (the connection is then dropped and re-opened with jittered backoff).
"""

from __future__ import annotations

import logging
import random
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import hiredis
import trio

log = logging.getLogger("hub.engine.redis")

pack_command = hiredis.pack_command


class RedisError(Exception):
    """An error reply from Redis."""


class ConnectionLost(Exception):
    """No connection to Redis (down, or it did not answer in time)."""


@dataclass(frozen=True)
class Address:
    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


def parse_url(url: str) -> Address:
    """`redis://[[user]:password@]host[:port][/db]`; ValueError with a short reason otherwise."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError("expected redis://host:port/db")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ValueError("bad port") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError("the database must be a number")
    return Address(parts.hostname or "127.0.0.1", port, int(path or 0),
                   urllib.parse.unquote(parts.username) if parts.username else None,
                   urllib.parse.unquote(parts.password) if parts.password else None)


def backoff(attempt: int, first: float = 0.05, cap: float = 1.0) -> float:
    """Jittered exponential backoff: about `first` doubling up to `cap`, each draw in [50%, 100%]."""
    base = min(cap, first * (2 ** min(attempt, 16)))
    return base * (0.5 + random.random() / 2)


class Connection:
    """One RESP2 connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = hiredis.Reader(replyError=RedisError)

    @classmethod
    async def open(cls, addr: Address, timeout: float) -> Connection:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(addr.host, addr.port)
            conn = cls(stream)
            try:
                if addr.password is not None:
                    args = ("AUTH", addr.username, addr.password) if addr.username else ("AUTH", addr.password)
                    await conn.call(*args)
                if addr.db:
                    await conn.call("SELECT", addr.db)
            except BaseException:
                await stream.aclose()
                raise
        return conn

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ConnectionLost(str(exc)) from None

    async def fill(self) -> None:
        """Read what the socket has into the parser; ConnectionLost at EOF."""
        try:
            data = await self.stream.receive_some(1 << 16)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ConnectionLost(str(exc)) from None
        if not data:
            raise ConnectionLost("closed by Redis")
        self.reader.feed(data)

    async def read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                return reply
            await self.fill()

    async def call(self, *args: Any) -> Any:
        await self.send(pack_command(args))
        reply = await self.read()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.stream.aclose()


class _Slot:
    __slots__ = ("event", "value", "sent_at")

    def __init__(self, now: float) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.sent_at = now


class Pipeline:
    """One shared command connection: `execute` from any task, `send_nowait` for fire-and-forget."""

    def __init__(self, addr: Address, *, timeout: float, connect_timeout: float,
                 on_connect: Callable[[Connection], Awaitable[None]] | None = None,
                 on_ready: Callable[[], None] | None = None, name: str = "commands") -> None:
        self.addr, self.timeout, self.connect_timeout = addr, timeout, connect_timeout
        self.on_connect = on_connect
        self.on_ready = on_ready
        self.name = name
        self.connected = False
        self.ever_connected = trio.Event()
        self._buf: list[bytes] = []
        self._waiting: deque[_Slot | None] = deque()
        self._wake = trio.Event()
        self._scope: trio.CancelScope | None = None

    async def execute(self, *args: Any) -> Any:
        """Run one command; its reply, RedisError for an error reply, ConnectionLost if Redis is unreachable."""
        (reply,) = await self.execute_many([args])
        if isinstance(reply, RedisError):
            raise reply
        return reply

    async def execute_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands sent together; their replies (error replies as RedisError values)."""
        if not self.connected:
            raise ConnectionLost(f"not connected to {self.addr}")
        # No timer per call: the watchdog drops the connection (failing every waiting call) when the
        # oldest unanswered command is older than `timeout`.
        now = trio.current_time()
        slots = []
        for args in commands:
            slot = _Slot(now)
            self._buf.append(pack_command(args))
            self._waiting.append(slot)
            slots.append(slot)
        self._wake.set()
        for slot in slots:
            await slot.event.wait()
        values = [slot.value for slot in slots]
        for value in values:
            if isinstance(value, ConnectionLost):
                raise value
        return values

    def send_nowait(self, *args: Any) -> bool:
        """Queue a command whose reply nobody waits for; False (dropped) when not connected."""
        if not self.connected:
            return False
        self._buf.append(pack_command(args))
        self._waiting.append(None)
        self._wake.set()
        return True

    def _drop(self, why: str) -> None:
        if self._scope is not None and self.connected:
            log.warning("redis %s connection to %s: %s; reconnecting", self.name, self.addr, why)
            self._scope.cancel()

    def _fail_all(self, why: str) -> None:
        self.connected = False
        error = ConnectionLost(why)
        self._buf.clear()
        while self._waiting:
            slot = self._waiting.popleft()
            if slot is not None:
                slot.value = error
                slot.event.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up: connect, serve, reconnect with jittered backoff. Runs until cancelled."""
        task_status.started()
        attempt = 0
        while True:
            try:
                conn = await Connection.open(self.addr, self.connect_timeout)
                if self.on_connect is not None:
                    with trio.fail_after(self.connect_timeout):
                        await self.on_connect(conn)
            except (OSError, trio.TooSlowError, ConnectionLost, RedisError) as exc:
                if attempt == 0 or attempt % 50 == 0:
                    log.warning("redis %s connection to %s failed: %s", self.name, self.addr, exc or type(exc).__name__)
                await trio.sleep(backoff(attempt))
                attempt += 1
                continue
            if attempt:
                log.info("redis %s connection to %s restored", self.name, self.addr)
            attempt = 0
            try:
                with trio.CancelScope() as scope:
                    self._scope = scope
                    self.connected = True
                    self.ever_connected.set()
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._writer, conn)
                        nursery.start_soon(self._reader, conn)
                        nursery.start_soon(self._watchdog)
                        if self.on_ready is not None:
                            self.on_ready()
            except* (ConnectionLost, hiredis.ProtocolError) as group:
                log.warning("redis %s connection to %s lost: %s", self.name, self.addr, group.exceptions[0])
            except* Exception as group:  # a bug must not take the hub down: log it, start afresh
                log.error("redis %s connection to %s failed", self.name, self.addr, exc_info=group.exceptions[0])
            finally:
                self._scope = None
                self._fail_all(f"connection to {self.addr} lost")
                await conn.aclose()
            await trio.sleep(backoff(0))

    async def _watchdog(self) -> None:
        while True:
            await trio.sleep(self.timeout / 4)
            now = trio.current_time()
            for slot in self._waiting:
                if slot is not None:
                    if now - slot.sent_at > self.timeout:
                        self._drop(f"no reply within {self.timeout} s")
                    break

    async def _writer(self, conn: Connection) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._buf:
                data = b"".join(self._buf)
                self._buf.clear()
                await conn.send(data)

    async def _reader(self, conn: Connection) -> None:
        reader, waiting = conn.reader, self._waiting
        while True:
            await conn.fill()
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                if not waiting:
                    raise ConnectionLost("a reply nobody asked for")
                slot = waiting.popleft()
                if slot is not None:
                    slot.value = reply
                    slot.event.set()
                elif isinstance(reply, RedisError):
                    log.warning("redis command failed: %s", reply)
