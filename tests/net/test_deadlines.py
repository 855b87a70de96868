"""Deadlines: keys expire at their deadline, earliest first across delays, unless discarded; one task for all."""

from __future__ import annotations

import trio
import trio.testing

from hub.net.deadlines import Deadlines


async def test_expires_each_key_at_its_deadline_unless_discarded(autojump_clock: trio.testing.MockClock) -> None:
    start = trio.current_time()
    expired: list[tuple[float, str]] = []
    deadlines = Deadlines(lambda key: expired.append((trio.current_time() - start, key)))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(deadlines.run)
        await trio.testing.wait_all_tasks_blocked()
        deadlines.add("a", 10)
        deadlines.add("b", 10, start + 10)
        deadlines.add("c", 10, start + 20)
        assert "b" in deadlines and len(deadlines) == 3
        deadlines.discard("b")
        deadlines.discard("b")  # twice: nothing
        deadlines.add("d", 5)  # a shorter delay (a reload): its own queue, and first
        deadlines.add("a", 25)  # again: the new deadline replaces the old one
        await trio.sleep(40)
        assert expired == [(5, "d"), (25, "a"), (30, "c")]
        assert len(deadlines) == 0 and list(deadlines) == []
        nursery.cancel_scope.cancel()


async def test_until_empty_ends_and_can_start_again(autojump_clock: trio.testing.MockClock) -> None:
    expired: list[str] = []
    deadlines = Deadlines(expired.append)
    deadlines.add("a", 3)  # before the task runs
    async with trio.open_nursery() as nursery:
        nursery.start_soon(deadlines.run, True)
        await trio.sleep(4)
        assert expired == ["a"] and not deadlines.running
        deadlines.add("b", 1)
        deadlines.add("c", 1)
        deadlines.discard("c")
        nursery.start_soon(deadlines.run, True)
        await trio.testing.wait_all_tasks_blocked()
        assert deadlines.running
        await trio.sleep(2)
        assert expired == ["a", "b"] and not deadlines.running
