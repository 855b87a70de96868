"""Scheduled expiry: history, positions and sessions go on time, a pass costs what is due, mass expiry is sliced."""

import sys
import time

import pytest
import trio

from hub.core import Hub, NamespaceOptions, Project
from hub.core.history import Stream
from hub.core.timers import TimerWheel
from hub.engine import MemoryEngine
from hub.engine import memory as memory_engine

from .wire import connect


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hub(clock: Clock, *, size: int = 3, lifetime: float = 10.0, meta_ttl: float = 100.0) -> Hub:
    options = NamespaceOptions(history_size=size, history_lifetime=lifetime)
    return Hub([Project("p", "secret", options)], clock=clock, engine=MemoryEngine(history_meta_ttl=meta_ttl))


async def test_history_expires_on_time_and_position_outlives_it():
    clock = Clock()
    hub = make_hub(clock)
    engine = hub.engine
    first = await hub.publish("p", "news", 1)
    clock.now += 9.9
    hub.expire()
    assert [p.data for p in (await hub.history("p", "news")).publications] == [1]
    assert engine._get("p", "news").items is not None
    clock.now += 0.1  # exactly at the lifetime
    hub.expire()
    stream = engine._get("p", "news")
    assert stream is not None and stream.items is None  # freed by housekeeping, not only hidden from reads
    assert await hub.stream_position("p", "news") == (1, first.epoch)
    clock.now += 89.9  # the offset and epoch stay history_meta_ttl (100 s) after the last publish
    hub.expire()
    assert len(engine) == 1
    clock.now += 0.2
    hub.expire()
    assert len(engine) == 0 and engine._get("p", "news") is None
    again = await hub.publish("p", "news", 2)
    assert again.offset == 1 and again.epoch != first.epoch


async def test_a_later_publish_moves_the_deadline():
    clock = Clock()
    hub = make_hub(clock)
    await hub.publish("p", "news", 1)
    clock.now += 8
    await hub.publish("p", "news", 2)
    clock.now += 4  # past the first publish's deadline, not the second's
    hub.expire()
    assert [p.data for p in (await hub.history("p", "news")).publications] == [1, 2]
    assert hub.engine._get("p", "news").items is not None
    clock.now += 6
    hub.expire()
    assert hub.engine._get("p", "news").items is None


async def test_deadlines_inside_a_bucket_are_kept_until_due():
    clock = Clock()
    clock.now = 1000.3
    hub = make_hub(clock, lifetime=10.4)  # due at 1010.7, in the bucket [1010, 1011)
    await hub.publish("p", "news", 1)
    clock.now = 1010.5
    hub.expire()
    assert hub.engine._get("p", "news").items is not None
    clock.now = 1010.7
    hub.expire()
    assert hub.engine._get("p", "news").items is None


async def test_a_pass_costs_what_is_due_not_what_exists():
    clock = Clock()
    hub = make_hub(clock, lifetime=60)
    engine = hub.engine
    for i in range(5000):
        await hub.publish("p", f"ch{i}", i)
    clock.now += 30
    await hub.publish("p", "late", 0)
    clock.now += 1
    before = engine.examined
    for _ in range(20):
        hub.expire()
    assert engine.examined == before  # nothing due: nothing looked at
    clock.now += 29.5  # the 5000 are due (60 s after their publish), "late" is not
    hub.expire()
    assert engine.examined - before == 5000
    assert len(engine) == 5001 and engine._get("p", "late").items is not None


async def test_idle_channel_positions_from_subscribe_expire_too():
    """A stream started by a subscriber's position (no publication) is scheduled at its meta deadline."""
    clock = Clock()
    hub = make_hub(clock, meta_ttl=50)
    s = connect(hub, "a")
    pos = await hub.subscribe_at(s, "news")
    assert (pos.offset, len(hub.engine)) == (0, 1)
    clock.now += 49
    hub.expire()
    assert len(hub.engine) == 1
    clock.now += 2
    hub.expire()
    assert len(hub.engine) == 0


async def test_recovery_across_expiry_of_publications():
    clock = Clock()
    hub = make_hub(clock)
    pubs = [await hub.publish("p", "news", i) for i in range(5)]
    s = connect(hub, "a")
    pos = await hub.subscribe_at(s, "news", recover=(2, pubs[0].epoch))
    assert pos.recovered and [p.data for p in pos.publications] == [2, 3, 4]  # size 3 keeps 2, 3, 4
    pos = await hub.subscribe_at(connect(hub, "b"), "news", recover=(1, pubs[0].epoch))
    assert not pos.recovered  # offset 2 is no longer kept
    clock.now += 11
    hub.expire()
    pos = await hub.subscribe_at(connect(hub, "c"), "news", recover=(5, pubs[0].epoch))
    assert pos.recovered and pos.offset == 5  # caught up: recovers though the publications are gone


