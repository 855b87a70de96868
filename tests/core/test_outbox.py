"""The outbox on both cores: the C one (hub/core/_outbox.c, when built) and the pure-Python reference."""

from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing

from hub.core import outbox as outbox_module
from hub.core.outbox import Outbox, PyOutbox

CORES = [pytest.param(PyOutbox, id="python")]
if outbox_module._Core is not outbox_module._PyOutboxCore:
    CORES.append(pytest.param(Outbox, id="c"))


def test_the_c_core_is_built() -> None:
    """`make install` compiles the C core; the hub runs on the Python one only where no compiler is found."""
    assert outbox_module._Core.__module__ == "hub.core._outbox"


@pytest.fixture(params=CORES)
def cls(request: pytest.FixtureRequest) -> type:
    return request.param


def test_push_counts_and_refuses_past_the_limit(cls: type) -> None:
    woken: list[int] = []
    box = cls(10, notify=lambda: woken.append(1))
    assert box.push(b"abcd", 1) is True
    assert woken == [1]  # the first pending frame wakes the consumer
    assert box.push(b"efgh", 2) is True
    assert woken == [1]  # later ones do not
    assert (box.pending_bytes, box.pending_messages) == (8, 3)
    assert box.push(b"ijk", 1) is False  # 11 > 10: nothing queued
    assert (box.pending_bytes, box.pending_messages) == (8, 3)
    assert box._frames == [b"abcd", b"efgh"]
    assert box.take() == b"abcdefgh"
    assert (box.pending_bytes, box.pending_messages, box._frames, box.take()) == (0, 0, (), b"")


def test_a_first_frame_larger_than_the_limit_is_queued(cls: type) -> None:
    """An empty box takes any one frame (a publication bigger than the limit still goes out)."""
    box = cls(4)
    assert box.push(b"0123456789", 1)
    assert box.take() == b"0123456789"


