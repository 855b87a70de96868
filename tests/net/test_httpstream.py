"""hub.net.httpstream: what a client sends through separate requests is bounded like a websocket's unread socket."""

from __future__ import annotations

import trio
import trio.testing

from hub.net.httpstream import MESSAGE_OVERHEAD, StreamConnection


def connection(limit: int, nursery: trio.Nursery) -> tuple[StreamConnection, list[int]]:
    conn = StreamConnection(limit, nursery.start_soon)
    overflows: list[int] = []
    transport = conn.outbox.on_overflow

    def counted(messages: int) -> None:  # what the core does: count, then let the transport close
        overflows.append(messages)
        transport(messages)

    conn.outbox.on_overflow = counted
    return conn, overflows


async def test_a_message_into_an_empty_queue_always_fits(nursery):
    conn, _ = connection(100, nursery)
    assert await conn.deliver("x" * 1000, timeout=0)
    assert await conn.receive() == "x" * 1000


async def test_a_send_waits_for_the_application_to_take_messages(nursery):
    conn, overflows = connection(2 * (10 + MESSAGE_OVERHEAD), nursery)
    assert await conn.deliver("a" * 10, 1) and await conn.deliver("b" * 10, 1)
    done = trio.Event()

    async def third() -> None:
        assert await conn.deliver("c" * 10, 5)
        done.set()

    nursery.start_soon(third)
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()  # waiting for room
    assert await conn.receive() == "a" * 10
    await done.wait()
    assert [await conn.receive(), await conn.receive()] == ["b" * 10, "c" * 10]
    assert overflows == [] and not conn.closing


async def test_an_application_that_never_takes_closes_the_connection_as_slow(nursery, autojump_clock):
    conn, overflows = connection(100, nursery)
    assert await conn.deliver("a" * 50, 1)
    assert not await conn.deliver("b" * 50, 1)  # no room within the timeout
    assert overflows == [0] and conn.closing and conn.close_args == (3008, "slow")
    assert not await conn.deliver("c", 1)  # closed: nothing more is queued
    assert overflows == [0]


async def test_a_second_send_while_one_waits_closes_it_as_slow(nursery):
    conn, overflows = connection(100, nursery)
    assert await conn.deliver("a" * 50, 1)
    results: list[bool] = []

    async def waiting() -> None:
        results.append(await conn.deliver("b" * 50, 10))

    nursery.start_soon(waiting)
    await trio.testing.wait_all_tasks_blocked()
    assert not await conn.deliver("c", 10)
    await trio.testing.wait_all_tasks_blocked()
    assert results == [False] and overflows == [0] and conn.closing