async def test_reload_with_a_shorter_lifetime_reschedules():
    clock = Clock()
    hub = make_hub(clock, lifetime=1000)
    await hub.publish("p", "news", 1)
    hub.set_projects([Project("p", "secret", NamespaceOptions(history_size=3, history_lifetime=10))])
    await hub.publish("p", "news", 2)
    clock.now += 11
    hub.expire()
    assert hub.engine._get("p", "news").items is None


async def test_stream_keeps_one_publication_without_a_container_and_trims_to_size():
    clock = Clock()
    hub = make_hub(clock, size=3)
    first = await hub.publish("p", "news", 0)
    stream = hub.engine._get("p", "news")
    assert stream.items is first and first.channel is stream.channel
    for i in range(1, 6):
        await hub.publish("p", "news", i)
    assert [p.data for p in stream.publications()] == [3, 4, 5] and len(stream) == 3
    many = await hub.publish_many("p", "news", [(i, None, None) for i in range(10, 15)])
    assert [p.offset for p in stream.publications()] == [p.offset for p in many[-3:]]
    hub.set_projects([Project("p", "secret", NamespaceOptions(history_size=1, history_lifetime=10))])
    await hub.stream_position("p", "news")
    assert stream.items is many[-1]


def test_stream_is_small():
    stream = Stream("p", "news", NamespaceOptions(), 0.0)
    assert sys.getsizeof(stream) <= 104 and not hasattr(stream, "__dict__")


def test_wheel_buckets_far_deadlines_coarsely():
    wheel = TimerWheel(1.0)
    for i in range(10_000):
        wheel.add(1000.0 + 30 * 86400 + i * 0.1, i, 1000.0)  # 1000 s of deadlines a month away
    assert len(wheel._buckets) <= 17
    assert wheel.take_due(1000.0 + 86400) == []


def test_connection_lifetime_is_scheduled():
    clock = Clock()
    hub = make_hub(clock)
    a = connect(hub, "a", expires_at=clock.now + 5)
    b = connect(hub, "b")
    c = connect(hub, "c", expires_at=clock.now + 5)
    b.expires_at = clock.now + 3  # an adapter sets it after connect (SDK refresh, MQTT session end)
    c.expires_at = clock.now + 50  # extended
    clock.now += 4
    hub.expire()
    assert b.closed and b.close_reason == "connection expired" and not a.closed
    clock.now += 2
    hub.expire()
    assert a.closed and not c.closed
    c.expires_at = None  # no lifetime any more
    clock.now += 100
    hub.expire()
    assert not c.closed
    assert hub._expiries == []


async def test_refresh_moves_a_lifetime_earlier():
    clock = Clock()
    hub = make_hub(clock)
    s = connect(hub, "a", expires_at=clock.now + 100)
    await hub.refresh("p", "a", expire_at=clock.now + 1)
    clock.now += 2
    hub.expire()
    assert s.closed


async def test_mass_expiry_runs_in_slices_with_checkpoints():
    clock = Clock()
    hub = make_hub(clock, lifetime=10, meta_ttl=0)
    engine = hub.engine
    for i in range(20_000):
        await hub.publish("p", f"ch{i}", i)
    sessions = [connect(hub, f"u{i}", expires_at=clock.now + 5) for i in range(200)]
    clock.now += 20
    ran = 0
    longest = 0.0

    class Steps:
        def before_task_step(self, task):
            self.t = time.thread_time()

        def after_task_step(self, task):
            nonlocal longest
            if task.name == "expire":
                longest = max(longest, time.thread_time() - self.t)

    async def other():
        nonlocal ran
        while True:
            ran += 1
            await trio.sleep(0)

    slices = []

    async def expire():
        slices.append(await hub.expire_sliced(0.0005))

    trio.lowlevel.add_instrument(Steps())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        nursery.start_soon(expire, name="expire")
        while not slices:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert len(engine) == 0 and all(s.closed for s in sessions)
    assert slices[0] > 5 and ran >= slices[0] - 1  # the other task ran between the slices
    assert longest < 0.05  # generous: the slice is 0.5 ms; a loaded machine still stays far below


async def test_large_sweep_compacts_and_trims(monkeypatch):
    trims = []
    monkeypatch.setattr(memory_engine, "_malloc_trim", lambda: trims.append(1))
    clock = Clock()
    hub = make_hub(clock, lifetime=10, meta_ttl=0)
    engine = hub.engine
    engine.trim_after = 1000
    for i in range(max(memory_engine.COMPACT_AFTER, 40 * memory_engine.SHARDS)):
        await hub.publish("p", f"ch{i}", i)
    shards = engine._streams["p"]
    big = sum(sys.getsizeof(s) for s in shards)
    clock.now += 11
    await hub.expire_sliced()
    assert len(engine) == 0
    assert all(sys.getsizeof(s) <= 1024 for s in shards)  # the mostly-empty dicts were rebuilt small
    assert sum(1 for s in shards if sys.getsizeof(s) == sys.getsizeof({})) > len(shards) // 4
    assert sum(sys.getsizeof(s) for s in shards) < big
    if memory_engine._libc() is None:
        pytest.skip("not glibc: no malloc_trim")
    assert trims == [1]
