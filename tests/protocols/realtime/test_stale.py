"""stale_watch: connections not done by their deadline are closed 3502 stale, unless closing already."""

from __future__ import annotations

import trio
import trio.testing

from protocols.realtime.stale import stale_watch


class Conn:
    def __init__(self, log: list[tuple[int, str]]) -> None:
        self.log, self.closing = log, False

    def close(self, code: int, reason: str) -> None:
        self.closing = True
        self.log.append((code, reason))


async def test_closes_stale_connections_once(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[int, str]] = []
    watch = stale_watch()
    stale, closing, done = Conn(log), Conn(log), Conn(log)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        for conn in (stale, closing, done):
            watch.add(conn, 10)
        closing.closing = True  # closed meanwhile by something else
        watch.discard(done)  # connected in time
        await trio.sleep(11)
        assert log == [(3502, "stale")] and stale.closing and len(watch) == 0
        nursery.cancel_scope.cancel()


async def test_a_connection_that_ends_before_its_first_message_leaves_no_deadline() -> None:
    """websocket_endpoint: whether the first read ends with nothing or fails, the watch keeps no entry."""
    from types import SimpleNamespace

    from protocols.realtime.server import websocket_endpoint

    class Ws:
        def __init__(self, outcome: BaseException | None) -> None:
            self.outcome = outcome

        async def receive(self) -> None:
            if self.outcome is not None:
                raise self.outcome

    watch = stale_watch()
    ctx = SimpleNamespace(settings=SimpleNamespace(stale_close_delay=10.0), state={"stale": watch})
    assert await websocket_endpoint(ctx, None, Ws(None)) is None  # type: ignore[arg-type]
    failing = Ws(ConnectionError("aborted"))
    try:
        await websocket_endpoint(ctx, None, failing)  # type: ignore[arg-type]
    except ConnectionError:
        pass
    else:
        raise AssertionError("the read's error is not swallowed")
    assert len(watch) == 0
