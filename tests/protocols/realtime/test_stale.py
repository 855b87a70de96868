"""StaleWatch: connections that are not done by their deadline are closed 3502, in deadline order, by one task."""

from __future__ import annotations

import trio
import trio.testing

from protocols.realtime.stale import StaleWatch


class Conn:
    def __init__(self, name: str, log: list[tuple[float, str, int, str]]) -> None:
        self.name, self.log, self.closing = name, log, False

    def close(self, code: int, reason: str) -> None:
        self.closing = True
        self.log.append((trio.current_time(), self.name, code, reason))


async def test_closes_at_each_deadline_unless_discarded(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[float, str, int, str]] = []
    watch = StaleWatch()
    a, b, c, d = (Conn(n, log) for n in "abcd")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        watch.add(a, start + 10)
        watch.add(b, start + 20)
        watch.add(c, start + 30)
        assert b in watch and len(watch) == 3
        watch.discard(b)  # done: never closed
        watch.add(d, start + 5)  # earlier than the rest (a reload shortened the delay): still first
        await trio.sleep(15)
        assert [(t - start, n) for t, n, _, _ in log] == [(5, "d"), (10, "a")]
        c.closing = True  # closed meanwhile by something else: not closed again
        await trio.sleep(20)
        assert len(log) == 2 and len(watch) == 0
        assert {(code, reason) for _, _, code, reason in log} == {(3502, "stale")}
        nursery.cancel_scope.cancel()


async def test_added_before_the_task_runs(autojump_clock: trio.testing.MockClock) -> None:
    log: list[tuple[float, str, int, str]] = []
    watch = StaleWatch()
    start = trio.current_time()
    watch.add(Conn("a", log), start + 3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch.run)
        await trio.sleep(4)
        assert [(t - start, n) for t, n, _, _ in log] == [(3, "a")]
        nursery.cancel_scope.cancel()