def test_take_of_one_frame_returns_it_and_of_non_bytes_joins_them(cls: type) -> None:
    box = cls(100)
    frame = b"x" * 20
    box.push(frame)
    assert box.take() is frame
    box.push(b"a")
    box.push(bytearray(b"b"))
    assert box.take() == b"ab"
    box.push(b"a")
    box.push("not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        box.take()


def test_force_passes_the_limit_and_wakes_once(cls: type) -> None:
    woken: list[int] = []
    box = cls(2, notify=lambda: woken.append(1))
    box.force(b"ping")
    box.force(b"pong")
    assert woken == [1]
    assert box.pending_bytes == 8
    assert box.push(b"x") is False
    assert box.take() == b"pingpong"


def test_discard_close_and_closed_pushes(cls: type) -> None:
    woken: list[int] = []
    box = cls(100, notify=lambda: woken.append(1))
    box.push(b"a", 2)
    box.push(b"b", 3)
    assert box.discard() == 5
    assert (box.pending_bytes, box.take()) == (0, b"")
    box.close()
    box.close()
    assert box.closed is True
    assert woken == [1, 1]  # the first push, then close (once)
    assert box.push(b"late") is False
    assert box.send(b"late") is False


def test_send_overflows_once_and_closes(cls: type) -> None:
    overflows: list[int] = []
    box = cls(3, on_overflow=overflows.append)
    assert box.send(b"abc", 1)
    assert box.send(b"d", 4) is False
    assert overflows == [4]
    assert box.closed
    box.overflow(1)
    assert overflows == [4]


def test_a_failing_notify_propagates(cls: type) -> None:
    def broken() -> None:
        raise RuntimeError("consumer gone")

    box = cls(100, notify=broken)
    with pytest.raises(RuntimeError):
        box.push(b"a")
    assert box.pending_bytes == 1  # the frame was queued before the consumer was told


def test_bad_arguments(cls: type) -> None:
    box = cls(100)
    assert box.push(b"ab", messages=2) and box.pending_messages == 2  # by name, as by position
    with pytest.raises(TypeError):
        box.push(b"ab", count=2)
    assert box.push(frame=b"c") and box.push(messages=1, frame=b"d") and box.take() == b"abcd"
    with pytest.raises(TypeError):
        box.push(b"ab", frame=b"cd")  # type: ignore[misc]
    with pytest.raises(TypeError):
        box.push(messages=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        box.push(42)
    with pytest.raises(TypeError):
        box.push(b"a", "many")
    with pytest.raises(TypeError):
        cls()


def test_a_subclass_with_slots_overrides_push(cls: type) -> None:
    class Owned(cls):  # type: ignore[misc,valid-type]
        __slots__ = ("owner",)

        def push(self, frame: bytes, messages: int = 0) -> bool:
            self.owner.append(frame)
            return True

    box = Owned(0)
    box.owner = []
    assert box.send(b"a", 1)
    assert box.owner == [b"a"]
    box.closed = 1
    assert box.closed


def test_a_cycle_through_notify_is_collected(cls: type) -> None:
    """A connection holds its outbox and the outbox its connection's bound method: the collector frees both."""

    class Connection:
        def __init__(self) -> None:
            self.outbox = cls(100, notify=self.ready)

        def ready(self) -> None:
            pass

    conn = Connection()
    conn.outbox.push(b"pending")
    ref = weakref.ref(conn)
    del conn
    gc.collect()
    assert ref() is None


async def test_next_batch_waits_for_a_push_and_ends_when_closed(cls: type) -> None:
    box = cls(100)
    got: list[bytes | None] = []

    async def consume() -> None:
        while (batch := await box.next_batch()) is not None:
            got.append(batch)
        got.append(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        box.push(b"a")
        box.push(b"b")
        await trio.testing.wait_all_tasks_blocked()
        box.push(b"c")
        box.close()
    assert got == [b"ab", b"c", None]


FAN_OUTS = [pytest.param(outbox_module.fan_out_py, id="python")]
if outbox_module.fan_out is not outbox_module.fan_out_py:
    FAN_OUTS.append(pytest.param(outbox_module.fan_out, id="c"))


class _Session:
    __slots__ = ("wire", "outbox", "received")

    def __init__(self, wire: object, outbox: object) -> None:
        self.wire, self.outbox, self.received = wire, outbox, 0

    @property
    def closed(self) -> bool:
        return self.outbox.closed  # type: ignore[attr-defined]


class _Counting(Outbox):
    """An outbox whose push is its own (as MQTT's): fan-out must call it, not the core's."""

    __slots__ = ("seen",)

    def push(self, frame: bytes, messages: int = 0) -> bool:
        self.seen = (frame, messages)
        return True


@pytest.mark.parametrize("fan_out", FAN_OUTS)
def test_fan_out_encodes_once_per_wire_and_reports_slow_sessions(fan_out) -> None:  # type: ignore[no-untyped-def]
    a, b = object(), object()
    encoded: list[object] = []

    def encode(wire: object) -> bytes:
        encoded.append(wire)
        return b"A" if wire is a else b"BB"

    full = Outbox(1)
    full.push(b"x")
    closed = PyOutbox(100)
    closed.close()
    custom = _Counting(100)
    sessions = [_Session(a, Outbox(100)), _Session(b, PyOutbox(100)), _Session(None, Outbox(100)),
                _Session(a, full), _Session(a, closed), _Session(b, custom), _Session(a, Outbox(100))]
    frames: dict[object, bytes] = {}
    targets, pushed, slow = fan_out(tuple(sessions), encode, 2, frames)
    assert (targets, pushed) == (6, 4)
    assert slow == [sessions[3]]  # refused and open: too slow; the closed one is not
    assert encoded == [a, b]
    assert frames == {a: b"A", b: b"BB"}
    assert [s.received for s in sessions] == [2, 2, 0, 0, 0, 2, 2]
    assert sessions[0].outbox.take() == b"A" and sessions[1].outbox.take() == b"BB"
    assert custom.seen == (b"BB", 2) and custom.pending_bytes == 0


@pytest.mark.parametrize("fan_out", FAN_OUTS)
def test_fan_out_propagates_errors(fan_out) -> None:  # type: ignore[no-untyped-def]
    def encode(wire: object) -> bytes:
        raise ValueError("cannot encode")

    with pytest.raises(ValueError):
        fan_out((_Session(object(), Outbox(10)),), encode, 1, {})

    def broken() -> None:
        raise RuntimeError("consumer gone")

    with pytest.raises(RuntimeError):
        fan_out([_Session(object(), Outbox(10, notify=broken))], lambda w: b"f", 1, {})
    with pytest.raises(AttributeError):
        fan_out([object()], lambda w: b"f", 1, {})
    assert fan_out([], lambda w: b"f", 1, {}) == (0, 0, [])


class _DictSession:
    """A session without __slots__ (and a `received` property): fan-out takes the generic attribute path."""

    def __init__(self, wire: object, outbox: object) -> None:
        self.wire, self.outbox, self.count = wire, outbox, 0

    @property
    def received(self) -> int:
        return self.count

    @received.setter
    def received(self, value: int) -> None:
        self.count = value

    @property
    def closed(self) -> bool:
        return self.outbox.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize("fan_out", FAN_OUTS)
def test_fan_out_over_mixed_session_types(fan_out) -> None:  # type: ignore[no-untyped-def]
    wire = object()
    sessions = [_Session(wire, Outbox(100)), _DictSession(wire, Outbox(100)), _Session(wire, Outbox(100)),
                _DictSession(wire, PyOutbox(100))]
    for _ in range(2):
        assert fan_out(sessions, lambda w: b"f", 3, {})[:2] == (4, 4)
    assert [s.received for s in sessions] == [6, 6, 6, 6]
    assert [s.outbox.take() for s in sessions] == [b"ff"] * 4
    unset = _Session(wire, Outbox(100))
    del unset.outbox
    with pytest.raises(AttributeError):
        fan_out([sessions[0], unset], lambda w: b"f", 1, {})


@pytest.mark.parametrize("fan_out", FAN_OUTS)
def test_fan_out_survives_callbacks_that_change_what_it_holds(fan_out) -> None:  # type: ignore[no-untyped-def]
    """A consumer woken mid-loop may drop its own callback, close another session or change the list passed in:
    the loop goes on over what it was given, with the frames it made."""
    wire = object()
    sessions: list[_Session] = []

    def first_woken() -> None:
        sessions[0].outbox.notify = None  # the callback being run lets go of itself
        sessions[1].outbox.close()
        sessions.clear()  # the caller's list, emptied under the loop

    boxes = [Outbox(100, notify=first_woken), Outbox(100), Outbox(100)]
    sessions.extend(_Session(wire, box) for box in boxes)
    given = list(sessions)
    frames: dict[object, bytes] = {}
    targets, pushed, slow = fan_out(sessions, lambda w: b"frame", 1, frames)
    assert (targets, pushed, slow) == (3, 2, [])  # the closed one is neither pushed nor slow
    assert [s.received for s in given] == [1, 0, 1]
    assert [b.take() for b in boxes] == [b"frame", b"", b"frame"]
    frames.clear()
    assert boxes[0].notify is None


@pytest.mark.parametrize("fan_out", FAN_OUTS)
def test_fan_out_sees_a_session_class_changed_after_it_ran(fan_out) -> None:  # type: ignore[no-untyped-def]
    """The C loop caches where a session type keeps its slots; a property put on the class later is used."""

    class Patched:
        __slots__ = ("wire", "outbox", "received", "closed")

        def __init__(self) -> None:
            self.wire, self.outbox, self.received, self.closed = "w", Outbox(100), 0, False

    session = Patched()
    assert fan_out((session,), lambda w: b"f", 1, {})[:2] == (1, 1) and session.received == 1
    counted: list[int] = []
    stored = Patched.received
    Patched.received = property(lambda s: stored.__get__(s), lambda s, v: (counted.append(v), stored.__set__(s, v)))
    assert fan_out((session,), lambda w: b"f", 2, {})[:2] == (1, 1)
    assert counted == [3] and session.received == 3
